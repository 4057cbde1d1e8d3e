// Small error helpers shared by every layer. Private: mod.ts never exports this file.

/** `err` as an Error (anything thrown may be something else). */
export function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
