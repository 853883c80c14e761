/**
 * The PodCertificateRequest reconciler's decisions about writing, with a fake API (an in-memory
 * store with resourceVersions and the API server's 409) and a real CA: leader only, once, never
 * Failed, conflicts left to the winner. The real API server is in
 * test/integration/pod-certificates.test.ts.
 */
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.ts';
import type { IssuerConfig, PodCertificatesConfig } from '../../src/config/schema.ts';
import type { KubeTransport } from '../../src/kube/http/transport.ts';
import type { PcrOutcome, PcrWriteResult, PodFacts, RawPcr } from '../../src/kube/pcr-api.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { createCsrPem, issueCertificate } from '../../src/pki/index.ts';
import {
  type PcrPort,
  type PodCertificateEntry,
  type PodCertificateResultValue,
  PodCertificateSigner,
} from '../../src/signer/pod-certificates.ts';

const issuer = loadConfig(`
issuers:
  - name: pods
    ca: { secret: { namespace: cr, name: ca } }
    podCertificates:
      signerName: example.com/pods
      allow: { namespaces: [apps] }
      uris: ["spiffe://td/ns/{namespace}/sa/{serviceaccount}"]
`).issuers[0] as IssuerConfig & { kind: 'ca'; podCertificates: PodCertificatesConfig };

/** Fake API server: one store, resourceVersions, 409 on a stale write, 422 on a final status. */
class FakePcrApi implements PcrPort {
  readonly store = new Map<string, RawPcr>();
  readonly writes: PcrOutcome[] = [];
  failReads = 0;
  pods = new Map<string, PodFacts>();
  private rv = 1;

  put(raw: RawPcr): void {
    raw.metadata = { ...raw.metadata, resourceVersion: String(this.rv++) };
    this.store.set(`${raw.metadata.namespace}/${raw.metadata.name}`, raw);
  }
  async getRaw(namespace: string, name: string): Promise<RawPcr | undefined> {
    if (this.failReads > 0) {
      this.failReads--;
      throw new Error('read PodCertificateRequest: connection reset');
    }
    const raw = this.store.get(`${namespace}/${name}`);
    return raw && structuredClone(raw);
  }
  async writeStatus(raw: RawPcr, outcome: PcrOutcome): Promise<PcrWriteResult> {
    const key = `${raw.metadata?.namespace}/${raw.metadata?.name}`;
    const current = this.store.get(key);
    if (!current) return 'gone';
    if (current.metadata?.resourceVersion !== raw.metadata?.resourceVersion) return 'conflict';
    if ((current.status?.conditions ?? []).length > 0) throw new Error('422: status is immutable');
    this.writes.push(outcome);
    this.put({
      ...current,
      status:
        'issued' in outcome
          ? {
              conditions: [{ type: 'Issued', status: 'True' }],
              certificateChain: outcome.issued.certificateChain,
            }
          : { conditions: [{ type: 'Denied', status: 'True', reason: outcome.denied.reason }] },
    });
    return 'written';
  }
  async pod(namespace: string, name: string): Promise<PodFacts | undefined> {
    return this.pods.get(`${namespace}/${name}`);
  }
  async serviceAccountUid(): Promise<string | undefined> {
    return 'sa-uid';
  }
}

async function caEntry(): Promise<PodCertificateEntry & { signings: () => number }> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const now = Date.now();
  const ca = await issueCertificate({
    subjectKeyPem: keyPem,
    identity: { commonName: 'unit CA', dnsNames: [], ipAddresses: [], uris: [] },
    notBefore: now - 60_000,
    notAfter: now + 86_400_000 * 30,
    issuer: 'self',
    isCA: true,
  });
  let signings = 0;
  return {
    issuer,
    config: issuer.podCertificates,
    signings: () => signings,
    ca: {
      caCertificate: async () => ({ sha256: 'ca-sha', notAfter: now + 86_400_000 * 30 }),
      signPublicKey: async (input) => {
        signings++;
        const issued = await issueCertificate({
          subjectSpki: input.spki,
          identity: input.identity,
          usages: input.usages,
          notBefore: input.validity?.notBefore ?? input.now,
          notAfter: input.validity?.notAfter ?? input.now + input.durationMs,
          issuer: { certPem: ca.certPem, keyPem },
        });
        return { chainPem: issued.chainPem, notAfter: input.validity?.notAfter ?? 0, caSha256: 'ca-sha' };
      },
    },
  };
}

async function request(api: FakePcrApi, name: string): Promise<string> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = await createCsrPem(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), {
    dnsNames: [],
    ipAddresses: [],
    uris: [],
  });
  const der = Buffer.from(pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
  api.pods.set(`apps/${name}-pod`, { uid: `${name}-uid`, serviceAccountName: 'web', nodeName: 'n1' });
  api.put({
    metadata: { namespace: 'apps', name, uid: `pcr-${name}`, creationTimestamp: new Date().toISOString() },
    spec: {
      signerName: 'example.com/pods',
      podName: `${name}-pod`,
      podUID: `${name}-uid`,
      serviceAccountName: 'web',
      serviceAccountUID: 'sa-uid',
      nodeName: 'n1',
      nodeUID: 'n1-uid',
      maxExpirationSeconds: 86_400,
      stubPKCS10Request: der.toString('base64'),
    },
  });
  return `apps/${name}`;
}

const noTransport: KubeTransport = {
  request: async () => {
    throw new Error('not in this test');
  },
  watch: async () => {
    throw new Error('not in this test');
  },
};

function signer(api: FakePcrApi, entry: PodCertificateEntry, isLeader?: () => boolean) {
  const results: PodCertificateResultValue[] = [];
  const s = new PodCertificateSigner({
    transport: noTransport,
    api,
    entries: [entry],
    log: createLogger({ level: 'silent' }),
    onResult: (_, r) => results.push(r),
    ...(isLeader ? { isLeader } : {}),
  });
  return { s, results };
}

describe('the pod certificate reconciler', () => {
  it('a standby does nothing; the leader issues once; a second look leaves the issued request alone', async () => {
    const api = new FakePcrApi();
    const entry = await caEntry();
    const key = await request(api, 'a');
    let leader = false;
    const { s, results } = signer(api, entry, () => leader);
    expect(await s.reconcile(key)).toBeUndefined();
    expect(api.writes).toEqual([]);
    leader = true;
    await s.reconcile(key);
    await s.reconcile(key);
    expect(api.writes).toHaveLength(1);
    expect(entry.signings()).toBe(1);
    expect(results).toEqual(['issued']);
  });

  it('two replicas deciding on the same version: one writes, the other sees the conflict and stops', async () => {
    const api = new FakePcrApi();
    const entry = await caEntry();
    const key = await request(api, 'b');
    const one = signer(api, entry);
    const two = signer(api, entry);
    // Both read the same resourceVersion before either writes.
    const [r1, r2] = await Promise.all([one.s.reconcile(key), two.s.reconcile(key)]);
    expect([r1, r2]).toEqual([undefined, undefined]);
    expect(api.writes).toHaveLength(1);
    expect([...one.results, ...two.results].sort()).toEqual(['conflict', 'issued']);
  });

  it('a transient read error throws (the queue retries); nothing is written, least of all Failed', async () => {
    const api = new FakePcrApi();
    const entry = await caEntry();
    const key = await request(api, 'c');
    api.failReads = 1;
    const { s } = signer(api, entry);
    await expect(s.reconcile(key)).rejects.toThrow(/connection reset/);
    expect(api.writes).toEqual([]);
    await s.reconcile(key);
    expect(api.writes.map((w) => Object.keys(w)[0])).toEqual(['issued']);
  });

  it('a request whose pod differs is left without a status', async () => {
    const api = new FakePcrApi();
    const entry = await caEntry();
    const key = await request(api, 'd');
    api.pods.set('apps/d-pod', { uid: 'd-uid', serviceAccountName: 'admin', nodeName: 'n1' });
    const { s, results } = signer(api, entry);
    await s.reconcile(key);
    expect(api.writes).toEqual([]);
    expect(results).toEqual([]);
    expect(entry.signings()).toBe(0);
  });
});
