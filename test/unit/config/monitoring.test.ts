import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../src/config/load.ts';

function issues(yaml: string): string[] {
  try {
    loadConfig(yaml);
  } catch (err) {
    if (err instanceof ConfigError) return err.message.split('\n');
    throw err;
  }
  return [];
}

describe('config: monitoring', () => {
  it('has every source off by default, with the documented keys and excluded types', () => {
    const m = loadConfig('').monitoring;
    expect([m.secrets, m.configMaps, m.keystores, m.kubeconfigs, m.webhooks].map((s) => s.enabled)).toEqual([
      false,
      false,
      false,
      false,
      false,
    ]);
    expect(m.secrets.excludeTypes).toContain('kubernetes.io/tls');
    expect(m.secrets.namespaces).toBe('all');
    expect(m.keystores.password).toBeUndefined();
    expect(m.webhooks.kinds).toHaveLength(4);
  });

  it('takes namespaces, selectors, keys and a password key; sources follow the top-level namespaces', () => {
    const m = loadConfig(`
namespaces: [a, b]
monitoring:
  secrets: { enabled: true, keys: ["*.pem", ca.crt], labelSelector: "team=x", excludeTypes: [] }
  configMaps: { enabled: true, namespaces: [c] }
  keystores: { enabled: true, password: { key: password } }
  webhooks: { enabled: true, kinds: [ValidatingWebhookConfiguration] }
`).monitoring;
    expect(m.secrets).toMatchObject({
      enabled: true,
      namespaces: ['a', 'b'],
      keys: ['*.pem', 'ca.crt'],
      labelSelector: 'team=x',
      excludeTypes: [],
    });
    expect(m.configMaps.namespaces).toEqual(['c']);
    expect(m.keystores.password).toEqual({ key: 'password' });
    expect(m.webhooks.kinds).toEqual(['ValidatingWebhookConfiguration']);
  });

  it('refuses keys it does not implement and bad values, naming each path', () => {
    expect(
      issues(`
monitoring:
  nodeFiles: { enabled: true }
  secrets: { enabled: "yes", keys: ["a b"], copyLabels: [x] }
  keystores: { password: { key: p, secret: { namespace: a, name: b, key: c } } }
  webhooks: { kinds: [Ingress] }
  copyLabels: [team, "a/b", "a.b", "bad key"]
`),
    ).toEqual([
      'monitoring.nodeFiles: unknown key (known keys: copyLabels, secrets, configMaps, keystores, kubeconfigs, webhooks)',
      'monitoring.copyLabels[3]: "bad key" is not a Kubernetes label key',
      'monitoring.secrets.copyLabels: unknown key (known keys: enabled, namespaces, labelSelector, keys, excludeTypes)',
      'monitoring.secrets.enabled: must be true or false, got the string "yes"',
      'monitoring.secrets.keys[0]: "a b" is not a key glob (letters, digits, "-", "_", ".", "*", "?")',
      'monitoring.keystores.password: needs exactly one of key (a key of the same Secret) or secret (namespace, name, key)',
      'monitoring.webhooks.kinds[0]: "Ingress" must be one of ValidatingWebhookConfiguration, MutatingWebhookConfiguration, APIService, CustomResourceDefinition',
    ]);
    expect(issues('monitoring: { copyLabels: [a/b, a.b] }')).toEqual([
      'monitoring.copyLabels: "a/b" and "a.b" would both become the metric label label_a_b',
    ]);
    expect(
      loadConfig('monitoring: { copyLabels: [team, app.kubernetes.io/name] }').monitoring.copyLabels,
    ).toEqual([
      { key: 'team', name: 'label_team' },
      { key: 'app.kubernetes.io/name', name: 'label_app_kubernetes_io_name' },
    ]);
  });
});
