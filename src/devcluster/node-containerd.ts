import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from './host-exec.ts';
import { waitFor } from './net.ts';
import { isAlive, type Peer, startPeer } from './processes.ts';

export interface ContainerdPaths {
  containerd: string;
  ctr: string;
  runc: string;
  cniBinDir: string;
}

export interface Containerd {
  peer: Peer;
  /** unix socket path (the kubelet's containerRuntimeEndpoint is unix://SOCKET). */
  socket: string;
  /**
   * Imports an image archive (OCI or docker) into the k8s.io namespace; resolves with its names.
   * An OCI archive names its image by `io.containerd.image.name` or a full reference in
   * `org.opencontainers.image.ref.name`; one whose ref.name is only a tag needs `baseName`
   * (`localhost/cert-rotator` + `e2e` → `localhost/cert-rotator:e2e`), or ctr names it `import-DATE:TAG`.
   */
  importImage(archive: string, baseName?: string): Promise<string[]>;
}

/** A port nothing listens on: every registry is mirrored there, so a pull fails on the machine. */
const CLOSED_PORT = 'http://127.0.0.1:9';

/**
 * containerd with a configuration, root, state and runc root of its own under `dir`, the CNI
 * configuration in `cniConfDir`, and:
 * - `restrict_oom_score_adj`: runc cannot write oom_score_adj here (no CAP_SYS_RESOURCE) and every
 *   sandbox would fail with "can't get final child's PID from pipe: EOF";
 * - no pulls: the default registry host and every well-known one are a closed loopback port, and
 *   so is the HTTP(S) proxy, so an attempted pull fails at once and no name is ever looked up;
 * - the pause image of `sandboxImage` (imported before any pod is created).
 */
export async function startContainerd(
  paths: ContainerdPaths,
  dir: string,
  cniConfDir: string,
  sandboxImage: string,
  logDir: string,
): Promise<Containerd> {
  const socket = join(dir, 'containerd.sock');
  const hostsDir = join(dir, 'certs.d');
  const hosts = `server = "${CLOSED_PORT}"\n\n[host."${CLOSED_PORT}"]\n  capabilities = ["pull", "resolve"]\n`;
  for (const registry of ['_default', 'docker.io', 'registry.k8s.io', 'ghcr.io', 'quay.io', 'gcr.io']) {
    await mkdir(join(hostsDir, registry), { recursive: true });
    await writeFile(join(hostsDir, registry, 'hosts.toml'), hosts);
  }
  const config = `version = 2
root = "${join(dir, 'root')}"
state = "${join(dir, 'state')}"
# The opt plugin would write /opt/containerd; the other snapshotters are not used.
disabled_plugins = [
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.internal.v1.tracing",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = "${socket}"
[ttrpc]
  address = "${socket}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${sandboxImage}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "${paths.runc}"
        Root = "${join(dir, 'runc')}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${paths.cniBinDir}"
    conf_dir = "${cniConfDir}"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "${hostsDir}"
`;
  const configPath = join(dir, 'config.toml');
  await writeFile(configPath, config);
  const peer = await startPeer(
    'containerd',
    paths.containerd,
    ['--config', configPath, '--log-level', 'warn'],
    {
      logDir,
      env: {
        HTTP_PROXY: CLOSED_PORT,
        HTTPS_PROXY: CLOSED_PORT,
        http_proxy: CLOSED_PORT,
        https_proxy: CLOSED_PORT,
        NO_PROXY: '',
        no_proxy: '',
      },
    },
  );
  const ctr = (args: string[], timeoutMs?: number) =>
    run(paths.ctr, ['--address', socket, '--namespace', 'k8s.io', ...args], { timeoutMs });
  try {
    await waitFor(
      'containerd to serve',
      async () => {
        if (!isAlive(peer.pid)) throw new Error(`containerd exited; see ${peer.logFile}`);
        if (!existsSync(socket)) return false;
        await ctr(['version']);
        return true;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
  } catch (err) {
    await peer.stop();
    throw err;
  }
  return {
    peer,
    socket,
    async importImage(archive: string, baseName?: string): Promise<string[]> {
      if (!existsSync(archive)) throw new Error(`image archive not found: ${archive}`);
      const out = await ctr(
        ['images', 'import', ...(baseName ? ['--base-name', baseName] : []), archive],
        300_000,
      );
      // "unpacking NAME (sha256:...)...done" per image.
      const names = [...out.matchAll(/^unpacking (\S+) \(sha256:[0-9a-f]+\)/gm)].map((m) => m[1] ?? '');
      if (names.length === 0)
        throw new Error(`ctr images import ${archive} imported no named image: ${out.trim()}`);
      return names;
    },
  };
}
