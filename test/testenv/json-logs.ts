import type { ChildProcess } from 'node:child_process';

/**
 * Collects a child's JSON-line log from stdout (a line that is not JSON is kept as
 * `{msg, unparsed: true}`) and everything it prints on stdout and stderr, as it arrives.
 */
export function collectJsonLogs(proc: ChildProcess): {
  logs: Array<Record<string, unknown>>;
  output: () => string;
} {
  let raw = '';
  let partial = '';
  const logs: Array<Record<string, unknown>> = [];
  proc.stdout?.setEncoding('utf8');
  proc.stdout?.on('data', (chunk: string) => {
    raw += chunk;
    partial += chunk;
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        logs.push({ msg: line, unparsed: true });
      }
    }
  });
  proc.stderr?.setEncoding('utf8');
  proc.stderr?.on('data', (chunk: string) => {
    raw += chunk;
  });
  return { logs, output: () => raw };
}
