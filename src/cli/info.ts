/**
 * `seedbed info <file.torrent|magnet>`: what a torrent or magnet link holds.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { printable } from "../_paths.ts";
import { parseMagnet } from "../magnet.ts";
import { parseMetainfo } from "../metainfo.ts";
import { EXIT, UsageError } from "./download.ts";
import { formatBytes } from "./progress.ts";

/** Where info writes. */
export interface InfoIO {
  /** Standard output. */
  stdout(text: string): void;
  /** Standard error. */
  stderr(text: string): void;
}

const HELP = `Usage: seedbed info <file.torrent|magnet-link>

Prints the name, info hash, size, piece length and count, files, trackers and web seeds.`;

/**
 * Runs `info`.
 *
 * @param args Arguments after `info`.
 * @param io Output.
 * @returns The exit status.
 */
export async function runInfo(args: string[], io: InfoIO): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: { help: { type: "boolean", short: "h" } },
  });
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
    const m = parseMagnet(source);
    lines.push(`Name:       ${m.name === undefined ? "(not given)" : printable(m.name)}`);
    lines.push(`Info hash:  ${m.infoHashHex}`);
    lines.push(`Trackers:${m.trackers.length === 0 ? "   none" : ""}`);
    for (const t of m.trackers) lines.push(`  ${printable(t)}`);
    for (const p of m.peers) {
      lines.push(`Peer:       ${p.host.includes(":") ? `[${p.host}]` : p.host}:${p.port}`);
    }
    for (const w of m.webSeeds) lines.push(`Web seed:   ${printable(w)}`);
    if (m.selectOnly) lines.push(`Select:     ${m.selectOnly.join(",")}`);
    io.stdout(lines.join("\n") + "\n");
    return EXIT.ok;
  }
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(source);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) throw new Error(`cannot read ${source}: no such file`);
    if (err instanceof Deno.errors.NotCapable) throw err; // reported with the flag to add
    throw new Error(`cannot read ${source}: ${(err as Error).message}`);
  }
  const meta = await parseMetainfo(bytes).catch((err) => {
    throw new Error(`cannot read ${source}: ${(err as Error).message}`);
  });
  lines.push(`Name:         ${meta.displayName}`);
  lines.push(`Info hash:    ${meta.infoHashHex}`);
  lines.push(`Size:         ${formatBytes(meta.length)} (${meta.length} bytes)`);
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
  lines.push(`Files (${meta.files.length}):`);
  const width = String(meta.files.length).length;
  meta.files.forEach((f, i) => {
    lines.push(
      `  ${String(i + 1).padStart(width)}  ${formatBytes(f.length).padStart(10)}  ${f.displayPath}`,
    );
  });
  io.stdout(lines.join("\n") + "\n");
  return EXIT.ok;
}
