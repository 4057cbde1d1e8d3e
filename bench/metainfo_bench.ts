// deno bench: decoding and parsing a generated torrent with 100 000 files (createTorrent: create_bench.ts).
import { decode, encode } from "../src/bencode.ts";
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
const mb = (big.length / 1e6).toFixed(1);

Deno.bench({
  name: `decode: ${files.length} files (${mb} MB .torrent)`,
  group: "metainfo",
  fn() {
    decode(big, { spans: true });
  },
});

Deno.bench({
  name: `parseMetainfo: ${files.length} files (${mb} MB .torrent)`,
  group: "metainfo",
  baseline: true,
  async fn() {
    const meta = await parseMetainfo(big);
    if (meta.files.length !== files.length) throw new Error("wrong count");
  },
});

// every file has the same name: renaming the duplicates must stay linear
const same = encode({
  info: {
    name: "same",
    "piece length": pieceLength,
    pieces: new Uint8Array(20 * Math.ceil(files.length / pieceLength)),
    files: files.map(() => ({ length: 1, path: ["a.txt"] })),
  },
});

Deno.bench({
  name: `parseMetainfo: ${files.length} files all named "a.txt"`,
  group: "metainfo",
  async fn() {
    const meta = await parseMetainfo(same);
    if (meta.files.at(-1)!.path[1] !== `a (${files.length - 1}).txt`) {
      throw new Error("not renamed");
    }
  },
});
