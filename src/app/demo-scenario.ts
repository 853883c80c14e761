import type { Config } from '../config/schema.ts';
import type { KubeClients } from '../kube/client.ts';
import { Annotation, PodTemplateAnnotation, SecretKey, StatusAnnotation, TLS_SECRET_TYPE } from '../names.ts';
import { certificatesFromPem, generateKey, issueCertificate, readCertificateSummary } from '../pki/index.ts';
import { rowFromSecret } from './scan-rows.ts';

/** What the demo creates in its cluster, by name: shown to the user, used by the view. */
export const DEMO = {
  namespace: 'cert-rotator-demo',
  caSecret: 'demo-ca',
  issuer: 'demo-ca',
  secret: 'web-tls',
  deployment: 'web',
  /** Lifetime of the hand-made first certificate: it expires while the user watches. */
  firstLifetimeMs: 2 * 60_000,
  /**
   * The Secret's renew-before: the first certificate is due 20 s after it is made, so the
   * rotation happens live without a long wait; the renewed one (24h) is due in ~24h.
   */
  renewBefore: '100s',
  /** Lifetime the controller requests for the renewal (issued certificates are at least 1h). */
  renewedDuration: '24h',
  dnsName: 'web.cert-rotator-demo.svc',
  /** Replicas of the Deployment: on a node, each pod's served certificate is shown. */
  replicas: 2,
} as const;

/** The controller's config for the demo: one CA issuer, the demo namespace, no leader election. */
export function demoConfigYaml(): string {
  return [
    `namespaces: [${DEMO.namespace}]`,
    'leaderElection: { enabled: false }',
    'rollout: { debounce: "1s" }',
    `defaults: { issuer: ${DEMO.issuer} }`,
    'issuers:',
    `  - name: ${DEMO.issuer}`,
    `    ca: { secret: { namespace: ${DEMO.namespace}, name: ${DEMO.caSecret} } }`,
    '',
  ].join('\n');
}

const b64 = (text: string) => Buffer.from(text, 'utf8').toString('base64');

export interface DemoObjects {
  firstSerial: string;
  firstNotAfter: number;
}

/**
 * The namespace, the CA issuer's Secret, the Secret whose certificate expires in two minutes (made
 * here, signed by the CA: the controller itself only issues certificates of an hour or more), and a
 * Deployment that mounts it.
 */
export async function createDemoObjects(
  clients: KubeClients,
  now = Date.now(),
  /** On a node: the image whose pods serve the mounted Secret over TLS (testbox tls-serve). */
  server?: { image: string; port: number },
): Promise<DemoObjects> {
  const { namespace } = DEMO;
  await clients.core.createNamespace({ body: { metadata: { name: namespace } } });

  const caKey = await generateKey('ecdsa-p256');
  const ca = await issueCertificate({
    subjectKeyPem: caKey.privateKeyPem,
    identity: { commonName: 'cert-rotator demo CA', dnsNames: [], ipAddresses: [], uris: [] },
    notBefore: now - 60_000,
    notAfter: now + 365 * 86_400_000,
    issuer: 'self',
    isCA: true,
  });
  await clients.core.createNamespacedSecret({
    namespace,
    body: {
      metadata: { name: DEMO.caSecret },
      type: TLS_SECRET_TYPE,
      data: { [SecretKey.certificate]: b64(ca.certPem), [SecretKey.privateKey]: b64(caKey.privateKeyPem) },
    },
  });

  const key = await generateKey('ecdsa-p256');
  const leaf = await issueCertificate({
    subjectKeyPem: key.privateKeyPem,
    identity: { commonName: DEMO.dnsName, dnsNames: [DEMO.dnsName], ipAddresses: [], uris: [] },
    notBefore: now - 1_000,
    notAfter: now + DEMO.firstLifetimeMs,
    issuer: { certPem: ca.certPem, keyPem: caKey.privateKeyPem },
  });
  await clients.core.createNamespacedSecret({
    namespace,
    body: {
      metadata: {
        name: DEMO.secret,
        annotations: {
          [Annotation.enabled]: 'true',
          [Annotation.issuer]: DEMO.issuer,
          [Annotation.renewBefore]: DEMO.renewBefore,
          [Annotation.duration]: DEMO.renewedDuration,
        },
      },
      type: TLS_SECRET_TYPE,
      data: {
        [SecretKey.certificate]: b64(leaf.chainPem),
        [SecretKey.privateKey]: b64(key.privateKeyPem),
        [SecretKey.caCertificate]: b64(ca.caPem),
      },
    },
  });

  await clients.apps.createNamespacedDeployment({
    namespace,
    body: {
      metadata: { name: DEMO.deployment },
      spec: {
        replicas: DEMO.replicas,
        selector: { matchLabels: { app: DEMO.deployment } },
        template: {
          metadata: { labels: { app: DEMO.deployment } },
          spec: {
            ...(server
              ? // No cluster DNS on the demo node: the pods need no name lookups.
                {
                  terminationGracePeriodSeconds: 1,
                  automountServiceAccountToken: false,
                  dnsPolicy: 'Default',
                }
              : {}),
            containers: [
              server
                ? {
                    name: 'web',
                    image: server.image,
                    imagePullPolicy: 'Never',
                    args: ['tls-serve', String(server.port), '/etc/tls'],
                    ports: [{ containerPort: server.port }],
                    readinessProbe: { tcpSocket: { port: server.port }, periodSeconds: 1 },
                    securityContext: {
                      runAsNonRoot: true,
                      runAsUser: 65532,
                      allowPrivilegeEscalation: false,
                      readOnlyRootFilesystem: true,
                      capabilities: { drop: ['ALL'] },
                    },
                    volumeMounts: [{ name: 'tls', mountPath: '/etc/tls', readOnly: true }],
                  }
                : {
                    name: 'web',
                    image: 'registry.k8s.io/pause:3.10',
                    volumeMounts: [{ name: 'tls', mountPath: '/etc/tls', readOnly: true }],
                  },
            ],
            volumes: [{ name: 'tls', secret: { secretName: DEMO.secret } }],
          },
        },
      },
    },
  });
  const summary = readCertificateSummary(certificatesFromPem(leaf.certPem)[0] as Uint8Array);
  return { firstSerial: summary.serialHex, firstNotAfter: summary.notAfter };
}

export interface CertView {
  serial: string;
  notAfter: number;
  state: string;
  revision: string;
  renewalTime?: number;
  lastError?: string;
}

export interface ReplicaSetView {
  name: string;
  created: number;
  /** The pod template's certificate-hash annotation: set once cert-rotator rolled the Deployment. */
  certificateHash?: string;
}

export interface EventView {
  uid: string;
  time: number;
  type: string;
  reason: string;
  object: string;
  message: string;
}

export interface Snapshot {
  cert?: CertView;
  certProblem?: string;
  replicaSets: ReplicaSetView[];
  events: EventView[];
}

/** Everything the demo shows, read fresh from the API server. */
export async function observe(clients: KubeClients, config: Config): Promise<Snapshot> {
  const { namespace } = DEMO;
  const [secret, rsList, eventList] = await Promise.all([
    clients.core.readNamespacedSecret({ namespace, name: DEMO.secret }),
    clients.apps.listNamespacedReplicaSet({ namespace, labelSelector: `app=${DEMO.deployment}` }),
    clients.core.listNamespacedEvent({ namespace }),
  ]);
  const snapshot: Snapshot = { replicaSets: [], events: [] };
  const annotations = secret.metadata?.annotations ?? {};
  try {
    const pem = Buffer.from(secret.data?.[SecretKey.certificate] ?? '', 'base64').toString('latin1');
    const s = readCertificateSummary(certificatesFromPem(pem)[0] as Uint8Array);
    // The renewal time as the controller decides it (its evaluate(), fed with the demo's config).
    const row = rowFromSecret(secret, config, true, Date.now());
    const renewal = Date.parse(row.renewalTime ?? annotations[StatusAnnotation.renewalTime] ?? '');
    snapshot.cert = {
      serial: s.serialHex,
      notAfter: s.notAfter,
      state: annotations[StatusAnnotation.state] ?? '-',
      revision: annotations[StatusAnnotation.revision] ?? '-',
      ...(Number.isFinite(renewal) ? { renewalTime: renewal } : {}),
      ...(annotations[StatusAnnotation.lastError]
        ? { lastError: annotations[StatusAnnotation.lastError] }
        : {}),
    };
  } catch (err) {
    snapshot.certProblem = err instanceof Error ? err.message : String(err);
  }
  for (const rs of rsList.items) {
    const hash = rs.spec?.template?.metadata?.annotations?.[PodTemplateAnnotation.certificateHash];
    snapshot.replicaSets.push({
      name: rs.metadata?.name ?? '',
      created: rs.metadata?.creationTimestamp ? new Date(rs.metadata.creationTimestamp).getTime() : 0,
      ...(hash ? { certificateHash: hash } : {}),
    });
  }
  snapshot.replicaSets.sort((a, b) => a.created - b.created || a.name.localeCompare(b.name));
  for (const e of eventList.items) {
    const when = e.lastTimestamp ?? e.eventTime ?? e.firstTimestamp ?? e.metadata?.creationTimestamp;
    snapshot.events.push({
      uid: `${e.metadata?.uid ?? ''}/${e.count ?? 1}`,
      time: when ? new Date(when).getTime() : 0,
      type: e.type ?? '',
      reason: e.reason ?? '',
      object: `${e.involvedObject?.kind ?? ''}/${e.involvedObject?.name ?? ''}`,
      message: (e.message ?? '').replace(/\s+/g, ' ').trim(),
    });
  }
  snapshot.events.sort((a, b) => a.time - b.time);
  return snapshot;
}
