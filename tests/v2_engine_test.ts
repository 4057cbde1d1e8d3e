// BitTorrent v2 (BEP 52) and hybrid torrents in the engine, Seedbed against Seedbed on loopback: magnet links whose
// piece layers come over the wire (hash request / hashes), the hybrid handshake upgrade, the v2 bit.
import assert from "node:assert/strict";
import { join } from "node:path";
import { toHex } from "../src/_bytes.ts";
import { Client } from "../src/client.ts";
import { createTorrent } from "../src/create.ts";
import { formatMagnet } from "../src/magnet.ts";
import { type Metainfo, missingPieceLayers, parseMetainfo } from "../src/metainfo.ts";
import { PeerConnection } from "../src/peer.ts";
import { Session } from "../src/session/session.ts";
import { payload, type SpecFile, within } from "./_swarm.ts";

const FILES: SpecFile[] = [
  { path: "big.bin", length: 1300 * 16384 + 77 }, // 1301 pieces of 16 KiB: three chunks of the piece layer
  { path: "small.txt", length: 999 },
  { path: "sub/mid.bin", length: 5 * 16384 + 3 },
];

async function seedFixture(
  root: string,
  version: 2 | "hybrid",
  pieceLength = 16384,
): Promise<{ meta: Metainfo; bytes: Uint8Array; seedDir: string }> {
  const seedDir = join(root, "seed");
  let seed = 1;
  for (const f of FILES) {
    const path = join(seedDir, "pack", f.path);
    await Deno.mkdir(join(path, ".."), { recursive: true });
    await Deno.writeFile(path, payload(f.length, seed++));
  }
  const bytes = await createTorrent(join(seedDir, "pack"), { version, pieceLength });
  return { meta: await parseMetainfo(bytes), bytes, seedDir };
}

async function same(a: string, b: string): Promise<void> {
  for (const f of FILES) {
    assert.deepEqual(
      await Deno.readFile(join(b, f.path)),
      await Deno.readFile(join(a, f.path)),
      f.path,
    );
  }
}

for (const version of [2, "hybrid"] as const) {
  Deno.test(`a ${version === 2 ? "btmh" : "hybrid"} magnet link downloads from a Seedbed seeder, piece layers fetched with hash requests`, async () => {
    const root = await Deno.makeTempDir({ prefix: "seedbed-v2-magnet-" });
    try {
      const { meta, seedDir } = await seedFixture(root, version);
      await using seeder = await Client.open({
        metainfo: meta,
        basedir: seedDir,
        host: "127.0.0.1",
        resumeFile: false,
      });
      assert.equal(seeder.seed, true);
      const magnet = formatMagnet({
        ...(version === "hybrid" ? { infoHash: meta.infoHash } : {}),
        infoHashV2: meta.infoHashV2!,
        peers: [{ host: "127.0.0.1", port: seeder.port }],
      });
      const layers = Promise.withResolvers<void>();
      await using leecher = await Client.open({
        magnet,
        basedir: join(root, "leech"),
        host: "127.0.0.1",
        resumeFile: false,
      });
      leecher.addEventListener("piecelayers", () => layers.resolve());
      if (missingPieceLayers(leecher.metainfo).length === 0) layers.resolve();
      assert.equal(leecher.infohashHex, meta.infoHashHex);
      assert.equal(leecher.metainfo.version, version);
      await within(30_000, "the download", leecher.done);
      await within(10_000, "the piece layers", layers.promise);
      assert.deepEqual(missingPieceLayers(leecher.metainfo), []);
      await same(join(seedDir, "pack"), join(root, "leech", "pack"));
      // the .torrent made from the magnet link is whole: parses strictly, with the seeder's layers
      const whole = await parseMetainfo(leecher.torrentFile);
      assert.equal(whole.infoHashV2Hex, meta.infoHashV2Hex);
      assert.deepEqual(whole.pieceLayers, meta.pieceLayers);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  });
}

Deno.test("a hybrid torrent's connections: the v2 bit is set, a SHA-1 handshake with it is answered with the v2 hash, hash messages are for v2 connections only", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-v2-upgrade-" });
  try {
    const { meta, seedDir } = await seedFixture(root, "hybrid");
    await using seeder = await Client.open({
      metainfo: meta,
      basedir: seedDir,
      host: "127.0.0.1",
      resumeFile: false,
    });
    const v2 = meta.infoHashV2!.subarray(0, 20);
    const big = meta.files.find((f) => f.path.at(-1) === "big.bin")!;
    const request = {
      piecesRoot: big.piecesRoot!,
      baseLayer: 0,
      index: 512,
      length: 512,
      proofLayers: 10,
    };
    // "v2": dialling with the truncated v2 hash (as a peer that found it under that hash does)
    for (const how of ["upgrade", "v2", "v1"] as const) {
      const upgrade = how !== "v1";
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: seeder.port });
      const answered = Promise.withResolvers<number>();
      const closed = Promise.withResolvers<string>();
      const peer = new PeerConnection(conn, {
        infoHash: how === "v2" ? v2 : meta.infoHash,
        // without the v2 bit the seeder keeps to v1; pretending the SHA-1 is our v2 hash lets us send a hash
        // request on that v1 connection anyway
        ...(upgrade ? { v2: how === "upgrade", infoHashV2: v2 } : { infoHashV2: meta.infoHash }),
        peerId: new TextEncoder().encode("-XX0001-upgradetest0"),
        pieceCount: meta.pieceCount,
        pieceLength: meta.pieceLength,
        totalLength: meta.length,
      }, {
        onBlock() {},
        onHashMessage: (_p, id) => answered.resolve(id),
        onClose: (_p, reason) => closed.resolve(reason),
      });
      try {
        assert.equal(await within(10_000, "the handshake", peer.start()), true);
        assert.equal(peer.remoteHandshake!.v2, true, "the seeder sets the v2 bit");
        if (upgrade) assert.equal(peer.speaksV2, true);
        assert.deepEqual(peer.remoteHandshake!.infoHash, upgrade ? v2 : meta.infoHash);
        peer.requestHashes(request);
        if (upgrade) {
          assert.equal(await within(10_000, "the answer", answered.promise), 22, "hashes");
        } else {
          // a hash message on a v1 connection is a protocol violation: the seeder hangs up
          assert.match(await within(10_000, "the seeder to hang up", closed.promise), /closed/);
        }
      } finally {
        await peer[Symbol.asyncDispose]();
      }
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("tracker left leaves out padding; a hybrid is announced under both hashes", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-v2-left-" });
  try {
    const { meta } = await seedFixture(root, "hybrid");
    const announced: { hash: string; left: number }[] = [];
    const got = Promise.withResolvers<void>();
    await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
      const url = new URL(req.url);
      const raw = url.search.match(/info_hash=([^&]*)/)![1];
      const hash = toHex(Uint8Array.from(
        unescape(raw).split("").map((c) => c.charCodeAt(0)),
      ));
      announced.push({ hash, left: Number(url.searchParams.get("left")) });
      if (announced.length >= 2) got.resolve();
      return new Response("d8:intervali1800e5:peers0:e");
    });
    const dataLength = FILES.reduce((n, f) => n + f.length, 0);
    assert.ok(meta.length > dataLength, "the hybrid has padding");
    const withTracker = await parseMetainfo(
      await createTorrent(join(root, "seed", "pack"), {
        version: "hybrid",
        pieceLength: 16384,
        announce: [[`http://127.0.0.1:${server.addr.port}/announce`]],
      }),
    );
    await using leecher = await Client.open({
      metainfo: withTracker,
      basedir: join(root, "empty"),
      host: "127.0.0.1",
      resumeFile: false,
    });
    await within(10_000, "two announces", got.promise);
    assert.deepEqual(
      new Set(announced.map((a) => a.hash)),
      new Set([withTracker.infoHashHex, withTracker.infoHashV2Hex!.slice(0, 40)]),
    );
    for (const a of announced) assert.equal(a.left, dataLength);
    assert.equal(leecher.left, meta.length);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a Session's state directory keeps a btmh magnet link's .torrent with its piece layers once they arrive", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-v2-state-" });
  try {
    const { meta, seedDir } = await seedFixture(root, 2);
    await using seeder = await Client.open({
      metainfo: meta,
      basedir: seedDir,
      host: "127.0.0.1",
      resumeFile: false,
    });
    const stateDir = join(root, "state");
    {
      await using session = await Session.open({
        host: "127.0.0.1",
        basedir: join(root, "leech"),
        stateDir,
        dht: false,
      });
      const t = await session.add({
        magnet: formatMagnet({
          infoHashV2: meta.infoHashV2!,
          peers: [{ host: "127.0.0.1", port: seeder.port }],
        }),
      });
      await within(30_000, "the download", t.done);
      assert.deepEqual(missingPieceLayers(t.metainfo), []);
    }
    // written when the layers came (and on close): the saved file is a whole v2 torrent
    const saved = await parseMetainfo(
      await Deno.readFile(join(stateDir, "torrents", `${meta.infoHashHex}.torrent`)),
    );
    assert.deepEqual(saved.pieceLayers, meta.pieceLayers);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
