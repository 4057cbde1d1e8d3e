/**
 * BEP 52 merkle trees: SHA-256 (Web Crypto) over the 16 KiB blocks of each file.
 *
 * A file's tree has one leaf per block (the last block is hashed as it is, short), widened to a power of two with
 * zero leaves; every inner node is SHA-256 of its two children; the top is the file's `pieces root`. The node
 * over an all-zero subtree is the "pad" hash of its layer. A torrent's `piece layers` hold, per file larger than
 * one piece, the layer whose nodes each cover one piece; a file of at most one piece is checked against its root.
 *
 * Layers are numbered from the leaves (0) up; the root of a file of `n` leaves is layer `log2(n)`. Web Crypto has
 * no streaming or synchronous digest, so digests are issued a whole layer at a time and awaited together: per
 * call latency is paid once per layer rather than once per node (see `bench/merkle_bench.ts`).
 *
 * @module
 */

/** Bytes per merkle leaf. */
export const BLOCK_SIZE = 16384;
/** Bytes per SHA-256 hash. */
export const HASH_SIZE = 32;

/** Most digests in flight at once (keeps the promises of a huge layer bounded). */
const BATCH = 4096;

/** A request for hashes of one file's tree (BEP 52 `hash request`, `hashes` and `hash reject`). */
export interface HashRequest {
  /** The file's `pieces root`, 32 bytes. */
  piecesRoot: Uint8Array;
  /** The layer of the requested hashes: 0 for block hashes, `log2(piece length / 16 KiB)` for piece hashes. */
  baseLayer: number;
  /** Offset of the first requested hash in that layer; a multiple of `length`. */
  index: number;
  /** How many hashes: a power of two, at least 2. */
  length: number;
  /** How many layers above the base layer the proof reaches (uncle hashes, see {@linkcode uncleCount}). */
  proofLayers: number;
}

/**
 * The smallest power of two at or above `n`.
 *
 * @param n A positive number.
 * @returns A power of two (1 for n ≤ 1).
 */
export function nextPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

/**
 * log2 of a power of two.
 *
 * @param n A power of two.
 * @returns Its exponent.
 */
export function log2(n: number): number {
  let k = 0;
  while (n > 1) {
    n /= 2;
    k++;
  }
  return k;
}

/**
 * Leaves of a file's tree: its block count rounded up to a power of two.
 *
 * @param fileLength Bytes in the file (non-empty files have trees).
 * @returns A power of two.
 */
export function leafCount(fileLength: number): number {
  return nextPowerOfTwo(Math.max(1, Math.ceil(fileLength / BLOCK_SIZE)));
}

/**
 * Layers above the leaves in a file's tree (the root's layer number).
 *
 * @param fileLength Bytes in the file.
 * @returns `log2(leafCount(fileLength))`.
 */
export function treeHeight(fileLength: number): number {
  return log2(leafCount(fileLength));
}

/**
 * Hashes in each `hashes` message after the requested ones: one uncle per proof layer from the layer where the
 * requested hashes join into one node (`log2(length)` above the base) up to `proofLayers`. This is libtorrent's
 * count; BEP 52 words it as "the first log2(length)-1 proof layers are omitted".
 *
 * @param length Requested hashes (a power of two).
 * @param proofLayers Requested proof layers.
 * @returns How many uncle hashes follow.
 */
export function uncleCount(length: number, proofLayers: number): number {
  return Math.max(0, proofLayers - log2(length) + 1);
}

let padTable: Promise<Uint8Array[]> | undefined;

/**
 * The pad hashes of every layer up to 63: layer 0 is 32 zero bytes (a leaf past the end of a file), each layer
 * above is SHA-256 of two pads of the layer below.
 *
 * @returns The table, computed once.
 */
export function padHashes(): Promise<Uint8Array[]> {
  padTable ??= (async () => {
    const out = [new Uint8Array(HASH_SIZE)];
    const pair = new Uint8Array(2 * HASH_SIZE);
    for (let i = 1; i < 64; i++) {
      pair.set(out[i - 1], 0);
      pair.set(out[i - 1], HASH_SIZE);
      out.push(new Uint8Array(await crypto.subtle.digest("SHA-256", pair)));
    }
    return out;
  })();
  return padTable;
}

/**
 * Replaces `nodes` hashes in `src` by the `ceil(nodes / 2)` hashes of their pairs, written to `dst` (which may be
 * `src`: Web Crypto copies its input when called, and every digest of a batch is issued before any is written).
 * An odd last node pairs with `pad`.
 */
async function reducePairs(
  src: Uint8Array,
  nodes: number,
  dst: Uint8Array,
  pad: Uint8Array,
): Promise<number> {
  const pairs = Math.ceil(nodes / 2);
  let last: Uint8Array | undefined;
  if (nodes % 2 === 1) {
    last = new Uint8Array(2 * HASH_SIZE);
    last.set(src.subarray((nodes - 1) * HASH_SIZE, nodes * HASH_SIZE), 0);
    last.set(pad, HASH_SIZE);
  }
  const pending: Promise<ArrayBuffer>[] = [];
  for (let start = 0; start < pairs; start += BATCH) {
    const end = Math.min(pairs, start + BATCH);
    pending.length = 0;
    for (let i = start; i < end; i++) {
      const input = 2 * i + 1 < nodes
        ? src.subarray(i * 2 * HASH_SIZE, (i + 1) * 2 * HASH_SIZE)
        : last!;
      pending.push(crypto.subtle.digest("SHA-256", input as Uint8Array<ArrayBuffer>));
    }
    const done = await Promise.all(pending);
    for (let i = start; i < end; i++) dst.set(new Uint8Array(done[i - start]), i * HASH_SIZE);
  }
  return pairs;
}

/**
 * The root over a layer of hashes: `hashes` are the first nodes of a layer `width` nodes wide (a power of two);
 * the rest are pad nodes of layer `layer`.
 *
 * @example The root over two piece hashes
 * ```ts
 * import { layerRoot } from "./merkle.ts";
 * import assert from "node:assert/strict";
 *
 * const a = new Uint8Array(32).fill(1), b = new Uint8Array(32).fill(2);
 * const pair = new Uint8Array(64);
 * pair.set(a);
 * pair.set(b, 32);
 * const expected = new Uint8Array(await crypto.subtle.digest("SHA-256", pair));
 * assert.deepEqual(await layerRoot(pair, 2, 0), expected);
 * ```
 *
 * @param hashes Concatenated 32-byte hashes (at most `width` of them).
 * @param width Nodes in the layer, a power of two.
 * @param layer The layer's number above the leaves (picks the pad hash).
 * @returns The 32-byte root.
 * @throws {RangeError} When there are more hashes than `width`, or they are not whole hashes.
 */
export async function layerRoot(
  hashes: Uint8Array,
  width: number,
  layer: number,
): Promise<Uint8Array> {
  if (hashes.length % HASH_SIZE !== 0 || hashes.length / HASH_SIZE > width) {
    throw new RangeError(`${hashes.length} bytes are not at most ${width} hashes`);
  }
  const pads = await padHashes();
  let nodes = hashes.length / HASH_SIZE;
  if (nodes === 0) return pads[layer + log2(width)].slice();
  const work = hashes.slice();
  for (let w = width, l = layer; w > 1; w /= 2, l++) {
    nodes = await reducePairs(work, nodes, work, pads[l]);
  }
  return work.slice(0, HASH_SIZE);
}

/**
 * Hashes pieces into their subtree roots with reused buffers: one digest per 16 KiB block, all issued at once,
 * then the inner layers reduced in place. One hasher serves one caller at a time (await each call).
 *
 * @example The root of a one-block file is its block's hash
 * ```ts
 * import { MerkleHasher } from "./merkle.ts";
 * import assert from "node:assert/strict";
 *
 * const data = new TextEncoder().encode("hello");
 * const root = await new MerkleHasher().root(data, 1);
 * assert.deepEqual(root, new Uint8Array(await crypto.subtle.digest("SHA-256", data)));
 * ```
 */
export class MerkleHasher {
  #leaves = new Uint8Array(0);
  #pending: Promise<ArrayBuffer>[] = [];

  /**
   * SHA-256 of each 16 KiB block of `data` (the last one short).
   *
   * @param data The bytes.
   * @returns The concatenated leaf hashes: a view into this hasher's buffer, valid until its next call.
   */
  async blockHashes(data: Uint8Array): Promise<Uint8Array> {
    const blocks = Math.ceil(data.length / BLOCK_SIZE);
    if (this.#leaves.length < blocks * HASH_SIZE) {
      this.#leaves = new Uint8Array(nextPowerOfTwo(blocks) * HASH_SIZE);
    }
    const leaves = this.#leaves;
    const pending = this.#pending;
    for (let start = 0; start < blocks; start += BATCH) {
      const end = Math.min(blocks, start + BATCH);
      pending.length = 0;
      for (let i = start; i < end; i++) {
        const block = data.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE);
        pending.push(crypto.subtle.digest("SHA-256", block as Uint8Array<ArrayBuffer>));
      }
      const done = await Promise.all(pending);
      for (let i = start; i < end; i++) leaves.set(new Uint8Array(done[i - start]), i * HASH_SIZE);
    }
    pending.length = 0;
    return leaves.subarray(0, blocks * HASH_SIZE);
  }

  /**
   * The root of the subtree over `data`: leaves are the blocks' hashes, zero leaves up to `width`.
   *
   * @param data The bytes of one piece (or of a whole file of at most one piece), not empty.
   * @param width Leaves of the subtree: a power of two, at least the number of blocks.
   * @returns The 32-byte root (a new array).
   * @throws {RangeError} When `data` is empty or holds more than `width` blocks.
   */
  async root(data: Uint8Array, width: number): Promise<Uint8Array> {
    const blocks = Math.ceil(data.length / BLOCK_SIZE);
    if (blocks === 0 || blocks > width) {
      throw new RangeError(`${data.length} bytes do not fit a subtree of ${width} blocks`);
    }
    const pads = await padHashes();
    const leaves = await this.blockHashes(data);
    let nodes = blocks;
    for (let w = width, l = 0; w > 1; w /= 2, l++) {
      nodes = await reducePairs(leaves, nodes, this.#leaves, pads[l]);
    }
    return this.#leaves.slice(0, HASH_SIZE);
  }
}

/** A file's root and piece layer, as a torrent stores them. */
export interface FileHashes {
  /** The `pieces root`. */
  root: Uint8Array;
  /** The piece layer: one hash per piece; empty for a file of at most one piece (it has none). */
  pieceLayer: Uint8Array;
}

/**
 * Computes a file's root and piece layer from its pieces, fed in order (torrent creation).
 *
 * @example Hash a two-piece file
 * ```ts
 * import { FileMerkle, verifyPieceLayer } from "./merkle.ts";
 * import assert from "node:assert/strict";
 *
 * const data = new Uint8Array(40000).fill(7);
 * const m = new FileMerkle(data.length, 32768);
 * await m.addPiece(data.subarray(0, 32768));
 * await m.addPiece(data.subarray(32768));
 * const { root, pieceLayer } = await m.finish();
 * assert.equal(pieceLayer.length, 64);
 * assert.ok(await verifyPieceLayer(pieceLayer, root, data.length, 32768));
 * ```
 */
export class FileMerkle {
  readonly #length: number;
  readonly #pieceLength: number;
  readonly #pieces: number;
  readonly #layer: Uint8Array;
  readonly #hasher: MerkleHasher;
  #added = 0;
  #root: Uint8Array | undefined;

  /**
   * Creates a {@linkcode FileMerkle}.
   *
   * @param fileLength Bytes in the file (not empty).
   * @param pieceLength The torrent's piece length (a power of two, at least 16 KiB).
   * @param hasher A hasher to reuse.
   */
  constructor(fileLength: number, pieceLength: number, hasher: MerkleHasher = new MerkleHasher()) {
    if (fileLength <= 0) throw new RangeError("An empty file has no merkle tree");
    this.#length = fileLength;
    this.#pieceLength = pieceLength;
    this.#pieces = Math.ceil(fileLength / pieceLength);
    this.#layer = new Uint8Array(this.#pieces > 1 ? this.#pieces * HASH_SIZE : 0);
    this.#hasher = hasher;
  }

  /**
   * Adds the file's next piece.
   *
   * @param data A whole piece (the last one may be short).
   * @throws {RangeError} When the piece has the wrong size or the file is complete.
   */
  async addPiece(data: Uint8Array): Promise<void> {
    const i = this.#added;
    const want = Math.min(this.#pieceLength, this.#length - i * this.#pieceLength);
    if (i >= this.#pieces || data.length !== want) {
      throw new RangeError(`Piece ${i} of the file needs ${want} bytes, got ${data.length}`);
    }
    if (this.#pieces === 1) {
      this.#root = await this.#hasher.root(data, leafCount(this.#length));
    } else {
      this.#layer.set(
        await this.#hasher.root(data, this.#pieceLength / BLOCK_SIZE),
        i * HASH_SIZE,
      );
    }
    this.#added++;
  }

  /**
   * The root and piece layer, once every piece was added.
   *
   * @throws {RangeError} When pieces are missing.
   */
  async finish(): Promise<FileHashes> {
    if (this.#added !== this.#pieces) {
      throw new RangeError(`${this.#added} of ${this.#pieces} pieces were added`);
    }
    if (this.#pieces > 1) {
      this.#root = await layerRoot(
        this.#layer,
        nextPowerOfTwo(this.#pieces),
        log2(this.#pieceLength / BLOCK_SIZE),
      );
    }
    return { root: this.#root!, pieceLayer: this.#layer };
  }
}

/**
 * Checks a file's piece layer against its root: the right number of hashes, and their tree's root.
 *
 * @param layer The concatenated piece hashes.
 * @param root The file's `pieces root`.
 * @param fileLength Bytes in the file.
 * @param pieceLength The torrent's piece length.
 * @returns Whether the layer belongs to the root.
 */
export async function verifyPieceLayer(
  layer: Uint8Array,
  root: Uint8Array,
  fileLength: number,
  pieceLength: number,
): Promise<boolean> {
  const pieces = Math.ceil(fileLength / pieceLength);
  if (pieces < 2 || layer.length !== pieces * HASH_SIZE || root.length !== HASH_SIZE) return false;
  const got = await layerRoot(layer, nextPowerOfTwo(pieces), log2(pieceLength / BLOCK_SIZE));
  return equal(got, root);
}

/**
 * Checks the hashes of a `hashes` message: the requested hashes are combined into one node, then with each
 * uncle in turn, until a node is reached that `trusted` knows (a piece layer hash, or the root); the message is
 * valid when that node matches. Nodes `trusted` does not know are skipped.
 *
 * @example Verify a file's whole piece layer against its root
 * ```ts
 * import { FileMerkle, treeHeight, verifyHashes } from "./merkle.ts";
 * import assert from "node:assert/strict";
 *
 * const length = 4 * 16384;
 * const m = new FileMerkle(length, 16384);
 * for (let i = 0; i < 4; i++) await m.addPiece(new Uint8Array(16384).fill(i));
 * const { root, pieceLayer } = await m.finish();
 * const height = treeHeight(length);
 * const req = { piecesRoot: root, baseLayer: 0, index: 0, length: 4, proofLayers: 0 };
 * const known = (layer: number, index: number) => layer === height && index === 0 ? root : undefined;
 * assert.ok(await verifyHashes(req, pieceLayer, known));
 * ```
 *
 * @param req The request the message answers.
 * @param hashes The message's hashes: `req.length` requested ones, then the uncles.
 * @param trusted Known nodes by layer and index (at least the root at `treeHeight(file length)`, 0).
 * @returns Whether the hashes prove out to a trusted node.
 */
export async function verifyHashes(
  req: HashRequest,
  hashes: Uint8Array,
  trusted: (layer: number, index: number) => Uint8Array | undefined,
): Promise<boolean> {
  const { baseLayer, index, length, proofLayers } = req;
  const uncles = uncleCount(length, proofLayers);
  if (
    length < 1 || nextPowerOfTwo(length) !== length || index % length !== 0 ||
    hashes.length !== (length + uncles) * HASH_SIZE
  ) {
    return false;
  }
  // trusted nodes among the requested ones and inside their subtree
  const work = hashes.slice(0, length * HASH_SIZE);
  let nodes = length, layer = baseLayer, at = index;
  let checked = false;
  for (;;) {
    for (let i = 0; i < nodes; i++) {
      const t = trusted(layer, at + i);
      if (t === undefined) continue;
      if (!equal(t, work.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE))) return false;
      checked = true;
    }
    if (nodes === 1) break;
    nodes = await reducePairs(work, nodes, work, new Uint8Array(HASH_SIZE));
    layer++;
    at /= 2;
  }
  const node = work.subarray(0, HASH_SIZE);
  const pair = new Uint8Array(2 * HASH_SIZE);
  for (let u = 0; u < uncles; u++) {
    const uncle = hashes.subarray((length + u) * HASH_SIZE, (length + u + 1) * HASH_SIZE);
    if (at % 2 === 0) {
      pair.set(node, 0);
      pair.set(uncle, HASH_SIZE);
    } else {
      pair.set(uncle, 0);
      pair.set(node, HASH_SIZE);
    }
    node.set(new Uint8Array(await crypto.subtle.digest("SHA-256", pair)));
    layer++;
    at = Math.floor(at / 2);
    const t = trusted(layer, at);
    if (t !== undefined) {
      if (!equal(t, node)) return false;
      checked = true;
    }
  }
  return checked;
}

/** Most hashes one request may ask for (libtorrent's limit: one piece of 128 MiB in blocks). */
export const MAX_HASH_REQUEST_LENGTH = 8192;

/**
 * Checks a request's numbers against the tree of a file of `fileLength` bytes: the base layer below the root,
 * `length` a power of two from 2 to {@linkcode MAX_HASH_REQUEST_LENGTH}, `index` a multiple of it and the range
 * inside the layer, and proof layers that stay below the root. (It does not look at `piecesRoot`.)
 *
 * @param req The request.
 * @param fileLength Bytes in the file whose root it names.
 * @returns Why it is invalid, or undefined when it is valid.
 */
export function checkHashRequest(req: HashRequest, fileLength: number): string | undefined {
  const { baseLayer, index, length, proofLayers } = req;
  const height = treeHeight(fileLength);
  if (!Number.isInteger(baseLayer) || baseLayer < 0 || baseLayer >= height) {
    return `base layer ${baseLayer} is not below the root (layer ${height})`;
  }
  if (length < 2 || length > MAX_HASH_REQUEST_LENGTH || nextPowerOfTwo(length) !== length) {
    return `length ${length} is not a power of two from 2 to ${MAX_HASH_REQUEST_LENGTH}`;
  }
  const width = 2 ** (height - baseLayer);
  if (!Number.isInteger(index) || index % length !== 0 || index + length > width) {
    return `hashes ${index}+${length} are not an aligned range of the ${width} in layer ${baseLayer}`;
  }
  if (!Number.isInteger(proofLayers) || proofLayers < 0 || proofLayers >= height - baseLayer) {
    return `${proofLayers} proof layers reach past the root`;
  }
  return undefined;
}

/**
 * The tree of one file from its piece layer up (or from its leaves, for the block hashes of small files): the
 * hashes that answer `hash request` messages. Each layer holds its real nodes; nodes past the end of the file
 * are pad hashes.
 *
 * @example Answer a request for two piece hashes with the proof up to the root
 * ```ts
 * import { FileMerkle, MerkleTree, treeHeight, verifyHashes } from "./merkle.ts";
 * import assert from "node:assert/strict";
 *
 * const length = 5 * 16384;
 * const m = new FileMerkle(length, 16384);
 * for (let i = 0; i < 5; i++) await m.addPiece(new Uint8Array(16384).fill(i + 1));
 * const { root, pieceLayer } = await m.finish();
 * const tree = await MerkleTree.fromPieceLayer({ fileLength: length, pieceLength: 16384, root, pieceLayer });
 * const req = { piecesRoot: root, baseLayer: 0, index: 2, length: 2, proofLayers: treeHeight(length) - 1 };
 * const hashes = tree.hashes(req)!;
 * assert.ok(await verifyHashes(req, hashes, (l, i) => l === tree.height && i === 0 ? root : undefined));
 * ```
 */
export class MerkleTree {
  /** Bytes in the file. */
  readonly fileLength: number;
  /** The torrent's piece length. */
  readonly pieceLength: number;
  /** The root's layer number. */
  readonly height: number;
  /** The lowest layer held. */
  readonly lowest: number;
  /** The computed root. */
  readonly root: Uint8Array;
  readonly #layers: Uint8Array[];
  readonly #pads: Uint8Array[];
  readonly #blocks: number;

  private constructor(
    fileLength: number,
    pieceLength: number,
    lowest: number,
    layers: Uint8Array[],
    pads: Uint8Array[],
  ) {
    this.fileLength = fileLength;
    this.pieceLength = pieceLength;
    this.height = treeHeight(fileLength);
    this.lowest = lowest;
    this.#layers = layers;
    this.#pads = pads;
    this.#blocks = Math.ceil(fileLength / BLOCK_SIZE);
    this.root = layers[this.height];
  }

  /**
   * Builds the layers above a file's piece layer. For a file of at most one piece there is no piece layer and
   * only the root is held. Compare {@linkcode MerkleTree.root} with the torrent's `pieces root` to check it.
   *
   * @param init The file's length, the torrent's piece length, and the file's root and piece layer.
   * @returns The tree.
   * @throws {RangeError} When the piece layer has the wrong length.
   */
  static async fromPieceLayer(init: {
    fileLength: number;
    pieceLength: number;
    root: Uint8Array;
    pieceLayer?: Uint8Array;
  }): Promise<MerkleTree> {
    const { fileLength, pieceLength } = init;
    const pads = await padHashes();
    const height = treeHeight(fileLength);
    const pieces = Math.ceil(fileLength / pieceLength);
    if (pieces <= 1) {
      const layers: Uint8Array[] = [];
      layers[height] = init.root.slice();
      return new MerkleTree(fileLength, pieceLength, height, layers, pads);
    }
    const layer = init.pieceLayer;
    if (!layer || layer.length !== pieces * HASH_SIZE) {
      throw new RangeError(`A piece layer of ${pieces} hashes is needed`);
    }
    return await MerkleTree.#build(
      fileLength,
      pieceLength,
      log2(pieceLength / BLOCK_SIZE),
      layer,
      pads,
    );
  }

  /**
   * Builds a whole tree from a file's leaf hashes.
   *
   * @param leaves The block hashes, one per 16 KiB block of the file.
   * @param fileLength Bytes in the file.
   * @param pieceLength The torrent's piece length.
   * @returns The tree.
   * @throws {RangeError} When the number of leaves does not match the file.
   */
  static async fromLeaves(
    leaves: Uint8Array,
    fileLength: number,
    pieceLength: number,
  ): Promise<MerkleTree> {
    if (leaves.length !== Math.ceil(fileLength / BLOCK_SIZE) * HASH_SIZE || fileLength <= 0) {
      throw new RangeError(`A file of ${fileLength} bytes needs one leaf per 16 KiB block`);
    }
    return await MerkleTree.#build(fileLength, pieceLength, 0, leaves, await padHashes());
  }

  static async #build(
    fileLength: number,
    pieceLength: number,
    lowest: number,
    base: Uint8Array,
    pads: Uint8Array[],
  ): Promise<MerkleTree> {
    const height = treeHeight(fileLength);
    const layers: Uint8Array[] = [];
    layers[lowest] = base.slice();
    let nodes = base.length / HASH_SIZE;
    for (let l = lowest; l < height; l++) {
      const next = new Uint8Array(Math.ceil(nodes / 2) * HASH_SIZE);
      nodes = await reducePairs(layers[l], nodes, next, pads[l]);
      layers[l + 1] = next;
    }
    return new MerkleTree(fileLength, pieceLength, lowest, layers, pads);
  }

  /** Nodes of layer `layer` that cover bytes of the file (the rest are pads). */
  #realNodes(layer: number): number {
    return Math.ceil(this.#blocks / 2 ** layer);
  }

  /**
   * One node of the tree.
   *
   * @param layer Layer number (0 = leaves).
   * @param index Position in the layer.
   * @param below Layers under one piece to look in too (from {@linkcode MerkleTree.pieceSubtree}).
   * @returns The hash, a pad hash past the end of the file, or undefined when this tree does not hold it.
   */
  node(layer: number, index: number, below?: PieceSubtree): Uint8Array | undefined {
    if (layer < 0 || layer > this.height || index < 0 || index >= 2 ** (this.height - layer)) {
      return undefined;
    }
    if (index >= this.#realNodes(layer)) return this.#pads[layer];
    const held = layer >= this.lowest ? this.#layers[layer] : undefined;
    if (held) return held.subarray(index * HASH_SIZE, (index + 1) * HASH_SIZE);
    const extra = below?.layers.get(layer);
    if (!extra) return undefined;
    const at = index - extra[0];
    if (at < 0 || (at + 1) * HASH_SIZE > extra[1].length) return undefined;
    return extra[1].subarray(at * HASH_SIZE, (at + 1) * HASH_SIZE);
  }

  /**
   * Checks a request against this file's tree (see {@linkcode checkHashRequest}).
   *
   * @param req The request.
   * @returns Why it is invalid, or undefined when it is valid.
   */
  check(req: HashRequest): string | undefined {
    return checkHashRequest(req, this.fileLength);
  }

  /**
   * The hashes answering a request: the requested ones, then the uncles (see {@linkcode uncleCount}).
   *
   * @param req A request that passes {@linkcode MerkleTree.check}.
   * @param below For block-layer requests under the layers held: the subtree of the piece holding the requested
   *   range, from {@linkcode MerkleTree.pieceSubtree}.
   * @returns The hashes, or undefined when the request is invalid or needs nodes this tree does not hold.
   */
  hashes(req: HashRequest, below?: PieceSubtree): Uint8Array | undefined {
    if (this.check(req) !== undefined) return undefined;
    const { baseLayer, index, length, proofLayers } = req;
    const uncles = uncleCount(length, proofLayers);
    const out = new Uint8Array((length + uncles) * HASH_SIZE);
    for (let i = 0; i < length; i++) {
      const h = this.node(baseLayer, index + i, below);
      if (!h) return undefined;
      out.set(h, i * HASH_SIZE);
    }
    let o = length;
    for (let k = log2(length); k <= proofLayers; k++) {
      const h = this.node(baseLayer + k, Math.floor(index / 2 ** k) ^ 1, below);
      if (!h) return undefined;
      out.set(h, o++ * HASH_SIZE);
    }
    return out;
  }

  /**
   * The layers under one piece, computed from its block hashes (read from disk and hashed by the caller), so
   * that {@linkcode MerkleTree.hashes} can answer block-layer requests inside that piece. The block hashes are
   * checked against the piece's node first.
   *
   * @param piece The piece's index within the file.
   * @param blockHashes The hashes of the piece's blocks (only those holding file data).
   * @returns The subtree, or undefined when the hashes do not match the piece's node.
   */
  async pieceSubtree(piece: number, blockHashes: Uint8Array): Promise<PieceSubtree | undefined> {
    const top = this.lowest;
    const span = 2 ** top; // leaves under one node of the lowest layer held
    const start = piece * span;
    const real = Math.min(span, this.#blocks - start);
    if (real <= 0 || blockHashes.length !== real * HASH_SIZE) return undefined;
    const layers = new Map<number, [number, Uint8Array]>();
    let layer = blockHashes.slice();
    layers.set(0, [start, layer]);
    let nodes = real;
    for (let l = 0; l < top; l++) {
      const next = new Uint8Array(Math.ceil(nodes / 2) * HASH_SIZE);
      nodes = await reducePairs(layer, nodes, next, this.#pads[l]);
      layer = next;
      layers.set(l + 1, [start / 2 ** (l + 1), next]);
    }
    const expected = this.node(top, piece);
    if (!expected || !equal(expected, layer.subarray(0, HASH_SIZE))) return undefined;
    layers.delete(top);
    return { piece, layers };
  }
}

/** The layers under one piece, by layer: the index of their first node and their hashes. */
export interface PieceSubtree {
  /** The piece's index within its file. */
  readonly piece: number;
  /** Layer → [index of the first node, concatenated hashes]. */
  readonly layers: ReadonlyMap<number, readonly [number, Uint8Array]>;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
