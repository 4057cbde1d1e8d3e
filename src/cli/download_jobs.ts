/**
 * The torrents given to `seedbed` (download), `seed` and `stream` on the command line, before the session runs:
 * reading each .torrent file or magnet link, refusing the same torrent twice or two that would write the same
 * path, the file priorities `-s` asks for, checking the download or seed folder, and `--list`.
 *
 * @module
 */

import { join } from "node:path";
import { printable } from "../_paths.ts";
import { type MagnetLink, parseMagnet } from "../magnet.ts";
import { type Metainfo, parseMetainfo } from "../metainfo.ts";
import type { SessionTorrent } from "../session/session_torrent.ts";
import {
  errorCode,
  fsReason,
  notATorrent,
  plural,
  readTorrentFile,
  UsageError,
} from "./_common.ts";
import { type DownloadSettings, parseSelection } from "./download_flags.ts";
import { formatBytes } from "./progress.ts";

/** One torrent given on the command line. */
export interface Job {
  /** As given. */
  source: string;
  /** How messages name it until its name is known. */
  label: string;
  /** The .torrent file's bytes and what they hold. */
  bytes?: Uint8Array;
  meta?: Metainfo;
  /** The magnet link it is. */
  magnet?: MagnetLink;
  /** Info hash, hex. */
  hex: string;
  torrent?: SessionTorrent;
  phase: "starting" | "running" | "done" | "failed" | "listed";
  failure?: string;
  /** A tracker answered: its seeder and leecher counts mean something. */
  announced: boolean;
  /** Paused by the disk, and said so. */
  diskPaused: boolean;
  /** Messages already printed. */
  said: Set<string>;
  /** Peers we could not connect to (the first few are told). */
  peerFailures?: number;
  /** Seconds from the start to completion. */
  doneSecs?: number;
  /** Bytes downloaded when it completed. */
  doneBytes?: number;
  /** Its "Done" line waits for the final progress line. */
  doneLine?: string;
  /** Settles once it completed, failed or was listed. */
  settled?: Promise<void>;
}

/** Reads a .torrent file or parses a magnet link given on the command line. */
export async function loadJob(source: string, mode: "download" | "seed"): Promise<Job> {
  const base = { source, phase: "starting" as const, announced: false, diskPaused: false };
  if (/^magnet:/i.test(source)) {
    if (mode === "seed") throw new UsageError("seed needs a .torrent file, not a magnet link");
    let magnet: MagnetLink;
    try {
      magnet = parseMagnet(source);
    } catch (err) {
      throw new UsageError(
        `invalid magnet link: ${(err as Error).message.replace(/^Invalid magnet link: /, "")}`,
      );
    }
    const label = magnet.name !== undefined
      ? `${printable(magnet.name)} (magnet link)`
      : `magnet link ${magnet.infoHashHex}`;
    return { ...base, label, magnet, hex: magnet.infoHashHex, said: new Set() };
  }
  let bytes: Uint8Array;
  try {
    bytes = await readTorrentFile(source);
  } catch (err) {
    // `seedbed stauts` reads as a file name: say it is no command either
    if (/: no such file$/.test((err as Error).message) && !/[./\\]/.test(source)) {
      throw new Error(`${(err as Error).message} (nor a command: see "seedbed --help")`);
    }
    throw err;
  }
  let meta: Metainfo;
  try {
    meta = await parseMetainfo(bytes);
  } catch (err) {
    throw notATorrent(source, bytes, err);
  }
  return { ...base, label: source, bytes, meta, hex: meta.infoHashHex, said: new Set() };
}

/** The same torrent twice, or two torrents that would write the same path. */
export function checkDistinct(jobs: Job[], dir: string): void {
  for (let i = 0; i < jobs.length; i++) {
    for (let k = 0; k < i; k++) {
      const a = jobs[k], b = jobs[i];
      if (a.hex === b.hex) throw new UsageError(`${a.source} and ${b.source} are the same torrent`);
      if (a.meta && b.meta && a.meta.name === b.meta.name) {
        throw new UsageError(
          `${a.source} and ${b.source} would both write "${a.meta.displayName}" into ${dir}; download them into different folders (-o)`,
        );
      }
    }
  }
}

/** The file priorities `-s` asks for, or undefined without `-s`. */
export function prioritiesFor(job: Job, s: DownloadSettings, count: number): number[] | undefined {
  const meta = job.meta ?? job.torrent?.metainfo;
  if (s.select === undefined || !meta) return undefined;
  let selected: Set<number>;
  try {
    selected = parseSelection(s.select, meta.files.length);
  } catch (err) {
    if (count > 1 && err instanceof UsageError) {
      throw new UsageError(`${err.message}, in ${job.source}`);
    }
    throw err;
  }
  return meta.files.map((_, i) => selected.has(i) ? 1 : 0);
}

/** The torrent's top-level file or folder under DIR must be of the right kind, if it exists. */
export async function checkTarget(meta: Metainfo, dir: string): Promise<void> {
  const target = join(dir, meta.name);
  let st: Deno.FileInfo;
  try {
    st = await Deno.stat(target);
  } catch {
    return;
  }
  if (meta.multiFile && !st.isDirectory) {
    throw new Error(`cannot download ${meta.displayName}: ${target} is a file, not a folder`);
  }
  if (!meta.multiFile && st.isDirectory) {
    throw new Error(`cannot download ${meta.displayName}: ${target} is a folder, not a file`);
  }
}

/** The folder to seed from must exist and be a folder. */
export async function checkSeedDir(dir: string): Promise<void> {
  let st: Deno.FileInfo;
  try {
    st = await Deno.stat(dir);
  } catch (err) {
    throw new Error(
      `cannot seed from ${dir}: ${errorCode(err) === "ENOENT" ? "no such folder" : fsReason(err)}`,
    );
  }
  if (!st.isDirectory) throw new Error(`cannot seed from ${dir}: it is a file, not a folder`);
}

/** `--list`: the torrent's name, size and file count on stderr, its numbered files on stdout. */
export function listFiles(
  meta: Metainfo,
  io: { stdout(t: string): void; stderr(t: string): void },
): void {
  const files = meta.files.filter((f) => !f.padding);
  io.stderr(
    `${meta.displayName} (${formatBytes(dataSize(meta))}, ${plural(files.length, "file")})\n`,
  );
  io.stdout(formatFileList(meta) + "\n");
}

/** Lists the files of a torrent, numbered from 1, for `--list` (padding files are not listed). */
export function formatFileList(meta: Metainfo): string {
  const width = String(meta.files.length).length;
  return meta.files.flatMap((f, i) =>
    f.padding ? [] : [
      `${String(i + 1).padStart(width)}  ${formatBytes(f.length).padStart(10)}  ${f.displayPath}`,
    ]
  ).join("\n");
}

/** Bytes the files hold (padding not counted). */
export function dataSize(meta: Metainfo, wanted?: readonly number[]): number {
  let n = 0;
  meta.files.forEach((f, i) => {
    if (!f.padding && (!wanted || wanted[i] > 0)) n += f.length;
  });
  return n;
}
