/**
 * Who we upload to: a fixed number of regular unchoke slots given to the best peers by rate, plus one
 * optimistic unchoke rotated every 30 s (BEP 3's tit-for-tat, as libtorrent and the reference client do it).
 *
 * Pure decision code: it sees peers through {@linkcode ChokerPeer} and returns the set to unchoke.
 *
 * @module
 */

import type { PeerEntry, TorrentTrace } from "./types.ts";

/** What the choker needs to know about a peer. */
export interface ChokerPeer {
  /** Stable identifier of the connection. */
  readonly id: number;
  /** The peer wants data from us. */
  readonly peerInterested: boolean;
  /** Payload bytes per second the peer sends us. */
  readonly downloadRate: number;
  /** Payload bytes per second we send the peer. */
  readonly uploadRate: number;
  /** No block from the peer for a long time although we asked: it is not trading. */
  readonly snubbed: boolean;
  /** When the connection was made (ms); new peers are favoured for the optimistic slot. */
  readonly connectedAt: number;
}

/** Options for {@linkcode Choker}. */
export interface ChokerOptions {
  /**
   * Regular unchoke slots.
   * @default {4}
   */
  slots?: number;
  /**
   * Milliseconds between optimistic unchoke rotations.
   * @default {30000}
   */
  optimisticIntervalMs?: number;
  /** Random source; tests pass a seeded one. */
  random?: () => number;
}

/** Chooses which peers to unchoke on each round. */
export class Choker {
  readonly #slots: number;
  readonly #optimisticInterval: number;
  readonly #random: () => number;
  #optimistic: number | undefined;
  #optimisticSince = -Infinity;

  /**
   * Creates a {@linkcode Choker}.
   *
   * @param options Slots and rotation interval.
   */
  constructor(options: ChokerOptions = {}) {
    this.#slots = options.slots ?? 4;
    this.#optimisticInterval = options.optimisticIntervalMs ?? 30_000;
    this.#random = options.random ?? Math.random;
  }

  /** Regular slots. */
  get slots(): number {
    return this.#slots;
  }

  /** The peer currently holding the optimistic slot, if any. */
  get optimistic(): number | undefined {
    return this.#optimistic;
  }

  /**
   * One choking round.
   *
   * @param peers Every connected peer.
   * @param seeding True when we have everything: rank by how fast we upload to them, not how fast they send.
   * @param now Current time in ms.
   * @returns The ids of the peers to unchoke; every other peer is choked.
   */
  round(peers: readonly ChokerPeer[], seeding: boolean, now: number): Set<number> {
    const interested = peers.filter((p) => p.peerInterested);
    const ranked = interested
      .filter((p) => seeding || !p.snubbed)
      .sort((a, b) => seeding ? b.uploadRate - a.uploadRate : b.downloadRate - a.downloadRate);
    const unchoke = new Set<number>();
    for (const p of ranked) {
      if (unchoke.size >= this.#slots) break;
      unchoke.add(p.id);
    }
    const stillThere = interested.some((p) => p.id === this.#optimistic && !unchoke.has(p.id));
    if (!stillThere || now - this.#optimisticSince >= this.#optimisticInterval) {
      const candidates = interested.filter((p) => !unchoke.has(p.id));
      this.#optimistic = undefined;
      if (candidates.length > 0) {
        // peers connected in the last minute get three times the chance (they have nothing to trade yet)
        const weights = candidates.map((p) => now - p.connectedAt < 60_000 ? 3 : 1);
        let total = 0;
        for (const w of weights) total += w;
        let r = this.#random() * total;
        let chosen = candidates[candidates.length - 1];
        for (let i = 0; i < candidates.length; i++) {
          r -= weights[i];
          if (r < 0) {
            chosen = candidates[i];
            break;
          }
        }
        this.#optimistic = chosen.id;
        this.#optimisticSince = now;
      }
    }
    if (this.#optimistic !== undefined) unchoke.add(this.#optimistic);
    return unchoke;
  }

  /**
   * Whether a newly interested peer may be unchoked right away, without waiting for the next round
   * (a free slot exists): this avoids the multi-second start-up delay of timer-only chokers.
   *
   * @param unchokedCount Peers currently unchoked.
   * @returns True when a slot is free.
   */
  hasFreeSlot(unchokedCount: number): boolean {
    return unchokedCount < this.#slots + 1;
  }
}

/**
 * One choking round over a torrent's connections: unchokes the chosen ones and chokes the others.
 *
 * @param choker The torrent's choker.
 * @param peers Its ready connections.
 * @param seeding We have every piece (rank by our upload rate).
 * @param now The current time (ms).
 * @param trace Receives each choke and unchoke (`TorrentOptions.trace`).
 */
export function rechoke(
  choker: Choker,
  peers: readonly PeerEntry[],
  seeding: boolean,
  now: number,
  trace?: (event: TorrentTrace) => void,
): void {
  const unchoke = choker.round(
    peers.map((e) => ({
      id: e.id,
      peerInterested: e.conn.peerInterested,
      downloadRate: e.rateDown,
      uploadRate: e.rateUp,
      snubbed: e.snubbed,
      connectedAt: e.connectedAt,
    })),
    seeding,
    now,
  );
  for (const e of peers) {
    if (unchoke.has(e.id)) {
      if (e.conn.amChoking) {
        trace?.({ type: "unchoke", peer: e.key, optimistic: e.id === choker.optimistic });
      }
      e.conn.unchoke();
    } else if (!e.conn.amChoking) {
      e.conn.choke();
      trace?.({ type: "choke", peer: e.key });
    }
  }
}
