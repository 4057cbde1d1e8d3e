// deno bench: parsing a torrent with 100 000 files; createTorrent hashing throughput.
import { join } from "node:path";
import { encode } from "../src/bencode.ts";
import { createTorrent } from "../src/create.ts";
import { parseMetainfo } from "../src/metainfo.ts";

const files = Array.from(
  { length: 100_000 },
  (_, i) => ({ length: 1000 + (i % 7), path: [`dir${i % 100}`, `file-${i}.dat`] }),
);
const total = files.reduce((n, f) => n + f.length, 0);
const pieceLength = 1 << 20;
const big = encode({
  announce: "http://127.0.0.1:6969/announce",
  info: {
    name: "many",
    "piece length": pieceLength,
    pieces: new Uint8Array(20 * Math.ceil(total / pieceLength)),
    files,
  },
});

Deno.bench({
  name: `parseMetainfo: ${files.length} files (${(big.length / 1e6).toFixed(1)} MB .torrent)`,
  async fn() {
    const meta = await parseMetainfo(big);
    if (meta.files.length !== files.length) throw new Error("wrong count");
  },
});

const dir = await Deno.makeTempDir({ prefix: "seedbed-bench-" });
const size = 64 * 1024 * 1024;
{
  const chunk = new Uint8Array(1 << 20);
  using f = await Deno.open(join(dir, "data.bin"), { write: true, create: true });
  for (let i = 0; i < size / chunk.length; i++) {
    crypto.getRandomValues(chunk.subarray(0, 65536));
    await f.write(chunk);
  }
}

Deno.bench({
  name: "createTorrent: hash 64 MiB (1 MiB pieces)",
  async fn(b) {
    b.start();
    await createTorrent(join(dir, "data.bin"), { pieceLength: 1 << 20 });
    b.end();
  },
});

globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
