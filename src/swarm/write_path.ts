/**
 * One torrent's verify → write path wired: a {@linkcode PieceWriter} whose hooks send a failed piece's blame to
 * the web seed that sent it or to the smart ban, give lost pieces back to the picker, and pause the torrent
 * while the disk refuses writes (resuming it once every refused piece is written).
 *
 * @module
 */

import type { PieceVerifier } from "../storage/hasher.ts";
import type { TorrentData } from "../storage/torrent_data.ts";
import type { PartialPiece, PiecePicker } from "./piece_picker.ts";
import { diskError, PieceWriter } from "./piece_writer.ts";
import type { SmartBan } from "./smart_ban.ts";
import type { TorrentEmit, TorrentOptions, TorrentState } from "./types.ts";
import type { WebSeeds } from "./webseeds.ts";

/** What the disk did to a torrent: shared by the torrent and its writer's hooks. */
export interface DiskState {
  /** The torrent paused because of the disk (not the user): it resumes once everything is written. */
  paused: boolean;
  /** The last storage error, until a write succeeds again. */
  error: Error | undefined;
}

/** Options of {@linkcode pieceWriter}. */
export interface WritePathOptions {
  /** The torrent's data (no storage: nothing is verified, a write fails). */
  data: TorrentData;
  /** Checks pieces against their hashes. */
  verifier: PieceVerifier;
  /** The picker (piece sizes; failed and lost pieces go back to it). */
  picker: PiecePicker;
  /** Who sent bad data. */
  smartBan: SmartBan;
  /** The web seeds (a failed piece of theirs drops the seed). */
  webSeeds: WebSeeds;
  /** The disk's effect on the torrent. */
  disk: DiskState;
  /** Receives engine events. */
  emit: TorrentEmit;
  /** The torrent's state. */
  state: () => TorrentState;
  /** Pauses the torrent (without touching {@linkcode DiskState.paused}). */
  pause: () => void;
  /** Starts the torrent again. */
  start: () => void;
  /** A piece is on disk. */
  onWritten: (piece: PartialPiece) => void;
  /** The torrent's options (`trace`, `diskRetryMs`). */
  settings: Pick<TorrentOptions, "trace" | "diskRetryMs">;
  /** The clock (ms). */
  now: () => number;
}

/**
 * Makes the writer of one torrent.
 *
 * @param o The parts its hooks reach.
 * @returns The writer.
 */
export function pieceWriter(o: WritePathOptions): PieceWriter {
  const { picker, disk } = o;
  const writer: PieceWriter = new PieceWriter({
    verify: (piece) =>
      o.data.storage
        ? o.verifier.verify(piece, picker.pieceSize(piece.index))
        : Promise.resolve(undefined),
    write: (piece) =>
      o.data.storage?.writePieceMoving(piece.index, piece) ??
        Promise.reject(new Error("storage closed")),
    onPassed: (piece) => o.smartBan.passed(piece),
    onFailed: (piece) => {
      o.emit("hashfail", { index: piece.index });
      // a web seed's piece names that seed (dropped); a peer's goes to the smart ban
      if (!o.webSeeds.failed(piece)) {
        o.smartBan.failed(piece, picker.pieceSize(piece.index));
      }
      picker.pieceFailed(piece);
      o.webSeeds.tick(); // the piece may be fetched again
    },
    onWritten: (piece) => o.onWritten(piece),
    onLost: (piece, error) => {
      picker.pieceFailed(piece);
      if (error) o.emit("error", { error });
    },
    onDiskError: (cause) => {
      if (o.state() === "active") {
        o.pause();
        disk.paused = true;
      }
      disk.error = diskError(cause, disk.paused, o.settings.diskRetryMs ?? 5000);
      o.emit("error", { error: disk.error });
    },
    onRetryFailed: () => o.settings.trace?.({ type: "diskretry", pending: writer.pending }),
    onDiskRecovered: () => {
      if (disk.paused && o.state() === "paused") o.start(); // clears disk.paused
    },
    retryMs: o.settings.diskRetryMs ?? 5000,
    now: o.now,
  });
  return writer;
}
