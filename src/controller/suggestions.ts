/**
 * The CA's suggested renewal times (ACME ARI) per managed Secret, kept off the planning path:
 * `lookup` answers from the cache at once and, when there is no fresh answer for the Secret's
 * current certificate, asks the issuer in the background (a few at a time); when the answer
 * arrives `onChange(key)` lets the controller plan again, and `refreshAt(key)` tells the
 * controller's one schedule when to look again (the answer's Retry-After).
 */
import type { Clock } from '../clock.ts';
import type { Issuer } from '../issuers/types.ts';
import type { Logger } from '../observability/logger.ts';
import type { SecretRecord } from './record.ts';

/** After a failed lookup, ask again after this long. */
const ERROR_REFRESH_MS = 5 * 60_000;
/** After "no opinion" (the CA does not know the certificate), ask again after this long. */
const NONE_REFRESH_MS = 6 * 3_600_000;
const MAX_IN_FLIGHT = 4;

interface Entry {
  /** serial of the certificate the answer is for. */
  serialHex: string;
  issuer: string;
  at: number | undefined;
  refreshAt: number;
  inFlight: boolean;
}

export class SuggestedRenewals {
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly onChange: (key: string) => void;
  private readonly entries = new Map<string, Entry>();
  private readonly waiting: Array<() => void> = [];
  private inFlight = 0;
  private stopped = false;

  constructor(opts: { clock: Clock; log: Logger; onChange: (key: string) => void }) {
    this.clock = opts.clock;
    this.log = opts.log;
    this.onChange = opts.onChange;
  }

  /** The suggested renewal time for the record's certificate, if known; starts a lookup if due. */
  lookup(key: string, record: SecretRecord, issuer: Issuer | undefined): number | undefined {
    const cert = record.cert;
    if (this.stopped || !issuer?.suggestedRenewalTime || !cert || !record.managed) {
      this.forget(key);
      return undefined;
    }
    const now = this.clock.now();
    let entry = this.entries.get(key);
    if (!entry || entry.serialHex !== cert.serialHex || entry.issuer !== issuer.name) {
      entry = {
        serialHex: cert.serialHex,
        issuer: issuer.name,
        at: undefined,
        refreshAt: 0,
        inFlight: false,
      };
      this.entries.set(key, entry);
    }
    if (!entry.inFlight && now >= entry.refreshAt) this.fetch(key, entry, record, issuer);
    return entry.at;
  }

  /** When the answer for `key` should be asked for again; undefined while a lookup runs or none is kept. */
  refreshAt(key: string): number | undefined {
    const entry = this.entries.get(key);
    return entry && !entry.inFlight ? entry.refreshAt : undefined;
  }

  forget(key: string): void {
    this.entries.delete(key);
  }

  stop(): void {
    this.stopped = true;
  }

  private fetch(key: string, entry: Entry, record: SecretRecord, issuer: Issuer): void {
    const ask = issuer.suggestedRenewalTime?.bind(issuer);
    const cert = record.cert;
    if (!ask || !cert) return;
    entry.inFlight = true;
    const run = async () => {
      let at: number | undefined;
      let refreshAfter: number;
      try {
        const answer = await ask({
          namespace: record.namespace,
          secretName: record.name,
          serialHex: cert.serialHex,
          notBefore: cert.notBefore,
          notAfter: cert.notAfter,
        });
        at = answer?.at;
        refreshAfter = answer?.refreshAfterMs ?? NONE_REFRESH_MS;
      } catch (err) {
        at = entry.at;
        refreshAfter = ERROR_REFRESH_MS;
        this.log.debug(
          { secret: key, issuer: issuer.name, error: err instanceof Error ? err.message : String(err) },
          'suggested renewal time lookup failed; will ask again',
        );
      }
      entry.inFlight = false;
      // The certificate may have changed meanwhile: then this answer is for nothing.
      if (this.stopped || this.entries.get(key) !== entry) return;
      entry.at = at;
      entry.refreshAt = this.clock.now() + refreshAfter;
      // Plan again: with a new suggestion, and in any case to look again at refreshAt.
      this.onChange(key);
    };
    this.limit(run);
  }

  private limit(task: () => Promise<void>): void {
    const start = () => {
      this.inFlight++;
      task().finally(() => {
        this.inFlight--;
        this.waiting.shift()?.();
      });
    };
    if (this.inFlight < MAX_IN_FLIGHT) start();
    else this.waiting.push(start);
  }
}
