/**
 * When the sidecar tells the application to reload: only when it replaces files the application
 * may have read. The first files of a pod are written while the application starts; a signal then
 * would end a process that has not installed its handler yet (SIGHUP's default action).
 */
import { mkdtemp, readFile, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { generateKey, issueCertificate } from '../../../src/pki/index.ts';
import { CertificateFiles } from '../../../src/sidecar/cert-files.ts';
import { SidecarMetrics } from '../../../src/sidecar/health.ts';
import { createSidecarLogger } from '../../../src/sidecar/log.ts';
import { NO_NAMES } from '../../../src/sidecar/material.ts';
import type { Reloader } from '../../../src/sidecar/reloaders.ts';
import { SidecarRunner } from '../../../src/sidecar/runner.ts';

const MIN = 60_000;
type Pair = { chainPem: string; keyPem: string };
let pairs: Pair[] = [];

async function pair(): Promise<Pair> {
  const key = await generateKey('ecdsa-p256');
  const now = Date.now();
  const c = await issueCertificate({
    subjectKeyPem: key.privateKeyPem,
    identity: { dnsNames: ['app.test'], ipAddresses: [], uris: [] },
    notBefore: now - MIN,
    notAfter: now + 10 * MIN,
    issuer: 'self',
  });
  return { chainPem: c.chainPem, keyPem: key.privateKeyPem };
}

class CountingReloader implements Reloader {
  readonly method = 'signal' as const;
  readonly description = 'counting reloader';
  calls = 0;
  async reload(): Promise<void> {
    this.calls++;
  }
}

let dir = '';
const logs: Array<Record<string, unknown>> = [];

function runner(reloader: Reloader): { r: SidecarRunner; metrics: SidecarMetrics } {
  const metrics = new SidecarMetrics();
  const r = new SidecarRunner({
    files: new CertificateFiles(dir, { keyMode: 0o600 }),
    required: NO_NAMES,
    reloaders: [reloader],
    metrics,
    log: createSidecarLogger('debug', (l) => logs.push(JSON.parse(l) as Record<string, unknown>)),
  });
  return { r, metrics };
}

async function idle(r: SidecarRunner): Promise<void> {
  for (let i = 0; i < 1000 && !r.reloadsIdle(); i++) await new Promise((res) => setImmediate(res));
  expect(r.reloadsIdle()).toBe(true);
}

beforeAll(async () => {
  pairs = [await pair(), await pair(), await pair()];
});
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'runner-'));
  logs.length = 0;
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('SidecarRunner: who is told about a swap', () => {
  it('writes the first files of an empty directory without telling the application', async () => {
    const counting = new CountingReloader();
    const { r, metrics } = runner(counting);
    await r.adoptExisting();
    expect(await r.offer(pairs[0]!, 'test')).toBe(true);
    await idle(r);
    expect(await readFile(join(dir, 'tls.crt'), 'utf8')).toBe(r.current()?.chainPem);
    expect(counting.calls).toBe(0);
    expect(metrics.render()).not.toContain('cert_rotator_sidecar_reloads_total{');
    expect(
      logs.some((l) => l.msg === 'first files written; nothing to reload yet, the application is not told'),
    ).toBe(true);

    // The second swap replaces files the application has read: it is told, once.
    expect(await r.offer(pairs[1]!, 'test')).toBe(true);
    await idle(r);
    expect(counting.calls).toBe(1);
    expect(metrics.render()).toContain(
      'cert_rotator_sidecar_reloads_total{method="signal",result="success"} 1',
    );
  });

  it('a restarted sidecar that finds files on disk tells the application when it replaces them', async () => {
    const first = runner(new CountingReloader());
    await first.r.offer(pairs[0]!, 'test');
    // The container restarts; the emptyDir (and the application reading it) stays.
    const counting = new CountingReloader();
    const { r } = runner(counting);
    await r.adoptExisting();
    expect(r.current()?.chainPem).toBe(first.r.current()?.chainPem);
    await r.offer(pairs[2]!, 'test');
    await idle(r);
    expect(counting.calls).toBe(1);
  });

  it('files on disk that the sidecar cannot read still count as files the application may use', async () => {
    const first = runner(new CountingReloader());
    await first.r.offer(pairs[0]!, 'test');
    // As when the key belongs to another user: the sidecar cannot read it, the application can.
    await rm(join(dir, await readlink(join(dir, '..data')), 'tls.key'));
    const counting = new CountingReloader();
    const { r } = runner(counting);
    await r.adoptExisting();
    expect(r.current()).toBeUndefined();
    await r.offer(pairs[1]!, 'test');
    await idle(r);
    expect(counting.calls).toBe(1);
  });

  it('the same material offered again is no swap and no reload', async () => {
    const counting = new CountingReloader();
    const { r } = runner(counting);
    await r.offer(pairs[0]!, 'test');
    await r.offer(pairs[1]!, 'test');
    await r.offer(pairs[1]!, 'test');
    await idle(r);
    expect(counting.calls).toBe(1);
  });
});

describe('SidecarRunner: ca.crt from a trust bundle (--ca-bundle-configmap)', () => {
  const bundleA = '-----BEGIN CERTIFICATE-----\nQUFB\n-----END CERTIFICATE-----\n';
  const bundleAB = `${bundleA}-----BEGIN CERTIFICATE-----\nQkJC\n-----END CERTIFICATE-----\n`;

  it('a bundle read before the first certificate is in the first files, and nobody is told', async () => {
    const counting = new CountingReloader();
    const { r } = runner(counting);
    await r.adoptExisting();
    await r.setTrust(bundleA);
    await r.offer(pairs[0]!, 'test');
    await idle(r);
    expect(await readFile(join(dir, 'ca.crt'), 'utf8')).toBe(bundleA);
    expect(counting.calls).toBe(0);
  });

  it('a changed bundle swaps ca.crt with the same certificate and tells the application once; the same bundle again does nothing', async () => {
    const counting = new CountingReloader();
    const { r } = runner(counting);
    await r.setTrust(bundleA);
    await r.offer(pairs[0]!, 'test');
    const before = await readlink(join(dir, '..data'));
    await r.setTrust(bundleAB);
    await idle(r);
    expect(await readFile(join(dir, 'ca.crt'), 'utf8')).toBe(bundleAB);
    expect(await readFile(join(dir, 'tls.crt'), 'utf8')).toBe(r.current()?.chainPem);
    expect(await readlink(join(dir, '..data'))).not.toBe(before);
    expect(counting.calls).toBe(1);
    await r.setTrust(bundleAB);
    await idle(r);
    expect(counting.calls).toBe(1);
    // A renewal keeps the bundle as ca.crt, not the source's CA.
    await r.offer({ ...pairs[1]!, caPem: pairs[1]!.chainPem }, 'test');
    await idle(r);
    expect(await readFile(join(dir, 'ca.crt'), 'utf8')).toBe(bundleAB);
    expect(counting.calls).toBe(2);
  });
});
