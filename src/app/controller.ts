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
  type KubeTransport,
  loadKubeConfig,
  makeClients,
} from '../kube/client.ts';
import { KubeCsrApi } from '../kube/csr-api.ts';
import { EventRecorder } from '../kube/events.ts';
import { LeaderElector } from '../kube/leader-election.ts';
import { HeapReclaimer } from '../observability/heap-reclaimer.ts';
import { createLogger, type Logger } from '../observability/logger.ts';
import { Metrics } from '../observability/metrics.ts';
import { startHttpServer } from '../observability/server.ts';
import { csrWaker } from './csr-wake.ts';
import { StartupError } from './startup-error.ts';

export { StartupError } from './startup-error.ts';

import { systemClock } from '../clock.ts';
import { SecretController } from '../controller/controller.ts';
import { createRollouts } from '../rollout/index.ts';
import { CaRollover } from '../rollover/rollover.ts';
import { CsrSigner, type SignerEntry } from '../signer/signer.ts';

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
  let kc: KubeTransport;
  try {
    kc = loadKubeConfig(opts.kubeconfigPath, config.kubeAPI);
  } catch (err) {
    throw new StartupError(err instanceof Error ? err.message : String(err));
  }
  const clients = makeClients(kc);
  const metrics = new Metrics();
  // Pages V8 pooled after the initial list or a burst of renewals go back to the OS once the
  // work is over (see heap-reclaimer.ts).
  const reclaimer = new HeapReclaimer({ log }).start();
  const events = new EventRecorder(clients.core, log);
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
      },
      onStoppedLeading: () => {
        // As client-go's binaries do: a leader that lost its lease exits and starts over clean,
        // so it can never write after a successor has started to.
        log.error('exiting after losing leadership');
        process.exit(1);
      },
    });
  }
  const { server, port } = await startHttpServer(opts.metricsAddress ?? config.metrics.address, metrics, {
    // Ready once the first list is processed; a leader also needs its lease. A standby is ready
    // (it serves metrics and must not block a rolling update); a leader whose last renew is older
    // than renewDeadline is not (it is about to step down).
    ready: () => controller.ready() && elector?.state() !== 'lapsed',
  });
  controller.start();
  waker?.start();
  rollouts.start();
  signer?.start();
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
      waker?.stop();
      await signer?.stop();
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
