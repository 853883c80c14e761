/**
 * cert-rotator as the signer of PodCertificateRequests (KEP-4317), against a real kube-apiserver
 * with the PodCertificateRequest gate and certificates.k8s.io/v1beta1 on. No kubelet yet: the
 * test plays the node's part — a Node object, Pods bound to it, and PCRs for those pods with a
 * real stub PKCS#10 request (or the deprecated public key + proof of possession) that the API
 * server checks as it would the kubelet's. Two controller replicas without leader election race
 * for every request, so each outcome below is also "written exactly once"; they run with the
 * token of the chart's ServiceAccount and only the RBAC `helm template` renders for this config.
 */
import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync, type KeyObject, sign, X509Certificate } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, stringify } from 'yaml';
import type { ControlPlane } from '../../src/devcluster/control-plane.ts';
import { loadKubeConfig } from '../../src/kube/client.ts';
import type { KubeTransport } from '../../src/kube/http/transport.ts';
import { pcrView, type RawPcr } from '../../src/kube/pcr-api.ts';
import { Metric, PodCertificateReason } from '../../src/names.ts';
import { certificatesFromPem, createCsrPem, readCertificateSummary } from '../../src/pki/index.ts';
import {
  type ControllerProcess,
  killAllControllers,
  metricValue,
  startControllerProcess,
  writeConfig,
} from '../testenv/controller-process.ts';
import {
  CHECKED_ELSEWHERE,
  evaluatePanels,
  type Prometheus,
  readDashboard,
  startPrometheus,
} from '../testenv/dashboard.ts';
import { startOwnControlPlane } from '../testenv/env.ts';
import { serviceAccountKubeConfig, testEnv } from '../testenv/kube.ts';
import { waitFor } from '../testenv/net.ts';
import { makeTestCA, type Pair, tlsSecret } from '../testenv/tls-fixtures.ts';

const SIGNER = 'cert-rotator.io/pods';
const SHORT_SIGNER = 'cert-rotator.io/short-lived-ca';
const APPS = 'apps';
const LAB = 'lab';
const OTHER = 'elsewhere';
const ROLE = 'cert-rotator.io/role';
const CHART = new URL('../../charts/cert-rotator', import.meta.url).pathname;
const PCRS = (ns: string) => `/apis/certificates.k8s.io/v1beta1/namespaces/${ns}/podcertificaterequests`;

let plane: ControlPlane;
let kc: k8s.KubeConfig;
let core: k8s.CoreV1Api;
let api: KubeTransport;
let ca: Pair;
let node: { name: string; uid: string };
const replicas: ControllerProcess[] = [];
/** Scrapes both replicas from the start, for the dashboard's Pod Certificate panels. */
let prometheus: Prometheus;
const serviceAccountUids = new Map<string, string>();

type KeyType = 'ECDSAP256' | 'ECDSAP384' | 'ED25519' | 'RSA3072';

function keyPair(type: KeyType): { privateKey: KeyObject; publicKey: KeyObject } {
  switch (type) {
    case 'ECDSAP256':
      return generateKeyPairSync('ec', { namedCurve: 'P-256' });
    case 'ECDSAP384':
      return generateKeyPairSync('ec', { namedCurve: 'P-384' });
    case 'ED25519':
      return generateKeyPairSync('ed25519');
    case 'RSA3072':
      return generateKeyPairSync('rsa', { modulusLength: 3072 });
  }
}

async function serviceAccount(namespace: string, name: string): Promise<string> {
  const key = `${namespace}/${name}`;
  const known = serviceAccountUids.get(key);
  if (known) return known;
  const sa = await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name } } });
  serviceAccountUids.set(key, sa.metadata?.uid ?? '');
  return sa.metadata?.uid ?? '';
}

/** A Pod bound to the test's Node, as the scheduler would leave it. */
async function pod(namespace: string, name: string, sa: string): Promise<{ name: string; uid: string }> {
  await serviceAccount(namespace, sa);
  const created = await core.createNamespacedPod({
    namespace,
    body: {
      metadata: { name },
      spec: {
        nodeName: node.name,
        serviceAccountName: sa,
        automountServiceAccountToken: false,
        containers: [{ name: 'app', image: 'example.invalid/app:1' }],
      },
    },
  });
  return { name, uid: created.metadata?.uid ?? '' };
}

interface PcrRequest {
  namespace: string;
  pod: { name: string; uid: string };
  sa: string;
  signerName?: string;
  keyType?: KeyType;
  annotations?: Record<string, string>;
  maxExpirationSeconds?: number;
  /** The deprecated pkixPublicKey + proofOfPossession instead of the stub request. */
  deprecatedKey?: boolean;
  podUIDOverride?: string;
}

/** Creates a PCR the way the kubelet does; returns its name and the public key it certifies. */
async function createPcr(r: PcrRequest): Promise<{ name: string; spki: Buffer; created: number }> {
  const { privateKey, publicKey } = keyPair(r.keyType ?? 'ECDSAP256');
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const podUID = r.podUIDOverride ?? r.pod.uid;
  let keyFields: Record<string, string>;
  if (r.deprecatedKey) {
    // Ed25519 signs the ASCII pod UID directly, as the API server verifies it.
    const proof = sign(null, Buffer.from(podUID, 'ascii'), privateKey);
    keyFields = { pkixPublicKey: spki.toString('base64'), proofOfPossession: proof.toString('base64') };
  } else {
    const pem = await createCsrPem(privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), {
      dnsNames: [],
      ipAddresses: [],
      uris: [],
    });
    const der = derOfPem(pem);
    keyFields = { stubPKCS10Request: der.toString('base64') };
  }
  const created = Date.now();
  const pcr = await api.request<RawPcr>('POST', PCRS(r.namespace), {
    body: {
      apiVersion: 'certificates.k8s.io/v1beta1',
      kind: 'PodCertificateRequest',
      metadata: { generateName: `${r.pod.name}-` },
      spec: {
        signerName: r.signerName ?? SIGNER,
        podName: r.pod.name,
        podUID,
        serviceAccountName: r.sa,
        serviceAccountUID: serviceAccountUids.get(`${r.namespace}/${r.sa}`),
        nodeName: node.name,
        nodeUID: node.uid,
        maxExpirationSeconds: r.maxExpirationSeconds ?? 86_400,
        ...keyFields,
        ...(r.annotations ? { unverifiedUserAnnotations: r.annotations } : {}),
      },
    },
  });
  return { name: pcr.metadata?.name ?? '', spki, created };
}

/** The DER inside a one-block PEM ("CERTIFICATE REQUEST"): the API takes the stub as DER. */
function derOfPem(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
}

async function readPcr(namespace: string, name: string): Promise<RawPcr> {
  return await api.request<RawPcr>('GET', `${PCRS(namespace)}/${name}`);
}

async function settled(namespace: string, name: string): Promise<RawPcr> {
  return await waitFor(
    `PodCertificateRequest ${namespace}/${name} to be issued or denied`,
    async () => {
      const pcr = await readPcr(namespace, name);
      return (pcr.status?.conditions ?? []).length > 0 ? pcr : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 50 },
  );
}

function condition(pcr: RawPcr): { type: string; reason?: string; message?: string } | undefined {
  return pcr.status?.conditions?.[0];
}

/** Lines of both replicas recording an outcome written for `key` ("namespace/name"). */
function outcomeLines(key: string): Array<Record<string, unknown>> {
  return replicas.flatMap((r) =>
    r.logs.filter(
      (l) => l.podCertificateRequest === key && (l.outcome === 'issued' || l.outcome === 'denied'),
    ),
  );
}

async function expectWrittenOnce(namespace: string, name: string): Promise<void> {
  const key = `${namespace}/${name}`;
  await waitFor(`the outcome of ${key} in a log`, () => (outcomeLines(key).length > 0 ? true : undefined));
  expect(outcomeLines(key), `outcomes written for ${key}`).toHaveLength(1);
}

interface Rendered {
  kind: string;
  metadata: { name: string; namespace?: string };
  rules?: Array<{ apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }>;
  [key: string]: unknown;
}

/** `helm template` of the chart with these values, as objects. */
async function renderChart(dir: string, values: unknown): Promise<Rendered[]> {
  const file = join(dir, `values-${Math.random().toString(36).slice(2)}.yaml`);
  await writeFile(file, stringify(values));
  const stdout = await new Promise<string>((resolve, reject) =>
    execFile(
      testEnv().bins.helm,
      ['template', 'cr', CHART, '--namespace', 'cert-rotator', '-f', file],
      { env: { PATH: process.env.PATH ?? '', HOME: dir }, maxBuffer: 16 << 20 },
      (err, out, stderr) => (err ? reject(new Error(`helm template: ${stderr}`)) : resolve(out)),
    ),
  );
  return parseAllDocuments(stdout)
    .map((d) => d.toJS() as Rendered | null)
    .filter((d): d is Rendered => d !== null);
}

function spiffe(namespace: string, sa: string): string {
  return `spiffe://cluster.local/ns/${namespace}/sa/${sa}`;
}

beforeAll(async () => {
  const own = await startOwnControlPlane('cert-rotator-pcr-', {
    controllerManager: false,
    featureGates: { PodCertificateRequest: true },
    runtimeConfig: ['certificates.k8s.io/v1beta1=true'],
  });
  plane = own.plane;
  kc = own.kubeConfig;
  core = kc.makeApiClient(k8s.CoreV1Api);
  api = loadKubeConfig(plane.kubeconfigPath);
  for (const name of ['cert-rotator', APPS, LAB, OTHER])
    await core.createNamespace({ body: { metadata: { name } } });
  const created = await core.createNode({ body: { metadata: { name: 'node-a' } } });
  node = { name: 'node-a', uid: created.metadata?.uid ?? '' };
  ca = await makeTestCA('pod certificates test CA');
  await core.createNamespacedSecret({ namespace: 'cert-rotator', body: tlsSecret('pods-ca', ca) });
  // A CA with 50 minutes left: less than the API's one-hour minimum for a pod certificate.
  const shortCa = await makeTestCA('short-lived CA', 50 * 60_000);
  await core.createNamespacedSecret({ namespace: 'cert-rotator', body: tlsSecret('short-ca', shortCa) });

  const issuers = [
    {
      name: 'pods',
      ca: { secret: { namespace: 'cert-rotator', name: 'pods-ca' } },
      allowedURIs: [`spiffe://cluster.local/ns/${APPS}/sa/*`],
      allowedDomains: [
        `*.${APPS}.pod.cluster.local`,
        `frontend.${APPS}.svc.cluster.local`,
        `backend.${APPS}.svc.cluster.local`,
      ],
      podCertificates: {
        signerName: SIGNER,
        maxDuration: '2h',
        refreshAt: '70%',
        allow: { namespaces: [APPS, LAB], serviceAccounts: ['web', `${APPS}/api-*`] },
        uris: ['spiffe://cluster.local/ns/{namespace}/sa/{serviceaccount}'],
        dnsNames: [
          '{podname}.{namespace}.pod.cluster.local',
          `{annotation:${ROLE}}.{namespace}.svc.cluster.local`,
        ],
        keyTypes: ['ECDSAP256', 'ED25519', 'RSA3072'],
      },
    },
    {
      name: 'short',
      ca: { secret: { namespace: 'cert-rotator', name: 'short-ca' } },
      podCertificates: {
        signerName: SHORT_SIGNER,
        allow: { namespaces: [APPS] },
        uris: ['spiffe://cluster.local/ns/{namespace}/sa/{serviceaccount}'],
      },
    },
  ];
  const configPath = await writeConfig(own.dir, {
    namespaces: ['cert-rotator'],
    leaderElection: { enabled: false },
    issuers,
  });
  // The chart's ServiceAccount and RBAC for this config, applied as rendered; the replicas run
  // with that ServiceAccount's token, so a grant the signer lacks fails this file.
  const rendered = await renderChart(own.dir, { config: { issuers } });
  const objects = k8s.KubernetesObjectApi.makeApiClient(kc);
  const rbacKinds = ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'];
  for (const o of rendered.filter((x) => rbacKinds.includes(x.kind)))
    await objects.create(o as k8s.KubernetesObject);
  const sa = rendered.find((x) => x.kind === 'ServiceAccount')?.metadata.name ?? '';
  const saKubeconfig = join(own.dir, 'chart-sa.kubeconfig');
  await writeFile(saKubeconfig, (await serviceAccountKubeConfig(kc, 'cert-rotator', sa)).exportConfig());
  for (let i = 0; i < 2; i++)
    replicas.push(
      startControllerProcess({
        configPath,
        kubeconfigPath: saKubeconfig,
        // cert-rotator's own namespace, as the chart's Deployment sets it: the issued record's home.
        env: { POD_NAMESPACE: 'cert-rotator' },
      }),
    );
  // Prometheus starts while the signers do (it waits for its first scrape of both).
  const started = Promise.all(replicas.map(async (r) => new URL(await r.metricsUrl()).host)).then((hosts) =>
    startPrometheus(own.dir, hosts),
  );
  started.catch(() => undefined); // its failure is reported by the await below, not as unhandled
  await Promise.all(
    replicas.map((r) => r.waitForLog('the pod signer', (l) => l.msg === 'pod certificate signer started')),
  );
  prometheus = await started;
}, 180_000);

afterAll(async () => {
  await killAllControllers();
  await prometheus?.stop();
  await plane?.stop();
});

describe('issuing', () => {
  it('issues a chain to the requested key that verifies to the CA, with exactly the templates as names and beginRefreshAt at 70%', async () => {
    const p = await pod(APPS, 'web-0', 'web');
    const { name, spki } = await createPcr({ namespace: APPS, pod: p, sa: 'web' });
    const pcr = await settled(APPS, name);
    expect(condition(pcr)).toMatchObject({
      type: 'Issued',
      status: 'True',
      reason: PodCertificateReason.issued,
    });
    const chain = certificatesFromPem(pcr.status?.certificateChain ?? '');
    expect(chain).toHaveLength(2);
    const leaf = new X509Certificate(Buffer.from(chain[0] as Uint8Array));
    const caCert = new X509Certificate(ca.certPem);
    expect(leaf.checkIssued(caCert)).toBe(true);
    expect(leaf.verify(caCert.publicKey)).toBe(true);
    expect(Buffer.from(chain[1] as Uint8Array).equals(caCert.raw)).toBe(true);
    expect(leaf.publicKey.export({ type: 'spki', format: 'der' }).equals(spki)).toBe(true);
    const s = readCertificateSummary(chain[0] as Uint8Array);
    expect(s.uris).toEqual([spiffe(APPS, 'web')]);
    // The role template names an annotation this pod did not set: that name is left out.
    expect(s.dnsNames).toEqual([`web-0.${APPS}.pod.cluster.local`]);
    expect(s.subjectCommonName).toBeUndefined();
    expect(s.isCA).toBe(false);
    // Status times are the leaf's; the lifetime is maxDuration (2h < maxExpirationSeconds 24h).
    const nb = Date.parse(pcr.status?.notBefore ?? '');
    const na = Date.parse(pcr.status?.notAfter ?? '');
    const refresh = Date.parse(pcr.status?.beginRefreshAt ?? '');
    expect(nb).toBe(s.notBefore);
    expect(na).toBe(s.notAfter);
    expect(na - nb).toBe(2 * 3_600_000);
    expect(refresh - nb).toBe(0.7 * 2 * 3_600_000);
    // Backdated, but within the API's five minutes of now.
    expect(Date.now() - nb).toBeGreaterThan(60_000);
    expect(Date.now() - nb).toBeLessThan(5 * 60_000);
    await expectWrittenOnce(APPS, name);
  });

  it('caps the lifetime to the request maxExpirationSeconds, signs Ed25519 and RSA keys, and reads the deprecated public key with its proof of possession', async () => {
    const p = await pod(APPS, 'api-1', 'api-reader');
    const short = await createPcr({
      namespace: APPS,
      pod: p,
      sa: 'api-reader',
      keyType: 'ED25519',
      maxExpirationSeconds: 3_600,
    });
    const rsa = await createPcr({ namespace: APPS, pod: p, sa: 'api-reader', keyType: 'RSA3072' });
    const old = await createPcr({
      namespace: APPS,
      pod: p,
      sa: 'api-reader',
      keyType: 'ED25519',
      deprecatedKey: true,
    });
    for (const { name, spki } of [short, rsa, old]) {
      const pcr = await settled(APPS, name);
      expect(condition(pcr)?.type, name).toBe('Issued');
      const leaf = new X509Certificate(
        Buffer.from(certificatesFromPem(pcr.status?.certificateChain ?? '')[0] as Uint8Array),
      );
      expect(leaf.publicKey.export({ type: 'spki', format: 'der' }).equals(spki)).toBe(true);
      expect(leaf.subjectAltName).toBe(
        `DNS:api-1.${APPS}.pod.cluster.local, URI:${spiffe(APPS, 'api-reader')}`,
      );
    }
    const capped = await readPcr(APPS, short.name);
    const nb = Date.parse(capped.status?.notBefore ?? '');
    expect(Date.parse(capped.status?.notAfter ?? '') - nb).toBe(3_600_000);
    expect(Date.parse(capped.status?.beginRefreshAt ?? '') - nb).toBe(0.7 * 3_600_000);
    for (const { name } of [short, rsa, old]) await expectWrittenOnce(APPS, name);
  });

  it('puts a known annotation into the name its template gives, and nowhere else', async () => {
    const p = await pod(APPS, 'web-fe', 'web');
    const { name } = await createPcr({
      namespace: APPS,
      pod: p,
      sa: 'web',
      annotations: { [ROLE]: 'frontend' },
    });
    const pcr = await settled(APPS, name);
    expect(condition(pcr)?.type).toBe('Issued');
    const s = readCertificateSummary(
      certificatesFromPem(pcr.status?.certificateChain ?? '')[0] as Uint8Array,
    );
    expect(s.dnsNames).toEqual([`web-fe.${APPS}.pod.cluster.local`, `frontend.${APPS}.svc.cluster.local`]);
    expect(s.uris).toEqual([spiffe(APPS, 'web')]);
  });
});

describe('denials (the rule in the message, written once)', () => {
  const denied = async (r: PcrRequest, reason: string, message: RegExp) => {
    const { name } = await createPcr(r);
    const pcr = await settled(r.namespace, name);
    expect(condition(pcr)).toMatchObject({ type: 'Denied', status: 'True', reason });
    expect(condition(pcr)?.message).toMatch(message);
    expect(pcr.status?.certificateChain).toBeUndefined();
    await expectWrittenOnce(r.namespace, name);
  };

  it('a namespace the block does not allow', async () => {
    const p = await pod(OTHER, 'web-0', 'web');
    await denied(
      { namespace: OTHER, pod: p, sa: 'web' },
      PodCertificateReason.namespaceNotAllowed,
      /namespace "elsewhere" is not allowed \(podCertificates\.allow\.namespaces: apps, lab\)/,
    );
  });

  it('a ServiceAccount the block does not allow', async () => {
    const p = await pod(APPS, 'batch-0', 'batch');
    await denied(
      { namespace: APPS, pod: p, sa: 'batch' },
      PodCertificateReason.serviceAccountNotAllowed,
      /ServiceAccount apps\/batch is not allowed \(podCertificates\.allow\.serviceAccounts: web, apps\/api-\*\)/,
    );
  });

  it("an identity the issuer's allow-lists refuse (a namespace the block allows, names the issuer does not)", async () => {
    const p = await pod(LAB, 'web-0', 'web');
    await denied(
      { namespace: LAB, pod: p, sa: 'web' },
      PodCertificateReason.identityNotAllowed,
      /issuer "pods" does not allow "web-0\.lab\.pod\.cluster\.local" \(allowedDomains: /,
    );
  });

  it('a key type the issuer does not sign, naming the ones it does', async () => {
    const p = await pod(APPS, 'web-p384', 'web');
    await denied(
      { namespace: APPS, pod: p, sa: 'web', keyType: 'ECDSAP384' },
      PodCertificateReason.unsupportedKeyType,
      /key type ECDSAP384 is not signed here \(supported key types: ECDSAP256, ED25519, RSA3072\)/,
    );
  });

  it('an unverifiedUserAnnotations key no template names', async () => {
    const p = await pod(APPS, 'web-ann', 'web');
    await denied(
      { namespace: APPS, pod: p, sa: 'web', annotations: { 'example.com/tenant': 'blue' } },
      PodCertificateReason.invalidUserAnnotations,
      /key "example\.com\/tenant" is not understood \(known: cert-rotator\.io\/role\)/,
    );
  });

  it('a known annotation cannot widen the identity: not past the allow-lists, not with dots or wildcards', async () => {
    const p = await pod(APPS, 'web-wide', 'web');
    await denied(
      { namespace: APPS, pod: p, sa: 'web', annotations: { [ROLE]: 'admin' } },
      PodCertificateReason.identityNotAllowed,
      /does not allow "admin\.apps\.svc\.cluster\.local"/,
    );
    for (const value of ['frontend.other', '*', 'backend.apps.svc.cluster.local/x']) {
      await denied(
        { namespace: APPS, pod: p, sa: 'web', annotations: { [ROLE]: value } },
        PodCertificateReason.invalidUserAnnotations,
        /must be one DNS label/,
      );
    }
  });
});

describe('left pending, never Failed', () => {
  it('a CA with less than an hour left: pending, with a log line saying the CA must be rotated', async () => {
    const p = await pod(APPS, 'web-short', 'web');
    const { name } = await createPcr({ namespace: APPS, pod: p, sa: 'web', signerName: SHORT_SIGNER });
    const key = `${APPS}/${name}`;
    const line = await replicas[0]?.waitForLog(
      'the pending line',
      (l) => l.podCertificateRequest === key && l.outcome === 'pending',
    );
    expect(line?.msg).toMatch(
      /must live at least 1h, but the CA certificate expiry leaves \d+s; rotate the CA of issuer "short"/,
    );
    const pcr = await readPcr(APPS, name);
    expect(pcr.status?.conditions ?? []).toEqual([]);
    const url = await replicas[0]?.metricsUrl();
    expect(
      await metricValue(url ?? '', Metric.podCertificateRequestsTotal, {
        signer: SHORT_SIGNER,
        result: 'pending',
      }),
    ).toBeGreaterThanOrEqual(1);
  });

  it('a request that does not describe its pod (another pod UID) is left alone', async () => {
    const p = await pod(APPS, 'web-forged', 'web');
    const { name } = await createPcr({
      namespace: APPS,
      pod: p,
      sa: 'web',
      podUIDOverride: '00000000-0000-4000-8000-000000000000',
    });
    const key = `${APPS}/${name}`;
    const line = await replicas[1]?.waitForLog('the mismatch line', (l) => l.podCertificateRequest === key);
    expect(line?.msg).toBe(`PodCertificateRequest left pending: pod ${APPS}/web-forged has another UID`);
    expect((await readPcr(APPS, name)).status?.conditions ?? []).toEqual([]);
  });
});

describe('two replicas racing on a burst', () => {
  it('20 PCRs at once: every one issued, and the signings counted across both replicas equal 20', async () => {
    const metricSum = async (result: string) => {
      let sum = 0;
      for (const r of replicas)
        sum +=
          (await metricValue(await r.metricsUrl(), Metric.podCertificateRequestsTotal, {
            signer: SIGNER,
            result,
          })) ?? 0;
      return sum;
    };
    const issuedBefore = await metricSum('issued');
    const pods = await Promise.all(Array.from({ length: 20 }, (_, i) => pod(APPS, `burst-${i}`, 'web')));
    const before = await apiServerRequests();
    const t0 = Date.now();
    const created = await Promise.all(pods.map((p) => createPcr({ namespace: APPS, pod: p, sa: 'web' })));
    const issuedAt = new Map<string, number>();
    await waitFor(
      'all 20 PCRs to be issued',
      async () => {
        const list = await api.request<{ items: RawPcr[] }>('GET', PCRS(APPS));
        for (const item of list.items) {
          const v = pcrView(item);
          if (v.certificateChain && !issuedAt.has(v.name)) issuedAt.set(v.name, Date.now());
        }
        return created.every((c) => issuedAt.has(c.name)) ? true : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 25 },
    );
    const burstMs = Date.now() - t0;
    for (const c of created) await expectWrittenOnce(APPS, c.name);
    await waitFor('the metrics to count 20 more', async () =>
      (await metricSum('issued')) - issuedBefore === 20 ? true : undefined,
    );
    const after = await apiServerRequests();
    // The record of what was issued: this CA's entry covers the latest leaf (rounded up to 5 minutes).
    const leaves = await Promise.all(
      created.map(async (c) => Date.parse((await readPcr(APPS, c.name)).status?.notAfter ?? '')),
    );
    const record = await core.readNamespacedConfigMap({
      namespace: 'cert-rotator',
      name: 'cert-rotator-pod-certificates-issued',
    });
    const caSha = createHash('sha256').update(new X509Certificate(ca.certPem).raw).digest('hex');
    expect(Object.keys(record.data ?? {})).toEqual([caSha]); // the short-lived CA issued nothing
    const entry = JSON.parse(record.data?.[caSha] ?? '{}') as { issuer: string; lastLeafNotAfter: string };
    expect(entry.issuer).toBe('pods');
    const recorded = Date.parse(entry.lastLeafNotAfter);
    expect(recorded).toBeGreaterThanOrEqual(Math.max(...leaves));
    expect(recorded - Math.max(...leaves)).toBeLessThanOrEqual(5 * 60_000);
    const latencies = created.map((c) => (issuedAt.get(c.name) ?? 0) - c.created).sort((a, b) => a - b);
    const pct = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
    console.log(
      `[figures] 20-PCR burst, two racing replicas: all issued in ${burstMs} ms; created→issued p50 ${pct(0.5)} ms, p90 ${pct(0.9)} ms; signer API requests per PCR ${((after - before) / 20).toFixed(2)} (both replicas)`,
    );
  });
});

describe("the dashboard's Pod Certificate panels against a real Prometheus", () => {
  it('every panel dashboard.test.ts leaves to this file returns data, scraped from both replicas through the run', async () => {
    const titles = [...CHECKED_ELSEWHERE].filter(([, where]) => where === 'pod-certificates.test.ts');
    expect(titles.length).toBeGreaterThan(0);
    // Held until Prometheus has five scrapes of every signing so far (the burst's included).
    let issued = 0;
    for (const r of replicas)
      issued +=
        (await metricValue(await r.metricsUrl(), Metric.podCertificateRequestsTotal, {
          signer: SIGNER,
          result: 'issued',
        })) ?? 0;
    await waitFor(
      `Prometheus to hold 5 scrapes of ${issued} issued`,
      async () =>
        (
          await prometheus.instant(
            `min_over_time(sum(cert_rotator_podcertificate_requests_total{signer="${SIGNER}", result="issued"})[5s:1s]) >= ${issued}`,
          )
        ).length === 1
          ? true
          : undefined,
      { timeoutMs: 60_000 },
    );
    const dashboard = await readDashboard();
    const wanted = new Set(titles.map(([t]) => t));
    const r = await evaluatePanels(prometheus, dashboard, { select: (p) => wanted.has(p.title) });
    expect(r.failures).toEqual([]);
    const queries = dashboard.panels
      .filter((p) => wanted.has(p.title))
      .reduce((n, p) => n + (p.targets?.length ?? 0), 0);
    expect(r.checked).toBe(queries);
    expect(queries).toBeGreaterThanOrEqual(wanted.size);
    console.log(`[dashboard] ${wanted.size} Pod Certificate panels, ${r.checked} queries: all returned data`);
  });
});

/**
 * The API server's count of the requests only the signers make (GET of pods, ServiceAccounts and
 * single PCRs, PUT of PCR status): the test itself lists, creates and watches.
 */
async function apiServerRequests(): Promise<number> {
  const text = await api.request<string>('GET', '/metrics');
  let sum = 0;
  for (const line of String(text).split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    const verb = /verb="([A-Z]+)"/.exec(line)?.[1];
    const resource = /resource="([a-z]+)"/.exec(line)?.[1];
    const counted =
      (verb === 'GET' &&
        (resource === 'pods' || resource === 'serviceaccounts' || resource === 'podcertificaterequests')) ||
      (verb === 'PUT' && resource === 'podcertificaterequests');
    if (counted) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

describe('the chart grants the pod certificate signer only when the config has one', () => {
  const ca = { secret: { namespace: 'cert-rotator', name: 'ca' } };
  const podRole = (objects: Rendered[]) =>
    objects.find((o) => o.kind === 'ClusterRole' && o.metadata.name === 'cr-cert-rotator-pod-certificates');

  it('no podCertificates block: no ClusterRole for it, and no binding', async () => {
    const objects = await renderChart(join(plane.kubeconfigPath, '..'), {
      config: { issuers: [{ name: 'plain', ca, signer: {} }] },
    });
    expect(podRole(objects)).toBeUndefined();
    expect(objects.filter((o) => o.metadata.name.endsWith('-pod-certificates'))).toEqual([]);
  });

  it('with blocks: sign on exactly their signer names (the default one too), PCRs read and status written, pods read', async () => {
    const objects = await renderChart(join(plane.kubeconfigPath, '..'), {
      config: {
        issuers: [
          {
            name: 'a',
            ca,
            podCertificates: {
              signerName: 'example.com/a',
              allow: { namespaces: ['x'] },
              uris: ['spiffe://td/{namespace}'],
            },
          },
          { name: 'b', ca, podCertificates: { allow: { namespaces: ['x'] }, dnsNames: ['{podname}.x'] } },
        ],
      },
    });
    expect(podRole(objects)?.rules).toEqual([
      {
        apiGroups: ['certificates.k8s.io'],
        resources: ['podcertificaterequests'],
        verbs: ['get', 'list', 'watch'],
      },
      { apiGroups: ['certificates.k8s.io'], resources: ['podcertificaterequests/status'], verbs: ['update'] },
      {
        apiGroups: ['certificates.k8s.io'],
        resources: ['signers'],
        resourceNames: ['example.com/a', 'cert-rotator.io/b-pods'],
        verbs: ['sign'],
      },
      { apiGroups: [''], resources: ['pods'], verbs: ['get'] },
    ]);
    const binding = objects.find(
      (o) => o.kind === 'ClusterRoleBinding' && o.metadata.name === 'cr-cert-rotator-pod-certificates',
    );
    const record = objects.find(
      (o) => o.kind === 'Role' && o.metadata.name === 'cr-cert-rotator-pod-certificates-record',
    );
    expect(record?.metadata.namespace).toBe('cert-rotator');
    expect(record?.rules).toEqual([
      { apiGroups: [''], resources: ['configmaps'], verbs: ['create'] },
      {
        apiGroups: [''],
        resources: ['configmaps'],
        resourceNames: ['cert-rotator-pod-certificates-issued'],
        verbs: ['get', 'update'],
      },
    ]);
    expect(binding?.subjects).toEqual([
      { kind: 'ServiceAccount', name: 'cr-cert-rotator', namespace: 'cert-rotator' },
    ]);
  });

  it('a template with {serviceaccountuid}: ServiceAccounts are read too', async () => {
    const objects = await renderChart(join(plane.kubeconfigPath, '..'), {
      config: {
        issuers: [
          {
            name: 'a',
            ca,
            podCertificates: { allow: { namespaces: ['x'] }, uris: ['spiffe://td/sa/{serviceaccountuid}'] },
          },
        ],
      },
    });
    expect(podRole(objects)?.rules?.at(-1)).toEqual({
      apiGroups: [''],
      resources: ['serviceaccounts'],
      verbs: ['get'],
    });
  });
});
