import { describe, expect, it } from 'vitest';
import { renewalDelayMs, seededUnit } from '../../../src/controller/retry.ts';
import { DAY, decodedCert, issuer, leaf, MIN, NS, setup, tls } from './fakes.ts';

const A = 'cert-rotator.io/';
const S = 'status.cert-rotator.io/';

describe('reconcile: read → decide → issue → verify → write → record → schedule', () => {
  it('renews a due Secret in one guarded replace, records a Renewed event, and schedules the next look', async () => {
    const t = setup();
    const now = t.clock.now();
    const old = await leaf('app.example.com', -DAY, MIN, now);
    const seen = t.api.put(tls('app', old, { [`${A}enabled`]: 'true' }));
    t.controller.upsert(seen);
    await t.controller.reconcile(`${NS}/app`);
    expect(t.api.replaced).toHaveLength(1);
    const written = t.api.get('app');
    expect(written.metadata?.annotations?.[`${A}revision`]).toBe('1');
    expect(written.metadata?.annotations?.[`${A}state`]).toBe('Ready');
    expect(decodedCert(written)).not.toBe(old.certPem);
    expect(t.events.reasons()).toEqual(['Renewed']);
    expect(t.events.events[0]?.message).toContain('renewed by issuer "main" (due)');
    // Until the watch shows the written version, the next look is at the new renewal time.
    const due = t.controller.nextLookAt(`${NS}/app`);
    expect(due).toBeGreaterThan(now + 10 * DAY);
  });

  it('does nothing for a Secret that is not due, and looks again at its renewal time', async () => {
    const t = setup();
    const now = t.clock.now();
    const pair = await leaf('ok.example.com', -DAY, 30 * DAY, now);
    t.controller.upsert(t.api.put(tls('ok', pair, { [`${A}enabled`]: 'true', [`${A}renew-before`]: '10d' })));
    expect(t.controller.nextLookAt(`${NS}/ok`)).toBe(Math.floor((now + 20 * DAY) / 1000) * 1000);
    await t.controller.reconcile(`${NS}/ok`);
    expect(t.api.replaced).toHaveLength(0);
    expect(issuer(t.issuers, 'main').calls).toBe(0);
  });

  it('reports invalid annotations once per resourceVersion and never writes', async () => {
    const t = setup();
    const pair = await leaf('bad.example.com', -DAY, MIN, t.clock.now());
    t.controller.upsert(t.api.put(tls('bad', pair, { [`${A}enabled`]: 'true', [`${A}dns-names`]: '' })));
    await t.controller.reconcile(`${NS}/bad`);
    await t.controller.reconcile(`${NS}/bad`);
    expect(t.events.reasons()).toEqual(['InvalidAnnotation']);
    expect(t.controller.nextLookAt(`${NS}/bad`)).toBeUndefined();
    expect(t.api.replaced).toHaveLength(0);
  });
});

describe('one retry state per Secret', () => {
  it('a failed renewal waits the renewal backoff, writes failures and last-failure-time, and falls back after fallbackAfter', async () => {
    const t = setup();
    issuer(t.issuers, 'main').failing = 'CA says no';
    const now = t.clock.now();
    const pair = await leaf('f.example.com', -DAY, MIN, now);
    t.controller.upsert(t.api.put(tls('f', pair, { [`${A}enabled`]: 'true' })));
    await t.controller.reconcile(`${NS}/f`);
    const after1 = t.api.get('f');
    expect(after1.metadata?.annotations?.[`${A}failures`]).toBe('1');
    expect(after1.metadata?.annotations?.[`${A}state`]).toBe('Failed');
    expect(Date.parse(after1.metadata?.annotations?.[`${S}last-failure-time`] ?? '')).toBe(now);
    const delay1 = renewalDelayMs(t.config.renewalBackoff, 1, (n) => seededUnit('uid-f', n));
    expect(delay1).toBeGreaterThanOrEqual(5 * MIN);
    expect(t.controller.nextLookAt(`${NS}/f`)).toBe(now + delay1);
    // A watch event before the backoff has passed does not bring the attempt forward.
    t.controller.upsert(after1);
    await t.controller.reconcile(`${NS}/f`);
    expect(issuer(t.issuers, 'main').calls).toBe(1);

    t.clock.advance(delay1);
    await t.controller.reconcile(`${NS}/f`);
    expect(issuer(t.issuers, 'main').calls).toBe(2);
    t.controller.upsert(t.api.get('f'));
    const failedEvents = t.events.events.filter((e) => e.reason === 'RenewalFailed');
    expect(failedEvents.map((e) => e.message)).toEqual([
      expect.stringContaining('CA says no (attempt 1; next attempt in'),
      expect.stringContaining('CA says no (attempt 2; next attempt in'),
    ]);
    // The same failure twice: one dedup key, without the attempt number.
    expect(new Set(failedEvents.map((e) => e.dedupKey))).toEqual(new Set(['CA says no']));

    // Two failures reach fallbackAfter: the fallback issues.
    t.clock.advance(renewalDelayMs(t.config.renewalBackoff, 2, (n) => seededUnit('uid-f', n)));
    await t.controller.reconcile(`${NS}/f`);
    expect(issuer(t.issuers, 'spare').calls).toBe(1);
    const renewed = t.api.get('f');
    expect(renewed.metadata?.annotations?.[`${A}failures`]).toBeUndefined();
    expect(renewed.metadata?.annotations?.[`${S}last-failure-time`]).toBeUndefined();
    expect(t.events.events.at(-1)?.message).toContain(
      'as fallback for issuer "main" after 2 consecutive failures',
    );
  });

  it('a restarted controller rebuilds the backoff and the fallback count from the Secret', async () => {
    const t = setup();
    issuer(t.issuers, 'main').failing = 'down';
    const now = t.clock.now();
    const pair = await leaf('r.example.com', -DAY, MIN, now);
    t.controller.upsert(t.api.put(tls('r', pair, { [`${A}enabled`]: 'true' })));
    await t.controller.reconcile(`${NS}/r`);
    const due = t.controller.nextLookAt(`${NS}/r`);

    // "Restart": a new controller that only knows what the Secret says.
    t.clock.advance(MIN);
    const second = t.make();
    second.upsert(t.api.get('r'));
    expect(second.nextLookAt(`${NS}/r`)).toBe(due);
    await second.reconcile(`${NS}/r`);
    expect(issuer(t.issuers, 'main').calls).toBe(1);

    t.clock.advanceTo(due ?? 0);
    await second.reconcile(`${NS}/r`);
    expect(issuer(t.issuers, 'main').calls).toBe(2);
    // Another restart: two failures on the Secret reach fallbackAfter (2), so the fallback issues.
    const third = t.make();
    third.upsert(t.api.get('r'));
    t.clock.advanceTo(third.nextLookAt(`${NS}/r`) ?? 0);
    await third.reconcile(`${NS}/r`);
    expect(issuer(t.issuers, 'spare').calls).toBe(1);
    expect(t.api.get('r').metadata?.annotations?.[`${A}revision`]).toBe('1');
  });

  it('an API error retries after 1 s doubling (jittered), without counting as a renewal failure', async () => {
    const t = setup();
    const pair = await leaf('e.example.com', -DAY, MIN, t.clock.now());
    t.controller.upsert(t.api.put(tls('e', pair, { [`${A}enabled`]: 'true' })));
    t.api.readError = new Error('connect ECONNREFUSED');
    const start = t.clock.now();
    await t.controller.reconcile(`${NS}/e`);
    // random() = 0.5: half of the 1 s ceiling, then half of 2 s.
    expect(t.controller.nextLookAt(`${NS}/e`)).toBe(start + 500);
    await t.controller.reconcile(`${NS}/e`);
    expect(t.controller.nextLookAt(`${NS}/e`)).toBe(start + 1_000);
    t.api.readError = undefined;
    t.clock.advance(1_000);
    await t.controller.reconcile(`${NS}/e`);
    expect(t.api.get('e').metadata?.annotations?.[`${A}revision`]).toBe('1');
    expect(t.events.reasons()).toEqual(['Renewed']);
  });
});

describe('renew-requested-at', () => {
  it('renews once per new token, writes the handled token, and ignores a repeated one', async () => {
    const t = setup();
    const now = t.clock.now();
    const pair = await leaf('q.example.com', -DAY, 60 * DAY, now);
    t.controller.upsert(
      t.api.put(tls('q', pair, { [`${A}enabled`]: 'true', [`${A}renew-requested-at`]: 'one' })),
    );
    expect(t.controller.nextLookAt(`${NS}/q`)).toBeUndefined(); // queued now, not scheduled
    await t.controller.reconcile(`${NS}/q`);
    const written = t.api.get('q');
    expect(written.metadata?.annotations?.[`${S}renew-request-handled`]).toBe('one');
    expect(t.events.events[0]?.message).toContain('(renewal requested)');
    t.controller.upsert(written);
    await t.controller.reconcile(`${NS}/q`);
    expect(t.api.replaced).toHaveLength(1);
  });

  it('a failed requested renewal stays pending and follows the backoff', async () => {
    const t = setup();
    issuer(t.issuers, 'main').failing = 'nope';
    const pair = await leaf('p.example.com', -DAY, 60 * DAY, t.clock.now());
    t.controller.upsert(
      t.api.put(tls('p', pair, { [`${A}enabled`]: 'true', [`${A}renew-requested-at`]: 't' })),
    );
    await t.controller.reconcile(`${NS}/p`);
    const failed = t.api.get('p');
    expect(failed.metadata?.annotations?.[`${S}renew-request-handled`]).toBeUndefined();
    t.controller.upsert(failed);
    await t.controller.reconcile(`${NS}/p`);
    expect(issuer(t.issuers, 'main').calls).toBe(1);
    issuer(t.issuers, 'main').failing = undefined;
    t.clock.advanceTo(t.controller.nextLookAt(`${NS}/p`) ?? 0);
    await t.controller.reconcile(`${NS}/p`);
    expect(t.api.get('p').metadata?.annotations?.[`${S}renew-request-handled`]).toBe('t');
  });
});

describe('races', () => {
  it('a fresh read is not put into the watch records: the watch event of a hand-replaced certificate still reaches the listener', async () => {
    const t = setup();
    const now = t.clock.now();
    const old = await leaf('h.example.com', -DAY, MIN, now);
    t.controller.upsert(t.api.put(tls('h', old, { [`${A}enabled`]: 'true' })));
    // Someone replaces the certificate by hand before the controller's reconcile reads it.
    const theirs = await leaf('h.example.com', -MIN, 30 * DAY, now);
    const replaced = t.api.put(tls('h', theirs, { [`${A}enabled`]: 'true' }));
    await t.controller.reconcile(`${NS}/h`);
    expect(t.api.replaced).toHaveLength(0); // their certificate is not due
    t.controller.upsert(replaced);
    const change = t.listener.changes.at(-1);
    expect(change?.previousFingerprint).toBeDefined();
    expect(change?.previousFingerprint).not.toBe(change?.fingerprint);
    expect(change?.byController).toBe(false);
  });

  it("the controller's own write is marked as its own before the write returns", async () => {
    const t = setup();
    const old = await leaf('o.example.com', -DAY, MIN, t.clock.now());
    t.controller.upsert(t.api.put(tls('o', old, { [`${A}enabled`]: 'true' })));
    // The watch event of the write arrives before the replace call has returned.
    t.api.onReplaced = (written) => t.controller.upsert(written);
    await t.controller.reconcile(`${NS}/o`);
    const change = t.listener.changes.at(-1);
    expect(change?.previousFingerprint).not.toBe(change?.fingerprint);
    expect(change?.byController).toBe(true);
  });

  it('a 409 discards the new certificate and decides again on the other writer’s data', async () => {
    const t = setup();
    const now = t.clock.now();
    const old = await leaf('c.example.com', -DAY, MIN, now);
    t.controller.upsert(t.api.put(tls('c', old, { [`${A}enabled`]: 'true' })));
    const theirs = await leaf('c.example.com', -MIN, 30 * DAY, now);
    const realReplace = t.api.replace.bind(t.api);
    let interfered = false;
    t.api.replace = async (body) => {
      if (!interfered) {
        interfered = true;
        t.api.put(tls('c', theirs, { [`${A}enabled`]: 'true' }));
      }
      return await realReplace(body);
    };
    await t.controller.reconcile(`${NS}/c`);
    expect(decodedCert(t.api.get('c'))).toBe(theirs.certPem);
    await t.controller.reconcile(`${NS}/c`); // the queued second look
    expect(decodedCert(t.api.get('c'))).toBe(theirs.certPem);
    expect(t.api.get('c').metadata?.annotations?.[`${A}revision`]).toBeUndefined();
  });

  it('says why tls.crt does not parse in the failure event', async () => {
    const t = setup();
    const s = tls('g', undefined, { [`${A}enabled`]: 'true' });
    s.data = {
      'tls.crt': Buffer.from('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n').toString(
        'base64',
      ),
    };
    t.controller.upsert(t.api.put(s));
    await t.controller.reconcile(`${NS}/g`);
    const event = t.events.events.find((e) => e.reason === 'RenewalFailed');
    expect(event?.message).toMatch(/nothing to issue for: tls.crt cannot be parsed: .+, and no dns-names/);
  });

  it('a slow issuer (ACME, CSR) shows state Issuing on the Secret while it works; a fast one writes once', async () => {
    const t = setup();
    const slow = issuer(t.issuers, 'main');
    slow.kind = 'acme';
    const states: Array<string | undefined> = [];
    slow.during = () => states.push(t.api.get('slow').metadata?.annotations?.[`${A}state`]);
    const old = await leaf('slow.example.com', -DAY, MIN, t.clock.now());
    t.controller.upsert(t.api.put(tls('slow', old, { [`${A}enabled`]: 'true' })));
    await t.controller.reconcile(`${NS}/slow`);
    expect(states).toEqual(['Issuing']);
    expect(t.api.replaced).toHaveLength(2);
    expect(t.api.get('slow').metadata?.annotations?.[`${A}state`]).toBe('Ready');
    slow.kind = 'selfSigned';
    t.controller.upsert(t.api.put(tls('fast', old, { [`${A}enabled`]: 'true' })));
    await t.controller.reconcile(`${NS}/fast`);
    expect(t.api.replaced).toHaveLength(3);
  });

  it('records the owed restart with the renewal only when a workload would be restarted', async () => {
    const t = setup();
    const old = await leaf('w.example.com', -DAY, MIN, t.clock.now());
    t.controller.upsert(t.api.put(tls('used', old, { [`${A}enabled`]: 'true' })));
    await t.controller.reconcile(`${NS}/used`);
    const used = t.api.get('used');
    expect(used.metadata?.annotations?.[`${S}restart-owed`]).toMatch(/^[0-9a-f]+:[0-9a-f]+$/);
    const asked: string[] = [];
    t.listener.restartsWorkloads = (_ns, name, restart) => {
      asked.push(`${name}:${restart.mode}`);
      return false;
    };
    t.controller.upsert(t.api.put(tls('unused', old, { [`${A}enabled`]: 'true' })));
    await t.controller.reconcile(`${NS}/unused`);
    expect(asked).toEqual(['unused:auto']);
    expect(t.api.get('unused').metadata?.annotations?.[`${S}restart-owed`]).toBeUndefined();
  });

  it("an issuer's Retry-After longer than the backoff holds across a restart (next-attempt-time)", async () => {
    const t = setup();
    const main = issuer(t.issuers, 'main');
    main.failing = 'busy';
    main.retryAfterMs = 7_200_000;
    const now = t.clock.now();
    const old = await leaf('busy.example.com', -DAY, MIN, now);
    t.controller.upsert(t.api.put(tls('busy', old, { [`${A}enabled`]: 'true' })));
    await t.controller.reconcile(`${NS}/busy`);
    const failed = t.api.get('busy');
    expect(failed.metadata?.annotations?.[`${S}next-attempt-time`]).toBe(
      new Date(now + 7_200_000).toISOString(),
    );
    expect(t.events.events[0]?.message).toContain('next attempt in 7200s');
    const second = t.make();
    second.upsert(failed);
    expect(second.nextLookAt(`${NS}/busy`)).toBe(now + 7_200_000);
  });
});

describe('an issuer that is still waiting (a CSR not approved yet)', () => {
  it('keeps state Issuing, counts no failure, records no Event, and looks again after the hint', async () => {
    const t = setup();
    const main = issuer(t.issuers, 'main');
    main.kind = 'kubernetesCSR';
    main.pendingMs = 7_000;
    const start = t.clock.now();
    const pair = await leaf('p.example.com', -DAY, MIN, start);
    t.controller.upsert(t.api.put(tls('p', pair, { [`${A}enabled`]: 'true' })));
    await t.controller.reconcile(`${NS}/p`);
    expect(main.calls).toBe(1);
    const marked = t.api.get('p');
    expect(marked.metadata?.annotations?.[`${A}state`]).toBe('Issuing');
    expect(marked.metadata?.annotations?.[`${A}failures`]).toBeUndefined();
    expect(marked.metadata?.annotations?.[`${S}last-failure-time`]).toBeUndefined();
    expect(marked.metadata?.annotations?.[`${A}last-error`]).toBeUndefined();
    expect(decodedCert(marked)).toBe(pair.certPem);
    expect(t.events.reasons()).toEqual([]);
    expect(t.controller.nextLookAt(`${NS}/p`)).toBe(start + 7_000);

    // The watch event of the Issuing write does not bring the look forward.
    t.controller.upsert(marked);
    expect(t.controller.nextLookAt(`${NS}/p`)).toBe(start + 7_000);
    await t.controller.reconcile(`${NS}/p`);
    expect(main.calls).toBe(1);

    // Looked at again: still pending — no second Issuing write, still no Event.
    t.clock.advance(7_000);
    await t.controller.reconcile(`${NS}/p`);
    expect(main.calls).toBe(2);
    expect(t.api.replaced).toHaveLength(1);
    expect(t.events.reasons()).toEqual([]);
    expect(t.controller.nextLookAt(`${NS}/p`)).toBe(start + 14_000);

    // Issued at the next look: written from the main issuer (no fallback), Ready, one Event.
    main.pendingMs = undefined;
    t.clock.advance(7_000);
    await t.controller.reconcile(`${NS}/p`);
    expect(main.calls).toBe(3);
    expect(issuer(t.issuers, 'spare').calls).toBe(0);
    const renewed = t.api.get('p');
    expect(renewed.metadata?.annotations?.[`${A}state`]).toBe('Ready');
    expect(renewed.metadata?.annotations?.[`${A}revision`]).toBe('1');
    expect(decodedCert(renewed)).not.toBe(pair.certPem);
    expect(t.events.reasons()).toEqual(['Renewed']);
  });

  it('neither grows the backoff nor reaches fallbackAfter, however often it waits', async () => {
    const t = setup();
    const main = issuer(t.issuers, 'main');
    main.kind = 'kubernetesCSR';
    main.failing = 'CSR denied';
    const pair = await leaf('q.example.com', -DAY, MIN, t.clock.now());
    t.controller.upsert(t.api.put(tls('q', pair, { [`${A}enabled`]: 'true' })));
    await t.controller.reconcile(`${NS}/q`);
    expect(t.api.get('q').metadata?.annotations?.[`${A}failures`]).toBe('1');
    const delay1 = renewalDelayMs(t.config.renewalBackoff, 1, (n) => seededUnit('uid-q', n));
    t.clock.advance(delay1);
    main.failing = undefined;
    main.pendingMs = 10_000;
    // Five looks at a pending CSR: none is a failure (fallbackAfter is 2).
    for (let i = 0; i < 5; i++) {
      t.controller.upsert(t.api.get('q'));
      await t.controller.reconcile(`${NS}/q`);
      expect(t.controller.nextLookAt(`${NS}/q`)).toBe(t.clock.now() + 10_000);
      t.clock.advance(10_000);
    }
    expect(main.calls).toBe(6);
    const waiting = t.api.get('q');
    expect(waiting.metadata?.annotations?.[`${A}failures`]).toBe('1');
    expect(waiting.metadata?.annotations?.[`${A}state`]).toBe('Issuing');
    expect(t.events.reasons()).toEqual(['RenewalFailed']);
    main.pendingMs = undefined;
    await t.controller.reconcile(`${NS}/q`);
    expect(issuer(t.issuers, 'spare').calls).toBe(0);
    expect(t.api.get('q').metadata?.annotations?.[`${A}failures`]).toBeUndefined();
    expect(t.events.reasons()).toEqual(['RenewalFailed', 'Renewed']);
  });

  it('is looked at again at once when its CSR is answered (wakePending), not only at the hint', async () => {
    const t = setup();
    const main = issuer(t.issuers, 'main');
    main.kind = 'kubernetesCSR';
    main.pendingMs = 60_000;
    const pair = await leaf('w.example.com', -DAY, MIN, t.clock.now());
    t.controller.upsert(t.api.put(tls('w', pair, { [`${A}enabled`]: 'true' })));
    t.controller.upsert(t.api.put(tls('other', pair, { [`${A}enabled`]: 'true' })));
    await t.controller.reconcile(`${NS}/w`);
    expect(t.controller.nextLookAt(`${NS}/w`)).toBe(t.clock.now() + 60_000);
    // Another namespace, or another Secret's CSR: nothing changes.
    t.controller.wakePending('elsewhere', () => true);
    t.controller.wakePending(NS, (name) => name === 'nope');
    expect(t.controller.nextLookAt(`${NS}/w`)).toBe(t.clock.now() + 60_000);
    t.controller.wakePending(NS, (name) => name === 'w');
    expect(t.controller.nextLookAt(`${NS}/w`)).toBeUndefined(); // queued now
    main.pendingMs = undefined;
    t.clock.advance(100);
    await t.controller.reconcile(`${NS}/w`);
    expect(main.calls).toBe(2);
    expect(t.api.get('w').metadata?.annotations?.[`${A}revision`]).toBe('1');
  });

  it('a wake never cuts a failure backoff short', async () => {
    const t = setup();
    const main = issuer(t.issuers, 'main');
    main.kind = 'kubernetesCSR';
    main.failing = 'CSR denied';
    const pair = await leaf('d.example.com', -DAY, MIN, t.clock.now());
    t.controller.upsert(t.api.put(tls('d', pair, { [`${A}enabled`]: 'true' })));
    await t.controller.reconcile(`${NS}/d`);
    const due = t.controller.nextLookAt(`${NS}/d`);
    t.controller.wakePending(NS, () => true);
    expect(t.controller.nextLookAt(`${NS}/d`)).toBe(due);
    await t.controller.reconcile(`${NS}/d`);
    expect(main.calls).toBe(1);
  });

  it('bounds the hint: at least 1 s, at most 10 min', async () => {
    const t = setup();
    const main = issuer(t.issuers, 'main');
    main.kind = 'kubernetesCSR';
    main.pendingMs = 0;
    const pair = await leaf('b.example.com', -DAY, MIN, t.clock.now());
    t.controller.upsert(t.api.put(tls('b', pair, { [`${A}enabled`]: 'true' })));
    await t.controller.reconcile(`${NS}/b`);
    expect(t.controller.nextLookAt(`${NS}/b`)).toBe(t.clock.now() + 1_000);
    t.clock.advance(1_000);
    main.pendingMs = 5 * 3_600_000;
    await t.controller.reconcile(`${NS}/b`);
    expect(t.controller.nextLookAt(`${NS}/b`)).toBe(t.clock.now() + 10 * MIN);
  });
});
