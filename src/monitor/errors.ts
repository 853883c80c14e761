/**
 * Why certificates could not be read from something that should hold them. The code becomes the
 * `reason` label of the read-error series, so it is a small closed set; the message is for people
 * (events, logs, `scan`) and never contains key material or the object's data.
 */
export const READ_ERROR_REASONS = [
  /** Bytes that are not what the key says (bad PEM, DER, keystore or kubeconfig structure). */
  'malformed',
  /** Parsed fine, but holds no certificate. */
  'no-certificate',
  /** The keystore's integrity check failed with the configured password. */
  'wrong-password',
  /** The password comes from a Secret key that does not exist or cannot be read. */
  'password-unavailable',
  /** A well-formed format or algorithm this reader does not implement. */
  'unsupported',
  /** Larger than the limit for one value: not read. */
  'too-large',
  /** A file that cannot be opened (node mode, scan). */
  'unreadable',
] as const;

export type ReadErrorReason = (typeof READ_ERROR_REASONS)[number];

export class ReadError extends Error {
  override readonly name = 'ReadError';
  readonly reason: ReadErrorReason;

  constructor(reason: ReadErrorReason, message: string) {
    super(message);
    this.reason = reason;
  }
}
