import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import * as k8s from '@kubernetes/client-node';
import { expect, it } from 'vitest';
import { nodeBinaries } from '../../src/devcluster/binaries.ts';
import { diffHost, snapshotHost } from '../../src/devcluster/host-state.ts';
import { startNode } from '../../src/devcluster/node.ts';
import { issueLeaf, makeCA } from '../testenv/certs.ts';
import { waitFor } from '../testenv/net.ts';
import {
  describeOnNode,
  execInPod,
  hostSnapshotBeforeNode,
  importImage,
  podLogs,
  testboxPod,
  useNode,
  useNodeNamespace,
  waitForPodReady,
} from '../testenv/node.ts';

/** GET over TLS with an optional bearer token; never throws for an HTTP status. */
async function get(url: string, ca: string, token?: string): Promise<{ status: number; body: string }> {
  return await new Promise((resolve, reject) => {
    const req = request(url, { ca, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describeOnNode('the e2e node', () => {
  const node = useNode();
  const ns = useNodeNamespace(import.meta.url, node);
  let serverIp = '';

  it('runs a pod from an imported image: created → Ready, and its log through the API server', async () => {
    const { core, info } = node();
    const t0 = Date.now();
    await core.createNamespacedPod({
      namespace: ns(),
      body: testboxPod(info, 'server', ['serve', '8080', 'hello from the server pod'], { app: 'server' }),
    });
    const pod = await waitForPodReady(core, ns(), 'server');
    process.stdout.write(`[e2e] pod created → Ready in ${Date.now() - t0} ms\n`);
    expect(pod.spec?.nodeName).toBe(info.nodeName);
    serverIp = pod.status?.podIP ?? '';
    expect(serverIp.startsWith(info.podCidr.split('.').slice(0, 3).join('.'))).toBe(true);
    // kubectl logs: API server → kubelet (InternalIP, kubelet client certificate, webhook authz).
    expect(
      await waitFor('the server log line', async () => {
        const log = await podLogs(core, ns(), 'server');
        return log.includes('testbox: serving on 8080') ? log : false;
      }),
    ).toContain('serving on 8080');
  });

  it('imports an image archive through the harness (what the product image goes through)', async () => {
    const { info } = node();
    expect(await importImage(info.imageArchives.testbox)).toEqual([info.images.testbox]);
  });

  it('execs in a pod through the API server, with output and exit code', async () => {
    const { core, info, kc } = node();
    await core.createNamespacedPod({ namespace: ns(), body: testboxPod(info, 'client', ['sleep']) });
    await waitForPodReady(core, ns(), 'client');
    const ok = await execInPod(kc, ns(), 'client', 'main', ['/testbox', 'get', serverIp, '8080']);
    expect(ok).toEqual({ stdout: 'hello from the server pod\n', stderr: '', exitCode: 0 });
    const refused = await execInPod(kc, ns(), 'client', 'main', ['/testbox', 'get', info.nodeIp, '1']);
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toContain(`cannot connect to ${info.nodeIp}:1: Connection refused`);
    expect(await podLogs(core, ns(), 'server')).toContain('testbox: connection from ');
  });

  it('reaches a Service ClusterIP from a pod (kube-proxy), and the API server through the kubernetes Service', async () => {
    const { core, kc, info } = node();
    const svc = await core.createNamespacedService({
      namespace: ns(),
      body: {
        metadata: { name: 'server' },
        spec: { selector: { app: 'server' }, ports: [{ port: 80, targetPort: 8080 }] },
      },
    });
    const clusterIp = svc.spec?.clusterIP ?? '';
    expect(clusterIp.startsWith(info.serviceCidr.split('.').slice(0, 3).join('.'))).toBe(true);
    // kube-proxy writes the rules shortly after the EndpointSlice appears.
    const got = await waitFor(`${clusterIp}:80 answering from a pod`, async () => {
      const r = await execInPod(kc, ns(), 'client', 'main', ['/testbox', 'get', clusterIp, '80']);
      if (r.exitCode !== 0) throw new Error(r.stderr.trim());
      return r.stdout;
    });
    expect(got).toBe('hello from the server pod\n');
    const kubernetes = await core.readNamespacedService({ namespace: 'default', name: 'kubernetes' });
    const api = await execInPod(kc, ns(), 'client', 'main', [
      '/testbox',
      'connect',
      kubernetes.spec?.clusterIP ?? '',
      '443',
    ]);
    expect(api).toEqual({ stdout: 'connected\n', stderr: '', exitCode: 0 });
  });

  it('serves TLS from a mounted Secret (testbox tls-serve): the host and a pod see its serial; pods get no nameserver', async () => {
    const { core, kc, info } = node();
    const ca = await makeCA('e2e-node-test-ca');
    const leaf = await issueLeaf(ca, {
      commonName: 'tls-server',
      ipAddresses: ['10.217.0.0'],
      usage: 'server',
    });
    const serial = new X509Certificate(leaf.certPem).serialNumber;
    await core.createNamespacedSecret({
      namespace: ns(),
      body: {
        metadata: { name: 'tls-server' },
        type: 'kubernetes.io/tls',
        stringData: { 'tls.crt': leaf.certPem, 'tls.key': leaf.keyPem },
      },
    });
    const pod = testboxPod(info, 'tls-server', ['tls-serve', '8443', '/tls']);
    if (pod.spec) {
      pod.spec.volumes = [{ name: 'tls', secret: { secretName: 'tls-server' } }];
      const main = pod.spec.containers[0];
      if (main) main.volumeMounts = [{ name: 'tls', mountPath: '/tls', readOnly: true }];
    }
    await core.createNamespacedPod({ namespace: ns(), body: pod });
    const ip = (await waitForPodReady(core, ns(), 'tls-server')).status?.podIP ?? '';
    // From the host, over the bridge.
    const seen = await waitFor('a TLS handshake with the pod', async () => {
      return await new Promise<string>((resolve, reject) => {
        const socket = tlsConnect({ host: ip, port: 8443, rejectUnauthorized: false }, () => {
          resolve(socket.getPeerX509Certificate()?.serialNumber ?? '');
          socket.destroy();
        });
        socket.on('error', reject);
      });
    });
    expect(seen).toBe(serial);
    // From a pod.
    const got = await execInPod(kc, ns(), 'client', 'main', ['/testbox', 'tls-get', ip, '8443']);
    expect(got).toEqual({
      stdout: `serial=${serial}\nserial=${serial} reloads=0\n`,
      stderr: '',
      exitCode: 0,
    });
    // No DNS: with resolvConf "" the kubelet does not hand pods the machine's resolver; what a
    // pod gets is its own loopback (its network namespace), where nothing answers.
    const resolv = await execInPod(kc, ns(), 'client', 'main', ['/testbox', 'cat', '/etc/resolv.conf']);
    expect(resolv.exitCode).toBe(0);
    const servers = [...resolv.stdout.matchAll(/^nameserver\s+(\S+)/gm)].map((m) => m[1]);
    expect(servers.filter((s) => !s?.startsWith('127.'))).toEqual([]);
  });

  it('reaches nothing outside the bridge and the Service range from a pod', async () => {
    const { kc } = node();
    // TEST-NET-3: were there a route, the host would try its uplink.
    const out = await execInPod(kc, ns(), 'client', 'main', ['/testbox', 'get', '203.0.113.7', '80']);
    expect(out.exitCode).toBe(1);
    expect(out.stderr).toContain('Network is unreachable');
  });

  it('cannot pull: a pull fails on the machine, at the closed loopback port every registry is mirrored to', async () => {
    const { core, info } = node();
    const pod = testboxPod(info, 'pull', ['sleep']);
    const main = pod.spec?.containers[0];
    if (main) {
      main.image = 'registry.example/nothing-here:1';
      main.imagePullPolicy = 'Always';
    }
    await core.createNamespacedPod({ namespace: ns(), body: pod });
    const message = await waitFor('the pull to fail', async () => {
      const p = await core.readNamespacedPod({ namespace: ns(), name: 'pull' });
      const waiting = p.status?.containerStatuses?.[0]?.state?.waiting;
      return waiting?.reason === 'ErrImagePull' || waiting?.reason === 'ImagePullBackOff'
        ? waiting.message
        : false;
    });
    expect(message).toContain('127.0.0.1:9');
  });

  it('the kubelet refuses anonymous clients and asks the API server whether the others may', async () => {
    const { core, info } = node();
    const kubelet = `https://${info.nodeIp}:10250/pods`;
    expect((await get(kubelet, info.caPem)).status).toBe(401);
    // Authenticated (TokenReview) but not authorized (SubjectAccessReview: no nodes/proxy).
    const token = await core.createNamespacedServiceAccountToken({
      namespace: ns(),
      name: 'default',
      body: { spec: { audiences: [], expirationSeconds: 600 } },
    });
    const denied = await get(kubelet, info.caPem, token.status?.token);
    expect(denied.status).toBe(403);
    expect(denied.body).toContain(`user=system:serviceaccount:${ns()}:default, verb=get, resource=nodes`);
  });

  it('serves the beta APIs the next issues need (PodCertificateRequest, ClusterTrustBundle)', async () => {
    const { kc } = node();
    const objects = kc.makeApiClient(k8s.CustomObjectsApi);
    const bundles = await objects.listClusterCustomObject({
      group: 'certificates.k8s.io',
      version: 'v1beta1',
      plural: 'clustertrustbundles',
    });
    expect(bundles).toMatchObject({ kind: 'ClusterTrustBundleList' });
    const requests = await objects.listNamespacedCustomObject({
      group: 'certificates.k8s.io',
      version: 'v1beta1',
      namespace: ns(),
      plural: 'podcertificaterequests',
    });
    expect(requests).toMatchObject({ kind: 'PodCertificateRequestList' });
  });

  it('is the only node on the machine: a second one waits for the lock and gives up with one line', async () => {
    node();
    const found = await nodeBinaries(() => undefined);
    if ('unavailable' in found) throw new Error(found.unavailable);
    const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-second-node-'));
    await expect(startNode(found.bins, dir, { lockWaitMs: 1_000 })).rejects.toThrow(
      /another test node has held \/run\/cert-rotator-node\/lock for 1000 ms/,
    );
    await rm(dir, { recursive: true });
    // It gave up before touching anything: the first node still serves.
    const { core, info } = node();
    expect((await core.readNode({ name: info.nodeName })).metadata?.name).toBe(info.nodeName);
  });

  it('the host check sees what the node changed (the teardown fails unless all of it is gone)', async () => {
    const { info } = node();
    const diff = diffHost(await hostSnapshotBeforeNode(), await snapshotHost());
    const svc = info.serviceCidr.replace(/\./g, '\\.');
    expect(diff).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^links: \+ crnode0 /),
        expect.stringMatching(/^addresses: \+ crnode0 inet 10\.217\.0\.1\/24$/),
        expect.stringMatching(new RegExp(`^routes: \\+ unicast ${svc} via - dev crnode0`)),
        expect.stringMatching(/^iptables: \+ mangle -A FORWARD -j CR-NODE-GUARD$/),
        expect.stringMatching(/^iptables: \+ nat :KUBE-SERVICES/),
        expect.stringMatching(/^sysctls: \+ net\.ipv4\.ip_forward = 1$/),
        expect.stringMatching(/^mounts: \+ \S+ nsfs /),
        expect.stringMatching(/^directories: \+ \/var\/lib\/kubelet$/),
        expect.stringMatching(/^cgroups: \+ \/sys\/fs\/cgroup\/memory\/kubepods$/),
      ]),
    );
  });
});
