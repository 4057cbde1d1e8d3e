/**
 * Piece verification for every torrent format: v1 pieces by SHA-1; v2 pieces by the merkle root of their blocks,
 * compared with the file's piece layer (or with the file's `pieces root` when the file fits in one piece); hybrid
 * pieces by both, a disagreement counting as a failure.
 *
 * In v2 every piece holds bytes of exactly one file (files start at piece boundaries; the rest of a file's last
 * piece is padding), so the v2 hash of a piece covers only that file's bytes: `min(piece length, bytes of the
 * file left)`, the padding after them is not hashed.
 *
 * @module
 */

import { bytesEqual, toHex } from "../_bytes.ts";
import type { Layout } from "./layout.ts";
import { BLOCK_SIZE, HASH_SIZE, leafCount, MerkleHasher } from "./merkle.ts";

/** What {@linkcode TorrentVerifier.check} found; `undefined` where a kind of hash does not apply or is unknown. */
export interface PieceCheck {
  /** SHA-1 against the `pieces` string (v1 and hybrid torrents). */
  v1: boolean | undefined;
  /** Merkle root against the piece layer or file root (v2 and hybrid, when the file's layer is known). */
  v2: boolean | undefined;
}

/** Options for {@linkcode TorrentVerifier}. */
export interface TorrentVerifierOptions {
  /**
   * For hybrid torrents, check the v2 hash too (when the file's piece layer is known), not only SHA-1. A
   * disagreement fails the piece. Off, SHA-1 alone decides, as in libtorrent.
   * @default {true}
   */
  hybridBoth?: boolean;
}

/** The v2 hash a piece must have. */
export interface V2Expectation {
  /** The file the piece belongs to. */
  file: number;
  /** The piece's index within that file. */
  pieceInFile: number;
  /** Bytes of the file in this piece (the rest of the piece, if any, is padding). */
  dataLength: number;
  /** Leaves of the piece's subtree: blocks per piece, or the whole tree of a file of at most one piece. */
  width: number;
  /** The expected root: a piece layer hash, or the file's `pieces root`. */
  hash: Uint8Array;
}

/**
 * Checks pieces of a torrent against their hashes. Calls may overlap; a second hasher is made when they do.
 *
 * @example Verify a piece of a v1 torrent
 * ```ts
 * import { Layout } from "./layout.ts";
 * import { TorrentVerifier } from "./verify.ts";
 * import assert from "node:assert/strict";
 *
 * const data = new TextEncoder().encode("hello");
 * const pieces = new Uint8Array(await crypto.subtle.digest("SHA-1", data));
 * const layout = new Layout({
 *   files: [{ path: ["hello.txt"], length: 5, offset: 0 }],
 *   pieceLength: 16384,
 *   length: 5,
 *   pieces,
 * });
 * const verifier = new TorrentVerifier(layout);
 * assert.equal(await verifier.verify(0, data), true);
 * assert.deepEqual(await verifier.check(0, new Uint8Array(5)), { v1: false, v2: undefined });
 * ```
 */
export class TorrentVerifier {
  readonly #layout: Layout;
  readonly #both: boolean;
  readonly #hasher = new MerkleHasher();
  #busy = false;
  /** piece → file holding its bytes (v2 and hybrid), -1 for none */
  #pieceFile: Int32Array | undefined;
  /** file → its piece layer, once found */
  readonly #layers: (Uint8Array | undefined)[] = [];

  /**
   * Creates a {@linkcode TorrentVerifier}.
   *
   * @param layout The torrent's geometry and hashes.
   * @param options Whether hybrids check both hashes.
   */
  constructor(layout: Layout, options: TorrentVerifierOptions = {}) {
    this.#layout = layout;
    this.#both = options.hybridBoth ?? true;
  }

  /**
   * Whether piece `index` is intact: SHA-1 for v1; the merkle hash for v2 (false while the file's piece layer is
   * unknown); for hybrids SHA-1, and the merkle hash too when known and `hybridBoth` is on.
   *
   * @param index Piece index.
   * @param data The piece's bytes (at least its size; only its size is hashed).
   * @returns Whether it passed.
   */
  async verify(index: number, data: Uint8Array): Promise<boolean> {
    const version = this.#layout.version;
    if (version === 1) return await this.#v1(index, data);
    if (version === 2) return (await this.#v2(index, data)) === true;
    if (!(await this.#v1(index, data))) return false;
    if (!this.#both) return true;
    return (await this.#v2(index, data)) !== false;
  }

  /**
   * Checks every hash that applies to piece `index` and is known.
   *
   * @param index Piece index.
   * @param data The piece's bytes.
   * @returns The result of each kind of hash.
   */
  async check(index: number, data: Uint8Array): Promise<PieceCheck> {
    const version = this.#layout.version;
    return {
      v1: version === 2 ? undefined : await this.#v1(index, data),
      v2: version === 1 ? undefined : await this.#v2(index, data),
    };
  }

  /**
   * Checks only the merkle hash of piece `index` (a hybrid's SHA-1 being checked elsewhere).
   *
   * @param index Piece index.
   * @param data The piece's bytes.
   * @returns Whether it matches, or undefined for a v1 torrent or while the file's piece layer is unknown.
   */
  async checkV2(index: number, data: Uint8Array): Promise<boolean | undefined> {
    return await this.#v2(index, data);
  }

  /**
   * The v2 hash piece `index` must have, or undefined for a v1 torrent, a piece of no file, or a file whose
   * piece layer is not known yet.
   *
   * @param index Piece index.
   * @returns The expected hash and what it covers.
   */
  expectedV2(index: number): V2Expectation | undefined {
    const layout = this.#layout;
    if (layout.version === 1 || index < 0 || index >= layout.pieceCount) return undefined;
    const file = this.#fileOfPiece(index);
    if (file < 0) return undefined;
    const f = layout.files[file];
    const pl = layout.pieceLength;
    const pieceInFile = index - Math.floor(f.offset / pl);
    const dataLength = Math.min(pl, f.length - pieceInFile * pl);
    if (f.length <= pl) {
      return { file, pieceInFile, dataLength, width: leafCount(f.length), hash: f.piecesRoot! };
    }
    const layer = this.#layers[file] ??= layout.pieceLayers.get(toHex(f.piecesRoot!));
    if (!layer) return undefined;
    return {
      file,
      pieceInFile,
      dataLength,
      width: pl / BLOCK_SIZE,
      hash: layer.subarray(pieceInFile * HASH_SIZE, (pieceInFile + 1) * HASH_SIZE),
    };
  }

  async #v1(index: number, data: Uint8Array): Promise<boolean> {
    const size = this.#layout.pieceSize(index);
    const digest = new Uint8Array(
      await crypto.subtle.digest("SHA-1", data.subarray(0, size) as Uint8Array<ArrayBuffer>),
    );
    return bytesEqual(digest, this.#layout.pieces.subarray(index * 20, index * 20 + 20));
  }

  async #v2(index: number, data: Uint8Array): Promise<boolean | undefined> {
    const want = this.expectedV2(index);
    if (!want) return undefined;
    const mine = !this.#busy;
    const hasher = mine ? this.#hasher : new MerkleHasher();
    if (mine) this.#busy = true;
    try {
      const root = await hasher.root(data.subarray(0, want.dataLength), want.width);
      return bytesEqual(root, want.hash);
    } finally {
      if (mine) this.#busy = false;
    }
  }

  #fileOfPiece(index: number): number {
    if (!this.#pieceFile) {
      const layout = this.#layout;
      const map = new Int32Array(layout.pieceCount).fill(-1);
      const pl = layout.pieceLength;
      layout.files.forEach((f, i) => {
        if (f.padding || f.length === 0 || !f.piecesRoot || f.offset % pl !== 0) return;
        const first = f.offset / pl;
        const last = Math.min(layout.pieceCount - 1, first + Math.ceil(f.length / pl) - 1);
        for (let p = first; p <= last; p++) map[p] = i;
      });
      this.#pieceFile = map;
    }
    return this.#pieceFile[index];
  }
}
