/**
 * `seedbed demo`: a whole swarm on this machine, offline. Generates data, makes a torrent, starts an HTTP tracker
 * on 127.0.0.1, a seeding Client and a downloading Client, shows the download's progress, verifies every byte,
 * and cleans up.
 *
 * @module
 */

import { join } from "node:path";
import { Client } from "../client.ts";
import { createTorrent } from "../create.ts";
import { parseMetainfo } from "../metainfo.ts";
import { TrackerServer } from "../tracker/server.ts";
import { EXIT, parseFlags, UsageError } from "./_common.ts";
import { formatBytes, formatDuration, ProgressLine } from "./progress.ts";

/** Where the demo writes. */
export interface DemoIO {
  /** Writes to standard error (human output). */
  stderr(text: string): void;
  /** True when stderr is a terminal (progress redrawn in place). */
  isTerminal: boolean;
  /** Resolves when the user asks to stop. */
  interrupted: Promise<void>;
}

const HELP = `Usage: seedbed demo [--size MIB] [--keep]

Runs a complete swarm on this machine with no network: generates MIB MiB of data (default 64) in a
temporary directory, makes a torrent, starts an HTTP tracker on 127.0.0.1, seeds with one Client and
downloads with another, verifies every byte, and removes everything (unless --keep).`;

/**
 * Runs the demo.
 *
 * @param args Arguments after `demo`.
 * @param io Output.
 * @returns The exit status.
 */
export async function runDemo(args: string[], io: DemoIO): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    size: { type: "string" },
    keep: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    io.stderr(HELP + "\n");
    return EXIT.ok;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  const mib = values.size === undefined ? 64 : Number(values.size);
  if (!Number.isInteger(mib) || mib < 1 || mib > 4096) {
    throw new UsageError(
      `--size: "${values.size}" is not a whole number of MiB between 1 and 4096`,
    );
  }
  const work = await Deno.makeTempDir({ prefix: "seedbed-demo-" });
  const seedDir = join(work, "seed"), leechDir = join(work, "leech");
  await Deno.mkdir(join(seedDir, "demo"), { recursive: true });
  await Deno.mkdir(leechDir);
  const tracker = new TrackerServer({ interval: 60 });
  let seeder: Client | undefined, leecher: Client | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    io.stderr(`Generating ${mib} MiB of data in ${work}\n`);
    await writeRandomFiles(join(seedDir, "demo"), mib);
    const torrentBytes = await createTorrent(join(seedDir, "demo"), {
      announce: [[tracker.url]],
      comment: "Seedbed offline demo",
    });
    const meta = await parseMetainfo(torrentBytes);
    await Deno.writeFile(join(work, "demo.torrent"), torrentBytes);
    io.stderr(
      `Torrent ${meta.infoHashHex}: ${meta.files.length} files, ${meta.pieceCount} pieces of ${
        formatBytes(meta.pieceLength)
      }; tracker ${tracker.url}\n`,
    );
    seeder = new Client({
      metainfo: meta,
      basedir: seedDir,
      host: "127.0.0.1",
      resumeFile: false,
    });
    await seeder.ready;
    if (!seeder.seed) throw new Error("the seeder could not verify the generated data");
    io.stderr(`Seeder verified the data and listens on 127.0.0.1:${seeder.port}\n`);
    leecher = new Client({
      metainfo: meta,
      basedir: leechDir,
      host: "127.0.0.1",
      resumeFile: false,
    });
    await leecher.ready;
    io.stderr(
      `Leecher listens on 127.0.0.1:${leecher.port}; both found each other through the tracker\n`,
    );
    const l = leecher;
    const started = performance.now();
    const line = new ProgressLine(() => l, io.stderr, io.isTerminal);
    const draw = (final: boolean) => line.draw(final);
    timer = setInterval(() => draw(false), io.isTerminal ? 250 : 1000);
    const outcome = await Promise.race([
      l.done.then(() => "done" as const),
      io.interrupted.then(() => "interrupted" as const),
    ]);
    clearInterval(timer);
    timer = undefined;
    if (outcome === "interrupted") {
      io.stderr("\nseedbed demo: interrupted\n");
      return EXIT.interrupted;
    }
    draw(true);
    const secs = (performance.now() - started) / 1000;
    const same = await sameTree(join(seedDir, "demo"), join(leechDir, "demo"));
    if (!same) throw new Error("the downloaded files differ from the originals");
    io.stderr(
      `Downloaded ${formatBytes(meta.length)} in ${formatDuration(secs)} (${
        formatBytes(meta.length / Math.max(secs, 0.001))
      }/s); every byte matches the original.\n`,
    );
    return EXIT.ok;
  } finally {
    if (timer !== undefined) clearInterval(timer);
    await leecher?.close();
    await seeder?.close();
    await tracker.close();
    if (values.keep) io.stderr(`Kept ${work}\n`);
    else await Deno.remove(work, { recursive: true });
  }
}

async function writeRandomFiles(dir: string, mib: number): Promise<void> {
  // a few files of different sizes (one empty), so piece boundaries fall inside files
  const total = mib * 1024 * 1024;
  const sizes = [Math.floor(total / 2), Math.floor(total / 4) + 12345, 0];
  sizes.push(total - sizes[0] - sizes[1]);
  const chunk = new Uint8Array(1024 * 1024);
  for (let f = 0; f < sizes.length; f++) {
    const path = join(dir, f === 3 ? join("nested", "part-3.bin") : `part-${f}.bin`);
    if (f === 3) await Deno.mkdir(join(dir, "nested"), { recursive: true });
    using file = await Deno.open(path, { write: true, create: true, truncate: true });
    let left = sizes[f];
    while (left > 0) {
      const n = Math.min(left, chunk.length);
      for (let off = 0; off < n; off += 65536) {
        crypto.getRandomValues(chunk.subarray(off, Math.min(off + 65536, n)));
      }
      let written = 0;
      while (written < n) written += await file.write(chunk.subarray(written, n));
      left -= n;
    }
  }
}

async function sameTree(a: string, b: string): Promise<boolean> {
  for await (const entry of Deno.readDir(a)) {
    const pa = join(a, entry.name), pb = join(b, entry.name);
    if (entry.isDirectory) {
      if (!await sameTree(pa, pb)) return false;
      continue;
    }
    let x: Uint8Array, y: Uint8Array;
    try {
      [x, y] = await Promise.all([Deno.readFile(pa), Deno.readFile(pb)]);
    } catch {
      return false;
    }
    if (x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  }
  return true;
}
