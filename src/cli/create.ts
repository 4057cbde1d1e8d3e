/**
 * `seedbed create <path> -o out.torrent`: make a torrent from a file or directory.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { createTorrent } from "../create.ts";
import { parseMetainfo } from "../metainfo.ts";
import { EXIT, UsageError } from "./download.ts";
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
  -w, --web-seed URL       web seed URL (repeatable)`;

/**
 * Runs `create`.
 *
 * @param args Arguments after `create`.
 * @param io Output.
 * @returns The exit status.
 */
export async function runCreate(args: string[], io: CreateIO): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    strict: true,
    allowPositionals: true,
    options: {
      output: { type: "string", short: "o" },
      announce: { type: "string", short: "a", multiple: true },
      "piece-length": { type: "string" },
      private: { type: "boolean" },
      comment: { type: "string", short: "c" },
      name: { type: "string", short: "n" },
      "web-seed": { type: "string", short: "w", multiple: true },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    io.stdout(HELP + "\n");
    return EXIT.ok;
  }
  if (positionals.length !== 1) throw new UsageError("create needs exactly one file or directory");
  if (!values.output) throw new UsageError("create needs -o out.torrent");
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
  });
  try {
    await Deno.writeFile(values.output, bytes);
  } catch (err) {
    if (err instanceof Deno.errors.NotCapable) throw err; // reported with the flag to add
    throw new Error(`cannot write ${values.output}: ${(err as Error).message}`);
  }
  const meta = await parseMetainfo(bytes);
  io.stderr(
    `Created ${values.output}: ${meta.displayName}, ${
      formatBytes(meta.length)
    } in ${meta.files.length} file(s), ${meta.pieceCount} pieces of ${
      formatBytes(meta.pieceLength)
    }\n`,
  );
  io.stdout(`${meta.infoHashHex}\n`);
  return EXIT.ok;
}
