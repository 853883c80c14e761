import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { issueLeaf, type TestCA } from './certs.ts';
import { freePort, httpsGet, waitFor } from './net.ts';
import { isAlive, type Peer, startPeer } from './processes.ts';

export interface PebbleOptions {
  /** Port Pebble's validation authority connects to for HTTP-01 (on 127.0.0.1). */
  httpPort?: number;
  /** Extra PEBBLE_* environment, e.g. { PEBBLE_WFE_NONCEREJECT: '50' }. */
  env?: Record<string, string>;
  externalAccountBindingRequired?: boolean;
  eabKeys?: Record<string, string>;
  /** Certificate lifetime in seconds of the default profile. */
  validitySeconds?: number;
  /** DNS server Pebble resolves through; default: its own challtestsrv. */
  dnsServer?: string;
  /**
   * Certificate profiles, replacing the default pair. Pebble picks a random profile for an order
   * that names none, so a test that needs one lifetime passes a single profile.
   */
  profiles?: Record<string, { description: string; validityPeriod: number }>;
}

export interface Pebble {
  directoryUrl: string;
  managementUrl: string;
  /** Trust anchor for Pebble's HTTPS listener (not the ACME issuing root). */
  tlsCaPem: string;
  httpPort: number;
  challtestsrvManagementUrl: string;
  challtestsrvDnsPort: number;
  peers: Peer[];
  stop(): Promise<void>;
}

export interface PebbleBinaries {
  pebble: string;
  challtestsrv: string;
}

export async function startPebble(
  bins: PebbleBinaries,
  ca: TestCA,
  dir: string,
  opts: PebbleOptions = {},
): Promise<Pebble> {
  const logDir = join(dir, 'logs');
  await mkdir(dir, { recursive: true });
  const [acmePort, mgmtPort, dnsPort, ctsMgmtPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const httpPort = opts.httpPort ?? (await freePort());
  const tls = await issueLeaf(ca, {
    commonName: 'pebble',
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
    usage: 'server',
  });
  const certFile = join(dir, 'pebble.crt');
  const keyFile = join(dir, 'pebble.key');
  const configFile = join(dir, 'pebble-config.json');
  await writeFile(certFile, tls.certPem);
  await writeFile(keyFile, tls.keyPem, { mode: 0o600 });
  await writeFile(
    configFile,
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${acmePort}`,
        managementListenAddress: `127.0.0.1:${mgmtPort}`,
        certificate: certFile,
        privateKey: keyFile,
        httpPort,
        tlsPort: await freePort(),
        ocspResponderURL: '',
        externalAccountBindingRequired: opts.externalAccountBindingRequired ?? false,
        externalAccountMACKeys: opts.eabKeys ?? {},
        domainBlocklist: ['blocked-domain.example'],
        retryAfter: { authz: 1, order: 1 },
        keyAlgorithm: 'ecdsa',
        profiles: opts.profiles ?? {
          default: { description: 'test default', validityPeriod: opts.validitySeconds ?? 7_776_000 },
          shortlived: { description: 'short-lived', validityPeriod: 3_600 },
        },
      },
    }),
  );

  const cts = await startPeer(
    'pebble-challtestsrv',
    bins.challtestsrv,
    [
      '-defaultIPv4',
      '127.0.0.1',
      '-defaultIPv6',
      '',
      '-dnsserver',
      `127.0.0.1:${dnsPort}`,
      '-management',
      `127.0.0.1:${ctsMgmtPort}`,
      '-http01',
      '',
      '-https01',
      '',
      '-tlsalpn01',
      '',
      '-doh',
      '',
    ],
    { logDir },
  );
  const challtestsrvManagementUrl = `http://127.0.0.1:${ctsMgmtPort}`;
  await waitFor('pebble-challtestsrv management', async () => {
    if (!isAlive(cts.pid)) throw new Error(`pebble-challtestsrv exited; see ${cts.logFile}`);
    // Any HTTP answer means it listens; /set-default-ipv4 with no body is a harmless 400.
    const res = await fetch(`${challtestsrvManagementUrl}/set-default-ipv4`, {
      method: 'POST',
      body: '{"ip":"127.0.0.1"}',
    });
    return res.status > 0;
  });

  const pebble = await startPeer(
    'pebble',
    bins.pebble,
    ['-config', configFile, '-dnsserver', opts.dnsServer ?? `127.0.0.1:${dnsPort}`, '-strict'],
    {
      logDir,
      env: { PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0', ...opts.env },
    },
  );
  const directoryUrl = `https://127.0.0.1:${acmePort}/dir`;
  await waitFor('pebble /dir', async () => {
    if (!isAlive(pebble.pid)) throw new Error(`pebble exited; see ${pebble.logFile}`);
    return (await httpsGet(directoryUrl, { ca: ca.certPem })).status === 200;
  });
  const peers = [cts, pebble];
  return {
    directoryUrl,
    managementUrl: `https://127.0.0.1:${mgmtPort}`,
    tlsCaPem: ca.certPem,
    httpPort,
    challtestsrvManagementUrl,
    challtestsrvDnsPort: dnsPort,
    peers,
    async stop() {
      for (const p of [...peers].reverse()) await p.stop();
    },
  };
}

/** Pebble's own log so far (requests it served, orders, ARI decisions). */
export async function pebbleLog(p: Pebble): Promise<string> {
  return await readFile(p.peers.find((x) => x.name === 'pebble')?.logFile ?? '', 'utf8');
}

/** How many new orders Pebble has seen (`POST /order-plz` lines in its log). */
export async function orderCount(p: Pebble): Promise<number> {
  return (await pebbleLog(p)).split('\n').filter((l) => l.includes('POST /order-plz')).length;
}
