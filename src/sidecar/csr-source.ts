/**
 * `--csr-signer NAME`: the pod's own certificate through certificates.k8s.io/v1, asked for
 * with the pod's ServiceAccount token. The key is generated here and written only to the
 * sidecar's directory: it is in no Secret and never sent anywhere (the CSR carries the public
 * key and a signature). Renewed at a jittered 70–90 % of the issued validity.
 */
import type { KubeTransport } from '../kube/http/transport.ts';
import { createCsrPem } from '../pki/csr.ts';
import type { KeyAlgorithm } from '../pki/key-algorithms.ts';
import { generateKey } from '../pki/keys.ts';
import { certificatesFromPem, toPem } from '../pki/pem.ts';
import { runIssuingLoop } from './issuing-loop.ts';
import type { Material } from './material.ts';
import type { Source, SourceContext } from './source.ts';

const CSR_PATH = '/apis/certificates.k8s.io/v1/certificatesigningrequests';
/** How long one CSR may wait for approval and signing before it is given up (and retried). */
const CSR_WAIT_MS = 10 * 60_000;

interface Condition {
  type?: string;
  status?: string;
  reason?: string;
  message?: string;
}

interface Csr {
  metadata?: { name?: string; uid?: string; resourceVersion?: string };
  status?: { certificate?: string; conditions?: Condition[] };
}

export interface CsrSourceOptions {
  signerName: string;
  durationMs: number;
  keyAlgorithm: KeyAlgorithm;
  /** For generateName: the pod name, else the ServiceAccount. */
  requester: string;
}

/** Usages a signer accepts: kube-apiserver-client allows client auth only. */
export function usagesFor(signerName: string): string[] {
  return signerName === 'kubernetes.io/kube-apiserver-client'
    ? ['digital signature', 'key encipherment', 'client auth']
    : ['digital signature', 'server auth', 'client auth'];
}

function outcome(csr: Csr): { certificatePem: string } | { refused: string } | undefined {
  for (const c of csr.status?.conditions ?? []) {
    if ((c.type === 'Denied' || c.type === 'Failed') && c.status !== 'False') {
      return {
        refused: `CSR ${csr.metadata?.name} was ${c.type === 'Denied' ? 'denied' : 'failed by the signer'}: ${c.reason ?? ''}${
          c.message ? `: ${c.message}` : ''
        }`,
      };
    }
  }
  const cert = csr.status?.certificate;
  if (cert) return { certificatePem: Buffer.from(cert, 'base64').toString('utf8') };
  return undefined;
}

function httpCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

export class CsrSource implements Source {
  readonly description: string;
  private readonly transport: KubeTransport;
  private readonly opts: CsrSourceOptions;

  constructor(transport: KubeTransport, opts: CsrSourceOptions) {
    this.transport = transport;
    this.opts = opts;
    this.description = `CSR signer ${opts.signerName}`;
  }

  private explain(err: unknown, what: string): Error {
    const code = httpCode(err);
    const msg = err instanceof Error ? err.message : String(err);
    if (code === 403) {
      return new Error(
        `the API server denied ${what} (${msg}); bind the pod's ServiceAccount to a ClusterRole with resources: [certificatesigningrequests], verbs: [create, get, list, watch]`,
      );
    }
    return new Error(`${what}: ${msg}`);
  }

  /** Waits for the CSR's certificate or refusal, watching it by name; GET after each watch ends. */
  private async waitFor(name: string, signal: AbortSignal, ctx: SourceContext): Promise<string> {
    const deadline = ctx.now() + CSR_WAIT_MS;
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), CSR_WAIT_MS);
    const both = AbortSignal.any([signal, timeout.signal]);
    try {
      while (!both.aborted) {
        let csr: Csr;
        try {
          csr = await this.transport.request<Csr>('GET', `${CSR_PATH}/${encodeURIComponent(name)}`, {
            signal: both,
          });
        } catch (err) {
          if (both.aborted) break;
          if (httpCode(err) === 404) throw new Error(`CSR ${name} was deleted before it was issued`);
          throw this.explain(err, `reading CSR ${name}`);
        }
        const done = outcome(csr);
        if (done && 'refused' in done) throw new Error(done.refused);
        if (done) return done.certificatePem;
        let result: { certificatePem: string } | { refused: string } | 'deleted' | undefined;
        const stop = new AbortController();
        await this.transport
          .watch(
            CSR_PATH,
            {
              fieldSelector: `metadata.name=${name}`,
              resourceVersion: csr.metadata?.resourceVersion ?? '',
              timeoutSeconds: String(Math.max(1, Math.min(300, Math.ceil((deadline - ctx.now()) / 1000)))),
            },
            (type, object) => {
              if (type === 'DELETED') result = 'deleted';
              else if (type === 'ADDED' || type === 'MODIFIED') result = outcome(object as Csr);
              if (result !== undefined) stop.abort();
            },
            AbortSignal.any([both, stop.signal]),
          )
          .catch((err: unknown) => {
            if (!both.aborted && httpCode(err) !== 410) throw this.explain(err, `watching CSR ${name}`);
          });
        if (result === 'deleted') throw new Error(`CSR ${name} was deleted before it was issued`);
        if (result && 'refused' in result) throw new Error(result.refused);
        if (result) return result.certificatePem;
      }
      if (signal.aborted) throw new Error('stopped');
      throw new Error(
        `CSR ${name} for signer ${this.opts.signerName} was not approved and signed within ${CSR_WAIT_MS / 60_000}m`,
      );
    } finally {
      clearTimeout(timer);
    }
  }

  async run(ctx: SourceContext): Promise<void> {
    await runIssuingLoop(ctx, {
      // Files kept from before a container restart are the pod's own certificate if they verify
      // for its identity (the runner checked) and are not self-issued.
      keeps: (cur) => !cur.leaf.selfIssued,
      issue: async (signal): Promise<Material> => {
        const key = await generateKey(this.opts.keyAlgorithm);
        const request = await createCsrPem(key.privateKeyPem, ctx.required);
        let created: Csr;
        try {
          created = await this.transport.request<Csr>('POST', CSR_PATH, {
            signal,
            body: {
              apiVersion: 'certificates.k8s.io/v1',
              kind: 'CertificateSigningRequest',
              metadata: { generateName: `${this.opts.requester.replace(/\.+$/, '')}-` },
              spec: {
                request: Buffer.from(request).toString('base64'),
                signerName: this.opts.signerName,
                usages: usagesFor(this.opts.signerName),
                expirationSeconds: Math.max(600, Math.round(this.opts.durationMs / 1000)),
              },
            },
          });
        } catch (err) {
          throw this.explain(err, `creating a CSR for signer ${this.opts.signerName}`);
        }
        const name = created.metadata?.name ?? '';
        ctx.log.info(
          { csr: name, signerName: this.opts.signerName, uris: ctx.required.uris },
          'CSR created; waiting for approval and signing',
        );
        const certificatePem = await this.waitFor(name, signal, ctx);
        const chain = certificatesFromPem(certificatePem);
        ctx.log.info({ csr: name }, 'CSR issued');
        return {
          chainPem: certificatePem,
          keyPem: key.privateKeyPem,
          // A signer that returns its chain (cert-rotator's does) ends it with its CA certificate.
          caPem: chain.length > 1 ? toPem('CERTIFICATE', chain.at(-1)!) : undefined,
        };
      },
    });
  }
}
