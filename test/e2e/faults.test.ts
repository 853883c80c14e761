/**
 * Faults as a cluster makes them, on the node: the leader's container process is killed while
 * renewals are due (the kubelet restarts it), and the leader's pod is evicted from a cordoned
 * node, where the chart's PodDisruptionBudget refuses a second eviction.
 */
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { waitFor } from '../testenv/net.ts';
import { describeOnNode, useNode, useNodeNamespace } from '../testenv/node.ts';
import {
  containerPids,
  helmOnNode,
  installChart,
  isReady,
  podsBySelector,
  productImage,
  waitForReadyPods,
} from '../testenv/product.ts';
import { makeLeaf, makeTestCA, type Pair, tlsSecret } from '../testenv/tls-fixtures.ts';

const A = 'cert-rotator.io/';
const RELEASE = 'crf';
const CONTROLLER = `app.kubernetes.io/instance=${RELEASE},app.kubernetes.io/name=cert-rotator`;
const DAY = 86_400_000;
const SECRETS = 12;

describeOnNode('faults on a node', () => {
  const node = useNode();
  const ns = useNodeNamespace(import.meta.url, node);
  let helm: Awaited<ReturnType<typeof helmOnNode>> | undefined;
  let ca: Pair;

  const coordination = () => node().kc.makeApiClient(k8s.CoordinationV1Api);
  async function leader(): Promise<{ pod: string; identity: string }> {
    const lease = await coordination().readNamespacedLease({ namespace: ns(), name: 'cert-rotator' });
    const identity = lease.spec?.holderIdentity ?? '';
    return { pod: identity.replace(/_[^_]*$/, ''), identity };
  }
  async function renewedCount(names: string[]): Promise<Map<string, string | undefined>> {
    const list = await node().core.listNamespacedSecret({ namespace: ns() });
    return new Map(
      list.items
        .filter((s) => names.includes(s.metadata?.name ?? ''))
        .map((s) => [s.metadata?.name ?? '', s.metadata?.annotations?.[`${A}revision`]]),
    );
  }
  const requestRenewal = async (name: string) =>
    await node().core.patchNamespacedSecret(
      {
        namespace: ns(),
        name,
        body: { metadata: { annotations: { [`${A}renew-requested-at`]: new Date().toISOString() } } },
      },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );

  beforeAll(async () => {
    const { core, info } = node();
    const image = await productImage();
    helm = await helmOnNode(info);
    ca = await makeTestCA('e2e faults CA');
    await core.createNamespacedSecret({ namespace: ns(), body: tlsSecret('internal-ca', ca) });
    await installChart(helm, RELEASE, ns(), image, [
      '--set-json',
      `config.issuers=[{"name":"internal","ca":{"secret":{"namespace":"${ns()}","name":"internal-ca"}}}]`,
      // A short lease, so a takeover is seconds, not the default 15 s.
      '--set-json',
      'config.leaderElection={"enabled":true,"leaseName":"cert-rotator","leaseDuration":"4s","renewDeadline":"3s","retryPeriod":"500ms"}',
    ]);
    await waitForReadyPods(core, ns(), CONTROLLER, 2, 'both controller pods Ready', 120_000);
  });

  afterAll(async () => {
    const { core, info } = node();
    await core
      .patchNode(
        { name: info.nodeName, body: { spec: { unschedulable: false } } },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
      )
      .catch(() => undefined);
    if (helm && ns()) await helm.run(['uninstall', RELEASE, '--namespace', ns(), '--wait=false']);
    await helm?.close();
  });

  it('kill -9 of the leader container while renewals are due: the kubelet restarts it, each Secret renewed exactly once', async () => {
    const { core } = node();
    const names = Array.from({ length: SECRETS }, (_, i) => `due-${i}`);
    for (const name of names) {
      // RSA 4096: each renewal takes long enough that the kill lands with most of them to do.
      const leaf = await makeLeaf({ dnsNames: [`${name}.e2e.test`], fromMs: -60_000, toMs: 30 * DAY, ca });
      await core.createNamespacedSecret({
        namespace: ns(),
        body: tlsSecret(name, leaf, { [`${A}enabled`]: 'true', [`${A}key-algorithm`]: 'rsa-4096' }),
      });
    }
    const first = await waitFor('a leader', async () => {
      const l = await leader();
      return l.identity ? l : undefined;
    });
    const leaderIp = (await core.readNamespacedPod({ namespace: ns(), name: first.pod })).status?.podIP;
    await waitFor(`the leader's /metrics listing all ${SECRETS} Secrets`, async () => {
      const body = await (await fetch(`http://${leaderIp}:9402/metrics`)).text();
      return (
        body
          .split('\n')
          .filter(
            (l) =>
              l.startsWith('cert_rotator_certificate_not_after_timestamp_seconds{') &&
              l.includes('secret="due-') &&
              l.includes('managed="true"'),
          ).length === SECRETS
      );
    });
    const pods = await podsBySelector(core, ns(), CONTROLLER);
    const leaderPod = pods.find((p) => p.metadata?.name === first.pod);
    if (!leaderPod) throw new Error(`leader ${first.pod} is none of ${pods.map((p) => p.metadata?.name)}`);
    for (const name of names) await requestRenewal(name);
    // Kill as soon as the leader has renewed one.
    const atKill = await waitFor(
      'the first renewal',
      async () => {
        const revs = await renewedCount(names);
        const done = [...revs.values()].filter((r) => r !== undefined).length;
        return done > 0 ? done : undefined;
      },
      { intervalMs: 20 },
    );
    for (const pid of containerPids(leaderPod, 'controller')) process.kill(pid, 'SIGKILL');
    process.stdout.write(`[e2e] killed the leader's container with ${atKill}/${SECRETS} renewed\n`);
    expect(atKill).toBeLessThan(SECRETS);

    const revisions = await waitFor(
      'every Secret renewed',
      async () => {
        const revs = await renewedCount(names);
        return [...revs.values()].every((r) => r !== undefined) ? revs : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 200 },
    );
    // The kubelet restarted the killed container in place.
    const restarted = await waitFor('the killed container restarted and Ready', async () => {
      const p = await core.readNamespacedPod({ namespace: ns(), name: first.pod });
      return (p.status?.containerStatuses?.[0]?.restartCount ?? 0) >= 1 && isReady(p) ? p : undefined;
    });
    expect(restarted.status?.containerStatuses?.[0]?.lastState?.terminated?.exitCode).toBe(137);
    // Every request handled exactly once: the handled token is the requested one.
    for (const name of names) {
      const s = await core.readNamespacedSecret({ namespace: ns(), name });
      expect(s.metadata?.annotations?.[`status.${A}renew-request-handled`]).toBe(
        s.metadata?.annotations?.[`${A}renew-requested-at`],
      );
    }
    // Read again now that the restarted replica is back: still revision 1 each.
    expect([...revisions.values()]).toEqual(names.map(() => '1'));
    expect([...(await renewedCount(names)).values()]).toEqual(names.map(() => '1'));
    const events = await core.listNamespacedEvent({ namespace: ns() });
    for (const name of names) {
      const renewed = events.items.filter((e) => e.involvedObject.name === name && e.reason === 'Renewed');
      // At most one: a leader killed between writing the Secret and sending its event sends none.
      expect(
        renewed.reduce((n, e) => n + (e.count ?? 1), 0),
        name,
      ).toBeLessThanOrEqual(1);
    }
  });

  it('cordon + evict the leader: the other replica leads and renews; the PDB refuses a second eviction; uncordon', async () => {
    const { core, info } = node();
    const policy = node().kc.makeApiClient(k8s.PolicyV1Api);
    await waitForReadyPods(core, ns(), CONTROLLER, 2, 'both controller pods Ready');
    await waitFor('the PDB to allow one disruption', async () => {
      const pdb = await policy.readNamespacedPodDisruptionBudget({
        namespace: ns(),
        name: `${RELEASE}-cert-rotator`,
      });
      return pdb.status?.disruptionsAllowed === 1;
    });
    await core.patchNode(
      { name: info.nodeName, body: { spec: { unschedulable: true } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    const first = await leader();
    const evict = (name: string) =>
      core.createNamespacedPodEviction({
        namespace: ns(),
        name,
        body: { metadata: { name, namespace: ns() } },
      });
    await evict(first.pod);
    const next = await waitFor('the other replica to lead', async () => {
      const l = await leader();
      return l.identity && l.pod !== first.pod ? l : undefined;
    });
    // The replacement of the evicted pod waits: the node is cordoned.
    const pending = await waitFor('the evicted pod replaced by one that cannot be scheduled', async () => {
      const pods = await podsBySelector(core, ns(), CONTROLLER);
      const waiting = pods.filter((p) => p.metadata?.name !== next.pod && !p.metadata?.deletionTimestamp);
      const message = waiting[0]?.status?.conditions?.find((c) => c.type === 'PodScheduled')?.message;
      return waiting.length === 1 && waiting[0]?.status?.phase === 'Pending' && message ? message : undefined;
    });
    expect(pending).toContain('unschedulable');

    // The new leader renews.
    const revision = async () =>
      Number(
        (await core.readNamespacedSecret({ namespace: ns(), name: 'due-0' })).metadata?.annotations?.[
          `${A}revision`
        ] ?? '0',
      );
    const before = await revision();
    await requestRenewal('due-0');
    await waitFor('due-0 renewed by the new leader', async () => (await revision()) === before + 1);

    // A second eviction would leave no controller: the PDB refuses it.
    const refused = await evict(next.pod).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(k8s.ApiException);
    const apiErr = refused as k8s.ApiException<string>;
    expect(apiErr.code).toBe(429);
    expect(String(apiErr.body)).toContain("Cannot evict pod as it would violate the pod's disruption budget");
    expect(
      (await core.readNamespacedPod({ namespace: ns(), name: next.pod })).metadata?.deletionTimestamp,
    ).toBe(undefined);

    await core.patchNode(
      { name: info.nodeName, body: { spec: { unschedulable: false } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    const both = await waitForReadyPods(
      core,
      ns(),
      CONTROLLER,
      2,
      'both controller pods Ready after uncordon',
    );
    expect(both.map((p) => p.metadata?.name)).toContain(next.pod);
  });
});
