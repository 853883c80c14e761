// A CA rollover of N managed Secrets (default 1,000) against a real kube-apiserver started for
// the benchmark, with its waits shortened (trustPropagation 1s, retireAfter 1s, no rate limit
// on re-issuing): how long each phase takes — which is then the controller's own work: writing
// the trust into every Secret, re-issuing every leaf, narrowing the trust — and the API requests
// the rollover costs per Secret (kube-apiserver's apiserver_request_total, non-watch).
//
//   node bench/ca-rollover.bench.mjs [--secrets 1000]
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { generateKey, issueCertificate } from '../src/pki/index.ts';
import { startOwnControlPlane } from '../test/testenv/env.ts';
import { apiServerRequests } from './apiserver-requests.mjs';
import { startController } from './controller-process.mjs';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const b64 = (t) => Buffer.from(t).toString('base64');

async function makeCA(commonName) {
  const keyPem = (await generateKey('ecdsa-p256')).privateKeyPem;
  const cert = await issueCertificate({
    subjectKeyPem: keyPem,
    identity: { commonName, dnsNames: [], ipAddresses: [], uris: [] },
    notBefore: Date.now() - HOUR,
    notAfter: Date.now() + 365 * DAY,
    issuer: 'self',
    isCA: true,
  });
  return { certPem: cert.certPem, keyPem };
}

/** apiserver_request_total as "VERB resource" → count, for the resources a rollover touches. */
const ROLLOVER_RESOURCES = ['secrets', 'deployments', 'statefulsets', 'daemonsets', 'events'];
const requestCounts = (kc) =>
  apiServerRequests(kc, (l) =>
    l.verb !== 'WATCH' && ROLLOVER_RESOURCES.includes(l.resource) ? `${l.verb} ${l.resource}` : undefined,
  );

export async function run(argv = []) {
  const { values } = parseArgs({ args: argv, options: { secrets: { type: 'string' } } });
  const n = Number(values.secrets ?? 1000);
  const { plane, kubeConfig: kc, dir } = await startOwnControlPlane('rollover-bench');
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const ns = 'rollover-bench';
  let controller;
  try {
    await core.createNamespace({ body: { metadata: { name: ns } } });
    const ca1 = await makeCA('bench CA 1');
    const ca2 = await makeCA('bench CA 2');
    const tls = (name, pair, annotations = {}, ca) => ({
      metadata: { name, annotations },
      type: 'kubernetes.io/tls',
      data: {
        'tls.crt': b64(pair.certPem),
        'tls.key': b64(pair.keyPem),
        ...(ca ? { 'ca.crt': b64(ca) } : {}),
      },
    });
    await core.createNamespacedSecret({ namespace: ns, body: tls('bench-ca', ca1) });
    // N leaves signed by CA 1, valid for 60 days (not due), ca.crt = CA 1.
    const t0 = Date.now();
    for (let i = 0; i < n; i += 50) {
      await Promise.all(
        Array.from({ length: Math.min(50, n - i) }, async (_, j) => {
          const keyPem = (await generateKey('ecdsa-p256')).privateKeyPem;
          const leaf = await issueCertificate({
            subjectKeyPem: keyPem,
            identity: { dnsNames: [`s${i + j}.bench.example.com`], ipAddresses: [], uris: [] },
            notBefore: Date.now() - HOUR,
            notAfter: Date.now() + 60 * DAY,
            issuer: { certPem: ca1.certPem, keyPem: ca1.keyPem },
          });
          await core.createNamespacedSecret({
            namespace: ns,
            body: tls(
              `s${i + j}`,
              { certPem: leaf.chainPem, keyPem },
              { 'cert-rotator.io/enabled': 'true' },
              ca1.certPem,
            ),
          });
        }),
      );
    }
    const setupMs = Date.now() - t0;
    const configPath = join(dir, 'config.yaml');
    await writeFile(
      configPath,
      stringify({
        namespaces: [ns],
        leaderElection: { enabled: false },
        defaults: { issuer: 'bench-ca' },
        issuers: [
          {
            name: 'bench-ca',
            ca: {
              secret: { namespace: ns, name: 'bench-ca' },
              rollover: {
                trustPropagation: '1s',
                maxWait: '10m',
                reissue: { maxPerMinute: 100000 },
                retireAfter: '1s',
                checkInterval: '1s',
              },
            },
          },
        ],
      }),
    );
    const started = await startController({
      configPath,
      kubeconfigPath: plane.kubeconfigPath,
      timeoutMs: 120_000,
    });
    controller = started.child;
    await new Promise((r) => setTimeout(r, 3000)); // the first look records the active CA
    const before = await requestCounts(kc);
    await core.createNamespacedSecret({ namespace: ns, body: tls('bench-next', ca2) });
    const ca = await core.readNamespacedSecret({ namespace: ns, name: 'bench-ca' });
    ca.metadata.annotations = { ...ca.metadata.annotations, 'cert-rotator.io/next-ca': 'bench-next' };
    await core.replaceNamespacedSecret({ namespace: ns, name: 'bench-ca', body: ca });
    const staged = Date.now();
    const entered = { staged };
    let last = 'staged';
    const end = Date.now() + 30 * 60_000;
    for (;;) {
      const s = await core.readNamespacedSecret({ namespace: ns, name: 'bench-ca' });
      const phase =
        s.metadata?.annotations?.['status.cert-rotator.io/ca-rollover-phase'] ??
        (last === 'staged' ? 'staged' : 'done');
      if (phase !== last) {
        entered[phase] = Date.now();
        last = phase;
      }
      if (phase === 'done') break;
      if (Date.now() > end || controller.exitCode !== null)
        throw new Error(`rollover did not finish (in ${phase}):\n${started.output().slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    const after = await requestCounts(kc);
    const requests = {};
    let total = 0;
    for (const [k, v] of after) {
      const d = v - (before.get(k) ?? 0);
      if (d > 0) {
        requests[k] = d;
        total += d;
      }
    }
    const order = ['staged', 'Trust', 'Propagate', 'Reissue', 'Retire', 'done'];
    const phases = {};
    for (let i = 0; i + 1 < order.length; i++) {
      const a = entered[order[i]];
      const b = entered[order[i + 1]];
      if (a !== undefined && b !== undefined) phases[order[i]] = `${((b - a) / 1000).toFixed(1)} s`;
    }
    return {
      secrets: n,
      setupSeconds: Math.round(setupMs / 1000),
      phases,
      totalSeconds: Number(((entered.done - staged) / 1000).toFixed(1)),
      requests,
      requestsPerSecret: Number((total / n).toFixed(2)),
      note: 'phases: from the bench seeing the CA Secret enter one phase to seeing it enter the next (polled every 250 ms); Propagate and Retire include their configured 1 s waits and the 1 s look interval, Reissue the look interval after the switch. Requests: apiserver_request_total deltas (non-watch) for Secrets, workloads and Events during the rollover, all clients (the bench polls the CA Secret 4 times a second)',
    };
  } finally {
    controller?.kill('SIGKILL');
    await plane.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await run(process.argv.slice(2)), null, 2));
  process.exit(0);
}
