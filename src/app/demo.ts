import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/load.ts';
import { controlPlaneBinaries } from '../devcluster/binaries.ts';
import { type ControlPlane, startControlPlane } from '../devcluster/control-plane.ts';
import type { Node } from '../devcluster/node.ts';
import { type Peer, startPeer, stopAllPeers } from '../devcluster/processes.ts';
import { describeApiError, type KubeClients, loadKubeConfig, makeClients } from '../kube/client.ts';
import { computeRenewalTime, parseRenewBefore } from '../policy/renewal.ts';
import {
  DEMO_TLS_PORT,
  normalSerial,
  observePods,
  type PodView,
  podChanges,
  podLines,
  servingRenewed,
  tryStartNode,
} from './demo-node.ts';
import { createDemoObjects, DEMO, demoConfigYaml, observe, type Snapshot } from './demo-scenario.ts';
import {
  changes,
  clockTime,
  type Progress,
  renewed,
  rolledReplicaSet,
  screen,
  span,
  Terminal,
} from './demo-view.ts';

/** The whole demo must be over this long after the controller started; it never hangs. */
const ROTATION_DEADLINE_MS = 3 * 60_000;
const POLL_MS = 1_000;
/** Non-TTY: a "still waiting" line at most this often when nothing else happened. */
const PLAIN_HEARTBEAT_MS = 10_000;

/** The CLI entry of this build (src/cli.ts from a checkout, dist/cli.js when compiled). */
function cliPath(): string {
  return fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? '../cli.ts' : '../cli.js', import.meta.url));
}

/** Everything the demo started, stopped once (normal end, failure, Ctrl-C or SIGTERM). */
class Session {
  dir: string | undefined;
  plane: ControlPlane | undefined;
  /** Where a node runs, the plane is its control plane and stopping the node stops it. */
  node: Node | undefined;
  controller: Peer | undefined;
  keep = false;
  private stopping: Promise<void> | undefined;

  pids(): Array<[string, number]> {
    const peers = [
      ...(this.node?.peers ?? this.plane?.peers ?? []),
      ...(this.controller ? [this.controller] : []),
    ];
    return peers.map((p) => [p.name, p.pid]);
  }

  stop(say: (text: string) => void): Promise<void> {
    this.stopping ??= (async () => {
      const pids = this.pids();
      await this.controller?.stop();
      // The node stops its control plane too and restores the host (bridge, rules, mounts).
      if (this.node) await this.node.stop();
      else await this.plane?.stop();
      // Anything started but not yet handed back (an interrupted start-up).
      await stopAllPeers();
      if (pids.length > 0) say(`stopped ${pids.map(([n, p]) => `${n} (pid ${p})`).join(', ')}`);
      if (this.dir) {
        await rm(this.dir, { recursive: true, force: true });
        say(`removed ${this.dir}`);
      }
    })();
    return this.stopping;
  }
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { keep: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } },
    strict: true,
  });
  if (values.help) {
    process.stdout.write('Usage: cert-rotator demo [--keep]\n');
    return 0;
  }
  const term = new Terminal(process.stdout);
  const session = new Session();
  session.keep = values.keep === true;
  const onSignal = (signal: NodeJS.Signals) => {
    term.line(`${signal}: stopping`);
    void session.stop((t) => term.line(t)).finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(s, onSignal);
  let ok = false;
  try {
    const code = await demo(term, session);
    ok = code === 0;
    return code;
  } catch (err) {
    term.line(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
    // The directory is removed below: show the end of the log the error names (or the controller's).
    const named = /see (\S+\.log)/.exec(err instanceof Error ? err.message : '')?.[1];
    const logFile = named ?? session.controller?.logFile;
    if (logFile) {
      const log = await readFile(logFile, 'utf8').catch(() => '');
      const name = basename(logFile, '.log');
      for (const line of log.trimEnd().split('\n').slice(-15)) if (line) term.line(`  ${name} log: ${line}`);
    }
    return 1;
  } finally {
    // --keep holds a working demo open (until Ctrl-C); a failed one is always cleaned up.
    if (!session.keep || !ok) await session.stop((t) => term.line(t));
  }
}

async function demo(term: Terminal, session: Session): Promise<number> {
  const t0 = Date.now();
  term.line('cert-rotator demo: a certificate about to expire is renewed, and the Deployment using it rolls');
  term.line(
    'step 1/4: etcd, kube-apiserver, kube-controller-manager (built once from the Go module proxy, then cached)',
  );
  const bins = await controlPlaneBinaries((l) => term.line(`  ${l}`));

  session.dir = await mkdtemp(join(tmpdir(), 'cert-rotator-demo-'));
  const tPlane = Date.now();
  // A node where one can run: the Deployment's pods then really serve the certificate.
  const started = await tryStartNode(join(session.dir, 'node'), (l) => term.line(`  ${l}`)).catch(
    (err: unknown) => ({ unavailable: err instanceof Error ? err.message.split('\n')[0] : String(err) }),
  );
  if ('node' in started) {
    session.node = started.node;
    session.plane = started.node.controlPlane;
    term.line(
      `step 2/4: a one-node cluster (kubelet, containerd, the testbox image) in ${session.dir}: pods run and serve TLS`,
    );
  } else {
    term.line(
      `no node: ${started.unavailable}; the pods are not run (the demo shows the Deployment rolling)`,
    );
    term.line(`step 2/4: starting a control plane on loopback in ${session.dir}`);
    session.plane = await startControlPlane(bins, join(session.dir, 'cluster'), {
      onStep: (s) => term.line(`  ${s}`),
    });
  }
  const plane = session.plane;
  const node = session.node;
  const planeMs = Date.now() - tPlane;
  term.line(
    node
      ? `  node ${node.nodeName} Ready in ${span(planeMs)}, API server ${plane.apiServerUrl}`
      : `  control plane ready in ${span(planeMs)} at ${plane.apiServerUrl} (no nodes: pods are never scheduled)`,
  );

  term.line(
    `step 3/4: namespace ${DEMO.namespace}: CA issuer Secret ${DEMO.caSecret}, Secret ${DEMO.secret}, Deployment ${DEMO.deployment}`,
  );
  const clients: KubeClients = makeClients(loadKubeConfig(plane.kubeconfigPath));
  const created = Date.now();
  const objects = await createDemoObjects(
    clients,
    created,
    node ? { image: node.images.testbox, port: DEMO_TLS_PORT } : undefined,
  );
  term.line(
    `  ${DEMO.secret}: a ${span(DEMO.firstLifetimeMs)} certificate (notAfter ${clockTime(objects.firstNotAfter)}), renew-before ${DEMO.renewBefore}: due at ${clockTime(computeRenewalTime({ notBefore: created, notAfter: objects.firstNotAfter, renewBefore: parseRenewBefore(DEMO.renewBefore) }))}; the renewal asks the CA for ${DEMO.renewedDuration}`,
  );

  term.line('step 4/4: starting the controller (cert-rotator controller)');
  const configPath = join(session.dir, 'config.yaml');
  const demoConfig = loadConfig(demoConfigYaml());
  await writeFile(configPath, demoConfigYaml());
  session.controller = await startPeer(
    'controller',
    process.execPath,
    [
      cliPath(),
      'controller',
      '--config',
      configPath,
      '--kubeconfig',
      plane.kubeconfigPath,
      '--metrics-address',
      '127.0.0.1:0',
    ],
    { logDir: join(session.dir, 'logs') },
  );
  const controller = session.controller;
  void controller.exited.then(() => exitedPeers.add(controller));
  const controllerStarted = Date.now();
  term.line(
    `pids: ${session
      .pids()
      .map(([n, p]) => `${n}=${p}`)
      .join(' ')}`,
  );
  term.line(`directory: ${session.dir}`);

  const firstRs = await firstReplicaSets(clients);
  const progress: Progress = {
    firstSerial: objects.firstSerial,
    firstReplicaSets: firstRs,
    node: node !== undefined,
  };
  const header = [
    `cert-rotator demo — control plane ${plane.apiServerUrl}, controller pid ${session.controller.pid}`,
    'Ctrl-C stops everything.',
  ];
  let prev: Snapshot | undefined;
  let lastPlain = Date.now();
  let renewedAt: number | undefined;
  let last: Snapshot | undefined;
  let pods: PodView[] = [];
  let firstPods: Set<string> | undefined;
  for (;;) {
    const now = Date.now();
    if (!isRunning(session.controller)) {
      throw new Error(`the controller exited; its log: ${session.controller.logFile}`);
    }
    let snap: Snapshot | undefined;
    try {
      snap = await observe(clients, demoConfig);
    } catch (err) {
      term.line(`reading the cluster failed: ${describeApiError(err)} (retrying)`);
    }
    let podsNow: PodView[] | undefined;
    if (node) podsNow = await observePods(clients).catch(() => undefined);
    if (snap) {
      last = snap;
      if (podsNow) {
        // The first pods: those serving the first certificate before any renewal.
        if (
          firstPods === undefined &&
          podsNow.length > 0 &&
          podsNow.every((p) => p.serial === normalSerial(objects.firstSerial))
        )
          firstPods = new Set(podsNow.map((p) => p.name));
        if (!term.tty) for (const l of podChanges(pods, podsNow, objects.firstSerial)) term.line(l);
        pods = podsNow;
      }
      if (renewedAt === undefined && renewed(snap, progress)) renewedAt = now;
      if (term.tty)
        term.redraw([
          ...screen(snap, progress, now, header),
          ...(node ? podLines(pods, objects.firstSerial) : []),
        ]);
      else {
        const lines = changes(prev, snap, progress, now);
        for (const l of lines) term.line(l);
        if (lines.length > 0) lastPlain = now;
        else if (now - lastPlain >= PLAIN_HEARTBEAT_MS && snap.cert) {
          term.line(
            renewedAt === undefined
              ? `waiting for the renewal: ${snap.cert.renewalTime !== undefined ? `due at ${clockTime(snap.cert.renewalTime)}` : 'not planned yet'}, certificate has ${span(snap.cert.notAfter - now)} left`
              : 'renewed; waiting for the Deployment to get its new ReplicaSet',
          );
          lastPlain = now;
        }
      }
      prev = snap;
      const podsDone =
        !node ||
        (firstPods !== undefined &&
          snap.cert !== undefined &&
          servingRenewed(pods, firstPods, snap.cert.serial, DEMO.replicas));
      if (renewed(snap, progress) && rolledReplicaSet(snap, progress) && podsDone) break;
    }
    if (now - controllerStarted > ROTATION_DEADLINE_MS) {
      throw new Error(
        `no renewal and rollout within ${span(ROTATION_DEADLINE_MS)} (renewed: ${renewedAt !== undefined}); the controller's log: ${session.controller.logFile}`,
      );
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }

  const final = last as Snapshot;
  const cert = final.cert;
  const rolled = rolledReplicaSet(final, progress);
  const reasons = [
    ...new Set(
      final.events
        .filter((e) => e.object.startsWith('Secret/') || e.reason.startsWith('Rollout'))
        .map((e) => e.reason),
    ),
  ];
  term.line('summary:');
  term.line(
    `  renewed: serial ${objects.firstSerial.slice(0, 16)}… (notAfter ${clockTime(objects.firstNotAfter)}) → ${cert?.serial.slice(0, 16)}… (notAfter ${cert ? new Date(cert.notAfter).toISOString() : '?'}), revision ${cert?.revision}`,
  );
  term.line(
    `  renewed ${span((renewedAt ?? Date.now()) - created)} after the Secret was created (due at notAfter − ${DEMO.renewBefore})`,
  );
  term.line(
    `  rollout done: Deployment ${DEMO.deployment} has the new ReplicaSet ${rolled} beside ${[...progress.firstReplicaSets].join(', ') || '(none)'}${node ? '' : ' (no nodes, so no pod runs)'}`,
  );
  if (node) {
    term.line(
      `  served: pods ${[...(firstPods ?? [])].join(', ')} served ${normalSerial(objects.firstSerial).slice(0, 16)}…; they were replaced by ${pods
        .filter((p) => !p.terminating)
        .map((p) => p.name)
        .join(
          ', ',
        )}, each serving ${normalSerial(cert?.serial ?? '').slice(0, 16)}… (TLS handshakes with the pod IPs)`,
    );
  }
  term.line(`  events: ${reasons.join(', ') || '(none)'}`);
  term.line(`  took ${span(Date.now() - t0)} in all (control plane start ${span(planeMs)})`);

  if (session.keep) {
    term.line('--keep: the control plane and the controller stay up. In another shell:');
    term.line(`  export KUBECONFIG=${plane.kubeconfigPath}`);
    term.line(`  kubectl get secrets,deployments,replicasets -n ${DEMO.namespace}`);
    term.line(`  node ${cliPath()} scan          # or: kubectl cert-rotator scan`);
    term.line(`  node ${cliPath()} renew ${DEMO.namespace}/${DEMO.secret}`);
    term.line('Ctrl-C stops everything and removes the directory. Changes from now on:');
    let toldExit = false;
    for (;;) {
      await new Promise((r) => setTimeout(r, POLL_MS));
      if (!isRunning(session.controller) && !toldExit) {
        toldExit = true;
        term.line(`the controller exited; its log: ${session.controller.logFile}`);
      }
      const snap = await observe(clients, demoConfig).catch(() => undefined);
      if (!snap) continue;
      for (const l of changes(prev, snap, progress, Date.now())) term.line(l);
      prev = snap;
    }
  }
  return 0;
}

const exitedPeers = new WeakSet<Peer>();
function isRunning(peer: Peer): boolean {
  return !exitedPeers.has(peer);
}

/** The Deployment's ReplicaSet(s) before any renewal, once the deployment controller made one. */
async function firstReplicaSets(clients: KubeClients): Promise<Set<string>> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const list = await clients.apps.listNamespacedReplicaSet({
      namespace: DEMO.namespace,
      labelSelector: `app=${DEMO.deployment}`,
    });
    if (list.items.length > 0) return new Set(list.items.map((rs) => rs.metadata?.name ?? ''));
    if (Date.now() > deadline) throw new Error(`Deployment ${DEMO.deployment} got no ReplicaSet within 60s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
