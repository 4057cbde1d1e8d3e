// PieceLayerFetcher and HashServer driven directly with fake connections: chunks proved against the root, a peer
// whose hashes do not prove out dropped, a refused chunk asked of another peer, pieces held until their layer is
// known; block-layer hashes answered from the piece's data.
import assert from "node:assert/strict";
import { Bitfield } from "../src/bitfield.ts";
import { createTorrent } from "../src/create.ts";
import { decode, encode } from "../src/bencode.ts";
import { type Metainfo, missingPieceLayers, parseMetainfo } from "../src/metainfo.ts";
import { type HashRequest, MerkleHasher, MerkleTree, treeHeight } from "../src/storage/merkle.ts";
import { HashServer } from "../src/swarm/hash_server.ts";
import { PieceLayerFetcher } from "../src/swarm/piece_layers.ts";
import { payload } from "./_swarm.ts";

const PIECE = 16384;
const BIG = 700 * PIECE + 5; // 701 pieces: chunks of 512 and 189 (asked as 256)

async function torrents(
  pieceLength = PIECE,
): Promise<{ whole: Metainfo; bare: Metainfo; data: Uint8Array }> {
  const dir = await Deno.makeTempDir();
  const data = payload(BIG, 9);
  await Deno.writeFile(`${dir}/big.bin`, data);
  const bytes = await createTorrent(`${dir}/big.bin`, { version: 2, pieceLength });
  await Deno.remove(dir, { recursive: true });
  const top = decode(bytes) as Record<string, unknown>;
  const bare = encode({ info: top.info as Record<string, never>, "piece layers": {} });
  return {
    whole: await parseMetainfo(bytes),
    bare: await parseMetainfo(bare, { allowMissingPieceLayers: true }),
    data,
  };
}

class FakePeer {
  readonly requests: HashRequest[] = [];
  closedWith: string | undefined;
  speaksV2 = true;
  bitfield: Bitfield;
  constructor(pieces: number) {
    this.bitfield = new Bitfield(pieces);
    this.bitfield.setAll();
  }
  get closed(): boolean {
    return this.closedWith !== undefined;
  }
  requestHashes(r: HashRequest): void {
    this.requests.push(r);
  }
  close(reason: string): void {
    this.closedWith = reason;
  }
}

Deno.test("PieceLayerFetcher: chunks proved to the root make the layer; bad hashes drop the peer; a refusal goes to another peer", async () => {
  const { whole, bare } = await torrents();
  assert.deepEqual(missingPieceLayers(bare), [0]);
  const f = whole.files[0];
  const tree = await MerkleTree.fromPieceLayer({
    fileLength: f.length,
    pieceLength: PIECE,
    root: f.piecesRoot!,
    pieceLayer: whole.pieceLayers.values().next().value!,
  });
  let complete = 0;
  const fetcher = new PieceLayerFetcher({ meta: bare, onComplete: () => complete++ });
  assert.equal(fetcher.held?.count, bare.pieceCount, "a v2 torrent's pieces wait for their layer");
  const liar = new FakePeer(bare.pieceCount), refuser = new FakePeer(bare.pieceCount);
  const honest = new FakePeer(bare.pieceCount);
  fetcher.ask([liar]);
  assert.deepEqual(
    liar.requests.map((r) => [r.baseLayer, r.index, r.length, r.proofLayers]),
    [[0, 0, 512, treeHeight(BIG) - 1], [0, 512, 256, treeHeight(BIG) - 1]],
  );
  // a flipped byte: the proof does not reach the root
  const bad = tree.hashes(liar.requests[0])!;
  bad[5] ^= 1;
  await fetcher.hashes(liar, liar.requests[0], bad);
  assert.match(liar.closedWith ?? "", /do not prove out/);
  fetcher.closed(liar);
  fetcher.ask([refuser]);
  assert.equal(refuser.requests.length, 2);
  fetcher.rejected(refuser, refuser.requests[0]);
  fetcher.ask([refuser, honest]);
  assert.equal(honest.requests.length, 1, "the refused chunk goes to the other peer");
  assert.equal(honest.requests[0].index, 0);
  await fetcher.hashes(refuser, refuser.requests[1], tree.hashes(refuser.requests[1])!);
  assert.equal(fetcher.complete, false);
  await fetcher.hashes(honest, honest.requests[0], tree.hashes(honest.requests[0])!);
  assert.equal(fetcher.complete, true);
  assert.equal(complete, 1);
  assert.equal(fetcher.held, undefined);
  assert.deepEqual(bare.pieceLayers, whole.pieceLayers);
});

Deno.test("HashServer answers block-layer requests from the piece's data, and only for pieces we have", async () => {
  const pl = 2 * PIECE; // two blocks per piece: the leaf layer is below the piece layer
  const { whole, data } = await torrents(pl);
  const f = whole.files[0];
  let have = true;
  const server = new HashServer({
    meta: whole,
    readPiece: (i) => Promise.resolve(data.slice(i * pl, (i + 1) * pl)),
    have: () => have,
  });
  const answers: (Uint8Array | "reject")[] = [];
  const peer = {
    closed: false,
    sendHashes: (_r: HashRequest, h: Uint8Array) => answers.push(h),
    rejectHashes: () => answers.push("reject"),
  };
  // the leaf layer: the two blocks of piece 350, with the proof to the root
  const req = {
    piecesRoot: f.piecesRoot!,
    baseLayer: 0,
    index: 700,
    length: 2,
    proofLayers: treeHeight(BIG) - 1,
  };
  await server.request(peer, req);
  const leaves = new Uint8Array((await new MerkleHasher().blockHashes(data)).slice());
  const full = await MerkleTree.fromLeaves(leaves, BIG, pl);
  assert.deepEqual(answers.pop(), full.hashes(req));
  await server.request(peer, { ...req, index: 0, length: 4 });
  assert.equal(answers.pop(), "reject", "spans two pieces");
  have = false;
  await server.request(peer, req);
  assert.equal(answers.pop(), "reject");
  await server.request(peer, { ...req, length: 3 });
  assert.equal(answers.pop(), "reject", "not a power of two");
});
