// Hostile peers against a seeding Client: each scripted byte stream must get its connection dropped, while an
// honest leecher on the same Client downloads everything.
import assert from "node:assert/strict";
import { join } from "node:path";
import { Client } from "../src/client.ts";
import { encodeHandshake } from "../src/wire/handshake.ts";
import { encodeMessage } from "../src/wire/messages.ts";
import { concat } from "../src/_bytes.ts";
import { makeTorrent, sameFiles, within } from "./_swarm.ts";

const PIECE = 64 * 1024;
const FILES = [{ path: "data.bin", length: 40 * PIECE + 123 }];

function frame(id: number, payload: number[] | Uint8Array = []): Uint8Array {
  const p = payload instanceof Uint8Array ? payload : new Uint8Array(payload);
  const out = new Uint8Array(5 + p.length);
  new DataView(out.buffer).setUint32(0, 1 + p.length);
  out[4] = id;
  out.set(p, 5);
  return out;
}

const u32 = (n: number) => [n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];

/** Connects, handshakes, sends the script, and resolves when the Client closes the connection. */
async function attack(
  port: number,
  infoHash: Uint8Array,
  script: Uint8Array[],
  ms = 10_000,
): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const hs = encodeHandshake({
      infoHash,
      peerId: crypto.getRandomValues(new Uint8Array(20)),
      fast: true,
      extended: true,
    });
    await conn.write(hs);
    for (const chunk of script) {
      try {
        let off = 0;
        while (off < chunk.length) off += await conn.write(chunk.subarray(off));
      } catch {
        break; // already dropped
      }
    }
    // drain until the Client hangs up
    const buf = new Uint8Array(65536);
    await within(
      ms,
      "the Client to drop the hostile peer",
      (async () => {
        for (;;) {
          const n = await conn.read(buf).catch(() => null);
          if (n === null) return;
        }
      })(),
    );
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}

Deno.test("hostile byte streams are dropped one by one while an honest leecher completes", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-hostile-" });
  try {
    const { meta } = await makeTorrent(join(root, "seed"), "t", FILES, { pieceLength: PIECE });
    await using seeder = await Client.open({
      metainfo: meta,
      basedir: join(root, "seed"),
      host: "127.0.0.1",
      resumeFile: false,
    });
    const reasons: string[] = [];
    seeder.addEventListener("peerclose", (e) => reasons.push(e.detail.reason));
    await using honest = await Client.open({
      metainfo: meta,
      basedir: join(root, "honest"),
      host: "127.0.0.1",
      resumeFile: false,
      queueDepth: 4, // slow enough that the attacks overlap the download
    });
    honest.addPeer("127.0.0.1", seeder.port);
    const ih = meta.infoHash;
    const interested = frame(2);
    const scripts: [string, Uint8Array[]][] = [
      ["oversize length prefix", [new Uint8Array([0xff, 0xff, 0xff, 0xff, 7])]],
      ["bitfield of the wrong size", [frame(5, new Uint8Array(2))]],
      ["have out of range", [frame(4, u32(meta.pieceCount))]],
      ["16 MiB request", [interested, frame(6, [...u32(0), ...u32(0), ...u32(16 * 1024 * 1024)])]],
      ["request flood", [
        interested,
        concat(
          Array.from(
            { length: 5000 },
            (_, i) => frame(6, [...u32(i % 40), ...u32(0), ...u32(16384)]),
          ),
        ),
      ]],
      ["unrequested piece", [frame(7, [...u32(0), ...u32(0), 1, 2, 3])]],
      ["malformed extension handshake", [frame(20, [0, ...new TextEncoder().encode("d1:mi5ee")])]],
      ["reject without a request is harmless, then garbage length", [
        frame(16, [...u32(0), ...u32(0), ...u32(16384)]),
        frame(0, [1, 2]),
      ]],
    ];
    for (const [what, script] of scripts) {
      const before = reasons.length;
      await attack(seeder.port, ih, script);
      assert.ok(reasons.length > before, `${what}: not dropped`);
    }
    // unknown message ids and a burst of keep-alives are not violations: that peer stays until it leaves
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: seeder.port });
    await conn.write(
      encodeHandshake({ infoHash: ih, peerId: new Uint8Array(20).fill(1), fast: true }),
    );
    await conn.write(
      concat([
        frame(99, [1, 2, 3]),
        ...Array.from({ length: 10_000 }, () => encodeMessage({ type: "keepalive" })),
      ]),
    );
    conn.close();
    await within(30_000, "the honest download", honest.done);
    assert.ok(await sameFiles(join(root, "seed", "t"), join(root, "honest", "t"), FILES));
    for (
      const pattern of [
        /exceeds the limit/,
        /bitfield/,
        /have for piece/,
        /request for 16777216 bytes/,
        /request flood/,
        /never requested/,
        /extension handshake/,
        /with a payload/,
      ]
    ) {
      assert.ok(
        reasons.some((r) => pattern.test(r)),
        `no drop matching ${pattern}: ${JSON.stringify(reasons)}`,
      );
    }
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a slow drip (one handshake byte every 300 ms) is dropped by the handshake timeout", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-drip-" });
  try {
    const { meta } = await makeTorrent(join(root, "seed"), "t", FILES, { pieceLength: PIECE });
    await using seeder = await Client.open({
      metainfo: meta,
      basedir: join(root, "seed"),
      host: "127.0.0.1",
      resumeFile: false,
    });
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: seeder.port });
    const hs = encodeHandshake({ infoHash: meta.infoHash, peerId: new Uint8Array(20).fill(3) });
    const started = Date.now();
    let sent = 0;
    // reads until the Client hangs up (it may send its own handshake first); true once it has
    const reading = (async () => {
      const buf = new Uint8Array(4096);
      for (let i = 0; i < 10_000; i++) {
        const n = await conn.read(buf).catch(() => null);
        if (n === null) return true;
      }
      return true;
    })();
    try {
      // at most the 68 bytes (20.4 s of drip); the Client must hang up before the handshake is complete, at its
      // 10 s handshake timeout: 10 s of margin either side on busy cores
      for (; sent < hs.length; sent++) {
        try {
          await conn.write(hs.subarray(sent, sent + 1));
        } catch {
          break;
        }
        let timer: ReturnType<typeof setTimeout> | undefined;
        const closed = await Promise.race([
          reading,
          new Promise<false>((r) => timer = setTimeout(() => r(false), 300)),
        ]);
        clearTimeout(timer);
        if (closed) break;
      }
    } finally {
      conn.close();
      await reading;
    }
    assert.ok(sent < hs.length, "the whole handshake dripped in without a hang-up");
    // by the timeout (timers never fire early), not for something else before it
    assert.ok(Date.now() - started >= 9_000, `dropped after ${Date.now() - started} ms`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
