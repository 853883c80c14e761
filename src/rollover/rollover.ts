/**
 * One `ca` issuer's CA rollover, walked Trust → Propagate → Reissue → Retire. Each look reads
 * the CA Secret (where the phase is recorded), acts once, and writes the next phase only when
 * the current one's condition holds, so a restarted or newly elected controller continues where
 * the last one stopped. Every write is a replace guarded by the resourceVersion it read.
 */
import { X509Certificate } from 'node:crypto';
import type * as k8s from '@kubernetes/client-node';
import { type Clock, PeriodicTask } from '../clock.ts';
import type { CARolloverConfig, Config, IssuerConfig } from '../config/schema.ts';
import { decodeData } from '../controller/secret-body.ts';
import { crashPoint } from '../fault-injection.ts';
import { caPairProblem, trustSet } from '../issuers/ca.ts';
import { describeApiError, httpStatus, type KubeClients } from '../kube/client.ts';
import type { EventRecorder } from '../kube/events.ts';
import {
  Annotation,
  CaSecretKey,
  EventReason,
  FIELD_MANAGER,
  RolloverPhase,
  SecretKey,
  StatusAnnotation,
} from '../names.ts';
import type { Logger } from '../observability/logger.ts';
import type { Metrics } from '../observability/metrics.ts';
import { certificatesFromPem, readCertificateSummary } from '../pki/index.ts';
import { windowsDecision } from '../policy/windows.ts';
import { TrustBundleWriter } from './bundles.ts';
import {
  decodedAll,
  firstCertPem,
  type IssuedSecrets,
  issuedSecrets,
  listWorkloads,
  signedBy,
} from './cluster.ts';
import { spreadTrust } from './outputs.ts';
import { findOverwrite } from './overwrite.ts';
import { describeUntil, type IssuedRecord, outstandingLeaves } from './signed-leaves.ts';
import { enterPhase, phaseNumber, readState } from './state.ts';
import { switchedData } from './switch.ts';
import { type PropagationReport, propagation, type Workload } from './workloads.ts';

export interface RolloverDeps {
  issuer: IssuerConfig & { kind: 'ca' };
  config: Config;
  clients: Pick<KubeClients, 'core' | 'apps' | 'transport'>;
  events: Pick<EventRecorder, 'record'>;
  log: Logger;
  metrics: Metrics;
  clock: Clock;
  isLeader?: () => boolean;
  /** The records of the signers that sign for this issuer (CSR, Pod Certificates): Retire waits for them. */
  issuedRecords?: readonly IssuedRecord[];
  /**
   * Makes this process's signers (the issuer, the CSR and Pod Certificates signers share it)
   * read the CA Secret again. Without it, Reissue waits out the issuer's CA cache after the
   * switch before it asks for renewals.
   */
  forgetCa?: () => void;
}

const b64 = (text: string) => Buffer.from(text).toString('base64');
const MINUTE = 60_000;
/** Longer than the CA issuer's cache of its CA Secret (issuers/ca.ts). */
const SWITCH_SETTLE_MS = 10_000;

export class CaRollover {
  readonly #d: RolloverDeps;
  readonly #cfg: CARolloverConfig;
  readonly #loop: PeriodicTask;
  /** Times of the renewals this process asked for in the last minute (reissue.maxPerMinute). */
  #asked: number[] = [];
  /** Waiting events already sent by this process (one per wait, not one per look). */
  readonly #announced = new Set<string>();
  readonly #bundles: TrustBundleWriter;

  constructor(deps: RolloverDeps) {
    this.#d = deps;
    this.#cfg = deps.issuer.ca.rollover;
    this.#loop = new PeriodicTask({
      clock: deps.clock,
      intervalMs: () => this.#cfg.checkIntervalMs,
      pass: () => this.look(),
      onError: (err) =>
        deps.log.warn({ issuer: this.name, error: describeApiError(err) }, 'CA rollover look failed'),
    });
    this.#bundles = new TrustBundleWriter({
      issuer: deps.issuer.name,
      bundles: deps.config.trustBundles.filter((b) => b.issuer === deps.issuer.name),
      clients: deps.clients,
      log: deps.log,
      clock: deps.clock,
      warn: async (message) => {
        if (this.#caSecret)
          await this.#event(this.#caSecret, 'Warning', EventReason.trustBundleUnavailable, message);
      },
    });
  }

  get name(): string {
    return this.#d.issuer.name;
  }

  start(): void {
    this.#loop.start();
  }

  /** A look now, not at the next checkInterval: a newly elected leader continues at once. */
  lookSoon(): void {
    this.#loop.runSoon();
  }

  async stop(): Promise<void> {
    await this.#loop.stop();
  }

  #ref(secret: k8s.V1Secret) {
    return {
      apiVersion: 'v1',
      kind: 'Secret',
      namespace: secret.metadata?.namespace ?? '',
      name: secret.metadata?.name ?? '',
      ...(secret.metadata?.uid ? { uid: secret.metadata.uid } : {}),
    };
  }

  async #event(secret: k8s.V1Secret, type: 'Normal' | 'Warning', reason: string, message: string) {
    this.#d.log[type === 'Warning' ? 'warn' : 'info']({ issuer: this.name, reason }, message);
    await this.#d.events.record(this.#ref(secret), type, reason, message, this.#d.clock.now());
  }

  /** One look: read the CA Secret, export its state, and take the step its phase allows. */
  async look(): Promise<void> {
    const { namespace, name } = this.#d.issuer.ca.secret;
    let ca: k8s.V1Secret;
    try {
      ca = await this.#d.clients.core.readNamespacedSecret({ namespace, name });
    } catch (err) {
      if (httpStatus(err) === 404) return;
      throw err;
    }
    const state = readState(ca.metadata?.annotations);
    this.#d.metrics.caRolloverPhase.set({ issuer: this.name }, phaseNumber(state.phase));
    const caPem = decodeData(ca.data?.[SecretKey.certificate]);
    try {
      const caDer = certificatesFromPem(caPem)[0];
      if (caDer) {
        this.#d.metrics.caNotAfter.set({ issuer: this.name }, readCertificateSummary(caDer).notAfter / 1000);
      }
    } catch {
      // An unreadable CA is the issuer's error to report (CA_INVALID on the Secrets it cannot renew).
    }
    if (this.#d.isLeader?.() === false || state.paused) return;
    const now = this.#d.clock.now();
    // Trust bundles follow the CA Secret in every phase (Trust and Retire wait for them).
    if (state.phase !== RolloverPhase.trust && !(state.phase === RolloverPhase.retire && state.retired)) {
      await this.#spreadBundles(ca, trustSet(caPem, decodedAll(ca.data)));
    }
    switch (state.phase) {
      case undefined:
        if (state.next !== undefined) await this.#begin(ca, state.next, now);
        else await this.#checkOverwrite(ca, now);
        return;
      case RolloverPhase.trust:
        return await this.#trust(ca, now);
      case RolloverPhase.propagate:
        return await this.#propagate(ca, state.since ?? now, now);
      case RolloverPhase.reissue:
        // An issuer reuses a CA it read for a few seconds: ask for renewals once none can still
        // be signed by the old one, so no leaf has to be asked for twice. The switch made this
        // process's issuer forget it (forgetCa); a process restarted since has read it afresh.
        if (this.#d.forgetCa === undefined && now - (state.since ?? now) < SWITCH_SETTLE_MS) return;
        return await this.#reissue(ca, state.started ?? '', now);
      case RolloverPhase.retire:
        return await this.#retire(ca, state.since ?? now, state.retired, now);
    }
  }

  /** The staged CA, checked; or a refusal (event) and undefined. */
  async #staged(ca: k8s.V1Secret, next: string, now: number): Promise<k8s.V1Secret | undefined> {
    const ns = ca.metadata?.namespace ?? '';
    let staged: k8s.V1Secret;
    try {
      staged = await this.#d.clients.core.readNamespacedSecret({ namespace: ns, name: next });
    } catch (err) {
      if (httpStatus(err) !== 404) throw err;
      await this.#refuse(ca, `the staged CA Secret ${ns}/${next} does not exist`);
      return undefined;
    }
    const cert = decodeData(staged.data?.[SecretKey.certificate]);
    const key = decodeData(staged.data?.[SecretKey.privateKey]);
    const problem = cert && key ? caPairProblem(cert, key, now) : { message: 'lacks tls.crt or tls.key' };
    if (problem) {
      await this.#refuse(ca, `the staged CA Secret ${ns}/${next} cannot be used: ${problem.message}`);
      return undefined;
    }
    if (firstCertPem(cert) === firstCertPem(decodeData(ca.data?.[SecretKey.certificate]))) {
      await this.#refuse(ca, `the staged CA Secret ${ns}/${next} holds the CA that is already active`);
      return undefined;
    }
    return staged;
  }

  /** A Normal CARolloverWaiting event, once per process for the same wait. */
  async #announceWait(ca: k8s.V1Secret, key: string, message: string): Promise<void> {
    if (this.#announced.has(key)) return;
    this.#announced.add(key);
    await this.#event(ca, 'Normal', EventReason.caRolloverWaiting, message);
  }

  async #refuse(ca: k8s.V1Secret, why: string): Promise<void> {
    const what = readState(ca.metadata?.annotations).phase === undefined ? 'not started' : 'held';
    await this.#event(
      ca,
      'Warning',
      EventReason.caRolloverRefused,
      `CA rollover of issuer "${this.name}" ${what}: ${why}; the current CA keeps signing`,
    );
  }

  /** A replace of the CA Secret with changed data and annotations; false on a conflict. */
  async #writeCa(
    ca: k8s.V1Secret,
    data: Record<string, string>,
    annotations: Record<string, string>,
  ): Promise<boolean> {
    try {
      await this.#d.clients.core.replaceNamespacedSecret({
        namespace: ca.metadata?.namespace ?? '',
        name: ca.metadata?.name ?? '',
        body: { ...ca, data, metadata: { ...ca.metadata, annotations, managedFields: undefined } },
        fieldManager: FIELD_MANAGER,
      });
      return true;
    } catch (err) {
      if (httpStatus(err) === 409) return false;
      throw err;
    }
  }

  async #begin(ca: k8s.V1Secret, next: string, now: number): Promise<void> {
    const staged = await this.#staged(ca, next, now);
    if (!staged) return;
    const nextPem = firstCertPem(decodeData(staged.data?.[SecretKey.certificate])) ?? '';
    const data = { ...ca.data, [CaSecretKey.nextCertificate]: b64(nextPem) };
    const annotations = enterPhase(ca.metadata?.annotations ?? {}, RolloverPhase.trust, now);
    if (!(await this.#writeCa(ca, data, annotations))) return;
    const subject = new X509Certificate(nextPem).subject.replace(/\n/g, ', ');
    await this.#event(
      ca,
      'Normal',
      EventReason.caRolloverPhase,
      `CA rollover of issuer "${this.name}" to the CA of Secret ${next} (${subject}) began: Trust — every Secret it issued gets both CAs in ca.crt`,
    );
  }

  /** The CA Secret of the bundles' current write (their Warning events go on it). */
  #caSecret: k8s.V1Secret | undefined;

  async #spreadBundles(ca: k8s.V1Secret, trust: string): Promise<number> {
    this.#caSecret = ca;
    return await this.#bundles.spread(trust);
  }

  #issued(): Promise<IssuedSecrets> {
    return issuedSecrets(this.#d.clients, this.#d.config, this.name);
  }

  async #advance(ca: k8s.V1Secret, to: RolloverPhaseArg, now: number, message: string): Promise<boolean> {
    const annotations = enterPhase(ca.metadata?.annotations ?? {}, to, now);
    if (!(await this.#writeCa(ca, { ...ca.data }, annotations))) return false;
    await this.#event(ca, 'Normal', EventReason.caRolloverPhase, message);
    return true;
  }

  async #trust(ca: k8s.V1Secret, now: number): Promise<void> {
    const trust = trustSet(decodeData(ca.data?.[SecretKey.certificate]), decodedAll(ca.data));
    const { secrets } = await this.#issued();
    const left =
      (await spreadTrust(this.#d.clients, secrets, trust)) + (await this.#spreadBundles(ca, trust));
    if (left > 0) return;
    await this.#advance(
      ca,
      RolloverPhase.propagate,
      now,
      `CA rollover of issuer "${this.name}": ca.crt of ${secrets.length} Secrets holds both CAs; Propagate — waiting for their workloads to roll out`,
    );
  }

  #workloads(namespaces: ReadonlySet<string>): Promise<Workload[]> {
    return listWorkloads(this.#d.clients, namespaces);
  }

  /** Which workloads using the issuer's Secrets have rolled out to what those Secrets hold now. */
  async #propagation(): Promise<PropagationReport> {
    const { secrets, managed } = await this.#issued();
    const issued = new Set(secrets.map((s) => `${s.metadata?.namespace}/${s.metadata?.name}`));
    const namespaces = new Set(secrets.map((s) => s.metadata?.namespace ?? ''));
    return propagation(await this.#workloads(namespaces), issued, managed, this.#d.config.defaults.restart);
  }

  async #propagate(ca: k8s.V1Secret, since: number, now: number): Promise<void> {
    const report = await this.#propagation();
    const waited = now - since;
    if (waited < this.#cfg.trustPropagationMs) return;
    const unconfirmed =
      report.unconfirmed.length > 0
        ? `; not restarted by cert-rotator, unconfirmed: ${report.unconfirmed.join(', ')}`
        : '';
    if (report.pending.length > 0) {
      if (waited < this.#cfg.maxWaitMs) return;
      const pending = report.pending.join(', ');
      if (this.#cfg.onMaxWait === 'hold') {
        await this.#event(
          ca,
          'Warning',
          EventReason.caRolloverStalled,
          `CA rollover of issuer "${this.name}" holds in Propagate after maxWait: not rolled out yet: ${pending}`,
        );
        return;
      }
      await this.#event(
        ca,
        'Warning',
        EventReason.caRolloverStalled,
        `CA rollover of issuer "${this.name}" continues after maxWait although these have not rolled out: ${pending}`,
      );
    }
    await this.#switch(ca, now, `${report.rolled.length} workloads rolled out${unconfirmed}`);
  }

  /**
   * A CA overwritten in place (overwrite.ts) starts a rollover in Trust with the old certificate
   * as `previous.crt`; otherwise the active CA is recorded and not looked into again.
   */
  async #checkOverwrite(ca: k8s.V1Secret, now: number): Promise<void> {
    const activePem = firstCertPem(decodeData(ca.data?.[SecretKey.certificate]));
    if (!activePem) return;
    const active = new X509Certificate(activePem);
    const fingerprint = active.fingerprint256;
    const recorded = ca.metadata?.annotations?.[StatusAnnotation.caFingerprint];
    if (recorded === fingerprint) return;
    const { secrets } = await this.#issued();
    const { old, overwritten, oldChainPem } = findOverwrite(active, recorded, secrets);
    const annotations = { ...(ca.metadata?.annotations ?? {}) };
    annotations[StatusAnnotation.caFingerprint] = fingerprint;
    if (!old || !overwritten) {
      await this.#writeCa(ca, { ...ca.data }, annotations);
      return;
    }
    const data = { ...ca.data, [CaSecretKey.previousCertificate]: b64(oldChainPem) };
    const next = enterPhase(annotations, RolloverPhase.trust, now);
    next[StatusAnnotation.caRolloverUnsafe] = 'overwritten';
    if (!(await this.#writeCa(ca, data, next))) return;
    await this.#event(
      ca,
      'Warning',
      EventReason.caOverwritten,
      `the CA of issuer "${this.name}" was overwritten in place; the old CA (${old.subject.replace(/\n/g, ', ')}) stays trusted next to the new one, renewals are held (except leaves about to expire) until every workload trusts the new CA, then every leaf is re-issued. Next time stage the new CA with ${Annotation.nextCa} (docs/ca-rollover.md)`,
    );
  }

  /** The new CA starts signing: it moves into tls.crt/tls.key, the old one into previous.*. */
  async #switch(ca: k8s.V1Secret, now: number, why: string): Promise<void> {
    if (readState(ca.metadata?.annotations).unsafe) {
      // Overwritten in place: the new CA already signs; Reissue moves every leaf to it.
      await this.#advance(
        ca,
        RolloverPhase.reissue,
        now,
        `CA rollover of issuer "${this.name}": trust propagated (${why}); Reissue — renewals resume, every leaf is re-issued at most ${this.#cfg.reissuePerMinute} a minute`,
      );
      return;
    }
    const next = readState(ca.metadata?.annotations).next;
    const staged = next === undefined ? undefined : await this.#staged(ca, next, now);
    const nextPem = decodeData(ca.data?.[CaSecretKey.nextCertificate]);
    if (!staged || firstCertPem(decodeData(staged.data?.[SecretKey.certificate])) !== firstCertPem(nextPem)) {
      if (staged) await this.#refuse(ca, `the staged CA Secret ${next} changed during the rollover`);
      return;
    }
    const data = switchedData(ca.data ?? {}, staged.data ?? {});
    const annotations = enterPhase(ca.metadata?.annotations ?? {}, RolloverPhase.reissue, now);
    delete annotations[Annotation.nextCa];
    if (!(await this.#writeCa(ca, data, annotations))) return;
    this.#d.forgetCa?.();
    await this.#event(
      ca,
      'Normal',
      EventReason.caRolloverPhase,
      `CA rollover of issuer "${this.name}": trust propagated (${why}); Reissue — the new CA signs, every leaf is re-issued at most ${this.#cfg.reissuePerMinute} a minute`,
    );
    // The key now lives in the CA Secret; a second copy is not left behind.
    await this.#d.clients.core
      .deleteNamespacedSecret({ namespace: ca.metadata?.namespace ?? '', name: staged.metadata?.name ?? '' })
      .catch((err: unknown) =>
        this.#d.log.warn(
          { issuer: this.name, secret: staged.metadata?.name, error: describeApiError(err) },
          'could not delete the staged CA Secret after the switch; delete it by hand',
        ),
      );
  }

  async #reissue(ca: k8s.V1Secret, token: string, now: number): Promise<void> {
    const newCa = decodeData(ca.data?.[SecretKey.certificate]);
    const { secrets } = await this.#issued();
    const old = secrets.filter((s) => !signedBy(decodeData(s.data?.[SecretKey.certificate]), newCa));
    if (old.length === 0) {
      await this.#advance(
        ca,
        RolloverPhase.retire,
        now,
        `CA rollover of issuer "${this.name}": all ${secrets.length} leaves come from the new CA; Retire — the old CA stays trusted for ${Math.round(this.#cfg.retireAfterMs / 1000)}s more`,
      );
      return;
    }
    const failed = old.filter(
      (s) =>
        s.metadata?.annotations?.[Annotation.renewRequestedAt] === token &&
        s.metadata?.annotations?.[StatusAnnotation.state] === 'Failed',
    );
    if (failed.length > 0) {
      await this.#event(
        ca,
        'Warning',
        EventReason.caRolloverStalled,
        `CA rollover of issuer "${this.name}": re-issuing failed for ${failed.map((s) => `${s.metadata?.namespace}/${s.metadata?.name}`).join(', ')}; Reissue waits for them`,
      );
    }
    const unasked = old.filter((s) => s.metadata?.annotations?.[Annotation.renewRequestedAt] !== token);
    const window = windowsDecision(this.#cfg.reissueWindows, now);
    if (unasked.length > 0 && !window.inside) {
      const opens = window.nextStart === null ? 'never again' : new Date(window.nextStart).toISOString();
      await this.#announceWait(
        ca,
        `window ${token} ${opens}`,
        `CA rollover of issuer "${this.name}": Reissue waits for its maintenance window (ca.rollover.reissue.windows): ${unasked.length} leaves still from the old CA are not asked for yet; the next window opens at ${opens}`,
      );
      return;
    }
    this.#asked = this.#asked.filter((t) => t > now - MINUTE);
    let budget = this.#cfg.reissuePerMinute - this.#asked.length;
    for (const s of old) {
      if (budget <= 0) break;
      const annotations = { ...(s.metadata?.annotations ?? {}) };
      // Asked once per rollover: the token is the rollover's start, so no Secret is asked twice.
      if (annotations[Annotation.renewRequestedAt] === token) continue;
      annotations[Annotation.renewRequestedAt] = token;
      try {
        await this.#d.clients.core.replaceNamespacedSecret({
          namespace: s.metadata?.namespace ?? '',
          name: s.metadata?.name ?? '',
          body: { ...s, metadata: { ...s.metadata, annotations, managedFields: undefined } },
          fieldManager: FIELD_MANAGER,
        });
        this.#asked.push(now);
        budget--;
        crashPoint('rollover-reissue-ask');
      } catch (err) {
        if (httpStatus(err) !== 409) throw err;
      }
    }
  }

  async #retire(ca: k8s.V1Secret, since: number, retired: boolean, now: number): Promise<void> {
    if (!retired) {
      if (now - since < this.#cfg.retireAfterMs) return;
      // Leaves the signers issued with the old CA are replaced only when their holders ask again:
      // the old CA stays trusted (and its key kept) until the last of them has expired.
      const outstanding = await outstandingLeaves(
        this.#d.issuedRecords ?? [],
        decodeData(ca.data?.[CaSecretKey.previousCertificate]),
        now,
      );
      const last = outstanding[0];
      if (last) {
        const who = outstanding.map((o) => `${o.signer} (${describeUntil(o.until)}, ConfigMap ${o.record})`);
        await this.#announceWait(
          ca,
          `retire ${startedOf(ca)} ${last.until}`,
          `CA rollover of issuer "${this.name}": Retire keeps the old CA ${describeUntil(last.until)}: leaves it signed through ${who.join(', ')} are still valid and are replaced only when their holders ask again`,
        );
        return;
      }
      // A workload still rolling to its re-issued leaf has pods presenting the old CA's leaf:
      // narrowing the trust now would fail their handshakes with every peer that reloads first.
      const { pending } = await this.#propagation();
      if (pending.length > 0) {
        if (now - since < this.#cfg.maxWaitMs) return;
        const hold = this.#cfg.onMaxWait === 'hold';
        const message = hold
          ? `holds in Retire after maxWait: not rolled out to their re-issued leaves yet: ${pending.join(', ')}`
          : `retires the old CA after maxWait although these have not rolled out to their re-issued leaves: ${pending.join(', ')}`;
        await this.#event(
          ca,
          'Warning',
          EventReason.caRolloverStalled,
          `CA rollover of issuer "${this.name}" ${message}`,
        );
        if (hold) return;
      }
      const data: Record<string, string> = { ...ca.data };
      delete data[CaSecretKey.previousCertificate];
      delete data[CaSecretKey.previousKey];
      const annotations = { ...(ca.metadata?.annotations ?? {}) };
      annotations[StatusAnnotation.caRolloverRetired] = new Date(now).toISOString();
      if (!(await this.#writeCa(ca, data, annotations))) return;
      await this.#event(
        ca,
        'Normal',
        EventReason.caRolloverPhase,
        `CA rollover of issuer "${this.name}": the old CA is no longer trusted and its key is deleted; ca.crt of every Secret now narrows to the new CA`,
      );
      return;
    }
    const trust = trustSet(decodeData(ca.data?.[SecretKey.certificate]), decodedAll(ca.data));
    const { secrets } = await this.#issued();
    const left =
      (await spreadTrust(this.#d.clients, secrets, trust)) + (await this.#spreadBundles(ca, trust));
    if (left > 0) return;
    await this.#advance(
      ca,
      undefined,
      now,
      `CA rollover of issuer "${this.name}" complete: ${secrets.length} Secrets trust and use only the new CA`,
    );
  }
}

type RolloverPhaseArg = Parameters<typeof enterPhase>[1];

const startedOf = (ca: k8s.V1Secret) => readState(ca.metadata?.annotations).started ?? '';
