import assert from "node:assert/strict";
import { join } from "node:path";
import { Bitfield } from "../src/bitfield.ts";
import { encode } from "../src/bencode.ts";
import { Client, type ClientOptions } from "../src/client.ts";
import type { Metainfo } from "../src/metainfo.ts";
import { PeerConnection } from "../src/peer.ts";
import { TrackerServer } from "../src/tracker/server.ts";
import { makeTorrent, nextEvent, sameFiles, type SpecFile, within } from "./_swarm.ts";

const PIECE = 64 * 1024;
const FILES: SpecFile[] = [
  { path: "a.bin", length: 3 * PIECE + 1000 },
  { path: "empty.txt", length: 0 },
  { path: "sub/b.bin", length: 5000 },
  { path: "sub/deeper/c.bin", length: 2 * PIECE + 17 },
];

async function setup(files = FILES, announce?: string[][]) {
  const root = await Deno.makeTempDir({ prefix: "seedbed-client-" });
  const seedDir = join(root, "seed");
  const { meta, bytes } = await makeTorrent(seedDir, "t", files, {
    pieceLength: PIECE,
    ...(announce ? { announce } : {}),
  });
  return { root, seedDir, meta, bytes, cleanup: () => Deno.remove(root, { recursive: true }) };
}

/** A client of `meta` on 127.0.0.1 without resume data (the seed when `basedir` holds the data). */
function open(
  meta: Metainfo,
  basedir: string,
  options: Partial<ClientOptions> = {},
): Promise<Client> {
  return Client.open({ metainfo: meta, basedir, host: "127.0.0.1", resumeFile: false, ...options });
}

/** A hostile seeder on 127.0.0.1: claims every piece and answers every request with `fill` bytes. */
function startLiar(meta: Metainfo, fill: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const liars: PeerConnection[] = [];
  const accepting = (async () => {
    for await (const conn of listener) {
      const all = new Bitfield(meta.pieceCount);
      all.setAll();
      const liar = new PeerConnection(conn, {
        infoHash: meta.infoHash,
        peerId: new TextEncoder().encode("-XX0000-liarliarliar"),
        pieceCount: meta.pieceCount,
        pieceLength: meta.pieceLength,
        totalLength: meta.length,
      }, {
        onReady: (p) => p.sendBitfield(all),
        onInterested: (p) => p.unchoke(),
        onRequest: (p, index, begin, length) =>
          p.sendPiece(index, begin, new Uint8Array(length).fill(fill)),
        onBlock() {},
      });
      liars.push(liar);
      void liar.start();
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async [Symbol.asyncDispose]() {
      listener.close();
      await accepting;
      for (const l of liars) await l[Symbol.asyncDispose]();
    },
  };
}

Deno.test("a seeder and a leecher transfer a multi-file torrent without a tracker", async () => {
  const { root, seedDir, meta, cleanup } = await setup();
  try {
    await using seeder = await open(meta, seedDir);
    assert.equal(seeder.seed, true);
    assert.equal(seeder.state, "active");
    const passes: number[] = [];
    await using leecher = await open(meta, join(root, "leech"), {
      onHashPass: (i) => passes.push(i),
      peers: [{ host: "127.0.0.1", port: seeder.port }],
    });
    assert.equal(leecher.complete, false);
    await within(20_000, "the download to complete", leecher.done);
    assert.equal(leecher.seed, true);
    assert.equal(leecher.left, 0);
    assert.equal(passes.length, meta.pieceCount);
    assert.ok(leecher.downloaded >= meta.length);
    assert.ok(await sameFiles(join(seedDir, "t"), join(root, "leech", "t"), FILES));
    // the empty file is created too (it has no piece to bring it)
    const empty = await Deno.stat(join(root, "leech", "t", "empty.txt"));
    assert.ok(empty.isFile);
    assert.equal(empty.size, 0);
  } finally {
    await cleanup();
  }
});

Deno.test("our own address (a tracker or PEX listing us) is never dialled; the seed on the next port is", async () => {
  const { root, seedDir, meta, cleanup } = await setup();
  try {
    await using seeder = await open(meta, seedDir);
    await using leecher = await open(meta, join(root, "leech"));
    const failures: string[] = [], met: string[] = [];
    leecher.addEventListener("peerfail", (e) => failures.push(e.detail.reason));
    leecher.addEventListener("peer", (e) => met.push(e.detail.address));
    const engine = leecher.engine!;
    // a dial starts at once when an address is added: none for ourselves, over either form of the address
    leecher.addPeer("127.0.0.1", leecher.port);
    leecher.addPeer("::ffff:127.0.0.1", leecher.port);
    assert.deepEqual(engine.connections, { live: 0, connecting: 0 });
    leecher.addPeer("127.0.0.1", seeder.port);
    assert.deepEqual(engine.connections, { live: 0, connecting: 1 });
    await within(20_000, "the download to complete", leecher.done);
    assert.deepEqual(met, [`127.0.0.1:${seeder.port}`]);
    assert.deepEqual(failures, []);
  } finally {
    await cleanup();
  }
});

Deno.test("the seed's accessors describe the torrent", async () => {
  const { seedDir, meta, cleanup } = await setup();
  try {
    await using c = await Client.open({
      metainfo: meta,
      basedir: seedDir,
      state: "stopped",
      resumeFile: false,
    });
    assert.deepEqual(c.infohash, meta.infoHash);
    assert.equal(c.peerid.length, 20);
    assert.match(new TextDecoder().decode(c.peerid.subarray(0, 8)), /^-SE\d{4}-$/);
    assert.ok(c.port > 0);
    assert.equal(c.size, meta.length);
    assert.equal(c.name, "t");
    assert.equal(c.pieceLength, PIECE);
    assert.equal(c.uploaded, 0);
    assert.equal(c.downloaded, 0);
    assert.equal(c.left, 0);
    assert.equal(c.state, "stopped");
    assert.equal(c.seed, true);
    assert.equal(c.complete, true);
    assert.deepEqual(c.wanted, new Uint8Array(Math.ceil(meta.pieceCount / 8)));
    assert.equal(c.bitfield.length, Math.ceil(meta.pieceCount / 8));
    assert.equal(c.files.length, FILES.length);
    assert.equal(c.files[0].path, join(seedDir, "t", "a.bin"));
    assert.equal(c.files[0].length, FILES[0].length);
    assert.equal(c.files[0].priority, 1);
    assert.deepEqual(c.peers, []);
    assert.deepEqual(c.trackers, []);
    // hashcheck with a list, one index, and nothing
    const passed: number[] = [];
    c.addEventListener("hashpass", (e) => passed.push(e.detail.index));
    await c.hashcheck([0, 1]);
    await c.hashcheck(2);
    assert.deepEqual(passed, [0, 1, 2]);
    await c.hashcheck();
    assert.equal(passed.length, 3 + meta.pieceCount);
  } finally {
    await cleanup();
  }
});

Deno.test("one seeder that uploads each piece once and three leechers that trade among themselves", async () => {
  await using tracker = new TrackerServer();
  const files = [{ path: "big.bin", length: 24 * PIECE + 123 }];
  const { root, seedDir, meta, cleanup } = await setup(files, [[tracker.url]]);
  try {
    await using seeder = await open(meta, seedDir, {
      uploadEachPieceOnce: true,
      tickMs: 100,
    });
    const leechers: Client[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        leechers.push(
          await Client.open({
            metainfo: meta,
            basedir: join(root, `leech${i}`),
            host: "127.0.0.1",
            resumeFile: false,
            tickMs: 100,
          }),
        );
      }
      await within(30_000, "three downloads", Promise.all(leechers.map((l) => l.done)));
      for (let i = 0; i < 3; i++) {
        assert.ok(await sameFiles(join(seedDir, "t"), join(root, `leech${i}`, "t"), files));
      }
      // the seeder sends each piece to one peer only (again only when the connection it went out on closed, which
      // happens when two peers dial each other at once, or the peer left without it): well under two copies in
      // all, so most of what the leechers got came from each other
      assert.ok(
        seeder.uploaded < 2 * meta.length,
        `seeder uploaded ${seeder.uploaded}, ${(seeder.uploaded / meta.length).toFixed(2)} copies`,
      );
      const fromPeers = leechers.reduce((n, l) => n + l.uploaded, 0);
      assert.ok(
        fromPeers >= 3 * meta.length - seeder.uploaded - 2 * PIECE,
        `leechers uploaded only ${fromPeers}`,
      );
    } finally {
      for (const l of leechers) await l.close();
    }
  } finally {
    await cleanup();
  }
});

Deno.test("paused: connections are made but no requests; start() resumes; stopped refuses peers", async () => {
  const { root, seedDir, meta, cleanup } = await setup();
  try {
    await using seeder = await open(meta, seedDir, {
      state: "paused",
    });
    assert.equal(seeder.state, "paused");
    await using leecher = await open(meta, join(root, "leech"), {
      state: "stopped",
    });
    assert.equal(leecher.state, "stopped");
    // stopped: incoming connections are refused (closed before any handshake)
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: leecher.port });
    const buf = new Uint8Array(68);
    const n = await conn.read(buf).catch(() => null);
    conn.close();
    assert.equal(n, null, "a stopped client closes incoming connections");
    // paused leecher connects to the paused seeder: a peer appears, nothing is requested
    const connected = nextEvent(leecher, "peer");
    await leecher.pause();
    leecher.addPeer("127.0.0.1", seeder.port);
    await within(10_000, "the paused peers to connect", connected);
    assert.equal(leecher.state, "paused");
    assert.equal(leecher.peers.length, 1);
    assert.equal(leecher.peers[0].outstanding, 0);
    assert.equal(leecher.downloaded, 0);
    await seeder.start();
    await leecher.start();
    await within(20_000, "the download after start()", leecher.done);
    assert.ok(leecher.seed);
  } finally {
    await cleanup();
  }
});

Deno.test("pausing a seed chokes its peers; starting it again unchokes them at once", async () => {
  const files = [{ path: "big.bin", length: 32 * PIECE }];
  const { root, seedDir, meta, cleanup } = await setup(files);
  try {
    // capped, so that the download still runs when the seed pauses; its ticks a minute apart, so that no choke
    // round does what pause() and start() must do themselves
    await using seeder = await open(meta, seedDir, { uploadLimit: 512 * 1024, tickMs: 60_000 });
    await using leecher = await open(meta, join(root, "leech"), {
      peers: [{ host: "127.0.0.1", port: seeder.port }],
    });
    await within(10_000, "a first piece", nextEvent(leecher, "piece"));
    await seeder.pause();
    assert.equal(seeder.peers.length, 1);
    assert.equal(seeder.peers[0].amChoking, true, "paused: the leecher is choked");
    assert.equal(seeder.peers[0].peerInterested, true);
    await seeder.start();
    assert.equal(seeder.peers[0].amChoking, false, "started: the interested leecher is unchoked");
    await within(30_000, "the download after start()", leecher.done);
    assert.ok(await sameFiles(join(seedDir, "t"), join(root, "leech", "t"), files));
  } finally {
    await cleanup();
  }
});

Deno.test("priority 0 never creates the file; priority 1000 finishes first", async () => {
  const files = [
    { path: "first.bin", length: 4 * PIECE },
    { path: "skipped.bin", length: 4 * PIECE + 100 },
    { path: "urgent.bin", length: 4 * PIECE },
  ];
  const { root, seedDir, meta, cleanup } = await setup(files);
  try {
    await using seeder = await open(meta, seedDir);
    const order: number[] = [];
    await using leecher = await open(meta, join(root, "leech"), {
      priorities: [1, 0, 1000],
      queueDepth: 4,
      state: "paused",
    });
    leecher.addEventListener("piece", (e) => order.push(e.detail.index));
    assert.equal(leecher.files[1].priority, 0);
    leecher.addPeer("127.0.0.1", seeder.port);
    await leecher.start();
    await within(20_000, "the selected files", leecher.done);
    assert.equal(leecher.complete, true);
    assert.equal(leecher.seed, false);
    await assert.rejects(Deno.stat(join(root, "leech", "t", "skipped.bin")), Deno.errors.NotFound);
    // urgent.bin's pieces (8-11, sharing none with skipped.bin's) arrive before first.bin's (0-3)
    const urgent = [9, 10, 11].map((i) => order.indexOf(i));
    const first = [0, 1, 2].map((i) => order.indexOf(i));
    assert.ok(Math.max(...urgent) < Math.min(...first), `order ${order}`);
    assert.ok(await sameFiles(join(seedDir, "t"), join(root, "leech", "t"), [files[0], files[2]]));
  } finally {
    await cleanup();
  }
});

Deno.test("stop then start again resumes without downloading anything twice", async () => {
  const { root, seedDir, meta, cleanup } = await setup();
  try {
    await using seeder = await open(meta, seedDir);
    const leechDir = join(root, "leech");
    const resumeFile = join(root, "leech.resume");
    {
      await using leecher = await Client.open({
        metainfo: meta,
        basedir: leechDir,
        host: "127.0.0.1",
        resumeFile,
        peers: [{ host: "127.0.0.1", port: seeder.port }],
      });
      await within(20_000, "the first download", leecher.done);
      await leecher.stop();
      assert.equal(leecher.state, "stopped");
    }
    await using again = await Client.open({
      metainfo: meta,
      basedir: leechDir,
      host: "127.0.0.1",
      resumeFile,
      peers: [{ host: "127.0.0.1", port: seeder.port }],
    });
    assert.equal(again.seed, true, "resume data restores every piece");
    await within(1000, "done on a complete torrent", again.done);
    assert.equal(again.downloaded, 0);
  } finally {
    await cleanup();
  }
});

Deno.test("a peer sending corrupt blocks causes a hash failure, is dropped, and the piece completes from another peer", async () => {
  const { root, seedDir, meta, cleanup } = await setup();
  try {
    await using liar = startLiar(meta, 0x55);
    {
      await using leecher = await open(meta, join(root, "leech"));
      const failed = nextEvent<{ index: number }>(leecher, "hashfail");
      const dropped = nextEvent<{ reason: string }>(leecher, "peerclose");
      leecher.addPeer("127.0.0.1", liar.port);
      await within(10_000, "a hash failure", failed);
      assert.match(
        (await within(10_000, "the liar dropped", dropped)).reason,
        /failed the hash check/,
      );
      await using seeder = await open(meta, seedDir);
      leecher.addPeer("127.0.0.1", seeder.port);
      await within(20_000, "the download from the honest seeder", leecher.done);
      assert.ok(await sameFiles(join(seedDir, "t"), join(root, "leech", "t"), FILES));
      assert.ok(
        !leecher.peers.some((p) => p.address === `127.0.0.1:${liar.port}`),
      );
    }
  } finally {
    await cleanup();
  }
});

Deno.test("pieceCache describes the part file of skipped files and restores it; files[i].priority is settable", async () => {
  // a.bin (0-197607) and empty/b.bin: piece 3 holds the end of a.bin and all of sub/b.bin
  const { root, seedDir, meta, cleanup } = await setup();
  try {
    await using seeder = await open(meta, seedDir);
    const leechDir = join(root, "leech");
    let cache;
    {
      await using leecher = await open(meta, leechDir, {
        priorities: [1, 1, 0, 1],
        peers: [{ host: "127.0.0.1", port: seeder.port }],
      });
      await within(20_000, "the wanted files", leecher.done);
      cache = leecher.pieceCache;
      assert.ok(
        cache && cache.pieces.length > 0,
        "boundary pieces of sub/b.bin are in the part file",
      );
      await assert.rejects(Deno.stat(join(leechDir, "t", "sub", "b.bin")), Deno.errors.NotFound);
    }
    await using again = await open(meta, leechDir, {
      priorities: [1, 1, 0, 1],
      pieceCache: cache,
      state: "stopped",
    });
    assert.deepEqual(again.pieceCache, cache);
    again.files[2].priority = 1;
    assert.equal(again.files[2].priority, 1);
    // sub/b.bin lies inside piece 3, which the part file already holds: raising the priority moves it out
    await again.setPriority(2, 1);
    assert.equal(again.complete, true);
    assert.ok(await sameFiles(join(seedDir, "t"), join(leechDir, "t"), FILES));
  } finally {
    await cleanup();
  }
});

Deno.test("a seeder dials a leecher that does not dial out (regression: seeds never dialed)", async () => {
  const { root, seedDir, meta, cleanup } = await setup();
  try {
    await using leecher = await open(meta, join(root, "leech"));
    await using seeder = await open(meta, seedDir);
    assert.ok(seeder.seed);
    seeder.addPeer("127.0.0.1", leecher.port);
    await within(20_000, "the download", leecher.done);
    assert.ok(await sameFiles(join(seedDir, "t"), join(root, "leech", "t"), FILES));
  } finally {
    await cleanup();
  }
});

Deno.test("smart ban: when a piece mixed blocks from a liar and an honest peer, only the liar is banned", async () => {
  const { root, seedDir, meta, cleanup } = await setup([{ path: "big.bin", length: 16 * PIECE }]);
  try {
    await using liar = startLiar(meta, 0x66);
    {
      await using seeder = await open(meta, seedDir);
      await using leecher = await open(meta, join(root, "leech"), {
        queueDepth: 2, // both peers get blocks of the same pieces
        state: "paused",
      });
      const closes: { address: string; reason: string }[] = [];
      leecher.addEventListener("peerclose", (e) => closes.push(e.detail));
      const liarAddress = `127.0.0.1:${liar.port}`;
      const seederAddress = `127.0.0.1:${seeder.port}`;
      const both = Promise.all([
        nextEvent<{ address: string }>(leecher, "peer", (d) => d.address === liarAddress),
        nextEvent<{ address: string }>(leecher, "peer", (d) => d.address === seederAddress),
      ]);
      leecher.addPeer("127.0.0.1", liar.port);
      leecher.addPeer("127.0.0.1", seeder.port);
      await within(10_000, "both peers", both);
      await leecher.start();
      await within(30_000, "the download", leecher.done);
      assert.ok(
        await sameFiles(join(seedDir, "t"), join(root, "leech", "t"), [{
          path: "big.bin",
          length: 16 * PIECE,
        }]),
      );
      const liarClose = closes.find((c) => c.address === liarAddress);
      assert.ok(liarClose, `the liar was not dropped: ${JSON.stringify(closes)}`);
      assert.match(liarClose.reason, /hash check/);
      assert.ok(
        !closes.some((c) => c.address === seederAddress && /hash check/.test(c.reason)),
        "honest seeder blamed",
      );
    }
  } finally {
    await cleanup();
  }
});

Deno.test("peer exchange (BEP 11): a leecher that knows only another leecher learns the seeder's address", async () => {
  const { root, seedDir, meta, cleanup } = await setup();
  try {
    await using seeder = await open(meta, seedDir, {
      tickMs: 50,
    });
    const seederAddress = `127.0.0.1:${seeder.port}`;
    // b stays paused, so it keeps its connection to the seeder without becoming a seed itself
    await using b = await open(meta, join(root, "b"), {
      tickMs: 50,
      state: "paused",
    });
    const bMet = nextEvent<{ address: string }>(b, "peer", (d) => d.address === seederAddress);
    b.addPeer("127.0.0.1", seeder.port);
    await within(10_000, "b to connect to the seeder", bMet);
    await using c = await open(meta, join(root, "c"), {
      tickMs: 50,
      state: "paused",
    });
    // either side may dial first (b tells both about each other), so recognise the seeder by its peer id
    const cMet = nextEvent<{ peerId: Uint8Array | undefined }>(
      c,
      "peer",
      (d) => d.peerId !== undefined && d.peerId.every((x, i) => x === seeder.peerid[i]),
    );
    c.addPeer("127.0.0.1", b.port);
    await within(10_000, "c and the seeder to hear of each other through b and connect", cMet);
    await c.start();
    await within(20_000, "c's download", c.done);
    assert.ok(await sameFiles(join(seedDir, "t"), join(root, "c", "t"), FILES));
  } finally {
    await cleanup();
  }
});

Deno.test("tight memory: a seeder recycling a 2-piece upload cache serves three leechers at once, byte-exact", async () => {
  const piece = 16 * 1024;
  const files = [{ path: "many.bin", length: 256 * piece + 77 }];
  const root = await Deno.makeTempDir({ prefix: "seedbed-client-" });
  const seedDir = join(root, "seed");
  const { meta } = await makeTorrent(seedDir, "t", files, { pieceLength: piece });
  try {
    // two pieces of upload memory: every request from three peers working on different pieces evicts, and
    // evicted buffers are read into again while blocks of them may still wait to be copied out
    await using seeder = await open(meta, seedDir, {
      uploadMemory: 2 * piece,
    });
    const failed = Promise.withResolvers<never>();
    const leechers: Client[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        leechers.push(
          await Client.open({
            metainfo: meta,
            basedir: join(root, `leech${i}`),
            host: "127.0.0.1",
            resumeFile: false,
            pieceMemory: 4 * piece, // the least: four pieces in memory at once
            onHashFail: (index) => failed.reject(new Error(`piece ${index} failed its hash check`)),
            peers: [{ host: "127.0.0.1", port: seeder.port }],
          }),
        );
      }
      await within(
        30_000,
        "three downloads",
        Promise.race([Promise.all(leechers.map((l) => l.done)), failed.promise]),
      );
      for (let i = 0; i < 3; i++) {
        assert.ok(await sameFiles(join(seedDir, "t"), join(root, `leech${i}`, "t"), files));
      }
    } finally {
      for (const l of leechers) await l.close();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("close() while a stop is still under way waits for it (regression: a seeding limit's stop outlived close)", async () => {
  // a tracker that answers at once, except the `stopped` announce, which takes a second
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    if (new URL(req.url).searchParams.get("event") === "stopped") {
      await new Promise((r) => setTimeout(r, 1000));
    }
    return new Response(encode({ interval: 1800, peers: new Uint8Array(0) }));
  });
  const { root, seedDir, meta, cleanup } = await setup(FILES, [[
    `http://127.0.0.1:${server.addr.port}/announce`,
  ]]);
  try {
    const seeder = new Client({
      metainfo: meta,
      basedir: seedDir,
      host: "127.0.0.1",
      resumeFile: join(root, "seed.resume"),
    });
    const announced = nextEvent<{ type: string }>(seeder, "tracker", (d) => d.type === "announce");
    await seeder.ready;
    await within(10_000, "the started announce", announced);
    let stopped = false;
    // what a seeding limit does from the tick, awaited by nobody: it waits for the `stopped` announce
    void seeder.engine!.stop().then(() => stopped = true);
    await seeder.close();
    assert.ok(stopped, "close() returned before the stop it met had finished");
  } finally {
    await server.shutdown();
    await cleanup();
  }
});
