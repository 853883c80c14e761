import { describe, expect, it } from 'vitest';
import { featureGatesArg, firstHostAddress } from '../../src/devcluster/control-plane.ts';
import { diffHost, unescapeMount } from '../../src/devcluster/host-state.ts';
import { kubeletConfig } from '../../src/devcluster/node-kubelet.ts';
import { NODE_NETWORK } from '../../src/devcluster/node-network.ts';

describe('the e2e node, pure parts', () => {
  it('puts the kubernetes Service on the first address of the Service range', () => {
    expect(firstHostAddress('10.96.0.0/24')).toBe('10.96.0.1');
    expect(firstHostAddress('10.217.1.0/24')).toBe('10.217.1.1');
    expect(firstHostAddress('10.0.255.0/23')).toBe('10.0.255.1');
    expect(() => firstHostAddress('fd00::/64')).toThrow('not an IPv4 CIDR: fd00::/64');
  });

  it('writes feature gates sorted, and none at all when there are none', () => {
    expect(featureGatesArg({ PodCertificateRequest: true, ClusterTrustBundle: false })).toBe(
      'ClusterTrustBundle=false,PodCertificateRequest=true',
    );
    expect(featureGatesArg({})).toBeUndefined();
    expect(featureGatesArg(undefined)).toBeUndefined();
  });

  it('keeps the node network off 10.88.0.0/16 and the Service range apart from the pods', () => {
    expect(NODE_NETWORK.podCidr.startsWith('10.88.')).toBe(false);
    expect(NODE_NETWORK.serviceCidr).not.toBe(NODE_NETWORK.podCidr);
    expect(NODE_NETWORK.nodeIp).toBe(firstHostAddress(NODE_NETWORK.podCidr));
  });

  it('configures the kubelet for this host: cgroup v1, no swap check, no host DNS, no anonymous access', () => {
    const config = kubeletConfig({
      net: NODE_NETWORK,
      caFile: '/ca.crt',
      tlsCertFile: '/kubelet.crt',
      tlsKeyFile: '/kubelet.key',
      runtimeSocket: '/containerd.sock',
      podLogsDir: '/logs',
      featureGates: { PodCertificateRequest: true },
    });
    expect(config).toMatchObject({
      failCgroupV1: false,
      cgroupDriver: 'cgroupfs',
      failSwapOn: false,
      resolvConf: '',
      oomScoreAdj: 0,
      address: NODE_NETWORK.nodeIp,
      authentication: {
        anonymous: { enabled: false },
        webhook: { enabled: true },
        x509: { clientCAFile: '/ca.crt' },
      },
      authorization: { mode: 'Webhook' },
      containerRuntimeEndpoint: 'unix:///containerd.sock',
      imageGCHighThresholdPercent: 100,
      featureGates: { PodCertificateRequest: true },
    });
  });

  it('reports each difference of two host snapshots as one line', () => {
    const before = { routes: ['unicast default via 192.0.2.1'], sysctls: ['net.ipv4.ip_forward = 0'] };
    const after = {
      routes: ['unicast default via 192.0.2.1', 'unicast 10.217.1.0/24 via - dev crnode0'],
      sysctls: ['net.ipv4.ip_forward = 1'],
    };
    expect(diffHost(before, after)).toEqual([
      'routes: + unicast 10.217.1.0/24 via - dev crnode0',
      'sysctls: - net.ipv4.ip_forward = 0',
      'sysctls: + net.ipv4.ip_forward = 1',
    ]);
    expect(diffHost(after, after)).toEqual([]);
  });

  it('reads mount points with spaces as /proc/self/mountinfo escapes them', () => {
    expect(unescapeMount('/run/a\\040b')).toBe('/run/a b');
  });
});
