/**
 * The vocabulary of piece picking: one piece being downloaded ({@linkcode PartialPiece}) and its blocks' states,
 * a block to request ({@linkcode BlockRequest}), and {@linkcode PickerPieces}, what the picker shows of its pieces
 * in memory to the parts of picking that live beside it (deadlines in `urgent_pieces.ts`, web seeds' whole-piece
 * runs in `piece_runs.ts`). No sockets, no disk, no timers.
 *
 * @module
 */

import type { Bitfield } from "../bitfield.ts";
import type { RequestStore } from "./requests.ts";

/** Block state inside a piece in progress: nobody has it in flight. */
export const FREE = 0;
/** Block state inside a piece in progress: requested from some peer. */
export const REQUESTED = 1;
/** Block state inside a piece in progress: in the piece's buffer. */
export const RECEIVED = 2;

/** One piece being downloaded. */
export interface PartialPiece {
  /** Piece index. */
  readonly index: number;
  /** The piece's bytes as blocks arrive (replaced when the buffer travels to a hashing thread and back). */
  buffer: Uint8Array<ArrayBuffer>;
  /** State of each block (free, requested, received). */
  readonly state: Uint8Array;
  /** Blocks received so far. */
  received: number;
  /** Blocks never requested yet. */
  free: number;
  /** Identifiers of the peers that sent blocks of this piece (to blame on a hash failure). */
  readonly senders: Set<number>;
  /** Which peer sent each block (for smart ban: blaming the exact blocks once the piece is known good). */
  readonly blockSenders: Int32Array;
}

/** A block to request: piece index, byte offset and length. */
export interface BlockRequest {
  /** Piece index. */
  index: number;
  /** Byte offset inside the piece. */
  begin: number;
  /** Length in bytes (16 KiB except for the last block of the last piece). */
  length: number;
}

/**
 * The picker's pieces in memory and the operations on them, as the picker gives them to the parts of picking
 * beside it. The collections are the picker's own (not copies).
 */
export interface PickerPieces {
  /** Number of pieces. */
  readonly pieceCount: number;
  /** Pieces verified and on disk. */
  readonly have: Bitfield;
  /** Download priority of each piece (0 = not wanted). */
  readonly priority: Int32Array;
  /** Pieces in progress, by index. */
  readonly partial: ReadonlyMap<number, PartialPiece>;
  /** Pieces fully received and waiting for their hash check / write. */
  readonly pending: Set<number>;
  /** Pieces handed out whole (to a web seed) and not yet received or given back. */
  readonly reserved: Set<number>;
  /** The torrent's requests in flight. */
  readonly requests: RequestStore;
  /** How many peers may be asked for the same block in endgame. */
  readonly endgameDuplicates: number;
  /** Most pieces held in memory at once. */
  readonly maxInMemory: number;
  /** Pieces that hold (or, reserved, will hold) a buffer. */
  readonly held: number;
  /** True when the piece is wanted and not yet had. */
  wants(index: number): boolean;
  /** Bytes in a piece. */
  pieceSize(index: number): number;
  /** Bytes in block `block` of a piece. */
  blockLength(index: number, block: number): number;
  /** A new piece in progress (a buffer from the pool), not yet counted in `partial`. */
  newPiece(index: number): PartialPiece;
  /** Starts a piece: a new piece in progress, counted in `partial`. */
  startPiece(index: number): PartialPiece;
  /** Marks free blocks of `p` requested and adds them to `out`, up to `max` in all. */
  takeFree(p: PartialPiece, out: BlockRequest[], max: number): void;
  /** The pieces in progress, best first (highest priority, then most complete). */
  sortedPartials(): PartialPiece[];
  /** Forgets a piece in progress or reserved. */
  abandon(index: number): void;
}
