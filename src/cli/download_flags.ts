/**
 * The flags of `seedbed download` and `seedbed seed`: their help, their values checked and turned into settings,
 * each refusal one {@linkcode UsageError} in our own words.
 *
 * @module
 */

import { join } from "node:path";
import { DEFAULT_BOOTSTRAP } from "../dht/dht.ts";
import type { EncryptionPolicy } from "../wire/encryption_policy.ts";
import { defaultStateDir, parseFlags, UsageError } from "./_common.ts";
import { checkBootstrap, DEFAULT_BOOTSTRAP_TEXT } from "./dht.ts";

const HELP = `Usage: seedbed [download] <file.torrent|magnet-link>... [options]
       seedbed seed <file.torrent>... [options]

Download (or seed) one or more torrents at once, through one listening port. Downloading exits 0 once
every selected piece of every torrent is verified on disk (unless --keep-seeding), 1 when a torrent
failed; seeding verifies the data under --dir and serves it until Ctrl-C.

Options:
OPTIONS`;

const STREAM_HELP = `Usage: seedbed stream <file.torrent|magnet-link>... [options]

Download torrents and play their files while they download: an HTTP server on 127.0.0.1 serves every
file with byte ranges, an index page and an M3U playlist, so mpv, VLC, ffmpeg or a browser can play and
seek before the download is complete (the pieces a player asks for are fetched first). Once the download
completes it keeps serving, and seeding, until Ctrl-C.

  seedbed stream some.torrent
  mpv http://127.0.0.1:8888/playlist.m3u

Options (the same as for download):
OPTIONS`;

const OPTIONS_HELP = `  -o, --dir DIR          download directory (default: current directory)
  -p, --port PORT        port to listen on, TCP and UDP (uTP and the DHT) alike (default: 6881; 0 = any
                         free port); a download uses a free port when this one is taken
  -s, --select LIST      download only these files, e.g. 1-3,7 (numbers from --list; with several
                         torrents, the same numbers in each)
  -l, --list             list the torrent's files with their numbers and exit
      --peer HOST:PORT   connect to this peer, for every torrent given (repeatable; IPv6 as [::1]:6881)
  -w, --web-seed URL     also download from this web server (BEP 19): a URL of the file, or of a folder
                         ending in / that holds the torrent's files (repeatable; for every torrent given)
      --no-web-seeds     do not use the web seeds the torrent lists (url-list, httpseeds); --web-seed
                         ones are still used
      --limit-down RATE  download at most RATE bytes/s over all torrents: 500K, 2M (MiB/s), 1G; 0 = none
      --limit-up RATE    upload at most RATE bytes/s over all torrents (same units)
      --max-peers N      most connected peers over all torrents (default: 50 a torrent, 500 in all)
      --encryption MODE  protocol encryption: prefer (default; encrypted handshake, plain if the peer
                         cannot), require (encrypted handshakes only), allow (plain unless the peer
                         encrypts), disable (plain only)
      --encryption-rc4   RC4-encrypt the whole connection after an encrypted handshake, not only the
                         handshake (costs CPU; needs --encryption prefer or require)
      --save-torrent F   write the .torrent (for a magnet link: the fetched metadata) to F
      --metadata-timeout S  give up on a magnet link whose metadata no peer sent within S seconds
                         (default: 120)
      --no-utp           no uTP (BEP 29): TCP only (by default peers are dialled over uTP first, then
                         TCP, and both are accepted)
      --no-tcp           no TCP: uTP only (for tests)
      --lsd              find peers on the local network by multicast (BEP 14; off by default)
      --no-dht           do not use the DHT (BEP 5; never used for private torrents)
      --dht-bootstrap H:P join the DHT through this node (repeatable; default: the public routers,
                         ${DEFAULT_BOOTSTRAP_TEXT})
      --state DIR        where resume data (DIR/downloads/, by info hash and folder) and the DHT
                         routing table (DIR/dht.json) are kept between runs (default:
                         ~/.local/state/seedbed)
      --dht-state FILE   keep the DHT routing table in FILE instead (default: DIR/dht.json of --state)
      --no-trackers      do not announce to the torrent's trackers
      --keep-seeding     keep seeding after the download completes (until Ctrl-C)
      --sequential       download pieces in order, from the first, instead of rarest first
      --stream           also serve the files over HTTP while they download, and then keep serving
                         and seeding until Ctrl-C (the same as "seedbed stream")
      --http-port PORT   port of the HTTP server of --stream and "seedbed stream" (default: 8888;
                         0 = any free port; a free port is used when this one is taken)
      --http-host ADDR   address of that server (default: 127.0.0.1; anything else shows the torrents'
                         files to the network)
      --piece-memory MIB the most memory for pieces being downloaded, in MiB, over all the torrents
                         (default: 256): each starts at 8 (or MIB, if less) and grows with its peers'
                         speed x round-trip time, which fast links to distant peers need
  -q, --quiet            no progress line: only errors, warnings and the final summary
      --json             newline-delimited JSON events on stdout (human output stays on stderr)
  -h, --help             show this help

Ctrl-C stops cleanly (announces "stopped", writes resume data) and exits 130; run the same command again
to resume.`;

/** The usage text of the download and seed subcommands. */
export function downloadHelp(): string {
  return HELP.replace("OPTIONS", () => OPTIONS_HELP);
}

/** The usage text of the stream subcommand. */
export function streamHelp(): string {
  return STREAM_HELP.replace("OPTIONS", () => OPTIONS_HELP);
}

/** The flags `parseFlags` is given. */
const OPTIONS = {
  dir: { type: "string", short: "o" },
  port: { type: "string", short: "p" },
  select: { type: "string", short: "s" },
  list: { type: "boolean", short: "l" },
  peer: { type: "string", multiple: true },
  "web-seed": { type: "string", short: "w", multiple: true },
  "no-web-seeds": { type: "boolean" },
  "limit-down": { type: "string" },
  "limit-up": { type: "string" },
  "max-peers": { type: "string" },
  encryption: { type: "string" },
  "encryption-rc4": { type: "boolean" },
  "save-torrent": { type: "string" },
  "metadata-timeout": { type: "string" },
  lsd: { type: "boolean" },
  "no-dht": { type: "boolean" },
  "no-utp": { type: "boolean" },
  "no-tcp": { type: "boolean" },
  "dht-port": { type: "string" },
  "dht-bootstrap": { type: "string", multiple: true },
  state: { type: "string" },
  "dht-state": { type: "string" },
  "no-trackers": { type: "boolean" },
  "keep-seeding": { type: "boolean" },
  sequential: { type: "boolean" },
  stream: { type: "boolean" },
  "http-port": { type: "string" },
  "http-host": { type: "string" },
  "piece-memory": { type: "string" },
  quiet: { type: "boolean", short: "q" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

/** What the command line of `download` / `seed` asks for, checked. */
export interface DownloadSettings {
  /** Show the help and stop. */
  help: boolean;
  /** The torrents and magnet links, as given. */
  sources: string[];
  /** Download directory. */
  dir: string;
  /** The port, TCP and UDP (0 = any). */
  port: number;
  /** `--select` as given (checked against each torrent once its file count is known). */
  select: string | undefined;
  /** `--list`. */
  list: boolean;
  /** `--peer`, for every torrent. */
  peers: { host: string; port: number }[];
  /** `--web-seed`, for every torrent. */
  webSeeds: string[];
  /** `--no-web-seeds`. */
  noWebSeeds: boolean;
  /** Bytes/s over all torrents; 0 = none. */
  limitDown: number;
  /** Bytes/s over all torrents; 0 = none. */
  limitUp: number;
  /** Most connections over all torrents, when given. */
  maxPeers: number | undefined;
  /** Protocol encryption. */
  encryption: EncryptionPolicy;
  /** RC4 for the whole connection after an MSE handshake. */
  rc4Only: boolean;
  /** `--save-torrent`. */
  saveTorrent: string | undefined;
  /** Milliseconds to look for a magnet link's metadata. */
  metadataTimeoutMs: number | undefined;
  /** `--lsd`. */
  lsd: boolean;
  /** `--no-dht`. */
  noDht: boolean;
  /** `--no-utp`. */
  noUtp: boolean;
  /** `--no-tcp`. */
  noTcp: boolean;
  /** Warnings about the command line (a deprecated flag), for stderr. */
  warnings: string[];
  /** DHT bootstrap nodes. */
  dhtBootstrap: string[];
  /** The state directory; undefined when none is known (no home directory). */
  stateDir: string | undefined;
  /** The DHT routing table's file. */
  dhtStatePath: string | undefined;
  /** `--no-trackers`. */
  noTrackers: boolean;
  /** `--keep-seeding` (always for `seed`, `stream` and `--stream`). */
  keepSeeding: boolean;
  /** `--sequential`: pieces in order. */
  sequential: boolean;
  /** Where the HTTP server of `--stream` (always for `stream`) listens; undefined without one. */
  stream: { port: number; hostname: string } | undefined;
  /** Bytes of piece memory, when given. */
  pieceMemory: number | undefined;
  /** `-q`. */
  quiet: boolean;
  /** `--json`. */
  json: boolean;
}

/**
 * Parses and checks the command line of `download`, `seed` or `stream`.
 *
 * @param mode Which command.
 * @param args The arguments after the command's name.
 * @returns The settings.
 * @throws {UsageError} For anything wrong with the command line.
 */
export function parseDownloadArgs(
  mode: "download" | "seed" | "stream",
  args: string[],
): DownloadSettings {
  const { values: v, positionals } = parseFlags(args, OPTIONS);
  const stateDir = v.state ?? defaultStateDir();
  const warnings: string[] = [];
  // --dht-port is gone: the DHT runs on the peer port's UDP socket; alone it still names the port
  const dhtPort = parsePort(v["dht-port"], "--dht-port");
  if (dhtPort !== undefined) {
    warnings.push(
      v.port === undefined
        ? `seedbed: warning: --dht-port is deprecated: the DHT and uTP share the peer port; use -p ${dhtPort}`
        : "seedbed: warning: --dht-port is deprecated and ignored: the DHT and uTP share the -p port",
    );
  }
  const port = parsePort(v.port, "--port") ?? dhtPort ?? 6881;
  const settings: DownloadSettings = {
    help: v.help ?? false,
    sources: positionals,
    dir: v.dir ?? ".",
    port,
    select: v.select,
    list: v.list ?? false,
    peers: (v.peer ?? []).map(parsePeerAddress),
    webSeeds: (v["web-seed"] ?? []).map(parseWebSeed),
    noWebSeeds: v["no-web-seeds"] ?? false,
    limitDown: v["limit-down"] === undefined ? 0 : parseRate(v["limit-down"], "--limit-down"),
    limitUp: v["limit-up"] === undefined ? 0 : parseRate(v["limit-up"], "--limit-up"),
    maxPeers: parseCount(v["max-peers"], "--max-peers"),
    encryption: parseEncryption(v.encryption),
    rc4Only: v["encryption-rc4"] ?? false,
    saveTorrent: v["save-torrent"],
    metadataTimeoutMs: parseSeconds(v["metadata-timeout"], "--metadata-timeout"),
    lsd: v.lsd ?? false,
    noDht: v["no-dht"] ?? false,
    noUtp: v["no-utp"] ?? false,
    noTcp: v["no-tcp"] ?? false,
    warnings,
    dhtBootstrap: v["dht-bootstrap"] ? checkBootstrap(v["dht-bootstrap"]) : [...DEFAULT_BOOTSTRAP],
    stateDir,
    dhtStatePath: v["dht-state"] ?? (stateDir ? join(stateDir, "dht.json") : undefined),
    noTrackers: v["no-trackers"] ?? false,
    keepSeeding: mode === "seed" || mode === "stream" || (v.stream ?? false) ||
      (v["keep-seeding"] ?? false),
    sequential: v.sequential ?? false,
    stream: mode === "stream" || v.stream
      ? {
        port: parsePort(v["http-port"], "--http-port") ?? 8888,
        hostname: v["http-host"] ?? "127.0.0.1",
      }
      : undefined,
    pieceMemory: parsePieceMemory(v["piece-memory"]),
    quiet: v.quiet ?? false,
    json: v.json ?? false,
  };
  if (settings.help) return settings;
  if (positionals.length === 0) throw new UsageError("missing the torrent file or magnet link");
  if (settings.select !== undefined) parseRanges(settings.select);
  if (settings.rc4Only && (settings.encryption === "disable" || settings.encryption === "allow")) {
    throw new UsageError(
      `--encryption-rc4 needs encrypted handshakes: use it with --encryption prefer or require, not ${settings.encryption}`,
    );
  }
  if (!settings.stream && (v["http-port"] !== undefined || v["http-host"] !== undefined)) {
    throw new UsageError(
      `--${v["http-port"] !== undefined ? "http-port" : "http-host"} goes with --stream`,
    );
  }
  if (settings.noUtp && settings.noTcp) {
    throw new UsageError("--no-utp and --no-tcp together leave no way to reach a peer");
  }
  if (settings.saveTorrent !== undefined && positionals.length > 1) {
    throw new UsageError("--save-torrent takes a single torrent or magnet link");
  }
  return settings;
}

/**
 * Parses a rate in bytes per second with binary suffixes: `500K` = 500 KiB/s, `2M` = 2 MiB/s, `1.5G`; `KiB`,
 * `MB`, `M/s` are read the same way; a plain number is bytes/s; 0 = no limit.
 *
 * @param text The value.
 * @param flag The flag's name, for the error.
 * @returns Bytes per second.
 * @throws {UsageError} When it is not such a rate.
 */
export function parseRate(text: string, flag: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?(?:\/s)?\s*$/i.exec(text);
  if (!m) {
    throw new UsageError(
      `${flag}: "${text}" is not a rate in bytes per second like 500K, 2M or 1G`,
    );
  }
  const scale = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2].toLowerCase()]!;
  return Math.round(Number(m[1]) * scale);
}

function parsePort(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(n >= 0 && n <= 65535)) {
    throw new UsageError(`${flag}: "${text}" is not a port number (0-65535)`);
  }
  return n;
}

function parseCount(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(n >= 1 && n <= 100_000)) {
    throw new UsageError(`${flag}: "${text}" is not a whole number from 1 to 100000`);
  }
  return n;
}

function parseSeconds(text: string | undefined, flag: string): number | undefined {
  if (text === undefined) return undefined;
  const n = /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
  if (!(n > 0 && n <= 86400)) {
    throw new UsageError(`${flag}: "${text}" is not a number of seconds (more than 0)`);
  }
  return Math.round(n * 1000);
}

function parsePieceMemory(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
  if (!(n > 0 && n <= 4096)) {
    throw new UsageError(
      `--piece-memory: "${text}" is not a size in MiB (more than 0, at most 4096)`,
    );
  }
  return Math.round(n * 1024 * 1024);
}

const POLICIES: readonly EncryptionPolicy[] = ["prefer", "require", "allow", "disable"];

function parseEncryption(text: string | undefined): EncryptionPolicy {
  if (text === undefined) return "prefer";
  const p = text.toLowerCase() as EncryptionPolicy;
  if (!POLICIES.includes(p)) {
    throw new UsageError(`--encryption: "${text}" is not one of ${POLICIES.join(", ")}`);
  }
  return p;
}

/**
 * Parses "1-3,7" into zero-based file indexes, checking them against the file count.
 *
 * @param spec The list, 1-based, with ranges.
 * @param count Number of files in the torrent.
 * @returns Zero-based indexes.
 * @throws {UsageError} When the list is malformed or names a file that does not exist.
 */
export function parseSelection(spec: string, count: number): Set<number> {
  const out = new Set<number>();
  const files = count === 1 ? "1 file" : `${count} files`;
  for (const [a, b, part] of parseRanges(spec)) {
    if (a < 1 || b > count) {
      throw new UsageError(`--select: ${part} is outside 1-${count} (the torrent has ${files})`);
    }
    for (let i = a; i <= b; i++) out.add(i - 1);
  }
  return out;
}

/** "1-3,7" as `[first, last, text]` ranges, checked for form and order only. */
function parseRanges(spec: string): [number, number, string][] {
  return spec.split(",").map((part) => {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (!m) throw new UsageError(`--select: "${part}" is not a file number or a range like 1-3`);
    const a = Number(m[1]), b = m[2] === undefined ? a : Number(m[2]);
    if (b < a) throw new UsageError(`--select: ${part.trim()} runs backwards; write ${b}-${a}`);
    return [a, b, part.trim()];
  });
}

/**
 * Checks a `--web-seed` URL: http: or https:.
 *
 * @param text The URL.
 * @returns The URL as given.
 * @throws {UsageError} When it is not an http(s) URL.
 */
export function parseWebSeed(text: string): string {
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) {
    throw new UsageError(
      `--web-seed: "${text}" is not an http:// or https:// URL (of the file, or of a folder ending in /)`,
    );
  }
  return text;
}

/**
 * Parses "host:port" or "[v6]:port".
 *
 * @param text The address.
 * @returns Host and port.
 * @throws {UsageError} When it is not an address with a port.
 */
export function parsePeerAddress(text: string): { host: string; port: number } {
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(text) ?? /^([^:\s\[\]]+):(\d+)$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port > 0 && port < 65536)) {
    throw new UsageError(`--peer: "${text}" is not HOST:PORT (IPv6 as [::1]:6881)`);
  }
  return { host: m[1], port };
}
