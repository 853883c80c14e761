/**
 * `cert-rotator sidecar` with the local sources (--self-signed, --ca-cert/--ca-key): no cluster.
 * Real child processes: the sidecar, and an HTTPS application that reloads on SIGHUP / POST.
 */
import { chmod, mkdir, mkdtemp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCertificateSummary } from '../../src/pki/der.ts';
import { certificatesFromPem } from '../../src/pki/pem.ts';
import { waitFor } from '../testenv/net.ts';
import { makeTestCA } from '../testenv/tls-fixtures.ts';
import {
  metricLine,
  metricsUrlOf,
  readDir,
  scrape,
  served,
  startReader,
  startSidecar,
  startTlsApp,
  stopAllChildren,
  uniqueProcessName,
} from './fixtures/sidecar-process.ts';

let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'cert-rotator-sidecar-local-'));
});
afterAll(async () => {
  await stopAllChildren();
});

async function newDir(name: string): Promise<string> {
  const d = join(work, name);
  await mkdir(d, { recursive: true });
  return d;
}

describe('sidecar --self-signed --duration 1m', () => {
  it('rotates at least twice; files always consistent; the app serves each new serial from the same PID (SIGHUP) and via POST', async () => {
    const dir = await newDir('rotating');
    // The app needs a certificate to start: the sidecar in --once mode first (an init container).
    const init = startSidecar([
      '--self-signed',
      '--dir',
      dir,
      '--dns-names',
      'localhost',
      '--duration',
      '1m',
      '--once',
    ]);
    expect(await init.exited).toBe(0);
    const first = await readDir(dir);
    expect(first?.matched).toBe(true);

    const hupName = uniqueProcessName('app-hup');
    const hupApp = await startTlsApp(dir, hupName);
    const postApp = await startTlsApp(dir, 'tls-app-post');
    expect((await served(hupApp.tlsPort)).serial).toBe(first?.serial);

    const reader = startReader(dir);
    const sidecar = startSidecar([
      '--self-signed',
      '--dir',
      dir,
      '--dns-names',
      'localhost',
      '--duration',
      '1m',
      '--signal',
      'HUP',
      '--process',
      hupName,
      '--http-post',
      `http://127.0.0.1:${postApp.adminPort}/reload`,
      '--metrics-address',
      '127.0.0.1:0',
    ]);
    const base = await metricsUrlOf(sidecar);
    // It keeps the valid certificate the init container wrote rather than issuing at once.
    await sidecar.waitForLog(
      'adoption of the files on disk',
      (l) => l.msg === 'kept the valid certificate already on disk',
    );
    expect((await scrape(base, '/readyz')).status).toBe(200);

    const serialsServed: string[] = [first!.serial];
    for (let rotation = 1; rotation <= 2; rotation++) {
      const swapped = await sidecar.waitForLog(
        `rotation ${rotation}`,
        (l) => l.msg === 'files swapped' && !serialsServed.includes(String(l.serial).replace(/^0+/, '')),
        70_000,
      );
      const serial = String(swapped.serial).replace(/^0+/, '');
      for (const app of [hupApp, postApp]) {
        const seen = await waitFor(
          `${app === hupApp ? 'SIGHUP' : 'POST'} app to serve ${serial}`,
          async () => {
            const s = await served(app.tlsPort);
            return s.serial === serial ? s : undefined;
          },
        );
        expect(seen.pid).toBe(app.pid); // same process: reloaded, not restarted
      }
      serialsServed.push(serial);
    }
    const seen = await reader.stop();
    expect(seen.mismatched).toBe(0);
    expect(seen.reads).toBeGreaterThan(100);
    expect(seen.serials.length).toBeGreaterThanOrEqual(3);

    const metrics = (await scrape(base)).text;
    expect(
      metricLine(metrics, 'cert_rotator_sidecar_reloads_total', { method: 'signal', result: 'success' }),
    ).toBeGreaterThanOrEqual(2);
    expect(
      metricLine(metrics, 'cert_rotator_sidecar_reloads_total', { method: 'http-post', result: 'success' }),
    ).toBeGreaterThanOrEqual(2);
    const onDisk = await readDir(dir);
    expect(metricLine(metrics, 'cert_rotator_sidecar_certificate_not_after_timestamp_seconds')).toBe(
      Math.floor(onDisk!.notAfter / 1000),
    );
    // Old generations do not pile up.
    expect((await readdir(dir)).filter((e) => /^\.\.\d/.test(e)).length).toBeLessThanOrEqual(2);
    expect(await sidecar.stop()).toBe(0);
  }, 240_000);
});

describe('sidecar --ca-cert/--ca-key', () => {
  it('issues from the CA with ca.crt, the bundle file and the key mode; exec reloader runs without a shell', async () => {
    // Files for another name already there: the sidecar replaces files the application may have
    // read, so it runs the exec reloader (the first files of an empty directory tell nobody).
    const dir = await initDir(await newDir('ca'));
    const ca = await makeTestCA('sidecar test CA');
    await writeFile(join(work, 'ca.crt'), ca.certPem);
    await writeFile(join(work, 'ca.key'), ca.keyPem);
    const marker = join(work, 'exec-ran');
    const sidecar = startSidecar([
      '--ca-cert',
      join(work, 'ca.crt'),
      '--ca-key',
      join(work, 'ca.key'),
      '--dir',
      dir,
      '--dns-names',
      'app.{namespace}.svc',
      '--namespace',
      'team-a',
      '--key-mode',
      '0640',
      '--bundle-file',
      'bundle.pem',
      '--metrics-address',
      'off',
      '--exec',
      process.execPath,
      '-e',
      `require('fs').writeFileSync(${JSON.stringify(marker)}, 'ran $HOME;')`,
    ]);
    await sidecar.waitForLog(
      'the exec reload',
      (l) => l.msg === 'application told to reload' && l.method === 'exec',
    );
    // No shell: "$HOME" and ";" reach the program literally.
    expect(await readFile(marker, 'utf8')).toBe('ran $HOME;');
    const leaf = readCertificateSummary(
      certificatesFromPem(await readFile(join(dir, 'tls.crt'), 'utf8'))[0]!,
    );
    expect(leaf.dnsNames).toEqual(['app.team-a.svc']);
    expect(leaf.issuerCommonName).toBe('sidecar test CA');
    expect(await readFile(join(dir, 'ca.crt'), 'utf8')).toBe(ca.certPem);
    expect((await stat(join(dir, 'tls.key'))).mode & 0o777).toBe(0o640);
    expect((await stat(join(dir, 'bundle.pem'))).mode & 0o777).toBe(0o640);
    expect((await readFile(join(dir, 'bundle.pem'), 'utf8')).match(/-----BEGIN [A-Z ]+-----/g)).toEqual([
      '-----BEGIN PRIVATE KEY-----',
      '-----BEGIN CERTIFICATE-----',
      '-----BEGIN CERTIFICATE-----',
    ]);
    expect(sidecar.output()).not.toContain('PRIVATE KEY');
    expect(await sidecar.stop()).toBe(0);
  });
});

describe('sidecar --once', () => {
  it('exits 0 with the files written', async () => {
    const dir = await newDir('once');
    const s = startSidecar(['--self-signed', '--dir', dir, '--common-name', 'once', '--once']);
    expect(await s.exited).toBe(0);
    expect((await readDir(dir))?.matched).toBe(true);
  });

  it('exits 1 with a message within --timeout when the source cannot deliver', async () => {
    const dir = await newDir('once-fail');
    const t0 = Date.now();
    const s = startSidecar([
      '--ca-cert',
      join(work, 'missing-ca.crt'),
      '--ca-key',
      join(work, 'missing-ca.key'),
      '--dir',
      dir,
      '--dns-names',
      'x.test',
      '--once',
      '--timeout',
      '3s',
    ]);
    expect(await s.exited).toBe(1);
    expect(Date.now() - t0).toBeLessThan(30_000);
    expect(s.output()).toMatch(/no certificate within 3s: cannot read the CA files: ENOENT/);
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('sidecar reload failures are logged, counted and shown in readiness', () => {
  it('no visible process: the error says shareProcessNamespace; a non-2xx POST fails', async () => {
    const dir = await newDir('reload-fail');
    const app = await startTlsApp(await initDir(dir), 'tls-app-fail');
    const s = startSidecar([
      '--self-signed',
      '--dir',
      dir,
      '--dns-names',
      'localhost',
      '--process',
      'no-such-proc',
      '--http-post',
      `http://127.0.0.1:${app.adminPort}/fail`,
      '--metrics-address',
      '127.0.0.1:0',
    ]);
    const base = await metricsUrlOf(s);
    // Force a swap: the init certificate is for another name, so the sidecar issues a new one.
    const failed = await s.waitForLog(
      'a failed signal reload',
      (l) => l.msg === 'reload failed' && l.method === 'signal',
    );
    expect(JSON.stringify(failed.err)).toContain('shareProcessNamespace: true');
    const post = await s.waitForLog(
      'a failed POST',
      (l) => l.msg === 'reload failed' && l.method === 'http-post',
    );
    expect(JSON.stringify(post.err)).toContain('answered 503: admin endpoint says no');
    const ready = await waitFor(
      'readiness to show the failure',
      async () => {
        const r = await scrape(base, '/readyz');
        return r.status === 503 && r.text.includes('no-such-proc') ? r : undefined;
      },
      { timeoutMs: 60_000 },
    );
    expect(ready.text).toContain('POST http://127.0.0.1');
    const metrics = (await scrape(base)).text;
    expect(
      metricLine(metrics, 'cert_rotator_sidecar_reloads_total', { method: 'signal', result: 'failure' }),
    ).toBeGreaterThanOrEqual(5);
    await s.stop();
  }, 90_000);

  it('EPERM names the target UID: a sidecar running as another user cannot signal the app', async () => {
    if (process.getuid?.() !== 0) return; // needs root to start the sidecar as uid 65534
    await chmod(work, 0o755);
    const dir = await newDir('eperm');
    await chmod(dir, 0o777);
    const epermName = uniqueProcessName('app-eperm');
    const app = await startTlsApp(await initDir(dir), epermName);
    const s = startSidecar(
      [
        '--self-signed',
        '--dir',
        dir,
        '--dns-names',
        'localhost',
        '--process',
        epermName,
        '--metrics-address',
        'off',
      ],
      { uid: 65534, gid: 65534 },
    );
    const failed = await s.waitForLog(
      'a failed signal',
      (l) => l.msg === 'reload failed' && l.method === 'signal',
    );
    expect(JSON.stringify(failed.err)).toContain(
      `not permitted to send SIGHUP to ${epermName} (pid ${app.pid}, uid 0)`,
    );
    expect(JSON.stringify(failed.err)).toContain('runs as uid 65534');
    await s.stop();
  }, 60_000);
});

/** Writes a certificate for another name into dir (so the app can start and the sidecar must replace it). */
async function initDir(dir: string): Promise<string> {
  const init = startSidecar(['--self-signed', '--dir', dir, '--common-name', 'init', '--once']);
  expect(await init.exited).toBe(0);
  await chmod(dir, 0o777);
  for (const e of await readdir(dir)) if (/^\.\.\d/.test(e)) await chmod(join(dir, e), 0o777);
  return dir;
}
