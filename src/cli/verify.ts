/**
 * `seedbed verify <file.torrent> -o DIR`: hash-check the data under DIR and report which files are complete.
 *
 * After a partial download (`-s`), the files never selected are absent: they are "not downloaded", not failures,
 * and the pieces they share with downloaded files are read from the part file (whose index is in the download's
 * resume data), so only what is really wrong is reported.
 *
 * @module
 */

import { join } from "node:path";
import type { Metainfo } from "../metainfo.ts";
import { parseMetainfo } from "../metainfo.ts";
import { Storage } from "../storage/storage.ts";
import {
  defaultStateDir,
  EXIT,
  notATorrent,
  parseFlags,
  plural,
  readTorrentFile,
  resumeFileFor,
  UsageError,
} from "./_common.ts";
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

const HELP = `Usage: seedbed verify <file.torrent> [-o DIR] [--state DIR]

Hash-checks the torrent's data under DIR (default: current directory) and prints how many pieces
pass and which files are incomplete. Files that are not there (not selected with -s) are listed as
not downloaded; pieces they share with downloaded files are read from the part file, found through
the download's resume data in the state directory (--state, default ~/.local/state/seedbed).
Exit status 0 when every file on disk is complete and intact, 1 otherwise.`;

/**
 * Runs `verify`.
 *
 * @param args Arguments after `verify`.
 * @param io Output.
 * @returns The exit status.
 */
export async function runVerify(args: string[], io: VerifyIO): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    dir: { type: "string", short: "o" },
    state: { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    io.stdout(HELP + "\n");
    return EXIT.ok;
  }
  if (positionals.length !== 1) throw new UsageError("verify needs exactly one torrent file");
  const path = positionals[0];
  const bytes = await readTorrentFile(path);
  const meta = await parseMetainfo(bytes).catch((err) => {
    throw notATorrent(path, bytes, err);
  });
  const dir = values.dir ?? ".";
  const state = values.state ?? defaultStateDir();

  // which files are there at all
  const present = await Promise.all(meta.files.map(async (f) => {
    if (f.padding) return true;
    try {
      return (await Deno.stat(join(dir, ...f.path))).isFile;
    } catch {
      return false;
    }
  }));
  const priorities = present.map((p) => p ? 1 : 0);
  const parts = await partFileIndex(meta, dir, priorities, state);
  const storage = new Storage({
    dir,
    layout: meta,
    priorities,
    writerThread: false,
    ...(parts.length > 0 ? { pieceCache: { pieces: parts } } : {}),
  });
  const inPart = new Set(parts.map(([piece]) => piece));
  // a piece can be checked when its bytes are in the part file or every file it touches is there
  const checkable: number[] = [];
  for (let i = 0; i < meta.pieceCount; i++) {
    if (inPart.has(i)) checkable.push(i);
    else {
      const spans = storage.layout.spans(i, 0, storage.layout.pieceSize(i));
      if (spans.every((s) => present[s.file]) && spans.some((s) => !meta.files[s.file].padding)) {
        checkable.push(i);
      }
    }
  }
  const failed = new Set<number>();
  let passed = 0;
  const started = performance.now();
  try {
    await storage.hashcheck(checkable, {
      onPass: () => passed++,
      onFail: (i) => failed.add(i),
    });
  } finally {
    await storage.close();
  }
  const secs = (performance.now() - started) / 1000;
  const absent = meta.files.map((f, i) => ({ f, i })).filter(({ f, i }) =>
    !f.padding && !present[i]
  );
  const checkedBytes = meta.files.reduce(
    (n, f, i) => n + (f.padding || !present[i] ? 0 : f.length),
    0,
  );
  const of = absent.length === 0 ? `${meta.pieceCount}` : `${checkable.length}`;
  io.stdout(
    `${meta.displayName}: ${passed}/${of} pieces OK${
      absent.length > 0 ? ` (of the files downloaded)` : ""
    }, ${formatBytes(checkedBytes)} checked in ${secs.toFixed(1)} s\n`,
  );
  for (const [i, f] of meta.files.entries()) {
    if (f.padding || !present[i]) continue;
    const range = storage.layout.pieceRangeOfFile(i);
    if (!range) continue;
    let bad = 0;
    for (let p = range[0]; p <= range[1]; p++) if (failed.has(p)) bad++;
    if (bad > 0) {
      io.stdout(
        `  incomplete: ${f.displayPath} (${bad} of ${
          plural(range[1] - range[0] + 1, "piece")
        } fail)\n`,
      );
    }
  }
  for (const { f } of absent) {
    io.stdout(`  not downloaded: ${f.displayPath} (${formatBytes(f.length)})\n`);
  }
  return failed.size === 0 ? EXIT.ok : EXIT.failure;
}

/**
 * The part file's index (piece → slot) from the download's resume data: the state directory's (by info hash, as
 * `seedbed download` and the daemon keep it) or an older one beside the data. Empty when there is none or no
 * part file.
 */
async function partFileIndex(
  meta: Metainfo,
  dir: string,
  priorities: number[],
  state: string | undefined,
): Promise<[number, number][]> {
  const candidates = [
    ...(state
      ? [
        resumeFileFor(state, meta.infoHashHex, dir),
        join(state, "resume", `${meta.infoHashHex}.resume`),
      ]
      : []),
    join(dir, `.${meta.name}.seedbed-resume`),
  ];
  for (const resumePath of candidates) {
    // a storage that only reads: loading resume data fills its part-file index
    const probe = new Storage({
      dir,
      layout: meta,
      priorities,
      resumePath,
      resumeId: meta.infoHashHex,
      writerThread: false,
    });
    try {
      await probe.loadResume().catch(() => undefined);
      const pieces = probe.pieceCache().pieces;
      const partFile = await Deno.stat(join(dir, `.${meta.name}.parts`)).catch(() => undefined);
      if (pieces.length > 0 && partFile?.isFile) return pieces;
    } finally {
      await probe.close();
    }
  }
  return [];
}
