import { describe, expect, it } from 'vitest';
import { jitteredRenewalTime } from '../../../src/sidecar/issuing-loop.ts';
import {
  expandTemplate,
  parseSidecarArgs,
  SIDECAR_FLAGS,
  sidecarHelp,
} from '../../../src/sidecar/options.ts';

function problems(argv: string[]): string[] {
  const r = parseSidecarArgs(argv, {});
  return 'problems' in r ? r.problems : [];
}

describe('sidecar flags', () => {
  it('--ca-bundle-configmap NAME[/KEY] with a Kubernetes source, not --once', () => {
    const ok = parseSidecarArgs(
      ['--dir', '/c', '--csr-signer', 'example.com/a', '--ca-bundle-configmap', 'trust/bundle.pem'],
      {},
    );
    expect('options' in ok && ok.options.caBundle).toEqual({ name: 'trust', key: 'bundle.pem' });
    const dflt = parseSidecarArgs(['--dir', '/c', '--secret', 's', '--ca-bundle-configmap=trust'], {});
    expect('options' in dflt && dflt.options.caBundle).toEqual({ name: 'trust', key: 'ca.crt' });
    expect(
      problems(['--dir', '/c', '--self-signed', '--dns-names', 'a', '--ca-bundle-configmap', 'Bad_Name']),
    ).toEqual([
      '--ca-bundle-configmap "Bad_Name" must be NAME or NAME/KEY (a ConfigMap name and key)',
      '--ca-bundle-configmap applies to --secret and --csr-signer only',
    ]);
    expect(problems(['--dir', '/c', '--secret', 's', '--once', '--ca-bundle-configmap', 't/a/b'])).toEqual([
      '--ca-bundle-configmap "t/a/b" must be NAME or NAME/KEY (a ConfigMap name and key)',
      '--ca-bundle-configmap does not apply to --once: the running sidecar keeps ca.crt following the bundle',
    ]);
  });

  it('--help lists every flag', () => {
    const help = sidecarHelp();
    for (const f of SIDECAR_FLAGS) expect(help).toContain(`--${f.name}`);
  });

  it('names every problem at once', () => {
    const p = problems([
      '--bogus',
      '--self-signed',
      '--secret',
      'x',
      '--duration',
      '10s',
      '--key-mode',
      '9',
      '--signal',
      'NOPE',
    ]);
    expect(p).toEqual(
      expect.arrayContaining([
        'unknown flag --bogus',
        '--dir DIR is required',
        'exactly one source is allowed; got secret, self-signed',
        expect.stringContaining('--duration 10s is too short; the minimum is 1m'),
        expect.stringContaining('--key-mode "9" is not an octal mode'),
        expect.stringContaining('--signal "NOPE" is not a signal name'),
        '--signal needs --process NAME',
      ]),
    );
  });

  it('requires a source, names for local issuing, 10m for the CSR API', () => {
    expect(problems(['--dir', 'd'])).toEqual([expect.stringContaining('a source is required')]);
    expect(problems(['--dir', 'd', '--self-signed'])).toEqual([
      '--self-signed needs --dns-names, --ip-addresses or --common-name',
    ]);
    expect(problems(['--dir', 'd', '--csr-signer', 'example.com/x', '--duration', '5m'])).toEqual([
      expect.stringContaining('the minimum is 10m'),
    ]);
    expect(problems(['--dir', 'd', '--ca-cert', 'c', '--common-name', 'x'])).toEqual([
      '--ca-cert needs --ca-key',
    ]);
    expect(problems(['--dir', 'd', '--secret', 's', '--dns-names', 'a.{pod}'])).toEqual([
      expect.stringContaining('unknown placeholder {pod}'),
    ]);
  });

  it('--exec takes the rest of the line up to a lone --; values with = work', () => {
    const r = parseSidecarArgs(
      [
        '--dir=d',
        '--self-signed',
        '--common-name',
        'x',
        '--exec',
        '/bin/kill',
        '-HUP',
        '1',
        '--',
        '--exec',
        'b',
      ],
      {},
    );
    if (!('options' in r)) throw new Error(JSON.stringify(r));
    expect(r.options.execs).toEqual([
      { command: '/bin/kill', args: ['-HUP', '1'] },
      { command: 'b', args: [] },
    ]);
    expect(r.options.dir).toBe('d');
    expect(r.options.signal).toBe('SIGHUP');
    expect(r.options.metricsAddress).toBe(':9403');
  });

  it('takes the namespace, pod and ServiceAccount from the downward-API environment', () => {
    const r = parseSidecarArgs(['--dir', 'd', '--secret', 's'], {
      POD_NAMESPACE: 'ns1',
      POD_NAME: 'p-1',
      POD_SERVICE_ACCOUNT: 'sa1',
    });
    if (!('options' in r)) throw new Error(JSON.stringify(r));
    expect([r.options.namespace, r.options.podName, r.options.serviceAccount]).toEqual(['ns1', 'p-1', 'sa1']);
  });

  it('expands templates and names the missing value', () => {
    expect(expandTemplate('{podname}.{namespace}.svc', { namespace: 'n', podname: 'p' })).toBe('p.n.svc');
    expect(() => expandTemplate('{serviceaccount}.x', {})).toThrow(
      /--service-account or \$POD_SERVICE_ACCOUNT/,
    );
  });
});

describe('renewal at a jittered 70–90 % of the issued validity', () => {
  it('spans exactly 70 % to 90 %', () => {
    const leaf = { notBefore: 1_000_000, notAfter: 1_000_000 + 100_000 };
    expect(jitteredRenewalTime(leaf, 0)).toBe(1_070_000);
    expect(jitteredRenewalTime(leaf, 0.5)).toBe(1_080_000);
    expect(jitteredRenewalTime(leaf, 0.999999)).toBeLessThanOrEqual(1_090_000);
  });
});

describe('docs/sidecar.md', () => {
  it('documents every flag', async () => {
    const { readFile } = await import('node:fs/promises');
    const doc = await readFile(new URL('../../../docs/sidecar.md', import.meta.url), 'utf8');
    const missing = SIDECAR_FLAGS.filter((f) => !doc.includes(`\`--${f.name}`)).map((f) => f.name);
    expect(missing).toEqual([]);
  });
});
