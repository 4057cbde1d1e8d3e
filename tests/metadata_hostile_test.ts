// Bad metadata from peers (BEP 9): wrong bytes, sizes that disagree, absurd sizes. A magnet download must reject
// them without harm and still complete from the honest peer.

import assert from "node:assert/strict";
import { join } from "node:path";
import { decode } from "../src/bencode.ts";
import { Client } from "../src/client.ts";
import { formatMagnet } from "../src/magnet.ts";
import { encodeExtended } from "../src/wire/messages.ts";
import { encodeExtensionHandshake } from "../src/wire/extension.ts";
import { decodeMetadataMessage, encodeMetadataMessage } from "../src/wire/metadata.ts";
import { makeTorrent, payload, sameFiles, within } from "./_swarm.ts";

const FILES = Array.from(
  { length: 400 },
  (_, i) => ({ path: `dir-${i % 9}/file-number-${i}.bin`, length: 500 + i }),
);

type Lie = "wrong-bytes" | "other-size" | "huge-size";

/**
 * A fake peer that offers the torrent's metadata and lies about it; counts the connections it got and how many
 * the other side closed.
 */
function liar(infoHash: Uint8Array, realSize: number, lie: Lie) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const stats = { connections: 0, closedByClient: 0, piecesServed: 0 };
  const handshaken = Promise.withResolvers<void>();
  const dropped = Promise.withResolvers<void>();
  const size = lie === "other-size" ? realSize + 777 : lie === "huge-size" ? 1 << 30 : realSize;
  const conns = new Set<Deno.Conn>();
  const serve = async (conn: Deno.Conn) => {
    stats.connections++;
    conns.add(conn);
    const buf = new Uint8Array(1 << 20);
    let have = 0;
    const readAtLeast = async (n: number) => {
      while (have < n) {
        const r = await conn.read(buf.subarray(have));
        if (r === null) throw new Error("closed");
        have += r;
      }
    };
    const consume = (n: number) => {
      buf.copyWithin(0, n, have);
      have -= n;
    };
    try {
      await readAtLeast(68);
      consume(68);
      const hs = new Uint8Array(68);
      hs[0] = 19;
      hs.set(new TextEncoder().encode("BitTorrent protocol"), 1);
      hs[25] = 0x10; // extension protocol
      hs.set(infoHash, 28);
      hs.set(payload(20, 77), 48);
      await conn.write(hs);
      await conn.write(
        encodeExtended(0, encodeExtensionHandshake({ m: { ut_metadata: 3 }, metadata_size: size })),
      );
      handshaken.resolve();
      for (let i = 0; i < 10_000; i++) {
        await readAtLeast(4);
        const len = new DataView(buf.buffer).getUint32(0);
        await readAtLeast(4 + len);
        const frame = buf.slice(4, 4 + len);
        consume(4 + len);
        if (len < 2 || frame[0] !== 20) continue;
        if (frame[1] === 0) {
          const hsDict = decode(frame.subarray(2)) as { m: Record<string, number> };
          (conn as unknown as { remoteId: number }).remoteId = hsDict.m["ut_metadata"];
          continue;
        }
        const m = decodeMetadataMessage(frame.subarray(2));
        if (m.type !== "request") continue;
        const remoteId = (conn as unknown as { remoteId: number }).remoteId;
        const length = Math.min(16384, size - m.piece * 16384);
        stats.piecesServed++;
        await conn.write(encodeExtended(
          remoteId,
          encodeMetadataMessage({
            type: "data",
            piece: m.piece,
            totalSize: size,
            data: payload(length, 1000 + m.piece),
          }),
        ));
      }
    } catch {
      stats.closedByClient++;
      dropped.resolve();
    } finally {
      conns.delete(conn);
      try {
        conn.close();
      } catch { /* closed */ }
    }
  };
  const running: Promise<void>[] = [];
  const accepting = (async () => {
    for await (const conn of listener) running.push(serve(conn));
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    stats,
    /** Resolves once a client got the liar's extension handshake (with its metadata size). */
    handshaken: handshaken.promise,
    /** Resolves once a client closed a connection to the liar. */
    dropped: dropped.promise,
    async close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await accepting;
      await Promise.all(running);
    },
  };
}

/**
 * A door in front of a peer: connections are accepted at once, the first `drops` are hung up on, and the others
 * reach the peer (127.0.0.1:`port`) once `open()` is called (at once with `open: true`). The honest seeder sits
 * behind one, so that the liar is always judged first; a peer that restarts is one that hangs up first.
 */
function gate(port: number, options: { drops?: number; open?: boolean } = {}) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const opened = Promise.withResolvers<void>();
  if (options.open) opened.resolve();
  const stats = { connections: 0 };
  const conns = new Set<Deno.Conn>();
  const pipes: Promise<void>[] = [];
  const relay = async (down: Deno.Conn) => {
    await opened.promise;
    const up = await Deno.connect({ hostname: "127.0.0.1", port });
    conns.add(up);
    await Promise.all([
      down.readable.pipeTo(up.writable).catch(() => {}),
      up.readable.pipeTo(down.writable).catch(() => {}),
    ]);
  };
  const accepting = (async () => {
    for await (const down of listener) {
      if (++stats.connections <= (options.drops ?? 0)) {
        down.close();
        continue;
      }
      conns.add(down);
      pipes.push(relay(down).catch(() => {}));
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    stats,
    open: () => opened.resolve(),
    async close() {
      listener.close();
      opened.resolve();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed by its pipe */ }
      }
      await accepting;
      await Promise.all(pipes);
    },
  };
}

for (const lie of ["wrong-bytes", "other-size", "huge-size"] as const) {
  Deno.test(`bad metadata (${lie}) from one peer is rejected; the download completes from the honest one`, async () => {
    const root = await Deno.makeTempDir({ prefix: "seedbed-badmeta-" });
    try {
      const { meta } = await makeTorrent(join(root, "seed"), "m", FILES, { pieceLength: 16384 });
      assert.ok(meta.info.length > 16384);
      const bad = liar(meta.infoHash, meta.info.length, lie);
      try {
        await using seeder = await Client.open({
          metainfo: meta,
          basedir: join(root, "seed"),
          host: "127.0.0.1",
          resumeFile: false,
        });
        // the honest seeder is reachable only once the liar was judged: dropped after serving its bad metadata,
        // or (announcing 1 GiB) merely heard
        const door = gate(seeder.port);
        try {
          const judged = lie === "huge-size" ? bad.handshaken : bad.dropped;
          judged.then(door.open, () => {});
          const magnet = formatMagnet({
            infoHash: meta.infoHash,
            peers: [{ host: "127.0.0.1", port: door.port }, { host: "127.0.0.1", port: bad.port }],
          });
          await using leecher = await Client.open({
            magnet,
            basedir: join(root, "leech"),
            host: "127.0.0.1",
            resumeFile: false,
            metadataTimeoutMs: 30_000,
            utp: false, // the liar and the door speak TCP only: dialled over TCP, not after a uTP attempt
          });
          assert.equal(leecher.infohashHex, meta.infoHashHex);
          await within(30_000, "the download", leecher.done);
          assert.ok(await sameFiles(join(root, "seed", "m"), join(root, "leech", "m"), FILES));
          const size = lie === "other-size" ? meta.info.length + 777 : meta.info.length;
          if (lie === "huge-size") {
            // never asked for anything: the metadata came from the honest peer
            assert.equal(bad.stats.piecesServed, 0, "asked a peer announcing 1 GiB");
          } else {
            // the liar was asked for its whole (bad) metadata, which was checked, refused, and the liar dropped
            const pieces = Math.ceil(size / 16384);
            assert.ok(
              bad.stats.piecesServed >= pieces,
              `the liar served ${bad.stats.piecesServed} of ${pieces} pieces`,
            );
            assert.ok(bad.stats.closedByClient >= 1);
          }
        } finally {
          await door.close();
        }
      } finally {
        await bad.close();
      }
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  });
}

Deno.test("a magnet link whose only peer serves wrong metadata fails with a clear error", async () => {
  const infoHash = payload(20, 5);
  const bad = liar(infoHash, 40_000, "wrong-bytes");
  try {
    const client = new Client({
      magnet: formatMagnet({ infoHash, peers: [{ host: "127.0.0.1", port: bad.port }] }),
      basedir: "/tmp",
      host: "127.0.0.1",
      resumeFile: false,
      metadataTimeoutMs: 10_000,
    });
    await assert.rejects(
      within(15_000, "the failure", client.ready),
      /does not match the info hash|could not fetch the torrent's metadata/,
    );
    await client.close();
    assert.ok(bad.stats.piecesServed >= 3);
  } finally {
    await bad.close();
  }
});

Deno.test("a magnet link's only peer that hung up (restarting, full) is dialled again and serves the metadata", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-redial-" });
  try {
    const { meta } = await makeTorrent(join(root, "seed"), "m", FILES.slice(0, 20), {
      pieceLength: 16384,
    });
    await using seeder = await Client.open({
      metainfo: meta,
      basedir: join(root, "seed"),
      host: "127.0.0.1",
      resumeFile: false,
    });
    const door = gate(seeder.port, { drops: 2, open: true });
    try {
      await using leecher = await Client.open({
        magnet: formatMagnet({
          infoHash: meta.infoHash,
          peers: [{ host: "127.0.0.1", port: door.port }],
        }),
        basedir: join(root, "leech"),
        host: "127.0.0.1",
        resumeFile: false,
        metadataTimeoutMs: 20_000,
        utp: false, // the door speaks TCP only
      });
      assert.equal(leecher.infohashHex, meta.infoHashHex);
      // hung up on twice, then dialled again once its wait was over: the metadata came over a later connection
      assert.ok(door.stats.connections >= 3, `${door.stats.connections} connections`);
      await within(30_000, "the download", leecher.done);
      assert.ok(
        await sameFiles(join(root, "seed", "m"), join(root, "leech", "m"), FILES.slice(0, 20)),
      );
    } finally {
      await door.close();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
