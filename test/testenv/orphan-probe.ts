// Started by the harness test as a separate Node process: starts etcd through the same
// startPeer() the suite uses, prints its pid, then waits to be killed.
import { join } from 'node:path';
import { binaries, makeRunDir } from './env.ts';
import { freePort } from './net.ts';
import { startPeer } from './processes.ts';

const dir = await makeRunDir('cert-rotator-orphan-');
const [client, peer] = [await freePort(), await freePort()];
const etcd = await startPeer(
  'etcd',
  binaries().etcd,
  [
    `--data-dir=${join(dir, 'etcd')}`,
    `--listen-client-urls=http://127.0.0.1:${client}`,
    `--advertise-client-urls=http://127.0.0.1:${client}`,
    `--listen-peer-urls=http://127.0.0.1:${peer}`,
    `--initial-advertise-peer-urls=http://127.0.0.1:${peer}`,
    `--initial-cluster=default=http://127.0.0.1:${peer}`,
  ],
  { logDir: dir },
);
process.stdout.write(`${JSON.stringify({ pid: etcd.pid, url: `http://127.0.0.1:${client}` })}\n`);
setInterval(() => undefined, 1_000);
