import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readSysctl, run, writeSysctl } from './host-exec.ts';

/**
 * The node's network: one Linux bridge with no uplink, on a private range that exists only there
 * (not 10.88.0.0/16, buildah's and podman's default), whose address is the node IP and the API
 * server's. Pods get an address on it from host-local IPAM and two routes, the bridge range and the
 * Service range — no default route, no masquerading. The host routes the Service range to the
 * bridge, and a FORWARD guard (mangle table, ahead of kube-proxy's filter rules) drops whatever
 * would cross between the bridge and any other interface. So nothing a pod or a test does reaches
 * an address outside loopback, the bridge and the Service range.
 */
export interface NodeNetwork {
  bridge: string;
  /** The bridge's address: node IP, API server address, pods' gateway to the Service range. */
  nodeIp: string;
  podCidr: string;
  serviceCidr: string;
}

export const NODE_NETWORK: NodeNetwork = {
  bridge: 'crnode0',
  nodeIp: '10.217.0.1',
  podCidr: '10.217.0.0/24',
  serviceCidr: '10.217.1.0/24',
};

const GUARD = 'CR-NODE-GUARD';

/** The bridge, its address, the host route to the Service range, forwarding on, and the guard. */
export async function setUpNetwork(net: NodeNetwork): Promise<void> {
  const prefix = net.podCidr.split('/')[1];
  await run('ip', ['link', 'add', net.bridge, 'type', 'bridge']);
  await run('ip', ['addr', 'add', `${net.nodeIp}/${prefix}`, 'dev', net.bridge]);
  await run('ip', ['link', 'set', net.bridge, 'up']);
  await run('ip', ['route', 'add', net.serviceCidr, 'dev', net.bridge, 'src', net.nodeIp]);
  // A pod reaching a Service whose backend is a pod on the same bridge is routed through the host
  // (DNAT by kube-proxy): that needs forwarding, and bridged traffic seen by iptables.
  await writeSysctl('net.ipv4.ip_forward', '1');
  if ((await readSysctl('net.bridge.bridge-nf-call-iptables')) === '0') {
    await writeSysctl('net.bridge.bridge-nf-call-iptables', '1');
  }
  await run('iptables-restore', ['--noflush', '-w', '5'], {
    input: [
      '*mangle',
      `:${GUARD} - [0:0]`,
      `-A ${GUARD} -i ${net.bridge} -o ${net.bridge} -j RETURN`,
      `-A ${GUARD} -i ${net.bridge} -m comment --comment "cert-rotator node: pods reach nothing beyond the bridge" -j DROP`,
      `-A ${GUARD} -o ${net.bridge} -m comment --comment "cert-rotator node: nothing from elsewhere reaches pods" -j DROP`,
      `-I FORWARD 1 -j ${GUARD}`,
      'COMMIT',
      '',
    ].join('\n'),
  });
}

/** The CNI configuration containerd loads: bridge + host-local IPAM, its state under `dir`. */
export async function writeCniConfig(net: NodeNetwork, confDir: string, ipamDir: string): Promise<void> {
  await mkdir(confDir, { recursive: true });
  const conf = {
    cniVersion: '0.4.0',
    name: 'cert-rotator-node',
    plugins: [
      {
        type: 'bridge',
        bridge: net.bridge,
        isGateway: true,
        isDefaultGateway: false,
        ipMasq: false,
        hairpinMode: true,
        ipam: {
          type: 'host-local',
          dataDir: ipamDir,
          ranges: [[{ subnet: net.podCidr, gateway: net.nodeIp }]],
          // Through the gateway (the bridge address); no default route.
          routes: [{ dst: net.serviceCidr }],
        },
      },
    ],
  };
  await writeFile(join(confDir, '10-cert-rotator-node.conflist'), JSON.stringify(conf, null, 2));
}
