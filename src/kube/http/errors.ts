/**
 * A non-2xx answer of the API server. Shaped like client-node's ApiException (numeric `code`,
 * the response text as `body`, the response headers) so `httpStatus` and `describeApiError`
 * treat both alike.
 */
export class KubeApiError extends Error {
  readonly code: number;
  /** The response body as text (a metav1.Status JSON document for most errors). */
  readonly body: string;
  readonly headers: Record<string, string>;

  constructor(code: number, method: string, path: string, body: string, headers: Record<string, string>) {
    super(`HTTP ${code} for ${method} ${path}${statusMessage(body)}`);
    this.name = 'KubeApiError';
    this.code = code;
    this.body = body;
    this.headers = headers;
  }
}

function statusMessage(body: string): string {
  try {
    const parsed = JSON.parse(body) as { message?: unknown };
    return typeof parsed.message === 'string' ? `: ${parsed.message}` : '';
  } catch {
    return '';
  }
}
