/** A start-up problem a user must fix; the CLI prints the message and exits non-zero. */
export class StartupError extends Error {
  override readonly name = 'StartupError';
}
