/**
 * The sidecar's logger: one JSON object per line on stdout, the same shape as the controller's
 * pino lines (`level`, `time`, `component`, `msg`, fields). Hand-written because pino costs
 * ~8 MiB of RSS in a process that runs in every pod. Callers never pass key material or Secret
 * data; `err` fields are reduced to message and code.
 */

const LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50 } as const;
export type LogLevel = keyof typeof LEVELS;

export function isLogLevel(s: string): s is LogLevel {
  return Object.hasOwn(LEVELS, s);
}

export interface SidecarLogger {
  debug(fields: Record<string, unknown>, msg: string): void;
  info(fields: Record<string, unknown>, msg: string): void;
  warn(fields: Record<string, unknown>, msg: string): void;
  error(fields: Record<string, unknown>, msg: string): void;
}

function errorFields(err: unknown): Record<string, unknown> {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return { message: err.message, ...(code !== undefined ? { code } : {}) };
  }
  return { message: String(err) };
}

export function createSidecarLogger(
  level: LogLevel = 'info',
  write: (line: string) => void = (l) => process.stdout.write(l),
): SidecarLogger {
  const min = LEVELS[level];
  const emit = (lvl: LogLevel, fields: Record<string, unknown>, msg: string) => {
    if (LEVELS[lvl] < min) return;
    const out: Record<string, unknown> = {
      level: lvl,
      time: new Date().toISOString(),
      component: 'cert-rotator-sidecar',
      msg,
    };
    for (const [k, v] of Object.entries(fields)) out[k] = k === 'err' ? errorFields(v) : v;
    write(`${JSON.stringify(out)}\n`);
  };
  return {
    debug: (f, m) => emit('debug', f, m),
    info: (f, m) => emit('info', f, m),
    warn: (f, m) => emit('warn', f, m),
    error: (f, m) => emit('error', f, m),
  };
}
