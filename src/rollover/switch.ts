/**
 * The CA Secret's data at the switch to Reissue (pure): the staged CA moves into tls.crt/tls.key,
 * the replaced one into previous.crt/previous.key. The Secret's own ca.crt must not keep naming
 * the replaced CA as what to trust: the staged Secret's ca.crt (what its issuer gave, e.g. the
 * new root itself or an intermediate's parent) replaces it; without one, a ca.crt that held the
 * replaced CA becomes the new CA when that is self-signed (a root's self-trust), else goes.
 */
import { X509Certificate } from 'node:crypto';
import { decodeData } from '../controller/secret-body.ts';
import { CaSecretKey, SecretKey } from '../names.ts';
import { certificatesFromPem, issuedBy, toPem } from '../pki/index.ts';
import { firstCertPem } from './cluster.ts';

const b64 = (text: string) => Buffer.from(text).toString('base64');

function selfSigned(pem: string): boolean {
  try {
    const x = new X509Certificate(pem);
    return issuedBy(x, x);
  } catch {
    return false;
  }
}

/** The certificates of a ca.crt value, as PEM; none when absent or unreadable (then it is kept). */
function trustedPems(value: string | undefined): string[] {
  try {
    return value ? certificatesFromPem(decodeData(value)).map((der) => toPem('CERTIFICATE', der)) : [];
  } catch {
    return [];
  }
}

export function switchedData(
  caData: Readonly<Record<string, string>>,
  stagedData: Readonly<Record<string, string>>,
): Record<string, string> {
  const data: Record<string, string> = { ...caData };
  const oldPem = firstCertPem(decodeData(caData[SecretKey.certificate]));
  const newPem = firstCertPem(decodeData(stagedData[SecretKey.certificate])) ?? '';
  data[CaSecretKey.previousCertificate] = caData[SecretKey.certificate] ?? '';
  data[CaSecretKey.previousKey] = caData[SecretKey.privateKey] ?? '';
  data[SecretKey.certificate] = stagedData[SecretKey.certificate] ?? '';
  data[SecretKey.privateKey] = stagedData[SecretKey.privateKey] ?? '';
  delete data[CaSecretKey.nextCertificate];
  const stagedTrust = stagedData[SecretKey.caCertificate];
  if (stagedTrust) {
    data[SecretKey.caCertificate] = stagedTrust;
    return data;
  }
  if (oldPem !== undefined && trustedPems(caData[SecretKey.caCertificate]).includes(oldPem)) {
    if (selfSigned(newPem)) data[SecretKey.caCertificate] = b64(newPem);
    else delete data[SecretKey.caCertificate];
  }
  return data;
}
