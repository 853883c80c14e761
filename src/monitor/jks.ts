/**
 * The certificates of a Java keystore (JKS, magic 0xFEEDFEED) or JCEKS (0xCECECECE): trusted
 * certificate entries and the chains of private-key entries. Private keys are skipped, never
 * decrypted. With a password, the file's keyed SHA-1 digest (its last 20 bytes) is checked first,
 * as keytool does, so a wrong password is reported as such; without one the certificates are
 * read unverified (they are not encrypted in these formats).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { ReadError } from './errors.ts';

const JKS_MAGIC = 0xfeedfeed;
const JCEKS_MAGIC = 0xcececece;
const DIGEST_LENGTH = 20;

export function looksLikeJavaKeystore(buf: Uint8Array): 'JKS' | 'JCEKS' | undefined {
  if (buf.length < 4) return undefined;
  const magic = Buffer.from(buf.buffer, buf.byteOffset, 4).readUInt32BE(0);
  return magic === JKS_MAGIC ? 'JKS' : magic === JCEKS_MAGIC ? 'JCEKS' : undefined;
}

class Cursor {
  pos = 0;
  private readonly view: Buffer;
  private readonly end: number;

  constructor(buf: Uint8Array, end: number) {
    this.view = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
    this.end = end;
  }

  private need(n: number): void {
    if (this.pos + n > this.end) throw new ReadError('malformed', 'not a valid Java keystore: truncated');
  }

  u16(): number {
    this.need(2);
    const v = this.view.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.view.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  bytes(n: number): Uint8Array {
    this.need(n);
    const v = this.view.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  /** Java's writeUTF: a 2-byte length and modified UTF-8 (read as UTF-8: only for display). */
  utf(): string {
    return Buffer.from(this.bytes(this.u16())).toString('utf8');
  }
}

/** The DER of every certificate, in file order. Throws ReadError. */
export function javaKeystoreCertificates(buf: Uint8Array, password: string | undefined): Uint8Array[] {
  const kind = looksLikeJavaKeystore(buf);
  if (!kind) throw new ReadError('malformed', 'not a Java keystore (no JKS or JCEKS magic number)');
  if (buf.length < 12 + DIGEST_LENGTH)
    throw new ReadError('malformed', `not a valid ${kind} keystore: truncated`);
  const bodyEnd = buf.length - DIGEST_LENGTH;
  if (password !== undefined) verifyDigest(buf, bodyEnd, password, kind);
  const c = new Cursor(buf, bodyEnd);
  c.u32();
  const version = c.u32();
  if (version !== 1 && version !== 2) {
    throw new ReadError('unsupported', `${kind} keystore version ${version} is not supported`);
  }
  const count = c.u32();
  const certs: Uint8Array[] = [];
  const readCert = () => {
    if (version === 2) {
      const type = c.utf();
      if (type !== 'X.509') {
        c.bytes(c.u32());
        return;
      }
    }
    certs.push(c.bytes(c.u32()).slice());
  };
  for (let i = 0; i < count; i++) {
    const tag = c.u32();
    const alias = c.utf();
    c.bytes(8); // creation date
    if (tag === 1) {
      c.bytes(c.u32()); // the protected private key: skipped, never decrypted
      const chain = c.u32();
      if (chain > 100) throw new ReadError('malformed', `not a valid ${kind} keystore: chain of ${chain}`);
      for (let j = 0; j < chain; j++) readCert();
    } else if (tag === 2) {
      readCert();
    } else if (tag === 3 && kind === 'JCEKS') {
      // A secret-key entry is a serialized Java object whose length is not written down: the
      // entries after it cannot be found without a Java deserializer.
      throw new ReadError(
        'unsupported',
        `JCEKS secret-key entry "${alias}" cannot be read past; ${certs.length} certificate(s) before it were found`,
      );
    } else {
      throw new ReadError('malformed', `not a valid ${kind} keystore: unknown entry tag ${tag}`);
    }
  }
  if (c.pos !== bodyEnd) throw new ReadError('malformed', `not a valid ${kind} keystore: trailing bytes`);
  return certs;
}

function verifyDigest(buf: Uint8Array, bodyEnd: number, password: string, kind: string): void {
  const pw = Buffer.alloc(password.length * 2);
  for (let i = 0; i < password.length; i++) pw.writeUInt16BE(password.charCodeAt(i), i * 2);
  const digest = createHash('sha1')
    .update(pw)
    .update('Mighty Aphrodite', 'utf8')
    .update(buf.subarray(0, bodyEnd))
    .digest();
  if (!timingSafeEqual(digest, buf.subarray(bodyEnd))) {
    throw new ReadError('wrong-password', `the ${kind} keystore integrity check failed: wrong password`);
  }
}
