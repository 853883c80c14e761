import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { recordFromSecret } from '../../../src/controller/record.ts';
import { withRollover } from '../../../src/controller/status-view.ts';
import { Metrics } from '../../../src/observability/metrics.ts';
import { startHttpServer } from '../../../src/observability/server.ts';
import { escapeHtml } from '../../../src/ui/escape.ts';
import {
  type CertificateView,
  renderStatusPage,
  STATUS_PAGE_CSP,
  type StatusView,
} from '../../../src/ui/status-page.ts';

const NOW = Date.UTC(2030, 0, 1);
const DAY = 86_400_000;

function cert(
  secret: string,
  daysLeft: number | undefined,
  extra: Partial<CertificateView> = {},
): CertificateView {
  return {
    namespace: 'ns',
    secret,
    managed: true,
    issuer: 'ca',
    dnsNames: [`${secret}.example.com`],
    ...(daysLeft === undefined ? {} : { notBefore: NOW - 30 * DAY, notAfter: NOW + daysLeft * DAY }),
    state: 'Ready',
    severity: 'ok',
    why: 'renew-before 33.3% of the lifetime',
    ...extra,
  };
}

function view(certificates: CertificateView[]): StatusView {
  return { now: NOW, certificates, recent: [], refreshSeconds: 30 };
}

describe('escapeHtml', () => {
  it('turns markup and control characters into text', () => {
    expect(escapeHtml(`<a href="x" title='y'>&</a>`)).toBe(
      '&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;',
    );
    expect(escapeHtml('a\u0000b\u001bc\td')).toBe('a\ufffdb\ufffdc\td');
  });
});

describe('renderStatusPage', () => {
  it('orders rows by time left, certificates without one first', () => {
    const html = renderStatusPage(
      view([cert('later', 50), cert('none', undefined), cert('soon', 2), cert('gone', -1)]),
    );
    const order = [...html.matchAll(/<tr class="\w+"><td>ns<\/td><td>([a-z]+)/g)].map((m) => m[1]);
    expect(order).toEqual(['none', 'gone', 'soon', 'later']);
  });

  it('escapes every field, in the table and in the SVG', () => {
    const evil = '<script>alert(1)</script>';
    const html = renderStatusPage(
      view([cert(evil, 3, { commonName: evil, issuer: evil, why: evil, state: evil, namespace: evil })]),
    );
    expect(html).not.toContain('<script');
    expect(html.split('&lt;script&gt;').length - 1).toBeGreaterThanOrEqual(7);
  });

  it('carries the hash of its only stylesheet in the policy, and no script', () => {
    const html = renderStatusPage(view([cert('a', 10)]));
    const style = /<style>([\s\S]*?)<\/style>/.exec(html)?.[1] ?? '';
    const hash = createHash('sha256').update(style).digest('base64');
    expect(STATUS_PAGE_CSP).toContain(`style-src 'sha256-${hash}'`);
    expect(STATUS_PAGE_CSP).toContain("script-src 'none'");
    expect(html).not.toMatch(/<script|style="|\son\w+=|https?:\/\//);
  });

  it('keeps the timeline bounded however many certificates there are', () => {
    const many = Array.from({ length: 2_000 }, (_, i) => cert(`c${i}`, (i % 120) - 5));
    const html = renderStatusPage(view(many));
    const timeline = /<svg id="expiry-timeline"[\s\S]*?<\/svg>/.exec(html)?.[0] ?? '';
    expect(timeline.match(/<rect /g)?.length).toBe(25);
    expect(/<svg id="expiry-histogram"[\s\S]*?<\/svg>/.exec(html)?.[0].match(/<rect /g)?.length).toBe(90);
  });
});

describe('the server', () => {
  it('serves the page at / with its policy, and not at all without a source (ui.enabled: false)', async () => {
    const metrics = new Metrics({ processMetrics: false });
    const on = await startHttpServer('127.0.0.1:0', metrics, { ready: () => true }, () =>
      view([cert('a', 1)]),
    );
    const off = await startHttpServer('127.0.0.1:0', metrics, { ready: () => true });
    try {
      const res = await fetch(`http://127.0.0.1:${on.port}/`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-security-policy')).toBe(STATUS_PAGE_CSP);
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('content-encoding')).toBe('gzip'); // fetch asks for gzip and inflates it
      expect(await res.text()).toContain('a.example.com');
      expect((await fetch(`http://127.0.0.1:${off.port}/`)).status).toBe(404);
      expect((await fetch(`http://127.0.0.1:${off.port}/metrics`)).status).toBe(200);
    } finally {
      on.server.close();
      off.server.close();
    }
  });
});

describe('a CA Secret in a rollover', () => {
  const record = (annotations: Record<string, string>) =>
    recordFromSecret({
      metadata: { namespace: 'cert-rotator', name: 'internal-ca', uid: 'u', annotations },
      type: 'kubernetes.io/tls',
      data: {},
    });
  const base = cert('internal-ca', 300, {
    managed: false,
    state: 'Monitored',
    severity: 'info',
    why: 'monitored only',
  });

  it('shows the phase, since when, and what to run, before the row’s own reason', () => {
    const since = new Date(NOW - 90_000).toISOString();
    const v = withRollover(
      base,
      record({
        'status.cert-rotator.io/ca-rollover-phase': 'Propagate',
        'status.cert-rotator.io/ca-rollover-phase-since': since,
      }),
      NOW,
    );
    expect(v.state).toBe('CARollover/Propagate');
    expect(v.why).toMatch(
      /^CA rollover in phase Propagate since .+\(1m\).*cert-rotator ca status ISSUER.*monitored only$/,
    );
    expect(renderStatusPage(view([v]))).toContain('<td class="state">CARollover/Propagate</td>');
  });

  it('marks a paused rollover for a person’s eyes; without a phase the row is unchanged', () => {
    const paused = withRollover(
      base,
      record({
        'status.cert-rotator.io/ca-rollover-phase': 'Reissue',
        'cert-rotator.io/rollover-paused': 'true',
      }),
      NOW,
    );
    expect(paused.state).toBe('CARollover/Reissue (paused)');
    expect(paused.severity).toBe('warn');
    expect(paused.why).toContain('paused by cert-rotator.io/rollover-paused');
    expect(withRollover(base, record({}), NOW)).toBe(base);
  });
});
