import { request } from 'node:http';
import { basename } from 'node:path';
import { Writable } from 'node:stream';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, inject } from 'vitest';
import type { E2eNodeInfo } from './e2e-setup.ts';
import { waitFor } from './net.ts';

export type { E2eNodeInfo } from './e2e-setup.ts';

/**
 * Helpers of the e2e tests, which run on a real one-node cluster (test/testenv/e2e-setup.ts starts
 * it on first use). A file wraps its tests in `describeOnNode(...)`, which skips them (the global
 * setup said why in one line) where the node cannot run, and calls `useNode()` for its info and
 * `useNodeNamespace(import.meta.url)` for a namespace of its own.
 */
export function nodeUnavailable(): string | undefined {
  return inject('e2eNode').unavailable;
}

/** `describe`, skipped where the node cannot run (not Linux, not root); CI=true fails instead. */
export const describeOnNode: typeof describe = describe.skipIf(
  nodeUnavailable() !== undefined,
) as typeof describe;

async function broker<T>(method: 'GET' | 'POST', path: string): Promise<T> {
  const base = inject('e2eNode').url;
  if (!base) throw new Error(`the e2e node is unavailable: ${nodeUnavailable() ?? 'no broker'}`);
  // node:http rather than fetch: the first request may wait through a cold provisioning run,
  // longer than fetch's header timeout.
  return await new Promise<T>((resolve, reject) => {
    const req = request(`${base}${path}`, { method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => {
        const parsed = JSON.parse(body) as T & { error?: string };
        if (res.statusCode !== 200) reject(new Error(parsed.error ?? `broker answered ${res.statusCode}`));
        else resolve(parsed);
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** The node's info; starts the node if no file has yet. */
export async function nodeInfo(): Promise<E2eNodeInfo> {
  return await broker<E2eNodeInfo>('GET', '/node');
}

/**
 * Imports an image archive (OCI or docker, e.g. buildImage()'s) into the node; resolves with its
 * names. An OCI archive whose `org.opencontainers.image.ref.name` is only a tag needs `baseName`
 * (`localhost/cert-rotator` + tag `e2e` → `localhost/cert-rotator:e2e`).
 */
export async function importImage(archive: string, baseName?: string): Promise<string[]> {
  const q = new URLSearchParams({ archive, ...(baseName ? { baseName } : {}) });
  return (await broker<{ names: string[] }>('POST', `/images?${q}`)).names;
}

/** The host as it was before the node started (sections of sorted lines, see host-state.ts). */
export async function hostSnapshotBeforeNode(): Promise<Record<string, string[]>> {
  return await broker<Record<string, string[]>>('GET', '/host-snapshot');
}

export function kubeConfigFor(info: E2eNodeInfo): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(info.kubeconfigPath);
  return kc;
}

export interface NodeContext {
  info: E2eNodeInfo;
  kc: k8s.KubeConfig;
  core: k8s.CoreV1Api;
}

/** beforeAll: the node (started on first use), an admin KubeConfig and a CoreV1Api for it. */
export function useNode(): () => NodeContext {
  let ctx: NodeContext | undefined;
  beforeAll(async () => {
    const info = await nodeInfo();
    const kc = kubeConfigFor(info);
    ctx = { info, kc, core: kc.makeApiClient(k8s.CoreV1Api) };
  }, 600_000);
  return () => {
    if (!ctx) throw new Error('useNode(): the node is not there (its beforeAll failed)');
    return ctx;
  };
}

/** A namespace of the calling file's own on the node, deleted (with its pods) afterwards. */
export function useNodeNamespace(fileUrl: string, node: () => NodeContext): () => string {
  let ns = '';
  const stem = basename(new URL(fileUrl).pathname)
    .replace(/\.test\.ts$/, '')
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .slice(0, 40);
  beforeAll(async () => {
    const name = `e2e-${stem}-${Math.random().toString(36).slice(2, 8)}`;
    await node().core.createNamespace({ body: { metadata: { name } } });
    // The ServiceAccount controller creates "default"; a pod created before it exists is refused.
    await waitFor(`ServiceAccount ${name}/default`, async () => {
      await node().core.readNamespacedServiceAccount({ namespace: name, name: 'default' });
      return true;
    });
    ns = name;
  });
  afterAll(async () => {
    if (!ns) return;
    await node()
      .core.deleteNamespace({ name: ns, body: { gracePeriodSeconds: 0 } })
      .catch(() => undefined);
  });
  return () => ns;
}

/** Waits for a pod's Ready condition; a container that cannot start fails at once with its reason. */
export async function waitForPodReady(
  core: k8s.CoreV1Api,
  namespace: string,
  name: string,
  timeoutMs = 60_000,
): Promise<k8s.V1Pod> {
  return await waitFor(
    `pod ${namespace}/${name} Ready`,
    async () => {
      const pod = await core.readNamespacedPod({ namespace, name });
      for (const s of [
        ...(pod.status?.initContainerStatuses ?? []),
        ...(pod.status?.containerStatuses ?? []),
      ]) {
        const reason = s.state?.waiting?.reason;
        if (reason && /ErrImage|ImagePull|CrashLoop|CreateContainer|InvalidImageName/.test(reason)) {
          throw new FatalPodError(
            `pod ${namespace}/${name}: container ${s.name} ${reason}: ${s.state?.waiting?.message ?? ''}`,
          );
        }
      }
      const ready = pod.status?.conditions?.find((c) => c.type === 'Ready');
      if (ready?.status === 'True') return pod;
      throw new Error(
        `phase ${pod.status?.phase ?? '?'}, Ready ${ready?.status ?? '?'} ${ready?.message ?? ''}`,
      );
    },
    { timeoutMs, intervalMs: 50 },
  ).catch((err: unknown) => {
    throw err instanceof FatalPodError ? new Error(err.message) : err;
  });
}

class FatalPodError extends Error {}

export interface ExecResult {
  stdout: string;
  stderr: string;
  /** 0 on success, the command's exit code otherwise. */
  exitCode: number;
}

/**
 * Runs a command in a container through the API server (pods/exec → kubelet), like `kubectl exec`.
 * Resolves with its output and exit code; rejects only when the exec itself cannot happen.
 */
export async function execInPod(
  kc: k8s.KubeConfig,
  namespace: string,
  pod: string,
  container: string,
  command: string[],
  timeoutMs = 30_000,
): Promise<ExecResult> {
  let stdout = '';
  let stderr = '';
  const sink = (append: (s: string) => void) =>
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        append(chunk.toString('utf8'));
        cb();
      },
    });
  return await new Promise<ExecResult>((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(new Error(`exec ${command.join(' ')} in ${namespace}/${pod}: no end within ${timeoutMs} ms`)),
      timeoutMs,
    );
    new k8s.Exec(kc)
      .exec(
        namespace,
        pod,
        container,
        command,
        sink((s) => {
          stdout += s;
        }),
        sink((s) => {
          stderr += s;
        }),
        null,
        false,
        (status: k8s.V1Status) => {
          clearTimeout(timer);
          if (status.status === 'Success') return resolve({ stdout, stderr, exitCode: 0 });
          const code = status.details?.causes?.find((c) => c.reason === 'ExitCode')?.message;
          if (code === undefined) {
            return reject(
              new Error(`exec in ${namespace}/${pod} failed: ${status.message ?? JSON.stringify(status)}`),
            );
          }
          resolve({ stdout, stderr, exitCode: Number(code) });
        },
      )
      .catch((err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      });
  });
}

/** A container's log through the API server (pods/log → kubelet), like `kubectl logs`. */
export async function podLogs(
  core: k8s.CoreV1Api,
  namespace: string,
  name: string,
  container?: string,
): Promise<string> {
  return await core.readNamespacedPodLog({ namespace, name, container });
}

/** A pod spec for the testbox image: `testbox ARGS...`, never pulled, non-root, nothing writable. */
export function testboxPod(
  info: E2eNodeInfo,
  name: string,
  args: string[],
  labels: Record<string, string> = {},
): k8s.V1Pod {
  return {
    metadata: { name, labels },
    spec: {
      terminationGracePeriodSeconds: 1,
      automountServiceAccountToken: false,
      containers: [
        {
          name: 'main',
          image: info.images.testbox,
          imagePullPolicy: 'Never',
          args,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: 65532,
            allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true,
            capabilities: { drop: ['ALL'] },
          },
        },
      ],
    },
  };
}
