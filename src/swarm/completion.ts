/**
 * Pieces becoming one torrent's own, and the torrent completing. A piece that is verified (downloaded and
 * written, or found by a hash check) is had: the picker lets go of it, every peer hears `have`, readers waiting
 * for it go on. When the last wanted piece arrives the trackers hear `completed` (once), BEP 47 attributes are
 * applied, `complete` is dispatched, and seeds we are connected to are dropped (unless we still need their piece
 * layers).
 *
 * @module
 */

import { asError } from "../_errors.ts";
import type { Bitfield } from "../bitfield.ts";
import type { Metainfo } from "../metainfo.ts";
import type { CheckCallbacks, TorrentData } from "../storage/torrent_data.ts";
import type { Announcer } from "./announcer.ts";
import type { PieceDeadlines } from "./deadlines.ts";
import type { Downloads } from "./downloads.ts";
import type { HashExchange } from "./hash_exchange.ts";
import type { PeerSet } from "./peer_set.ts";
import type { PartialPiece, PiecePicker } from "./piece_picker.ts";
import type { TorrentEmit, TorrentState } from "./types.ts";
import { needsHashes } from "./v2_hashes.ts";
import type { WebSeeds } from "./webseeds.ts";

/** The parts of a torrent that {@linkcode Completion} tells about new pieces. */
export interface CompletionOptions {
  /** The torrent. */
  meta: Metainfo;
  /** The pieces verified on disk. */
  have: Bitfield;
  /** The torrent's data (journal, attributes, hash check). */
  data: TorrentData;
  /** The picker. */
  picker: PiecePicker;
  /** The torrent's peers. */
  peers: PeerSet;
  /** The download side. */
  downloads: Downloads;
  /** The readers' deadlines. */
  deadlines: PieceDeadlines;
  /** The web seeds. */
  webSeeds: WebSeeds;
  /** The trackers. */
  announcer: Announcer;
  /** The BEP 52 hash exchange (v2 and hybrid torrents). */
  hashes: HashExchange | undefined;
  /** Receives engine events. */
  emit: TorrentEmit;
  /** The torrent's state. */
  state: () => TorrentState;
  /** A downloaded piece is about to be had (the piece budget may follow the rate now). */
  beforeHad: () => void;
  /** Web seeds fetch while the torrent is active and wants pieces: (re)decide. */
  runWebSeeds: () => void;
}

/** What follows when one torrent gets a piece, and when it completes. */
export class Completion {
  readonly #o: CompletionOptions;
  #completeSent = false;

  /**
   * Creates a {@linkcode Completion}.
   *
   * @param options The parts it tells.
   */
  constructor(options: CompletionOptions) {
    this.#o = options;
  }

  /**
   * What a hash check does with its verdicts.
   *
   * @param emitEvents Dispatch hashpass / hashfail for each piece.
   * @returns The callbacks.
   */
  checkCallbacks(emitEvents: boolean): CheckCallbacks {
    const o = this.#o;
    return {
      onPass: (i) => {
        if (o.have.set(i)) this.#afterNewPiece(i);
        o.deadlines.had(i);
        if (emitEvents) o.emit("hashpass", { index: i });
      },
      onFail: (i) => emitEvents && o.emit("hashfail", { index: i }),
    };
  }

  /**
   * A downloaded piece is written and in the journal: it is had.
   *
   * @param piece The piece.
   */
  had(piece: PartialPiece): void {
    const o = this.#o;
    o.beforeHad();
    o.picker.pieceVerified(piece);
    o.picker.release(piece.buffer);
    if (o.have.set(piece.index)) this.#afterNewPiece(piece.index);
    o.deadlines.had(piece.index);
    o.emit("hashpass", { index: piece.index });
    o.emit("piece", { index: piece.index });
    // requests may have paused while verification and writes were behind
    if (o.state() === "active") { for (const e of o.peers.ready()) o.downloads.fill(e); }
    o.webSeeds.tick(); // memory is free for a new run
  }

  /**
   * The torrent started.
   *
   * @param announcedComplete The trackers were told `started` as a complete torrent: no `completed` follows.
   */
  started(announcedComplete: boolean): void {
    const o = this.#o;
    if (announcedComplete && o.picker.complete && o.have.count > 0) this.#completeSent = true;
    if (o.picker.complete && o.have.count > 0) void this.#applyAttributes();
  }

  /** More is wanted now: completing again dispatches `complete` again (trackers still hear `completed` once). */
  wantedMore(): void {
    if (!this.#o.picker.complete) this.#completeSent = false;
  }

  /** Every ready peer that is a seed is dropped, unless we still need its piece layers (we are a seed). */
  closeSeeds(): void {
    for (const e of this.#o.peers.ready()) {
      if (e.conn.bitfield.full && !needsHashes(this.#o.hashes, e.conn)) {
        e.conn.close("both sides are seeds");
      }
    }
  }

  #afterNewPiece(index: number): void {
    const o = this.#o;
    o.data.changed();
    for (const e of o.peers.ready()) if (!e.conn.closed) e.conn.have(index);
    if (!o.picker.complete) return;
    o.runWebSeeds(); // nothing more to fetch
    o.picker.trimPool(); // the spare download buffers are not needed any more
    for (const e of o.peers.entries.values()) o.downloads.updateInterest(e);
    if (!this.#completeSent && o.state() !== "stopped" && !o.data.checking) {
      this.#completeSent = true;
      o.announcer.completed();
      void this.#applyAttributes();
      o.emit("complete", {});
    }
    if (o.have.full) this.closeSeeds();
  }

  /** BEP 47 attributes (executable bit, symbolic links) once the download is complete. */
  async #applyAttributes(): Promise<void> {
    const o = this.#o;
    if (!o.meta.files.some((f) => f.executable || f.symlink)) return;
    const warnings = await o.data.storage?.applyAttributes().catch((err) => [
      `cannot apply file attributes: ${asError(err).message}`,
    ]) ?? [];
    for (const message of warnings) o.emit("warning", { message });
  }
}
