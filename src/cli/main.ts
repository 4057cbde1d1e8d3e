/**
 * Subcommand dispatch, error reporting and exit codes of the `seedbed` command line.
 *
 * @module
 */

import { VERSION } from "../version.ts";
import { cleanMessage, EXIT, parseErrorMessage, UsageError } from "./_common.ts";
import { downloadHelp } from "./download_flags.ts";

const HELP = `seedbed ${VERSION}: a BitTorrent client for Deno

Usage:
  seedbed <file.torrent|magnet>... [options]  download one or more torrents (the default command)
  seedbed download <file.torrent|magnet>...   the same
  seedbed seed <file.torrent>... -o DIR       verify the data under DIR and seed it until Ctrl-C
  seedbed stream <file.torrent|magnet>...     download and play while downloading: files served over
                                              HTTP on 127.0.0.1:8888 (mpv/VLC open the playlist)
  seedbed info <file.torrent|magnet>          show what a torrent or magnet link holds
  seedbed create <path> -o out.torrent        make a torrent from a file or directory
  seedbed verify <file.torrent> -o DIR        hash-check the data under DIR and report
  seedbed dht -p PORT                         run a standalone DHT node (a bootstrap node) until Ctrl-C
  seedbed daemon [--dir DIR] [--state DIR]    run torrents as a service: Transmission's RPC and a web page
  seedbed demo                                a whole swarm on this machine, offline

Run "seedbed <command> --help" for a command's options.

Exit status: 0 done, 1 failure, 2 usage error, 130 interrupted.`;

/** Output streams and interrupt signal of a CLI run; tests substitute their own. */
export interface CliIO {
  /** Writes to standard output. */
  stdout(text: string): void;
  /** Writes to standard error. */
  stderr(text: string): void;
  /** True when stderr is a terminal. */
  isTerminal: boolean;
  /** Resolves on SIGINT / SIGTERM. */
  interrupted: Promise<void>;
}

const encoder = new TextEncoder();

/** The process's own streams, with SIGINT/SIGTERM as the interrupt. */
function processIO(): { io: CliIO; dispose(): void } {
  const { promise, resolve } = Promise.withResolvers<void>();
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  const handler = () => resolve();
  for (const s of signals) Deno.addSignalListener(s, handler);
  return {
    io: {
      stdout: (t) => writeAll(Deno.stdout, t),
      stderr: (t) => writeAll(Deno.stderr, t),
      isTerminal: Deno.stderr.isTerminal(),
      interrupted: promise,
    },
    dispose: () => {
      for (const s of signals) Deno.removeSignalListener(s, handler);
    },
  };
}

function writeAll(stream: { writeSync(p: Uint8Array): number }, text: string): void {
  const bytes = encoder.encode(text);
  let off = 0;
  while (off < bytes.length) off += stream.writeSync(bytes.subarray(off));
}

/**
 * Runs the command line and returns the exit status; never throws.
 *
 * @param args The arguments (without the program name).
 * @param io Where output goes; the process's stdout/stderr and signals by default.
 * @returns 0 done, 1 failure, 2 usage error, 130 interrupted.
 */
export async function runCli(args: string[], io?: CliIO): Promise<number> {
  const own = io ? undefined : processIO();
  const out = io ?? own!.io;
  try {
    return await dispatch(args, out);
  } catch (err) {
    return report(err, out);
  } finally {
    own?.dispose();
  }
}

async function dispatch(args: string[], io: CliIO): Promise<number> {
  const [first, ...rest] = args;
  switch (first) {
    case undefined:
      io.stderr(HELP + "\n");
      return EXIT.usage;
    case "-h":
    case "--help":
    case "help":
      io.stdout(HELP + "\n");
      return EXIT.ok;
    case "-V":
    case "--version":
    case "version":
      io.stdout(`seedbed ${VERSION}\n`);
      return EXIT.ok;
    case "info":
      return await (await import("./info.ts")).runInfo(rest, io);
    case "create":
      return await (await import("./create.ts")).runCreate(rest, io);
    case "verify":
      return await (await import("./verify.ts")).runVerify(rest, io);
    case "demo":
      return await (await import("./demo.ts")).runDemo(rest, io);
    case "dht":
      return await (await import("./dht.ts")).runDht(rest, io);
    case "daemon":
      return await (await import("./daemon.ts")).runDaemon(rest, io);
    case "seed":
      return await runDownload("seed", rest, io);
    case "download":
      return await runDownload("download", rest, io);
    case "stream":
      return await runDownload("stream", rest, io);
    default:
      if (first.startsWith("-") && rest.length === 0 && !first.includes("=")) {
        // a lone flag such as --list needs a torrent
        if (first === "--list" || first === "-l") throw new UsageError("missing the torrent file");
      }
      return await runDownload("download", args, io);
  }
}

/** The download runner, loaded when a command needs it (each command loads only its own modules). */
async function runDownload(
  mode: "download" | "seed" | "stream",
  args: string[],
  io: CliIO,
): Promise<number> {
  return await (await import("./download.ts")).runDownload(mode, args, io);
}

/** Prints one clear line for an error and chooses the exit status. */
function report(err: unknown, io: CliIO): number {
  const usage = err instanceof UsageError ? err.message : parseErrorMessage(err);
  if (usage !== undefined) {
    io.stderr(`seedbed: ${usage}\nTry "seedbed --help".\n`);
    return EXIT.usage;
  }
  if (err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied) {
    const message = firstLine(err);
    if (/--allow-\w+|permission/i.test(message) && !/os error/.test(message)) {
      const hint = /--allow-\w+/.test(message)
        ? "(or -A for everything)"
        : `run with ${permissionFlag(message)} (or -A)`;
      io.stderr(`seedbed: missing permission: ${message} ${hint}\n`);
      return EXIT.failure;
    }
  }
  io.stderr(`seedbed: ${cleanMessage(err)}\n`);
  return EXIT.failure;
}

function firstLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split("\n")[0];
}

function permissionFlag(message: string): string {
  if (/net access/i.test(message)) return "--allow-net";
  if (/write access/i.test(message)) return "--allow-write";
  if (/read access/i.test(message)) return "--allow-read";
  if (/env access/i.test(message)) return "--allow-env";
  if (/sys access/i.test(message)) return "--allow-sys";
  return "the --allow-* flag it names";
}

export { downloadHelp };
