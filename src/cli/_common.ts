/**
 * Exit codes and the usage error shared by every subcommand.
 *
 * @module
 */

/** Exit codes, as documented in README. */
export const EXIT = { ok: 0, failure: 1, usage: 2, interrupted: 130 } as const;

/** A wrong command line: printed with a hint to `--help`, exit status 2. */
export class UsageError extends Error {
  /**
   * Creates an {@linkcode UsageError}.
   *
   * @param message What is wrong with the command line.
   */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}
