// A torrent downloading from a rate-limited libtorrent seeder into a Session, its files served over HTTP by our
// stream server: what the streaming tests read from with real readers (curl, fetch, ffprobe, ffmpeg).

import { join } from "node:path";
import { createTorrent } from "../src/create.ts";
import { serveStreams, type StreamServer } from "../src/http/serve.ts";
import { streamUrlPath } from "../src/http/stream_handler.ts";
import { type Metainfo, parseMetainfo } from "../src/metainfo.ts";
import { Session } from "../src/session/session.ts";
import type { SessionTorrent, TorrentAddOptions } from "../src/session/session_torrent.ts";
import { type Proc, startLibtorrent } from "./_lab.ts";

/** A file of the lab's torrent: its bytes, or a file on disk to copy. */
export interface LabFile {
  path: string;
  data?: Uint8Array;
  disk?: string;
}

/** What {@linkcode streamingLab} set up. */
export interface StreamingLab extends AsyncDisposable {
  root: string;
  meta: Metainfo;
  seeder: Proc;
  session: Session;
  torrent: SessionTorrent;
  server: StreamServer;
  /** `performance.now()` when the torrent was added (the download began). */
  startedAt: number;
  /** The seeder's copy of a file (by its path inside the torrent). */
  seedPath(path: string): string;
  /** The HTTP URL of a file (by its path inside the torrent). */
  url(path: string): string;
  /** Verified share of the torrent, 0-1. */
  progress(): number;
  /** Resolves once the verified share reaches `share`. */
  reach(share: number): Promise<void>;
}

/**
 * Makes a torrent of `files`, seeds it with libtorrent capped at `rate` bytes/s, adds it to a fresh Session on
 * 127.0.0.1 (dialling the seeder) and serves the session's torrents on a free port.
 */
export async function streamingLab(
  name: string,
  files: LabFile[],
  options: { rate: number; pieceLength: number; add?: TorrentAddOptions },
): Promise<StreamingLab> {
  const root = await Deno.makeTempDir({ prefix: "seedbed-stream-" });
  const cleanups: (() => Promise<unknown>)[] = [() => Deno.remove(root, { recursive: true })];
  const cleanup = async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
  };
  try {
    const seedDir = join(root, "seed");
    for (const f of files) {
      const path = join(seedDir, name, f.path);
      await Deno.mkdir(join(path, ".."), { recursive: true });
      if (f.data) await Deno.writeFile(path, f.data);
      else await Deno.copyFile(f.disk!, path);
    }
    const bytes = await createTorrent(join(seedDir, name), { pieceLength: options.pieceLength });
    const meta = await parseMetainfo(bytes);
    const torrentPath = join(root, `${name}.torrent`);
    await Deno.writeFile(torrentPath, bytes);
    const seeder = await startLibtorrent("seed", torrentPath, seedDir, [], {
      env: { LT_UPLOAD_LIMIT: String(options.rate) },
    });
    cleanups.push(() => seeder.stop());
    const session = await Session.open({ host: "127.0.0.1", basedir: join(root, "leech") });
    cleanups.push(() => session.close());
    const server = serveStreams(
      () => session.torrents.filter((t) => t.engine).map((t) => t.streamSource()),
      { port: 0 },
    );
    cleanups.push(() => server.shutdown());
    const startedAt = performance.now();
    const torrent = await session.add(bytes, {
      peers: [{ host: "127.0.0.1", port: seeder.port }],
      resumeFile: false,
      ...options.add,
    });
    await torrent.ready;
    const progress = () => {
      const p = torrent.progress;
      return p.total > 0 ? p.have / p.total : 0;
    };
    return {
      root,
      meta,
      seeder,
      session,
      torrent,
      server,
      startedAt,
      seedPath: (path) => join(seedDir, name, path),
      url: (path) =>
        `http://127.0.0.1:${server.addr.port}${
          streamUrlPath(torrent.streamSource().infoHash, path.split("/"))
        }`,
      progress,
      reach: (share) =>
        new Promise<void>((resolve) => {
          if (progress() >= share) return resolve();
          const check = () => {
            if (progress() < share) return;
            torrent.removeEventListener("piece", check);
            resolve();
          };
          torrent.addEventListener("piece", check);
        }),
      [Symbol.asyncDispose]: cleanup,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** Runs a program to its end; throws with its stderr when it fails. */
export async function run(cmd: string, args: string[]): Promise<{ stdout: string; ms: number }> {
  const t0 = performance.now();
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const d = new TextDecoder();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed (${out.code}): ${d.decode(out.stderr)}`);
  }
  return { stdout: d.decode(out.stdout), ms: performance.now() - t0 };
}

/** Seconds since `t0` (a `performance.now()`), for the figures the tests print. */
export function secs(t0: number, t1 = performance.now()): string {
  return ((t1 - t0) / 1000).toFixed(2);
}
