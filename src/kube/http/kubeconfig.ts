import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { delimiter, dirname, isAbsolute, join } from 'node:path';
import { type AppliedAuth, type Auth, basicAuth, noAuth, staticToken, TokenFileAuth } from './auth.ts';
import { inClusterAvailable, inClusterTransport } from './in-cluster.ts';
import { type Endpoint, HttpTransport, type TransportOptions } from './transport.ts';

interface Named<T> {
  name?: string;
  cluster?: T;
  user?: T;
  context?: T;
}
type Dict = Record<string, unknown>;

interface KubeconfigFile {
  path: string;
  doc: Dict;
}

/** One kubeconfig document from a file: JSON, or YAML (the YAML parser loads only then). */
function readKubeconfig(path: string): KubeconfigFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read kubeconfig ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    try {
      const yaml = createRequire(import.meta.url)('yaml') as typeof import('yaml');
      doc = yaml.parse(text);
    } catch (err) {
      throw new Error(`kubeconfig ${path} is neither JSON nor YAML: ${(err as Error).message}`);
    }
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc))
    throw new Error(`kubeconfig ${path} is not a mapping`);
  return { path, doc: doc as Dict };
}

function list(doc: Dict, key: string): Named<Dict>[] {
  const v = doc[key];
  return Array.isArray(v) ? (v.filter((x) => x && typeof x === 'object') as Named<Dict>[]) : [];
}

function str(o: Dict | undefined, key: string): string | undefined {
  const v = o?.[key];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/**
 * Finds `name` in the files' `key` lists, first file wins (client-go's merge rule), and remembers
 * which file it came from so relative paths resolve against that file's directory.
 */
function find(files: KubeconfigFile[], key: string, name: string, field: 'cluster' | 'user' | 'context') {
  for (const f of files) {
    const entry = list(f.doc, key).find((e) => e.name === name);
    if (entry) return { value: (entry[field] ?? {}) as Dict, file: f.path };
  }
  return undefined;
}

function fileOrData(
  o: Dict,
  fileKey: string,
  dataKey: string,
  base: string,
  what: string,
): Buffer | undefined {
  const data = str(o, dataKey);
  if (data) return Buffer.from(data, 'base64');
  const file = str(o, fileKey);
  if (!file) return undefined;
  const p = isAbsolute(file) ? file : join(dirname(base), file);
  try {
    return readFileSync(p);
  } catch (err) {
    throw new Error(`cannot read ${what} ${p}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

/**
 * The kubeconfig paths in effect: `path`, else every file in $KUBECONFIG (merged), else
 * ~/.kube/config. Empty when none of them exists (then the in-cluster account applies).
 */
export function kubeconfigPaths(path?: string, env: NodeJS.ProcessEnv = process.env): string[] {
  if (path) return [path];
  if (env.KUBECONFIG) return env.KUBECONFIG.split(delimiter).filter((p) => p !== '');
  const home = join(env.HOME ?? homedir(), '.kube', 'config');
  try {
    readFileSync(home);
    return [home];
  } catch {
    return [];
  }
}

export interface KubeconfigOptions extends TransportOptions {
  /** Use this context instead of `current-context`. */
  context?: string;
}

/** Endpoint of the current (or the named) context of one or more kubeconfig files. */
export function kubeconfigEndpoint(paths: string[], options: KubeconfigOptions = {}): Endpoint {
  const files: KubeconfigFile[] = [];
  for (const p of paths) {
    try {
      files.push(readKubeconfig(p));
    } catch (err) {
      // $KUBECONFIG may list files that do not exist (client-go skips them); an explicit path must exist.
      if (paths.length === 1) throw err;
    }
  }
  if (files.length === 0) throw new Error(`none of the kubeconfig files exists: ${paths.join(', ')}`);
  const where = paths.join(delimiter);
  const contextName = options.context ?? files.map((f) => str(f.doc, 'current-context')).find(Boolean);
  if (!contextName) throw new Error(`kubeconfig ${where} has no current-context`);
  const ctx = find(files, 'contexts', contextName, 'context');
  if (!ctx) throw new Error(`kubeconfig ${where}: context "${contextName}" not found`);
  const clusterName = str(ctx.value, 'cluster');
  const cluster = clusterName ? find(files, 'clusters', clusterName, 'cluster') : undefined;
  if (!cluster)
    throw new Error(
      `kubeconfig ${where}: cluster "${clusterName ?? ''}" of context "${contextName}" not found`,
    );
  const server = str(cluster.value, 'server');
  if (!server) throw new Error(`kubeconfig ${where}: cluster "${clusterName}" has no server`);
  if (str(cluster.value, 'proxy-url')) {
    throw new Error(
      `kubeconfig ${where}: cluster "${clusterName}" sets proxy-url, which cert-rotator does not support`,
    );
  }
  const userName = str(ctx.value, 'user');
  const found = userName ? find(files, 'users', userName, 'user') : undefined;
  if (userName && !found)
    throw new Error(`kubeconfig ${where}: user "${userName}" of context "${contextName}" not found`);
  const user = found?.value ?? {};
  const userFile = found?.file ?? cluster.file;
  const source = `kubeconfig ${where} (context ${contextName})`;

  let auth: Auth = noAuth;
  if (user.exec || user['auth-provider']) {
    auth = new ClientNodeAuth(paths, contextName, user.exec ? 'exec' : 'auth-provider');
  } else if (str(user, 'token')) {
    auth = staticToken(str(user, 'token') as string);
  } else if (str(user, 'tokenFile')) {
    const tf = str(user, 'tokenFile') as string;
    auth = new TokenFileAuth(isAbsolute(tf) ? tf : join(dirname(userFile), tf));
  } else if (str(user, 'username')) {
    auth = basicAuth(str(user, 'username') as string, str(user, 'password') ?? '');
  }
  const ca = fileOrData(
    cluster.value,
    'certificate-authority',
    'certificate-authority-data',
    cluster.file,
    'cluster CA',
  );
  const cert = fileOrData(
    user,
    'client-certificate',
    'client-certificate-data',
    userFile,
    'client certificate',
  );
  const key = fileOrData(user, 'client-key', 'client-key-data', userFile, 'client key');
  if (Boolean(cert) !== Boolean(key)) {
    throw new Error(
      `kubeconfig ${where}: user "${userName}" has a client certificate without a key or a key without a certificate`,
    );
  }
  const tlsServerName = str(cluster.value, 'tls-server-name');
  const namespace = str(ctx.value, 'namespace');
  return {
    server: server.replace(/\/+$/, ''),
    ...(ca ? { ca } : {}),
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
    ...(cluster.value['insecure-skip-tls-verify'] === true ? { insecureSkipTLSVerify: true } : {}),
    ...(tlsServerName ? { tlsServerName } : {}),
    ...(namespace ? { namespace } : {}),
    auth,
    source,
  };
}

/** A transport for one kubeconfig file (or, without `path`, $KUBECONFIG / ~/.kube/config). */
export function transportFromKubeconfig(path?: string, options: KubeconfigOptions = {}): HttpTransport {
  const paths = kubeconfigPaths(path);
  if (paths.length === 0) throw new Error('no kubeconfig: pass --kubeconfig or set KUBECONFIG');
  return new HttpTransport(kubeconfigEndpoint(paths, options), options);
}

/**
 * client-go's loading order: the kubeconfig `path`, else $KUBECONFIG, else ~/.kube/config, else
 * the pod's ServiceAccount. On the in-cluster path no kubeconfig code or YAML parser loads.
 */
export function defaultTransport(path?: string, options: KubeconfigOptions = {}): HttpTransport {
  const paths = kubeconfigPaths(path);
  if (paths.length > 0) return new HttpTransport(kubeconfigEndpoint(paths, options), options);
  if (inClusterAvailable()) return inClusterTransport(options);
  throw new Error('no Kubernetes cluster configured: pass --kubeconfig, set KUBECONFIG, or run in a pod');
}

type ClientNode = typeof import('@kubernetes/client-node');

/**
 * Loads @kubernetes/client-node for an `exec` or `auth-provider` user. It is an optional
 * dependency: `npm install` brings it, the container image leaves it out (a pod authenticates
 * with its ServiceAccount and never needs it), so its absence is an error that says so.
 * `load` is the import itself, replaceable in tests.
 */
export async function importClientNode(
  kind: string,
  load: () => Promise<ClientNode> = () => import('@kubernetes/client-node'),
): Promise<ClientNode> {
  try {
    return await load();
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (
      code !== 'ERR_MODULE_NOT_FOUND' ||
      !String((err as Error).message).includes("'@kubernetes/client-node'")
    )
      throw err;
    throw new Error(
      `this kubeconfig's user authenticates with ${kind === 'exec' ? 'an exec credential plugin' : 'an auth-provider'}, which needs the optional package @kubernetes/client-node, and it is not installed here (the container image leaves it out: in a pod cert-rotator uses the ServiceAccount token). Use a kubeconfig with a token or client certificate, or run cert-rotator from an npm install that includes optional dependencies`,
    );
  }
}

/**
 * `exec` credential plugins and `auth-provider`s, delegated to @kubernetes/client-node, which
 * implements all of them; it is loaded on the first request, only by users who configure one.
 */
class ClientNodeAuth implements Auth {
  readonly kind: string;
  private readonly paths: string[];
  private readonly context: string;
  private kc: Promise<InstanceType<ClientNode['KubeConfig']>> | undefined;

  constructor(paths: string[], context: string, kind: string) {
    this.paths = paths;
    this.context = context;
    this.kind = kind;
  }

  private load() {
    this.kc ??= importClientNode(this.kind).then((k8s) => {
      const kc = new k8s.KubeConfig();
      if (this.paths.length === 1) kc.loadFromFile(this.paths[0] as string);
      else kc.loadFromDefault();
      kc.setCurrentContext(this.context);
      return kc;
    });
    return this.kc;
  }

  async apply(): Promise<AppliedAuth> {
    const kc = await this.load();
    const opts: { headers?: Record<string, string>; cert?: string | Buffer; key?: string | Buffer } = {};
    await kc.applyToHTTPSOptions(opts);
    const authorization = opts.headers?.Authorization ?? opts.headers?.authorization;
    const out: AppliedAuth = {};
    if (authorization) out.authorization = authorization;
    // Only a plugin's certificate; the kubeconfig's own is already on the endpoint.
    const user = kc.getCurrentUser();
    if (opts.cert && !user?.certData && !user?.certFile) {
      out.cert = opts.cert;
      if (opts.key) out.key = opts.key;
    }
    return out;
  }
}
