import type { TestProject } from 'vitest/node';
import { startTestEnv, type TestEnvInfo } from './env.ts';
import { isAlive } from './processes.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    testEnv: TestEnvInfo;
  }
}

/** One shared set of peers for the integration project; every file works in its own namespace. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const env = await startTestEnv();
  const ms = env.info.startupMs;
  process.stdout.write(
    `[testenv] control plane ready in ${ms.controlPlane} ms, pebble in ${ms.pebble} ms, bind in ${ms.bind} ms; logs in ${env.info.runDir}\n`,
  );
  project.provide('testEnv', env.info);
  return async () => {
    await env.stop();
    const left = Object.entries(env.info.pids).filter(([, pid]) => isAlive(pid));
    if (left.length > 0) throw new Error(`test peers still running after teardown: ${JSON.stringify(left)}`);
  };
}
