/**
 * `--ca-bundle-configmap NAME[/KEY]`: the trust set the sidecar writes as `ca.crt`, taken from a
 * ConfigMap of the pod's namespace (e.g. one a `trustBundles` entry keeps: old + new CA during a
 * rollover) instead of from the source, which gives a `--csr-signer` pod only its chain.
 *
 * Reads the ConfigMap by name (`get`) and then watches it by name (`watch` with
 * `fieldSelector=metadata.name=NAME`), so a Role with resourceNames: [NAME] and verbs get, watch
 * is all it needs. Every version is untrusted: it becomes ca.crt only if it is PEM certificates,
 * each a CA; otherwise the old ca.crt stays and a line says why. A missing ConfigMap or key is
 * retried with backoff, never a crash.
 */
import type { KubeTransport } from '../kube/http/transport.ts';
import { readCertificateSummary } from '../pki/der.ts';
import { splitPem, toPem } from '../pki/pem.ts';
import type { SidecarLogger } from './log.ts';
import { sleep } from './source.ts';

export interface BundleRef {
  name: string;
  /** Default `ca.crt`. */
  key: string;
}

interface ConfigMapObject {
  metadata?: { name?: string; resourceVersion?: string };
  data?: Record<string, string>;
}

/**
 * The bundle normalised (PEM re-encoded from DER, text between blocks dropped, duplicates
 * removed), or a reason it is refused. Never echoes the content.
 */
export function checkBundle(text: string): { pem: string } | { problem: string } {
  let blocks: ReturnType<typeof splitPem>;
  try {
    blocks = splitPem(text);
  } catch (err) {
    return { problem: (err as Error).message };
  }
  if (blocks.length === 0) return { problem: 'holds no PEM block' };
  const seen = new Set<string>();
  const out: string[] = [];
  for (const [i, b] of blocks.entries()) {
    if (b.label !== 'CERTIFICATE') return { problem: `block ${i + 1} is a ${b.label}, not a CERTIFICATE` };
    let isCA: boolean;
    try {
      isCA = readCertificateSummary(b.der).isCA;
    } catch (err) {
      return { problem: `certificate ${i + 1}: ${(err as Error).message}` };
    }
    if (!isCA) return { problem: `certificate ${i + 1} is not a CA (basicConstraints cA, keyCertSign)` };
    const pem = toPem('CERTIFICATE', b.der);
    if (seen.has(pem)) continue;
    seen.add(pem);
    out.push(pem);
  }
  return { pem: out.join('') };
}

export class TrustBundleWatch {
  readonly description: string;
  readonly #transport: KubeTransport;
  readonly #namespace: string;
  readonly #ref: BundleRef;
  #rv: string | undefined;

  constructor(transport: KubeTransport, namespace: string, ref: BundleRef) {
    this.#transport = transport;
    this.#namespace = namespace;
    this.#ref = ref;
    this.description = `ConfigMap ${namespace}/${ref.name} key ${ref.key}`;
  }

  get #path(): string {
    return `/api/v1/namespaces/${encodeURIComponent(this.#namespace)}/configmaps`;
  }

  #explain(err: unknown): string {
    const code = (err as { code?: unknown } | null)?.code;
    const msg = err instanceof Error ? err.message : String(err);
    if (code === 403) {
      return `the API server denied access to ${this.description} (${msg}); give the pod's ServiceAccount a Role with resources: [configmaps], resourceNames: [${this.#ref.name}], verbs: [get, watch] in namespace ${this.#namespace}`;
    }
    return `cannot read ${this.description}: ${msg}`;
  }

  /**
   * Calls `onBundle` with every valid version (the first as soon as it is read), `onProblem`
   * with what keeps the bundle from being used, until `signal` aborts. `firstLook` (if given)
   * is called once, after the first read, good or not.
   */
  async run(opts: {
    log: SidecarLogger;
    signal: AbortSignal;
    onBundle(pem: string): Promise<void>;
    onProblem(message: string): void;
    firstLook?: () => void;
  }): Promise<void> {
    const { log, signal } = opts;
    let first = opts.firstLook;
    const looked = () => {
      first?.();
      first = undefined;
    };
    const problem = (message: string) => {
      opts.onProblem(message);
      log.warn({ bundle: this.description }, message);
    };
    const handle = async (type: string, cm: ConfigMapObject | undefined) => {
      if (cm?.metadata?.resourceVersion) this.#rv = cm.metadata.resourceVersion;
      if (type === 'DELETED' || cm === undefined) {
        return problem(`${this.description} does not exist; ca.crt is kept as it is, waiting for it`);
      }
      const text = cm.data?.[this.#ref.key];
      if (text === undefined || text.trim() === '') {
        return problem(`${this.description}: the key is missing or empty; ca.crt is kept as it is`);
      }
      const checked = checkBundle(text);
      if ('problem' in checked) {
        return problem(
          `${this.description} (resourceVersion ${cm.metadata?.resourceVersion ?? '?'}) refused: ${checked.problem}; ca.crt is kept as it is`,
        );
      }
      await opts.onBundle(checked.pem);
    };
    let backoff = 1_000;
    let read = false;
    while (!signal.aborted) {
      try {
        if (!read) {
          let cm: ConfigMapObject | undefined;
          try {
            cm = await this.#transport.request<ConfigMapObject>(
              'GET',
              `${this.#path}/${encodeURIComponent(this.#ref.name)}`,
              { signal },
            );
          } catch (err) {
            if ((err as { code?: unknown }).code !== 404) throw err;
            this.#rv = undefined;
          }
          await handle('ADDED', cm);
          read = true;
          looked();
        }
        let queue = Promise.resolve();
        let expired = false;
        await this.#transport.watch(
          this.#path,
          {
            fieldSelector: `metadata.name=${this.#ref.name}`,
            allowWatchBookmarks: 'true',
            timeoutSeconds: String(240 + Math.floor(Math.random() * 120)),
            ...(this.#rv ? { resourceVersion: this.#rv } : {}),
          },
          (type, object) => {
            if (type === 'ERROR') {
              if ((object as { code?: number }).code === 410) expired = true;
              return;
            }
            if (type === 'BOOKMARK') {
              const rv = (object as ConfigMapObject).metadata?.resourceVersion;
              if (rv) this.#rv = rv;
              return;
            }
            queue = queue.then(() => handle(type, object as ConfigMapObject));
          },
          signal,
        );
        await queue;
        if (expired) read = false;
        backoff = 1_000;
      } catch (err) {
        if (signal.aborted) return;
        read = (err as { code?: unknown }).code === 410 ? false : read;
        problem(this.#explain(err));
        looked();
        await sleep(backoff, signal);
        backoff = Math.min(backoff * 2, 60_000);
        read = false;
      }
    }
  }
}
