/**
 * `--self-signed` and `--ca-cert/--ca-key`: certificates issued inside the sidecar, no cluster
 * needed. Loads the signing code (and its X.509 library) only here, so `--secret` never pays for it.
 */
import { readFile } from 'node:fs/promises';
import type { KeyAlgorithm } from '../pki/key-algorithms.ts';
import { generateKey } from '../pki/keys.ts';
import { verifyIssued } from '../pki/verify.ts';
import { runIssuingLoop } from './issuing-loop.ts';
import type { Material, VerifiedMaterial } from './material.ts';
import type { Source, SourceContext } from './source.ts';

export interface LocalSourceOptions {
  durationMs: number;
  keyAlgorithm: KeyAlgorithm;
  /** Files of the signing CA; absent for self-signed. */
  ca?: { certFile: string; keyFile: string } | undefined;
}

export class LocalSource implements Source {
  readonly description: string;

  private readonly opts: LocalSourceOptions;

  constructor(opts: LocalSourceOptions) {
    this.opts = opts;
    this.description = opts.ca ? `local CA ${opts.ca.certFile}` : 'self-signed';
  }

  private async loadCa(): Promise<{ certPem: string; keyPem: string } | undefined> {
    if (!this.opts.ca) return undefined;
    // Re-read each time: a CA rotated on disk (a mounted Secret) is picked up at the next renewal.
    const [certPem, keyPem] = await Promise.all([
      readFile(this.opts.ca.certFile, 'utf8'),
      readFile(this.opts.ca.keyFile, 'utf8'),
    ]);
    return { certPem, keyPem };
  }

  async run(ctx: SourceContext): Promise<void> {
    const { issueCertificate } = await import('../pki/sign.ts');
    let caCertPem = (await this.loadCa().catch(() => undefined))?.certPem;
    await runIssuingLoop(ctx, {
      keeps: (cur: VerifiedMaterial) => {
        if (this.opts.ca === undefined) return cur.leaf.selfIssued;
        if (caCertPem === undefined) return false;
        try {
          verifyIssued({
            certPem: cur.chainPem,
            keyPem: cur.keyPem,
            identity: ctx.required,
            now: ctx.now(),
            issuerCertPem: caCertPem,
          });
          return true;
        } catch {
          return false;
        }
      },
      issue: async (): Promise<Material> => {
        const ca = await this.loadCa().catch((err: Error) => {
          throw new Error(`cannot read the CA files: ${err.message}`);
        });
        caCertPem = ca?.certPem;
        const key = await generateKey(this.opts.keyAlgorithm);
        const now = Math.floor(ctx.now() / 1000) * 1000;
        const issued = await issueCertificate({
          subjectKeyPem: key.privateKeyPem,
          identity: ctx.required,
          notBefore: now,
          notAfter: now + this.opts.durationMs,
          issuer: ca ?? 'self',
        });
        return { chainPem: issued.chainPem, keyPem: key.privateKeyPem, caPem: issued.caPem };
      },
    });
  }
}
