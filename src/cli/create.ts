/**
 * `seedbed create <path> -o out.torrent`: make a torrent from a file or directory.
 *
 * @module
 */

import { createTorrent } from "../create.ts";
import { parseMetainfo } from "../metainfo.ts";
import { versionName } from "./info.ts";
import { EXIT, fsReason, parseFlags, plural, UsageError } from "./_common.ts";
import { formatBytes } from "./progress.ts";

/** Where create writes. */
export interface CreateIO {
  /** Standard output. */
  stdout(text: string): void;
  /** Standard error. */
  stderr(text: string): void;
}

const HELP = `Usage: seedbed create <file-or-directory> -o out.torrent [options]

Options:
  -o, --output FILE        where to write the torrent (required)
  -a, --announce URL       tracker URL (repeatable; each one is its own tier, in order)
      --piece-length BYTES piece size (default: automatic, a power of two giving ~1500 pieces)
      --private            set the private flag (BEP 27)
  -c, --comment TEXT       comment
  -n, --name NAME          torrent name (default: the file or directory name)
  -w, --web-seed URL       web seed URL (repeatable)
      --v2                 a BitTorrent v2 torrent (BEP 52) instead of v1
      --hybrid             a hybrid torrent: v1 and v2 at once (v1 peers and v2 peers share it)

Prints the info hash: v1 (40 hex digits), v2 (64), or a hybrid's v1 then v2 hash on two lines.
v2 and hybrid torrents need a power-of-two piece length.`;

/**
 * Runs `create`.
 *
 * @param args Arguments after `create`.
 * @param io Output.
 * @returns The exit status.
 */
export async function runCreate(args: string[], io: CreateIO): Promise<number> {
  const { values, positionals } = parseFlags(args, {
    output: { type: "string", short: "o" },
    announce: { type: "string", short: "a", multiple: true },
    "piece-length": { type: "string" },
    private: { type: "boolean" },
    comment: { type: "string", short: "c" },
    name: { type: "string", short: "n" },
    "web-seed": { type: "string", short: "w", multiple: true },
    v2: { type: "boolean" },
    hybrid: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    io.stdout(HELP + "\n");
    return EXIT.ok;
  }
  if (positionals.length !== 1) throw new UsageError("create needs exactly one file or directory");
  if (!values.output) throw new UsageError("create needs -o out.torrent");
  if (values.v2 && values.hybrid) throw new UsageError("--v2 and --hybrid exclude each other");
  const version = values.v2 ? 2 : values.hybrid ? "hybrid" : 1;
  let pieceLength: number | undefined;
  if (values["piece-length"] !== undefined) {
    pieceLength = Number(values["piece-length"]);
    if (!Number.isInteger(pieceLength) || pieceLength < 16384 || pieceLength > 64 * 1024 * 1024) {
      throw new UsageError(
        `--piece-length: "${
          values["piece-length"]
        }" must be a whole number of bytes from 16384 to 67108864`,
      );
    }
    if (version !== 1 && (pieceLength & (pieceLength - 1)) !== 0) {
      throw new UsageError(
        `--piece-length: ${pieceLength} must be a power of two for a ${
          version === 2 ? "v2" : "hybrid"
        } torrent`,
      );
    }
  }
  for (const url of [...(values.announce ?? []), ...(values["web-seed"] ?? [])]) {
    try {
      new URL(url);
    } catch {
      throw new UsageError(`"${url}" is not a URL`);
    }
  }
  const source = positionals[0];
  try {
    await Deno.stat(source);
  } catch {
    throw new Error(`cannot read ${source}: no such file or directory`);
  }
  const bytes = await createTorrent(source, {
    ...(values.name ? { name: values.name } : {}),
    ...(pieceLength ? { pieceLength } : {}),
    announce: values.announce ?? [],
    private: values.private ?? false,
    ...(values.comment !== undefined ? { comment: values.comment } : {}),
    webSeeds: values["web-seed"] ?? [],
    version,
  });
  try {
    await Deno.writeFile(values.output, bytes);
  } catch (err) {
    if (err instanceof Deno.errors.NotCapable) throw err; // reported with the flag to add
    throw new Error(`cannot write ${values.output}: ${fsReason(err)}`);
  }
  const meta = await parseMetainfo(bytes);
  const files = meta.files.filter((f) => !f.padding);
  const size = files.reduce((n, f) => n + f.length, 0);
  io.stderr(
    `Created ${values.output} (${versionName(meta.version)}): ${meta.displayName}, ${
      formatBytes(size)
    } in ${plural(files.length, "file")}, ${meta.pieceCount} pieces of ${
      formatBytes(meta.pieceLength)
    }\n`,
  );
  if (meta.version !== 2) io.stdout(`${meta.infoHashHex}\n`);
  if (meta.infoHashV2Hex) io.stdout(`${meta.infoHashV2Hex}\n`);
  return EXIT.ok;
}
