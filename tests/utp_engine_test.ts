// uTP (BEP 29) in the engine: through the real Client / Session and the command line, against libtorrent with TCP
// switched off on its side (so nothing but uTP can carry the torrent), both directions, byte-exact; libtorrent's
// peer list (LT_PEERLOG, every 0.25 s) says the connection is uTP, and so does our PeerInfo. Then our own sessions:
// uTP and the DHT on the one peer port, the TCP fallback for a peer without uTP, a magnet link whose metadata comes
// over uTP.
import assert from "node:assert/strict";
import { join } from "node:path";
import { Client, type ClientOptions } from "../src/client.ts";
import { Session } from "../src/session/session.ts";
import type { PeerInfo } from "../src/swarm/types.ts";
import { openUdpSocket } from "../src/udp.ts";
import { spawnCli } from "./_cli.ts";
import { needs, type Proc, startLibtorrent } from "./_lab.ts";
import { makeTorrent, nextEvent, sameFiles, type SpecFile, within } from "./_swarm.ts";

const FILES: SpecFile[] = [
  { path: "blob.bin", length: 3 * 1024 * 1024 + 4321 },
  { path: "notes/readme.txt", length: 999 },
];
const PIECE = 64 * 1024;

/** libtorrent with TCP off in both directions: uTP or nothing. */
const UTP_ONLY = {
  enable_outgoing_tcp: false,
  enable_incoming_tcp: false,
  enable_outgoing_utp: true,
  enable_incoming_utp: true,
};

interface PeerListLine {
  ip: string;
  port: number;
  client: string;
  utp: boolean;
  incoming: boolean;
  up: number;
  down: number;
}

interface Lab extends AsyncDisposable {
  root: string;
  seedDir: string;
  torrent: string;
  bytes: Uint8Array;
  infoHashHex: string;
  /** libtorrent's peer list lines so far. */
  peerList(): Promise<PeerListLine[]>;
  /** Starts libtorrent, uTP only, logging its peer list. */
  libtorrent(role: "seed" | "leech", peers?: string[]): Promise<Proc>;
}

async function lab(): Promise<Lab> {
  const root = await Deno.makeTempDir({ prefix: "seedbed-utp-engine-" });
  const seedDir = join(root, "seed");
  const { meta, bytes } = await makeTorrent(seedDir, "pack", FILES, { pieceLength: PIECE });
  const torrent = join(root, "pack.torrent");
  await Deno.writeFile(torrent, bytes);
  const log = join(root, "peers.jsonl");
  const procs: Proc[] = [];
  return {
    root,
    seedDir,
    torrent,
    bytes,
    infoHashHex: meta.infoHashHex,
    async peerList() {
      const text = await Deno.readTextFile(log).catch(() => "");
      return text.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
    },
    async libtorrent(role, peers = []) {
      const p = await startLibtorrent(
        role,
        torrent,
        role === "seed" ? seedDir : join(root, "lt"),
        peers,
        {
          env: { LT_SETTINGS: JSON.stringify(UTP_ONLY), LT_PEERLOG: log },
        },
      );
      procs.push(p);
      return p;
    },
    async [Symbol.asyncDispose]() {
      for (const p of procs) await p.stop();
      await Deno.remove(root, { recursive: true });
    },
  };
}

/**
 * libtorrent's peer-list line about us (named from our peer id "SE…" or our extension handshake "Seedbed …"),
 * once it moved payload. The list is written every 0.25 s and tells nobody: polled every 100 ms, bounded.
 */
async function ltSawUs(l: Lab, ms = 20_000): Promise<PeerListLine> {
  const deadline = Date.now() + ms;
  for (;;) {
    const line = (await l.peerList()).find((x) =>
      /^(SE\b|Seedbed )/.test(x.client) && x.up + x.down > 0
    );
    if (line) return line;
    if (Date.now() > deadline) throw new Error(`libtorrent never listed us within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Our first connection whose handshakes are done. */
async function firstPeer(client: Client, what: string): Promise<PeerInfo> {
  const ready = () => client.peers.find((p) => p.peerId !== undefined);
  if (!ready()) await within(20_000, what, nextEvent(client, "peer", () => ready() !== undefined));
  return ready()!;
}

const base: Partial<ClientOptions> = { host: "127.0.0.1", resumeFile: false, trackers: false };

Deno.test({
  name: "Client downloads from a uTP-only libtorrent seed over uTP; both ends say uTP, byte-exact",
  ignore: needs("libtorrent"),
  async fn() {
    await using l = await lab();
    const lt = await l.libtorrent("seed");
    await using client = await Client.open({
      ...base,
      path: l.torrent,
      basedir: join(l.root, "ours"),
      peers: [{ host: "127.0.0.1", port: lt.port }],
    });
    const ours = await firstPeer(client, "the uTP connection to libtorrent");
    assert.equal(ours.transport, "utp");
    assert.equal(ours.incoming, false);
    assert.match(ours.client, /^libtorrent/);
    await within(60_000, "the download", client.done);
    assert.ok(await sameFiles(join(l.seedDir, "pack"), join(l.root, "ours", "pack"), FILES));
    const theirs = await ltSawUs(l);
    assert.equal(theirs.utp, true, JSON.stringify(theirs));
    assert.equal(theirs.incoming, true);
  },
});

Deno.test({
  name:
    "a uTP-only libtorrent leecher dials a Session and downloads everything over uTP; both ends say uTP",
  ignore: needs("libtorrent"),
  async fn() {
    await using l = await lab();
    await using session = await Session.open({ host: "127.0.0.1" });
    const seed = await session.add({ torrent: l.bytes }, { basedir: l.seedDir, trackers: false });
    await seed.ready;
    assert.ok(seed.complete);
    assert.equal(session.udpPort, session.port, "uTP on the peer port's number");
    const met = nextEvent(seed, "peer");
    const lt = await l.libtorrent("leech", [`127.0.0.1:${session.port}`]);
    await within(20_000, "libtorrent to dial us over uTP", met);
    const ours = seed.peers.find((p) => p.peerId)!;
    assert.equal(ours.transport, "utp");
    assert.equal(ours.incoming, true);
    await lt.line("done", 60_000);
    assert.ok(await sameFiles(join(l.seedDir, "pack"), join(l.root, "lt", "pack"), FILES));
    assert.ok(seed.uploaded >= FILES[0].length + FILES[1].length);
    const theirs = await ltSawUs(l);
    assert.equal(theirs.utp, true, JSON.stringify(theirs));
    assert.equal(theirs.incoming, false);
  },
});

Deno.test({
  name: "a magnet link's metadata and data come from a uTP-only libtorrent seed",
  ignore: needs("libtorrent"),
  async fn() {
    await using l = await lab();
    const lt = await l.libtorrent("seed");
    await using client = await Client.open({
      ...base,
      magnet: `magnet:?xt=urn:btih:${l.infoHashHex}&x.pe=127.0.0.1:${lt.port}`,
      basedir: join(l.root, "ours"),
      metadataTimeoutMs: 30_000,
    });
    await within(60_000, "the download", client.done);
    assert.ok(await sameFiles(join(l.seedDir, "pack"), join(l.root, "ours", "pack"), FILES));
    assert.equal((await ltSawUs(l)).utp, true);
  },
});

Deno.test({
  name:
    "CLI: seedbed downloads from a uTP-only libtorrent seed, and seedbed seed serves a uTP-only libtorrent leecher",
  ignore: needs("libtorrent"),
  async fn() {
    await using l = await lab();
    const common = ["--no-dht", "--no-trackers", "--state", join(l.root, "state"), "--json"];
    const lt1 = await l.libtorrent("seed");
    await using down = spawnCli([
      l.torrent,
      "-o",
      join(l.root, "ours"),
      "-p",
      "0",
      "--peer",
      `127.0.0.1:${lt1.port}`,
      ...common,
    ]);
    assert.equal(await within(90_000, "the download", down.exited), 0, down.stderr());
    assert.ok(await sameFiles(join(l.seedDir, "pack"), join(l.root, "ours", "pack"), FILES));
    assert.match(down.stderr(), /Listening on port \d+ \(TCP and uTP\)/);
    const first = await ltSawUs(l);
    assert.equal(first.utp, true, JSON.stringify(first));
    await lt1.stop();
    await Deno.remove(join(l.root, "peers.jsonl"));

    // the other way: our seeder's port, dialled by a uTP-only libtorrent
    await using seed = spawnCli(["seed", l.torrent, "-o", l.seedDir, "-p", "0", ...common]);
    const ready = await seed.event("ready", (e) => e.event === "ready", 60_000);
    const lt = await l.libtorrent("leech", [`127.0.0.1:${ready.port}`]);
    await lt.line("done", 90_000);
    assert.ok(await sameFiles(join(l.seedDir, "pack"), join(l.root, "lt", "pack"), FILES));
    const theirs = await ltSawUs(l);
    assert.equal(theirs.utp, true, JSON.stringify(theirs));
    assert.equal(theirs.incoming, false);
  },
});

// ---------------------------------------------------------------- our own sessions

const SMALL: SpecFile[] = [{ path: "s.bin", length: 600 * 1024 + 17 }];

Deno.test("a uTP-only Session downloads from a Session whose DHT shares the peer port with uTP", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-utp-sessions-" });
  try {
    const { bytes } = await makeTorrent(join(root, "seed"), "s", SMALL, { pieceLength: 32768 });
    await using seeder = await Session.open({
      host: "127.0.0.1",
      dht: { bootstrap: [], queryTimeoutMs: 500 },
    });
    assert.equal(seeder.dht?.port, seeder.port, "the DHT node runs on the peer port");
    assert.equal(seeder.udpPort, seeder.port);
    // the DHT answers on that port while uTP runs there
    await using probe = await Session.open({
      host: "127.0.0.1",
      tcp: false,
      dht: { bootstrap: [] },
    });
    assert.equal(await probe.dht!.ping("127.0.0.1", seeder.port), true);
    const s = await seeder.add({ torrent: bytes }, {
      basedir: join(root, "seed"),
      trackers: false,
    });
    await s.ready;
    const seen: [string, boolean][] = [];
    s.addEventListener("peer", () => {
      for (const p of s.peers) seen.push([p.transport, p.incoming]);
    });
    await using leecher = await Session.open({ host: "127.0.0.1", tcp: false });
    const l = await leecher.add({ torrent: bytes }, {
      basedir: join(root, "leech"),
      trackers: false,
      peers: [{ host: "127.0.0.1", port: seeder.port }],
    });
    await within(30_000, "the download", l.done);
    assert.ok(await sameFiles(join(root, "seed", "s"), join(root, "leech", "s"), SMALL));
    assert.deepEqual(seen, [["utp", true]]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a dual-stack Session takes uTP over IPv4 and IPv6 on one port number (two sockets)", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-utp-dual-" });
  try {
    const { bytes } = await makeTorrent(join(root, "seed"), "s", SMALL, { pieceLength: 32768 });
    await using seeder = await Session.open({}); // every IPv4 and IPv6 address
    assert.equal(seeder.udpPort, seeder.port);
    const s = await seeder.add({ torrent: bytes }, {
      basedir: join(root, "seed"),
      trackers: false,
    });
    await s.ready;
    const seen: string[] = [];
    s.addEventListener("peer", (e) => {
      const p = s.peers.find((x) => x.address === e.detail.address);
      seen.push(`${p?.transport} ${e.detail.address.startsWith("[") ? 6 : 4}`);
    });
    for (const [i, host] of ["127.0.0.1", "::1"].entries()) {
      await using leecher = await Session.open({ host: i === 0 ? "127.0.0.1" : "::1", tcp: false });
      const l = await leecher.add({ torrent: bytes }, {
        basedir: join(root, `leech${i}`),
        trackers: false,
        peers: [{ host, port: seeder.port }],
      });
      await within(30_000, `the download over ${host}`, l.done);
      assert.ok(await sameFiles(join(root, "seed", "s"), join(root, `leech${i}`, "s"), SMALL));
    }
    assert.deepEqual(seen, ["utp 4", "utp 6"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a peer without uTP is reached over TCP after the uTP attempt times out", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-utp-fallback-" });
  try {
    const { bytes } = await makeTorrent(join(root, "seed"), "s", SMALL, { pieceLength: 32768 });
    await using seed = await Client.open({
      ...base,
      torrent: bytes,
      basedir: join(root, "seed"),
      utp: false,
    });
    await using leech = await Client.open({
      ...base,
      torrent: bytes,
      basedir: join(root, "leech"),
      utpConnectTimeoutMs: 500,
      peers: [{ host: "127.0.0.1", port: seed.port }],
    });
    const fails: string[] = [];
    leech.addEventListener("peerfail", (e) => fails.push(e.detail.reason));
    const ours = await firstPeer(leech, "the TCP connection after the uTP attempt");
    assert.equal(ours.transport, "tcp");
    await within(30_000, "the download", leech.done);
    assert.ok(await sameFiles(join(root, "seed", "s"), join(root, "leech", "s"), SMALL));
    assert.deepEqual(fails, [], "a transport that falls back is not a failure");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("utp: false and tcp: false: nothing listens on UDP without a DHT, nothing on TCP without tcp", async () => {
  await using noUtp = await Session.open({ host: "127.0.0.1", utp: false });
  assert.equal(noUtp.udpPort, 0);
  assert.ok(noUtp.port > 0);
  await using noTcp = await Session.open({ host: "127.0.0.1", tcp: false });
  assert.ok(noTcp.port > 0);
  assert.equal(noTcp.port, noTcp.udpPort);
  await assert.rejects(
    Deno.connect({ hostname: "127.0.0.1", port: noTcp.port }).then((c) => c.close()),
    Deno.errors.ConnectionRefused,
  );
});

Deno.test({
  name:
    "PEX flags honoured: a peer that libtorrent exchanges without the uTP flag is dialled over TCP first (it also takes uTP)",
  ignore: needs("libtorrent"),
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "seedbed-utp-pex-" });
    const procs: Proc[] = [];
    try {
      const { bytes } = await makeTorrent(join(root, "c"), "t", [{
        path: "p.bin",
        length: 4 * 65536,
      }], {
        pieceLength: 65536,
      });
      const torrent = join(root, "t.torrent");
      await Deno.writeFile(torrent, bytes);
      // we hold only the first half, so nobody completes and every connection stays up until PEX is sent
      const file = await Deno.open(join(root, "c", "t", "p.bin"), { write: true });
      await file.truncate(2 * 65536);
      file.close();
      // B takes TCP and uTP but dials nobody; A dials B over TCP (so A's PEX lists B without the uTP flag)
      const bLog = join(root, "b.jsonl");
      const b = await startLibtorrent("leech", torrent, join(root, "b"), [], {
        env: {
          LT_SETTINGS: JSON.stringify({
            enable_incoming_utp: true,
            enable_outgoing_utp: false,
            enable_outgoing_tcp: false,
          }),
          LT_PEERLOG: bLog,
        },
      });
      procs.push(b);
      const a = await startLibtorrent("leech", torrent, join(root, "a"), [`127.0.0.1:${b.port}`], {
        env: {
          LT_SETTINGS: JSON.stringify({ enable_incoming_utp: true, enable_outgoing_utp: false }),
        },
      });
      procs.push(a);
      await a.line("connected", 20_000);
      await using client = await Client.open({
        ...base,
        torrent: bytes,
        basedir: join(root, "c"),
        peers: [{ host: "127.0.0.1", port: a.port }],
        utpFirst: "always", // as on the Internet: loopback peers are otherwise dialled over TCP first
      });
      const viaPex = nextEvent<{ address: string }>(
        client,
        "peer",
        (d) => d.address === `127.0.0.1:${b.port}`,
      );
      await within(30_000, "a connection to B learnt through PEX", viaPex);
      const peers = client.peers;
      const toA = peers.find((p) => p.address === `127.0.0.1:${a.port}`);
      const toB = peers.find((p) => p.address === `127.0.0.1:${b.port}`);
      assert.equal(toA?.transport, "utp", "uTP first where nothing says otherwise");
      assert.equal(toB?.source, "pex");
      assert.equal(toB?.transport, "tcp", "PEX said nothing of uTP for B: TCP first");
      // B's own record of us
      const deadline = Date.now() + 10_000;
      let line: PeerListLine | undefined;
      while (!line && Date.now() < deadline) {
        const text = await Deno.readTextFile(bLog).catch(() => "");
        line = text.split("\n").filter((x) => x).map((x) => JSON.parse(x) as PeerListLine)
          .find((x) => /^(SE\b|Seedbed )/.test(x.client));
        if (!line) await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(line, "B listed us");
      assert.equal(line.utp, false, JSON.stringify(line));
      assert.equal(line.incoming, true);
    } finally {
      for (const p of procs) await p.stop();
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test("UDP tracker announces go out from the peer port's UDP socket, beside uTP", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-utp-tracker-" });
  // a UDP tracker (BEP 15) that answers connect and announce and notes where they came from
  const tracker = await openUdpSocket({ host: "127.0.0.1" });
  const from: number[] = [];
  const announced = Promise.withResolvers<void>();
  tracker.onMessage(({ data, host, port }) => {
    const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const action = v.getUint32(8), tid = v.getUint32(12);
    from.push(port);
    const reply = new Uint8Array(action === 0 ? 16 : 20);
    const r = new DataView(reply.buffer);
    r.setUint32(0, action);
    r.setUint32(4, tid);
    if (action === 1) r.setUint32(8, 1800);
    void tracker.send(reply, host, port).then(() => action === 1 && announced.resolve());
  });
  try {
    const { bytes } = await makeTorrent(join(root, "seed"), "s", SMALL, {
      pieceLength: 32768,
      announce: [[`udp://127.0.0.1:${tracker.port}/announce`]],
    });
    await using session = await Session.open({ host: "127.0.0.1" });
    const t = await session.add({ torrent: bytes }, { basedir: join(root, "seed") });
    await within(15_000, "the announce", announced.promise);
    assert.deepEqual([...new Set(from)], [session.port], "connect and announce from the peer port");
    await t.stop();
  } finally {
    tracker.close();
    await Deno.remove(root, { recursive: true });
  }
});
