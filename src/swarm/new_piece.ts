/**
 * Choosing the next new piece to start for a peer, over the picker's typed arrays only (it looks at every piece,
 * once per piece started): by priority, then rarest first with a random tie-break, or in order (sequential).
 *
 * @module
 */

import type { Bitfield } from "../bitfield.ts";

/** The picker's state the choice reads. */
export interface NewPieceView {
  /** Pieces in the torrent. */
  pieceCount: number;
  /** Our pieces, packed (piece 0 = high bit). */
  have: Bitfield;
  /** Per-piece priority; 0 = not wanted. */
  priority: Int32Array;
  /** Per-piece count of peers that have it. */
  availability: Uint32Array;
  /** 1 for pieces with a deadline (they are picked elsewhere). */
  urgent: Uint8Array;
  /** 1 for pieces already in memory (in progress, being checked, reserved); marked by the caller. */
  held: Uint8Array;
  /** A number in [0, 1). */
  random: () => number;
  /**
   * The piece started last, whose successor wins a tie when extent affinity is on (undefined: it is off).
   */
  affinityAfter: number | undefined;
}

/**
 * The next new piece for a peer: highest priority, then rarest, ties broken at random (every tied piece equally
 * likely), except that the piece after the last one started wins a tie under extent affinity. One scan finds the
 * best priority and rarity and counts the ties, a second (only when the tie is drawn) walks to the drawn one.
 *
 * @param v The picker's state.
 * @param peerHas The peer's pieces.
 * @param allowed When given, only these pieces (a choked peer's allowed-fast set).
 * @returns The piece, or -1 when the peer has none we could start.
 */
export function rarestNewPiece(
  v: NewPieceView,
  peerHas: Bitfield,
  allowed?: ReadonlySet<number>,
): number {
  const { urgent, held, priority, availability } = v;
  const have = v.have.bytes, peer = peerHas.bytes;
  const count = Math.min(v.pieceCount, peerHas.length);
  /** A piece this peer could start now: it has it, we lack it, nobody holds it, no deadline, wanted. */
  const candidate = (i: number): boolean => {
    const bit = 0x80 >> (i & 7);
    return (peer[i >> 3] & bit) !== 0 && (have[i >> 3] & bit) === 0 && urgent[i] === 0 &&
      held[i] === 0 && priority[i] > 0;
  };
  let best = -1, bestPriority = 0, bestAvail = 0, ties = 0, firstTie = 0;
  const consider = (i: number): void => {
    if (!candidate(i)) return;
    const prio = priority[i], avail = availability[i];
    if (best < 0 || prio > bestPriority || (prio === bestPriority && avail < bestAvail)) {
      best = firstTie = i;
      bestPriority = prio;
      bestAvail = avail;
      ties = 1;
    } else if (prio === bestPriority && avail === bestAvail) ties++;
  };
  if (allowed) {
    for (const i of allowed) if (i >= 0 && i < count) consider(i);
  } else {
    for (let i = 0; i < count; i++) {
      // a whole byte of pieces the peer lacks or we have: skip it
      if ((i & 7) === 0 && (peer[i >> 3] & ~have[i >> 3] & 0xff) === 0) {
        i += 7;
        continue;
      }
      consider(i);
    }
  }
  if (best < 0) return -1;
  // affinity (as libtorrent's piece extent affinity): the piece after the last one started, when it is as good
  // as the best, so that equally rare pieces are fetched and written in order — only while every peer is a
  // seed: among leechers that start together, picking in order would have them all fetch the same pieces from
  // the seed and have nothing to trade (libtorrent keeps it off by default for that reason)
  const next = v.affinityAfter === undefined ? -1 : v.affinityAfter + 1;
  if (
    next >= 0 && next < count && (!allowed || allowed.has(next)) && candidate(next) &&
    priority[next] === bestPriority && availability[next] === bestAvail
  ) {
    return next;
  }
  if (ties <= 1) return best;
  // the drawn tie, counting from the first piece of the best kind
  let k = Math.min(ties - 1, Math.floor(v.random() * ties));
  const isTie = (i: number) =>
    candidate(i) && priority[i] === bestPriority && availability[i] === bestAvail;
  if (allowed) {
    for (const i of allowed) if (i >= 0 && i < count && isTie(i) && k-- === 0) return i;
  } else {
    for (let i = firstTie; i < count; i++) if (isTie(i) && k-- === 0) return i;
  }
  return best;
}

/**
 * Sequential mode: the lowest-numbered piece of the highest priority this peer can give.
 *
 * @param v The picker's state.
 * @param peerHas The peer's pieces.
 * @param allowed When given, only these pieces.
 * @returns The piece, or -1.
 */
export function firstNewPiece(
  v: NewPieceView,
  peerHas: Bitfield,
  allowed?: ReadonlySet<number>,
): number {
  let best = -1, bestPriority = 0;
  const { urgent, held, priority } = v;
  const count = Math.min(v.pieceCount, peerHas.length);
  const consider = (i: number): void => {
    const prio = priority[i];
    if (
      prio <= 0 || prio < bestPriority || (prio === bestPriority && best >= 0 && i > best) ||
      !peerHas.has(i) || v.have.has(i) || urgent[i] || held[i]
    ) {
      return;
    }
    best = i;
    bestPriority = prio;
  };
  if (allowed) {
    for (const i of allowed) if (i >= 0 && i < count) consider(i);
  } else {
    for (let i = 0; i < count; i++) consider(i);
  }
  return best;
}
