/**
 * Headless Chromium (Debian's package) driven over the Chrome DevTools Protocol with Node's own
 * WebSocket: open a page, evaluate expressions in it, collect console and security messages
 * (a CSP refusal is one), take a screenshot. Chromium is kept off every network but loopback:
 * its background services are disabled and any other address goes to a proxy that is not there.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from './net.ts';

interface CdpMessage {
  id?: number;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { message: string };
  sessionId?: string;
}

export interface BrowserPage {
  /** Navigates and resolves once the load event fired. */
  load(url: string): Promise<void>;
  /** Evaluates `expression` in the page; returns its value (JSON-serialisable). */
  evaluate<T>(expression: string): Promise<T>;
  /** A PNG of the whole page. */
  screenshot(): Promise<Buffer>;
  /** Console calls and log entries (CSP refusals, failed loads) seen so far. */
  messages: string[];
}

export interface Browser {
  newPage(width?: number, height?: number): Promise<BrowserPage>;
  close(): Promise<void>;
}

export async function launchChromium(binary: string): Promise<Browser> {
  const profile = await mkdtemp(join(tmpdir(), 'cr-chromium-'));
  const proc: ChildProcess = spawn(
    binary,
    [
      '--headless=new',
      '--no-sandbox', // the tests run as root, where Chromium's sandbox refuses to start
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--no-first-run',
      '--no-default-browser-check',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-domain-reliability',
      '--disable-client-side-phishing-detection',
      '--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication',
      '--metrics-recording-only',
      '--proxy-server=http://127.0.0.1:9', // anything not on loopback fails instead of leaving
      '--hide-scrollbars',
      '--font-render-hinting=none',
      `--user-data-dir=${profile}`,
      '--remote-debugging-port=0',
      'about:blank',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  proc.stderr?.setEncoding('utf8');
  proc.stderr?.on('data', (d: string) => {
    stderr += d;
  });
  const exited = new Promise<void>((r) => proc.once('close', () => r()));
  const wsUrl = await waitFor(
    'Chromium to open its DevTools endpoint',
    () => {
      if (proc.exitCode !== null)
        throw new Error(`chromium exited with ${proc.exitCode}:\n${stderr.slice(-2000)}`);
      return /DevTools listening on (ws:\/\/\S+)/.exec(stderr)?.[1];
    },
    { timeoutMs: 60_000, intervalMs: 50 },
  );
  const ws = new WebSocket(wsUrl);
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener('open', () => resolve(), { once: true });
    ws.addEventListener('error', () => reject(new Error(`cannot connect to ${wsUrl}`)), { once: true });
  });
  let nextId = 1;
  const calls = new Map<
    number,
    { resolve: (r: Record<string, unknown>) => void; reject: (e: Error) => void }
  >();
  const listeners = new Set<(m: CdpMessage) => void>();
  ws.addEventListener('message', (ev) => {
    const msg = JSON.parse(String(ev.data)) as CdpMessage;
    if (msg.id !== undefined) {
      const call = calls.get(msg.id);
      calls.delete(msg.id);
      if (msg.error) call?.reject(new Error(msg.error.message));
      else call?.resolve(msg.result ?? {});
      return;
    }
    for (const l of listeners) l(msg);
  });
  const send = (method: string, params: Record<string, unknown> = {}, sessionId?: string) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const id = nextId++;
      calls.set(id, { resolve, reject });
      ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    });

  return {
    async newPage(width = 1400, height = 1000) {
      const { targetId } = (await send('Target.createTarget', { url: 'about:blank' })) as {
        targetId: string;
      };
      const { sessionId } = (await send('Target.attachToTarget', { targetId, flatten: true })) as {
        sessionId: string;
      };
      const messages: string[] = [];
      let loads = 0;
      listeners.add((m) => {
        if (m.sessionId !== sessionId) return;
        if (m.method === 'Page.loadEventFired') loads++;
        if (m.method === 'Runtime.consoleAPICalled')
          messages.push(`console: ${JSON.stringify(m.params?.args)}`);
        if (m.method === 'Log.entryAdded') {
          const e = m.params?.entry as { source?: string; level?: string; text?: string } | undefined;
          messages.push(`${e?.source}/${e?.level}: ${e?.text}`);
        }
        if (m.method === 'Runtime.exceptionThrown') messages.push(`exception: ${JSON.stringify(m.params)}`);
      });
      for (const domain of ['Page', 'Runtime', 'Log']) await send(`${domain}.enable`, {}, sessionId);
      await send(
        'Emulation.setDeviceMetricsOverride',
        { width, height, deviceScaleFactor: 1, mobile: false },
        sessionId,
      );
      return {
        messages,
        async load(url) {
          const before = loads;
          const r = (await send('Page.navigate', { url }, sessionId)) as { errorText?: string };
          if (r.errorText) throw new Error(`cannot load ${url}: ${r.errorText}`);
          await waitFor(`${url} to load`, () => loads > before || undefined, {
            timeoutMs: 30_000,
            intervalMs: 20,
          });
        },
        async evaluate<T>(expression: string) {
          const r = (await send('Runtime.evaluate', { expression, returnByValue: true }, sessionId)) as {
            result: { value?: unknown };
            exceptionDetails?: unknown;
          };
          if (r.exceptionDetails) throw new Error(`evaluate failed: ${JSON.stringify(r.exceptionDetails)}`);
          return r.result.value as T;
        },
        async screenshot() {
          const r = (await send(
            'Page.captureScreenshot',
            { format: 'png', captureBeyondViewport: false },
            sessionId,
          )) as {
            data: string;
          };
          return Buffer.from(r.data, 'base64');
        },
      };
    },
    async close() {
      try {
        await send('Browser.close');
      } catch {
        // already gone
      }
      ws.close();
      const killer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(killer);
      await rm(profile, { recursive: true, force: true });
    },
  };
}
