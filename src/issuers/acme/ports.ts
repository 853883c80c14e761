/**
 * What the ACME issuer needs from Kubernetes, injected by the controller's wiring (only
 * `src/kube/` talks to the API). Secrets are passed as decoded text.
 */

export interface StoredSecret {
  resourceVersion: string;
  data: Record<string, string>;
  annotations: Record<string, string>;
}

/** An HTTP-01 challenge route: Service + EndpointSlice + Ingress in the managed Secret's namespace. */
export interface Http01Route {
  namespace: string;
  /** Name shared by the Service and Ingress (and prefix of the EndpointSlice). */
  name: string;
  /** The managed Secret: it owns the objects, so deleting it removes them too. */
  owner: { name: string };
  /** Host name + token path per challenge. */
  paths: Array<{ host: string; path: string }>;
  /** Where the controller's solver listens (this pod's IP and the listener's port). */
  target: { ip: string; port: number };
  ingressClassName?: string;
  ingressAnnotations?: Record<string, string>;
}

export interface AcmeKube {
  readSecret(namespace: string, name: string): Promise<StoredSecret | undefined>;
  /**
   * Creates an Opaque Secret; false when one of that name already exists (someone was faster).
   * `owner` names a Secret in the same namespace that owns it (garbage-collected with it).
   */
  createSecret(
    namespace: string,
    name: string,
    data: Record<string, string>,
    opts?: { owner?: string; labels?: Record<string, string>; annotations?: Record<string, string> },
  ): Promise<boolean>;
  /** Replaces data and annotations, guarded by resourceVersion; false on a conflict. */
  updateSecret(
    namespace: string,
    name: string,
    resourceVersion: string,
    data: Record<string, string>,
    annotations?: Record<string, string>,
  ): Promise<boolean>;
  /** Deletes; absent is fine. */
  deleteSecret(namespace: string, name: string): Promise<void>;
  createHttp01Route(route: Http01Route): Promise<void>;
  /** Deletes the Service, EndpointSlice and Ingress of a route; absent is fine. */
  deleteHttp01Route(namespace: string, name: string): Promise<void>;
}
