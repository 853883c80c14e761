/**
 * The status page: what the controller sees, as one self-contained HTML document. Pure: data in,
 * escaped HTML and SVG out. No script, no external asset, one inline stylesheet whose hash is in
 * the Content-Security-Policy, so a browser refuses anything else, including any markup that got
 * past the escaping. Only certificate metadata ever reaches it: names, validity, issuer, state,
 * planned renewal, events. The page refreshes itself with a meta refresh.
 */
import { createHash } from 'node:crypto';
import { escapeHtml } from './escape.ts';
import { formatAge, formatTime, formatTimeLeft } from './format.ts';

/** What the page shows of one certificate. */
export interface CertificateView {
  namespace: string;
  secret: string;
  managed: boolean;
  issuer: string;
  commonName?: string | undefined;
  dnsNames: readonly string[];
  notBefore?: number | undefined;
  notAfter?: number | undefined;
  state: string;
  /** Whether the state needs a person's eyes (colours the row). */
  severity: 'ok' | 'warn' | 'bad' | 'info';
  plannedRenewal?: number | undefined;
  /** Why the renewal is planned when it is (or why there is none). */
  why: string;
  lastEvent?: ActivityView | undefined;
}

/** One renewal, failure, rollout or problem, as the page lists it. */
export interface ActivityView {
  at: number;
  type: 'Normal' | 'Warning';
  reason: string;
  /** `namespace/name` or `kind/namespace/name` of the object it is about. */
  object: string;
  message: string;
}

export interface StatusView {
  now: number;
  /** Whether this replica leads; undefined without leader election. */
  leading?: boolean | undefined;
  certificates: readonly CertificateView[];
  recent: readonly ActivityView[];
  refreshSeconds: number;
}

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1b1f24;background:#fff}
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.4em 0 .4em}
.meta{color:#57606a;margin:0 0 1em}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.3em .5em;border-bottom:1px solid #d0d7de;vertical-align:top;overflow-wrap:anywhere}
td{max-width:26em}
th{background:#f6f8fa;position:sticky;top:0}
td.num{white-space:nowrap}
tr.bad td{background:#ffebe9}tr.warn td{background:#fff8c5}tr.info td{color:#57606a}
.state{font-weight:600}.small{color:#57606a;font-size:.9em}
.summary span{margin-right:1.2em}
svg{max-width:100%;height:auto;display:block}
svg text{font:11px system-ui,sans-serif;fill:#1b1f24}
.ax{stroke:#8c959f}.now{stroke:#0969da;stroke-width:2}
.life{fill:#d0d7de}.life.ok{fill:#aceebb}.life.warn{fill:#f5e0a0}.life.bad{fill:#ffcecb}.life.info{fill:#e1e4e8}
.renew{stroke:#0969da;stroke-width:2}.bar{fill:#8c959f}
`;

/** The hash that lets the one inline stylesheet through the Content-Security-Policy. */
const STYLE_HASH = createHash('sha256').update(STYLE).digest('base64');

/**
 * The Content-Security-Policy the page is served with: nothing may load or run but its own
 * inline stylesheet; no script at all, no frames, no forms, no base URL.
 */
export const STATUS_PAGE_CSP = [
  "default-src 'none'",
  `style-src 'sha256-${STYLE_HASH}'`,
  "img-src 'none'",
  "script-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** Rows of the Gantt part of the timeline: the certificates expiring soonest. */
const TIMELINE_ROWS = 25;

/** The certificates in page order: soonest expiry first; those without a certificate on top. */
export function sortByTimeLeft(certs: readonly CertificateView[]): CertificateView[] {
  return [...certs].sort(
    (a, b) =>
      (a.notAfter ?? Number.NEGATIVE_INFINITY) - (b.notAfter ?? Number.NEGATIVE_INFINITY) ||
      a.namespace.localeCompare(b.namespace) ||
      a.secret.localeCompare(b.secret),
  );
}

export function renderStatusPage(view: StatusView): string {
  const certs = sortByTimeLeft(view.certificates);
  const now = view.now;
  const out: string[] = [];
  const count = (pred: (c: CertificateView) => boolean) => certs.filter(pred).length;
  out.push(
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
    `<meta http-equiv="refresh" content="${Math.max(5, Math.round(view.refreshSeconds))}">`,
    '<meta name="viewport" content="width=device-width,initial-scale=1">',
    '<meta name="referrer" content="no-referrer">',
    '<title>cert-rotator status</title>',
    `<style>${STYLE}</style></head><body>`,
    '<h1>cert-rotator</h1>',
    `<p class="meta">As of ${escapeHtml(formatTime(now))}`,
    view.leading === undefined ? '' : view.leading ? ' · this replica leads' : ' · standby replica',
    ` · refreshes every ${Math.round(view.refreshSeconds)} s · read-only</p>`,
    '<p class="summary">',
    `<span id="count-all">${certs.length} certificates</span>`,
    `<span id="count-managed">${count((c) => c.managed)} managed</span>`,
    `<span id="count-bad">${count((c) => c.severity === 'bad')} need attention</span>`,
    `<span id="count-week">${count((c) => c.notAfter !== undefined && c.notAfter - now < 7 * 86_400_000)} expire within 7 days</span>`,
    '</p>',
    '<h2>Expiry timeline</h2>',
    renderTimeline(certs, now),
    '<h2>Certificates, soonest expiry first</h2>',
    '<table id="certificates"><thead><tr>',
    '<th>Namespace</th><th>Secret</th><th>Subject</th><th>Issuer</th><th>Time left</th>',
    '<th>Expires</th><th>Planned renewal</th><th>Why then</th><th>State</th><th>Last event</th>',
    '</tr></thead><tbody>',
  );
  for (const c of certs) out.push(renderRow(c, now));
  out.push('</tbody></table>', '<h2>Recent renewals, failures and rollouts</h2>');
  if (view.recent.length === 0)
    out.push('<p class="small" id="recent">Nothing yet since this replica started.</p>');
  else {
    out.push(
      '<table id="recent"><thead><tr><th>When</th><th>Type</th><th>Reason</th><th>Object</th><th>Message</th></tr></thead><tbody>',
    );
    for (const a of view.recent) {
      out.push(
        `<tr class="${a.type === 'Warning' ? 'warn' : 'ok'}"><td class="num">${escapeHtml(formatTime(a.at))}<div class="small">${escapeHtml(formatAge(now - a.at))}</div></td>`,
        `<td>${escapeHtml(a.type)}</td><td>${escapeHtml(a.reason)}</td><td>${escapeHtml(a.object)}</td><td>${escapeHtml(a.message)}</td></tr>`,
      );
    }
    out.push('</tbody></table>');
  }
  out.push('</body></html>\n');
  return out.join('');
}

function renderRow(c: CertificateView, now: number): string {
  const subject = [c.commonName, ...c.dnsNames.filter((d) => d !== c.commonName)].filter(
    (s): s is string => s !== undefined && s !== '',
  );
  const left = c.notAfter === undefined ? '—' : formatTimeLeft(c.notAfter - now);
  const event = c.lastEvent
    ? `${escapeHtml(c.lastEvent.reason)}<div class="small">${escapeHtml(formatAge(now - c.lastEvent.at))}: ${escapeHtml(c.lastEvent.message)}</div>`
    : '';
  return [
    `<tr class="${c.severity}">`,
    `<td>${escapeHtml(c.namespace)}</td>`,
    `<td>${escapeHtml(c.secret)}${c.managed ? '' : '<div class="small">monitored</div>'}</td>`,
    `<td>${subject.length ? escapeHtml(subject.slice(0, 3).join(', ')) + (subject.length > 3 ? ` <span class="small">+${subject.length - 3}</span>` : '') : ''}</td>`,
    `<td>${escapeHtml(c.issuer)}</td>`,
    `<td class="num">${escapeHtml(left)}</td>`,
    `<td class="num">${c.notAfter === undefined ? '' : escapeHtml(formatTime(c.notAfter))}</td>`,
    `<td class="num">${c.plannedRenewal === undefined ? '' : escapeHtml(formatTime(c.plannedRenewal))}</td>`,
    `<td>${escapeHtml(c.why)}</td>`,
    `<td class="state">${escapeHtml(c.state)}</td>`,
    `<td>${event}</td>`,
    '</tr>',
  ].join('');
}

/**
 * Two parts, both sized independently of the number of certificates: a bar per day of the next
 * 90 days counting the certificates that expire on it (expired ones in the first bar), and the
 * lifetimes of the soonest-expiring certificates, with "now" and each planned renewal marked.
 */
function renderTimeline(certs: readonly CertificateView[], now: number): string {
  const DAY = 86_400_000;
  const days = 90;
  const width = 900;
  const left = 190;
  const plot = width - left - 10;
  const out: string[] = [];

  // Histogram of expiries per day.
  const counts = new Array<number>(days).fill(0);
  for (const c of certs) {
    if (c.notAfter === undefined) continue;
    const d = Math.floor((c.notAfter - now) / DAY);
    if (d < days) counts[Math.max(0, d)] = (counts[Math.max(0, d)] ?? 0) + 1;
  }
  const max = Math.max(1, ...counts);
  const h = 60;
  out.push(
    `<svg id="expiry-histogram" viewBox="0 0 ${width} ${h + 24}" width="${width}" height="${h + 24}" role="img" aria-label="Certificates expiring per day over the next ${days} days">`,
    `<text x="0" y="14">expiring per day</text><text x="0" y="30" class="small">next ${days} days</text>`,
  );
  const bw = plot / days;
  counts.forEach((n, d) => {
    if (n === 0) return;
    const bh = Math.max(2, (n / max) * h);
    out.push(
      `<rect class="bar" x="${(left + d * bw).toFixed(1)}" y="${(h - bh).toFixed(1)}" width="${Math.max(1, bw - 1).toFixed(1)}" height="${bh.toFixed(1)}"><title>${n} expiring ${d === 0 ? 'today or already expired' : `in ${d}–${d + 1} days`}</title></rect>`,
    );
  });
  out.push(`<line class="ax" x1="${left}" y1="${h}" x2="${left + plot}" y2="${h}"/>`);
  for (const d of [0, 30, 60, 90]) {
    out.push(
      `<text x="${(left + (d / days) * plot).toFixed(1)}" y="${h + 16}"${d === days ? ' text-anchor="end"' : ''}>${d === 0 ? 'now' : `+${d}d`}</text>`,
    );
  }
  out.push('</svg>');

  // Lifetimes of the soonest-expiring certificates.
  const rows = certs
    .filter((c) => c.notAfter !== undefined && c.notBefore !== undefined)
    .slice(0, TIMELINE_ROWS);
  if (rows.length === 0) return out.join('');
  const start = Math.min(now, ...rows.map((c) => c.notBefore as number));
  const end = Math.max(now + DAY, ...rows.map((c) => c.notAfter as number));
  const x = (t: number) => (left + ((t - start) / (end - start)) * plot).toFixed(1);
  const rh = 16;
  const gh = rows.length * rh + 24;
  out.push(
    `<svg id="expiry-timeline" viewBox="0 0 ${width} ${gh}" width="${width}" height="${gh}" role="img" aria-label="Lifetimes of the ${rows.length} certificates expiring soonest">`,
  );
  rows.forEach((c, i) => {
    const y = i * rh;
    const label = `${c.namespace}/${c.secret}`;
    out.push(
      `<text x="0" y="${y + 12}">${escapeHtml(label.length > 30 ? `${label.slice(0, 29)}…` : label)}</text>`,
      `<rect class="life ${c.severity}" x="${x(c.notBefore as number)}" y="${y + 2}" width="${Math.max(1, Number(x(c.notAfter as number)) - Number(x(c.notBefore as number))).toFixed(1)}" height="${rh - 4}"><title>${escapeHtml(`${label}: valid ${formatTime(c.notBefore as number)} – ${formatTime(c.notAfter as number)}`)}</title></rect>`,
    );
    if (c.plannedRenewal !== undefined) {
      const rx = x(Math.max(start, Math.min(end, c.plannedRenewal)));
      out.push(
        `<line class="renew" x1="${rx}" y1="${y + 1}" x2="${rx}" y2="${y + rh - 1}"><title>${escapeHtml(`planned renewal ${formatTime(c.plannedRenewal)}`)}</title></line>`,
      );
    }
  });
  const nx = x(now);
  const ly = rows.length * rh + 14;
  out.push(
    `<line class="now" x1="${nx}" y1="0" x2="${nx}" y2="${rows.length * rh}"/>`,
    `<text x="${nx}" y="${ly}" text-anchor="middle">now</text>`,
    // The ends of the axis, unless "now" sits where their label would be.
    Number(nx) - left > 150 ? `<text x="${left}" y="${ly}">${escapeHtml(formatTime(start))}</text>` : '',
    left + plot - Number(nx) > 150
      ? `<text x="${left + plot}" y="${ly}" text-anchor="end">${escapeHtml(formatTime(end))}</text>`
      : '',
    '</svg>',
  );
  return out.join('');
}
