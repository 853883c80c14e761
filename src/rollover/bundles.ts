/**
 * An issuer's trust bundles: its trust set written to a ConfigMap key in listed and
 * label-selected namespaces, and to a ClusterTrustBundle where the cluster serves them. Like
 * the other trust outputs (outputs.ts), `spread` returns how many outputs do not hold the trust
 * set yet, so Trust and Retire move on only when every bundle does.
 *
 * What holds a phase and what does not:
 * - a write that fails (403, 422, a namespace being deleted) counts as not done: the phase waits,
 *   and a Warning event (once per problem) says which output and why;
 * - a listed namespace that does not exist, and a ClusterTrustBundle API the cluster does not
 *   serve, have no readers: they are skipped with a Warning (once), so Trust cannot hang on them;
 * - a namespace that stops matching the selector keeps its ConfigMap as it was, no longer
 *   updated (logged once); deleting it would break the pods that mount it.
 */
import type * as k8s from '@kubernetes/client-node';
import type { Clock } from '../clock.ts';
import { labelSelectorQuery } from '../config/label-selector.ts';
import type { TrustBundleConfig } from '../config/schema.ts';
import { describeApiError, httpStatus, type KubeClients } from '../kube/client.ts';
import { ClusterTrustBundleApi, type CtbVersion } from '../kube/ctb-api.ts';
import { FIELD_MANAGER, TrustBundleLabel } from '../names.ts';
import type { Logger } from '../observability/logger.ts';

/** How long a discovery answer (served CTB version, or none) is used before asking again. */
const DISCOVERY_TTL_MS = 5 * 60_000;

export interface TrustBundleWriterDeps {
  issuer: string;
  bundles: readonly TrustBundleConfig[];
  clients: Pick<KubeClients, 'core' | 'transport'>;
  log: Logger;
  clock: Pick<Clock, 'now'>;
  /** A Warning event on the CA Secret (TrustBundleUnavailable). */
  warn(message: string): Promise<void>;
}

export class TrustBundleWriter {
  readonly #d: TrustBundleWriterDeps;
  readonly #ctb: ClusterTrustBundleApi;
  #discovered: { version: CtbVersion | undefined; at: number } | undefined;
  /** Problems already reported (one Warning each until the output works again). */
  readonly #reported = new Set<string>();
  /** Per bundle, the namespaces written at the last look (to say when one drops out). */
  readonly #lastNamespaces = new Map<TrustBundleConfig, Set<string>>();

  constructor(deps: TrustBundleWriterDeps) {
    this.#d = deps;
    this.#ctb = new ClusterTrustBundleApi(deps.clients.transport);
  }

  get labels(): Record<string, string> {
    return { [TrustBundleLabel.issuer]: this.#d.issuer, [TrustBundleLabel.managedBy]: FIELD_MANAGER };
  }

  async #problem(output: string, message: string): Promise<void> {
    const key = `${output}\n${message}`;
    if (this.#reported.has(key)) return;
    for (const k of this.#reported) if (k.startsWith(`${output}\n`)) this.#reported.delete(k);
    this.#reported.add(key);
    await this.#d.warn(message);
  }

  #fine(output: string): void {
    for (const k of this.#reported) if (k.startsWith(`${output}\n`)) this.#reported.delete(k);
  }

  /** Writes `trust` to every bundle of the issuer; resolves with how many do not hold it yet. */
  async spread(trust: string): Promise<number> {
    let left = 0;
    for (const bundle of this.#d.bundles) {
      if (bundle.configMap) left += await this.#configMaps(bundle, bundle.configMap, trust);
      if (bundle.clusterTrustBundle) left += await this.#clusterTrustBundle(bundle.clusterTrustBundle, trust);
    }
    return left;
  }

  /** Listed namespaces plus those the selector matches now; undefined when they cannot be listed. */
  async #namespaces(
    bundle: TrustBundleConfig,
  ): Promise<{ names: Set<string>; selected: Set<string> } | undefined> {
    const selected = new Set<string>();
    if (bundle.namespaceSelector) {
      const labelSelector = labelSelectorQuery(bundle.namespaceSelector);
      const output = `namespaces ${labelSelector}`;
      try {
        const list = await this.#d.clients.core.listNamespace(labelSelector ? { labelSelector } : {});
        for (const ns of list.items) {
          // A namespace being deleted refuses new objects: it has no future readers.
          if (ns.metadata?.deletionTimestamp) continue;
          if (ns.metadata?.name) selected.add(ns.metadata.name);
        }
        this.#fine(output);
      } catch (err) {
        await this.#problem(
          output,
          `trust bundle of issuer "${this.#d.issuer}": cannot list the namespaces matching "${labelSelector}" (${describeApiError(err)}); the phase waits`,
        );
        return undefined;
      }
    }
    return { names: new Set([...bundle.namespaces, ...selected]), selected };
  }

  async #configMaps(
    bundle: TrustBundleConfig,
    cm: NonNullable<TrustBundleConfig['configMap']>,
    trust: string,
  ): Promise<number> {
    const found = await this.#namespaces(bundle);
    if (!found) return 1;
    const previous = this.#lastNamespaces.get(bundle);
    for (const ns of previous ?? []) {
      if (!found.names.has(ns)) {
        this.#d.log.info(
          { issuer: this.#d.issuer, namespace: ns, configMap: cm.name },
          'namespace no longer selected for the trust bundle: its ConfigMap is left as it is and no longer updated',
        );
      }
    }
    this.#lastNamespaces.set(bundle, found.names);
    let left = 0;
    for (const namespace of found.names) {
      const output = `ConfigMap ${namespace}/${cm.name}`;
      try {
        if (await this.#configMap(namespace, cm, trust)) this.#fine(output);
        else left++;
      } catch (err) {
        if (httpStatus(err) === 404 && !found.selected.has(namespace)) {
          await this.#problem(
            output,
            `trust bundle ${output} of issuer "${this.#d.issuer}" not written: namespace ${namespace} does not exist (skipped until it does)`,
          );
          continue;
        }
        left++;
        await this.#problem(
          output,
          `trust bundle ${output} of issuer "${this.#d.issuer}" cannot be written (${describeApiError(err)}); the phase waits for it`,
        );
      }
    }
    return left;
  }

  /** True when the ConfigMap held the trust set already; false after writing it (or a conflict). */
  async #configMap(
    namespace: string,
    cm: NonNullable<TrustBundleConfig['configMap']>,
    trust: string,
  ): Promise<boolean> {
    let current: k8s.V1ConfigMap | undefined;
    try {
      current = await this.#d.clients.core.readNamespacedConfigMap({ namespace, name: cm.name });
    } catch (err) {
      if (httpStatus(err) !== 404) throw err;
    }
    if (current?.data?.[cm.key] === trust) return true;
    try {
      if (current === undefined) {
        await this.#d.clients.core.createNamespacedConfigMap({
          namespace,
          body: { metadata: { name: cm.name, labels: this.labels }, data: { [cm.key]: trust } },
          fieldManager: FIELD_MANAGER,
        });
      } else {
        await this.#d.clients.core.replaceNamespacedConfigMap({
          namespace,
          name: cm.name,
          body: {
            ...current,
            metadata: { ...current.metadata, managedFields: undefined },
            data: { ...current.data, [cm.key]: trust },
          },
          fieldManager: FIELD_MANAGER,
        });
      }
    } catch (err) {
      if (httpStatus(err) !== 409) throw err;
    }
    return false;
  }

  async #servedVersion(): Promise<CtbVersion | undefined> {
    const now = this.#d.clock.now();
    if (this.#discovered === undefined || now - this.#discovered.at >= DISCOVERY_TTL_MS) {
      this.#discovered = { version: await this.#ctb.servedVersion(), at: now };
    }
    return this.#discovered.version;
  }

  async #clusterTrustBundle(
    ctb: NonNullable<TrustBundleConfig['clusterTrustBundle']>,
    trust: string,
  ): Promise<number> {
    const output = `ClusterTrustBundle ${ctb.name}`;
    try {
      const version = await this.#servedVersion();
      if (version === undefined) {
        await this.#problem(
          output,
          `${output} of issuer "${this.#d.issuer}" not written: this API server serves no ClusterTrustBundles (certificates.k8s.io v1 or v1beta1; in 1.36 enable the ClusterTrustBundle feature gate and --runtime-config=certificates.k8s.io/v1beta1/clustertrustbundles=true). Skipped; looked for again every 5 minutes`,
        );
        return 0;
      }
      const current = await this.#ctb.get(version, ctb.name);
      if (current?.spec?.trustBundle === trust && current.spec.signerName === ctb.signerName) {
        this.#fine(output);
        return 0;
      }
      const spec = { ...(ctb.signerName ? { signerName: ctb.signerName } : {}), trustBundle: trust };
      try {
        if (current === undefined) {
          await this.#ctb.write(version, { metadata: { name: ctb.name, labels: this.labels }, spec }, true);
        } else {
          const { managedFields: _drop, ...metadata } = current.metadata ?? {};
          await this.#ctb.write(version, { metadata, spec }, false);
        }
        this.#d.log.info(
          { issuer: this.#d.issuer, clusterTrustBundle: ctb.name, version },
          'trust bundle written',
        );
      } catch (err) {
        if (httpStatus(err) !== 409) throw err;
      }
      return 1;
    } catch (err) {
      const hint =
        httpStatus(err) === 403 && ctb.signerName
          ? ` (linking to signer ${ctb.signerName} needs the "attest" verb on certificates.k8s.io signers named ${ctb.signerName})`
          : '';
      await this.#problem(
        output,
        `${output} of issuer "${this.#d.issuer}" cannot be written: ${err instanceof Error ? err.message : String(err)}${hint}; the phase waits for it`,
      );
      return 1;
    }
  }
}
