/**
 * `seedbed info <file.torrent|magnet>`: what a torrent or magnet link holds.
 *
 * @module
 */

import { bytesEqual } from "../_bytes.ts";
import { printable } from "../_paths.ts";
import { parseMagnet } from "../magnet.ts";
import { parseMetainfo } from "../metainfo.ts";
import { EXIT, notATorrent, parseFlags, readTorrentFile, UsageError } from "./_common.ts";
import { formatBytes } from "./progress.ts";

/** Where info writes. */
export interface InfoIO {
  /** Standard output. */
  stdout(text: string): void;
  /** Standard error. */
  stderr(text: string): void;
}

const HELP = `Usage: seedbed info <file.torrent|magnet-link>

Prints the name, the format (v1, v2 or hybrid), the info hashes (v1: 40 hex digits, v2: 64), size, piece
length and count, files (padding files are not listed), trackers and web seeds.`;

/**
 * The name of a torrent's format for people.
 *
 * @param version `Metainfo.version`.
 * @returns "v1", "v2" or "hybrid (v1 + v2)".
 */
export function versionName(version: 1 | 2 | "hybrid"): string {
  return version === "hybrid" ? "hybrid (v1 + v2)" : `v${version}`;
}

/**
 * Runs `info`.
 *
 * @param args Arguments after `info`.
 * @param io Output.
 * @returns The exit status.
 */
export async function runInfo(args: string[], io: InfoIO): Promise<number> {
  const { values, positionals } = parseFlags(args, { help: { type: "boolean", short: "h" } });
  if (values.help) {
    io.stdout(HELP + "\n");
    return EXIT.ok;
  }
  if (positionals.length !== 1) {
    throw new UsageError("info needs exactly one torrent file or magnet link");
  }
  const source = positionals[0];
  const lines: string[] = [];
  if (/^magnet:/i.test(source)) {
    let m;
    try {
      m = parseMagnet(source);
    } catch (err) {
      throw new UsageError(
        `invalid magnet link: ${(err as Error).message.replace(/^Invalid magnet link: /, "")}`,
      );
    }
    lines.push(`Name:         ${m.name === undefined ? "(not given)" : printable(m.name)}`);
    if (!m.infoHashV2 || !bytesEqual(m.infoHash, m.infoHashV2.subarray(0, 20))) {
      lines.push(`Info hash:    ${m.infoHashHex}`);
    }
    if (m.infoHashV2Hex) lines.push(`Info hash v2: ${m.infoHashV2Hex}`);
    lines.push(`Trackers:${m.trackers.length === 0 ? "     none" : ""}`);
    for (const t of m.trackers) lines.push(`  ${printable(t)}`);
    for (const p of m.peers) {
      lines.push(`Peer:         ${p.host.includes(":") ? `[${p.host}]` : p.host}:${p.port}`);
    }
    for (const w of m.webSeeds) lines.push(`Web seed:     ${printable(w)}`);
    if (m.selectOnly) lines.push(`Select:       ${m.selectOnly.join(",")}`);
    io.stdout(lines.join("\n") + "\n");
    return EXIT.ok;
  }
  const bytes = await readTorrentFile(source);
  const meta = await parseMetainfo(bytes).catch((err) => {
    throw notATorrent(source, bytes, err);
  });
  // padding files (BEP 47, and the gaps of v2) are never shown: the size is what the files hold
  const files = meta.files.map((f, i) => ({ f, i })).filter(({ f }) => !f.padding);
  const size = files.reduce((n, { f }) => n + f.length, 0);
  lines.push(`Name:         ${meta.displayName}`);
  lines.push(`Version:      ${versionName(meta.version)}`);
  if (meta.version !== 2) lines.push(`Info hash:    ${meta.infoHashHex}`);
  if (meta.infoHashV2Hex) lines.push(`Info hash v2: ${meta.infoHashV2Hex}`);
  lines.push(`Size:         ${formatBytes(size)} (${size} bytes)`);
  lines.push(
    `Pieces:       ${meta.pieceCount} of ${
      formatBytes(meta.pieceLength)
    } (${meta.pieceLength} bytes)`,
  );
  lines.push(`Private:      ${meta.private ? "yes" : "no"}`);
  if (meta.createdBy) lines.push(`Created by:   ${meta.createdBy}`);
  if (meta.creationDate) lines.push(`Created on:   ${meta.creationDate.toISOString()}`);
  if (meta.comment) lines.push(`Comment:      ${meta.comment}`);
  lines.push(`Trackers:${meta.announceList.length === 0 ? "     none" : ""}`);
  meta.announceList.forEach((tier, i) => {
    for (const url of tier) lines.push(`  tier ${i + 1}: ${printable(url)}`);
  });
  for (const w of meta.urlList) lines.push(`Web seed:     ${printable(w)}`);
  // numbered by their index in the torrent (what --select and BEP 53 count), padding files skipped
  lines.push(`Files (${files.length}):`);
  const width = String(meta.files.length).length;
  for (const { f, i } of files) {
    const marks = [
      f.executable ? "executable" : "",
      f.symlink ? `link to ${shownLink(f.symlink)}` : "",
    ]
      .filter((m) => m !== "");
    lines.push(
      `  ${String(i + 1).padStart(width)}  ${formatBytes(f.length).padStart(10)}  ${f.displayPath}${
        marks.length > 0 ? ` (${marks.join(", ")})` : ""
      }`,
    );
  }
  io.stdout(lines.join("\n") + "\n");
  for (const w of meta.warnings) io.stderr(`warning: ${printable(w)}\n`);
  return EXIT.ok;
}

function shownLink(path: string[]): string {
  return printable(path.join("/"));
}
