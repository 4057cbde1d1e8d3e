/**
 * `seedbed daemon`: a {@linkcode Session} that runs until SIGINT/SIGTERM, driven over Transmission's RPC
 * (`transmission-remote`, Transmission's web client, Seedbed's own web page), with a watch folder. Torrents, their
 * state and the daemon's settings live in the state directory, so a restart — or a crash — carries on where it
 * stopped.
 *
 * @module
 */

import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { isLoopback } from "../_address.ts";
import { parseMetainfo } from "../metainfo.ts";
import { DuplicateTorrentError, Session } from "../session/session.ts";
import { RpcError } from "../rpc/errors.ts";
import { TransmissionRpc } from "../rpc/server.ts";
import { defaultSettings, type RpcSettings } from "../rpc/session_fields.ts";
import { torrentName } from "../rpc/torrent_fields.ts";
import type { EncryptionPolicy } from "../wire/encryption_policy.ts";
import { VERSION } from "../version.ts";
import { defaultStateDir, EXIT, UsageError } from "./_common.ts";
import { WatchDir } from "./watch_dir.ts";

/** Where the daemon writes; tests capture it. */
export interface DaemonIO {
  /** Writes to standard output. */
  stdout(text: string): void;
  /** Writes to standard error (the log). */
  stderr(text: string): void;
  /** Resolves on SIGINT / SIGTERM. */
  interrupted: Promise<void>;
}

const HELP = `Usage: seedbed daemon [options]

Runs torrents until stopped (SIGINT or SIGTERM: announces "stopped", saves everything, exits 0), driven over
Transmission's RPC: transmission-remote, Transmission's web client, and Seedbed's own web page at
http://127.0.0.1:9091/. Torrents, their state and these settings are kept in the state directory: a restart
carries on where the daemon stopped. Settings marked "saved" are remembered for the next start.

Options:
  -o, --dir DIR               where added torrents go (saved; default: the current directory)
      --state DIR             state directory (default: ~/.local/state/seedbed/daemon)
      --rpc-port PORT         port of the RPC and the web page (default: 9091)
      --rpc-bind ADDR         address of the RPC and the web page (default: 127.0.0.1, this machine only)
      --rpc-user USER         require HTTP Basic authentication as USER ...
      --rpc-password PASS     ... with this password (or set SEEDBED_RPC_PASSWORD)
      --rpc-host-whitelist H  host names the RPC answers to, besides IP addresses and localhost
                              (comma-separated, repeatable; "*.lan" for every name under lan)
  -p, --port PORT             peer port (saved; default: 51413; 0 = any free port)
      --peer-bind ADDR        address to accept peers on (default: every address)
      --watch DIR             add the .torrent files put in DIR (each renamed *.added once taken)
      --web-root DIR          serve Transmission's web client from DIR at /transmission/web/
                              (default: $TRANSMISSION_WEB_HOME; Debian: /usr/share/transmission/web)
      --dht, --no-dht         the DHT (saved; default: on; never for private torrents)
      --lsd, --no-lsd         local peer discovery by multicast (saved; default: off)
      --encryption MODE       required, preferred or tolerated (saved; default: preferred)
  -h, --help                  show this help

Security: the RPC answers only on --rpc-bind (127.0.0.1 unless told otherwise), asks every client for the
X-Transmission-Session-Id handshake (CSRF), answers only to IP addresses, localhost and --rpc-host-whitelist
names (DNS rebinding; others get 421), and with --rpc-user requires the password. Bound elsewhere than this
machine without a password, it says so at start.`;

/** The settings file in the state directory. */
const SETTINGS_FILE = "daemon.json";

/** The daemon's default state directory: `daemon/` in the command line's state directory. */
export function defaultDaemonStateDir(): string {
  const base = defaultStateDir();
  if (!base) throw new UsageError("no home directory: give --state DIR");
  return join(base, "daemon");
}

/**
 * Runs the daemon until interrupted or told to stop (`session-close`).
 *
 * @param args Arguments after `daemon`.
 * @param io The log and the interrupt.
 * @returns 0 once stopped cleanly.
 * @throws {UsageError} For a wrong command line.
 */
export async function runDaemon(args: string[], io: DaemonIO): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      dir: { type: "string", short: "o" },
      state: { type: "string" },
      "rpc-port": { type: "string" },
      "rpc-bind": { type: "string" },
      "rpc-user": { type: "string" },
      "rpc-password": { type: "string" },
      "rpc-host-whitelist": { type: "string", multiple: true },
      port: { type: "string", short: "p" },
      "peer-bind": { type: "string" },
      watch: { type: "string" },
      "web-root": { type: "string" },
      dht: { type: "boolean" },
      "no-dht": { type: "boolean" },
      lsd: { type: "boolean" },
      "no-lsd": { type: "boolean" },
      encryption: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    io.stdout(HELP + "\n");
    return EXIT.ok;
  }
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  const rpcPort = portNumber(values["rpc-port"] ?? "9091", "--rpc-port");
  const rpcBind = values["rpc-bind"] ?? "127.0.0.1";
  const user = values["rpc-user"];
  const password = values["rpc-password"] ?? env("SEEDBED_RPC_PASSWORD");
  if ((user === undefined) !== (password === undefined)) {
    throw new UsageError("--rpc-user and --rpc-password go together");
  }
  const allowedHosts = (values["rpc-host-whitelist"] ?? []).flatMap((h) => h.split(","))
    .map((h) => h.trim()).filter((h) => h !== "");
  if (values.encryption !== undefined && !ENCRYPTION[values.encryption]) {
    throw new UsageError(
      `--encryption: "${values.encryption}" is not required, preferred or tolerated`,
    );
  }
  if (values.dht && values["no-dht"]) throw new UsageError("--dht and --no-dht together");
  if (values.lsd && values["no-lsd"]) throw new UsageError("--lsd and --no-lsd together");

  const stateDir = resolve(values.state ?? defaultDaemonStateDir());
  await Deno.mkdir(stateDir, { recursive: true });
  const saved = await loadSettings(stateDir);
  const settings = saved ?? defaultSettings(Deno.cwd());
  if (values.dir !== undefined) settings.downloadDir = resolve(values.dir);
  if (values.port !== undefined) settings.peerPort = portNumber(values.port, "--port");
  if (values.dht || values["no-dht"]) settings.dht = values.dht === true;
  if (values.lsd || values["no-lsd"]) settings.lsd = values.lsd === true;
  if (values.encryption !== undefined) {
    settings.encryption = values.encryption as RpcSettings["encryption"];
  }
  await saveSettings(stateDir, settings);
  const webRoot = values["web-root"] ?? env("TRANSMISSION_WEB_HOME");
  if (webRoot !== undefined && !(await isFile(join(webRoot, "index.html")))) {
    throw new UsageError(`--web-root: ${webRoot} has no index.html`);
  }

  const log = (line: string) => io.stderr(`${timestamp()} ${line}\n`);
  const peerBind = values["peer-bind"];
  const follow = (session: Session, restored: () => boolean) => {
    session.addEventListener("added", (e) => {
      const t = e.detail.torrent;
      if (!restored()) return; // the torrents restored at start are counted, not listed
      log(
        `added #${t.id} ${printable(torrentName(t))}${
          t.hasMetadata ? "" : " (fetching its metadata)"
        }`,
      );
      t.addEventListener("metadata", () => log(`#${t.id} metadata received: ${printable(t.name)}`));
    });
    session.addEventListener("done", (e) => {
      const t = e.detail.torrent;
      log(`#${t.id} ${printable(torrentName(t))} is complete`);
    });
    session.addEventListener("removed", (e) => {
      log(`removed #${e.detail.torrent.id} ${printable(torrentName(e.detail.torrent))}`);
    });
    session.addEventListener("error", (e) => {
      const t = e.detail.torrent;
      log(`${t ? `#${t.id} ${printable(torrentName(t))}: ` : ""}${oneLine(e.detail.error)}`);
    });
  };
  const open = async (s: RpcSettings): Promise<Session> => {
    const session = new Session({
      port: s.peerPort,
      ...(peerBind ? { host: peerBind } : {}),
      basedir: s.downloadDir,
      stateDir,
      // the DHT runs on the peer port's UDP socket, beside uTP, as Transmission has it (one port to forward)
      dht: s.dht,
      lsd: s.lsd,
      ...(s.utp === false ? { utp: false } : {}),
      encryption: ENCRYPTION[s.encryption],
    });
    let restored = false;
    follow(session, () => restored);
    try {
      await session.ready;
      restored = true;
    } catch (err) {
      await session.close();
      throw new Error(`cannot start the session on peer port ${s.peerPort}: ${oneLine(err)}`);
    }
    return session;
  };

  let session = await open(settings);
  if (!saved && session.limits.altDownload === 0 && session.limits.altUpload === 0) {
    // a new daemon starts with Transmission's alternative limits rather than none
    session.setLimits({ altDownload: 50_000, altUpload: 50_000 });
  }
  const stop = Promise.withResolvers<string>();
  let restarting: Promise<void> = Promise.resolve();
  const rpc = new TransmissionRpc(session, {
    settings,
    stateDir,
    ...(webRoot ? { webRoot } : {}),
    ...(user !== undefined ? { username: user, password } : {}),
    allowedHosts,
    saveSettings: (s) =>
      void saveSettings(stateDir, s).catch((err) =>
        log(`cannot save the settings: ${oneLine(err)}`)
      ),
    close: () => stop.resolve("asked to stop over the RPC"),
    onError: (error, torrent) =>
      log(
        `${torrent ? `#${torrent.id} ${printable(torrentName(torrent))}: ` : ""}${oneLine(error)}`,
      ),
    restart: (next) =>
      restarting = restarting.then(async () => {
        const before = { ...settings, ...(await loadSettings(stateDir)) };
        log(`restarting the session for its new settings (${describeChange(before, next)})`);
        await session.close();
        try {
          session = await open(next);
        } catch (err) {
          log(`${oneLine(err)}: back to the previous settings`);
          Object.assign(next, before);
          session = await open(before);
          rpc.session = session;
          throw new RpcError(oneLine(err));
        }
        rpc.session = session;
        await saveSettings(stateDir, next);
      }),
  });

  let server: Deno.HttpServer;
  try {
    server = Deno.serve({
      hostname: rpcBind,
      port: rpcPort,
      onListen: () => {},
      onError: (err) => {
        log(`RPC: ${oneLine(err)}`);
        return new Response("500: Internal Server Error\n", { status: 500 });
      },
    }, rpc.handler);
  } catch (err) {
    rpc[Symbol.dispose]();
    await session.close();
    throw new Error(`cannot listen on ${rpcBind}:${rpcPort} for the RPC: ${oneLine(err)}`);
  }
  const rpcAddr = server.addr as Deno.NetAddr;
  const host = rpcAddr.hostname.includes(":") ? `[${rpcAddr.hostname}]` : rpcAddr.hostname;
  log(`seedbed ${VERSION} daemon: ${session.torrents.length} torrents, state in ${stateDir}`);
  log(
    `RPC and web page on http://${host}:${rpcAddr.port}/ (transmission-remote ${host}:${rpcAddr.port})` +
      (webRoot ? `, Transmission's web client at /transmission/web/` : ""),
  );
  log(
    `peers on port ${session.port}, DHT ${settings.dht ? "on" : "off"}, local discovery ` +
      `${settings.lsd ? "on" : "off"}, encryption ${settings.encryption}; downloads go to ` +
      settings.downloadDir,
  );
  if (user === undefined && !isLoopback(rpcBind)) {
    log(
      `warning: the RPC listens on ${rpcBind} without a password: anyone who can reach it controls ` +
        `this daemon (give --rpc-user and --rpc-password)`,
    );
  }

  let watch: WatchDir | undefined;
  if (values.watch !== undefined) {
    const dir = resolve(values.watch);
    watch = new WatchDir(dir, {
      add: async (bytes) => {
        const meta = await parseMetainfo(bytes);
        try {
          const t = await session.add(bytes, {
            basedir: settings.downloadDir,
            state: settings.startAddedTorrents ? "started" : "stopped",
            priorities: meta.files.map(() => 2),
          });
          return `as #${t.id}`;
        } catch (err) {
          if (!(err instanceof DuplicateTorrentError)) throw err;
          return `already there as #${err.existing.id}`;
        }
      },
      onTaken: (name, what) => log(`watch folder: took ${name} ${what}`),
      onError: (name, err) => log(`watch folder: cannot add ${name}: ${oneLine(err)}`),
    });
    await watch.start();
    log(`watching ${dir} for .torrent files`);
  }

  const why = await Promise.race([io.interrupted.then(() => "interrupted"), stop.promise]);
  log(`stopping (${why}): announcing "stopped" and saving the state`);
  await watch?.close();
  await server.shutdown();
  await restarting.catch(() => {});
  rpc[Symbol.dispose]();
  await session.close();
  log("stopped");
  return EXIT.ok;
}

const ENCRYPTION: Record<string, EncryptionPolicy> = {
  required: "require",
  preferred: "prefer",
  tolerated: "allow",
};

function portNumber(text: string, flag: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 65535) {
    throw new UsageError(`${flag}: "${text}" is not a port number`);
  }
  return n;
}

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // no --allow-env
  }
}

async function isFile(path: string): Promise<boolean> {
  return await Deno.stat(path).then((s) => s.isFile, () => false);
}

async function loadSettings(stateDir: string): Promise<RpcSettings | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(join(stateDir, SETTINGS_FILE));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
  try {
    const saved = JSON.parse(text);
    if (saved === null || typeof saved !== "object" || typeof saved.downloadDir !== "string") {
      return undefined;
    }
    const d = defaultSettings(saved.downloadDir);
    return {
      ...d,
      ...saved,
      remembered: { ...d.remembered, ...saved.remembered },
      stored: { ...d.stored, ...saved.stored },
    };
  } catch {
    return undefined; // torn or foreign: defaults
  }
}

async function saveSettings(stateDir: string, settings: RpcSettings): Promise<void> {
  const path = join(stateDir, SETTINGS_FILE);
  const tmp = `${path}.tmp`;
  await Deno.writeTextFile(tmp, JSON.stringify(settings, null, 2) + "\n");
  await Deno.rename(tmp, path);
}

function describeChange(a: RpcSettings, b: RpcSettings): string {
  const parts: string[] = [];
  if (a.peerPort !== b.peerPort) parts.push(`peer port ${a.peerPort} → ${b.peerPort}`);
  if (a.encryption !== b.encryption) parts.push(`encryption ${a.encryption} → ${b.encryption}`);
  if (a.dht !== b.dht) parts.push(`DHT ${b.dht ? "on" : "off"}`);
  if (a.lsd !== b.lsd) parts.push(`local discovery ${b.lsd ? "on" : "off"}`);
  if (a.utp !== b.utp) parts.push(`uTP ${b.utp ? "on" : "off"}`);
  return parts.join(", ") || "no change";
}

function timestamp(): string {
  const d = new Date();
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function oneLine(err: unknown): string {
  return printable((err instanceof Error ? err.message : String(err)).split("\n")[0]);
}

/** A name from a torrent, safe to print on one log line. */
function printable(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g, "\ufffd").slice(0, 200);
}
