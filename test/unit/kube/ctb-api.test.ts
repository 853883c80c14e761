import { describe, expect, it } from 'vitest';
import { ClusterTrustBundleApi } from '../../../src/kube/ctb-api.ts';
import type { KubeTransport } from '../../../src/kube/http/transport.ts';

/** A fake API server's discovery answers (named a fake: the integration test uses a real one). */
function discovery(served: Record<string, string[]>, failing?: number): KubeTransport {
  return {
    async request<T>(method: string, path: string): Promise<T> {
      expect(method).toBe('GET');
      if (failing !== undefined) throw Object.assign(new Error('boom'), { code: failing });
      const version = path.replace('/apis/certificates.k8s.io/', '');
      const resources = served[version];
      if (!resources) throw Object.assign(new Error('not found'), { code: 404 });
      return { resources: resources.map((name) => ({ name })) } as T;
    },
    watch: async () => undefined,
  };
}

describe('ClusterTrustBundleApi.servedVersion (fake discovery)', () => {
  it('prefers v1, falls back to v1beta1, and says none when neither serves clustertrustbundles', async () => {
    const both = {
      v1: ['certificatesigningrequests', 'clustertrustbundles'],
      v1beta1: ['clustertrustbundles'],
    };
    expect(await new ClusterTrustBundleApi(discovery(both)).servedVersion()).toBe('v1');
    const beta = {
      v1: ['certificatesigningrequests'],
      v1beta1: ['clustertrustbundles', 'podcertificaterequests'],
    };
    expect(await new ClusterTrustBundleApi(discovery(beta)).servedVersion()).toBe('v1beta1');
    const none = { v1: ['certificatesigningrequests'], v1beta1: ['podcertificaterequests'] };
    expect(await new ClusterTrustBundleApi(discovery(none)).servedVersion()).toBeUndefined();
    expect(await new ClusterTrustBundleApi(discovery({})).servedVersion()).toBeUndefined();
  });

  it('a discovery error other than 404 is an error, not "not served"', async () => {
    await expect(new ClusterTrustBundleApi(discovery({}, 503)).servedVersion()).rejects.toThrow(
      /^discover certificates.k8s.io\/v1: /,
    );
  });
});
