/**
 * The `[host]:port` form of every listen address cert-rotator takes (metrics, HTTP-01):
 * `:9402`, `127.0.0.1:9402`, `[::1]:9402`, `host.example:80`. One grammar for the config
 * checks and for the listeners, so what the config accepts is exactly what can be bound.
 */
/** parseListenAddress for a listener: an address that does not parse is a clear error. */
export function requireListenAddress(address: string): { host: string | undefined; port: number } {
  const parsed = parseListenAddress(address);
  if (!parsed) throw new Error(`invalid listen address "${address}": expected [host]:port`);
  return parsed;
}

export function parseListenAddress(address: string): { host: string | undefined; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]*)):(\d{1,5})$/.exec(address);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  const host = m[1] ?? m[2] ?? '';
  // An empty host means every interface.
  return { host: host === '' ? undefined : host, port };
}
