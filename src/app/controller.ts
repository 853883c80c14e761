import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { ConfigError, loadConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { buildIssuers, CAIssuer, closeHttp01Listeners } from '../issuers/index.ts';
import { KubeAcmeResources } from '../kube/acme-resources.ts';
import {
  decodeSecretData,
  describeApiError,
  isNotFound,
  loadKubeConfig,
  makeClients,
} from '../kube/client.ts';
import { KubeCsrApi } from '../kube/csr-api.ts';
import { EventRecorder } from '../kube/events.ts';
import type { HttpTransport } from '../kube/http/transport.ts';
import { LeaderElector } from '../kube/leader-election.ts';
import { KubePcrApi } from '../kube/pcr-api.ts';
import { WorkQueueName } from '../names.ts';
import { HeapReclaimer } from '../observability/heap-reclaimer.ts';
import { createLogger, type Logger } from '../observability/logger.ts';
import { Metrics } from '../observability/metrics.ts';
import { startHttpServer } from '../observability/server.ts';
import { RecentActivity } from '../ui/activity.ts';
import { csrWaker } from './csr-wake.ts';
import { startNotifications } from './notifications.ts';
import { StartupError } from './startup-error.ts';

export { StartupError } from './startup-error.ts';

import { systemClock } from '../clock.ts';
import { SecretController } from '../controller/controller.ts';
import { ClusterMonitor, monitoringEnabled } from '../monitor/cluster-monitor.ts';
import { createRollouts } from '../rollout/index.ts';
import { CaRollover } from '../rollover/rollover.ts';
import { IssuedLedger } from '../signer/issued-ledger.ts';
import { type PodCertificateEntry, PodCertificateSigner } from '../signer/pod-certificates.ts';
import { CsrSigner, type SignerEntry } from '../signer/signer.ts';
import { issuedRecordStores, recordsFor } from './issued-records.ts';

/** How often the status page reloads itself. */
const STATUS_PAGE_REFRESH_SECONDS = 30;

export interface ControllerOptions {
  configPath: string;
  kubeconfigPath?: string;
  metricsAddress?: string;
  logLevel?: string;
}

export async function readConfigFile(path: string): Promise<Config> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new StartupError(
      `cannot read config file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    );
  }
  try {
    return loadConfig(text);
  } catch (err) {
    if (err instanceof ConfigError) throw new StartupError(`invalid config file ${path}:\n${err.message}`);
    throw err;
  }
}

export interface RunningController {
  controller: SecretController;
  metricsPort: number;
  log: Logger;
  stop(): Promise<void>;
}

export async function startController(opts: ControllerOptions): Promise<RunningController> {
  const config = await readConfigFile(opts.configPath);
  const log = createLogger(opts.logLevel ? { level: opts.logLevel } : {});
  let kc: HttpTransport;
  try {
    kc = loadKubeConfig(opts.kubeconfigPath, config.kubeAPI);
  } catch (err) {
    throw new StartupError(err instanceof Error ? err.message : String(err));
  }
  const clients = makeClients(kc);
  const metrics = new Metrics();
  kc.observer = (verb, code) => metrics.kubeApiRequests.inc({ verb, code });
  // Pages V8 pooled after the initial list or a burst of renewals go back to the OS once the
  // work is over (see heap-reclaimer.ts).
  const reclaimer = new HeapReclaimer({ log }).start();
  const events = new EventRecorder(clients.core, log);
  const activity = new RecentActivity();
  events.listener = (ref, type, reason, message, at) =>
    activity.add({
      at,
      type,
      reason,
      object:
        ref.kind === 'Secret' ? `${ref.namespace}/${ref.name}` : `${ref.kind} ${ref.namespace}/${ref.name}`,
      message,
    });
  const companionSecrets = new KubeAcmeResources(kc);
  const csrApi = new KubeCsrApi(kc);
  const { issuers, unsupported } = await buildIssuers(config, {
    readSecret: async (namespace, name) => {
      try {
        const s = await clients.core.readNamespacedSecret({ namespace, name });
        return {
          resourceVersion: s.metadata?.resourceVersion ?? '',
          data: decodeSecretData(s.data),
          annotations: s.metadata?.annotations ?? {},
        };
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw new Error(describeApiError(err));
      }
    },
    acmeKube: companionSecrets,
    onAcmeRequest: (labels) => metrics.acmeRequests.inc(labels),
    csrKube: { csrs: csrApi, secrets: companionSecrets },
    onCsrResult: (labels) => metrics.csrRequests.inc(labels),
    onCsrApprovalWait: (labels, seconds) => metrics.csrApprovalWait.observe(labels, seconds),
    log,
    ...(process.env.POD_IP ? { podIP: process.env.POD_IP } : {}),
  });
  for (const [name, why] of unsupported) log.warn({ issuer: name }, why);
  let elector: LeaderElector | undefined;
  // Rollouts: restarts workloads after certificate changes the controller reports.
  const rollouts = createRollouts({
    config,
    clients,
    events,
    log,
    metrics,
    secretsSynced: () => controller.ready(),
    ...(config.leaderElection.enabled ? { isLeader: () => elector?.isLeader() ?? false } : {}),
  });
  const controller = new SecretController({
    listener: rollouts.manager,
    config,
    clients,
    issuers,
    unsupportedIssuers: unsupported,
    events,
    log,
    metrics,
    ...(config.leaderElection.enabled ? { isLeader: () => elector?.isLeader() ?? false } : {}),
  });
  // Certificates outside TLS Secrets (the `monitoring` section), when a source is on.
  const monitor = monitoringEnabled(config.monitoring)
    ? new ClusterMonitor({
        transport: kc,
        config: config.monitoring,
        registry: metrics.registry,
        log,
        events,
        ...(config.leaderElection.enabled ? { isLeader: () => elector?.isLeader() ?? false } : {}),
        readSecretValue: async (namespace, name, key) => {
          try {
            const s = await clients.core.readNamespacedSecret({ namespace, name });
            return decodeSecretData(s.data)[key];
          } catch (err) {
            if (isNotFound(err)) return undefined;
            throw new Error(describeApiError(err));
          }
        },
      })
    : undefined;
  // What the CSR and Pod Certificates signers issued per CA; a rollover's Retire waits for it.
  const records = issuedRecordStores(kc, config.leaderElection.namespace ?? ownNamespace());
  // CA rollovers: one per ca issuer, walking Trust → Propagate → Reissue → Retire (docs/ca-rollover.md).
  const rollovers = config.issuers.flatMap((issuer) =>
    issuer.kind === 'ca' && issuer.ca.rollover.enabled
      ? [
          new CaRollover({
            issuer,
            config,
            clients,
            events,
            log,
            metrics,
            clock: systemClock,
            issuedRecords: recordsFor(issuer, records),
            forgetCa: () => {
              const signing = issuers.get(issuer.name);
              if (signing instanceof CAIssuer) signing.forget();
            },
            ...(config.leaderElection.enabled ? { isLeader: () => elector?.isLeader() ?? false } : {}),
          }),
        ]
      : [],
  );
  // A renewal waiting for a person's approval is looked at again as soon as its CSR is answered.
  const waker = csrWaker(config, kc, controller, log);
  // cert-rotator as a CSR signer (and approver) for ca issuers with a `signer` key.
  const signerEntries: SignerEntry[] = [];
  for (const ic of config.issuers) {
    const ca = issuers.get(ic.name);
    if (ic.kind === 'ca' && ic.signer && ca instanceof CAIssuer) {
      signerEntries.push({
        issuer: ic,
        signer: ic.signer,
        ca,
        ...(ic.approve ? { approve: ic.approve } : {}),
      });
    }
  }
  const signer =
    signerEntries.length > 0
      ? new CsrSigner({
          kubeConfig: kc,
          api: csrApi,
          entries: signerEntries,
          log,
          ledger: new IssuedLedger(records.csr),
          ...(config.leaderElection.enabled ? { isLeader: () => elector?.isLeader() ?? false } : {}),
        })
      : undefined;
  // cert-rotator as the signer of PodCertificateRequests for ca issuers with `podCertificates`.
  const podEntries: PodCertificateEntry[] = [];
  for (const ic of config.issuers) {
    const ca = issuers.get(ic.name);
    if (ic.kind === 'ca' && ic.podCertificates && ca instanceof CAIssuer)
      podEntries.push({ issuer: ic, config: ic.podCertificates, ca });
  }
  const podSigner =
    podEntries.length > 0
      ? new PodCertificateSigner({
          transport: kc,
          api: new KubePcrApi(kc),
          entries: podEntries,
          log,
          onResult: (signer, result) => metrics.podCertificateRequests.inc({ signer, result }),
          onIssued: (signer, seconds) => metrics.podCertificateIssue.observe({ signer }, seconds),
          ledger: new IssuedLedger(records.pods),
          ...(config.leaderElection.enabled ? { isLeader: () => elector?.isLeader() ?? false } : {}),
        })
      : undefined;
  if (config.leaderElection.enabled) {
    const le = config.leaderElection;
    elector = new LeaderElector(clients.coordination, {
      namespace: le.namespace ?? ownNamespace(),
      name: le.leaseName,
      identity: `${process.env.POD_NAME ?? hostname()}_${randomUUID().slice(0, 8)}`,
      leaseDurationMs: le.leaseDurationMs,
      renewDeadlineMs: le.renewDeadlineMs,
      retryPeriodMs: le.retryPeriodMs,
      log,
      onStartedLeading: () => {
        controller.replanAll();
        rollouts.manager.replanAll();
        signer?.replanAll();
        monitor?.leading();
        podSigner?.replanAll();
        for (const r of rollovers) r.lookSoon();
      },
      onStoppedLeading: () => {
        // As client-go's binaries do: a leader that lost its lease exits and starts over clean,
        // so it can never write after a successor has started to.
        log.error('exiting after losing leadership');
        process.exit(1);
      },
    });
  }
  const notifications = startNotifications({
    config,
    core: clients.core,
    namespace: config.leaderElection.namespace ?? ownNamespace(),
    events,
    metrics,
    log,
    controller,
    ...(config.leaderElection.enabled ? { isLeader: () => elector?.isLeader() ?? false } : {}),
  });
  metrics.setLeaderSource(() => elector?.isLeader() ?? true);
  metrics.addQueue(WorkQueueName.secrets, () => controller.queueStats());
  metrics.addQueue(WorkQueueName.rollouts, () => rollouts.manager.queueStats());
  if (signer) metrics.addQueue(WorkQueueName.csrSigner, () => signer.queueStats());
  const { server, port } = await startHttpServer(
    opts.metricsAddress ?? config.metrics.address,
    metrics,
    {
      // Ready once the first list is processed; a leader also needs its lease. A standby is ready
      // (it serves metrics and must not block a rolling update); a leader whose last renew is older
      // than renewDeadline is not (it is about to step down).
      ready: () => controller.ready() && elector?.state() !== 'lapsed',
    },
    config.ui.enabled
      ? () => ({
          now: Date.now(),
          leading: elector ? elector.isLeader() : undefined,
          certificates: controller.statusView((key) => activity.lastFor(key)),
          recent: activity.recent(),
          refreshSeconds: STATUS_PAGE_REFRESH_SECONDS,
        })
      : undefined,
  );
  controller.start();
  monitor?.start();
  waker?.start();
  rollouts.start();
  signer?.start();
  notifications.start();
  podSigner?.start();
  for (const r of rollovers) r.start();
  elector?.start();
  log.info(
    {
      namespaces: config.namespaces,
      issuers: config.issuers.map((i) => `${i.name}(${i.kind})`),
      metricsPort: port,
      concurrency: config.concurrency,
    },
    'cert-rotator controller started',
  );
  return {
    controller,
    metricsPort: port,
    log,
    async stop() {
      reclaimer.stop();
      await controller.stop();
      monitor?.stop();
      waker?.stop();
      await notifications.stop();
      await signer?.stop();
      await podSigner?.stop();
      await closeHttp01Listeners();
      await rollouts.stop();
      await Promise.all(rollovers.map((r) => r.stop()));
      await elector?.stop();
      await new Promise<void>((r) => server.close(() => r()));
      server.closeAllConnections();
    },
  };
}

/** The namespace this pod runs in: $POD_NAMESPACE, the service account's namespace file, or "default". */
function ownNamespace(): string {
  if (process.env.POD_NAMESPACE) return process.env.POD_NAMESPACE;
  try {
    return readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8').trim();
  } catch {
    return 'default';
  }
}
