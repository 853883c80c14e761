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

/**
 * Proof that an object found under a computed name is cert-rotator's: it carries
 * `app.kubernetes.io/managed-by: cert-rotator` and `<label>: "true"`, and an owner reference to
 * the managed Secret `owner` (matching its uid). An object of that name that fails the check is
 * somebody else's: the adapter throws an error with `code: 'NOT_OURS'` and leaves it alone.
 */
export interface OwnedBy {
  owner: string;
  label: string;
}

/** `code` of the error the adapter throws for an object that is not cert-rotator's. */
export const NOT_OURS = 'NOT_OURS';

export interface AcmeKube {
  /** With `ownedBy`: a Secret of that name that is not ours throws (code NOT_OURS). */
  readSecret(namespace: string, name: string, ownedBy?: OwnedBy): Promise<StoredSecret | undefined>;
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
    ownedBy?: OwnedBy,
  ): Promise<boolean>;
  /** Deletes; absent is fine; with `ownedBy`, one that is not ours throws and is kept. */
  deleteSecret(namespace: string, name: string, ownedBy?: OwnedBy): Promise<void>;
  /** Replaces leftovers of our own earlier route; someone else's objects of that name throw. */
  createHttp01Route(route: Http01Route): Promise<void>;
  /**
   * Deletes the Service, EndpointSlice and Ingress of a route; absent is fine; an object of that
   * name that is not ours (label + owner reference to Secret `owner`) throws and is kept.
   */
  deleteHttp01Route(namespace: string, name: string, owner: { name: string }): Promise<void>;
}
