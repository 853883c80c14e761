/**
 * The certificates of a PKCS#12 (PFX) keystore or truststore, RFC 7292. Only certificate bags
 * are opened: private-key bags are skipped without being decrypted. The MAC is checked first,
 * so a wrong password is reported as such (reason `wrong-password`) whatever else the file holds.
 *
 * Crypto is node:crypto's (PBKDF2, AES, 3DES, HMAC are native). RC2, which OpenSSL 1.x and older
 * Java wrote by default for certificate bags and which OpenSSL 3 only has in its legacy provider,
 * comes from node-forge's implementation, loaded on first use (its RC2 and util modules only:
 * the whole library would add ~11 MB of RSS to every controller, monitoring or not).
 */
import { createDecipheriv, createHash, createHmac, pbkdf2Sync, timingSafeEqual } from 'node:crypto';
import { createRequire } from 'node:module';
import type forge from 'node-forge';
import { children, contents, expectTag, oidText, readTlv, smallInt, Tag, type Tlv } from './asn1.ts';
import { ReadError } from './errors.ts';

const OID = {
  data: '1.2.840.113549.1.7.1',
  encryptedData: '1.2.840.113549.1.7.6',
  certBag: '1.2.840.113549.1.12.10.1.3',
  safeContentsBag: '1.2.840.113549.1.12.10.1.6',
  x509Certificate: '1.2.840.113549.1.9.22.1',
  pbes2: '1.2.840.113549.1.5.13',
  pbkdf2: '1.2.840.113549.1.5.12',
  sha1And3DES: '1.2.840.113549.1.12.1.3',
  sha1And2DES: '1.2.840.113549.1.12.1.4',
  sha1AndRC2_128: '1.2.840.113549.1.12.1.5',
  sha1AndRC2_40: '1.2.840.113549.1.12.1.6',
} as const;

/** Digest OIDs of MacData and PRF OIDs of PBKDF2 → node:crypto hash name and block size. */
const DIGESTS: Record<string, { hash: string; block: number }> = {
  '1.3.14.3.2.26': { hash: 'sha1', block: 64 },
  '2.16.840.1.101.3.4.2.4': { hash: 'sha224', block: 64 },
  '2.16.840.1.101.3.4.2.1': { hash: 'sha256', block: 64 },
  '2.16.840.1.101.3.4.2.2': { hash: 'sha384', block: 128 },
  '2.16.840.1.101.3.4.2.3': { hash: 'sha512', block: 128 },
};
const PRFS: Record<string, string> = {
  '1.2.840.113549.2.7': 'sha1',
  '1.2.840.113549.2.8': 'sha224',
  '1.2.840.113549.2.9': 'sha256',
  '1.2.840.113549.2.10': 'sha384',
  '1.2.840.113549.2.11': 'sha512',
};
const PBES2_CIPHERS: Record<string, { name: string; keyLength: number }> = {
  '2.16.840.1.101.3.4.1.2': { name: 'aes-128-cbc', keyLength: 16 },
  '2.16.840.1.101.3.4.1.22': { name: 'aes-192-cbc', keyLength: 24 },
  '2.16.840.1.101.3.4.1.42': { name: 'aes-256-cbc', keyLength: 32 },
  '1.2.840.113549.3.7': { name: 'des-ede3-cbc', keyLength: 24 },
};

/**
 * Iteration counts above this are refused (reason `unsupported`): reading runs on the event loop,
 * and a hostile Secret must not pin it. Tools write 2,048 (OpenSSL) or 10,000 (Java); at 100,000
 * one keystore costs about 0.1 s.
 */
const MAX_ITERATIONS = 100_000;

function malformed(what: string): never {
  throw new ReadError('malformed', `not a valid PKCS#12 keystore: ${what}`);
}

/** True when the bytes start like a PFX: SEQUENCE { INTEGER 3, SEQUENCE { OID ... } }. */
export function looksLikePkcs12(buf: Uint8Array): boolean {
  try {
    const pfx = readTlv(buf, 0, buf.length);
    if (pfx.tag !== Tag.sequence) return false;
    const [version, authSafe] = children(buf, pfx);
    return (
      version !== undefined &&
      authSafe?.tag === Tag.sequence &&
      smallInt(buf, version, 'version') === 3 &&
      authSafe !== undefined
    );
  } catch {
    return false;
  }
}

/**
 * The DER of every certificate in the keystore, in file order. `password` undefined means none
 * was configured: the empty password is tried (as OpenSSL and keytool do). Throws ReadError.
 */
export function pkcs12Certificates(buf: Uint8Array, password: string | undefined): Uint8Array[] {
  const pfx = readTlv(buf, 0, buf.length);
  if (pfx.tag !== Tag.sequence || pfx.end !== buf.length) malformed('not a single DER SEQUENCE');
  const [version, authSafe, macData] = children(buf, pfx);
  if (!version || smallInt(buf, version, 'version') !== 3) malformed('version is not 3');
  const authContent = contentInfoData(buf, expectTag(authSafe, Tag.sequence, 'authSafe'));
  const pass = password ?? '';
  if (macData) verifyMac(buf, macData, authContent, pass, password === undefined);
  const certs: Uint8Array[] = [];
  const safe = readTlv(authContent, 0, authContent.length);
  for (const info of children(authContent, expectTag(safe, Tag.sequence, 'AuthenticatedSafe'))) {
    const parts = children(authContent, expectTag(info, Tag.sequence, 'ContentInfo'));
    const type = oidText(authContent, expectTag(parts[0], Tag.oid, 'content type'));
    if (type === OID.data) {
      safeContents(contentInfoData(authContent, info), certs, pass, 0);
    } else if (type === OID.encryptedData) {
      safeContents(decryptEncryptedData(authContent, parts[1], pass), certs, pass, 0);
    } else {
      throw new ReadError(
        'unsupported',
        `PKCS#12 content type ${type} (public-key privacy) is not supported`,
      );
    }
  }
  return certs;
}

/** The OCTET STRING inside a ContentInfo of type data: `[0] EXPLICIT OCTET STRING`. */
function contentInfoData(buf: Uint8Array, info: Tlv): Uint8Array {
  const [type, explicit] = children(buf, info);
  if (oidText(buf, expectTag(type, Tag.oid, 'content type')) !== OID.data) {
    throw new ReadError(
      'unsupported',
      'PKCS#12 whose contents are signed (public-key integrity) is not supported',
    );
  }
  const [octets] = children(buf, expectTag(explicit, Tag.context0, 'content'));
  return contents(buf, expectTag(octets, Tag.octetString, 'data octets'));
}

function verifyMac(buf: Uint8Array, macData: Tlv, data: Uint8Array, pass: string, noPassword: boolean): void {
  const [digestInfo, saltT, iterT] = children(buf, expectTag(macData, Tag.sequence, 'MacData'));
  const [algId, digestT] = children(buf, expectTag(digestInfo, Tag.sequence, 'DigestInfo'));
  const [algOid] = children(buf, expectTag(algId, Tag.sequence, 'digest algorithm'));
  const oid = oidText(buf, expectTag(algOid, Tag.oid, 'digest algorithm'));
  const digest = DIGESTS[oid];
  if (!digest) throw new ReadError('unsupported', `PKCS#12 MAC digest ${oid} is not supported`);
  const expected = contents(buf, expectTag(digestT, Tag.octetString, 'MAC digest'));
  const salt = contents(buf, expectTag(saltT, Tag.octetString, 'MAC salt'));
  const iterations = iterT ? iterationCount(buf, iterT) : 1;
  // An empty password is encoded as two zero bytes by OpenSSL and as nothing by some tools.
  const candidates = pass === '' ? [bmpPassword(''), new Uint8Array(0)] : [bmpPassword(pass)];
  for (const p of candidates) {
    const key = pkcs12Kdf(digest, p, salt, 3, iterations, createHash(digest.hash).digest().length);
    const mac = createHmac(digest.hash, key).update(data).digest();
    if (mac.length === expected.length && timingSafeEqual(mac, expected)) return;
  }
  throw new ReadError(
    'wrong-password',
    noPassword
      ? 'the PKCS#12 keystore needs a password and none is configured'
      : 'the PKCS#12 integrity check failed: wrong password',
  );
}

function iterationCount(buf: Uint8Array, t: Tlv): number {
  const n = smallInt(buf, t, 'iteration count');
  if (n < 1) malformed(`iteration count ${n} is out of range`);
  if (n > MAX_ITERATIONS) {
    throw new ReadError(
      'unsupported',
      `PKCS#12 iteration count ${n} is more than the ${MAX_ITERATIONS} read`,
    );
  }
  return n;
}

function safeContents(buf: Uint8Array, certs: Uint8Array[], pass: string, depth: number): void {
  if (depth > 4) malformed('safe contents nested too deeply');
  const top = readTlv(buf, 0, buf.length);
  for (const bag of children(buf, expectTag(top, Tag.sequence, 'SafeContents'))) {
    const [idT, valueT] = children(buf, expectTag(bag, Tag.sequence, 'SafeBag'));
    const id = oidText(buf, expectTag(idT, Tag.oid, 'bag id'));
    if (id === OID.certBag) {
      const [certBag] = children(buf, expectTag(valueT, Tag.context0, 'bag value'));
      const [typeT, valT] = children(buf, expectTag(certBag, Tag.sequence, 'CertBag'));
      // SDSI certificates and other kinds are not X.509: nothing to report an expiry for.
      if (oidText(buf, expectTag(typeT, Tag.oid, 'cert type')) !== OID.x509Certificate) continue;
      const [octets] = children(buf, expectTag(valT, Tag.context0, 'cert value'));
      certs.push(contents(buf, expectTag(octets, Tag.octetString, 'certificate')).slice());
    } else if (id === OID.safeContentsBag) {
      const [inner] = children(buf, expectTag(valueT, Tag.context0, 'bag value'));
      const nested = expectTag(inner, Tag.sequence, 'SafeContents');
      safeContents(buf.subarray(nested.headerStart, nested.end), certs, pass, depth + 1);
    }
    // keyBag, pkcs8ShroudedKeyBag, crlBag, secretBag: not certificates, never opened.
  }
}

/** EncryptedData → the decrypted SafeContents. */
function decryptEncryptedData(buf: Uint8Array, explicit: Tlv | undefined, pass: string): Uint8Array {
  const [encData] = children(buf, expectTag(explicit, Tag.context0, 'encrypted data'));
  const [, eci] = children(buf, expectTag(encData, Tag.sequence, 'EncryptedData'));
  const [, algId, encrypted] = children(buf, expectTag(eci, Tag.sequence, 'EncryptedContentInfo'));
  if (!encrypted || (encrypted.tag !== Tag.context0Primitive && encrypted.tag !== Tag.context0)) {
    malformed('encrypted content missing');
  }
  let ciphertext: Uint8Array;
  if (encrypted.tag === Tag.context0Primitive) ciphertext = contents(buf, encrypted);
  else {
    // Constructed [0]: a BER-style list of OCTET STRING pieces (Java writes this form).
    const pieces = children(buf, encrypted).map((p) =>
      contents(buf, expectTag(p, Tag.octetString, 'octets')),
    );
    ciphertext = Buffer.concat(pieces);
  }
  const plain = decrypt(buf, expectTag(algId, Tag.sequence, 'encryption algorithm'), ciphertext, pass);
  return plain;
}

function decrypt(buf: Uint8Array, algId: Tlv, ciphertext: Uint8Array, pass: string): Uint8Array {
  const [oidT, params] = children(buf, algId);
  const oid = oidText(buf, expectTag(oidT, Tag.oid, 'algorithm'));
  try {
    if (oid === OID.pbes2)
      return pbes2(buf, expectTag(params, Tag.sequence, 'PBES2 parameters'), ciphertext, pass);
    const legacy = {
      [OID.sha1And3DES]: { key: 24, cipher: 'des-ede3-cbc' },
      [OID.sha1And2DES]: { key: 16, cipher: 'des-ede-cbc' },
      [OID.sha1AndRC2_128]: { key: 16, cipher: 'rc2' },
      [OID.sha1AndRC2_40]: { key: 5, cipher: 'rc2' },
    }[oid];
    if (!legacy) throw new ReadError('unsupported', `PKCS#12 encryption algorithm ${oid} is not supported`);
    const [saltT, iterT] = children(buf, expectTag(params, Tag.sequence, 'PBE parameters'));
    const salt = contents(buf, expectTag(saltT, Tag.octetString, 'salt'));
    const iterations = iterationCount(buf, expectTag(iterT, Tag.integer, 'iterations'));
    const sha1 = DIGESTS['1.3.14.3.2.26'] as { hash: string; block: number };
    const p = bmpPassword(pass);
    const key = pkcs12Kdf(sha1, p, salt, 1, iterations, legacy.key);
    const iv = pkcs12Kdf(sha1, p, salt, 2, iterations, 8);
    if (legacy.cipher === 'rc2') return rc2Decrypt(key, iv, ciphertext);
    const d = createDecipheriv(legacy.cipher, key, iv);
    return Buffer.concat([d.update(ciphertext), d.final()]);
  } catch (err) {
    if (err instanceof ReadError) throw err;
    // The MAC passed (or there is none), so bad padding here means a corrupt file or, without a
    // MAC, a wrong password: both make the certificates unreadable.
    throw new ReadError(
      'wrong-password',
      'a PKCS#12 certificate bag cannot be decrypted: wrong password or corrupt file',
    );
  }
}

function pbes2(buf: Uint8Array, params: Tlv, ciphertext: Uint8Array, pass: string): Uint8Array {
  const [kdf, scheme] = children(buf, params);
  const [kdfOid, kdfParams] = children(buf, expectTag(kdf, Tag.sequence, 'key derivation'));
  if (oidText(buf, expectTag(kdfOid, Tag.oid, 'kdf')) !== OID.pbkdf2) {
    throw new ReadError(
      'unsupported',
      'PKCS#12 PBES2 with a key derivation other than PBKDF2 is not supported',
    );
  }
  const kp = children(buf, expectTag(kdfParams, Tag.sequence, 'PBKDF2 parameters'));
  const salt = contents(buf, expectTag(kp[0], Tag.octetString, 'PBKDF2 salt'));
  const iterations = iterationCount(buf, expectTag(kp[1], Tag.integer, 'PBKDF2 iterations'));
  let prf = 'sha1';
  for (const t of kp.slice(2)) {
    if (t.tag === Tag.sequence) {
      const [prfOid] = children(buf, t);
      const id = oidText(buf, expectTag(prfOid, Tag.oid, 'prf'));
      const name = PRFS[id];
      if (!name) throw new ReadError('unsupported', `PKCS#12 PBKDF2 PRF ${id} is not supported`);
      prf = name;
    }
  }
  const [encOid, ivT] = children(buf, expectTag(scheme, Tag.sequence, 'encryption scheme'));
  const encId = oidText(buf, expectTag(encOid, Tag.oid, 'cipher'));
  const cipher = PBES2_CIPHERS[encId];
  if (!cipher) throw new ReadError('unsupported', `PKCS#12 PBES2 cipher ${encId} is not supported`);
  const iv = contents(buf, expectTag(ivT, Tag.octetString, 'iv'));
  const key = pbkdf2Sync(Buffer.from(pass, 'utf8'), salt, iterations, cipher.keyLength, prf);
  const d = createDecipheriv(cipher.name, key, iv);
  return Buffer.concat([d.update(ciphertext), d.final()]);
}

let forgeParts: { rc2: typeof forge.rc2; util: typeof forge.util } | undefined;

function rc2Decrypt(key: Uint8Array, iv: Uint8Array, ciphertext: Uint8Array): Uint8Array {
  if (!forgeParts) {
    const require = createRequire(import.meta.url);
    forgeParts = { rc2: require('node-forge/lib/rc2.js'), util: require('node-forge/lib/util.js') };
  }
  const { rc2, util } = forgeParts;
  const binary = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('binary');
  const cipher = rc2.createDecryptionCipher(binary(key), key.length * 8);
  cipher.start(binary(iv));
  cipher.update(util.createBuffer(binary(ciphertext)));
  if (!cipher.finish()) throw new Error('bad padding');
  return Buffer.from(cipher.output.getBytes(), 'binary');
}

/** The password as PKCS#12 wants it: UTF-16BE with a terminating zero character. */
function bmpPassword(pass: string): Uint8Array {
  const out = Buffer.alloc((pass.length + 1) * 2);
  for (let i = 0; i < pass.length; i++) out.writeUInt16BE(pass.charCodeAt(i), i * 2);
  return out;
}

/** RFC 7292 appendix B.2: the PKCS#12 key derivation (id 1 key, 2 IV, 3 MAC key). */
function pkcs12Kdf(
  digest: { hash: string; block: number },
  password: Uint8Array,
  salt: Uint8Array,
  id: number,
  iterations: number,
  length: number,
): Buffer {
  const v = digest.block;
  const fill = (src: Uint8Array): Buffer => {
    const out = Buffer.alloc(src.length === 0 ? 0 : v * Math.ceil(src.length / v));
    for (let i = 0; i < out.length; i++) out[i] = src[i % src.length] as number;
    return out;
  };
  const D = Buffer.alloc(v, id);
  const I = Buffer.concat([fill(salt), fill(password)]);
  const result: Buffer[] = [];
  let produced = 0;
  while (produced < length) {
    let A = createHash(digest.hash).update(D).update(I).digest();
    for (let i = 1; i < iterations; i++) A = createHash(digest.hash).update(A).digest();
    result.push(A);
    produced += A.length;
    if (produced >= length) break;
    const B = Buffer.alloc(v);
    for (let i = 0; i < v; i++) B[i] = A[i % A.length] as number;
    for (let j = 0; j < I.length; j += v) {
      let carry = 1;
      for (let k = v - 1; k >= 0; k--) {
        const sum = (I[j + k] as number) + (B[k] as number) + carry;
        I[j + k] = sum & 0xff;
        carry = sum >> 8;
      }
    }
  }
  return Buffer.concat(result).subarray(0, length);
}
