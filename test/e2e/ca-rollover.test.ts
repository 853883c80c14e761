/**
 * A CA rollover on the node, counted handshake by handshake (issue 20). Two Deployments talk
 * mutual TLS to each other through their Services without pause, each verifying its peer against
 * the ca.crt it holds: "alpha" (two replicas) mounts its Secret and reloads only when the chart's
 * controller rolls it; "beta" (opted out of restarts) gets its files from the cert-rotator
 * sidecar, which signals the application on every change. Each application's client logs one
 * JSON line per handshake; the test follows every app container's log, and attributes each
 * handshake to the phase the CA Secret was in (polled while it runs). A staged rollover must
 * leave no failed handshake in any phase; the same pair of Deployments under a second issuer with
 * the rollover off, its CA overwritten in place (a flag day), must fail handshakes: the control
 * that shows the counting can fail.
 */
import { X509Certificate } from 'node:crypto';
import type { ClientRequest } from 'node:http';
import { get as httpsGet, type RequestOptions } from 'node:https';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { generateKey, issueCertificate } from '../../src/pki/index.ts';
import { waitFor } from '../testenv/net.ts';
import { describeOnNode, execInPod, useNode, useNodeNamespace } from '../testenv/node.ts';
import {
  helmOnNode,
  IMAGE_NODE,
  installChart,
  podsBySelector,
  productImage,
  RESTRICTED,
  secretReaderAccount,
  serialOf,
  servedSerial,
  sidecarContainer,
  waitForReadyPods,
} from '../testenv/product.ts';
import { decoded, makeTestCA, type Pair } from '../testenv/tls-fixtures.ts';

const A = 'cert-rotator.io/';
const STATUS = 'status.cert-rotator.io/';
const RELEASE = 'crr';
const CONTROLLER = `app.kubernetes.io/instance=${RELEASE},app.kubernetes.io/name=cert-rotator`;
const DAY = 86_400_000;
/** Handshakes each direction must see in every phase (each client tries about 20 a second). */
const MIN_PER_PHASE = 10;
const PORT = 8443;
const PHASES = ['before', 'Trust', 'Propagate', 'Reissue', 'Retire', 'after'] as const;

/**
 * The application of both Deployments, in the image's node: a TLS server on PORT that asks for
 * and verifies a client certificate against DIR/ca.crt, and a client that connects to PEER_IP
 * every 40 ms with DIR's certificate, verifying the server (chain to ca.crt, IP SAN) the same way,
 * and prints one JSON line per handshake. The files are read at start; with RELOAD=hup again on
 * SIGHUP (the process is called `webapp` for the sidecar's --process).
 */
const APP_SCRIPT = `
const fs = require('node:fs'), tls = require('node:tls');
const { TLS_DIR: dir, PEER_IP: peer, SELF: self, POD_NAME: pod } = process.env;
const read = () => ({ cert: fs.readFileSync(dir + '/tls.crt'), key: fs.readFileSync(dir + '/tls.key'), ca: fs.readFileSync(dir + '/ca.crt') });
let files = read();
const server = tls.createServer({ ...files, requestCert: true, rejectUnauthorized: true }, (s) => s.end('ok'));
server.on('tlsClientError', () => {});
server.listen(${PORT});
if (process.env.RELOAD === 'hup') {
  process.title = 'webapp';
  process.on('SIGHUP', () => { files = read(); server.setSecureContext(files); console.log(JSON.stringify({ reloaded: Date.now(), pod })); });
}
const once = () => new Promise((resolve) => {
  let done = false;
  const s = tls.connect({ host: peer, port: ${PORT}, ...files, timeout: 3000 });
  const end = (err) => { if (done) return; done = true; s.destroy(); resolve(err); };
  // With TLS 1.3 the server judges the client's certificate after the client's handshake ends:
  // its answer, not secureConnect, says the server accepted.
  s.once('data', () => end(undefined));
  s.once('error', (e) => end((e.code ? e.code + ': ' : '') + e.message));
  s.once('end', () => end('closed without an answer'));
  s.once('timeout', () => end('no answer within 3 s'));
});
(async () => {
  for (;;) {
    const t = Date.now();
    const err = await once();
    console.log(JSON.stringify({ from: self, pod, t, ...(err === undefined ? {} : { err }) }));
    await new Promise((r) => setTimeout(r, 40));
  }
})();
`;

interface Handshake {
  /** The client's Deployment. */
  from: string;
  pod: string;
  /** When the client began the handshake (ms, the node's clock: the same as the test's). */
  t: number;
  err?: string;
}

/**
 * Follows the `app` container's log of every pod with label role=mtls, from the container's start
 * (pods/log?follow=true through the API server, as `kubectl logs -f`): a rolled pod's lines are
 * kept after the pod is gone.
 */
class HandshakeLog {
  readonly handshakes: Handshake[] = [];
  readonly streamErrors: string[] = [];
  readonly #kc: k8s.KubeConfig;
  readonly #core: k8s.CoreV1Api;
  readonly #namespace: string;
  readonly #followed = new Map<string, ClientRequest | undefined>();
  readonly #timer: ReturnType<typeof setInterval>;
  #sweeping = false;
  #stopped = false;

  constructor(kc: k8s.KubeConfig, core: k8s.CoreV1Api, namespace: string) {
    this.#kc = kc;
    this.#core = core;
    this.#namespace = namespace;
    this.#timer = setInterval(() => void this.#sweep(), 250);
  }

  async #sweep(): Promise<void> {
    if (this.#sweeping) return;
    this.#sweeping = true;
    try {
      for (const pod of await podsBySelector(this.#core, this.#namespace, 'role=mtls')) {
        const name = pod.metadata?.name ?? '';
        const app = pod.status?.containerStatuses?.find((c) => c.name === 'app');
        if (this.#followed.has(name) || !(app?.state?.running || app?.state?.terminated)) continue;
        this.#followed.set(name, undefined);
        await this.#follow(name);
      }
    } catch {
      // The next sweep lists again.
    } finally {
      this.#sweeping = false;
    }
  }

  async #follow(pod: string): Promise<void> {
    const server = this.#kc.getCurrentCluster()?.server ?? '';
    const url = new URL(
      `${server}/api/v1/namespaces/${this.#namespace}/pods/${pod}/log?container=app&follow=true`,
    );
    const opts: RequestOptions = {};
    await this.#kc.applyToHTTPSOptions(opts);
    const failed = (why: string) => {
      if (!this.#stopped) this.streamErrors.push(`${pod}: ${why}`);
    };
    const req = httpsGet(url, opts, (res) => {
      if (res.statusCode !== 200) {
        failed(`pods/log answered ${res.statusCode}`);
        res.resume();
        return;
      }
      let rest = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        const lines = (rest + chunk).split('\n');
        rest = lines.pop() ?? '';
        for (const line of lines) this.#take(line);
      });
      res.on('error', (err) => failed(err.message));
    });
    req.on('error', (err) => failed(err.message));
    this.#followed.set(pod, req);
  }

  #take(line: string): void {
    if (!line.startsWith('{')) return;
    const h = JSON.parse(line) as Partial<Handshake>;
    if (typeof h.from === 'string' && typeof h.t === 'number') this.handshakes.push(h as Handshake);
  }

  /** Successful handshakes with `from` as the client since `t0`. */
  okSince(from: string, t0: number): number {
    return this.handshakes.filter((h) => h.from === from && h.t >= t0 && h.err === undefined).length;
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    for (const req of this.#followed.values()) req?.destroy();
  }
}

interface Tally {
  attempted: number;
  failed: number;
  errors: Set<string>;
}

/** Counts handshakes by label and client, the label given by the handshake's time. */
function tally(hs: readonly Handshake[], label: (t: number) => string | undefined): Map<string, Tally> {
  const out = new Map<string, Tally>();
  for (const h of hs) {
    const l = label(h.t);
    if (l === undefined) continue;
    const key = `${l} ${h.from}`;
    const c = out.get(key) ?? { attempted: 0, failed: 0, errors: new Set<string>() };
    c.attempted++;
    if (h.err !== undefined) {
      c.failed++;
      c.errors.add(`${h.pod}: ${h.err}`);
    }
    out.set(key, c);
  }
  return out;
}

/** A leaf for a Service: its ClusterIP as the only SAN (what the peer's client checks). */
async function serviceLeaf(ca: Pair, name: string, ip: string): Promise<Pair> {
  const key = await generateKey('ecdsa-p256');
  const now = Date.now();
  const leaf = await issueCertificate({
    subjectKeyPem: key.privateKeyPem,
    identity: { commonName: name, dnsNames: [], ipAddresses: [ip], uris: [] },
    notBefore: now - 60_000,
    notAfter: now + 30 * DAY,
    issuer: ca,
  });
  return { certPem: leaf.certPem, keyPem: key.privateKeyPem };
}

/** Was the first certificate of `leafPem` signed by the CA certificate `caPem`? */
function signedBy(leafPem: string, caPem: string): boolean {
  const leaf = new X509Certificate(leafPem);
  const ca = new X509Certificate(caPem);
  return leaf.issuer === ca.subject && leaf.verify(ca.publicKey);
}

/** The certificates of a PEM bundle, as X509Certificate. */
function bundle(pem: string): X509Certificate[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map(
    (p) => new X509Certificate(p),
  );
}

const mergePatch = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);

describeOnNode(
  'a CA rollover on the node: mutual TLS between two Deployments, every handshake counted',
  () => {
    const node = useNode();
    const ns = useNodeNamespace(import.meta.url, node);
    let helm: Awaited<ReturnType<typeof helmOnNode>> | undefined;
    let log: HandshakeLog | undefined;
    const cas = new Map<string, Pair>();
    const started = Date.now();

    /** The Deployment that reloads by rollout: two replicas, never fewer than two Ready. */
    function alpha(name: string, image: string, peerIp: string): k8s.V1Deployment {
      return {
        metadata: { name },
        spec: {
          replicas: 2,
          strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
          selector: { matchLabels: { app: name } },
          template: {
            metadata: { labels: { app: name, role: 'mtls' } },
            spec: {
              // A terminating pod serves on until kube-proxy has taken it out of the Service.
              terminationGracePeriodSeconds: 10,
              automountServiceAccountToken: false,
              enableServiceLinks: false,
              containers: [
                {
                  name: 'app',
                  image,
                  imagePullPolicy: 'Never',
                  command: [IMAGE_NODE, '-e', APP_SCRIPT],
                  env: [
                    { name: 'TLS_DIR', value: '/tls' },
                    { name: 'PEER_IP', value: peerIp },
                    { name: 'SELF', value: name },
                    { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                  ],
                  ports: [{ containerPort: PORT }],
                  readinessProbe: { tcpSocket: { port: PORT }, periodSeconds: 1 },
                  lifecycle: { preStop: { sleep: { seconds: 3 } } },
                  securityContext: RESTRICTED,
                  volumeMounts: [{ name: 'tls', mountPath: '/tls', readOnly: true }],
                },
              ],
              volumes: [{ name: 'tls', secret: { secretName: `${name}-tls` } }],
            },
          },
        },
      };
    }

    /** The Deployment that reloads through the sidecar: never rolled by the controller. */
    function beta(name: string, image: string, peerIp: string): k8s.V1Deployment {
      return {
        metadata: { name, annotations: { [`${A}restart`]: 'false' } },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: name } },
          template: {
            metadata: { labels: { app: name, role: 'mtls' } },
            spec: {
              serviceAccountName: 'beta',
              shareProcessNamespace: true,
              terminationGracePeriodSeconds: 1,
              enableServiceLinks: false,
              volumes: [{ name: 'certs', emptyDir: { medium: 'Memory', sizeLimit: '1Mi' } }],
              initContainers: [sidecarContainer(image, ['--secret', `${name}-tls`])],
              containers: [
                {
                  name: 'app',
                  image,
                  imagePullPolicy: 'Never',
                  command: [IMAGE_NODE, '-e', APP_SCRIPT],
                  env: [
                    { name: 'TLS_DIR', value: '/certs' },
                    { name: 'PEER_IP', value: peerIp },
                    { name: 'SELF', value: name },
                    { name: 'RELOAD', value: 'hup' },
                    { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                  ],
                  ports: [{ containerPort: PORT }],
                  readinessProbe: { tcpSocket: { port: PORT }, periodSeconds: 1 },
                  securityContext: RESTRICTED,
                  volumeMounts: [{ name: 'certs', mountPath: '/certs', readOnly: true }],
                },
              ],
            },
          },
        },
      };
    }

    /** Services, leaves (from `issuer`'s CA, ca.crt included) and Deployments of one alpha/beta pair. */
    async function pair(prefix: string, issuer: string, ca: Pair, image: string): Promise<void> {
      const { core, kc } = node();
      const apps = kc.makeApiClient(k8s.AppsV1Api);
      const ip: Record<string, string> = {};
      for (const side of ['alpha', 'beta']) {
        const name = `${prefix}${side}`;
        const svc = await core.createNamespacedService({
          namespace: ns(),
          body: {
            metadata: { name },
            spec: { selector: { app: name }, ports: [{ port: PORT, targetPort: PORT }] },
          },
        });
        ip[side] = svc.spec?.clusterIP ?? '';
        const leaf = await serviceLeaf(ca, name, ip[side]);
        await core.createNamespacedSecret({
          namespace: ns(),
          body: {
            metadata: {
              name: `${name}-tls`,
              annotations: { [`${A}enabled`]: 'true', [`${A}issuer`]: issuer },
            },
            type: 'kubernetes.io/tls',
            data: {
              'tls.crt': Buffer.from(leaf.certPem).toString('base64'),
              'tls.key': Buffer.from(leaf.keyPem).toString('base64'),
              'ca.crt': Buffer.from(ca.certPem).toString('base64'),
            },
          },
        });
      }
      await apps.createNamespacedDeployment({
        namespace: ns(),
        body: alpha(`${prefix}alpha`, image, ip.beta ?? ''),
      });
      await apps.createNamespacedDeployment({
        namespace: ns(),
        body: beta(`${prefix}beta`, image, ip.alpha ?? ''),
      });
    }

    async function caSecret(name: string, pair: Pair): Promise<void> {
      await node().core.createNamespacedSecret({
        namespace: ns(),
        body: {
          metadata: { name },
          type: 'kubernetes.io/tls',
          data: {
            'tls.crt': Buffer.from(pair.certPem).toString('base64'),
            'tls.key': Buffer.from(pair.keyPem).toString('base64'),
          },
        },
      });
    }

    beforeAll(async () => {
      const { core, kc, info } = node();
      const img = await productImage();
      helm = await helmOnNode(info);
      const [rolling, flag] = await Promise.all([
        makeTestCA('e2e rollover CA 1'),
        makeTestCA('e2e flag-day CA 1'),
      ]);
      cas.set('rolling', rolling);
      cas.set('flag', flag);
      await caSecret('rolling-ca', rolling);
      await caSecret('flag-ca', flag);
      // Phases shortened by configuration: the sidecar and a rollout of two pods take a few
      // seconds here; Propagate holds (no continuing) if alpha has not rolled out within maxWait.
      const issuers = [
        {
          name: 'rolling',
          ca: {
            secret: { namespace: ns(), name: 'rolling-ca' },
            rollover: {
              trustPropagation: '5s',
              maxWait: '90s',
              onMaxWait: 'hold',
              reissue: { maxPerMinute: 60 },
              retireAfter: '2s',
              checkInterval: '1s',
            },
          },
        },
        { name: 'flag', ca: { secret: { namespace: ns(), name: 'flag-ca' }, rollover: { enabled: false } } },
      ];
      const install = installChart(helm, RELEASE, ns(), img, [
        '--set',
        'replicaCount=1',
        '--set-json',
        `config.issuers=${JSON.stringify(issuers)}`,
        '--set-json',
        'config.rollout={"debounce":"1s"}',
      ]);
      // The sidecars' ServiceAccount may read its pair's Secret and nothing else.
      const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
      await secretReaderAccount({ core, rbac }, ns(), 'beta', ['beta-tls', 'fbeta-tls']);
      await pair('', 'rolling', rolling, img.ref);
      await pair('f', 'flag', flag, img.ref);
      log = new HandshakeLog(kc, core, ns());
      await install;
      await waitForReadyPods(core, ns(), CONTROLLER, 1, 'the controller pod Ready', 120_000);
      for (const [name, n] of [
        ['alpha', 2],
        ['beta', 1],
        ['falpha', 2],
        ['fbeta', 1],
      ] as const) {
        await waitForReadyPods(core, ns(), `app=${name}`, n, `${name} Ready`, 120_000);
      }
      process.stdout.write(`[e2e] ca-rollover: chart and both pairs Ready in ${Date.now() - started} ms\n`);
    });

    afterAll(async () => {
      log?.stop();
      if (helm && ns()) await helm.run(['uninstall', RELEASE, '--namespace', ns(), '--wait=false']);
      await helm?.close();
      process.stdout.write(`[e2e] ca-rollover: file done in ${Date.now() - started} ms\n`);
    });

    it('a staged rollover: no failed handshake in any phase, in either direction; the new CA alone at the end', async () => {
      const { core, kc } = node();
      const hs = log as HandshakeLog;
      const apps = kc.makeApiClient(k8s.AppsV1Api);
      const before = Date.now();
      const enough = (since: number) => () =>
        hs.okSince('alpha', since) >= MIN_PER_PHASE && hs.okSince('beta', since) >= MIN_PER_PHASE;
      await waitFor('handshakes both ways before the rollover', enough(before), { timeoutMs: 30_000 });
      const alphaPodsBefore = (await podsBySelector(core, ns(), 'app=alpha')).map((p) => p.metadata?.name);
      const [betaBefore] = await podsBySelector(core, ns(), 'app=beta');

      // Stage the next CA, as docs/ca-rollover.md tells a user to.
      const next = await makeTestCA('e2e rollover CA 2');
      await caSecret('rolling-ca-next', next);
      await core.patchNamespacedSecret(
        {
          namespace: ns(),
          name: 'rolling-ca',
          body: { metadata: { annotations: { [`${A}next-ca`]: 'rolling-ca-next' } } },
        },
        mergePatch,
      );
      // The phase as the CA Secret records it, seen every 100 ms: when each began, by the test's clock.
      const began: Array<{ phase: string; at: number }> = [{ phase: 'before', at: before }];
      await waitFor(
        'the rollover through all four phases and its annotations gone',
        async () => {
          const ca = await core.readNamespacedSecret({ namespace: ns(), name: 'rolling-ca' });
          const at = Date.now();
          const a = ca.metadata?.annotations ?? {};
          const phase = a[`${STATUS}ca-rollover-phase`] ?? (began.length > 1 ? 'after' : 'before');
          if (phase !== began[began.length - 1]?.phase) began.push({ phase, at });
          return phase === 'after' && a[`${A}next-ca`] === undefined ? true : undefined;
        },
        { timeoutMs: 150_000, intervalMs: 100 },
      );
      const done = began[began.length - 1]?.at ?? Date.now();
      await waitFor('handshakes both ways after the rollover', enough(done), { timeoutMs: 30_000 });
      const end = Date.now();

      const phaseAt = (t: number): string | undefined => {
        if (t < before || t > end) return undefined;
        let p: string | undefined;
        for (const b of began) if (t >= b.at) p = b.phase;
        return p;
      };
      const counts = tally(hs.handshakes, phaseAt);
      const durations = began
        .slice(1, -1)
        .map((b, i) => `${b.phase} ${(((began[i + 2]?.at ?? end) - b.at) / 1000).toFixed(1)} s`);
      process.stdout.write(`[e2e] ca-rollover: phases seen: ${began.map((b) => b.phase).join(' → ')}\n`);
      process.stdout.write(`[e2e] ca-rollover: phase durations: ${durations.join(', ')}\n`);
      for (const [key, c] of counts) {
        process.stdout.write(
          `[e2e] ca-rollover: ${key}: ${c.attempted} attempted, ${c.failed} failed${c.failed ? ` (${[...c.errors].join('; ')})` : ''}\n`,
        );
      }
      expect(hs.streamErrors).toEqual([]);
      expect(began.map((b) => b.phase)).toEqual([...PHASES]);
      for (const phase of PHASES) {
        for (const from of ['alpha', 'beta']) {
          const c = counts.get(`${phase} ${from}`);
          expect(c?.failed, `${phase}, ${from} as the client: ${[...(c?.errors ?? [])].join('; ')}`).toBe(0);
          expect(c?.attempted ?? 0, `${phase}, ${from} as the client`).toBeGreaterThanOrEqual(MIN_PER_PHASE);
        }
      }

      // Where it ended: both leaves from the new CA, every ca.crt the new CA alone, the old CA gone.
      const newCa = new X509Certificate(next.certPem);
      for (const name of ['alpha-tls', 'beta-tls']) {
        const s = await core.readNamespacedSecret({ namespace: ns(), name });
        expect(signedBy(decoded(s, 'tls.crt'), next.certPem), `${name}: tls.crt from the new CA`).toBe(true);
        expect(
          bundle(decoded(s, 'ca.crt')).map((c) => c.fingerprint256),
          `${name}: ca.crt`,
        ).toEqual([newCa.fingerprint256]);
      }
      const ca = await core.readNamespacedSecret({ namespace: ns(), name: 'rolling-ca' });
      expect(new X509Certificate(decoded(ca, 'tls.crt')).fingerprint256).toBe(newCa.fingerprint256);
      expect(Object.keys(ca.data ?? {}).sort()).toEqual(['tls.crt', 'tls.key']);

      // What the pods use: alpha was rolled (new pods serving the new leaf), beta is the same pod,
      // its sidecar's files the new leaf and the new CA alone.
      const alphaTls = await core.readNamespacedSecret({ namespace: ns(), name: 'alpha-tls' });
      const alphaPods = await waitForReadyPods(core, ns(), 'app=alpha', 2, 'alpha Ready after the rollover');
      for (const p of alphaPods) {
        expect(alphaPodsBefore).not.toContain(p.metadata?.name);
        expect(await servedSerial(p.status?.podIP ?? '', PORT)).toBe(serialOf(decoded(alphaTls, 'tls.crt')));
      }
      const dep = await apps.readNamespacedDeployment({ namespace: ns(), name: 'alpha' });
      expect(dep.spec?.template.metadata?.annotations?.[`${A}certificate-hash`]).toMatch(/^[0-9a-f]{32}$/);
      const betaPods = await podsBySelector(core, ns(), 'app=beta');
      expect(betaPods.map((p) => p.metadata?.name)).toEqual([betaBefore?.metadata?.name]);
      const files = await execInPod(kc, ns(), betaBefore?.metadata?.name ?? '', 'app', [
        IMAGE_NODE,
        '-e',
        "const fs = require('node:fs'); process.stdout.write(fs.readFileSync('/certs/ca.crt', 'utf8'))",
      ]);
      expect(bundle(files.stdout).map((c) => c.fingerprint256)).toEqual([newCa.fingerprint256]);
      const betaTls = await core.readNamespacedSecret({ namespace: ns(), name: 'beta-tls' });
      expect(await servedSerial(betaBefore?.status?.podIP ?? '', PORT)).toBe(
        serialOf(decoded(betaTls, 'tls.crt')),
      );
    });

    it('negative control: the CA overwritten in place with the rollover off (a flag day) fails handshakes', async () => {
      const { core } = node();
      const hs = log as HandshakeLog;
      const before = Date.now();
      const enough = () =>
        hs.okSince('falpha', before) >= MIN_PER_PHASE && hs.okSince('fbeta', before) >= MIN_PER_PHASE;
      await waitFor('handshakes both ways before the flag day', enough, { timeoutMs: 30_000 });

      // The flag day: a new CA written over the old one; then alpha's certificate comes due.
      const next = await makeTestCA('e2e flag-day CA 2');
      const overwritten = Date.now();
      await core.patchNamespacedSecret(
        {
          namespace: ns(),
          name: 'flag-ca',
          body: {
            data: {
              'tls.crt': Buffer.from(next.certPem).toString('base64'),
              'tls.key': Buffer.from(next.keyPem).toString('base64'),
            },
          },
        },
        mergePatch,
      );
      // The issuer reuses a CA it read for a few seconds: a renewal may still come from the old
      // one. Ask again after each renewal until the new CA signed it.
      let asked = '';
      const renewedAt = await waitFor(
        'falpha-tls renewed by the overwritten-in CA',
        async () => {
          const s = await core.readNamespacedSecret({ namespace: ns(), name: 'falpha-tls' });
          if (signedBy(decoded(s, 'tls.crt'), next.certPem)) return Date.now();
          const a = s.metadata?.annotations ?? {};
          const last = Date.parse(a[`${A}last-renewed`] ?? '') || 0;
          if (asked === '' || last >= Date.parse(asked)) {
            asked = new Date(Math.max(Date.now(), last + 1000)).toISOString();
            await core.patchNamespacedSecret(
              {
                namespace: ns(),
                name: 'falpha-tls',
                body: { metadata: { annotations: { [`${A}renew-requested-at`]: asked } } },
              },
              mergePatch,
            );
          }
          return undefined;
        },
        { timeoutMs: 60_000, intervalMs: 200 },
      );
      const failedSince = (t0: number) =>
        hs.handshakes.filter((h) => h.from.startsWith('f') && h.t >= t0 && h.err !== undefined).length;
      await waitFor('failed handshakes after the flag day', () => failedSince(renewedAt) >= MIN_PER_PHASE, {
        timeoutMs: 90_000,
      });
      const label = (t: number) =>
        t < before ? undefined : t < overwritten ? 'before' : t < renewedAt ? 'overwritten' : 'renewed';
      const counts = tally(
        hs.handshakes.filter((h) => h.from.startsWith('f')),
        label,
      );
      for (const [key, c] of counts) {
        process.stdout.write(
          `[e2e] ca-rollover flag day: ${key}: ${c.attempted} attempted, ${c.failed} failed${c.failed ? ` (${[...c.errors].join('; ')})` : ''}\n`,
        );
      }
      for (const from of ['falpha', 'fbeta']) {
        const c = counts.get(`before ${from}`);
        expect(c?.failed, `before, ${from}: ${[...(c?.errors ?? [])].join('; ')}`).toBe(0);
        expect(c?.attempted ?? 0).toBeGreaterThanOrEqual(MIN_PER_PHASE);
      }
      const failedAfter =
        (counts.get('renewed falpha')?.failed ?? 0) + (counts.get('renewed fbeta')?.failed ?? 0);
      expect(failedAfter).toBeGreaterThanOrEqual(MIN_PER_PHASE);
    });
  },
);
