// Run by hostile_memory_test.ts with --v8-flags=--expose-gc: a seeding Client under sustained attack (oversize
// frames, request floods, a million keep-alives, garbage) for many rounds. Prints one JSON line: heap and RSS after
// a warm-up round and after the last, and how many hostile connections were dropped.

import { join } from "node:path";
import { Client } from "../src/client.ts";
import { concat } from "../src/_bytes.ts";
import { encodeHandshake } from "../src/wire/handshake.ts";
import { makeTorrent } from "./_swarm.ts";

const gc = (globalThis as unknown as { gc: () => void }).gc;
const PIECE = 65536;
const rounds = Number(Deno.args[0] ?? 60);
const root = await Deno.makeTempDir({ prefix: "seedbed-attack-" });

function frame(id: number, payload: number[] = []): Uint8Array {
  const out = new Uint8Array(5 + payload.length);
  new DataView(out.buffer).setUint32(0, 1 + payload.length);
  out[4] = id;
  out.set(payload, 5);
  return out;
}
const u32 = (n: number) => [n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];

try {
  const { meta } = await makeTorrent(join(root, "seed"), "t", [{
    path: "d.bin",
    length: 64 * PIECE,
  }], {
    pieceLength: PIECE,
  });
  await using seeder = await Client.open({
    metainfo: meta,
    basedir: join(root, "seed"),
    host: "127.0.0.1",
    resumeFile: false,
  });
  let dropped = 0;
  seeder.addEventListener("peerclose", () => dropped++);
  const flood = concat(
    Array.from({ length: 3000 }, (_, i) => frame(6, [...u32(i % 64), ...u32(0), ...u32(16384)])),
  );
  const keepalives = new Uint8Array(4 * 1_000_000); // a million keep-alives
  const scripts: Uint8Array[][] = [
    [new Uint8Array([0x7f, 0xff, 0xff, 0xff, 7])],
    [frame(2), flood],
    [keepalives, frame(5, [1, 2])],
    [frame(7, [...u32(0), ...u32(0), ...new Array(16384).fill(7)])],
    [crypto.getRandomValues(new Uint8Array(60_000))],
  ];
  const attack = async (script: Uint8Array[]) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: seeder.port });
    try {
      await conn.write(
        encodeHandshake({
          infoHash: meta.infoHash,
          peerId: crypto.getRandomValues(new Uint8Array(20)),
          fast: true,
        }),
      );
      for (const chunk of script) {
        let off = 0;
        while (off < chunk.length) off += await conn.write(chunk.subarray(off));
      }
      const buf = new Uint8Array(65536);
      for (let i = 0; i < 100_000; i++) if ((await conn.read(buf)) === null) break;
    } catch {
      /* dropped */
    } finally {
      try {
        conn.close();
      } catch { /* closed */ }
    }
  };
  const measure = () => {
    gc();
    const m = Deno.memoryUsage();
    return { heap: m.heapUsed, rss: m.rss };
  };
  let warm = { heap: 0, rss: 0 };
  for (let r = 0; r < rounds; r++) {
    await Promise.all(scripts.map(attack));
    if (r === 4) warm = measure();
  }
  const end = measure();
  console.log(JSON.stringify({ rounds, connections: rounds * scripts.length, dropped, warm, end }));
} finally {
  await Deno.remove(root, { recursive: true });
}
