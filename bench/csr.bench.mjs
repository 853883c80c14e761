// CSR renewals against a real kube-apiserver + kube-controller-manager started for the benchmark:
// time from "due" (the renewal time a Secret's certificate and renew-before give) to the Secret
// seen written, through kcm's kubernetes.io/kube-apiserver-client signer and through
// cert-rotator's own signer (same controller, same run, alternating), p50/p90; and the API
// requests one CSR renewal costs, from kube-apiserver's apiserver_request_total.
//
//   node bench/csr.bench.mjs [--renewals 20] [--spacing-ms 1500]
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

function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

async function selfSigned(identity, notAfter) {
  const key = (await generateKey('ecdsa-p256')).privateKeyPem;
  const cert = await issueCertificate({
    subjectKeyPem: key,
    identity: { dnsNames: [], ipAddresses: [], uris: [], ...identity },
    notBefore: Date.now() - 24 * HOUR,
    notAfter,
    issuer: 'self',
  });
  return { certPem: cert.certPem, keyPem: key };
}

/** apiserver_request_total as "VERB resource[/sub]" → count, non-watch requests only. */
const CSR_RESOURCES = ['certificatesigningrequests', 'secrets', 'configmaps', 'selfsubjectreviews'];
const requestCounts = (kc) =>
  apiServerRequests(kc, (l) =>
    CSR_RESOURCES.includes(l.resource)
      ? `${l.verb} ${l.resource}${l.subresource ? `/${l.subresource}` : ''}`
      : undefined,
  );

function delta(before, after) {
  const out = {};
  for (const [k, v] of after) {
    const d = v - (before.get(k) ?? 0);
    if (d > 0) out[k] = d;
  }
  return out;
}

export async function run(argv = []) {
  const { values } = parseArgs({
    args: argv,
    options: { renewals: { type: 'string' }, 'spacing-ms': { type: 'string' } },
  });
  const renewals = Number(values.renewals ?? 20);
  const spacing = Number(values['spacing-ms'] ?? 1500);
  const { plane, kubeConfig: kc, dir } = await startOwnControlPlane('csr-bench');
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const ns = 'csr-bench';
  let controller;
  try {
    await core.createNamespace({ body: { metadata: { name: ns } } });
    const caKey = (await generateKey('ecdsa-p256')).privateKeyPem;
    const caCert = await issueCertificate({
      subjectKeyPem: caKey,
      identity: { commonName: 'bench CA', dnsNames: [], ipAddresses: [], uris: [] },
      notBefore: Date.now() - HOUR,
      notAfter: Date.now() + 365 * 24 * HOUR,
      issuer: 'self',
      isCA: true,
    });
    await core.createNamespacedSecret({
      namespace: ns,
      body: {
        metadata: { name: 'bench-ca' },
        type: 'kubernetes.io/tls',
        data: {
          'tls.crt': Buffer.from(caCert.certPem).toString('base64'),
          'tls.key': Buffer.from(caKey).toString('base64'),
        },
      },
    });
    const configPath = join(dir, 'config.yaml');
    await writeFile(
      configPath,
      stringify({
        namespaces: [ns],
        leaderElection: { enabled: false },
        issuers: [
          {
            name: 'kcm',
            kubernetesCSR: { signerName: 'kubernetes.io/kube-apiserver-client', autoApprove: true },
            allowedCommonNames: ['bench-user-*'],
          },
          {
            name: 'bench-ca',
            ca: { secret: { namespace: ns, name: 'bench-ca' } },
            signer: { signerName: 'cert-rotator.io/bench', maxDuration: '24h' },
            allowedDomains: ['*.bench.example.com'],
          },
          {
            name: 'own',
            kubernetesCSR: {
              signerName: 'cert-rotator.io/bench',
              autoApprove: true,
              caBundle: caCert.certPem,
            },
            allowedDomains: ['*.bench.example.com'],
          },
        ],
      }),
    );
    const started = await startController({
      configPath,
      kubeconfigPath: plane.kubeconfigPath,
      timeoutMs: 60_000,
    });
    controller = started.child;

    // Secrets whose renewal becomes due one after the other: 20 through kcm, then 20 through
    // cert-rotator's own signer, in one run (requests counted per block).
    const start = Date.now() + 15_000;
    const blockMs = renewals * spacing + 10_000;
    const plan = [];
    for (let i = 0; i < 2 * renewals; i++) {
      const via = i < renewals ? 'kcm' : 'own';
      // Certificates carry whole seconds: due is notAfter (truncated) minus renew-before 1h.
      const notAfter =
        Math.floor((start + (via === 'own' ? blockMs : 0) + (i % renewals) * spacing + HOUR) / 1000) * 1000;
      const identity =
        via === 'kcm' ? { commonName: `bench-user-${i}` } : { dnsNames: [`s${i}.bench.example.com`] };
      const pair = await selfSigned(identity, notAfter);
      plan.push({ name: `s${i}`, via, due: notAfter - HOUR, pair });
    }
    const written = new Map();
    const watch = await new k8s.Watch(kc).watch(
      `/api/v1/namespaces/${ns}/secrets`,
      {},
      (phase, obj) => {
        const name = obj.metadata?.name;
        if (
          phase === 'MODIFIED' &&
          obj.metadata?.annotations?.['cert-rotator.io/revision'] === '1' &&
          !written.has(name)
        ) {
          written.set(name, Date.now());
        }
      },
      () => undefined,
    );
    for (const p of plan) {
      await core.createNamespacedSecret({
        namespace: ns,
        body: {
          metadata: {
            name: p.name,
            annotations: {
              'cert-rotator.io/enabled': 'true',
              'cert-rotator.io/issuer': p.via,
              'cert-rotator.io/renew-before': '1h',
            },
          },
          type: 'kubernetes.io/tls',
          data: {
            'tls.crt': Buffer.from(p.pair.certPem).toString('base64'),
            'tls.key': Buffer.from(p.pair.keyPem).toString('base64'),
          },
        },
      });
    }
    const sleepUntil = async (t) => {
      if (Date.now() < t) await new Promise((r) => setTimeout(r, t - Date.now()));
    };
    if (Date.now() > start - 3000)
      throw new Error('creating the Secrets took longer than the lead time; raise it');
    const result = {};
    for (const via of ['kcm', 'own']) {
      const block = plan.filter((p) => p.via === via);
      await sleepUntil(block[0].due - 2000);
      const before = await requestCounts(kc);
      const end = block[block.length - 1].due + 60_000;
      while (block.some((p) => !written.has(p.name)) && Date.now() < end)
        await new Promise((r) => setTimeout(r, 100));
      // Let the afterWrite clean-up (CSR + companion delete) finish before counting.
      await new Promise((r) => setTimeout(r, 2000));
      const requests = delta(before, await requestCounts(kc));
      const ms = block.filter((p) => written.has(p.name)).map((p) => written.get(p.name) - p.due);
      result[via] = {
        renewals: ms.length,
        p50Ms: percentile(ms, 50),
        p90Ms: percentile(ms, 90),
        maxMs: Math.max(...ms),
        apiRequestsPerRenewal: Object.values(requests).reduce((a, b) => a + b, 0) / block.length,
        byVerb: Object.fromEntries(Object.entries(requests).map(([k, v]) => [k, v / block.length])),
      };
      if (ms.length < block.length)
        result[via].missing = block.filter((p) => !written.has(p.name)).map((p) => p.name);
    }
    watch.abort();
    result.note =
      'due→written: from the renewal time (notAfter − renew-before) to the bench seeing the Secret written (watch); requests: kube-apiserver apiserver_request_total deltas for CSRs, Secrets, ConfigMaps during each block, per renewal (kcm block: kcm writes the status; own block: cert-rotator does)';
    return result;
  } finally {
    controller?.kill('SIGKILL');
    await plane.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await run(process.argv.slice(2)), null, 2));
  process.exit(0);
}
