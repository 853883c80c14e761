import { webcrypto, X509Certificate } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { adminKubeConfig, serviceAccountKubeConfig, statusOf, useNamespace } from '../testenv/kube.ts';
import { waitFor } from '../testenv/net.ts';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

const ns = useNamespace(import.meta.url);

describe('kube-apiserver + etcd (real control plane)', () => {
  it('creates, watches and replaces a Secret by resourceVersion; a stale resourceVersion gets 409', async () => {
    const kc = adminKubeConfig();
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const seen: string[] = [];
    const watch = new k8s.Watch(kc);
    const req = await watch.watch(
      `/api/v1/namespaces/${ns()}/secrets`,
      { fieldSelector: 'type=kubernetes.io/tls' },
      (type: string, obj: k8s.V1Secret) =>
        seen.push(`${type} ${obj.metadata?.name} ${obj.metadata?.resourceVersion}`),
      () => undefined,
    );
    try {
      const created = await core.createNamespacedSecret({
        namespace: ns(),
        body: {
          metadata: { name: 'web-tls' },
          type: 'kubernetes.io/tls',
          data: {
            'tls.crt': Buffer.from('a').toString('base64'),
            'tls.key': Buffer.from('b').toString('base64'),
          },
        },
      });
      // An Opaque Secret must not reach a watch filtered on the TLS type.
      await core.createNamespacedSecret({
        namespace: ns(),
        body: { metadata: { name: 'opaque' }, type: 'Opaque' },
      });
      const rv1 = created.metadata?.resourceVersion;
      expect(rv1).toMatch(/^\d+$/);
      const replaced = await core.replaceNamespacedSecret({
        namespace: ns(),
        name: 'web-tls',
        body: { ...created, data: { ...created.data, 'tls.crt': Buffer.from('c').toString('base64') } },
      });
      expect(Number(replaced.metadata?.resourceVersion)).toBeGreaterThan(Number(rv1));
      await waitFor('watch to see ADDED and MODIFIED', () =>
        seen.some((s) => s.startsWith('MODIFIED web-tls')) ? true : undefined,
      );
      expect(seen[0]).toBe(`ADDED web-tls ${rv1}`);
      expect(seen.some((s) => s.includes('opaque'))).toBe(false);

      // The writer that still holds rv1 must be refused rather than overwrite the newer data.
      const stale = core.replaceNamespacedSecret({ namespace: ns(), name: 'web-tls', body: created });
      await expect(stale).rejects.toSatisfy((err) => statusOf(err) === 409);
      const now = await core.readNamespacedSecret({ namespace: ns(), name: 'web-tls' });
      expect(Buffer.from(now.data?.['tls.crt'] ?? '', 'base64').toString()).toBe('c');
    } finally {
      req.abort();
    }
  });

  it('kube-controller-manager gives a Deployment a ReplicaSet', async () => {
    const apps = adminKubeConfig().makeApiClient(k8s.AppsV1Api);
    const labels = { app: 'smoke' };
    await apps.createNamespacedDeployment({
      namespace: ns(),
      body: {
        metadata: { name: 'smoke' },
        spec: {
          replicas: 1,
          selector: { matchLabels: labels },
          template: {
            metadata: { labels },
            spec: { containers: [{ name: 'c', image: 'registry.invalid/none:1' }] },
          },
        },
      },
    });
    const rs = await waitFor('a ReplicaSet owned by the Deployment', async () => {
      const list = await apps.listNamespacedReplicaSet({ namespace: ns() });
      return list.items.find((r) =>
        r.metadata?.ownerReferences?.some((o) => o.kind === 'Deployment' && o.name === 'smoke'),
      );
    });
    expect(rs.spec?.template?.spec?.containers[0]?.image).toBe('registry.invalid/none:1');
  });

  it('signs an approved CertificateSigningRequest for kubernetes.io/kube-apiserver-client', async () => {
    const kc = adminKubeConfig();
    const certs = kc.makeApiClient(k8s.CertificatesV1Api);
    x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
    const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
      'sign',
      'verify',
    ])) as webcrypto.CryptoKeyPair;
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: 'CN=smoke-user, O=smoke-group',
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    });
    const name = `smoke-${ns()}`;
    await certs.createCertificateSigningRequest({
      body: {
        metadata: { name },
        spec: {
          request: Buffer.from(csr.toString('pem')).toString('base64'),
          signerName: 'kubernetes.io/kube-apiserver-client',
          usages: ['client auth', 'digital signature'],
          expirationSeconds: 600,
        },
      },
    });
    const current = await certs.readCertificateSigningRequest({ name });
    current.status = {
      conditions: [
        { type: 'Approved', status: 'True', reason: 'SmokeTest', message: 'approved by the test' },
      ],
    };
    await certs.replaceCertificateSigningRequestApproval({ name, body: current });
    const issued = await waitFor('the CSR to be signed', async () => {
      const c = await certs.readCertificateSigningRequest({ name });
      return c.status?.certificate;
    });
    const cert = new X509Certificate(Buffer.from(issued, 'base64'));
    expect(cert.subject).toContain('CN=smoke-user');
    expect(cert.issuer).toContain('CN=cert-rotator-test-ca');
    await certs.deleteCertificateSigningRequest({ name });
  });

  it('refuses a ServiceAccount without grants with 403 (RBAC is enforced)', async () => {
    const admin = adminKubeConfig();
    const core = admin.makeApiClient(k8s.CoreV1Api);
    await core.createNamespacedServiceAccount({ namespace: ns(), body: { metadata: { name: 'nobody' } } });
    const kc = await serviceAccountKubeConfig(admin, ns(), 'nobody');
    const asNobody = kc.makeApiClient(k8s.CoreV1Api);
    await expect(asNobody.listNamespacedSecret({ namespace: ns() })).rejects.toSatisfy(
      (e) => statusOf(e) === 403,
    );

    // The same identity succeeds once granted: the 403 was RBAC, not a broken token.
    const rbac = admin.makeApiClient(k8s.RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({
      namespace: ns(),
      body: {
        metadata: { name: 'read-secrets' },
        rules: [{ apiGroups: [''], resources: ['secrets'], verbs: ['list'] }],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: ns(),
      body: {
        metadata: { name: 'nobody-reads' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'read-secrets' },
        subjects: [{ kind: 'ServiceAccount', name: 'nobody', namespace: ns() }],
      },
    });
    const list = await waitFor('the grant to take effect', async () =>
      asNobody.listNamespacedSecret({ namespace: ns() }),
    );
    expect(Array.isArray(list.items)).toBe(true);
    await expect(asNobody.listNamespacedConfigMap({ namespace: ns() })).rejects.toSatisfy(
      (e) => statusOf(e) === 403,
    );
  });
});
