// Adapters for the real clients of the interop matrix, all with one shape: start a seeder or leecher of a
// torrent on 127.0.0.1 with a private scratch directory; `ready` once it seeds (or has the torrent, as a
// leecher); `done` once a leecher has verified everything; `stop()` ends every process it started, by PID.
//
// How each client must be set up on loopback (learned in ../shared/lab): Transmission 3 never dials loopback
// peers, so a Transmission leecher must be dialed by its seeder; qBittorrent and libtorrent need several
// connections per IP allowed; DHT, local discovery, UPnP/NAT-PMP, PEX and uTP are off everywhere.

import { join } from "node:path";
import type { Client } from "../../src/client.ts";
import type { PeerInfo } from "../../src/swarm/types.ts";
import { nextEvent, within } from "../_swarm.ts";
import {
  boundPorts,
  type Proc,
  spawn,
  startLibtorrent,
  waitBound,
  withFreshPorts,
} from "../_lab.ts";

/** A running real client. */
export interface RealPeer extends AsyncDisposable {
  /** Its BitTorrent port on 127.0.0.1. */
  port: number;
  /** Resolves when a leecher has every piece, verified. */
  done(ms: number): Promise<void>;
  /** Dials a peer (clients that can). */
  connect?(host: string, port: number): Promise<void>;
  /** Stops every process it started. */
  stop(): Promise<void>;
  /**
   * Its connected peers as it reports them (clients with an API): name, whether the link is encrypted and, where
   * the client says, whether it is uTP.
   */
  peers?(): Promise<{ client: string; encrypted: boolean; flags?: string; utp?: boolean }[]>;
}

/** How a real client is set up beyond the defaults. */
export interface ClientSetup {
  /** Protocol encryption required in and out (Transmission "required", qBittorrent "Require encryption"). */
  requireEncryption?: boolean;
  /** uTP on (Transmission "utp-enabled"; off by default here). */
  utp?: boolean;
}

/** Names of the clients in the matrix. */
export type ClientName = "libtorrent" | "qbittorrent" | "aria2" | "webtorrent" | "transmission";

const WT_DIR = new URL("./webtorrent/", import.meta.url).pathname;

function runs(cmd: string, args: string[]): boolean {
  try {
    return new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
}

/** Which clients are installed here. */
export const available: Record<ClientName, boolean> = {
  libtorrent: runs("/usr/bin/python3", ["-c", "import libtorrent"]),
  qbittorrent: runs("sh", ["-c", "command -v qbittorrent-nox"]),
  aria2: runs("aria2c", ["--version"]),
  webtorrent: runs("node", [
    "-e",
    `require.resolve("webtorrent", { paths: [${JSON.stringify(WT_DIR)}] })`,
  ]),
  transmission: runs("sh", ["-c", "command -v transmission-daemon"]),
};

async function waitFor<T>(
  what: string,
  ms: number,
  probe: () => Promise<T | undefined>,
  alive?: Proc,
): Promise<T> {
  // polls another process's state through its API: there is no event to wait for
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    if (alive && await Promise.race([alive.exited.then(() => true), Promise.resolve(false)])) {
      throw new Error(`${what}: the process exited: ${alive.stderr().slice(-1000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** libtorrent (python3-libtorrent). */
async function libtorrent(
  role: "seed" | "leech",
  torrent: string,
  dir: string,
  peers: string[],
): Promise<RealPeer> {
  const p = await startLibtorrent(role, torrent, dir, peers);
  return {
    port: p.port,
    done: (ms) => p.line("done", ms),
    stop: p.stop,
    [Symbol.asyncDispose]: p.stop,
  };
}

/** WebTorrent 3 (the engine of webtorrent-cli) on Node. */
async function webtorrent(
  role: "seed" | "leech",
  torrent: string,
  dir: string,
  peers: string[],
): Promise<RealPeer> {
  return await withFreshPorts(1, async ([port]) => {
    const p = spawn(
      "node",
      [join(WT_DIR, "wt_peer.mjs"), role, torrent, dir, String(port), ...peers],
      port,
      { cwd: WT_DIR },
    );
    try {
      await waitBound(p.pid, [port]);
      await p.line("ready", 60_000);
    } catch (err) {
      await p.stop();
      throw err;
    }
    return { port, done: (ms) => p.line("done", ms), stop: p.stop, [Symbol.asyncDispose]: p.stop };
  });
}

/** aria2c: leecher through a tracker only (it cannot be handed a peer), or seeder. */
async function aria2(role: "seed" | "leech", torrent: string, dir: string): Promise<RealPeer> {
  // aria2 binds the first free port of the range itself (no race); read back which one
  const p = spawn("aria2c", [
    `--dir=${dir}`,
    role === "seed" ? "--seed-ratio=0.0" : "--seed-time=0",
    ...(role === "seed"
      ? ["--check-integrity=true", "--bt-seed-unverified=false"]
      : ["--check-integrity=true"]),
    "--enable-dht=false",
    "--enable-dht6=false",
    "--bt-enable-lpd=false",
    "--enable-peer-exchange=false",
    "--file-allocation=none",
    "--listen-port=20000-20999",
    "--bt-external-ip=127.0.0.1",
    "--console-log-level=warn",
    "--summary-interval=0",
    "--bt-stop-timeout=120",
    torrent,
  ], 0);
  let port = 0;
  for (let i = 0; i < 200 && port === 0; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 50)); // no event says when it has bound
    port = (await boundPorts(p.pid).catch(() => ({ tcp: [] as number[] }))).tcp[0] ?? 0;
  }
  if (port === 0) {
    await p.stop();
    throw new Error(`aria2 did not listen: ${p.stderr().slice(-1000)}`);
  }
  return {
    port,
    async done(ms) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const code = await Promise.race([
        p.exited,
        new Promise<never>((_, reject) =>
          timer = setTimeout(() => reject(new Error("aria2 timed out")), ms)
        ),
      ]).finally(() => clearTimeout(timer));
      if (code !== 0) throw new Error(`aria2 exited ${code}: ${p.stderr().slice(-1000)}`);
    },
    stop: p.stop,
    [Symbol.asyncDispose]: p.stop,
  };
}

/** Transmission 3 (daemon, driven through its RPC), on ports of its own. */
function transmission(
  role: "seed" | "leech",
  torrent: string,
  dir: string,
  setup: ClientSetup = {},
): Promise<RealPeer> {
  return withFreshPorts(
    2,
    ([port, rpcPort]) => transmissionOn(role, torrent, dir, port, rpcPort, setup),
  );
}

async function transmissionOn(
  role: "seed" | "leech",
  torrent: string,
  dir: string,
  port: number,
  rpcPort: number,
  setup: ClientSetup = {},
): Promise<RealPeer> {
  const work = await Deno.makeTempDir({ prefix: "seedbed-tr-" });
  await Deno.writeTextFile(
    join(work, "settings.json"),
    JSON.stringify({
      "bind-address-ipv4": "127.0.0.1",
      "bind-address-ipv6": "::1",
      "dht-enabled": false,
      "lpd-enabled": false,
      "pex-enabled": false,
      "utp-enabled": setup.utp ?? false,
      "port-forwarding-enabled": false,
      "peer-port": port,
      "peer-port-random-on-start": false,
      // 0 = prefer plaintext, 2 = require encryption
      "encryption": setup.requireEncryption ? 2 : 0,
      "download-dir": dir,
      "incomplete-dir-enabled": false,
      "rename-partial-files": false,
      "rpc-enabled": true,
      "rpc-bind-address": "127.0.0.1",
      "rpc-port": rpcPort,
      "rpc-authentication-required": false,
      "rpc-whitelist-enabled": true,
      "rpc-whitelist": "127.0.0.1",
      "rpc-host-whitelist-enabled": false,
      "start-added-torrents": true,
      "ratio-limit-enabled": false,
      "idle-seeding-limit-enabled": false,
      "download-queue-enabled": false,
      "seed-queue-enabled": false,
      "queue-stalled-enabled": false,
      "message-level": 1,
    }),
  );
  const p = spawn("transmission-daemon", ["-f", "-g", work, "--log-error"], port);
  let session = "";
  const rpc = async (method: string, args: Record<string, unknown>) => {
    for (let attempt = 0; attempt < 2; attempt++) {
      const res = await fetch(`http://127.0.0.1:${rpcPort}/transmission/rpc`, {
        method: "POST",
        headers: { "X-Transmission-Session-Id": session },
        body: JSON.stringify({ method, arguments: args }),
      });
      if (res.status === 409) {
        session = res.headers.get("X-Transmission-Session-Id") ?? "";
        await res.body?.cancel();
        continue;
      }
      const json = await res.json();
      if (json.result !== "success") throw new Error(`transmission ${method}: ${json.result}`);
      return json.arguments;
    }
    throw new Error("transmission RPC session");
  };
  const stop = async () => {
    await p.stop();
    await Deno.remove(work, { recursive: true }).catch(() => {});
  };
  try {
    await waitBound(p.pid, [port, rpcPort]); // before any RPC: whoever holds the port would answer
    await waitFor("the Transmission RPC", 30_000, () => rpc("session-get", {}), p);
    const metainfo = (await Deno.readFile(torrent)).toBase64();
    await rpc("torrent-add", { metainfo, "download-dir": dir, paused: false });
    const status = async () =>
      (await rpc("torrent-get", { fields: ["percentDone", "status", "errorString"] })).torrents[0];
    if (role === "seed") {
      await rpc("torrent-verify", {});
      await waitFor("Transmission to seed", 60_000, async () => {
        const t = await status();
        return t && t.percentDone === 1 && t.status === 6 ? true : undefined;
      }, p);
    }
    return {
      port,
      done: (ms) =>
        waitFor("Transmission to finish", ms, async () => {
          const t = await status();
          return t && t.percentDone === 1 ? true : undefined;
        }, p).then(() => {}),
      async peers() {
        const t = (await rpc("torrent-get", { fields: ["peers"] })).torrents[0];
        return (t?.peers ?? []).map((
          x: { clientName: string; isEncrypted: boolean; isUTP: boolean },
        ) => ({
          client: x.clientName,
          encrypted: x.isEncrypted,
          utp: x.isUTP,
        }));
      },
      stop,
      [Symbol.asyncDispose]: stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** qBittorrent (qbittorrent-nox, driven through its Web API), on ports of its own. */
function qbittorrent(
  role: "seed" | "leech",
  torrent: string,
  dir: string,
  peers: string[],
  setup: ClientSetup = {},
): Promise<RealPeer> {
  return withFreshPorts(
    2,
    ([port, webPort]) => qbittorrentOn(role, torrent, dir, peers, port, webPort, setup),
  );
}

async function qbittorrentOn(
  role: "seed" | "leech",
  torrent: string,
  dir: string,
  peers: string[],
  port: number,
  webPort: number,
  setup: ClientSetup = {},
): Promise<RealPeer> {
  const work = await Deno.makeTempDir({ prefix: "seedbed-qbt-" });
  await Deno.mkdir(join(work, "qBittorrent", "config"), { recursive: true });
  await Deno.writeTextFile(
    join(work, "qBittorrent", "config", "qBittorrent.conf"),
    [
      "[LegalNotice]",
      "Accepted=true",
      "[Preferences]",
      "WebUI\\Address=127.0.0.1",
      `WebUI\\Port=${webPort}`,
      "WebUI\\LocalHostAuth=false",
      "WebUI\\CSRFProtection=false",
      "WebUI\\HostHeaderValidation=false",
      "WebUI\\UseUPnP=false",
      "Connection\\UPnP=false",
      "[BitTorrent]",
      "Session\\DHTEnabled=false",
      "Session\\LSDEnabled=false",
      "Session\\PeXEnabled=false",
      `Session\\Port=${port}`,
      "Session\\Interface=lo",
      "Session\\InterfaceName=lo",
      "Session\\InterfaceAddress=127.0.0.1",
      "Session\\BTProtocol=TCP",
      // 0 = allow encryption, 1 = require it
      `Session\\Encryption=${setup.requireEncryption ? 1 : 0}`,
      "Session\\MultiConnectionsPerIp=true",
      "Session\\QueueingSystemEnabled=false",
      `Session\\DefaultSavePath=${dir}`,
      "[Network]",
      "PortForwardingEnabled=false",
      "",
    ].join("\n"),
  );
  const p = spawn("qbittorrent-nox", [`--profile=${work}`], port);
  const api = `http://127.0.0.1:${webPort}/api/v2`;
  const stop = async () => {
    await p.stop();
    await Deno.remove(work, { recursive: true }).catch(() => {});
  };
  try {
    await waitBound(p.pid, [port, webPort]); // before any request: whoever holds the port would answer
    await waitFor("the qBittorrent Web API", 30_000, async () => {
      const r = await fetch(`${api}/app/version`);
      await r.body?.cancel();
      return r.ok ? true : undefined;
    }, p);
    const form = new FormData();
    form.append("torrents", new Blob([await Deno.readFile(torrent)]), "t.torrent");
    form.append("savepath", dir);
    form.append("paused", "false");
    const added = await fetch(`${api}/torrents/add`, { method: "POST", body: form });
    await added.body?.cancel();
    if (!added.ok) throw new Error(`qBittorrent add: HTTP ${added.status}`);
    const info = async () => (await (await fetch(`${api}/torrents/info`)).json())[0];
    const hash = await waitFor(
      "qBittorrent to load the torrent",
      10_000,
      async () => (await info())?.hash,
    );
    const connect = async (host: string, peerPort: number) => {
      const r = await fetch(`${api}/torrents/addPeers`, {
        method: "POST",
        body: new URLSearchParams({ hashes: hash, peers: `${host}:${peerPort}` }),
      });
      await r.body?.cancel();
    };
    if (role === "seed") {
      await waitFor("qBittorrent to seed", 60_000, async () => {
        const t = await info();
        return t?.progress === 1 && /UP$/.test(t.state) ? true : undefined;
      }, p);
    } else {
      for (const peer of peers) {
        const [h, pp] = [
          peer.slice(0, peer.lastIndexOf(":")),
          Number(peer.slice(peer.lastIndexOf(":") + 1)),
        ];
        // addPeers only works once the torrent is running: retried until it sticks
        await waitFor("qBittorrent to take the peer", 10_000, async () => {
          await connect(h, pp);
          const t = await info();
          return t && t.num_seeds + t.num_leechs > 0 || t?.progress === 1 ? true : undefined;
        }, p);
      }
    }
    return {
      port,
      connect,
      async peers() {
        const r = await (await fetch(`${api}/sync/torrentPeers?hash=${hash}`)).json();
        // flags: "E" RC4-encrypted traffic, "e" encrypted handshake (plaintext after it)
        return Object.values(r.peers ?? {}).map((x) => {
          const peer = x as { client: string; flags: string };
          return {
            client: peer.client,
            encrypted: /E/i.test(peer.flags),
            flags: peer.flags,
          };
        });
      },
      done: (ms) =>
        waitFor(
          "qBittorrent to finish",
          ms,
          async () => ((await info())?.progress === 1 ? true : undefined),
          p,
        ).then(
          () => {},
        ),
      stop,
      [Symbol.asyncDispose]: stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * Starts a real client.
 *
 * @param name Which client.
 * @param role Seeder (the data is in `dir`) or leecher (into `dir`).
 * @param peers Addresses ("127.0.0.1:PORT") to dial, for clients that can.
 * @param setup Settings beyond the defaults (encryption required: Transmission and qBittorrent).
 */
export function startClient(
  name: ClientName,
  role: "seed" | "leech",
  torrent: string,
  dir: string,
  peers: string[] = [],
  setup: ClientSetup = {},
): Promise<RealPeer> {
  switch (name) {
    case "libtorrent":
      return libtorrent(role, torrent, dir, peers);
    case "webtorrent":
      return webtorrent(role, torrent, dir, peers);
    case "aria2":
      return aria2(role, torrent, dir);
    case "transmission":
      return transmission(role, torrent, dir, setup);
    case "qbittorrent":
      return qbittorrent(role, torrent, dir, peers, setup);
  }
}

/** The other client's list of its peers, once it shows one (its API has no event to wait for: polled, bounded). */
export async function theirView(peer: RealPeer, ms = 20_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const peers = await peer.peers!().catch(() => []);
    if (peers.length > 0) return peers;
    if (Date.now() > deadline) throw new Error(`no peer listed within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Our client's view of its first connection whose handshakes are done. */
export async function ourView(client: Client): Promise<PeerInfo> {
  const ready = () => client.peers.find((p) => p.peerId !== undefined);
  if (!ready()) {
    await within(20_000, "a connection", nextEvent(client, "peer", () => ready() !== undefined));
  }
  return ready()!;
}
