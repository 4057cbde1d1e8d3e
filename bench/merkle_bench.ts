// deno bench: verifying one 1 MiB piece (16 MiB per iteration) as v1 (SHA-1), v2 (merkle root of its 64 blocks)
// and hybrid (both), and the two ways of issuing Web Crypto digests for v2. MB/s = 16.8 MB / time per iteration.
// Also the piece layer check of a 4 GiB file's layer (4096 pieces of 1 MiB), as parseMetainfo does it.
import { Layout } from "../src/storage/layout.ts";
import { FileMerkle, MerkleHasher, verifyPieceLayer } from "../src/storage/merkle.ts";
import { TorrentVerifier } from "../src/storage/verify.ts";

const PIECE = 1 << 20;
const PIECES = 16;
const data = new Uint8Array(PIECE * PIECES);
for (let o = 0; o < data.length; o += 65536) crypto.getRandomValues(data.subarray(o, o + 65536));

// a v2 file of 16 pieces, a hybrid layout over it, and the same as v1
const merkle = new FileMerkle(data.length, PIECE);
for (let i = 0; i < PIECES; i++) await merkle.addPiece(data.subarray(i * PIECE, (i + 1) * PIECE));
const { root, pieceLayer } = await merkle.finish();
const sha1 = new Uint8Array(20 * PIECES);
for (let i = 0; i < PIECES; i++) {
  const d = await crypto.subtle.digest("SHA-1", data.subarray(i * PIECE, (i + 1) * PIECE));
  sha1.set(new Uint8Array(d), i * 20);
}
const files = [{ path: ["f"], length: data.length, offset: 0, piecesRoot: root }];
const pieceLayers = new Map([[root.toHex(), pieceLayer]]);
const base = { files, pieceLength: PIECE, length: data.length, pieces: sha1, pieceLayers };
const v1 = new TorrentVerifier(new Layout({ ...base, version: 1 }));
const v2 = new TorrentVerifier(new Layout({ ...base, version: 2 }));
const hybrid = new TorrentVerifier(new Layout({ ...base, version: "hybrid" }));

async function all(verifier: TorrentVerifier): Promise<void> {
  for (let i = 0; i < PIECES; i++) {
    if (!(await verifier.verify(i, data.subarray(i * PIECE, (i + 1) * PIECE)))) {
      throw new Error(`piece ${i} failed`);
    }
  }
}

Deno.bench(
  { name: "v1: SHA-1 of 16 pieces of 1 MiB", group: "verify", baseline: true },
  async () => {
    await all(v1);
  },
);
Deno.bench({ name: "v2: merkle root of 16 pieces of 1 MiB", group: "verify" }, async () => {
  await all(v2);
});
Deno.bench({ name: "hybrid: both hashes of 16 pieces of 1 MiB", group: "verify" }, async () => {
  await all(hybrid);
});

// how digests are issued: one awaited at a time, or a whole layer at once (what MerkleHasher does)
const hasher = new MerkleHasher();
Deno.bench(
  { name: "piece root, digests a layer at a time", group: "issue", baseline: true },
  async () => {
    for (let i = 0; i < PIECES; i++) {
      await hasher.root(
        data.subarray(i * PIECE, (i + 1) * PIECE),
        64,
      );
    }
  },
);
Deno.bench({ name: "piece root, one digest awaited at a time", group: "issue" }, async () => {
  for (let i = 0; i < PIECES; i++) {
    const piece = data.subarray(i * PIECE, (i + 1) * PIECE);
    let layer: Uint8Array[] = [];
    for (let o = 0; o < piece.length; o += 16384) {
      layer.push(
        new Uint8Array(await crypto.subtle.digest("SHA-256", piece.subarray(o, o + 16384))),
      );
    }
    while (layer.length > 1) {
      const up: Uint8Array[] = [];
      for (let k = 0; k < layer.length; k += 2) {
        const pair = new Uint8Array(64);
        pair.set(layer[k]);
        pair.set(layer[k + 1], 32);
        up.push(new Uint8Array(await crypto.subtle.digest("SHA-256", pair)));
      }
      layer = up;
    }
  }
});

// a 4 GiB file's piece layer (4096 hashes) checked against its root
const bigLayer = new Uint8Array(4096 * 32).map((_, i) => (i * 7) & 0xff);
Deno.bench({
  name: "piece layer check: 4096 hashes (a 4 GiB file in 1 MiB pieces)",
  group: "layer",
}, async () => {
  await verifyPieceLayer(bigLayer, new Uint8Array(32), 4096 * PIECE, PIECE);
});
