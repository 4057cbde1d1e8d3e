/**
 * The DHT on the command line: the node a download uses (options, saved routing table) and `seedbed dht`, a
 * standalone node (a bootstrap router for a private network, or tests).
 *
 * @module
 */

import { dirname, join } from "node:path";
import { DEFAULT_BOOTSTRAP, Dht, type DhtState, parseHostPort } from "../dht/dht.ts";
import { defaultStateDir, EXIT, parseFlags, UsageError } from "./_common.ts";

/**
 * The default file the routing table is kept in between runs: `$XDG_STATE_HOME/seedbed/dht.json`
 * (`~/.local/state/seedbed/dht.json`), or `%LOCALAPPDATA%\seedbed\dht.json` on Windows.
 *
 * @returns The path, or undefined when no home directory is known.
 */
export function defaultDhtStatePath(): string | undefined {
  const dir = defaultStateDir();
  return dir ? join(dir, "dht.json") : undefined;
}

/**
 * Checks `--dht-bootstrap` values.
 *
 * @param values The flag's values.
 * @returns The same values.
 * @throws {UsageError} For one that is not HOST:PORT.
 */
export function checkBootstrap(values: string[]): string[] {
  for (const v of values) {
    if (!parseHostPort(v)) {
      throw new UsageError(`--dht-bootstrap: "${v}" is not HOST:PORT (IPv6 as [::1]:6881)`);
    }
  }
  return values;
}

/**
 * Reads a saved routing table; a missing or damaged file is no state (the node bootstraps afresh).
 *
 * @param path The file.
 * @returns The state, if usable.
 */
export async function loadDhtState(path: string | undefined): Promise<DhtState | undefined> {
  if (!path) return undefined;
  try {
    const text = await Deno.readTextFile(path);
    if (text.length > 1_000_000) return undefined;
    const s = JSON.parse(text);
    if (typeof s?.id !== "string" || !Array.isArray(s.nodes)) return undefined;
    const nodes = s.nodes.filter((n: unknown) => {
      const x = n as { host?: unknown; port?: unknown };
      return typeof x?.host === "string" && Number.isInteger(x.port) &&
        (x.port as number) > 0 && (x.port as number) < 65536;
    }).slice(0, 200);
    return { id: s.id, nodes };
  } catch {
    return undefined;
  }
}

/**
 * Writes the routing table for next time (atomically: a temporary file renamed over the old one).
 *
 * @param path The file.
 * @param dht The node.
 */
export async function saveDhtState(path: string | undefined, dht: Dht): Promise<void> {
  if (!path) return;
  try {
    await Deno.mkdir(dirname(path), { recursive: true });
    const tmp = `${path}.tmp`;
    await Deno.writeTextFile(tmp, JSON.stringify(dht.state()));
    await Deno.rename(tmp, path);
  } catch {
    // not being able to save the table only costs a slower start next time
  }
}

const DHT_HELP = `Usage: seedbed dht [options]

Run a standalone DHT node (BEP 5) until Ctrl-C: a bootstrap node for a private network or for tests.
It stores and serves peers like any node; it downloads nothing.

Options:
  -p, --port PORT          UDP port (default: 6881; 0 = any free port)
      --host ADDR          address to bind (default: every IPv4 address; "::1" or "::" for IPv6)
      --dht-bootstrap H:P  join the DHT through this node (repeatable; default: join nothing, be the first)
      --state FILE         keep the node id and routing table in FILE across restarts
      --read-only          answer no queries (BEP 43); only useful for testing
  -q, --quiet              no status line
  -h, --help               show this help`;

/** Output and interrupt of `seedbed dht`. */
export interface DhtIO {
  /** Standard output. */
  stdout(text: string): void;
  /** Standard error. */
  stderr(text: string): void;
  /** True when stderr is a terminal. */
  isTerminal: boolean;
  /** Resolves on Ctrl-C. */
  interrupted: Promise<void>;
}

/**
 * `seedbed dht`: runs a node until interrupted, printing its address and a status line.
 *
 * @param args Arguments after `dht`.
 * @param io Output and interrupt.
 * @returns 130 once interrupted (as seeding), 0 for --help.
 */
export async function runDht(args: string[], io: DhtIO): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    port: { type: "string", short: "p" },
    host: { type: "string" },
    "dht-bootstrap": { type: "string", multiple: true },
    state: { type: "string" },
    "read-only": { type: "boolean" },
    quiet: { type: "boolean", short: "q" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    io.stderr(DHT_HELP + "\n");
    return EXIT.ok;
  }
  if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  const port = values.port === undefined ? 6881 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`--port: "${values.port}" is not a port number (0-65535)`);
  }
  const bootstrap = checkBootstrap(values["dht-bootstrap"] ?? []);
  const state = await loadDhtState(values.state);
  const host = values.host;
  const dht = await Dht.open({
    port,
    bootstrap,
    ...(host ? { host, family: host.includes(":") ? 6 : 4 } : {}),
    ...(state ? { state } : {}),
    ...(values["read-only"] ? { readOnly: true } : {}),
  });
  const shown = host?.includes(":") ? `[${host}]` : host ?? "0.0.0.0";
  io.stdout(
    `DHT node ${
      Array.from(dht.id, (b) => b.toString(16).padStart(2, "0")).join("")
    } listening on udp ${shown}:${dht.port}\n`,
  );
  const status = () => {
    const s = dht.stats();
    return `nodes ${s.nodes} (${s.good} good), torrents ${s.torrents}, peers stored ${s.storedPeers}, queries in ${s.queriesIn} out ${s.queriesOut}`;
  };
  const timer = setInterval(() => {
    if (values.quiet) return;
    if (io.isTerminal) io.stderr(`\r\x1b[2K${status()}`);
    else io.stderr(status() + "\n");
  }, io.isTerminal ? 1000 : 10_000);
  try {
    await io.interrupted;
  } finally {
    clearInterval(timer);
    await saveDhtState(values.state, dht);
    await dht.close();
  }
  if (!values.quiet) io.stderr(`${io.isTerminal ? "\n" : ""}stopped: ${status()}\n`);
  return EXIT.interrupted;
}

/** The public routers, for help texts. */
export const DEFAULT_BOOTSTRAP_TEXT: string = DEFAULT_BOOTSTRAP.join(
  ",\n                         ",
);
