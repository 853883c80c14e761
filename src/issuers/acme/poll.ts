/**
 * Polling an ACME object (order, authorization) until it settles: quick first polls, then
 * doubling, honouring the CA's Retry-After once the first polls are done, bounded by a deadline.
 */
import type { Clock } from '../../clock.ts';
import type { AcmeConnection } from './client.ts';
import { parseRetryAfter, problemDetail } from './transport.ts';

const FIRST_POLL_MS = 25;
const MAX_POLL_MS = 1_000;
/** A Retry-After on a pending object is honoured from this poll on (the first polls are quick). */
const POLLS_BEFORE_RETRY_AFTER = 4;
const MAX_POLL_RETRY_AFTER_MS = 10_000;

/** Polls `url` until `state` says done (returns the body) or failed (throws PollFailed). */
export async function poll<T>(
  conn: AcmeConnection,
  action: string,
  url: string,
  deadline: number,
  clock: Clock,
  state: (body: T) => 'done' | 'pending' | 'failed',
): Promise<T> {
  let delay = FIRST_POLL_MS;
  for (let polls = 1; ; polls++) {
    const res = await conn.post(action, url, null, [200]);
    const body = res.data as T;
    const s = state(body);
    if (s === 'done') return body;
    if (s === 'failed') throw new PollFailed(action, url, body);
    const retryAfter = parseRetryAfter(res.headers['retry-after'], clock.now());
    const wait =
      polls >= POLLS_BEFORE_RETRY_AFTER && retryAfter !== undefined
        ? Math.max(delay, Math.min(retryAfter, MAX_POLL_RETRY_AFTER_MS))
        : delay;
    if (clock.now() + wait > deadline) throw new Error(`timed out waiting for ${action} ${url}`);
    await new Promise<void>((r) => clock.setTimeout(r, wait));
    delay = Math.min(MAX_POLL_MS, delay * 2);
  }
}

/** The polled object became invalid; `body` is its last state, with the CA's problem detail. */
export class PollFailed extends Error {
  readonly body: unknown;
  constructor(action: string, url: string, body: unknown) {
    const err = (body as { error?: unknown } | undefined)?.error;
    super(`${action} ${url} became invalid${err ? `: ${problemDetail(err)}` : ''}`);
    this.name = 'PollFailed';
    this.body = body;
  }
}
