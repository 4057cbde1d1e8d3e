// Regression: two pieces written to the part file at once (the piece writer runs up to four writes) were both
// given the first free slot, so one overwrote the other; `seedbed verify` after `-s` then failed a shared piece.
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseMetainfo } from "../src/metainfo.ts";
import { Storage } from "../src/storage/storage.ts";
import { makeTorrent } from "./_swarm.ts";

Deno.test("pieces written to the part file at once get a slot each", async () => {
  const dir = await Deno.makeTempDir({ prefix: "seedbed-part-slots-" });
  try {
    // dir/three.bin | one.bin | two.bin: pieces 7 and 25 are shared between one.bin and the files left out
    const files = [
      { path: "one.bin", length: 300_000 },
      { path: "two.bin", length: 200_000 },
      { path: "dir/three.bin", length: 123_456 },
    ];
    const { bytes } = await makeTorrent(join(dir, "seed"), "pack", files, { pieceLength: 16384 });
    const meta = await parseMetainfo(bytes);
    const all = new Uint8Array(meta.length);
    for (const [i, f] of meta.files.entries()) {
      all.set(await Deno.readFile(join(dir, "seed", ...f.path)), meta.files[i].offset);
    }
    const piece = (i: number) => all.slice(i * 16384, Math.min((i + 1) * 16384, meta.length));
    const storage = new Storage({ dir: join(dir, "leech"), layout: meta, priorities: [0, 1, 0] });
    try {
      await Promise.all([storage.writePiece(7, piece(7)), storage.writePiece(25, piece(25))]);
      const slots = storage.pieceCache().pieces.map(([, slot]) => slot);
      assert.equal(new Set(slots).size, 2, `slots ${JSON.stringify(storage.pieceCache().pieces)}`);
      assert.deepEqual(await storage.readPiece(7), piece(7));
      assert.deepEqual(await storage.readPiece(25), piece(25));
    } finally {
      await storage.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
