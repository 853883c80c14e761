import * as k8s from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { makeClients } from '../../../src/kube/client.ts';
import { PatchType } from '../../../src/kube/http/api.ts';
import type { KubeTransport, RequestOptions } from '../../../src/kube/http/transport.ts';

/** Records what the light clients ask the transport for (no API server involved: request shapes only). */
function recording(): {
  transport: KubeTransport;
  calls: Array<{ method: string; path: string; opts?: RequestOptions }>;
} {
  const calls: Array<{ method: string; path: string; opts?: RequestOptions }> = [];
  const transport: KubeTransport = {
    async request<T>(method: string, path: string, opts?: RequestOptions): Promise<T> {
      calls.push({ method, path, ...(opts ? { opts } : {}) });
      return { metadata: { continue: 'next' }, items: [] } as T;
    },
    async watch() {},
  };
  return { transport, calls };
}

describe('light API clients: client-node method names and request objects over the transport', () => {
  it('maps namespaced, cluster-scoped and subresource methods to their paths and verbs', async () => {
    const { transport, calls } = recording();
    const c = makeClients(transport);
    await c.core.readNamespacedSecret({ namespace: 'a b', name: 'x/y' });
    await c.core.createNamespacedEvent({ namespace: 'n', body: { metadata: {}, involvedObject: {} } });
    await c.apps.replaceNamespacedDeployment({ namespace: 'n', name: 'd', body: {} });
    await c.coordination.deleteNamespacedLease({ namespace: 'n', name: 'l' });
    await c.certificates.replaceCertificateSigningRequestApproval({
      name: 'csr',
      body: { spec: { request: '', signerName: '' } },
    });
    await c.certificates.readCertificateSigningRequestStatus({ name: 'csr' });
    await c.core.createNamespacedServiceAccountToken({
      namespace: 'n',
      name: 'sa',
      body: { spec: { audiences: [] } },
    });
    await c.core.listSecretForAllNamespaces({
      fieldSelector: 'type=kubernetes.io/tls',
      limit: 5,
      _continue: 'tok',
    });
    await c.core.deleteNamespace({ name: 'gone' });
    expect(calls.map((x) => `${x.method} ${x.path}`)).toEqual([
      'GET /api/v1/namespaces/a%20b/secrets/x%2Fy',
      'POST /api/v1/namespaces/n/events',
      'PUT /apis/apps/v1/namespaces/n/deployments/d',
      'DELETE /apis/coordination.k8s.io/v1/namespaces/n/leases/l',
      'PUT /apis/certificates.k8s.io/v1/certificatesigningrequests/csr/approval',
      'GET /apis/certificates.k8s.io/v1/certificatesigningrequests/csr/status',
      'POST /api/v1/namespaces/n/serviceaccounts/sa/token',
      'GET /api/v1/secrets',
      'DELETE /api/v1/namespaces/gone',
    ]);
    expect(calls[7]?.opts?.query).toEqual({
      fieldSelector: 'type=kubernetes.io/tls',
      limit: '5',
      continue: 'tok',
    });
  });

  it("offers a list continue token under client-node's name too", async () => {
    const { transport } = recording();
    const list = await makeClients(transport).core.listNamespacedSecret({ namespace: 'n' });
    expect(list.metadata?._continue).toBe('next');
  });

  it('patches as client-node does by default (JSON Patch), or as asked: ours or setHeaderOptions', async () => {
    const { transport, calls } = recording();
    const apps = makeClients(transport).apps;
    const req = { namespace: 'n', name: 'd', body: [], fieldManager: 'cert-rotator' };
    await apps.patchNamespacedDeployment(req);
    await apps.patchNamespacedDeployment(req, { contentType: PatchType.strategicMerge });
    await apps.patchNamespacedDeployment(
      req,
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
    expect(calls.map((x) => x.opts?.contentType)).toEqual([
      'application/json-patch+json',
      'application/strategic-merge-patch+json',
      'application/merge-patch+json',
    ]);
    expect(calls[0]?.opts?.query).toEqual({ fieldManager: 'cert-rotator' });
  });

  it('refuses a call without its path parameters instead of sending a malformed path', async () => {
    const { transport, calls } = recording();
    const core = makeClients(transport).core;
    await expect(core.readNamespacedSecret({ namespace: '', name: 'x' })).rejects.toThrow(
      /readNamespacedSecret: missing required parameter namespace/,
    );
    expect(calls).toEqual([]);
  });
});
