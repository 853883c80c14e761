/**
 * The sidecar's core: take material from a source, verify it, swap the files, then tell the
 * application. Good files are never replaced by material that does not verify; readiness means
 * "a verified, unexpired certificate is on disk and the last reload did not fail".
 */
import type { Identity } from '../pki/sign.ts';
import type { CertificateFiles } from './cert-files.ts';
import type { SidecarMetrics } from './health.ts';
import type { SidecarLogger } from './log.ts';
import { describeLeaf, type Material, type VerifiedMaterial, verifyMaterial } from './material.ts';
import { DEFAULT_RETRY, type Reloader, type RetryOptions, reloadWithRetry } from './reloaders.ts';
import type { SourceContext } from './source.ts';

export interface RunnerOptions {
  files: CertificateFiles;
  required: Identity;
  reloaders: Reloader[];
  metrics: SidecarMetrics;
  log: SidecarLogger;
  now?: () => number;
  retry?: RetryOptions;
}

function sameMaterial(a: VerifiedMaterial, b: VerifiedMaterial): boolean {
  return a.chainPem === b.chainPem && a.keyPem === b.keyPem && (a.caPem ?? '') === (b.caPem ?? '');
}

export class SidecarRunner {
  private cur: VerifiedMaterial | undefined;
  private lastProblem: string | undefined;
  private readonly failingReloads = new Map<string, string>();
  /** Per reloader: a reload is running, and whether another swap happened meanwhile. */
  private readonly reloadState = new Map<Reloader, { running: boolean; again: boolean }>();
  private readonly now: () => number;
  private readonly installedListeners: Array<(v: VerifiedMaterial) => void> = [];
  private chain: Promise<unknown> = Promise.resolve();
  /**
   * Whether the directory held certificate files the application may have read. Until then a
   * swap tells nobody: the first files of a pod are written before (or while) the application
   * starts, and a signal then would hit a process that has not installed its handler yet
   * (SIGHUP's default action ends it) or count a failed reload for a process not yet there.
   */
  private filesMayBeInUse = false;
  /** `--ca-bundle-configmap`: the trust set written as ca.crt instead of the source's CA. */
  private trust: string | undefined;

  private readonly opts: RunnerOptions;

  constructor(opts: RunnerOptions) {
    this.opts = opts;
    this.now = opts.now ?? Date.now;
  }

  /** Adopts valid files already in the directory (a restarted container keeps its emptyDir). */
  async adoptExisting(): Promise<void> {
    // Files the sidecar cannot read or use (another user's key, expired) may still be the ones
    // the application runs with: any generation on disk counts.
    this.filesMayBeInUse = (await this.opts.files.writer.currentGeneration()) !== undefined;
    const onDisk = await this.opts.files.readCurrent();
    if (onDisk === undefined) return;
    try {
      this.setCurrent(verifyMaterial(onDisk, this.opts.required, this.now()));
      this.opts.log.info({ ...describeLeaf(this.cur!.leaf) }, 'kept the valid certificate already on disk');
    } catch (err) {
      this.opts.log.info({ err }, 'the files on disk are not usable; waiting for the source');
    }
  }

  current(): VerifiedMaterial | undefined {
    return this.cur;
  }

  onInstalled(listener: (v: VerifiedMaterial) => void): void {
    this.installedListeners.push(listener);
  }

  private setCurrent(v: VerifiedMaterial): void {
    this.cur = v;
    this.opts.metrics.notAfterSeconds = Math.floor(v.leaf.notAfter / 1000);
  }

  /** Offers are serialised: two sources' (or one source's) offers never interleave their swaps. */
  offer(m: Material, origin: string): Promise<boolean> {
    const next = this.chain.then(() => this.offerNow(m, origin));
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async offerNow(m: Material, origin: string): Promise<boolean> {
    let v: VerifiedMaterial;
    try {
      v = verifyMaterial(m, this.opts.required, this.now());
    } catch (err) {
      this.lastProblem = `the ${origin} certificate was refused: ${(err as Error).message}`;
      this.opts.log.warn(
        { err, origin, keptSerial: this.cur?.leaf.serialHex },
        this.cur
          ? 'refused a certificate that does not verify; the files on disk are kept'
          : 'refused a certificate that does not verify; no files written yet',
      );
      return false;
    }
    if (this.trust !== undefined) v = { ...v, caPem: this.trust };
    if (this.cur !== undefined && sameMaterial(this.cur, v)) return true;
    const generation = await this.opts.files.install(v);
    const previous = this.cur?.leaf.serialHex;
    this.setCurrent(v);
    this.lastProblem = undefined;
    this.opts.log.info(
      { ...describeLeaf(v.leaf), origin, generation, ...(previous ? { previousSerial: previous } : {}) },
      'files swapped',
    );
    for (const l of this.installedListeners) l(v);
    if (this.filesMayBeInUse) {
      for (const r of this.opts.reloaders) this.triggerReload(r);
    } else if (this.opts.reloaders.length > 0) {
      this.opts.log.info(
        { generation },
        'first files written; nothing to reload yet, the application is not told',
      );
    }
    this.filesMayBeInUse = true;
    return true;
  }

  /**
   * A new trust set for ca.crt (from a trust bundle, already checked): installed with the
   * current certificate as a new generation when it differs from the ca.crt on disk, and the
   * application told as after any swap. Before the first certificate it is only remembered.
   */
  setTrust(pem: string): Promise<void> {
    const next = this.chain.then(() => this.setTrustNow(pem));
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async setTrustNow(pem: string): Promise<void> {
    this.trust = pem;
    const cur = this.cur;
    if (cur === undefined || (cur.caPem ?? '') === pem) return;
    const v: VerifiedMaterial = { ...cur, caPem: pem };
    const generation = await this.opts.files.install(v);
    this.cur = v;
    this.opts.log.info(
      { generation, serial: v.leaf.serialHex, caCertificates: pem.split('-----BEGIN').length - 1 },
      'ca.crt swapped to the trust bundle',
    );
    for (const l of this.installedListeners) l(v);
    if (this.filesMayBeInUse) for (const r of this.opts.reloaders) this.triggerReload(r);
    this.filesMayBeInUse = true;
  }

  private triggerReload(r: Reloader): void {
    const st = this.reloadState.get(r) ?? { running: false, again: false };
    this.reloadState.set(r, st);
    if (st.running) {
      st.again = true;
      return;
    }
    st.running = true;
    const loop = async () => {
      do {
        st.again = false;
        const ok = await reloadWithRetry(r, this.opts.retry ?? DEFAULT_RETRY, (success, attempt, err) => {
          this.opts.metrics.countReload(r.method, success ? 'success' : 'failure');
          if (success) {
            this.opts.log.info(
              { method: r.method, target: r.description, attempt },
              'application told to reload',
            );
          } else {
            this.opts.log.warn({ method: r.method, target: r.description, attempt, err }, 'reload failed');
          }
        });
        if (ok) this.failingReloads.delete(r.description);
        else this.failingReloads.set(r.description, 'reload failed after every retry');
      } while (st.again);
      st.running = false;
    };
    void loop();
  }

  /** Reloads still in flight (tests and --once wait on them). */
  reloadsIdle(): boolean {
    return [...this.reloadState.values()].every((s) => !s.running);
  }

  problem(message: string): void {
    this.lastProblem = message;
  }

  lastProblemMessage(): string | undefined {
    return this.lastProblem;
  }

  notReadyReason(): string | undefined {
    if (this.cur === undefined) {
      return `no verified certificate on disk yet${this.lastProblem ? ` (${this.lastProblem})` : ''}`;
    }
    if (this.now() >= this.cur.leaf.notAfter) {
      return `the certificate on disk expired at ${new Date(this.cur.leaf.notAfter).toISOString()}${
        this.lastProblem ? ` (${this.lastProblem})` : ''
      }`;
    }
    if (this.failingReloads.size > 0) {
      return [...this.failingReloads].map(([what, why]) => `${what}: ${why}`).join('; ');
    }
    return undefined;
  }

  context(log: SidecarLogger, signal: AbortSignal): SourceContext {
    return {
      offer: (m, origin) => this.offer(m, origin),
      current: () => this.cur,
      problem: (msg) => this.problem(msg),
      required: this.opts.required,
      log,
      now: this.now,
      signal,
    };
  }
}
