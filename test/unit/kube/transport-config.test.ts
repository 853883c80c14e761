import { writeFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { kubeconfigEndpoint, kubeconfigPaths, TokenBucket } from '../../../src/kube/http/index.ts';
import { importClientNode } from '../../../src/kube/http/kubeconfig.ts';

describe('TokenBucket (client QPS/burst)', () => {
  afterEach(() => vi.useRealTimers());

  it('lets `burst` requests start at once, then one per 1/qps seconds, in arrival order', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'performance'] });
    const bucket = new TokenBucket(10, 3);
    const started: number[] = [];
    const all = Array.from({ length: 6 }, (_, i) => bucket.take().then(() => started.push(i)));
    await vi.advanceTimersByTimeAsync(0);
    expect(started).toEqual([0, 1, 2]);
    await vi.advanceTimersByTimeAsync(100);
    expect(started).toEqual([0, 1, 2, 3]);
    await vi.advanceTimersByTimeAsync(200);
    expect(started).toEqual([0, 1, 2, 3, 4, 5]);
    await Promise.all(all);
  });

  it('qps 0 means no limit; an aborted waiter is rejected and does not consume a token', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'performance'] });
    const open = new TokenBucket(0, 0);
    await Promise.all(Array.from({ length: 1000 }, () => open.take()));
    const bucket = new TokenBucket(1, 1);
    await bucket.take();
    const ac = new AbortController();
    const waiting = bucket.take(ac.signal);
    ac.abort(new Error('stop'));
    await expect(waiting).rejects.toThrow('stop');
    let next = false;
    void bucket.take().then(() => {
      next = true;
    });
    await vi.advanceTimersByTimeAsync(1000);
    expect(next).toBe(true);
  });

  it('refuses a burst below 1 when limited', () => {
    expect(() => new TokenBucket(5, 0)).toThrow(/burst must be at least 1/);
  });
});

describe('kubeconfig reading (the parts that need no API server)', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kubeconfig-'));
  });

  const doc = (o: Record<string, unknown>) => JSON.stringify({ apiVersion: 'v1', kind: 'Config', ...o });

  it('merges $KUBECONFIG files first-wins and skips missing ones', async () => {
    const a = join(dir, 'a.json');
    const b = join(dir, 'b.yaml');
    await writeFile(a, doc({ 'current-context': 'two', users: [{ name: 'u', user: { token: 'from-a' } }] }));
    await writeFile(
      b,
      [
        'current-context: one',
        'clusters:',
        '- name: c',
        '  cluster: { server: "https://k.example:6443/" }',
        'users:',
        '- name: u',
        '  user: { token: from-b }',
        'contexts:',
        '- { name: two, context: { cluster: c, user: u, namespace: ns2 } }',
      ].join('\n'),
    );
    const paths = kubeconfigPaths(undefined, { KUBECONFIG: [a, join(dir, 'missing'), b].join(delimiter) });
    expect(paths).toHaveLength(3);
    const e = kubeconfigEndpoint(paths);
    expect(e.server).toBe('https://k.example:6443');
    expect(e.namespace).toBe('ns2');
    expect(e.auth.kind).toBe('token');
    expect(await e.auth.apply()).toEqual({ authorization: 'Bearer from-a' });
  });

  it('says what is wrong with a broken kubeconfig', () => {
    const write = (name: string, text: string) => {
      const p = join(dir, name);
      writeFileSync(p, text);
      return [p];
    };
    const base = { 'current-context': 'x', contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }] };
    const cases: [string, string, RegExp][] = [
      ['list.yaml', '- a\n- b\n', /not a mapping/],
      ['bad.yaml', 'a: [\n', /neither JSON nor YAML/],
      ['noctx.json', doc({}), /has no current-context/],
      ['badctx.json', doc({ 'current-context': 'x' }), /context "x" not found/],
      ['nocluster.json', doc(base), /cluster "c" of context "x" not found/],
      [
        'noserver.json',
        doc({ ...base, clusters: [{ name: 'c', cluster: {} }], users: [{ name: 'u', user: {} }] }),
        /cluster "c" has no server/,
      ],
      [
        'nouser.json',
        doc({ ...base, clusters: [{ name: 'c', cluster: { server: 'https://a' } }] }),
        /user "u" of context "x" not found/,
      ],
      [
        'proxy.json',
        doc({
          ...base,
          clusters: [{ name: 'c', cluster: { server: 'https://a', 'proxy-url': 'http://p' } }],
        }),
        /proxy-url, which cert-rotator does not support/,
      ],
      [
        'halfcert.json',
        doc({
          ...base,
          clusters: [{ name: 'c', cluster: { server: 'https://a' } }],
          users: [{ name: 'u', user: { 'client-certificate-data': 'QQ==' } }],
        }),
        /client certificate without a key/,
      ],
      [
        'cafile.json',
        doc({
          ...base,
          clusters: [{ name: 'c', cluster: { server: 'https://a', 'certificate-authority': 'gone.crt' } }],
          users: [{ name: 'u', user: {} }],
        }),
        /cannot read cluster CA .*gone\.crt: ENOENT/,
      ],
    ];
    expect(() => kubeconfigEndpoint([join(dir, 'nope')])).toThrow(/cannot read kubeconfig .*nope: ENOENT/);
    for (const [name, text, message] of cases)
      expect(() => kubeconfigEndpoint(write(name, text)), name).toThrow(message);
  });
});

describe('importClientNode (exec and auth-provider users)', () => {
  /** What Node throws for an import of a package that is not installed. */
  const notFound = (what: string) =>
    Object.assign(
      new Error(`Cannot find package '${what}' imported from /app/dist/kube/http/kubeconfig.js`),
      {
        code: 'ERR_MODULE_NOT_FOUND',
      },
    );

  it('loads the package where it is installed (npm install, optional dependencies included)', async () => {
    const k8s = await importClientNode('exec');
    expect(typeof k8s.KubeConfig).toBe('function');
  });

  it('without the package (the container image) says which user setting needs it and what to do', async () => {
    for (const [kind, says] of [
      ['exec', 'an exec credential plugin'],
      ['auth-provider', 'an auth-provider'],
    ] as const) {
      const err = await importClientNode(kind, () =>
        Promise.reject(notFound('@kubernetes/client-node')),
      ).catch((e: unknown) => e as Error);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toContain(`authenticates with ${says}`);
      expect((err as Error).message).toContain('optional package @kubernetes/client-node');
      expect((err as Error).message).toContain('the container image leaves it out');
    }
  });

  it('any other failure is passed on unchanged', async () => {
    const other = notFound('ws');
    await expect(importClientNode('exec', () => Promise.reject(other))).rejects.toBe(other);
    const broken = new SyntaxError('Unexpected token');
    await expect(importClientNode('exec', () => Promise.reject(broken))).rejects.toBe(broken);
  });
});
