/**
 * `--secret NAME`: mirror one kubernetes.io/tls Secret of the pod's namespace. Lists and
 * watches with `fieldSelector=metadata.name=NAME`, so a Role with `resourceNames: [NAME]` and
 * verbs get, list, watch is all the sidecar needs. Every version of the Secret is untrusted:
 * it reaches the files only if it verifies (the runner checks); a deleted Secret leaves the
 * files in place.
 */
import type { KubeTransport } from '../kube/http/transport.ts';
import { SecretKey, TLS_SECRET_TYPE } from '../names.ts';
import type { Material } from './material.ts';
import { type Source, type SourceContext, sleep } from './source.ts';

interface SecretObject {
  metadata?: { name?: string; resourceVersion?: string };
  type?: string;
  data?: Record<string, string>;
}

interface SecretList {
  metadata?: { resourceVersion?: string };
  items?: SecretObject[];
}

interface StatusObject {
  kind?: string;
  code?: number;
  reason?: string;
  message?: string;
}

function httpCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

function decode(data: Record<string, string> | undefined, key: string): string | undefined {
  const v = data?.[key];
  if (v === undefined) return undefined;
  return Buffer.from(v, 'base64').toString('utf8');
}

export class SecretSource implements Source {
  readonly description: string;
  private readonly transport: KubeTransport;
  private readonly namespace: string;
  private readonly name: string;
  private lastRv: string | undefined;

  constructor(transport: KubeTransport, namespace: string, name: string) {
    this.transport = transport;
    this.namespace = namespace;
    this.name = name;
    this.description = `Secret ${namespace}/${name}`;
  }

  private get path(): string {
    return `/api/v1/namespaces/${encodeURIComponent(this.namespace)}/secrets`;
  }

  /** Explains a refusal in terms of what to change, without echoing anything of the Secret. */
  private describe(err: unknown): string {
    const code = httpCode(err);
    const msg = err instanceof Error ? err.message : String(err);
    if (code === 403) {
      return `the API server denied access to ${this.description} (${msg}); give the pod's ServiceAccount a Role with resources: [secrets], resourceNames: [${this.name}], verbs: [get, list, watch] in namespace ${this.namespace}`;
    }
    if (code === 401)
      return `the API server rejected the pod's credentials (${msg}); is the ServiceAccount token mounted and current?`;
    return msg;
  }

  private async handle(ctx: SourceContext, type: string, obj: SecretObject): Promise<void> {
    if (obj.metadata?.resourceVersion) this.lastRv = obj.metadata.resourceVersion;
    if (type === 'DELETED') {
      const msg = `${this.description} was deleted; the files on disk are kept`;
      ctx.problem(msg);
      ctx.log.warn({ secret: this.description }, msg);
      return;
    }
    if (type !== 'ADDED' && type !== 'MODIFIED') return;
    if (obj.type !== TLS_SECRET_TYPE) {
      const msg = `${this.description} has type ${JSON.stringify(obj.type ?? '')}, not ${TLS_SECRET_TYPE}; the files on disk are kept`;
      ctx.problem(msg);
      ctx.log.warn({ secret: this.description, resourceVersion: obj.metadata?.resourceVersion }, msg);
      return;
    }
    const chainPem = decode(obj.data, SecretKey.certificate);
    const keyPem = decode(obj.data, SecretKey.privateKey);
    if (!chainPem || !keyPem) {
      const missing = [!chainPem ? SecretKey.certificate : '', !keyPem ? SecretKey.privateKey : ''].filter(
        Boolean,
      );
      const msg = `${this.description} has no ${missing.join(' or ')} yet; the files on disk are kept`;
      ctx.problem(msg);
      ctx.log.warn({ secret: this.description, resourceVersion: obj.metadata?.resourceVersion }, msg);
      return;
    }
    const m: Material = { chainPem, keyPem, caPem: decode(obj.data, SecretKey.caCertificate) };
    await ctx.offer(m, `${this.description} (resourceVersion ${obj.metadata?.resourceVersion ?? '?'})`);
  }

  async run(ctx: SourceContext): Promise<void> {
    const selector = { fieldSelector: `metadata.name=${this.name}` };
    let backoff = 1_000;
    let listed = false;
    while (!ctx.signal.aborted) {
      try {
        if (!listed) {
          const list = await this.transport.request<SecretList>('GET', this.path, {
            query: selector,
            signal: ctx.signal,
          });
          const item = list.items?.find((s) => s.metadata?.name === this.name);
          if (item) await this.handle(ctx, 'ADDED', item);
          else {
            const msg = `${this.description} does not exist; waiting for it`;
            ctx.problem(msg);
            ctx.log.warn({ secret: this.description }, msg);
          }
          this.lastRv = list.metadata?.resourceVersion;
          listed = true;
        }
        // Events are handled one after another: offers must not overtake each other.
        let queue = Promise.resolve();
        let expired = false;
        await this.transport.watch(
          this.path,
          {
            ...selector,
            allowWatchBookmarks: 'true',
            timeoutSeconds: String(240 + Math.floor(Math.random() * 120)),
            ...(this.lastRv ? { resourceVersion: this.lastRv } : {}),
          },
          (type, object) => {
            if (type === 'ERROR') {
              const status = object as StatusObject;
              if (status.code === 410) expired = true;
              else
                ctx.log.warn(
                  { secret: this.description, reason: status.reason, message: status.message },
                  'watch error',
                );
              return;
            }
            if (type === 'BOOKMARK') {
              const rv = (object as SecretObject).metadata?.resourceVersion;
              if (rv) this.lastRv = rv;
              return;
            }
            queue = queue.then(() => this.handle(ctx, type, object as SecretObject));
          },
          ctx.signal,
        );
        await queue;
        if (expired) {
          ctx.log.debug({ secret: this.description }, 'watch expired (410); listing again');
          listed = false;
        }
        backoff = 1_000;
      } catch (err) {
        if (ctx.signal.aborted) return;
        if (httpCode(err) === 410) {
          listed = false;
          continue;
        }
        const msg = this.describe(err);
        ctx.problem(msg);
        ctx.log.error({ secret: this.description, retryInMs: backoff, code: httpCode(err) }, msg);
        await sleep(backoff, ctx.signal);
        backoff = Math.min(backoff * 2, 60_000);
        listed = false;
      }
    }
  }
}
