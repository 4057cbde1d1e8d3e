/**
 * A torrent's web seeds as its engine sees them (BEP 19 `url-list`, BEP 17 `httpseeds`, see `webseed.ts`): which
 * seeds to use (the torrent's and the user's), where their pieces go (the same verify → write path as the peers'
 * pieces), who is blamed when one fails its hash check (the seed is dropped, no IP is banned), how they count in
 * the picker's availability (a web seed has every piece), and when they run (the torrent is active and not
 * complete).
 *
 * Web seeds are numbered below zero (-1, -2, …) in the picker's senders, apart from the peers' connection
 * numbers (1, 2, …): a failed piece whose sender is negative belongs to a web seed.
 *
 * @module
 */

import { Bitfield } from "../bitfield.ts";
import type { PartialPiece, PiecePicker, PieceRun } from "./piece_picker.ts";
import type { PeerInfo, TorrentEmit } from "./types.ts";
import {
  WebSeed,
  WebSeedError,
  type WebSeedLimits,
  webSeedsOf,
  type WebSeedTorrent,
} from "./webseed.ts";
import { WebSeedScheduler } from "./webseed_scheduler.ts";

/** Options for {@linkcode WebSeeds}. */
export interface WebSeedsOptions {
  /** The torrent: its `url-list` and `httpseeds`, and what a seed needs to know of it. */
  meta: WebSeedTorrent & { urlList?: readonly string[]; httpSeeds?: readonly string[] };
  /** The torrent's picker: runs of whole pieces come from it, arriving pieces go back into it. */
  picker: PiecePicker;
  /**
   * Use the torrent's own web seeds; `false` leaves them out (`extra` ones are still used).
   * @default {true}
   */
  enabled?: boolean;
  /** More BEP 19 URLs, from the user. */
  extra?: readonly string[];
  /** A complete piece from a web seed: verify and write it (the writer's `add`). */
  onPiece: (piece: PartialPiece) => void;
  /** Payload bytes arrived (counted in the torrent's `downloaded`). */
  onBytes: (n: number) => void;
  /** The torrent's events: `peer` when a seed first delivers, `error` for each problem, `peerclose` on a drop. */
  emit: TorrentEmit;
  /** The `fetch` to use. @default {globalThis.fetch} */
  fetch?: typeof fetch;
  /** Bounds on the seeds' requests, retries and waits. */
  limits?: WebSeedLimits;
}

/** The web seeds of one torrent, wired to its engine. */
export class WebSeeds implements AsyncDisposable {
  readonly #scheduler: WebSeedScheduler;
  readonly #picker: PiecePicker;
  readonly #emit: TorrentEmit;
  readonly #onPiece: (piece: PartialPiece) => void;
  readonly #onBytes: (n: number) => void;
  /** Each seed's number in the picker's senders (negative). */
  readonly #ids = new Map<WebSeed, number>();
  readonly #byId = new Map<number, WebSeed>();
  /** Seeds that delivered a piece (a `peer` event was sent). */
  readonly #seen = new Set<WebSeed>();
  /** Seeds whose pieces count in the picker's availability (every piece, until dropped). */
  readonly #counted = new Set<WebSeed>();
  readonly #all: Bitfield;
  #running = false;
  /** Settles once the runs stopped by the last pause have ended. */
  #stopping: Promise<void> = Promise.resolve();
  #closed = false;

  /**
   * Creates the torrent's web seeds; nothing is fetched before {@linkcode WebSeeds.run}.
   *
   * @param options The torrent, its picker, which seeds, and where pieces and problems go.
   */
  constructor(options: WebSeedsOptions) {
    const meta = options.meta;
    this.#picker = options.picker;
    this.#emit = options.emit;
    this.#onPiece = options.onPiece;
    this.#onBytes = options.onBytes;
    this.#scheduler = new WebSeedScheduler({
      picker: {
        nextRun: (max) => this.#nextRun(max),
        giveBack: (i) => this.#picker.unreserve(i),
      },
      onPiece: (index, data, seed) => this.#piece(index, data, seed),
      onError: (error, seed) => this.#problem(error, seed),
    });
    const pieceCount = Math.ceil(meta.length / meta.pieceLength);
    this.#all = new Bitfield(pieceCount);
    this.#all.setAll();
    const list = webSeedsOf(meta, {
      ...(options.enabled === false ? { enabled: false } : {}),
      ...(options.extra ? { extra: options.extra } : {}),
    });
    for (const { url, kind } of list) {
      const seed = new WebSeed({
        url,
        kind,
        torrent: meta,
        ...(options.fetch ? { fetch: options.fetch } : {}),
        ...(options.limits ? { limits: options.limits } : {}),
      });
      const id = -(this.#ids.size + 1);
      this.#ids.set(seed, id);
      this.#byId.set(id, seed);
      this.#scheduler.add(seed);
      // a web seed is a peer with every piece in the rarest-first view
      this.#picker.addAvailability(this.#all);
      this.#counted.add(seed);
    }
  }

  /** How many web seeds the torrent has (dropped ones included). */
  get size(): number {
    return this.#ids.size;
  }

  /** True while runs may be started: running, and a seed is left that is not dropped. */
  get busy(): boolean {
    return this.#running && this.#counted.size > 0;
  }

  /** Sum of the seeds' download rates, bytes/s. */
  get downloadRate(): number {
    return this.#ids.size === 0 ? 0 : this.#scheduler.downloadRate;
  }

  /** The seeds that are not dropped, as peers: `source: "webseed"`, the URL as the address. */
  peers(): PeerInfo[] {
    return this.#ids.size === 0 ? [] : this.#scheduler.peers();
  }

  /**
   * Starts or stops fetching: on while the torrent is active and wants pieces, off when it is paused, stopped or
   * complete (runs in flight are stopped and their pieces given back to the picker).
   *
   * @param on Whether the seeds may fetch.
   * @returns Resolves once the runs in flight have ended (when turned off).
   */
  run(on: boolean): Promise<void> {
    if (this.#closed || this.#ids.size === 0) return Promise.resolve();
    if (on === this.#running) return on ? Promise.resolve() : this.#stopping;
    this.#running = on;
    if (on) {
      this.#scheduler.resume();
      return Promise.resolve();
    }
    return this.#stopping = this.#scheduler.pause();
  }

  /** Time-driven work, and after a piece was written (memory is free for a new run): restarts idle seeds. */
  tick(): void {
    if (this.#running) this.#scheduler.tick();
  }

  /**
   * A piece failed its hash check: when a web seed sent it, that seed is dropped (one line, and `peerclose`).
   *
   * @param piece The failed piece.
   * @returns True when a web seed was to blame (the peers' smart ban has nothing to do).
   */
  failed(piece: PartialPiece): boolean {
    if (piece.senders.size !== 1) return false;
    const [id] = piece.senders;
    const seed = this.#byId.get(id);
    if (!seed) return false;
    this.#scheduler.blame(seed, piece.index);
    return true;
  }

  /** Stops every run for good. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#running = false;
    await this.#scheduler.close();
  }

  /** Same as {@linkcode WebSeeds.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * The next run for a seed: first among the pieces no peer has (the swarm cannot give them; peers get on with
   * the rest), then anywhere; from the start of the longest gap either way (BEP 19). A run waits until at least
   * half of it fits in memory: few long requests, as BEP 19 asks.
   */
  #nextRun(max: number): PieceRun | undefined {
    const picker = this.#picker;
    const atLeast = Math.ceil(max / 2);
    const seeds = this.#counted.size; // each web seed counts once in every piece's availability
    return picker.pickRun(max, { atLeast, filter: (i) => picker.availability(i) <= seeds }) ??
      picker.pickRun(max, { atLeast });
  }

  #piece(index: number, data: Uint8Array, seed: WebSeed): void {
    this.#onBytes(data.length);
    if (!this.#seen.has(seed)) {
      this.#seen.add(seed);
      this.#emit("peer", { address: seed.url, peerId: undefined, incoming: false });
    }
    const piece = this.#picker.receivePiece(index, data, this.#ids.get(seed)!);
    if (piece) this.#onPiece(piece);
  }

  #problem(error: Error, seed: WebSeed): void {
    this.#emit("error", { error });
    const dropped = seed.state === "dropped" ||
      (error instanceof WebSeedError && error.outcome === "dropped");
    if (!dropped || !this.#counted.delete(seed)) return;
    this.#picker.removeAvailability(this.#all);
    this.#emit("peerclose", { address: seed.url, reason: error.message });
  }
}
