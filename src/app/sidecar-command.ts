import { parseSidecarArgs, sidecarHelp } from '../sidecar/options.ts';
import { startSidecar } from './sidecar.ts';

export async function run(argv: string[]): Promise<number> {
  const parsed = parseSidecarArgs(argv);
  if ('problems' in parsed) {
    process.stderr.write(
      `cert-rotator sidecar: ${parsed.problems.length} problem${parsed.problems.length === 1 ? '' : 's'} with the flags:\n${parsed.problems
        .map((p) => `  - ${p}`)
        .join('\n')}\nRun "cert-rotator sidecar --help" for the flags.\n`,
    );
    return 2;
  }
  if (parsed.help) {
    process.stdout.write(sidecarHelp());
    return 0;
  }
  const running = await startSidecar(parsed.options);
  const onSignal = () => running.stop();
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  return await running.done;
}
