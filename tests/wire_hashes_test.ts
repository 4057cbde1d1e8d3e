// The BEP 52 hash messages (21-23) and the v2 handshake bit.
import assert from "node:assert/strict";
import { join } from "node:path";
import { toHex } from "../src/_bytes.ts";
import { parseMetainfo } from "../src/metainfo.ts";
import { MerkleTree, treeHeight, verifyHashes } from "../src/storage/merkle.ts";
import {
  decodeHashMessage,
  encodeHashes,
  encodeHashReject,
  encodeHashRequest,
  findHashRequestFile,
  type HashRequest,
  sameHashRequest,
} from "../src/wire/hashes.ts";
import { encodeHandshake, parseHandshake } from "../src/wire/handshake.ts";
import { WireError } from "../src/wire/messages.ts";

const REAL = new URL("../fixtures/real/", import.meta.url).pathname;

const root = Uint8Array.from({ length: 32 }, (_, i) => i);
const request: HashRequest = {
  piecesRoot: root,
  baseLayer: 2,
  index: 512,
  length: 512,
  proofLayers: 11,
};

/** The id and payload of a frame, as the frame decoder hands them over. */
function split(frame: Uint8Array): [number, Uint8Array] {
  assert.equal(new DataView(frame.buffer, frame.byteOffset).getUint32(0), frame.length - 4);
  return [frame[4], frame.subarray(5)];
}

Deno.test("hash request, hashes and hash reject encode and decode to themselves", () => {
  assert.deepEqual(decodeHashMessage(...split(encodeHashRequest(request))), {
    type: "hashrequest",
    request,
  });
  assert.deepEqual(decodeHashMessage(...split(encodeHashReject(request))), {
    type: "hashreject",
    request,
  });
  // 512 hashes join 9 layers up: uncles for proof layers 9, 10 and 11
  const hashes = Uint8Array.from({ length: (512 + 3) * 32 }, (_, i) => i & 0xff);
  const frame = encodeHashes(request, hashes);
  assert.equal(frame.length, 4 + 1 + 48 + 515 * 32);
  const m = decodeHashMessage(...split(frame));
  assert.equal(m.type, "hashes");
  assert.ok(m.type === "hashes" && sameHashRequest(m.request, request));
  assert.ok(m.type === "hashes" && m.hashes.buffer === frame.buffer, "a view, not a copy");
  assert.deepEqual(m.type === "hashes" && m.hashes, hashes);
  assert.throws(() => encodeHashes(request, hashes.subarray(32)), /calls for 515 hashes/);
  assert.throws(() => encodeHashRequest({ ...request, piecesRoot: new Uint8Array(20) }), TypeError);
  assert.throws(() => encodeHashRequest({ ...request, index: -1 }), TypeError);
});

Deno.test("malformed hash messages are WireErrors, never an allocation sized by the peer", () => {
  const [, payload] = split(encodeHashRequest(request));
  const bad = (id: number, p: Uint8Array, pattern: RegExp) =>
    assert.throws(
      () => decodeHashMessage(id, p),
      (e) => e instanceof WireError && pattern.test(e.message),
    );
  bad(21, payload.subarray(1), /hash request message with 47 payload bytes/);
  bad(23, new Uint8Array([...payload, 0]), /hash reject message with 49/);
  bad(22, payload.subarray(0, 40), /hashes message with 40/);
  bad(20, payload, /not a hash message/);
  const header = (length: number, proofLayers: number) => {
    const f = encodeHashRequest({ ...request, length, proofLayers }).subarray(5);
    return f;
  };
  bad(22, header(3, 0), /3 hashes \(not a power of two/);
  bad(22, header(16384, 0), /16384 hashes/);
  bad(22, header(0, 0), /0 hashes/);
  bad(22, header(2, 64), /64 proof layers/);
  bad(22, header(0xffffffff, 0xffffffff), /not a power of two/);
  // the right header with one hash too few or too many
  const h = header(4, 3); // 4 hashes + 2 uncles
  bad(22, new Uint8Array([...h, ...new Uint8Array(5 * 32)]), /expected 192 \(6 hashes\)/);
  bad(22, new Uint8Array([...h, ...new Uint8Array(7 * 32)]), /expected 192/);
  assert.equal(
    decodeHashMessage(22, new Uint8Array([...h, ...new Uint8Array(6 * 32)])).type,
    "hashes",
  );
  // requests with absurd numbers decode (they are answered with hash reject, see findHashRequestFile)
  const absurd = encodeHashRequest({ ...request, baseLayer: 0xffffffff, length: 3 }).subarray(5);
  assert.equal(decodeHashMessage(21, absurd).type, "hashrequest");
});

Deno.test("a request for libtorrent's piece layer is found, answered from the tree, and proves out to the root", async () => {
  const meta = await parseMetainfo(await Deno.readFile(join(REAL, "libtorrent_v2_multi.torrent")));
  const i = meta.files.findIndex((f) => f.displayPath === "multi/nested/numbers.txt");
  const f = meta.files[i];
  const height = treeHeight(f.length); // 7 blocks of 16 KiB: 8 leaves, 3 layers
  const req: HashRequest = {
    piecesRoot: f.piecesRoot!,
    baseLayer: 0, // pieces of 16 KiB: the piece layer is the block layer
    index: 0,
    length: 8,
    proofLayers: height - 1,
  };
  assert.deepEqual(findHashRequestFile(req, meta.files), { file: i });
  const tree = await MerkleTree.fromPieceLayer({
    fileLength: f.length,
    pieceLength: meta.pieceLength,
    root: f.piecesRoot!,
    pieceLayer: meta.pieceLayers.get(toHex(f.piecesRoot!)),
  });
  assert.deepEqual(tree.root, f.piecesRoot);
  const m = decodeHashMessage(...split(encodeHashes(req, tree.hashes(req)!)));
  assert.ok(m.type === "hashes");
  const trusted = (l: number, x: number) => (l === height && x === 0 ? f.piecesRoot : undefined);
  assert.ok(await verifyHashes(m.request, m.hashes, trusted));
  // what is refused, and why
  const errorOf = (r: HashRequest) => {
    const found = findHashRequestFile(r, meta.files);
    return "error" in found ? found.error : "";
  };
  assert.match(errorOf({ ...req, piecesRoot: new Uint8Array(32) }), /no file of the torrent/);
  assert.match(errorOf({ ...req, length: 16 }), /not an aligned range/);
  assert.match(errorOf({ ...req, proofLayers: height }), /past the root/);
  assert.match(errorOf({ ...req, baseLayer: height }), /not below the root/);
});

Deno.test("the handshake carries BEP 52's v2 bit: reserved byte 7, 0x10", () => {
  const infoHash = new Uint8Array(20).fill(1), peerId = new Uint8Array(20).fill(2);
  const bytes = encodeHandshake({ infoHash, peerId, fast: true, dht: true, v2: true });
  assert.equal(bytes[27], 0x15);
  const hs = parseHandshake(bytes);
  assert.deepEqual([hs.v2, hs.fast, hs.dht, hs.extended], [true, true, true, false]);
  assert.equal(parseHandshake(encodeHandshake({ infoHash, peerId })).v2, false);
});
