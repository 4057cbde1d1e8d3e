/**
 * `seedbed verify <file.torrent> -o DIR`: hash-check the data under DIR and report which files are complete.
 *
 * @module
 */

import { pieceRangeOfFile } from "../storage/layout.ts";
import { parseArgs } from "node:util";
import { makePeerId } from "../client.ts";
import { parseMetainfo } from "../metainfo.ts";
import { Torrent } from "../swarm/torrent.ts";
import { EXIT, UsageError } from "./download.ts";
import { formatBytes } from "./progress.ts";

/** Where verify writes. */
export interface VerifyIO {
  /** Standard output: the report. */
  stdout(text: string): void;
  /** Standard error: progress and errors. */
  stderr(text: string): void;
  /** True when stderr is a terminal. */
  isTerminal: boolean;
}

const HELP = `Usage: seedbed verify <file.torrent> [-o DIR]

Hash-checks every piece of the torrent's data under DIR (default: current directory) and prints how
many pieces pass and which files are incomplete. Exit status 0 when everything passes, 1 otherwise.`;

/**
 * Runs `verify`.
 *
 * @param args Arguments after `verify`.
 * @param io Output.
 * @returns The exit status.
 */
export async function runVerify(args: string[], io: VerifyIO): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: { dir: { type: "string", short: "o" }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) {
    io.stdout(HELP + "\n");
    return EXIT.ok;
  }
  if (positionals.length !== 1) throw new UsageError("verify needs exactly one torrent file");
  const path = positionals[0];
  const meta = await parseMetainfo(await Deno.readFile(path)).catch((err) => {
    throw new Error(`cannot read ${path}: ${err.message}`);
  });
  const dir = values.dir ?? ".";
  const failed = new Set<number>();
  let passed = 0;
  const torrent = new Torrent({
    meta,
    dir,
    peerId: makePeerId(),
    port: () => 0,
    trackers: false,
    emit: (type, detail) => {
      if (type === "hashpass") passed++;
      else if (type === "hashfail") failed.add((detail as { index: number }).index);
    },
  });
  const started = performance.now();
  try {
    await torrent.hashcheck();
  } finally {
    await torrent.close();
  }
  const secs = (performance.now() - started) / 1000;
  io.stdout(
    `${meta.displayName}: ${passed}/${meta.pieceCount} pieces OK (${
      formatBytes(meta.files.reduce((n, f) => n + (f.padding ? 0 : f.length), 0))
    } checked in ${secs.toFixed(1)} s)\n`,
  );
  if (failed.size === 0) return EXIT.ok;
  for (const [i, f] of meta.files.entries()) {
    const range = pieceRangeOfFile(meta, i);
    if (!range || f.padding) continue;
    const [first, last] = range;
    let bad = 0;
    for (let i = first; i <= last; i++) if (failed.has(i)) bad++;
    if (bad > 0) {
      io.stdout(`  incomplete: ${f.displayPath} (${bad} of ${last - first + 1} pieces fail)\n`);
    }
  }
  return EXIT.failure;
}
