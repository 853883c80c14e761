import { describe, expect, it } from 'vitest';
import type { Snapshot } from '../../src/app/demo-scenario.ts';
import {
  changes,
  clockTime,
  type Progress,
  rolledReplicaSet,
  screen,
  Terminal,
} from '../../src/app/demo-view.ts';

const T = Date.parse('2026-12-01T08:40:00Z');
const progress: Progress = { firstSerial: 'aaaa', firstReplicaSets: new Set(['web-1']) };

const before: Snapshot = {
  cert: { serial: 'aaaa', notAfter: T + 100_000, state: '-', revision: '-', renewalTime: T + 20_000 },
  replicaSets: [{ name: 'web-1', created: T - 1_000 }],
  events: [
    {
      uid: 'e1/1',
      time: T - 1_000,
      type: 'Normal',
      reason: 'ScalingReplicaSet',
      object: 'Deployment/web',
      message: 'Scaled up replica set web-1 from 0 to 1',
    },
  ],
};

const after: Snapshot = {
  cert: {
    serial: 'bbbb',
    notAfter: T + 86_400_000,
    state: 'Ready',
    revision: '1',
    renewalTime: T + 86_300_000,
  },
  replicaSets: [
    { name: 'web-1', created: T - 1_000 },
    { name: 'web-2', created: T + 21_000, certificateHash: 'abc' },
  ],
  events: [
    ...before.events,
    {
      uid: 'e2/1',
      time: T + 20_000,
      type: 'Normal',
      reason: 'Renewed',
      object: 'Secret/web-tls',
      message: 'renewed by issuer "demo-ca" (due)',
    },
  ],
};

describe('demo view', () => {
  it('on a terminal: one block with the certificate, the ReplicaSets and the events, redrawn each time', () => {
    const lines = screen(before, progress, T, ['header']);
    expect(lines).toContain('  notAfter  08:41:40Z   1m40s left');
    expect(lines).toContain('  state     -   revision -   renewal at 08:40:20Z (in 20s)');
    expect(lines.at(-1)).toBe('Waiting for the renewal time (notAfter − renew-before 100s).');
    const done = screen(after, progress, T + 22_000, ['header']);
    expect(done.find((l) => l.startsWith('  serial'))).toBe('  serial    bbbb   (renewed)');
    expect(done.find((l) => l.includes('web-2'))).toMatch(
      /← new: rollout done \(no nodes here, so no pod runs/,
    );
    expect(done.some((l) => l.includes('Waiting'))).toBe(false);
  });

  it('without a terminal: only what changed, as lines', () => {
    expect(changes(undefined, before, progress, T)).toEqual([
      'certificate cert-rotator-demo/web-tls: serial aaaa, notAfter 08:41:40Z (1m40s left), state -, revision -, renewal at 08:40:20Z (in 20s)',
      'ReplicaSet web-1 created',
      'event 08:39:59Z Normal  ScalingReplicaSet Deployment/web: Scaled up replica set web-1 from 0 to 1',
    ]);
    expect(changes(before, before, progress, T + 1_000)).toEqual([]);
    const lines = changes(before, after, progress, T + 22_000);
    expect(lines[0]).toMatch(
      /^certificate .*serial bbbb, notAfter 2026-12-02 08:40:00Z .*revision 1, .* — renewed$/,
    );
    expect(lines[1]).toMatch(
      /^ReplicaSet web-2 created by the restart: rollout done \(the demo cluster has no nodes/,
    );
    expect(lines[2]).toBe(
      'event 08:40:20Z Normal  Renewed           Secret/web-tls: renewed by issuer "demo-ca" (due)',
    );
    expect(rolledReplicaSet(after, progress)).toBe('web-2');
    expect(rolledReplicaSet(before, progress)).toBeUndefined();
  });

  it('shows the date only for times not within 12 hours', () => {
    expect(clockTime(T + 3_600_000, T)).toBe('09:40:00Z');
    expect(clockTime(T + 86_400_000, T)).toBe('2026-12-02 08:40:00Z');
  });

  it('on a terminal redraws the block in place: up over the lines drawn last, clear, draw', () => {
    const written: string[] = [];
    const term = new Terminal({ write: (t) => written.push(t), isTTY: true, columns: 50 });
    expect(term.tty).toBe(true);
    term.redraw(['one', 'two']);
    term.redraw(['three', 'x'.repeat(80)]);
    expect(written).toEqual(['one\ntwo\n', `\x1b[2F\x1b[Jthree\n${'x'.repeat(48)}…\n`]);
    // A scrolling line in between: the next block starts below it, nothing is erased.
    term.line('a line');
    term.redraw(['four']);
    expect(written.at(-1)).toBe('four\n');
    expect(written.at(-2)).toMatch(/^\d\d:\d\d:\d\dZ a line\n$/);
  });
});
