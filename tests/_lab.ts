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
  /** A network namespace of our own (root, or unprivileged user namespaces): `unshare -n` and `ip`. */
  netns: runs("unshare", ["-n", "ip", "link", "set", "lo", "up"]),
};

/**
 * Runs a command in a network namespace of its own with loopback up and a multicast route on it: multicast and
 * every port stay inside (no other test shares them), nothing leaves the machine. Needs `have.netns`.
 */
export function inNetns(cmd: string, args: string[], port = 0): Proc {
  const quoted = [cmd, ...args].map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(" ");
  return spawn("unshare", [
    "-n",
    "sh",
    "-c",
    `ip link set lo up && ip route add 224.0.0.0/4 dev lo && exec ${quoted}`,
  ], port);
}

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

/**
 * A TCP port that was free a moment ago (released before returning).
 *
 * @deprecated Racy: another process can take the port before the program told to use it binds it (and a TCP port
 * says nothing about UDP). Bind port 0 and read the port back (the program prints it, or {@linkcode boundPorts});
 * for programs that cannot, {@linkcode withFreshPorts} with {@linkcode waitBound}. Kept only until the last
 * caller on another branch moves over.
 */
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
  /** Resolves with the match of the first stdout line (printed before or after the call) matching `pattern`. */
  match(pattern: RegExp, ms: number): Promise<RegExpExecArray>;
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
  const lines: string[] = [];
  const waiters: { test: (line: string) => boolean; resolve: (line: string) => void }[] = [];
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
        lines.push(l);
        for (const w of waiters.filter((w) => w.test(l))) w.resolve(l);
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
  const waitLine = (test: (l: string) => boolean, what: string, ms: number): Promise<string> => {
    const already = lines.find(test);
    if (already !== undefined) return Promise.resolve(already);
    let timer: ReturnType<typeof setTimeout> | undefined;
    return Promise.race([
      new Promise<string>((resolve) => waiters.push({ test, resolve })),
      exited.then((code): never => {
        throw new Error(`${cmd} exited (${code}) before printing ${what}: ${err.slice(-2000)}`);
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(new Error(`${cmd} did not print ${what} within ${ms} ms: ${err.slice(-2000)}`)),
          ms,
        );
      }),
    ]).finally(() => clearTimeout(timer));
  };
  const stop = stopper(child, exited);
  return {
    port,
    pid: child.pid,
    exited,
    stop,
    stderr: () => err,
    line(text, ms) {
      return waitLine((l) => l === text, `"${text}"`, ms).then(() => {});
    },
    match(pattern, ms) {
      return waitLine((l) => pattern.test(l), String(pattern), ms).then((l) => pattern.exec(l)!);
    },
    [Symbol.asyncDispose]: stop,
  };
}

const LT_PEER = new URL("./peers/lt_peer.py", import.meta.url).pathname;

/**
 * Starts a libtorrent peer; resolves once it printed "ready" (seeding, or torrent added). It binds a port the
 * system chooses (unless `port` is given) and reports it: `Proc.port` is the port it listens on.
 * `torrent` may be a magnet link for a leech (the metadata is fetched from its peers; it prints "metadata").
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
  const p = spawn(
    "/usr/bin/python3",
    [LT_PEER, role, torrent, dir, String(options.port ?? 0), ...peers],
    options.port ?? 0,
    { env: { LT_PROFILE: options.profile ?? "default", ...options.env } },
  );
  try {
    if (!options.port) p.port = Number((await p.match(/^port (\d+)$/, 60_000))[1]);
    await p.line("ready", 60_000);
  } catch (err) {
    await p.stop();
    throw err;
  }
  return p;
}

/** One line of lt_peer.py's LT_PEERLOG: one connected peer at one moment (see lt_peer.py). */
export interface PeerLogLine {
  /** Seconds since libtorrent started. */
  t: number;
  ip: string;
  port: number;
  client: string;
  rc4: boolean;
  plaintext_encrypted: boolean;
  utp: boolean;
  incoming: boolean;
  extensions: boolean;
  progress: number;
  /** Payload bytes libtorrent sent to / received from the peer. */
  up: number;
  down: number;
  /** Where libtorrent learnt the address: tracker, dht, pex, lsd, resume_data, incoming. */
  source: string[];
}

/** Every line of an LT_PEERLOG file so far. */
export async function readPeerLog(path: string): Promise<PeerLogLine[]> {
  const text = await Deno.readTextFile(path).catch(() => "");
  // the last line may be half written
  return text.split("\n").filter((l) => l.endsWith("}")).map((l) => JSON.parse(l));
}

/**
 * Resolves with the first LT_PEERLOG line that satisfies `test` (given the line and the index of its file when
 * several logs are watched). libtorrent writes the log every 0.25 s and tells nobody: polled every 100 ms,
 * bounded by `ms`.
 */
export async function waitPeerLog(
  path: string | string[],
  test: (l: PeerLogLine, file: number) => boolean,
  ms: number,
  what: string,
): Promise<PeerLogLine> {
  const deadline = Date.now() + ms;
  const paths = typeof path === "string" ? [path] : path;
  for (;;) {
    for (const [i, p] of paths.entries()) {
      const found = (await readPeerLog(p)).find((l) => test(l, i));
      if (found) return found;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The ports a process listens on (TCP) and has bound (UDP), from /proc: how a test learns the ports of a
 * program that binds port 0 but does not say which port it got.
 */
export async function boundPorts(pid: number): Promise<{ tcp: number[]; udp: number[] }> {
  const inodes = new Set<string>();
  for await (const fd of Deno.readDir(`/proc/${pid}/fd`)) {
    const link = await Deno.readLink(`/proc/${pid}/fd/${fd.name}`).catch(() => "");
    const m = /^socket:\[(\d+)\]$/.exec(link);
    if (m) inodes.add(m[1]);
  }
  const read = async (file: string, listenOnly: boolean) => {
    const ports: number[] = [];
    const text = await Deno.readTextFile(file).catch(() => "");
    for (const row of text.split("\n").slice(1)) {
      const f = row.trim().split(/\s+/);
      if (f.length < 10 || !inodes.has(f[9])) continue;
      if (listenOnly && f[3] !== "0A") continue; // TCP_LISTEN
      ports.push(parseInt(f[1].split(":")[1], 16));
    }
    return ports;
  };
  return {
    tcp: [...await read("/proc/net/tcp", true), ...await read("/proc/net/tcp6", true)],
    udp: [...await read("/proc/net/udp", false), ...await read("/proc/net/udp6", false)],
  };
}

/** A port a program was told to use was taken by another process: try again with other ports. */
export class PortTakenError extends Error {}

/**
 * Runs `start` with `count` ports, for programs that cannot bind port 0 and report what they got. The ports are
 * random, outside the system's ephemeral range (32768-60999: port-0 binds never take them); when one was
 * taken (another test chose it too), `start` throws {@linkcode PortTakenError} (see {@linkcode waitBound}) and
 * it runs again with fresh ports, up to 8 times.
 */
export async function withFreshPorts<T>(
  count: number,
  start: (ports: number[]) => Promise<T>,
): Promise<T> {
  for (let attempt = 1;; attempt++) {
    const ports = new Set<number>();
    while (ports.size < count) ports.add(21000 + Math.floor(Math.random() * 9000));
    try {
      return await start([...ports]);
    } catch (err) {
      if (!(err instanceof PortTakenError) || attempt >= 8) throw err;
    }
  }
}

/**
 * Waits until process `pid` listens on every TCP port in `tcp` (bounded); throws {@linkcode PortTakenError}
 * when it does not (the port was taken, or the program exited). Check this before talking to the program on
 * such a port: whoever holds the port answers.
 */
export async function waitBound(pid: number, tcp: number[], ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (let i = 0;; i++) {
    const bound = await boundPorts(pid).catch(() => undefined);
    if (bound && tcp.every((p) => bound.tcp.includes(p))) return;
    if (!bound || Date.now() > deadline) {
      throw new PortTakenError(`process ${pid} did not bind ${tcp.join(", ")}`);
    }
    await new Promise((r) => setTimeout(r, i < 20 ? 50 : 250)); // no event says when a program has bound
  }
}

/**
 * Starts Debian's opentracker (whitelist-only build) on 127.0.0.1 for these info hashes, on ports the system
 * chooses: `url` is its HTTP announce URL, `udpUrl` its UDP one (BEP 15).
 */
export async function startOpentracker(
  infoHashes: Uint8Array[],
): Promise<Proc & { url: string; udpUrl: string; work: string }> {
  const work = await Deno.makeTempDir({ prefix: "seedbed-ot-" });
  await Deno.chmod(work, 0o755);
  await Deno.writeTextFile(
    join(work, "whitelist.txt"),
    infoHashes.map((h) => toHex(h) + "\n").join(""),
  );
  await Deno.chmod(join(work, "whitelist.txt"), 0o644);
  // port 0 for both: no other test can hold them; read back which ports it got (it does not print them)
  const p = spawn("opentracker", [
    "-i",
    "127.0.0.1",
    "-p",
    "0",
    "-P",
    "0",
    "-d",
    work,
    "-w",
    "/whitelist.txt",
  ], 0);
  const stop = async () => {
    await p.stop();
    await Deno.remove(work, { recursive: true }).catch(() => {});
  };
  let ports = { tcp: [] as number[], udp: [] as number[] };
  for (let i = 0; ports.tcp.length === 0 || ports.udp.length === 0; i++) {
    if (i >= 200) {
      await stop();
      throw new Error(`opentracker did not bind its ports: ${p.stderr()}`);
    }
    if (i > 0) await new Promise((r) => setTimeout(r, 50)); // no event says when it has bound them
    ports = await boundPorts(p.pid);
  }
  const port = ports.tcp[0], udpPort = ports.udp[0];
  p.port = port;
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
  return {
    ...p,
    stop,
    [Symbol.asyncDispose]: stop,
    url,
    udpUrl: `udp://127.0.0.1:${udpPort}/announce`,
    work,
  };
}

/**
 * Starts aria2c as a leecher of `torrent` into `dir`; `exited` resolves with its exit code. It listens on the
 * first free port of a range outside the system's ephemeral ports (aria2 binds them in turn: no race), and
 * only dials: `Proc.port` is 0.
 */
export function startAria2Leecher(torrent: string, dir: string): Proc {
  return spawn("aria2c", [
    "--dir=" + dir,
    "--seed-time=0",
    "--enable-dht=false",
    "--enable-dht6=false",
    "--bt-enable-lpd=false",
    "--enable-peer-exchange=false",
    "--file-allocation=none",
    "--listen-port=20000-20999",
    "--bt-external-ip=127.0.0.1",
    "--check-integrity=true",
    "--console-log-level=warn",
    "--summary-interval=0",
    "--follow-torrent=false",
    "--bt-stop-timeout=120",
    torrent,
  ], 0);
}

/**
 * How a test or benchmark stops a child it started, once: stdin closed, SIGTERM, SIGKILL after 5 s, and the
 * child's exit (with its output read) awaited. Calling it again returns the same promise.
 */
export function stopper(child: Deno.ChildProcess, exited: Promise<unknown>): () => Promise<void> {
  let stopped: Promise<void> | undefined;
  return () =>
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
}
