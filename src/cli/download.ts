/**
 * `seedbed <torrent>` (download) and `seedbed seed <torrent>`: a Client with a progress line, signals and exit codes.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { Client } from "../client.ts";
import type { Metainfo } from "../metainfo.ts";
import { parseMetainfo } from "../metainfo.ts";
import { parseMagnet } from "../magnet.ts";
import { formatBytes, formatDuration, ProgressLine } from "./progress.ts";
import { DEFAULT_BOOTSTRAP, type Dht } from "../dht/dht.ts";
import {
  checkBootstrap,
  DEFAULT_BOOTSTRAP_TEXT,
  defaultDhtStatePath,
  saveDhtState,
  startDownloadDht,
} from "./dht.ts";

/** Where the CLI writes; tests capture it. */
export interface DownloadIO {
  /** Writes to standard output (JSON events). */
  stdout(text: string): void;
  /** Writes to standard error (human output). */
  stderr(text: string): void;
  /** True when stderr is a terminal (progress redrawn in place). */
  isTerminal: boolean;
  /** Resolves when the user asks to stop (SIGINT / SIGTERM). */
  interrupted: Promise<void>;
}

export { EXIT, UsageError } from "./_common.ts";
import { EXIT, UsageError } from "./_common.ts";

const DOWNLOAD_HELP = `Usage: seedbed [download] <file.torrent|magnet-link> [options]
       seedbed seed <file.torrent> [options]

Download (or seed) a torrent. Downloading exits 0 once every selected piece is verified on disk
(unless --keep-seeding); seeding verifies the data under --dir and serves it until Ctrl-C.

Options:
  -o, --dir DIR          download directory (default: current directory)
  -p, --port PORT        TCP port to listen on (default: 6881; 0 = any free port)
  -s, --select LIST      download only these files, e.g. 1-3,7 (numbers from --list)
  -l, --list             list the torrent's files with their numbers and exit
      --peer HOST:PORT   connect to this peer (repeatable; IPv6 as [::1]:6881)
      --save-torrent F   write the .torrent (for a magnet link: the fetched metadata) to F
      --lsd              find peers on the local network by multicast (BEP 14; off by default)
      --no-dht           do not use the DHT (BEP 5; never used for private torrents)
      --dht-port PORT    UDP port of the DHT node (default: the same number as --port)
      --dht-bootstrap H:P join the DHT through this node (repeatable; default: the public routers,
                         ${DEFAULT_BOOTSTRAP_TEXT})
      --dht-state FILE   keep the DHT routing table in FILE (default: ~/.local/state/seedbed/dht.json)
      --no-trackers      do not announce to the torrent's trackers
      --keep-seeding     keep seeding after the download completes (until Ctrl-C)
      --max-peers N      most connected peers (default: 50)
      --piece-memory MIB memory for pieces being downloaded, in MiB (default: 8); more helps fast
                         links with long round trips (it needs about speed x round-trip time)
  -q, --quiet            no progress line, only errors and the final summary
      --json             newline-delimited JSON events on stdout (human output stays on stderr)
  -h, --help             show this help

Ctrl-C stops cleanly (announces "stopped", writes resume data) and exits 130; run the same command again
to resume.`;

/** The usage text of the download and seed subcommands. */
export function downloadHelp(): string {
  return DOWNLOAD_HELP;
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
  for (const part of spec.split(",")) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (!m) throw new UsageError(`--select: "${part}" is not a number or range like 1-3`);
    const a = Number(m[1]), b = m[2] === undefined ? a : Number(m[2]);
    if (a < 1 || b < a || b > count) {
      throw new UsageError(
        `--select: ${part} is outside 1-${count} (the torrent has ${count} files)`,
      );
    }
    for (let i = a; i <= b; i++) out.add(i - 1);
  }
  return out;
}

/**
 * Parses "host:port" or "[v6]:port".
 *
 * @param text The address.
 * @returns Host and port.
 * @throws {UsageError} When it is not an address with a port.
 */
export function parsePeerAddress(text: string): { host: string; port: number } {
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(text) ?? /^([^:\s]+):(\d+)$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port > 0 && port < 65536)) {
    throw new UsageError(`--peer: "${text}" is not HOST:PORT (IPv6 as [::1]:6881)`);
  }
  return { host: m[1], port };
}

function listFiles(
  meta: Metainfo,
  io: { stdout(t: string): void; stderr(t: string): void },
): number {
  io.stderr(`${meta.displayName} (${formatBytes(meta.length)}, ${meta.files.length} files)\n`);
  io.stdout(formatFileList(meta) + "\n");
  return EXIT.ok;
}

/** Lists the files of a torrent, numbered from 1, for `--list`. */
export function formatFileList(meta: Metainfo): string {
  const width = String(meta.files.length).length;
  return meta.files.map((f, i) =>
    `${String(i + 1).padStart(width)}  ${formatBytes(f.length).padStart(10)}  ${f.displayPath}`
  ).join("\n");
}

/**
 * Runs `download` or `seed`.
 *
 * @param mode "download" or "seed".
 * @param args Arguments after the subcommand.
 * @param io Output and the interrupt signal.
 * @returns The exit status.
 */
export async function runDownload(
  mode: "download" | "seed",
  args: string[],
  io: DownloadIO,
): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      dir: { type: "string", short: "o" },
      port: { type: "string", short: "p" },
      select: { type: "string", short: "s" },
      list: { type: "boolean", short: "l" },
      peer: { type: "string", multiple: true },
      "save-torrent": { type: "string" },
      lsd: { type: "boolean" },
      "no-dht": { type: "boolean" },
      "dht-port": { type: "string" },
      "dht-bootstrap": { type: "string", multiple: true },
      "dht-state": { type: "string" },
      "no-trackers": { type: "boolean" },
      "keep-seeding": { type: "boolean" },
      "max-peers": { type: "string" },
      "piece-memory": { type: "string" },
      quiet: { type: "boolean", short: "q" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    io.stderr(DOWNLOAD_HELP + "\n");
    return EXIT.ok;
  }
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length === 0
        ? "missing the torrent file"
        : `unexpected argument "${positionals[1]}"`,
    );
  }
  const source = positionals[0];
  // a magnet link is checked now (a clear error, exit 1) and its metadata fetched once the client runs
  const magnet = /^magnet:/i.test(source) ? (parseMagnet(source), source) : undefined;
  if (magnet && mode === "seed") {
    throw new UsageError("seed needs a .torrent file, not a magnet link");
  }
  const port = values.port === undefined ? 6881 : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`--port: "${values.port}" is not a port number (0-65535)`);
  }
  const maxPeers = values["max-peers"] === undefined ? 50 : Number(values["max-peers"]);
  if (!Number.isInteger(maxPeers) || maxPeers < 1) {
    throw new UsageError(`--max-peers: "${values["max-peers"]}" is not a positive integer`);
  }
  const pieceMemory = values["piece-memory"] === undefined
    ? undefined
    : Number(values["piece-memory"]);
  if (pieceMemory !== undefined && !(pieceMemory > 0 && pieceMemory <= 4096)) {
    throw new UsageError(
      `--piece-memory: "${
        values["piece-memory"]
      }" is not a size in MiB (more than 0, at most 4096)`,
    );
  }
  const peers = (values.peer ?? []).map(parsePeerAddress);
  const dhtPort = values["dht-port"] === undefined ? port : Number(values["dht-port"]);
  if (!Number.isInteger(dhtPort) || dhtPort < 0 || dhtPort > 65535) {
    throw new UsageError(`--dht-port: "${values["dht-port"]}" is not a port number (0-65535)`);
  }
  const dhtBootstrap = values["dht-bootstrap"]
    ? checkBootstrap(values["dht-bootstrap"])
    : [...DEFAULT_BOOTSTRAP];

  let meta: Metainfo | undefined;
  if (!magnet) {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(source);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        throw new Error(`cannot read ${source}: no such file`);
      }
      throw err;
    }
    try {
      meta = await parseMetainfo(bytes);
    } catch (err) {
      throw new Error(`cannot read ${source}: ${(err as Error).message}`);
    }
    if (values.list) return listFiles(meta, io);
  }
  const selectionFor = (m: Metainfo) => {
    if (values.select === undefined) return undefined;
    const selected = parseSelection(values.select, m.files.length);
    return m.files.map((_, i) => selected.has(i) ? 1 : 0);
  };
  const priorities = meta ? selectionFor(meta) : undefined;
  const json = values.json ?? false;
  const quiet = values.quiet ?? false;
  const keepSeeding = mode === "seed" || (values["keep-seeding"] ?? false);
  const dir = values.dir ?? ".";
  await Deno.mkdir(dir, { recursive: true });

  const emit = (event: string, data: Record<string, unknown> = {}) => {
    if (json) io.stdout(JSON.stringify({ event, time: new Date().toISOString(), ...data }) + "\n");
  };
  if (magnet && !values.quiet) {
    io.stderr(
      "Fetching the torrent's metadata from the magnet link's peers, trackers and the DHT\n",
    );
  }
  const statePath = values["dht-state"] ?? defaultDhtStatePath();
  // one node for the process; private torrents (BEP 27) never use it
  const dht: Dht | undefined = values["no-dht"] || meta?.private
    ? undefined
    : await startDownloadDht({
      off: false,
      port: dhtPort,
      bootstrap: dhtBootstrap,
      statePath,
    });
  const client = new Client({
    ...(meta ? { metainfo: meta } : { magnet: magnet! }),
    // a magnet download starts paused when files must be selected or listed first
    ...(magnet && (values.select !== undefined || values.list) ? { state: "paused" as const } : {}),
    basedir: dir,
    port,
    maxPeers,
    peers,
    ...(pieceMemory ? { pieceMemory: Math.round(pieceMemory * 1024 * 1024) } : {}),
    ...(priorities ? { priorities } : {}),
    ...(values["no-trackers"] ? { trackers: false } : {}),
    ...(values.lsd ? { lsd: true } : {}),
    ...(dht ? { dht } : {}),
  });
  let failure: Error | undefined;
  client.addEventListener("peer", (e) => emit("peer", { address: e.detail.address }));
  client.addEventListener("peerclose", (e) => emit("peerclose", e.detail));
  client.addEventListener("piece", (e) => emit("piece", { index: e.detail.index }));
  client.addEventListener("hashfail", (e) => emit("hashfail", { index: e.detail.index }));
  client.addEventListener("tracker", (e) => emit("tracker", e.detail));
  client.addEventListener("error", (e) => {
    emit("error", { message: e.detail.error.message });
    if (!quiet) io.stderr(`\nseedbed: ${e.detail.error.message}\n`);
  });

  const started = performance.now();
  const progress = new ProgressLine(() => client, io.stderr, io.isTerminal);
  const draw = (final = false) => {
    if (!quiet) progress.draw(final);
  };

  const interval = setInterval(() => {
    draw();
    if (json) {
      try {
        emit("progress", {
          downloaded: client.downloaded,
          uploaded: client.uploaded,
          left: client.left,
          peers: client.peers.length,
          downloadRate: Math.round(client.downloadRate),
          uploadRate: Math.round(client.uploadRate),
        });
      } catch { /* not ready */ }
    }
  }, io.isTerminal ? 500 : 1000);
  try {
    const interrupted = io.interrupted.then(() => "interrupted" as const);
    const ready = await Promise.race([client.ready.then(() => "ready" as const), interrupted]);
    if (ready === "interrupted") {
      await client.close();
      io.stderr("\nseedbed: interrupted\n");
      emit("interrupted");
      return EXIT.interrupted;
    }
    if (!meta) {
      meta = client.metainfo;
      if (values["save-torrent"]) await Deno.writeFile(values["save-torrent"], client.torrentFile);
      if (values.list) {
        await client.close();
        return listFiles(meta, io);
      }
      const wanted = selectionFor(meta);
      if (wanted) {
        // -s decides alone, over the link's own selection (so=) as well
        for (let i = 0; i < wanted.length; i++) await client.setPriority(i, wanted[i]);
        await client.start();
      }
    } else if (values["save-torrent"]) {
      await Deno.writeFile(values["save-torrent"], client.torrentFile);
    }
    emit("ready", {
      name: meta.name,
      infoHash: meta.infoHashHex,
      size: meta.length,
      port: client.port,
      ...(dht && !meta.private ? { dhtPort: dht.port } : {}),
      have: client.bitfield.reduce((n, b) => n + popcount(b), 0),
      pieces: meta.pieceCount,
    });
    if (!quiet) {
      io.stderr(
        `${mode === "seed" ? "Seeding" : "Downloading"} ${meta.displayName} (${
          formatBytes(meta.length)
        }) into ${dir}, listening on port ${client.port}${
          dht ? (meta.private ? "" : `, DHT on udp port ${dht.port}`) : ""
        }\n`,
      );
    }
    if (mode === "seed" && !client.seed) {
      const missing = meta.pieceCount - client.bitfield.reduce((n, b) => n + popcount(b), 0);
      io.stderr(
        `seedbed: warning: ${missing} of ${meta.pieceCount} pieces are missing under ${dir}; seeding the rest and downloading the missing ones\n`,
      );
    }
    const outcome = await Promise.race([
      client.done.then(() => "done" as const),
      interrupted,
    ]);
    if (outcome === "done") {
      draw(true);
      const secs = (performance.now() - started) / 1000;
      emit("complete", { seconds: secs, downloaded: client.downloaded });
      if (!quiet && mode === "download") {
        io.stderr(
          `Done: ${meta.displayName}, ${formatBytes(client.downloaded)} downloaded in ${
            formatDuration(secs)
          } (${formatBytes(client.downloaded / Math.max(secs, 0.001))}/s)\n`,
        );
      }
      if (keepSeeding) {
        await interrupted;
        await client.close();
        emit("interrupted");
        return EXIT.interrupted;
      }
      await client.close();
      return EXIT.ok;
    }
    await client.close();
    draw(true);
    io.stderr("seedbed: interrupted; resume data written, run the same command again to resume\n");
    emit("interrupted");
    return EXIT.interrupted;
  } catch (err) {
    failure = err as Error;
    await client.close().catch(() => {});
    throw failure;
  } finally {
    clearInterval(interval);
    if (dht) {
      await saveDhtState(statePath, dht);
      await dht.close();
    }
  }
}

function popcount(b: number): number {
  let n = 0;
  while (b) {
    b &= b - 1;
    n++;
  }
  return n;
}
