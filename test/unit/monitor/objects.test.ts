import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { registerX509Metrics } from '../../../src/monitor/metrics.ts';
import {
  summarizeApiService,
  summarizeConfigMap,
  summarizeCrd,
  summarizeSecret,
  summarizeWebhookConfiguration,
} from '../../../src/monitor/objects.ts';
import { keyMatcher } from '../../../src/monitor/summary.ts';
import { X509Source } from '../../../src/names.ts';
import { Registry } from '../../../src/observability/prom.ts';

const fixture = (name: string) => readFileSync(new URL(`fixtures/${name}`, import.meta.url));
const chain = fixture('chain.pem');
const b64 = (b: Buffer | string) => Buffer.from(b).toString('base64');

describe('keyMatcher', () => {
  it('matches whole keys with * and ?, dots included', () => {
    const m = keyMatcher(['*.crt', 'ca.pe?']);
    expect(['a.crt', 'tls.ca.crt', 'ca.pem'].map(m)).toEqual([true, true, true]);
    expect(['a.crt.bak', 'ca.pemx', 'crt'].map(m)).toEqual([false, false, false]);
  });
});

describe('object summaries', () => {
  it('a Secret: matching keys only, every certificate of a bundle, problems per key', () => {
    const s = summarizeSecret(
      X509Source.secret,
      {
        metadata: { namespace: 'ns', name: 's' },
        data: { 'ca.crt': b64(chain), 'bad.crt': b64('junk'), other: b64(chain) },
      },
      keyMatcher(['*.crt']),
      'pem',
    );
    expect(s?.certs.map((c) => [c.key, c.index, c.subjectCN])).toEqual([
      ['ca.crt', 0, 'fixture-leaf'],
      ['ca.crt', 1, 'fixture-intermediate'],
      ['ca.crt', 2, 'fixture-root'],
    ]);
    expect(s?.problems).toEqual([
      { key: 'bad.crt', reason: 'no-certificate', message: 'neither PEM nor a DER certificate' },
    ]);
    expect(
      summarizeSecret(
        X509Source.secret,
        { metadata: { name: 'x' }, data: { a: 'b' } },
        keyMatcher(['*.crt']),
        'pem',
      ),
    ).toBeUndefined();
  });

  it('a keystore Secret without its password key reports that, not a wrong password', () => {
    const s = summarizeSecret(
      X509Source.keystore,
      { metadata: { namespace: 'ns', name: 'k' }, data: { 'ks.p12': b64(fixture('modern.p12')) } },
      keyMatcher(['*.p12']),
      'keystore',
      () => ({ problem: 'the password key "password" is missing from the Secret' }),
    );
    expect(s?.problems.map((p) => p.reason)).toEqual(['password-unavailable']);
  });

  it('a ConfigMap: data and binaryData', () => {
    const s = summarizeConfigMap(
      {
        metadata: { namespace: 'ns', name: 'c' },
        data: { 'ca.crt': chain.toString() },
        binaryData: { 'leaf.cer': b64(fixture('leaf.der')) },
      },
      keyMatcher(['*.crt', '*.cer']),
    );
    expect(s?.certs.map((c) => c.key)).toEqual(['ca.crt', 'ca.crt', 'ca.crt', 'leaf.cer']);
  });

  it('webhook configurations, APIServices and CRD conversion webhooks', () => {
    const vw = summarizeWebhookConfiguration(X509Source.validatingWebhook, {
      metadata: { name: 'v' },
      webhooks: [
        { name: 'a.example.com', clientConfig: { caBundle: b64(chain) } },
        { name: 'b', clientConfig: { url: 'https://x' } },
      ],
    });
    expect(vw?.certs.map((c) => `${c.key}#${c.index}`)).toEqual([
      'a.example.com#0',
      'a.example.com#1',
      'a.example.com#2',
    ]);
    expect(
      summarizeApiService({ metadata: { name: 'v1.x' }, spec: { caBundle: b64(chain) } })?.certs,
    ).toHaveLength(3);
    expect(summarizeApiService({ metadata: { name: 'v1.local' }, spec: {} })).toBeUndefined();
    expect(
      summarizeCrd({
        metadata: { name: 'w.example.com' },
        spec: {
          conversion: { strategy: 'Webhook', webhook: { clientConfig: { caBundle: b64('garbage') } } },
        },
      })?.problems.map((p) => p.reason),
    ).toEqual(['no-certificate']);
  });
});

describe('x509 metrics', () => {
  it('renders one series per certificate and one per problem, leaving out empty labels', async () => {
    const registry = new Registry();
    const vw = summarizeWebhookConfiguration(X509Source.validatingWebhook, {
      metadata: { name: 'v' },
      webhooks: [
        { name: 'a"b', clientConfig: { caBundle: b64(fixture('leaf.crt')) } },
        { name: 'c', clientConfig: { caBundle: b64('x') } },
      ],
    });
    registerX509Metrics(registry, () => (vw ? [vw] : []), 'node-1');
    const text = await registry.metrics();
    const notAfter = Date.parse(JSON.parse(fixture('expected.json').toString()).leaf) / 1000;
    expect(text).toContain(
      `cert_rotator_x509_not_after_timestamp_seconds{source="validatingwebhook",name="v",key="a\\"b",index="0",subject_cn="fixture-leaf",issuer_cn="fixture-intermediate",node="node-1"} ${notAfter}`,
    );
    expect(text).toContain(
      'cert_rotator_x509_read_errors{source="validatingwebhook",name="v",key="c",reason="no-certificate",node="node-1"} 1',
    );
  });
});
