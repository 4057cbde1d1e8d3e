/**
 * Drives a torrent's web seeds (BEP 19 / BEP 17, see `webseed.ts`): which seed gets which run of pieces, what
 * goes back to the picker when a run falls short, and how the seeds look in the peer list.
 *
 * Web seeds ask the picker for whole pieces, not 16 KiB blocks: {@linkcode PiecePicker.pickRun} reserves runs of
 * contiguous fresh pieces (from the start of the longest gap, as BEP 19 advises), which peers are then not given,
 * and {@linkcode PiecePicker.receivePiece} turns each arriving piece into a complete piece to verify like any
 * other. A run that fails part way gives its remaining pieces back ({@linkcode PiecePicker.unreserve}).
 *
 * @module
 */

import type { PieceRun } from "./piece_picker.ts";
import type { WebSeed, WebSeedKind, WebSeedState } from "./webseed.ts";

/** What {@linkcode WebSeedScheduler} needs of the piece picker (a few lines over {@linkcode PiecePicker}). */
export interface WebSeedPicker {
  /**
   * Hands out (and reserves) up to `maxPieces` contiguous pieces for `seed`, or undefined when there is
   * nothing to hand out now; e.g. `picker.pickRun(maxPieces, { atLeast: Math.ceil(maxPieces / 2) })` (waiting
   * for half a run of memory keeps requests long while verification or the disk is behind).
   */
  nextRun(maxPieces: number, seed: WebSeed): PieceRun | undefined;
  /** A piece handed out did not arrive: it may be picked again; e.g. `picker.unreserve(index)`. */
  giveBack(index: number): void;
}

/** Options for {@linkcode WebSeedScheduler}. */
export interface WebSeedSchedulerOptions {
  /** Where runs come from and go back to. */
  picker: WebSeedPicker;
  /**
   * Receives each piece as it arrives (`data` only valid during the call): the engine copies it into a piece
   * buffer (`picker.receivePiece`), verifies it like any peer's, and calls {@linkcode WebSeedScheduler.blame}
   * when it fails.
   */
  onPiece: (index: number, data: Uint8Array, seed: WebSeed) => void;
  /** Receives each problem, as one line ({@linkcode WebSeedError}); also an error `onPiece` threw. */
  onError?: (error: Error, seed: WebSeed) => void;
  /**
   * Bytes asked for per run (rounded to whole pieces, at least one): BEP 19 suggests few, long requests.
   * @default {4194304}
   */
  runBytes?: number;
  /**
   * Runs in flight per seed (each is one HTTP request at a time).
   * @default {1}
   */
  runsPerSeed?: number;
}

/** A web seed as {@linkcode WebSeedScheduler.peers} shows it, shaped like the engine's `PeerInfo`. */
export interface WebSeedPeerInfo {
  /** The seed's URL. */
  address: string;
  /** Web seeds have no peer id. */
  peerId: undefined;
  /** We always connect to them. */
  incoming: false;
  /** Where the address came from. */
  source: "webseed";
  /** What serves it: "web seed (BEP 19)" or "HTTP seed (BEP 17)". */
  client: string;
  /** HTTP carries no BitTorrent encryption. */
  encrypted: false;
  /** No fast extension over HTTP. */
  fast: false;
  /** Plain HTTP requests. */
  transport: "http";
  /** BEP 19 or BEP 17. */
  kind: WebSeedKind;
  /** What it is doing. */
  state: WebSeedState;
  /** Why it waits, when it does. */
  reason: string | undefined;
  /** A web seed has every piece. */
  have: number;
  /** Payload bytes per second from it. */
  downloadRate: number;
  /** Nothing is uploaded to a web seed. */
  uploadRate: 0;
  /** Payload bytes received from it. */
  downloaded: number;
  /** Nothing is uploaded to a web seed. */
  uploaded: 0;
  /** There is nothing to unchoke. */
  amChoking: true;
  /** We want data from it. */
  amInterested: true;
  /** True while it waits (busy server, or backoff after a failure). */
  peerChoking: boolean;
  /** It wants nothing from us. */
  peerInterested: false;
  /** Pieces asked for and not yet received. */
  outstanding: number;
}

interface ActiveRun {
  seed: WebSeed;
  /** Next piece expected. */
  next: number;
  end: number;
  done: Promise<void>;
}

/**
 * Drives web seeds: keeps `runsPerSeed` runs in flight per seed that is ready, asks the picker for runs and
 * gives back what did not arrive, chains the next run as soon as one ends, and reports each problem once.
 *
 * Call {@linkcode WebSeedScheduler.tick} from the engine's tick (it restarts seeds whose wait is over) and after
 * a piece was verified and written (memory is free again for a new run).
 *
 * @example Download a two-piece torrent from a web seed alone
 * ```ts
 * import { Bitfield } from "../bitfield.ts";
 * import { PiecePicker } from "./piece_picker.ts";
 * import { WebSeed } from "./webseed.ts";
 * import { WebSeedScheduler } from "./webseed_scheduler.ts";
 * import assert from "node:assert/strict";
 *
 * const data = new Uint8Array(20000).map((_, i) => i % 253);
 * const server = ((_url: string, init?: RequestInit) => {
 *   const [, a, b] = /bytes=(\d+)-(\d+)/.exec(new Headers(init?.headers).get("range")!)!.map(Number);
 *   return Promise.resolve(new Response(data.slice(a, b + 1), {
 *     status: 206,
 *     headers: { "content-range": `bytes ${a}-${b}/${data.length}` },
 *   }));
 * }) as typeof fetch;
 * const torrent = {
 *   infoHash: new Uint8Array(20), pieceLength: 16384, length: data.length, pieces: new Uint8Array(40),
 *   multiFile: false, files: [{ path: ["f"], length: data.length, offset: 0 }],
 * };
 * const have = new Bitfield(2);
 * const picker = new PiecePicker({ pieceCount: 2, pieceLength: 16384, totalLength: data.length, have });
 * const out = new Uint8Array(data.length);
 * const { promise: complete, resolve } = Promise.withResolvers<void>();
 * await using scheduler = new WebSeedScheduler({
 *   picker: { nextRun: (max) => picker.pickRun(max), giveBack: (i) => picker.unreserve(i) },
 *   onPiece(index, bytes) {
 *     const piece = picker.receivePiece(index, bytes, 1)!; // then verify its SHA-1, write it…
 *     out.set(piece.buffer, index * 16384);
 *     picker.pieceVerified(piece);
 *     have.set(index);
 *     if (have.count === 2) resolve();
 *   },
 * });
 * scheduler.add(new WebSeed({ url: "http://mirror.example/f", torrent, fetch: server }));
 * scheduler.tick();
 * await complete;
 * assert.deepEqual(out, data);
 * ```
 */
export class WebSeedScheduler implements AsyncDisposable {
  readonly #picker: WebSeedPicker;
  readonly #onPiece: (index: number, data: Uint8Array, seed: WebSeed) => void;
  readonly #onError: ((error: Error, seed: WebSeed) => void) | undefined;
  readonly #runBytes: number;
  readonly #runsPerSeed: number;
  readonly #seeds: WebSeed[] = [];
  readonly #active = new Set<ActiveRun>();
  /** Errors already reported (a drop reported by blame() ends the seed's runs with the same error). */
  readonly #reported = new WeakSet<Error>();
  /** Aborts the runs in flight (replaced after a pause). */
  #stop = new AbortController();
  #paused = false;
  #closed = false;
  #ticking = false;

  /**
   * Creates a {@linkcode WebSeedScheduler}.
   *
   * @param options The picker, where pieces and problems go, and how much to ask for at once.
   */
  constructor(options: WebSeedSchedulerOptions) {
    this.#picker = options.picker;
    this.#onPiece = options.onPiece;
    this.#onError = options.onError;
    this.#runBytes = options.runBytes ?? 4 * 1024 * 1024;
    this.#runsPerSeed = Math.max(1, options.runsPerSeed ?? 1);
  }

  /** The seeds, dropped ones included. */
  get seeds(): readonly WebSeed[] {
    return this.#seeds;
  }

  /** Sum of the seeds' download rates, bytes/s. */
  get downloadRate(): number {
    let n = 0;
    for (const s of this.#seeds) n += s.rate;
    return n;
  }

  /** Runs in flight. */
  get activeRuns(): number {
    return this.#active.size;
  }

  /**
   * Adds a seed; it gets work at the next {@linkcode WebSeedScheduler.tick}.
   *
   * @param seed The seed.
   */
  add(seed: WebSeed): void {
    if (!this.#seeds.includes(seed)) this.#seeds.push(seed);
  }

  /**
   * Starts runs on every seed that is ready and has room, while the picker has pieces to hand out.
   */
  tick(): void {
    if (this.#closed || this.#paused || this.#ticking) return;
    this.#ticking = true;
    try {
      for (const seed of this.#seeds) {
        while (seed.ready && this.#runsOf(seed) < this.#runsPerSeed) {
          const pieceLength = seed.torrent.pieceLength;
          const max = Math.max(1, Math.floor(this.#runBytes / pieceLength));
          const run = this.#picker.nextRun(max, seed);
          if (!run) return;
          this.#start(seed, run);
        }
      }
    } finally {
      this.#ticking = false;
    }
  }

  /**
   * A piece from `seed` failed its hash check: the seed is dropped (its pieces come from it alone) and the
   * problem reported.
   *
   * @param seed The seed that sent it.
   * @param index The piece.
   */
  blame(seed: WebSeed, index: number): void {
    if (seed.state === "dropped") return;
    this.#report(seed.pieceFailed(index), seed);
  }

  /** The seeds that are not dropped, shaped like the engine's peer list. */
  peers(): WebSeedPeerInfo[] {
    const out: WebSeedPeerInfo[] = [];
    for (const seed of this.#seeds) {
      const state = seed.state;
      if (state === "dropped") continue;
      let outstanding = 0;
      for (const r of this.#active) if (r.seed === seed) outstanding += r.end - r.next;
      out.push({
        address: seed.url,
        peerId: undefined,
        incoming: false,
        source: "webseed",
        client: seed.kind === "httpseeds" ? "HTTP seed (BEP 17)" : "web seed (BEP 19)",
        encrypted: false,
        fast: false,
        transport: "http",
        kind: seed.kind,
        state,
        reason: state === "waiting" ? seed.reason : undefined,
        have: Math.ceil(seed.torrent.length / seed.torrent.pieceLength),
        downloadRate: seed.rate,
        uploadRate: 0,
        downloaded: seed.downloaded,
        uploaded: 0,
        amChoking: true,
        amInterested: true,
        peerChoking: state === "waiting",
        peerInterested: false,
        outstanding,
      });
    }
    return out;
  }

  /** True between {@linkcode WebSeedScheduler.pause} and {@linkcode WebSeedScheduler.resume}. */
  get paused(): boolean {
    return this.#paused;
  }

  /**
   * Stops the runs in flight (their pieces go back to the picker; nobody is blamed) and starts none until
   * {@linkcode WebSeedScheduler.resume}: for a paused torrent, or one that completed.
   */
  async pause(): Promise<void> {
    this.#paused = true;
    // a fresh signal at once: a resume() before the stopped runs have ended starts runs that are not stopped
    const stop = this.#stop;
    this.#stop = new AbortController();
    stop.abort();
    await Promise.all([...this.#active].map((r) => r.done));
  }

  /** Starts runs again after {@linkcode WebSeedScheduler.pause}. */
  resume(): void {
    if (this.#closed) return;
    this.#paused = false;
    this.tick();
  }

  /** Stops every run (their pieces go back to the picker) and starts no more. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#stop.abort();
    await Promise.all([...this.#active].map((r) => r.done));
  }

  /** Same as {@linkcode WebSeedScheduler.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #runsOf(seed: WebSeed): number {
    let n = 0;
    for (const r of this.#active) if (r.seed === seed) n++;
    return n;
  }

  #start(seed: WebSeed, run: PieceRun): void {
    const active: ActiveRun = {
      seed,
      next: run.first,
      end: run.first + run.count,
      done: Promise.resolve(),
    };
    this.#active.add(active);
    const signal = this.#stop.signal;
    active.done = seed.fetchPieces(run.first, run.count, {
      signal,
      onPiece: (index, data) => {
        active.next = index + 1;
        this.#onPiece(index, data, seed);
      },
    }).then(
      (result) => result.error,
      (err: unknown) => err instanceof Error ? err : new Error(String(err)),
    ).then((error) => {
      this.#active.delete(active);
      for (let i = active.next; i < active.end; i++) this.#picker.giveBack(i);
      if (error && !signal.aborted) this.#report(error, seed);
      this.tick();
    });
  }

  #report(error: Error, seed: WebSeed): void {
    if (this.#reported.has(error)) return;
    this.#reported.add(error);
    this.#onError?.(error, seed);
  }
}
