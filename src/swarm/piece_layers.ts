/**
 * Fetching the BEP 52 piece layers a torrent lacks (a magnet link gives only the info dictionary, whose files
 * carry just their merkle roots): each layer is asked of peers that speak v2 in chunks of up to 512 piece hashes
 * (`hash request` at the piece layer, with the uncle hashes up to the root), each chunk proved against the file's
 * `pieces root` as it arrives, and the whole layer added to the torrent once every chunk is in. Seeds are asked
 * first, then peers that have a piece of the chunk (BEP 52: they must be able to answer); a peer that refuses is
 * not asked for that chunk again for a while, one whose hashes do not prove out is disconnected.
 *
 * Until a file's layer is known its pieces cannot be checked by a v2-only torrent: they are {@linkcode
 * PieceLayerFetcher.held} (a hybrid torrent checks them by SHA-1 meanwhile).
 *
 * @module
 */

import { Bitfield } from "../bitfield.ts";
import { addPieceLayer, type Metainfo, missingPieceLayers } from "../metainfo.ts";
import {
  BLOCK_SIZE,
  HASH_SIZE,
  type HashRequest,
  log2,
  nextPowerOfTwo,
  treeHeight,
  verifyHashes,
} from "../storage/merkle.ts";
import { sameHashRequest } from "../wire/hashes.ts";

/** Piece hashes asked for in one request (libtorrent's chunk, and BEP 52's "should not be greater than"). */
export const LAYER_CHUNK = 512;
/** An unanswered request is given to another peer after this long (ms). */
const REQUEST_TIMEOUT_MS = 30_000;
/** A peer that refused a chunk is not asked for it again for this long (ms). */
const REFUSED_MS = 30_000;
/** Hash requests in flight to one peer. */
const PER_PEER = 8;

/** The side of a connection the fetcher needs. */
export interface LayerPeer {
  /** Sends a `hash request`. */
  requestHashes(request: HashRequest): void;
  /** The connection speaks v2 (hash messages may be exchanged). */
  readonly speaksV2: boolean;
  /** True once the connection ended. */
  readonly closed: boolean;
  /** The peer's pieces. */
  readonly bitfield: Bitfield;
  /** Ends the connection. */
  close(reason: string): void;
}

/** Options for {@linkcode PieceLayerFetcher}. */
export interface PieceLayerFetcherOptions {
  /** The torrent: its `pieceLayers` gain each layer as it is proved. */
  meta: Metainfo;
  /** The clock (ms). @default {Date.now} */
  now?: () => number;
  /** A file's layer was proved and added to `meta.pieceLayers`. */
  onLayer?: (file: number) => void;
  /** Every layer is known now. */
  onComplete?: () => void;
  /**
   * The torrent's ready connections: asked again as soon as an answer comes in (otherwise only when
   * {@linkcode PieceLayerFetcher.ask} is called).
   */
  peers?: () => Iterable<LayerPeer>;
}

interface Chunk {
  readonly file: number;
  readonly request: HashRequest;
  /** How many of the requested hashes are real pieces (the rest are pad hashes). */
  readonly pieces: number;
  /** The torrent's pieces the chunk covers: [first, end). */
  readonly first: number;
  readonly end: number;
  got: Uint8Array | undefined;
  asked: { peer: LayerPeer; at: number } | undefined;
  readonly refused: Map<LayerPeer, number>;
}

/**
 * Fetches a torrent's missing piece layers from its peers.
 *
 * @example Nothing to fetch for a torrent with every layer
 * ```ts
 * import { PieceLayerFetcher } from "./piece_layers.ts";
 * import { createTorrent } from "../create.ts";
 * import { parseMetainfo } from "../metainfo.ts";
 * import assert from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.writeFile(`${dir}/a.bin`, new Uint8Array(100_000));
 * const meta = await parseMetainfo(await createTorrent(`${dir}/a.bin`, { version: 2, pieceLength: 32768 }));
 * await Deno.remove(dir, { recursive: true });
 * const fetcher = new PieceLayerFetcher({ meta });
 * assert.equal(fetcher.complete, true);
 * assert.equal(fetcher.held, undefined);
 * ```
 */
export class PieceLayerFetcher {
  readonly #meta: Metainfo;
  readonly #opts: PieceLayerFetcherOptions;
  readonly #now: () => number;
  /** file → its chunks, while its layer is missing */
  readonly #files = new Map<number, Chunk[]>();
  readonly #inflight = new Map<LayerPeer, number>();
  #held: Bitfield | undefined;
  #completed = false;
  /** Files whose layer is being checked as a whole and added. */
  readonly #finishing = new Set<number>();

  /**
   * Creates a {@linkcode PieceLayerFetcher} for the layers `meta` lacks now.
   *
   * @param options The torrent and what to tell when layers arrive.
   */
  constructor(options: PieceLayerFetcherOptions) {
    this.#meta = options.meta;
    this.#opts = options;
    this.#now = options.now ?? Date.now;
    const meta = options.meta;
    const pl = meta.pieceLength;
    const base = log2(pl / BLOCK_SIZE);
    for (const file of missingPieceLayers(meta)) {
      const f = meta.files[file];
      const pieces = Math.ceil(f.length / pl);
      const firstPiece = Math.floor(f.offset / pl);
      const proofLayers = treeHeight(f.length) - base - 1;
      const chunks: Chunk[] = [];
      for (let index = 0; index < pieces; index += LAYER_CHUNK) {
        const real = Math.min(LAYER_CHUNK, pieces - index);
        chunks.push({
          file,
          request: {
            piecesRoot: f.piecesRoot!,
            baseLayer: base,
            index,
            length: Math.max(2, Math.min(LAYER_CHUNK, nextPowerOfTwo(real))),
            proofLayers,
          },
          pieces: real,
          first: firstPiece + index,
          end: firstPiece + index + real,
          got: undefined,
          asked: undefined,
          refused: new Map(),
        });
      }
      this.#files.set(file, chunks);
    }
    this.#updateHeld();
  }

  /** True when every piece layer is known. */
  get complete(): boolean {
    return this.#files.size === 0;
  }

  /** Files whose layer is still missing. */
  get missing(): number[] {
    return [...this.#files.keys()];
  }

  /**
   * Pieces that must not be downloaded yet: those of a v2-only torrent's files whose layer is missing (nothing
   * could check them). Undefined when there are none (always for v1 and hybrid torrents).
   */
  get held(): Bitfield | undefined {
    return this.#held;
  }

  #updateHeld(): void {
    const meta = this.#meta;
    if (meta.version !== 2 || this.#files.size === 0) {
      this.#held = undefined;
      return;
    }
    const held = new Bitfield(meta.pieceCount);
    for (const chunks of this.#files.values()) {
      for (const c of chunks) for (let i = c.first; i < c.end; i++) held.set(i);
    }
    this.#held = held;
  }

  /**
   * Sends requests for the chunks nobody is asked for to peers that can answer them: seeds first, then peers
   * that have a piece of the chunk. Call it when peers connect or announce pieces, and now and then.
   *
   * @param peers The torrent's ready connections (the `peers` option's by default).
   */
  ask(peers: Iterable<LayerPeer> = this.#opts.peers?.() ?? []): void {
    if (this.#files.size === 0) return;
    const now = this.#now();
    const v2: LayerPeer[] = [];
    for (const p of peers) if (p.speaksV2 && !p.closed) v2.push(p);
    for (const chunks of this.#files.values()) {
      for (const c of chunks) {
        if (c.got) continue;
        if (c.asked) {
          if (!c.asked.peer.closed && now - c.asked.at < REQUEST_TIMEOUT_MS) continue;
          // no answer in time: someone else gets it, this peer not soon again
          c.refused.set(c.asked.peer, now + REFUSED_MS);
          this.#done(c.asked.peer);
          c.asked = undefined;
        }
        if (v2.length === 0) continue;
        let best: LayerPeer | undefined;
        let bestScore = 0;
        for (const p of v2) {
          if ((this.#inflight.get(p) ?? 0) >= PER_PEER) continue;
          const until = c.refused.get(p);
          if (until !== undefined && until > now) continue;
          const score = p.bitfield.full ? 2 : hasAny(p.bitfield, c.first, c.end) ? 1 : 0;
          if (score > bestScore) {
            best = p;
            bestScore = score;
          }
        }
        if (!best) continue;
        c.asked = { peer: best, at: now };
        this.#inflight.set(best, (this.#inflight.get(best) ?? 0) + 1);
        best.requestHashes(c.request);
      }
    }
  }

  #chunkAskedOf(peer: LayerPeer, request: HashRequest): Chunk | undefined {
    for (const chunks of this.#files.values()) {
      for (const c of chunks) {
        if (c.asked?.peer === peer && sameHashRequest(c.request, request)) return c;
      }
    }
    return undefined;
  }

  #done(peer: LayerPeer): void {
    const n = (this.#inflight.get(peer) ?? 1) - 1;
    if (n > 0) this.#inflight.set(peer, n);
    else this.#inflight.delete(peer);
  }

  /**
   * A `hashes` message arrived: the hashes of a chunk we asked this peer for are proved against the file's root;
   * once a file's chunks are all in, its layer is added to the torrent. A peer whose hashes do not prove out is
   * disconnected; answers to requests we did not make (or gave to another peer meanwhile) are ignored.
   *
   * @param peer The connection.
   * @param request The message's header.
   * @param hashes The message's hashes (copied before anything is awaited).
   */
  async hashes(peer: LayerPeer, request: HashRequest, hashes: Uint8Array): Promise<void> {
    const c = this.#chunkAskedOf(peer, request);
    if (!c) return;
    const mine = hashes.slice();
    c.asked = undefined;
    this.#done(peer);
    const f = this.#meta.files[c.file];
    const height = treeHeight(f.length);
    const root = f.piecesRoot!;
    const ok = await verifyHashes(
      c.request,
      mine,
      (layer, index) => layer === height && index === 0 ? root : undefined,
    );
    if (!ok) {
      c.refused.set(peer, Number.POSITIVE_INFINITY);
      peer.close("protocol violation: hashes that do not prove out to the file's pieces root");
      return;
    }
    if (!this.#files.has(c.file) || c.got) return; // the layer was completed meanwhile
    c.got = mine.subarray(0, c.pieces * HASH_SIZE);
    this.ask();
    await this.#maybeFinish(c.file);
  }

  async #maybeFinish(file: number): Promise<void> {
    const chunks = this.#files.get(file);
    if (!chunks || chunks.some((c) => !c.got) || this.#finishing.has(file)) return;
    const pieces = chunks.reduce((n, c) => n + c.pieces, 0);
    const layer = new Uint8Array(pieces * HASH_SIZE);
    let at = 0;
    for (const c of chunks) {
      layer.set(c.got!, at);
      at += c.got!.length;
    }
    this.#finishing.add(file);
    const added = await addPieceLayer(this.#meta, file, layer);
    this.#finishing.delete(file);
    if (!added) {
      // cannot happen when every chunk proved out to the root; start the file over rather than trust it
      for (const c of chunks) c.got = undefined;
      return;
    }
    this.#files.delete(file);
    this.#updateHeld();
    this.#opts.onLayer?.(file);
    if (this.#files.size === 0 && !this.#completed) {
      this.#completed = true;
      this.#opts.onComplete?.();
    }
  }

  /**
   * A `hash reject` arrived: the chunk goes to another peer; this one is not asked for it again for a while.
   *
   * @param peer The connection.
   * @param request The rejected request.
   */
  rejected(peer: LayerPeer, request: HashRequest): void {
    const c = this.#chunkAskedOf(peer, request);
    if (!c) return;
    c.asked = undefined;
    c.refused.set(peer, this.#now() + REFUSED_MS);
    this.#done(peer);
    this.ask();
  }

  /**
   * A connection ended: its requests go to other peers at the next {@linkcode PieceLayerFetcher.ask}.
   *
   * @param peer The connection.
   */
  closed(peer: LayerPeer): void {
    this.#inflight.delete(peer);
    for (const chunks of this.#files.values()) {
      for (const c of chunks) {
        if (c.asked?.peer === peer) c.asked = undefined;
        c.refused.delete(peer);
      }
    }
  }
}

function hasAny(bits: Bitfield, first: number, end: number): boolean {
  for (let i = first; i < end; i++) if (bits.has(i)) return true;
  return false;
}
