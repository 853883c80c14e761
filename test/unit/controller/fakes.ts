import type * as k8s from '@kubernetes/client-node';
import { pino } from 'pino';
import { loadConfig } from '../../../src/config/load.ts';
import { SecretController } from '../../../src/controller/controller.ts';
import type { CertificateChange, CertificateListener } from '../../../src/controller/listener.ts';
import type { EventSink, ObjectRef, SecretApi } from '../../../src/controller/ports.ts';
import { type Issuer, IssuerError } from '../../../src/issuers/types.ts';
import type { KubeClients } from '../../../src/kube/client.ts';
import { Metrics } from '../../../src/observability/metrics.ts';
import { generateKey, issueCertificate } from '../../../src/pki/index.ts';
import { FakeClock } from '../queue/fake-clock.ts';

export const MIN = 60_000;
export const DAY = 86_400_000;
export const NS = 'apps';

/** A fake of the reconciler's SecretApi port: Secrets in a map, resourceVersions counted up. */
export class FakeSecretApi implements SecretApi {
  readonly secrets = new Map<string, k8s.V1Secret>();
  readonly replaced: k8s.V1Secret[] = [];
  reads = 0;
  #rv = 100;
  /** Throws from read() while set (an API server that cannot be reached). */
  readError: Error | undefined;
  /** Called with the body after a successful replace, before replace() resolves. */
  onReplaced: ((written: k8s.V1Secret) => void) | undefined;

  put(secret: k8s.V1Secret): k8s.V1Secret {
    const copy = structuredClone(secret);
    copy.metadata = { ...copy.metadata, namespace: NS, resourceVersion: String(++this.#rv) };
    copy.metadata.uid ??= `uid-${copy.metadata.name}`;
    this.secrets.set(copy.metadata.name ?? '', copy);
    return structuredClone(copy);
  }

  get(name: string): k8s.V1Secret {
    const s = this.secrets.get(name);
    if (!s) throw new Error(`no Secret ${name}`);
    return structuredClone(s);
  }

  async read(_namespace: string, name: string) {
    this.reads++;
    if (this.readError) throw this.readError;
    const s = this.secrets.get(name);
    return s ? structuredClone(s) : undefined;
  }

  async replace(body: k8s.V1Secret) {
    const name = body.metadata?.name ?? '';
    const now = this.secrets.get(name);
    if (!now) return { ok: false as const, why: 'gone' as const };
    if (now.metadata?.resourceVersion !== body.metadata?.resourceVersion) {
      return { ok: false as const, why: 'conflict' as const };
    }
    const written = this.put(body);
    this.replaced.push(written);
    this.onReplaced?.(structuredClone(written));
    return { ok: true as const, resourceVersion: written.metadata?.resourceVersion ?? '' };
  }

  readonly created: k8s.V1Secret[] = [];

  async create(body: k8s.V1Secret) {
    if (this.secrets.has(body.metadata?.name ?? '')) return { ok: false as const, why: 'conflict' as const };
    const written = this.put(body);
    this.created.push(written);
    return { ok: true as const, resourceVersion: written.metadata?.resourceVersion ?? '' };
  }
}

/** A fake of the EventSink port: Events kept in order. */
export class FakeEvents implements EventSink {
  readonly events: Array<{
    ref: ObjectRef;
    type: string;
    reason: string;
    message: string;
    dedupKey?: string;
  }> = [];
  async record(
    ref: ObjectRef,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
    _now?: number,
    options?: { dedupKey?: string },
  ) {
    this.events.push({
      ref,
      type,
      reason,
      message,
      ...(options?.dedupKey ? { dedupKey: options.dedupKey } : {}),
    });
  }
  reasons(): string[] {
    return this.events.map((e) => e.reason);
  }
}

/** A listener that keeps what it was told. */
export class FakeListener implements CertificateListener {
  readonly changes: CertificateChange[] = [];
  readonly removed: string[] = [];
  restartsWorkloads: CertificateListener['restartsWorkloads'];
  certificateChanged(change: CertificateChange) {
    this.changes.push(change);
  }
  secretRemoved(namespace: string, name: string) {
    this.removed.push(`${namespace}/${name}`);
  }
}

/** An issuer that fails while `failing` is set, else self-signs; counts its calls. */
export class FakeIssuer implements Issuer {
  kind: Issuer['kind'] = 'selfSigned';
  readonly name: string;
  calls = 0;
  failing: string | undefined;
  /** With `failing`: the CA's Retry-After. */
  retryAfterMs: number | undefined;
  /** While set: "still pending, look again after this many ms" (a CSR nobody approved yet). */
  pendingMs: number | undefined;
  /** Runs at the start of each issue() call (to look at the world mid-issuance). */
  during: (() => void) | undefined;
  constructor(name: string) {
    this.name = name;
  }
  async issue(input: Parameters<Issuer['issue']>[0]) {
    this.calls++;
    this.during?.();
    if (this.pendingMs !== undefined) {
      const err = new IssuerError('PENDING', 'CSR x for signer y is not approved yet', true);
      err.retryAfterMs = this.pendingMs;
      throw err;
    }
    if (this.failing) {
      const err = new IssuerError('CA_UNAVAILABLE', this.failing, true);
      if (this.retryAfterMs !== undefined) err.retryAfterMs = this.retryAfterMs;
      throw err;
    }
    const issued = await issueCertificate({
      subjectKeyPem: input.keyPem,
      identity: input.identity,
      notBefore: input.now - MIN,
      notAfter: input.now + 30 * DAY,
      issuer: 'self',
    });
    return { chainPem: issued.chainPem, caPem: issued.caPem };
  }
}

export async function leaf(dnsName: string, fromMs: number, toMs: number, now: number) {
  const key = await generateKey('ecdsa-p256');
  const cert = await issueCertificate({
    subjectKeyPem: key.privateKeyPem,
    identity: { dnsNames: [dnsName], ipAddresses: [], uris: [] },
    notBefore: now + fromMs,
    notAfter: now + toMs,
    issuer: 'self',
  });
  return { certPem: cert.certPem, keyPem: key.privateKeyPem };
}

export function tls(
  name: string,
  pair: { certPem: string; keyPem: string } | undefined,
  annotations: Record<string, string>,
): k8s.V1Secret {
  return {
    metadata: { name, namespace: NS, annotations },
    type: 'kubernetes.io/tls',
    data: pair
      ? {
          'tls.crt': Buffer.from(pair.certPem).toString('base64'),
          'tls.key': Buffer.from(pair.keyPem).toString('base64'),
        }
      : {},
  };
}

export function decodedCert(s: k8s.V1Secret): string {
  return Buffer.from(s.data?.['tls.crt'] ?? '', 'base64').toString('utf8');
}

export function setup(yaml = '', opts: { issuers?: string[] } = {}) {
  const clock = new FakeClock(Date.UTC(2030, 0, 1));
  const config = loadConfig(
    `namespaces: [${NS}]\nissuers:\n  - { name: main, selfSigned: {}, fallback: spare, fallbackAfter: 2 }\n  - { name: spare, selfSigned: {} }\ndefaults: { issuer: main }\n${yaml}`,
  );
  const issuers = new Map<string, Issuer>();
  for (const n of opts.issuers ?? ['main', 'spare']) issuers.set(n, new FakeIssuer(n));
  const api = new FakeSecretApi();
  const events = new FakeEvents();
  const listener = new FakeListener();
  const make = () =>
    new SecretController({
      config,
      // Never used: the SecretApi port is faked and the watch is never started.
      clients: { config: { makeApiClient: () => ({}) } } as unknown as KubeClients,
      issuers,
      events,
      log: pino({ level: 'silent' }),
      metrics: new Metrics({ processMetrics: false }),
      clock,
      listener,
      secrets: api,
      random: () => 0.5,
    });
  return { clock, config, issuers, api, events, listener, controller: make(), make };
}

export function issuer(issuers: Map<string, Issuer>, name: string): FakeIssuer {
  const i = issuers.get(name);
  if (!(i instanceof FakeIssuer)) throw new Error(`no fake issuer ${name}`);
  return i;
}
