import { describe, expect, it } from 'vitest';
import { PeriodicTask } from '../../../src/clock.ts';
import { FakeClock } from './fake-clock.ts';

const settle = async () => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

describe('PeriodicTask', () => {
  it('runs at start, then the interval after each pass ends; a failed pass is reported and the next one comes', async () => {
    const clock = new FakeClock();
    const passes: number[] = [];
    const errors: string[] = [];
    let fail = true;
    const task = new PeriodicTask({
      clock,
      intervalMs: () => 1_000,
      pass: async () => {
        passes.push(clock.now());
        if (fail) {
          fail = false;
          throw new Error('first pass fails');
        }
      },
      onError: (err) => errors.push((err as Error).message),
    });
    const t0 = clock.now();
    task.start();
    clock.advance(0);
    await settle();
    expect(passes).toEqual([t0]);
    expect(errors).toEqual(['first pass fails']);
    clock.advance(999);
    await settle();
    expect(passes).toHaveLength(1);
    clock.advance(1);
    await settle();
    expect(passes).toEqual([t0, t0 + 1_000]);
    await task.stop();
    clock.advance(10_000);
    await settle();
    expect(passes).toHaveLength(2);
    expect(clock.pendingTimers).toBe(0);
  });

  it('stop waits for a pass in flight and schedules none after it', async () => {
    const clock = new FakeClock();
    let release: () => void = () => {};
    let passes = 0;
    const task = new PeriodicTask({
      clock,
      intervalMs: () => 10,
      pass: () => {
        passes++;
        return new Promise<void>((r) => {
          release = r;
        });
      },
      onError: () => {},
    });
    task.start();
    clock.advance(0);
    let stopped = false;
    const stopping = task.stop().then(() => {
      stopped = true;
    });
    await settle();
    expect(stopped).toBe(false);
    release();
    await stopping;
    clock.advance(1_000);
    await settle();
    expect(passes).toBe(1);
    expect(clock.pendingTimers).toBe(0);
  });

  it('runSoon runs a pass now instead of at the interval; during a pass, right after it (never two at once)', async () => {
    const clock = new FakeClock();
    const starts: number[] = [];
    let inFlight = 0;
    let most = 0;
    let release: (() => void) | undefined;
    const task = new PeriodicTask({
      clock,
      intervalMs: () => 30_000,
      pass: () => {
        starts.push(clock.now());
        inFlight++;
        most = Math.max(most, inFlight);
        return new Promise<void>((r) => {
          release = () => {
            inFlight--;
            r();
          };
        });
      },
      onError: () => {},
    });
    const t0 = clock.now();
    task.start();
    clock.advance(0);
    await settle();
    release?.();
    await settle();
    expect(starts).toEqual([t0]);
    // Idle, next pass due in 30 s: runSoon brings it forward.
    clock.advance(1_000);
    task.runSoon();
    clock.advance(0);
    await settle();
    expect(starts).toEqual([t0, t0 + 1_000]);
    // During that pass: the next starts as soon as it ends, not 30 s later.
    task.runSoon();
    task.runSoon();
    clock.advance(500);
    await settle();
    expect(starts).toHaveLength(2);
    release?.();
    await settle();
    clock.advance(0);
    await settle();
    expect(starts).toEqual([t0, t0 + 1_000, t0 + 1_500]);
    expect(most).toBe(1);
    release?.();
    await settle();
    await task.stop();
    task.runSoon();
    clock.advance(60_000);
    await settle();
    expect(starts).toHaveLength(3);
  });
});
