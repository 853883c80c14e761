/**
 * Wiring of `cert-rotator sidecar`: options → source, files, reloaders, health server. Imports
 * only what the chosen source needs, each loaded on demand: the `--secret` path loads neither an
 * X.509 library nor @kubernetes/client-node, prom-client or pino (see docs/sidecar.md, "Size").
 */
import { readFile } from 'node:fs/promises';
import { EnvVar } from '../names.ts';
import { HeapReclaimer } from '../observability/heap-reclaimer.ts';
import type { Identity } from '../pki/sign.ts';
import { CertificateFiles } from '../sidecar/cert-files.ts';
import { SidecarMetrics, startHealthServer } from '../sidecar/health.ts';
import { createSidecarLogger, type SidecarLogger } from '../sidecar/log.ts';
import { expandTemplate, type SidecarOptions } from '../sidecar/options.ts';
import { ExecReloader, HttpPostReloader, type Reloader, SignalReloader } from '../sidecar/reloaders.ts';
import { SidecarRunner } from '../sidecar/runner.ts';
import type { Source } from '../sidecar/source.ts';
import { StartupError } from './startup-error.ts';

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

function serviceAccountDir(): string {
  return process.env[EnvVar.serviceAccountDir] || SA_DIR;
}

/** The pod's identity: flags and downward-API env first, then the in-cluster files and token claims. */
export interface PodIdentity {
  namespace?: string | undefined;
  serviceAccount?: string | undefined;
  podName?: string | undefined;
}

async function readTrimmed(path: string): Promise<string | undefined> {
  try {
    return (await readFile(path, 'utf8')).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Namespace and ServiceAccount from a projected token's claims (no signature check: our own token). */
export function claimsOfToken(token: string): PodIdentity {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as {
      'kubernetes.io'?: { namespace?: string; serviceaccount?: { name?: string }; pod?: { name?: string } };
      sub?: string;
    };
    const k = payload['kubernetes.io'];
    const sub = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(payload.sub ?? '');
    return {
      namespace: k?.namespace ?? sub?.[1],
      serviceAccount: k?.serviceaccount?.name ?? sub?.[2],
      podName: k?.pod?.name,
    };
  } catch {
    return {};
  }
}

export async function resolvePodIdentity(o: SidecarOptions): Promise<PodIdentity> {
  const fromToken = o.kubeconfig
    ? {}
    : claimsOfToken((await readTrimmed(`${serviceAccountDir()}/token`)) ?? '');
  return {
    namespace:
      o.namespace ??
      (o.kubeconfig ? undefined : await readTrimmed(`${serviceAccountDir()}/namespace`)) ??
      fromToken.namespace,
    serviceAccount: o.serviceAccount ?? fromToken.serviceAccount,
    podName: o.podName ?? fromToken.podName,
  };
}

export function requiredIdentity(o: SidecarOptions, pod: PodIdentity): Identity {
  const values = { namespace: pod.namespace, serviceaccount: pod.serviceAccount, podname: pod.podName };
  const dnsNames = o.dnsNameTemplates.map((t) => expandTemplate(t, values));
  const uris: string[] = [];
  if (o.source.kind === 'csr') {
    if (!pod.namespace || !pod.serviceAccount) {
      throw new StartupError(
        '--csr-signer needs the namespace and ServiceAccount of the pod: set $POD_NAMESPACE and $POD_SERVICE_ACCOUNT (downward API), or --namespace and --service-account',
      );
    }
    uris.push(`spiffe://${o.trustDomain}/ns/${pod.namespace}/sa/${pod.serviceAccount}`);
  }
  return {
    ...(o.commonName !== undefined ? { commonName: o.commonName } : {}),
    dnsNames,
    ipAddresses: o.ipAddresses,
    uris,
  };
}

function makeReloaders(o: SidecarOptions): Reloader[] {
  return [
    ...o.processes.map((p) => new SignalReloader(o.signal, p, o.signalAll)),
    ...o.httpPosts.map((u) => new HttpPostReloader(u)),
    ...o.execs.map((e) => new ExecReloader(e.command, e.args)),
  ];
}

async function makeSource(o: SidecarOptions, pod: PodIdentity, log: SidecarLogger): Promise<Source> {
  switch (o.source.kind) {
    case 'self-signed':
    case 'ca': {
      const { LocalSource } = await import('../sidecar/local-source.ts');
      return new LocalSource({
        durationMs: o.durationMs,
        keyAlgorithm: o.keyAlgorithm,
        ca: o.source.kind === 'ca' ? { certFile: o.source.certFile, keyFile: o.source.keyFile } : undefined,
      });
    }
    case 'secret': {
      const { secretSource } = await import('./sidecar-kube.ts');
      return await secretSource(o, pod, o.source.name, log);
    }
    case 'csr': {
      const { csrSource } = await import('./sidecar-kube.ts');
      return await csrSource(o, pod, o.source.signerName, log);
    }
  }
}

/**
 * Starts the `--ca-bundle-configmap` watch (if asked for) and waits for its first read (good or
 * not: a missing bundle is retried in the background). `done` settles, with the error, only if
 * the watch stops on one.
 */
async function startTrustBundle(
  o: SidecarOptions,
  pod: PodIdentity,
  runner: SidecarRunner,
  log: SidecarLogger,
  signal: AbortSignal,
): Promise<{ done: Promise<unknown> }> {
  if (o.caBundle === undefined) return { done: new Promise(() => undefined) };
  const { trustBundleWatch } = await import('./sidecar-kube.ts');
  const watch = await trustBundleWatch(o, pod, o.caBundle);
  let looked!: () => void;
  const firstLook = new Promise<void>((resolve) => {
    looked = resolve;
  });
  const done = watch
    .run({
      log,
      signal,
      onBundle: (pem) => runner.setTrust(pem),
      onProblem: (message) => runner.problem(message),
      firstLook: looked,
    })
    .then(
      () => new Promise(() => undefined),
      (err: unknown) => err,
    );
  await Promise.race([firstLook, done]);
  // Wrapped: an async function returning `done` itself would wait for it to settle.
  return { done };
}

export interface RunningSidecar {
  runner: SidecarRunner;
  metricsPort?: number | undefined;
  /** Resolves with the exit code. */
  done: Promise<number>;
  stop(): void;
}

export async function startSidecar(o: SidecarOptions): Promise<RunningSidecar> {
  const log = createSidecarLogger(o.logLevel);
  // A sidecar is idle between renewals: what start-up and an issuance left in V8's page pool
  // goes back to the OS once things are quiet (heap-reclaimer.ts): 59.5 -> 58.4 MiB steady with
  // --secret. Its growth is small, so the bar is 4 MiB rather than the controller's 16.
  const reclaimer = new HeapReclaimer({
    minGrowthBytes: 4 * 1024 * 1024,
    log,
  }).start();
  const pod = await resolvePodIdentity(o);
  const required = requiredIdentity(o, pod);
  const files = new CertificateFiles(o.dir, { keyMode: o.keyMode, bundleFile: o.bundleFile });
  const metrics = new SidecarMetrics();
  const runner = new SidecarRunner({ files, required, reloaders: makeReloaders(o), metrics, log });
  await runner.adoptExisting();
  const source = await makeSource(o, pod, log);

  let server: Awaited<ReturnType<typeof startHealthServer>> | undefined;
  if (o.metricsAddress !== undefined && !o.once) {
    try {
      server = await startHealthServer(o.metricsAddress, metrics, runner);
    } catch (err) {
      throw new StartupError(
        `cannot listen on --metrics-address ${o.metricsAddress}: ${(err as Error).message}`,
      );
    }
  }
  const abort = new AbortController();
  log.info(
    {
      source: source.description,
      dir: o.dir,
      ...(server ? { metricsPort: server.port } : {}),
      reloaders: makeReloaders(o).map((r) => r.description),
      once: o.once,
    },
    'sidecar started',
  );

  // ca.crt from a trust bundle: read before the source delivers, so the first files already
  // hold it and the application is not told of a ca.crt change at pod start.
  const { done: bundleDone } = await startTrustBundle(o, pod, runner, log, abort.signal);
  const sourceDone = source.run(runner.context(log, abort.signal)).then(
    () => undefined,
    (err: unknown) => err,
  );

  const done = (async (): Promise<number> => {
    if (o.once) {
      const ok = await new Promise<boolean>((resolve) => {
        if (runner.current() !== undefined) return resolve(true);
        const timer = setTimeout(() => resolve(false), o.timeoutMs);
        runner.onInstalled(() => {
          clearTimeout(timer);
          resolve(true);
        });
        sourceDone.then((err) => {
          if (err !== undefined) {
            clearTimeout(timer);
            runner.problem((err as Error).message);
            resolve(runner.current() !== undefined);
          }
        });
      });
      abort.abort();
      if (!ok) {
        const why = runner.lastProblemMessage() ?? `${source.description} delivered nothing`;
        process.stderr.write(`cert-rotator sidecar: no certificate within ${o.timeoutMs / 1000}s: ${why}\n`);
        log.error({ timeoutMs: o.timeoutMs, problem: why }, 'no certificate within the timeout');
        return 1;
      }
      log.info(
        { ...(runner.current()!.leaf.serialHex ? { serial: runner.current()!.leaf.serialHex } : {}) },
        'certificate written; exiting (--once)',
      );
      return 0;
    }
    const err = await Promise.race([
      sourceDone,
      bundleDone,
      new Promise<undefined>((r) =>
        abort.signal.addEventListener('abort', () => r(undefined), { once: true }),
      ),
    ]);
    abort.abort();
    reclaimer.stop();
    server?.server.close();
    if (err !== undefined) {
      log.error({ err }, 'the source stopped');
      process.stderr.write(`cert-rotator sidecar: ${(err as Error).message}\n`);
      return 1;
    }
    log.info({}, 'stopped');
    return 0;
  })();
  return { runner, metricsPort: server?.port, done, stop: () => abort.abort() };
}
