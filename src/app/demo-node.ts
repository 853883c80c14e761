/**
 * The demo's node mode: where a one-node cluster can run (Linux, root, `npm run provision` can
 * install the node's programs), the demo's Deployment really runs — two pods of the testbox image
 * serving the mounted Secret over TLS — and the demo shows what a TLS client is served by each
 * pod, before and after the renewal, and the pods being replaced. Elsewhere the demo says why in
 * one line and runs without a node.
 */
import { connect } from 'node:tls';
import { nodeBinaries } from '../devcluster/binaries.ts';
import { type Node, nodeUnavailableReason, startNode } from '../devcluster/node.ts';
import type { KubeClients } from '../kube/client.ts';
import { DEMO } from './demo-scenario.ts';

export const DEMO_TLS_PORT = 8443;

/** Starts the node, or says why it cannot run here (`unavailable`, one line). */
export async function tryStartNode(
  dir: string,
  say: (line: string) => void,
): Promise<{ node: Node } | { unavailable: string }> {
  const why = nodeUnavailableReason();
  if (why) return { unavailable: why };
  const found = await nodeBinaries((l) => {
    if (!/: cached$/.test(l)) say(l);
  });
  if ('unavailable' in found) return found;
  const node = await startNode(found.bins, dir, {
    // Another node (an e2e run) holds the machine: do not wait minutes for it.
    lockWaitMs: 5_000,
    onStep: (s) => say(s),
  });
  return { node };
}

/** A serial as lower-case hex without leading zero bytes (OpenSSL drops them, DER keeps them). */
export function normalSerial(hex: string): string {
  return hex.toLowerCase().replace(/^(00)+(?=.)/, '');
}

export interface PodView {
  name: string;
  ip: string;
  ready: boolean;
  terminating: boolean;
  /** Serial of the certificate a TLS handshake with the pod was shown (hex, as the Secret's). */
  serial?: string;
}

/** The TLS server's leaf serial at IP:PORT; undefined when there is no handshake within 2 s. */
export async function servedSerial(ip: string, port: number): Promise<string | undefined> {
  return await new Promise((resolve) => {
    // The demo reports what is served; it trusts nothing (it compares serials).
    const sock = connect({ host: ip, port, rejectUnauthorized: false, timeout: 2_000 }, () => {
      const serial = sock.getPeerX509Certificate()?.serialNumber;
      sock.destroy();
      resolve(serial ? normalSerial(serial) : undefined);
    });
    sock.on('timeout', () => {
      sock.destroy();
      resolve(undefined);
    });
    sock.on('error', () => resolve(undefined));
  });
}

/** The demo Deployment's pods, oldest first, with what each Ready one serves. */
export async function observePods(clients: KubeClients): Promise<PodView[]> {
  const list = await clients.core.listNamespacedPod({
    namespace: DEMO.namespace,
    labelSelector: `app=${DEMO.deployment}`,
  });
  const pods = list.items.sort(
    (a, b) =>
      (a.metadata?.creationTimestamp ? new Date(a.metadata.creationTimestamp).getTime() : 0) -
        (b.metadata?.creationTimestamp ? new Date(b.metadata.creationTimestamp).getTime() : 0) ||
      (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''),
  );
  return await Promise.all(
    pods.map(async (p) => {
      const ip = p.status?.podIP ?? '';
      const terminating = Boolean(p.metadata?.deletionTimestamp);
      const ready =
        !terminating && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
      const serial = ready && ip ? await servedSerial(ip, DEMO_TLS_PORT) : undefined;
      return { name: p.metadata?.name ?? '', ip, ready, terminating, ...(serial ? { serial } : {}) };
    }),
  );
}

const short = (serial: string) => `${serial.slice(0, 16)}…`;

/** One line per pod, for the redrawn screen. */
export function podLines(pods: PodView[], first: string): string[] {
  const firstSerial = normalSerial(first);
  if (pods.length === 0) return ['  pods: none yet'];
  return pods.map(
    (p) =>
      `  pod ${p.name} ${p.ip || '(no IP yet)'}: ${p.terminating ? 'terminating' : p.ready ? 'Ready' : 'starting'}${p.serial ? `, serves ${short(p.serial)}${p.serial === firstSerial ? ' (first certificate)' : ' (renewed)'}` : ''}`,
  );
}

/** Lines for what changed among the pods since `prev` (plain output). */
export function podChanges(prev: PodView[], cur: PodView[], first: string): string[] {
  const firstSerial = normalSerial(first);
  const out: string[] = [];
  const before = new Map(prev.map((p) => [p.name, p]));
  for (const p of cur) {
    const was = before.get(p.name);
    if (!was) out.push(`pod ${p.name} created`);
    if (p.serial && p.serial !== was?.serial) {
      out.push(
        `pod ${p.name} (${p.ip}) Ready, a TLS handshake is served serial ${short(p.serial)}${p.serial === firstSerial ? ' (the first certificate)' : ' (the renewed certificate)'}`,
      );
    }
    if (p.terminating && !was?.terminating) out.push(`pod ${p.name} terminating (replaced)`);
  }
  const names = new Set(cur.map((p) => p.name));
  for (const p of prev) if (!names.has(p.name)) out.push(`pod ${p.name} gone`);
  return out;
}

/** Done: `replicas` Ready pods, none of the first ones, each serving `serial`. */
export function servingRenewed(
  pods: PodView[],
  first: Set<string>,
  serial: string,
  replicas: number,
): boolean {
  const live = pods.filter((p) => !p.terminating);
  return live.length === replicas && live.every((p) => p.ready && p.serial === serial && !first.has(p.name));
}
