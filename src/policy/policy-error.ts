/** Errors for user-supplied policy values (durations, renewBefore, maintenance windows). */

/** A user-supplied value did not parse. `message` says what is wrong and what would be right. */
export class PolicyInputError extends Error {
  override readonly name = 'PolicyInputError';
}

/** Shortens a user-supplied value for an error message. */
export function truncate(text: string): string {
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
