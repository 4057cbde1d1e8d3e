// Real BitTorrent software for interop tests: libtorrent (python3-libtorrent), opentracker, aria2.
// Each helper starts a process on 127.0.0.1 and stops it by PID; a missing program makes the test
// fail when SEEDBED_REQUIRE_PEERS=1 (CI) and skip otherwise.

import { join } from "node:path";
import { toHex } from "../src/_bytes.ts";
import { encodeBinary } from "../src/tracker/http.ts";

/** CI sets this: nothing that needs a real peer may be skipped. */
export const REQUIRE_PEERS = Deno.env.get("SEEDBED_REQUIRE_PEERS") === "1";

function runs(cmd: string, args: string[]): boolean {
  try {
    return new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
}

/** Which real peers are installed. */
export const have = {
  libtorrent: runs("/usr/bin/python3", ["-c", "import libtorrent"]),
  opentracker: runs("sh", ["-c", "command -v opentracker"]),
  aria2: runs("aria2c", ["--version"]),
  mktorrent: runs("sh", ["-c", "command -v mktorrent"]),
  transmissionShow: runs("sh", ["-c", "command -v transmission-show"]),
  curl: runs("curl", ["--version"]),
  ffmpeg: runs("ffmpeg", ["-version"]) && runs("ffprobe", ["-version"]),
  chromium: runs("sh", ["-c", "command -v chromium"]),
  nginx: runs("/usr/sbin/nginx", ["-v"]),
  openssl: runs("openssl", ["version"]),
  transmission: runs("sh", ["-c", "command -v transmission-daemon"]),
};

/** `ignore` for a Deno.test that needs these peers: skip locally, never in CI. */
export function needs(...names: (keyof typeof have)[]): boolean {
  const missing = names.filter((n) => !have[n]);
  if (missing.length === 0) return false;
  if (REQUIRE_PEERS) return false; // run it and let it fail loudly
  console.warn(
    `skipping: ${
      missing.join(", ")
    } not installed (CI sets SEEDBED_REQUIRE_PEERS=1 and fails instead)`,
  );
  return true;
}

/** A free TCP port on 127.0.0.1 (released before returning). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** A running process with line-wise stdout. */
export interface Proc extends AsyncDisposable {
  port: number;
  /** The process id. */
  pid: number;
  /** Resolves when stdout prints this line. */
  line(text: string, ms: number): Promise<void>;
  /** Resolves with the exit code. */
  exited: Promise<number>;
  /** Stops the process (SIGTERM, then SIGKILL after 5 s). */
  stop(): Promise<void>;
  /** Everything the process wrote to stderr so far. */
  stderr(): string;
}

export function spawn(
  cmd: string,
  args: string[],
  port: number,
  opts: { cwd?: string; env?: Record<string, string> } = {},
): Proc {
  const child = new Deno.Command(cmd, {
    args,
    ...(opts.env ? { env: opts.env } : {}),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
  }).spawn();
  const seen = new Set<string>();
  const waiters: { text: string; resolve: () => void }[] = [];
  let err = "";
  const decoder = new TextDecoder();
  const readOut = (async () => {
    let buf = "";
    for await (const chunk of child.stdout) {
      buf += decoder.decode(chunk, { stream: true });
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const l = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        seen.add(l);
        for (const w of waiters.filter((w) => w.text === l)) w.resolve();
      }
    }
  })();
  const readErr = (async () => {
    for await (const chunk of child.stderr) err += decoder.decode(chunk, { stream: true });
  })();
  const exited = child.status.then(async (s) => {
    await Promise.all([readOut, readErr]);
    return s.code;
  });
  let stopped: Promise<void> | undefined;
  const stop = () =>
    stopped ??= (async () => {
      try {
        await child.stdin.close();
      } catch { /* closed */ }
      try {
        child.kill("SIGTERM");
      } catch { /* exited */ }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const killed = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch { /* exited */ }
          resolve();
        }, 5000);
      });
      await Promise.race([exited, killed]);
      clearTimeout(timer);
      await exited;
    })();
  return {
    port,
    pid: child.pid,
    exited,
    stop,
    stderr: () => err,
    line(text, ms) {
      if (seen.has(text)) return Promise.resolve();
      let timer: ReturnType<typeof setTimeout> | undefined;
      return Promise.race([
        new Promise<void>((resolve) => waiters.push({ text, resolve })),
        exited.then((code) => {
          throw new Error(`${cmd} exited (${code}) before printing "${text}": ${err.slice(-2000)}`);
        }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new Error(`${cmd} did not print "${text}" within ${ms} ms: ${err.slice(-2000)}`),
              ),
            ms,
          );
        }),
      ]).finally(() => clearTimeout(timer));
    },
    [Symbol.asyncDispose]: stop,
  };
}

const LT_PEER = new URL("./peers/lt_peer.py", import.meta.url).pathname;

/**
 * Starts a libtorrent peer; resolves once it printed "ready" (seeding, or torrent added). `env` passes the
 * driver's knobs (LT_SETTINGS, LT_PEERLOG, LT_UPLOAD_LIMIT, see tests/peers/lt_peer.py).
 */
export async function startLibtorrent(
  role: "seed" | "leech",
  torrent: string,
  dir: string,
  peers: string[] = [],
  options: {
    profile?: "default" | "hps";
    port?: number;
    /** More environment for lt_peer.py: LT_SETTINGS, LT_PEERLOG, LT_UPLOAD_LIMIT. */
    env?: Record<string, string>;
  } = {},
): Promise<Proc> {
  const port = options.port ?? freePort();
  const p = spawn("/usr/bin/python3", [LT_PEER, role, torrent, dir, String(port), ...peers], port, {
    env: { LT_PROFILE: options.profile ?? "default", ...options.env },
  });
  try {
    await p.line("ready", 60_000);
  } catch (err) {
    await p.stop();
    throw err;
  }
  return p;
}

/** Starts Debian's opentracker (whitelist-only build) on 127.0.0.1 for these info hashes. */
export async function startOpentracker(
  infoHashes: Uint8Array[],
): Promise<Proc & { url: string; work: string }> {
  const work = await Deno.makeTempDir({ prefix: "seedbed-ot-" });
  await Deno.chmod(work, 0o755);
  await Deno.writeTextFile(
    join(work, "whitelist.txt"),
    infoHashes.map((h) => toHex(h) + "\n").join(""),
  );
  await Deno.chmod(join(work, "whitelist.txt"), 0o644);
  const port = freePort();
  const p = spawn("opentracker", [
    "-i",
    "127.0.0.1",
    "-p",
    String(port),
    "-P",
    String(port),
    "-d",
    work,
    "-w",
    "/whitelist.txt",
  ], port);
  // ready when the port answers
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      c.close();
      break;
    } catch {
      if (Date.now() > deadline) {
        await p.stop();
        throw new Error(`opentracker did not listen on ${port}: ${p.stderr()}`);
      }
      await new Promise((r) => setTimeout(r, 50)); // polling a port that has no event to wait for
    }
  }
  const stop = async () => {
    await p.stop();
    await Deno.remove(work, { recursive: true }).catch(() => {});
  };
  // the port opens before the whitelist is loaded: ready once it answers for a whitelisted hash
  const url = `http://127.0.0.1:${port}/announce`;
  const probe =
    `${url}?info_hash=${encodeBinary(infoHashes[0])}&peer_id=${"-PROBE-".padEnd(20, "x")}` +
    "&port=1&uploaded=0&downloaded=0&left=0&event=stopped&compact=1";
  for (let i = 0;; i++) {
    const text = await fetch(probe).then((r) => r.text(), () => "");
    if (text.startsWith("d") && !text.includes("not authorized")) break;
    if (i >= 100) {
      await stop();
      throw new Error(`opentracker did not accept the whitelisted hash: ${text}`);
    }
    await new Promise((r) => setTimeout(r, 50)); // no event tells when the whitelist is loaded
  }
  return { ...p, stop, [Symbol.asyncDispose]: stop, url, work };
}

/** Starts aria2c as a leecher of `torrent` into `dir`; `exited` resolves with its exit code. */
export function startAria2Leecher(torrent: string, dir: string): Proc {
  const port = freePort();
  return spawn("aria2c", [
    "--dir=" + dir,
    "--seed-time=0",
    "--enable-dht=false",
    "--enable-dht6=false",
    "--bt-enable-lpd=false",
    "--enable-peer-exchange=false",
    "--file-allocation=none",
    "--listen-port=" + port,
    "--bt-external-ip=127.0.0.1",
    "--check-integrity=true",
    "--console-log-level=warn",
    "--summary-interval=0",
    "--follow-torrent=false",
    "--bt-stop-timeout=120",
    torrent,
  ], port);
}
