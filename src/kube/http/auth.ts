import { readFile } from 'node:fs/promises';

/** What one request carries to authenticate, beyond the endpoint's static TLS settings. */
export interface AppliedAuth {
  /** Value of the Authorization header, if any. */
  authorization?: string;
  /** A client certificate and key that only became known at request time (exec plugins). */
  cert?: string | Buffer;
  key?: string | Buffer;
}

export interface Auth {
  apply(): Promise<AppliedAuth>;
  /**
   * The API server answered 401: forget cached credentials. True when a fresh attempt could
   * succeed (a token file that may have rotated), so the request is retried once.
   */
  invalidate?(): boolean;
  readonly kind: string;
}

export const noAuth: Auth = { kind: 'none', apply: async () => ({}) };

export function staticToken(token: string): Auth {
  const authorization = `Bearer ${token}`;
  return { kind: 'token', apply: async () => ({ authorization }) };
}

export function basicAuth(username: string, password: string): Auth {
  const authorization = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  return { kind: 'basic', apply: async () => ({ authorization }) };
}

/**
 * A bearer token read from a file and read again when it may have changed: at most
 * `refreshMs` after the last read (client-go re-reads a projected ServiceAccount token every
 * minute; the kubelet replaces it well before it expires), and at once after a 401.
 */
export class TokenFileAuth implements Auth {
  readonly kind = 'token-file';
  private readonly path: string;
  private readonly refreshMs: number;
  private readonly now: () => number;
  private token: string | undefined;
  private readAt = 0;
  private pending: Promise<string> | undefined;

  constructor(path: string, refreshMs = 60_000, now: () => number = Date.now) {
    this.path = path;
    this.refreshMs = refreshMs;
    this.now = now;
  }

  async apply(): Promise<AppliedAuth> {
    return { authorization: `Bearer ${await this.current()}` };
  }

  invalidate(): boolean {
    this.token = undefined;
    return true;
  }

  private async current(): Promise<string> {
    if (this.token !== undefined && this.now() - this.readAt < this.refreshMs) return this.token;
    this.pending ??= this.read().finally(() => {
      this.pending = undefined;
    });
    return await this.pending;
  }

  private async read(): Promise<string> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      throw new Error(
        `cannot read the API token file ${this.path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      );
    }
    const token = text.trim();
    if (!token) throw new Error(`the API token file ${this.path} is empty`);
    this.token = token;
    this.readAt = this.now();
    return token;
  }
}
