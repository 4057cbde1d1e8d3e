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
        // the liar first, so it is dialled first and answers first
        const magnet = formatMagnet({
          infoHash: meta.infoHash,
          peers: [{ host: "127.0.0.1", port: bad.port }, { host: "127.0.0.1", port: seeder.port }],
        });
        await using leecher = await Client.open({
          magnet,
          basedir: join(root, "leech"),
          host: "127.0.0.1",
          resumeFile: false,
          metadataTimeoutMs: 30_000,
          utp: false, // the liar speaks TCP only: dialled first over TCP, not after a uTP attempt
        });
        assert.equal(leecher.infohashHex, meta.infoHashHex);
        await within(30_000, "the download", leecher.done);
        assert.ok(await sameFiles(join(root, "seed", "m"), join(root, "leech", "m"), FILES));
        assert.ok(bad.stats.connections >= 1, "the liar was never dialled");
        if (lie === "huge-size") {
          assert.equal(bad.stats.piecesServed, 0, "asked a peer announcing 1 GiB");
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
