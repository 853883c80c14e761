import { execFileSync } from 'node:child_process';
import { createPublicKey, X509Certificate } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKey, issueCertificate } from '../../src/pki/index.ts';
import {
  type ControllerProcess,
  killAllControllers,
  startControllerProcess,
  writeConfig,
} from '../testenv/controller-process.ts';
import { adminKubeConfig, testEnv, useNamespace } from '../testenv/kube.ts';
import { waitFor } from '../testenv/net.ts';
import {
  decoded,
  eventsFor,
  makeLeaf,
  makeTestCA,
  type Pair,
  tlsSecret,
  waitForRevision,
} from '../testenv/tls-fixtures.ts';

/**
 * A CA managed by cert-rotator (real API server, the real controller process): a root issued by
 * a selfSigned issuer with allowCA renews itself at its renew-before into a staged Secret, the
 * rollover of the `ca` issuer it backs runs through every phase, and the leaves end up signed by
 * the new CA. Issuers without allowCA, a path length that does not fit, and a CA Secret opted in
 * without is-ca are refused with nothing written.
 */
const ns = useNamespace(import.meta.url);
const HOUR = 3_600_000;
const A = 'cert-rotator.io/';
const S = 'status.cert-rotator.io/';
const LEAVES = ['web-a', 'web-b'];

let core: k8s.CoreV1Api;
let controller: ControllerProcess;
let oldRoot: Pair;
let fixedParent: Pair;

const secret = (name: string) => core.readNamespacedSecret({ namespace: ns(), name });
const exists = async (name: string) =>
  secret(name).then(
    () => true,
    () => false,
  );

/** `openssl x509 -text` of a PEM certificate, as an operator would look at it. */
function opensslText(pem: string): string {
  return execFileSync('openssl', ['x509', '-noout', '-text'], { input: pem, encoding: 'utf8' });
}

/** A CA with the given path length, made outside cert-rotator (the parent of intermediates). */
async function caWithPathLength(commonName: string, pathLength: number): Promise<Pair> {
  const key = await generateKey('ecdsa-p256');
  const now = Date.now();
  const ca = await issueCertificate({
    subjectKeyPem: key.privateKeyPem,
    identity: { commonName, dnsNames: [], ipAddresses: [], uris: [] },
    notBefore: now - 60_000,
    notAfter: now + 30 * 24 * HOUR,
    issuer: 'self',
    isCA: true,
    pathLength,
  });
  return { certPem: ca.certPem, keyPem: key.privateKeyPem };
}

beforeAll(async () => {
  const kc = adminKubeConfig();
  core = kc.makeApiClient(k8s.CoreV1Api);
  // The root the `ca` issuer signs with: one hour left, not yet opted in.
  oldRoot = await makeTestCA('managed root', HOUR);
  await core.createNamespacedSecret({ namespace: ns(), body: tlsSecret('managed-root', oldRoot) });
  // A parent outside cert-rotator with path length 1: intermediates under it get at most 0.
  fixedParent = await caWithPathLength('fixed parent', 1);
  await core.createNamespacedSecret({ namespace: ns(), body: tlsSecret('fixed-parent', fixedParent) });
  const unmarked = await makeTestCA('unmarked CA', HOUR);
  await core.createNamespacedSecret({
    namespace: ns(),
    body: tlsSecret('unmarked-ca', unmarked, { [`${A}enabled`]: 'true', [`${A}issuer`]: 'root' }),
  });
  const dir = await mkdtemp(join(tmpdir(), 'cert-rotator-managed-ca-'));
  const configPath = await writeConfig(dir, {
    namespaces: [ns()],
    defaults: { issuer: 'internal-ca' },
    issuers: [
      { name: 'root', selfSigned: {}, allowCA: true, duration: '2160h' },
      { name: 'plain-self', selfSigned: {} },
      {
        name: 'internal-ca',
        ca: {
          secret: { namespace: ns(), name: 'managed-root' },
          rollover: {
            trustPropagation: '1s',
            maxWait: '2s',
            reissue: { maxPerMinute: 100 },
            retireAfter: '1s',
            checkInterval: '1s',
          },
        },
      },
      { name: 'fixed-ca', ca: { secret: { namespace: ns(), name: 'fixed-parent' } }, allowCA: true },
      // Its CA Secret (unmarked-ca) is opted in without is-ca: refused, never renewed with a leaf.
      { name: 'unmarked', ca: { secret: { namespace: ns(), name: 'unmarked-ca' } } },
    ],
  });
  controller = startControllerProcess({ configPath, kubeconfigPath: testEnv().kubeconfigPath });
  await controller.waitForLog('the initial list', (l) => l.msg === 'initial list processed', 60_000);
  // Two leaves of the `ca` issuer, issued by the old root.
  for (const name of LEAVES) {
    const pair = await makeLeaf({ dnsNames: [`${name}.example.com`], fromMs: -6 * HOUR, toMs: 4 * HOUR });
    await core.createNamespacedSecret({
      namespace: ns(),
      body: tlsSecret(name, pair, { [`${A}enabled`]: 'true', [`${A}renew-before`]: '5h' }),
    });
  }
  for (const name of LEAVES) await waitForRevision(core, ns(), name, '1');
});

afterAll(async () => {
  await killAllControllers();
});

describe('a CA managed by cert-rotator (real API server)', () => {
  it('refuses: is-ca from an issuer without allowCA, a path length beyond the parent, a CA Secret without is-ca; nothing written', async () => {
    const expired = await makeTestCA('placeholder', -30_000);
    await core.createNamespacedSecret({
      namespace: ns(),
      body: tlsSecret('no-allow', expired, {
        [`${A}enabled`]: 'true',
        [`${A}issuer`]: 'plain-self',
        [`${A}is-ca`]: 'true',
        [`${A}common-name`]: 'not allowed',
      }),
    });
    await core.createNamespacedSecret({
      namespace: ns(),
      body: tlsSecret('too-deep', expired, {
        [`${A}enabled`]: 'true',
        [`${A}issuer`]: 'fixed-ca',
        [`${A}is-ca`]: 'true',
        [`${A}ca-path-length`]: '1',
        [`${A}common-name`]: 'too deep',
      }),
    });
    const notAllowed = await waitFor('an IssuerNotAllowed event on no-allow', async () =>
      (await eventsFor(core, ns(), 'no-allow')).find((e) => e.reason === 'IssuerNotAllowed'),
    );
    expect(notAllowed.type).toBe('Warning');
    expect(notAllowed.message).toContain('issuer "plain-self" does not issue CA certificates');
    expect(notAllowed.message).toContain('allowCA: true');

    const tooDeep = await waitFor('too-deep in state Failed', async () => {
      const s = await secret('too-deep');
      return s.metadata?.annotations?.[`${A}state`] === 'Failed' ? s : undefined;
    });
    expect(tooDeep.metadata?.annotations?.[`${A}last-error`]).toContain(
      "path length 1 does not fit under the issuing CA's path length 1 (at most 0)",
    );
    const failedEvent = (await eventsFor(core, ns(), 'too-deep')).find((e) => e.reason === 'RenewalFailed');
    expect(failedEvent?.message).toContain('cannot sign this CA');

    const unmarked = await waitFor('an InvalidAnnotation event on unmarked-ca', async () =>
      (await eventsFor(core, ns(), 'unmarked-ca')).find((e) => e.reason === 'InvalidAnnotation'),
    );
    expect(unmarked.message).toContain('this Secret is the CA of issuer "unmarked"');

    // Nothing issued: the certificates are the ones the test wrote.
    for (const name of ['no-allow', 'too-deep']) {
      expect(decoded(await secret(name), 'tls.crt')).toBe(expired.certPem);
    }
    expect(await exists('unmarked-ca-next')).toBe(false);
  });

  it('an intermediate under a parent with path length 1 gets path length 0 and its chain, renewed in place', async () => {
    await core.createNamespacedSecret({
      namespace: ns(),
      body: tlsSecret('intermediate', await makeTestCA('placeholder', -30_000), {
        [`${A}enabled`]: 'true',
        [`${A}issuer`]: 'fixed-ca',
        [`${A}is-ca`]: 'true',
        [`${A}common-name`]: 'team intermediate',
      }),
    });
    const s = await waitForRevision(core, ns(), 'intermediate', '1');
    const chain = decoded(s, 'tls.crt');
    const [inter, parent] = chain
      .split(/(?<=-----END CERTIFICATE-----\n)/)
      .map((p) => new X509Certificate(p));
    expect(inter?.subject).toBe('CN=team intermediate');
    expect(inter?.ca).toBe(true);
    expect(parent?.fingerprint256).toBe(new X509Certificate(fixedParent.certPem).fingerprint256);
    expect(inter?.checkIssued(parent!)).toBe(true);
    expect(inter?.verify(parent!.publicKey)).toBe(true);
    expect(opensslText(chain)).toMatch(/Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    // Not the CA of any issuer: nothing to roll over, nothing staged.
    expect(await exists('intermediate-next')).toBe(false);
  });

  it('renews the root at its renew-before into a staged Secret; the rollover runs every phase; leaves move to the new CA', async () => {
    // Opt the root in, due a few seconds from now: renew-before = the time it has left, less 4s.
    const left = Math.floor((new X509Certificate(oldRoot.certPem).validToDate.getTime() - Date.now()) / 1000);
    const root = await secret('managed-root');
    root.metadata = {
      ...root.metadata,
      annotations: {
        ...root.metadata?.annotations,
        [`${A}enabled`]: 'true',
        [`${A}issuer`]: 'root',
        [`${A}is-ca`]: 'true',
        [`${A}ca-path-length`]: '1',
        [`${A}key-algorithm`]: 'ecdsa-p384',
        [`${A}renew-before`]: `${left - 4}s`,
      },
    };
    await core.replaceNamespacedSecret({ namespace: ns(), name: 'managed-root', body: root });

    // The renewal is staged: next-ca names managed-root-next, state Issuing, tls.crt untouched.
    const staged = await waitFor(
      'managed-root to name its staged successor',
      async () => {
        const s = await secret('managed-root');
        return s.metadata?.annotations?.[`${A}next-ca`] === 'managed-root-next' ? s : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 50 },
    );
    expect(decoded(staged, 'tls.crt')).toBe(oldRoot.certPem);
    expect(decoded(staged, 'tls.key')).toBe(oldRoot.keyPem);
    expect(staged.metadata?.annotations?.[`${A}state`]).toBe('Issuing');
    const stagedEvent = (await eventsFor(core, ns(), 'managed-root')).find((e) => e.reason === 'Renewed');
    expect(stagedEvent?.message).toContain('staged in Secret managed-root-next');

    // Every phase, in order, then the end.
    const done = await waitFor(
      'the rollover to complete and the root recorded as renewed',
      async () => {
        const s = await secret('managed-root');
        const a = s.metadata?.annotations ?? {};
        return a[`${S}ca-rollover-phase`] === undefined && a[`${A}state`] === 'Ready' && a[`${A}revision`]
          ? s
          : undefined;
      },
      { timeoutMs: 60_000 },
    );
    const phases = (await eventsFor(core, ns(), 'managed-root'))
      .filter((e) => e.reason === 'CARolloverPhase')
      .map((e) => e.message ?? '');
    for (const step of ['began: Trust', 'Propagate', 'Reissue', 'Retire', 'complete']) {
      expect(
        phases.some((m) => m.includes(step)),
        `phase event "${step}" in ${phases.join(' | ')}`,
      ).toBe(true);
    }

    // The new root: a real CA as configured, a fresh P-384 key, the old key gone everywhere.
    const newPem = decoded(done, 'tls.crt');
    const newRoot = new X509Certificate(newPem);
    expect(newRoot.fingerprint256).not.toBe(new X509Certificate(oldRoot.certPem).fingerprint256);
    expect(newRoot.subject).toBe('CN=managed root');
    expect(newRoot.ca).toBe(true);
    expect(newRoot.checkIssued(newRoot)).toBe(true);
    expect(createPublicKey(decoded(done, 'tls.key')).asymmetricKeyDetails?.namedCurve).toBe('secp384r1');
    const text = opensslText(newPem);
    expect(text).toMatch(/Basic Constraints: critical\s+CA:TRUE, pathlen:1/);
    expect(text).toMatch(/Key Usage: critical\s+Certificate Sign, CRL Sign\n/);
    expect(text).not.toContain('Extended Key Usage');
    expect(text).toContain('Subject Key Identifier');
    expect(text).toContain('Authority Key Identifier');
    // No previous.key, previous.crt or next.crt left on the CA Secret; its ca.crt is the new root
    // (what the selfSigned issuer gave the staged one), not the replaced root.
    expect(Object.keys(done.data ?? {}).sort()).toEqual(['ca.crt', 'tls.crt', 'tls.key']);
    expect(decoded(done, 'ca.crt')).toBe(newPem);
    expect(await exists('managed-root-next')).toBe(false);
    const all = await core.listNamespacedSecret({ namespace: ns() });
    const holdsOldKey = all.items.filter((s) =>
      Object.values(s.data ?? {}).some((v) => Buffer.from(v, 'base64').toString().includes(oldRoot.keyPem)),
    );
    expect(holdsOldKey.map((s) => s.metadata?.name)).toEqual([]);

    // The leaves: re-issued by the new root, trusting it alone.
    for (const name of LEAVES) {
      const leaf = await waitFor(`${name} signed by the new root, trusting it alone`, async () => {
        const s = await secret(name);
        const cert = new X509Certificate(decoded(s, 'tls.crt'));
        return cert.verify(newRoot.publicKey) && decoded(s, 'ca.crt') === newRoot.toString() ? s : undefined;
      });
      expect(new X509Certificate(decoded(leaf, 'tls.crt')).checkIssued(newRoot)).toBe(true);
    }

    // Its schedule follows the new CA: not-after and renewal-time from it, and no second renewal.
    const a = done.metadata?.annotations ?? {};
    const renewBeforeMs = (left - 4) * 1000;
    expect(a[`${A}not-after`]).toBe(newRoot.validToDate.toISOString().replace('.000Z', 'Z'));
    expect(Date.parse(a[`${A}renewal-time`] ?? '')).toBe(newRoot.validToDate.getTime() - renewBeforeMs);
    expect(a[`${A}next-ca`]).toBeUndefined();
    const landed = (await eventsFor(core, ns(), 'managed-root')).find((e) =>
      e.message?.startsWith('the renewed CA is active'),
    );
    expect(landed?.type).toBe('Normal');
    expect(controller.output()).not.toContain(oldRoot.keyPem.split('\n')[1] ?? 'no key line');
  });
});
