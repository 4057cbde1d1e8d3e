/**
 * What every subcommand shares: exit codes, the usage error, the flag parser that speaks in our words, and
 * file-system errors told as a person would tell them.
 *
 * @module
 */

import { dirname, join, resolve } from "node:path";
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";

/** Exit codes, as documented in README. */
export const EXIT = { ok: 0, failure: 1, usage: 2, interrupted: 130 } as const;

/** A wrong command line: printed with a hint to `--help`, exit status 2. */
export class UsageError extends Error {
  /**
   * Creates an {@linkcode UsageError}.
   *
   * @param message What is wrong with the command line.
   */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** The flags and positional arguments of a command line. */
export interface ParsedFlags<O extends ParseArgsOptionsConfig> {
  /** Each flag given, by its long name. */
  values: ReturnType<typeof parseArgs<{ options: O; allowPositionals: true; strict: true }>>[
    "values"
  ];
  /** The other arguments, in order. */
  positionals: string[];
}

/**
 * Parses a command line with `node:util`'s `parseArgs`, after checking it in our own words: an unknown flag, a
 * flag without its value or a switch given a value is a {@linkcode UsageError} naming the flag. A flag that takes
 * a value always takes the next argument, as getopt does (`--max-peers -3` gives `-3` to `--max-peers`, whose
 * check then refuses it); `--` ends the flags.
 *
 * @param args The arguments.
 * @param options The flags, as `parseArgs` takes them.
 * @returns The flags given and the positional arguments.
 * @throws {UsageError} For an unknown flag, a missing value, or a value given to a switch.
 */
export function parseFlags<O extends ParseArgsOptionsConfig>(
  args: string[],
  options: O,
): ParsedFlags<O> {
  const byShort = new Map<string, string>();
  for (const [name, o] of Object.entries(options)) if (o.short) byShort.set(o.short, name);
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      out.push(...args.slice(i));
      break;
    }
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      const o = options[name];
      if (!o) throw new UsageError(`unknown option --${name}`);
      if (o.type === "boolean") {
        if (eq >= 0) throw new UsageError(`--${name} takes no value`);
        out.push(arg);
      } else if (eq >= 0) out.push(arg);
      else {
        if (i + 1 >= args.length) throw new UsageError(`--${name} needs a value`);
        out.push(`--${name}=${args[++i]}`);
      }
      continue;
    }
    if (arg.startsWith("-") && arg.length > 1) {
      // a group of short flags: -ql, or one taking a value: -p6881 / -p 6881
      for (let c = 1; c < arg.length; c++) {
        const name = byShort.get(arg[c]);
        if (!name) throw new UsageError(`unknown option -${arg[c]}`);
        if (options[name].type === "boolean") {
          out.push(`--${name}`);
          continue;
        }
        let value = arg.slice(c + 1);
        if (value === "") {
          if (i + 1 >= args.length) throw new UsageError(`-${arg[c]} (--${name}) needs a value`);
          value = args[++i];
        }
        out.push(`--${name}=${value}`);
        break;
      }
      continue;
    }
    out.push(arg);
  }
  const { values, positionals } = parseArgs({
    args: out,
    options,
    allowPositionals: true,
    strict: true,
  });
  return { values, positionals };
}

/**
 * A parse error of `node:util`'s `parseArgs` (from a command that does not use {@linkcode parseFlags}) in our
 * own words.
 *
 * @param err The error.
 * @returns The message, or undefined when it is not a parse error.
 */
export function parseErrorMessage(err: unknown): string | undefined {
  const code = (err as { code?: unknown })?.code;
  if (typeof code !== "string" || !code.startsWith("ERR_PARSE_ARGS")) return undefined;
  const message = (err as Error).message;
  const quoted = /'([^']*)'/.exec(message)?.[1] ?? "";
  const flag = quoted.split(/[ ,]+/).filter((s) => s.startsWith("-")).pop() ?? quoted;
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") return `unknown option ${flag}`;
  if (code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") return `unexpected argument "${quoted}"`;
  if (/does not take an argument/.test(message)) return `${flag} takes no value`;
  return `${flag} needs a value`;
}

/**
 * "1 file", "5 files".
 *
 * @param n The count.
 * @param one The word for one.
 * @param many The word for several (one + "s" by default).
 * @returns The count and the word.
 */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/**
 * Why a file operation failed, in a person's words ("no such file", "permission denied", "read-only file
 * system", "the disk is full", …), without the system's error number or the operation's name.
 *
 * @param err The error of a `Deno.*` file operation (or one that carries a `code`).
 * @returns The reason.
 */
export function fsReason(err: unknown): string {
  const code = errorCode(err);
  switch (code) {
    case "ENOENT":
      return "no such file or folder";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "EROFS":
      return "read-only file system";
    case "ENOSPC":
      return "the disk is full (no space left on device)";
    case "EDQUOT":
      return "disk quota exceeded";
    case "EISDIR":
      return "it is a folder, not a file";
    case "ENOTDIR":
      return "part of the path is a file, not a folder";
    case "EEXIST":
      return "it already exists";
    case "EIO":
      return "input/output error (the disk may be failing)";
    case "ENAMETOOLONG":
      return "the name is too long";
  }
  return cleanMessage(err);
}

/** The system error code of an error, or of the error it wraps. */
export function errorCode(err: unknown): string | undefined {
  for (let e = err, depth = 0; e && depth < 4; e = (e as Error).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^E[A-Z]+$/.test(code)) return code;
    const m = /\(os error (\d+)\)/.exec((e as Error).message ?? "");
    if (m) return OS_ERRORS[Number(m[1])];
  }
  return undefined;
}

const OS_ERRORS: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  5: "EIO",
  13: "EACCES",
  17: "EEXIST",
  20: "ENOTDIR",
  21: "EISDIR",
  28: "ENOSPC",
  30: "EROFS",
  36: "ENAMETOOLONG",
  122: "EDQUOT",
};

/**
 * An error's first line without the system's leftovers: no "(os error 28)", no ": readfile '/path'".
 *
 * @param err Any error.
 * @returns The cleaned message.
 */
export function cleanMessage(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split("\n")[0]
    .replace(/ \(os error \d+\)/g, "")
    .replace(/: [a-z_]+ '[^']*'(?: -> '[^']*')?$/, "")
    .replace(/^([A-Z])(?=[a-z ])/, (c) => c.toLowerCase());
}

/**
 * The state directory by default: `$XDG_STATE_HOME/seedbed` (`~/.local/state/seedbed`), or
 * `%LOCALAPPDATA%\seedbed` on Windows.
 *
 * @returns The path, or undefined when no home directory is known (or environment access is not allowed).
 */
export function defaultStateDir(): string | undefined {
  try {
    if (Deno.build.os === "windows") {
      const base = Deno.env.get("LOCALAPPDATA");
      return base ? join(base, "seedbed") : undefined;
    }
    const xdg = Deno.env.get("XDG_STATE_HOME");
    if (xdg) return join(xdg, "seedbed");
    const home = Deno.env.get("HOME");
    return home ? join(home, ".local", "state", "seedbed") : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Where the command line keeps a torrent's resume data: `<state>/downloads/<info hash>-<folder>.resume`, keyed by
 * the info hash (two torrents of the same name never share it) and by the download folder (a run in another
 * folder never trusts pieces journalled for this one).
 *
 * @param stateDir The state directory.
 * @param infoHashHex The torrent's info hash, hex.
 * @param dir The download folder.
 * @returns The path.
 */
export function resumeFileFor(stateDir: string, infoHashHex: string, dir: string): string {
  // FNV-1a of the absolute folder, 32 bits
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(resolve(dir))) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return join(stateDir, "downloads", `${infoHashHex}-${h.toString(16).padStart(8, "0")}.resume`);
}

/**
 * Makes sure a folder can be downloaded into: it is created when missing, and a file is created and removed in
 * it. Fails with one line naming the folder and the reason: it is a file, a file is in the way of a parent, it
 * is on a read-only file system, permission is denied.
 *
 * @param dir The folder.
 * @throws {Error} `cannot download into DIR: REASON`.
 */
export async function ensureWritableDir(dir: string): Promise<void> {
  const fail = (reason: string): never => {
    throw new Error(`cannot download into ${dir}: ${reason}`);
  };
  let st: Deno.FileInfo | undefined;
  try {
    st = await Deno.stat(dir);
  } catch (err) {
    if (errorCode(err) === "ENOTDIR") fail(await fileInTheWay(dir) ?? fsReason(err));
    if (errorCode(err) !== "ENOENT") fail(fsReason(err));
  }
  if (st && !st.isDirectory) fail("it is a file, not a folder");
  if (!st) {
    try {
      await Deno.mkdir(dir, { recursive: true });
    } catch (err) {
      const code = errorCode(err);
      if (code === "ENOTDIR" || code === "EEXIST") fail(await fileInTheWay(dir) ?? fsReason(err));
      fail(fsReason(err));
    }
  }
  const probe = join(dir, `.seedbed-write-test-${crypto.randomUUID().slice(0, 8)}`);
  try {
    (await Deno.open(probe, { write: true, createNew: true })).close();
  } catch (err) {
    fail(fsReason(err));
  }
  await Deno.remove(probe).catch(() => {});
}

/** The nearest parent of `path` that exists and is a file, described; undefined when there is none. */
async function fileInTheWay(path: string): Promise<string | undefined> {
  for (let p = dirname(path); p !== dirname(p); p = dirname(p)) {
    try {
      const st = await Deno.stat(p);
      if (st.isFile) return `${p} is a file, not a folder`;
      if (st.isDirectory) return undefined;
    } catch {
      // keep climbing
    }
  }
  return undefined;
}

/**
 * Reads a .torrent file given on the command line.
 *
 * @param path The file.
 * @returns Its bytes.
 * @throws {Error} `cannot read PATH: REASON` in a person's words (a missing Deno permission is rethrown as is).
 */
export async function readTorrentFile(path: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotCapable) throw err; // reported with the flag to add
    const code = errorCode(err);
    throw new Error(
      `cannot read ${path}: ${
        code === "ENOENT" ? "no such file" : code === "EISDIR" ? "it is a folder" : fsReason(err)
      }`,
    );
  }
}

/**
 * Why a file is not a torrent, for a parse failure: bytes that do not start as a bencoded dictionary are "not a
 * .torrent file" at all; otherwise the parser's reason.
 *
 * @param path The file, as given.
 * @param bytes Its contents.
 * @param err The parser's error.
 * @returns The error to report.
 */
export function notATorrent(path: string, bytes: Uint8Array, err: unknown): Error {
  if (bytes.length === 0) return new Error(`${path} is not a .torrent file (it is empty)`);
  if (bytes[0] !== 0x64 /* d */) {
    return new Error(
      `${path} is not a .torrent file (it does not start with a bencoded dictionary)`,
    );
  }
  return new Error(`cannot read ${path}: ${cleanMessage(err)}`);
}
