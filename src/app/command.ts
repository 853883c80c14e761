/** What every CLI command module exports: `cli.ts` loads only the one the user picked. */
export interface CommandModule {
  /** Runs the command with the arguments after its name; resolves to the process exit code. */
  run(argv: string[]): Promise<number>;
}

/** One line per command in `cert-rotator help`, and how to load it. */
export interface CommandEntry {
  usage: string;
  load(): Promise<CommandModule>;
}
