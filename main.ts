/**
 * The `seedbed` command line.
 *
 * @module
 */
if (import.meta.main) {
  console.error("seedbed: not yet");
  Deno.exit(1);
}
