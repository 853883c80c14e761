/**
 * What the Secret reconciler tells the rollout side about certificate changes. Owned here, by the
 * listener: the controller imports this contract, rollout never imports the controller.
 */
import type { RestartPolicy } from '../policy/restart.ts';
import type { Window } from '../policy/windows.ts';

/** A managed Secret now holds a different (parseable) certificate than before. */
export interface CertificateChange {
  namespace: string;
  name: string;
  /** Identifies the leaf: serial and public key hash. */
  fingerprint: string;
  /** The fingerprint seen before, if any (absent on the first sighting since start-up). */
  previousFingerprint?: string;
  /** The parts of the Secret's policy a restart depends on. */
  policy: { restart: RestartPolicy; window?: Window | undefined };
  notBefore: number;
  notAfter: number;
  /** True when this process wrote the certificate (a renewal), false for a change made by others. */
  byController: boolean;
  /**
   * The Secret records (`status.cert-rotator.io/restart-owed`) that the workloads using it still
   * have to be rolled to this certificate: a change a previous process saw and did not finish.
   */
  restartOwed?: boolean;
}

/** Told about certificate changes of managed Secrets (the rollout manager listens here). */
export interface CertificateListener {
  certificateChanged(change: CertificateChange): void;
  secretRemoved(namespace: string, name: string): void;
  /**
   * Would a new certificate in this Secret restart any workload (as far as is known now)? The
   * controller records an owed restart with the renewal only then. Absent: assume yes.
   */
  restartsWorkloads?(namespace: string, name: string, restart: RestartPolicy): boolean;
}
