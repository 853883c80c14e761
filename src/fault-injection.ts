/**
 * Fault injection for tests, never for production use: `CERT_ROTATOR_TEST_CRASH_AFTER=<point>`
 * makes the process exit with code 137 (what SIGKILL gives) right after the named step, so a
 * test can check what a crash at exactly that point leaves behind and how a restart recovers.
 *
 * Points: `finalize` — an ACME order was finalized (the pending key and order URL are
 * persisted), before the certificate is downloaded and the managed Secret written.
 * `rollover-trust-write` — a CA rollover wrote the trust set to one Secret's ca.crt (the first
 * such write of the process: in Trust, the others are not written yet).
 * `rollover-reissue-ask` — Reissue asked one Secret for its renewal (the others not yet).
 */
export type CrashPoint = 'finalize' | 'rollover-trust-write' | 'rollover-reissue-ask';

export const CRASH_AFTER_ENV = 'CERT_ROTATOR_TEST_CRASH_AFTER';

export function crashPoint(point: CrashPoint): void {
  if (process.env[CRASH_AFTER_ENV] !== point) return;
  process.stderr.write(`fault injection: ${CRASH_AFTER_ENV}=${point}: exiting with 137\n`);
  process.exit(137);
}
