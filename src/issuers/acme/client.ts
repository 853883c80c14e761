/**
 * acme-client, wired per issuer: its HTTP goes through an AcmeTransport (own CA bundle, timeouts,
 * no sleeping, counted), badNonce is retried more patiently than the library's default, and the
 * account key comes from a Secret that is created when absent and reused afterwards.
 */
import * as acme from 'acme-client';
import { generateKey, inspectPrivateKey } from '../../pki/index.ts';
import type { AcmeKube } from './ports.ts';
import { type AcmeHttpResponse, AcmeTransport, problemDetail, withAction } from './transport.ts';

/** acme-client internals used here (not in its type definitions): the per-client HTTP and API. */
interface ClientInternals {
  http: {
    request(url: string, method: string, opts?: object): Promise<AcmeHttpResponse>;
    getNonce(): Promise<string>;
    getResourceUrl(resource: string): Promise<string>;
    getDirectory(): Promise<Record<string, unknown>>;
    maxBadNonceRetries: number;
  };
  api: {
    apiRequest(url: string, payload: object | null, validStatusCodes: number[]): Promise<AcmeHttpResponse>;
    getAccountUrl(): string;
    /** newAccount; remembers the account URL from the Location header. */
    createAccount(data: object): Promise<AcmeHttpResponse>;
  };
}

export const ACCOUNT_KEY = 'tls.key';
/** With PEBBLE_WFE_NONCEREJECT=50 the library's 5 retries fail about one issuance in five. */
const BAD_NONCE_RETRIES = 16;

/** An ACME answer that is not what was asked for: the CA's problem document, summarised. */
export class AcmeProblem extends Error {
  readonly status: number;
  readonly problemType: string;
  constructor(action: string, res: AcmeHttpResponse) {
    const detail = problemDetail(res.data) || `HTTP ${res.status}`;
    super(`${action}: ${detail}`);
    this.name = 'AcmeProblem';
    this.status = res.status;
    const t = (res.data as { type?: unknown } | undefined)?.type;
    this.problemType = typeof t === 'string' ? t : '';
  }
}

export interface AcmeConnection {
  client: acme.Client;
  transport: AcmeTransport;
  accountUrl: string;
  /** POST-as-GET (payload null) or POST; throws AcmeProblem unless the status is in `ok`. */
  post(action: string, url: string, payload: object | null, ok?: number[]): Promise<AcmeHttpResponse>;
  /** URL of a directory resource, or undefined when the server does not offer it. */
  resource(name: string): Promise<string | undefined>;
}

export interface ConnectOptions {
  directoryUrl: string;
  email?: string;
  caBundle?: string;
  accountKeySecret: { namespace: string; name: string };
  externalAccountBinding?: { keyId: string; hmacKey: string };
  kube: AcmeKube;
  onRequest?: (action: string, status: string) => void;
  timeoutMs?: number;
}

/** The account key PEM from its Secret; generated and stored when the Secret does not exist. */
export async function loadOrCreateAccountKey(
  kube: AcmeKube,
  ref: { namespace: string; name: string },
  directoryUrl: string,
): Promise<{ keyPem: string; created: boolean }> {
  const where = `ACME account key Secret ${ref.namespace}/${ref.name}`;
  for (let attempt = 0; attempt < 3; attempt++) {
    const existing = await kube.readSecret(ref.namespace, ref.name);
    if (existing) {
      const pem = existing.data[ACCOUNT_KEY];
      if (!pem)
        throw new Error(`${where} has no ${ACCOUNT_KEY}; delete it to have a new account key created`);
      try {
        inspectPrivateKey(pem);
      } catch (err) {
        throw new Error(`${where}: ${ACCOUNT_KEY} is not a usable private key (${(err as Error).message})`);
      }
      return { keyPem: pem, created: false };
    }
    const key = await generateKey('ecdsa-p256');
    const created = await kube.createSecret(
      ref.namespace,
      ref.name,
      { [ACCOUNT_KEY]: key.privateKeyPem },
      {
        labels: { 'app.kubernetes.io/managed-by': 'cert-rotator' },
        annotations: { 'cert-rotator.io/acme-server': directoryUrl },
      },
    );
    if (created) return { keyPem: key.privateKeyPem, created: true };
    // Another replica created it between our read and create: use theirs.
  }
  throw new Error(`${where} could not be read or created`);
}

export async function connect(
  opts: ConnectOptions,
): Promise<AcmeConnection & { accountKeyCreated: boolean }> {
  const { keyPem, created } = await loadOrCreateAccountKey(
    opts.kube,
    opts.accountKeySecret,
    opts.directoryUrl,
  );
  const transport = new AcmeTransport({
    ...(opts.caBundle !== undefined ? { caBundle: opts.caBundle } : {}),
    ...(opts.onRequest ? { onRequest: opts.onRequest } : {}),
    ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
  });
  const client = new acme.Client({
    directoryUrl: opts.directoryUrl,
    accountKey: keyPem,
    ...(opts.externalAccountBinding
      ? {
          externalAccountBinding: {
            kid: opts.externalAccountBinding.keyId,
            hmacKey: opts.externalAccountBinding.hmacKey,
          },
        }
      : {}),
  });
  const internals = client as unknown as ClientInternals;
  const http = internals.http;
  http.request = (url, method, o) => transport.request(url, method, o);
  http.maxBadNonceRetries = BAD_NONCE_RETRIES;
  const fetchNonce = http.getNonce.bind(http);
  http.getNonce = async () => transport.takeNonce() ?? (await withAction('newNonce', fetchNonce));
  try {
    const contact = opts.email ? { contact: [`mailto:${opts.email}`] } : {};
    // Not client.createAccount(): for an existing account (HTTP 200, every restart) it sends an
    // update, which without a contact is empty and refused by strict servers (Pebble -strict).
    const res = await withAction('newAccount', () =>
      internals.api.createAccount({ termsOfServiceAgreed: true, ...contact }),
    );
    if (res.status === 200 && opts.email) {
      await withAction('account', () => client.updateAccount(contact));
    }
  } catch (err) {
    transport.close();
    throw err;
  }
  const accountUrl = internals.api.getAccountUrl();
  return {
    client,
    transport,
    accountUrl,
    accountKeyCreated: created,
    async post(action, url, payload, ok = [200]) {
      const res = await withAction(action, () => internals.api.apiRequest(url, payload, []));
      if (!ok.includes(res.status)) throw new AcmeProblem(action, res);
      return res;
    },
    async resource(name) {
      const dir = await withAction('directory', () => http.getDirectory());
      const url = dir[name];
      return typeof url === 'string' ? url : undefined;
    },
  };
}
