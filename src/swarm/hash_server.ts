/**
 * Answering BEP 52 `hash request` messages for one v2 or hybrid torrent: piece-layer and higher hashes from each
 * file's tree (built once from the torrent's piece layers and kept), block-layer hashes by hashing the piece from
 * disk (only pieces we have). Anything else, or a request beyond the rate a peer is allowed, gets `hash reject`.
 * Hash requests may come from choked peers (BEP 52), so each peer has a budget of requests (refilled over time)
 * and of block-layer requests being read and hashed at once.
 *
 * @module
 */

import { toHex } from "../_bytes.ts";
import type { Metainfo } from "../metainfo.ts";
import {
  type HashRequest,
  MerkleHasher,
  MerkleTree,
  type PieceSubtree,
} from "../storage/merkle.ts";
import { findHashRequestFile } from "../wire/hashes.ts";

/** Requests a peer may make in a burst. */
const BURST = 64;
/** Requests a peer may make per second after a burst. */
const PER_SECOND = 32;
/** Block-layer requests (a disk read and hashing each) of one peer handled at once. */
const BLOCK_REQUESTS_AT_ONCE = 4;

/** The side of a connection the server needs. */
export interface HashPeer {
  /** Sends `hashes`. */
  sendHashes(request: HashRequest, hashes: Uint8Array): void;
  /** Sends `hash reject`. */
  rejectHashes(request: HashRequest): void;
  /** True once the connection ended. */
  readonly closed: boolean;
}

/** Options for {@linkcode HashServer}. */
export interface HashServerOptions {
  /** The torrent (its files' roots and piece layers). */
  meta: Metainfo;
  /** Reads a whole piece from disk (undefined when it cannot). */
  readPiece: (index: number) => Promise<Uint8Array | undefined>;
  /** True when we have the piece (verified on disk). */
  have: (index: number) => boolean;
  /** The clock (ms). @default {Date.now} */
  now?: () => number;
}

interface Budget {
  tokens: number;
  at: number;
  reading: number;
}

/**
 * Serves hash requests of one torrent.
 *
 * @example Answer a request for a file's piece layer
 * ```ts
 * import { HashServer } from "./hash_server.ts";
 * import { createTorrent } from "../create.ts";
 * import { parseMetainfo } from "../metainfo.ts";
 * import { verifyHashes, treeHeight } from "../storage/merkle.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeFile(`${dir}/a.bin`, new Uint8Array(100_000).fill(7));
 * const meta = await parseMetainfo(await createTorrent(`${dir}/a.bin`, { version: 2, pieceLength: 32768 }));
 * await Deno.remove(dir, { recursive: true });
 * const root = meta.files[0].piecesRoot!;
 * const server = new HashServer({ meta, readPiece: () => Promise.resolve(undefined), have: () => false });
 * const request = { piecesRoot: root, baseLayer: 1, index: 0, length: 4, proofLayers: 0 };
 * let answer: Uint8Array | undefined;
 * await server.request({ sendHashes: (_r, h) => answer = h, rejectHashes() {}, closed: false }, request);
 * const height = treeHeight(100_000);
 * assert.ok(await verifyHashes(request, answer!, (l, i) => l === height && i === 0 ? root : undefined));
 * ```
 */
export class HashServer {
  readonly #meta: Metainfo;
  readonly #opts: HashServerOptions;
  readonly #now: () => number;
  readonly #trees = new Map<number, Promise<MerkleTree | undefined>>();
  readonly #budgets = new WeakMap<HashPeer, Budget>();
  readonly #hasher = new MerkleHasher();
  #hashing: Promise<unknown> = Promise.resolve();

  /**
   * Creates a {@linkcode HashServer}.
   *
   * @param options The torrent and how to read its pieces.
   */
  constructor(options: HashServerOptions) {
    this.#meta = options.meta;
    this.#opts = options;
    this.#now = options.now ?? Date.now;
    // the trees are built now, so that the first requests are answered at once (before the piece data that
    // follows them: libtorrent 2.0.8 can take a hybrid piece that passed SHA-1 before its v2 hashes came for
    // inconsistent hashes)
    for (let i = 0; i < this.#meta.files.length; i++) {
      const f = this.#meta.files[i];
      if (!f.padding && f.length > 0 && f.piecesRoot) void this.#tree(i);
    }
  }

  /** Settles once the trees being built and the piece being hashed are done (before the torrent closes). */
  async idle(): Promise<void> {
    await Promise.all(this.#trees.values());
    await this.#hashing;
  }

  /**
   * Answers one hash request with `hashes` or `hash reject`.
   *
   * @param peer The connection it came on.
   * @param req The request (validated here against the torrent's files).
   */
  async request(peer: HashPeer, req: HashRequest): Promise<void> {
    const budget = this.#budget(peer);
    if (budget.tokens < 1) return peer.rejectHashes(req);
    budget.tokens--;
    const found = findHashRequestFile(req, this.#meta.files);
    if ("error" in found) return peer.rejectHashes(req);
    const tree = await this.#tree(found.file);
    if (!tree) return peer.rejectHashes(req);
    let below: PieceSubtree | undefined;
    if (req.baseLayer < tree.lowest) {
      if (budget.reading >= BLOCK_REQUESTS_AT_ONCE) return peer.rejectHashes(req);
      budget.reading++;
      try {
        below = await this.#pieceSubtree(tree, found.file, req);
      } finally {
        budget.reading--;
      }
      if (!below) return peer.rejectHashes(req);
    }
    const hashes = tree.hashes(req, below);
    if (peer.closed) return;
    if (hashes) peer.sendHashes(req, hashes);
    else peer.rejectHashes(req);
  }

  #budget(peer: HashPeer): Budget {
    const now = this.#now();
    let b = this.#budgets.get(peer);
    if (!b) {
      b = { tokens: BURST, at: now, reading: 0 };
      this.#budgets.set(peer, b);
    } else {
      b.tokens = Math.min(BURST, b.tokens + ((now - b.at) / 1000) * PER_SECOND);
      b.at = now;
    }
    return b;
  }

  /** The tree of file `file` from its piece layer up (undefined while its layer is unknown). */
  #tree(file: number): Promise<MerkleTree | undefined> {
    const cached = this.#trees.get(file);
    if (cached) return cached;
    const f = this.#meta.files[file];
    const pl = this.#meta.pieceLength;
    const layer = f.length > pl ? this.#meta.pieceLayers.get(toHex(f.piecesRoot!)) : undefined;
    if (f.length > pl && !layer) return Promise.resolve(undefined); // not cached: it may arrive
    const tree = MerkleTree.fromPieceLayer({
      fileLength: f.length,
      pieceLength: pl,
      root: f.piecesRoot!,
      ...(layer ? { pieceLayer: layer } : {}),
    }).catch(() => undefined);
    this.#trees.set(file, tree);
    return tree;
  }

  /**
   * The layers under the one piece a block-layer request falls in, from the piece's data on disk; undefined when
   * the range spans pieces, we do not have the piece, or it cannot be read.
   */
  async #pieceSubtree(
    tree: MerkleTree,
    file: number,
    req: HashRequest,
  ): Promise<PieceSubtree | undefined> {
    const span = 2 ** (tree.lowest - req.baseLayer); // nodes of the base layer under one piece
    const pieceInFile = Math.floor(req.index / span);
    if (Math.floor((req.index + req.length - 1) / span) !== pieceInFile) return undefined;
    const f = this.#meta.files[file];
    const pl = this.#meta.pieceLength;
    const index = Math.floor(f.offset / pl) + pieceInFile;
    const dataLength = Math.min(pl, f.length - pieceInFile * pl);
    if (dataLength <= 0 || !this.#opts.have(index)) return undefined;
    const data = await this.#opts.readPiece(index).catch(() => undefined);
    if (!data || data.length < dataLength) return undefined;
    // one hasher, one piece at a time (its buffer is reused)
    const run = this.#hashing.then(async () => {
      const leaves = await this.#hasher.blockHashes(data.subarray(0, dataLength));
      return await tree.pieceSubtree(pieceInFile, leaves.slice());
    });
    this.#hashing = run.catch(() => {});
    const sub = await run.catch(() => undefined);
    return sub;
  }
}
