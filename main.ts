/**
 * The `seedbed` command line: `deno run -A main.ts <file.torrent>` downloads; `seed`, `info`, `create`, `verify`
 * and `demo` are subcommands. Compiled into a single binary with `deno task compile`.
 *
 * @example Run the offline demo
 * ```sh
 * deno run -A jsr:@seedbed/seedbed/cli demo
 * ```
 *
 * @module
 */

import { runCli } from "./src/cli/main.ts";

export { runCli };

if (import.meta.main) {
  Deno.exit(await runCli(Deno.args));
}
