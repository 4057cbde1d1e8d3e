// deno bench: createTorrent hashing throughput on 64 MiB of data in a temporary directory (removed on unload).
import { join } from "node:path";
import { createTorrent } from "../src/create.ts";

const dir = await Deno.makeTempDir({ prefix: "seedbed-bench-" });
const size = 64 * 1024 * 1024;
{
  const chunk = new Uint8Array(1 << 20);
  using f = await Deno.open(join(dir, "data.bin"), { write: true, create: true });
  for (let i = 0; i < size / chunk.length; i++) {
    crypto.getRandomValues(chunk.subarray(0, 65536));
    let off = 0;
    while (off < chunk.length) off += await f.write(chunk.subarray(off));
  }
}
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

for (const pieceLength of [1 << 14, 1 << 18, 1 << 20, 1 << 24]) {
  Deno.bench({
    name: `createTorrent: hash 64 MiB (${pieceLength / 1024} KiB pieces)`,
    group: "createTorrent",
    baseline: pieceLength === 1 << 20,
    n: 10,
    async fn(b) {
      b.start();
      await createTorrent(join(dir, "data.bin"), { pieceLength, creationDate: null });
      b.end();
    },
  });
}
