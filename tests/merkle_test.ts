import assert from "node:assert/strict";
import { join } from "node:path";
import { toHex } from "../src/_bytes.ts";
import { parseMetainfo } from "../src/metainfo.ts";
import {
  BLOCK_SIZE,
  FileMerkle,
  type HashRequest,
  layerRoot,
  leafCount,
  MerkleHasher,
  MerkleTree,
  treeHeight,
  uncleCount,
  verifyHashes,
  verifyPieceLayer,
} from "../src/storage/merkle.ts";
import { payload } from "./_swarm.ts";

const DATA = new URL("../fixtures/real/data/", import.meta.url).pathname;
const REAL = new URL("../fixtures/real/", import.meta.url).pathname;

async function sha256(...parts: Uint8Array[]): Promise<Uint8Array> {
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    all.set(p, o);
    o += p.length;
  }
  return new Uint8Array(await crypto.subtle.digest("SHA-256", all));
}

/** The tree as BEP 52 words it, one node at a time: leaves padded with zero hashes to a power of two. */
async function referenceLayers(data: Uint8Array): Promise<Uint8Array[][]> {
  const blocks = Math.ceil(data.length / BLOCK_SIZE);
  let n = 1;
  while (n < blocks) n *= 2;
  const leaves: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    leaves.push(
      i < blocks
        ? await sha256(data.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE))
        : new Uint8Array(32),
    );
  }
  const layers = [leaves];
  while (layers.at(-1)!.length > 1) {
    const below = layers.at(-1)!;
    const up: Uint8Array[] = [];
    for (let i = 0; i < below.length; i += 2) up.push(await sha256(below[i], below[i + 1]));
    layers.push(up);
  }
  return layers;
}

function concat(hashes: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(hashes.length * 32);
  hashes.forEach((h, i) => out.set(h, i * 32));
  return out;
}

async function fileHashes(data: Uint8Array, pieceLength: number) {
  const m = new FileMerkle(data.length, pieceLength);
  for (let at = 0; at < data.length; at += pieceLength) {
    await m.addPiece(data.subarray(at, Math.min(data.length, at + pieceLength)));
  }
  return await m.finish();
}

Deno.test("roots and piece layers equal a node-by-node reference tree for awkward sizes", async () => {
  for (const pieceLength of [16384, 32768, 65536]) {
    for (
      const length of [1, 5, 16383, 16384, 16385, 32768, 40000, 65536, 65537, 100000, 5 * 65536 + 7]
    ) {
      const data = payload(length, length + pieceLength);
      const ref = await referenceLayers(data);
      const { root, pieceLayer } = await fileHashes(data, pieceLength);
      assert.deepEqual(root, ref.at(-1)![0], `root of ${length} bytes, pieces of ${pieceLength}`);
      const pieces = Math.ceil(length / pieceLength);
      if (pieces === 1) {
        assert.equal(pieceLayer.length, 0);
        continue;
      }
      // the piece layer is the reference layer log2(blocks per piece) up, without its padding nodes
      const layer = ref[Math.log2(pieceLength / BLOCK_SIZE)].slice(0, pieces);
      assert.deepEqual(pieceLayer, concat(layer), `layer of ${length} bytes`);
      assert.ok(await verifyPieceLayer(pieceLayer, root, length, pieceLength));
    }
  }
});

Deno.test("MerkleHasher reuses its buffers and gives the same roots one call after another", async () => {
  const hasher = new MerkleHasher();
  const big = payload(1 << 20, 1);
  const small = payload(20000, 2);
  const a = await hasher.root(big, 64);
  const b = await hasher.root(small, 2);
  const c = await hasher.root(big, 64);
  assert.deepEqual(a, c);
  assert.deepEqual(b, (await referenceLayers(small)).at(-1)![0]);
  // a piece's root with zero leaves up to a wider subtree (the last piece of a file)
  const wide = await hasher.root(small, 4);
  const ref = await referenceLayers(small);
  assert.deepEqual(wide, await sha256(ref[1][0], await sha256(new Uint8Array(64))));
  await assert.rejects(hasher.root(new Uint8Array(0), 1), RangeError);
  await assert.rejects(hasher.root(big, 32), RangeError);
});

Deno.test("layerRoot() pads with the pad hash of its layer", async () => {
  const a = new Uint8Array(32).fill(1);
  const padOfLayer1 = await sha256(new Uint8Array(64));
  const expected = await sha256(
    await sha256(a, padOfLayer1),
    await sha256(padOfLayer1, padOfLayer1),
  );
  assert.deepEqual(await layerRoot(a, 4, 1), expected);
  assert.deepEqual(await layerRoot(new Uint8Array(0), 2, 0), padOfLayer1);
  await assert.rejects(layerRoot(new Uint8Array(96), 2, 0), RangeError);
});

Deno.test("the roots and piece layers of libtorrent's torrents are what FileMerkle computes from the files", async () => {
  let checked = 0;
  for (const torrent of ["libtorrent_v2_multi.torrent", "libtorrent_hybrid_multi.torrent"]) {
    const meta = await parseMetainfo(await Deno.readFile(join(REAL, torrent)));
    for (const f of meta.files) {
      if (f.padding || f.length === 0) continue;
      // paths as the torrent gives them (storage sanitises "nul.bin", a Windows device name)
      const data = await Deno.readFile(join(DATA, f.displayPath));
      const { root, pieceLayer } = await fileHashes(data, meta.pieceLength);
      assert.deepEqual(root, f.piecesRoot, `${torrent}: ${f.displayPath}`);
      if (f.length > meta.pieceLength) {
        assert.deepEqual(pieceLayer, meta.pieceLayers.get(toHex(root)));
        checked++;
      }
    }
  }
  assert.equal(checked, 4);
});

Deno.test("verifyPieceLayer() refuses a layer of the wrong size or with a changed hash", async () => {
  const data = payload(100000, 7);
  const { root, pieceLayer } = await fileHashes(data, 16384);
  assert.ok(await verifyPieceLayer(pieceLayer, root, data.length, 16384));
  assert.equal(await verifyPieceLayer(pieceLayer.subarray(32), root, data.length, 16384), false);
  const bad = pieceLayer.slice();
  bad[100] ^= 1;
  assert.equal(await verifyPieceLayer(bad, root, data.length, 16384), false);
  assert.equal(await verifyPieceLayer(pieceLayer, root, data.length, 32768), false);
});

Deno.test("hashes for every valid piece-layer request prove out to the root, and any changed byte fails", async () => {
  const pieceLength = 16384;
  const length = 13 * pieceLength + 1000; // 14 pieces: a 16-wide piece layer with pads
  const data = payload(length, 11);
  const { root, pieceLayer } = await fileHashes(data, pieceLength);
  const tree = await MerkleTree.fromPieceLayer({
    fileLength: length,
    pieceLength,
    root,
    pieceLayer,
  });
  assert.deepEqual(tree.root, root);
  const height = treeHeight(length);
  assert.equal(height, 4);
  const trusted = (layer: number, index: number) =>
    layer === height && index === 0 ? root : undefined;
  let checked = 0;
  for (const len of [2, 4, 8, 16]) {
    for (let index = 0; index + len <= 16; index += len) {
      // every number of proof layers a request may ask for: only some reach the root
      for (let proof = 0; proof < height; proof++) {
        const req: HashRequest = {
          piecesRoot: root,
          baseLayer: 0,
          index,
          length: len,
          proofLayers: proof,
        };
        const hashes = tree.hashes(req);
        assert.ok(hashes, JSON.stringify(req));
        assert.equal(hashes.length, (len + uncleCount(len, proof)) * 32);
        const reaches: boolean = Math.log2(len) + uncleCount(len, proof) === height;
        assert.equal(await verifyHashes(req, hashes, trusted), reaches, JSON.stringify(req));
        if (!reaches) continue;
        for (let at = 0; at < hashes.length; at += 97) {
          const bad: Uint8Array = hashes.slice();
          bad[at] ^= 0x40;
          assert.equal(
            await verifyHashes(req, bad, trusted),
            false,
            `byte ${at} of ${JSON.stringify(req)}`,
          );
        }
        checked++;
      }
    }
  }
  assert.ok(checked >= 15);
  // the piece hashes of the layer are what the requests return; pads beyond the file's 14 pieces
  const all = tree.hashes({
    piecesRoot: root,
    baseLayer: 0,
    index: 0,
    length: 16,
    proofLayers: 0,
  })!;
  assert.deepEqual(all.subarray(0, 14 * 32), pieceLayer);
});

Deno.test("block-layer requests are answered from a piece's block hashes and check against the piece layer", async () => {
  const pieceLength = 65536; // 4 blocks per piece
  const length = 3 * pieceLength + 20000;
  const data = payload(length, 5);
  const { root, pieceLayer } = await fileHashes(data, pieceLength);
  const tree = await MerkleTree.fromPieceLayer({
    fileLength: length,
    pieceLength,
    root,
    pieceLayer,
  });
  assert.equal(tree.lowest, 2);
  const hasher = new MerkleHasher();
  // the last piece: 2 real blocks (20000 bytes), 2 zero leaves
  const blocks = (await hasher.blockHashes(data.subarray(3 * pieceLength))).slice();
  assert.equal(blocks.length, 64);
  const sub = await tree.pieceSubtree(3, blocks);
  assert.ok(sub);
  assert.equal(await tree.pieceSubtree(2, blocks), undefined, "not the hashes of piece 2");
  const height = treeHeight(length);
  const req: HashRequest = {
    piecesRoot: root,
    baseLayer: 0,
    index: 12,
    length: 2,
    proofLayers: height - 1,
  };
  assert.equal(tree.hashes(req), undefined, "needs the block layer");
  const hashes = tree.hashes(req, sub)!;
  const trusted = (l: number, i: number) => (l === height && i === 0 ? root : undefined);
  assert.ok(await verifyHashes(req, hashes, trusted));
  // as a downloader checks blocks: against the piece layer hash it holds, no proof needed
  const byPiece = (l: number, i: number) =>
    l === 2 ? pieceLayer.subarray(i * 32, i * 32 + 32) : undefined;
  const four: HashRequest = {
    piecesRoot: root,
    baseLayer: 0,
    index: 12,
    length: 4,
    proofLayers: 0,
  };
  const leaves = tree.hashes(four, sub)!;
  assert.deepEqual(leaves.subarray(0, 64), blocks);
  assert.deepEqual(leaves.subarray(64), new Uint8Array(64), "zero leaves past the end of the file");
  assert.ok(await verifyHashes(four, leaves, byPiece));
});

Deno.test("MerkleTree.check() refuses requests outside the tree, misaligned or too deep", async () => {
  const length = 10 * 16384;
  const { root, pieceLayer } = await fileHashes(payload(length, 3), 16384);
  const tree = await MerkleTree.fromPieceLayer({
    fileLength: length,
    pieceLength: 16384,
    root,
    pieceLayer,
  });
  const req = (baseLayer: number, index: number, len: number, proofLayers: number) =>
    tree.check({ piecesRoot: root, baseLayer, index, length: len, proofLayers });
  assert.equal(leafCount(length), 16);
  assert.equal(req(0, 0, 16, 3), undefined);
  assert.match(req(4, 0, 2, 0)!, /not below the root/);
  assert.match(req(0, 0, 3, 0)!, /power of two/);
  assert.match(req(0, 0, 16384, 0)!, /power of two from 2 to 8192/);
  assert.match(req(0, 0, 1, 0)!, /power of two from 2/);
  assert.match(req(0, 2, 4, 0)!, /aligned/);
  assert.match(req(0, 16, 2, 0)!, /aligned/);
  assert.match(req(0, 0, 2, 4)!, /past the root/);
  assert.match(req(1, 0, 2, 3)!, /past the root/);
  assert.equal(
    tree.hashes({ piecesRoot: root, baseLayer: 0, index: 1, length: 2, proofLayers: 0 }),
    undefined,
  );
});

Deno.test("verifyHashes() refuses hashes of the wrong count and proofs that reach no trusted node", async () => {
  const length = 8 * 16384;
  const { root, pieceLayer } = await fileHashes(payload(length, 9), 16384);
  const tree = await MerkleTree.fromPieceLayer({
    fileLength: length,
    pieceLength: 16384,
    root,
    pieceLayer,
  });
  const req: HashRequest = { piecesRoot: root, baseLayer: 0, index: 0, length: 8, proofLayers: 2 };
  const hashes = tree.hashes(req)!;
  const trusted = (l: number, i: number) => (l === 3 && i === 0 ? root : undefined);
  assert.ok(await verifyHashes(req, hashes, trusted));
  assert.equal(await verifyHashes(req, hashes.subarray(32), trusted), false);
  assert.equal(await verifyHashes(req, hashes, () => undefined), false);
  assert.equal(await verifyHashes({ ...req, index: 4 }, hashes, trusted), false);
});
