import { describe, expect, it } from 'vitest';
import {
  type NoticeCandidate,
  type NoticeEntry,
  noticeMessage,
  noticesDue,
} from '../../../src/controller/notices.ts';

const DAY = 86_400_000;
const NOW = Date.UTC(2030, 0, 1);
const T = [14 * DAY, 7 * DAY, 0];

function c(daysLeft: number, extra: Partial<NoticeCandidate> = {}): NoticeCandidate {
  return {
    namespace: 'ns',
    name: 'a',
    uid: 'u',
    managed: false,
    serialHex: '01',
    notAfter: NOW + daysLeft * DAY,
    ...extra,
  };
}

describe('noticesDue', () => {
  it('sends each threshold once as time left crosses it', () => {
    let sent = new Map<string, NoticeEntry>();
    const sentAt: number[] = [];
    for (let day = 20; day >= -2; day -= 0.5) {
      const r = noticesDue([['ns/a', c(day)]], sent, T, NOW);
      sentAt.push(...r.notices.map((n) => n.thresholdMs / DAY));
      sent = r.entries;
    }
    expect(sentAt).toEqual([14, 7, 0]);
  });

  it('sends only the smallest threshold a certificate first seen late has crossed', () => {
    const r = noticesDue([['ns/a', c(3)]], new Map(), T, NOW);
    expect(r.notices.map((n) => n.thresholdMs)).toEqual([7 * DAY]);
    expect(r.entries.get('ns/a')).toEqual({ serialHex: '01', sentMs: [14 * DAY, 7 * DAY] });
    expect(noticesDue([['ns/a', c(2.5)]], r.entries, T, NOW).notices).toEqual([]);
  });

  it('waits for a managed certificate until its renewal is overdue, as the alert rules do', () => {
    expect(
      noticesDue([['ns/a', c(5, { managed: true, renewalTime: NOW + DAY })]], new Map(), T, NOW).notices,
    ).toEqual([]);
    expect(
      noticesDue([['ns/a', c(5, { managed: true, renewalTime: NOW - 1 })]], new Map(), T, NOW).notices,
    ).toHaveLength(1);
    // With the alert rules' `for:` as grace: a renewal under way at its time is no notice yet.
    const grace = 15 * 60_000;
    const due = (ago: number) =>
      noticesDue([['ns/a', c(5, { managed: true, renewalTime: NOW - ago })]], new Map(), T, NOW, grace)
        .notices;
    expect(due(60_000)).toEqual([]);
    expect(due(grace)).toHaveLength(1);
  });

  it('starts afresh for a new certificate and prunes Secrets that are gone', () => {
    const sent = new Map<string, NoticeEntry>([
      ['ns/a', { serialHex: '01', sentMs: [14 * DAY] }],
      ['ns/gone', { serialHex: '02', sentMs: [14 * DAY] }],
    ]);
    const renewed = noticesDue([['ns/a', c(80, { serialHex: '03' })]], sent, T, NOW);
    expect(renewed.notices).toEqual([]);
    expect([...renewed.entries.keys()]).toEqual([]);
    expect([...renewed.changed].sort()).toEqual(['ns/a', 'ns/gone']);
    expect(noticesDue([['ns/a', c(10, { serialHex: '03' })]], renewed.entries, T, NOW).notices).toHaveLength(
      1,
    );
  });

  it('words the Event', () => {
    const m = noticeMessage({ key: 'ns/a', candidate: c(6.5), thresholdMs: 7 * DAY }, NOW);
    expect(m.reason).toBe('CertificateExpiring');
    expect(m.message).toMatch(
      /^certificate \(serial 01\) expires in 6d 12h, less than the 7d notice threshold/,
    );
    expect(noticeMessage({ key: 'ns/a', candidate: c(-1), thresholdMs: 0 }, NOW).reason).toBe(
      'CertificateExpired',
    );
  });
});
