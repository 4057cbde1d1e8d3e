/**
 * Who we upload to: a fixed number of regular unchoke slots given to the best peers by rate, plus one
 * optimistic unchoke rotated every 30 s (BEP 3's tit-for-tat, as libtorrent and the reference client do it).
 *
 * A seed has nothing to trade for, so it shares its upload out instead of rewarding the fastest: twice the
 * slots, taken in turns (round robin, libtorrent's default for seeds): a peer keeps its slot for a turn of 30 s,
 * then goes behind the peers that have waited longest. Ranking by upload rate, as a seed did before, kept the
 * first peers served until they were done: 8 libtorrent leechers of 256 MiB from one seed on loopback, 5 were done
 * in 4.6 s and 3 starved until 11.5 s.
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
   * Regular unchoke slots while seeding, taken in turns.
   * @default {8}
   */
  seedSlots?: number;
  /**
   * Milliseconds between optimistic unchoke rotations, and a seed's turn.
   * @default {30000}
   */
  optimisticIntervalMs?: number;
  /** Random source; tests pass a seeded one. */
  random?: () => number;
}

/** Chooses which peers to unchoke on each round. */
export class Choker {
  readonly #slots: number;
  readonly #seedSlots: number;
  readonly #optimisticInterval: number;
  readonly #random: () => number;
  #optimistic: number | undefined;
  #optimisticSince = -Infinity;
  /** While seeding: when each peer holding a regular slot began its turn (ms). */
  readonly #turnStart = new Map<number, number>();
  /** While seeding: when each peer's last turn ended (ms); peers never served go first. */
  readonly #turnEnd = new Map<number, number>();

  /**
   * Creates a {@linkcode Choker}.
   *
   * @param options Slots and rotation interval.
   */
  constructor(options: ChokerOptions = {}) {
    this.#slots = options.slots ?? 4;
    this.#seedSlots = options.seedSlots ?? 8;
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
   * @param seeding True when we have everything: a seed's slots, taken in turns.
   * @param now Current time in ms.
   * @returns The ids of the peers to unchoke; every other peer is choked.
   */
  round(peers: readonly ChokerPeer[], seeding: boolean, now: number): Set<number> {
    const interested = peers.filter((p) => p.peerInterested);
    const unchoke = seeding ? this.#turns(interested, now) : new Set<number>();
    if (!seeding) {
      this.#turnStart.clear();
      const ranked = interested.filter((p) => !p.snubbed)
        .sort((a, b) => b.downloadRate - a.downloadRate);
      for (const p of ranked) {
        if (unchoke.size >= this.#slots) break;
        unchoke.add(p.id);
      }
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
   * A seed's regular slots, in turns: peers in the middle of their turn keep it; the free slots go to the peers
   * that have waited longest since their last turn (those never served first, the newest connections last
   * among them); a peer whose turn is over keeps its slot only when no one waits.
   */
  #turns(interested: readonly ChokerPeer[], now: number): Set<number> {
    const turn = this.#optimisticInterval;
    const starts = this.#turnStart, ends = this.#turnEnd;
    const midTurn = interested.filter((p) => now - (starts.get(p.id) ?? -Infinity) < turn)
      .sort((a, b) => starts.get(a.id)! - starts.get(b.id)!);
    const keeping = new Set(midTurn);
    const waiting = interested.filter((p) => !keeping.has(p))
      .sort((a, b) =>
        this.#waitedSince(a, now) - this.#waitedSince(b, now) || a.connectedAt - b.connectedAt
      );
    const unchoke = new Set<number>();
    for (const p of [...midTurn, ...waiting]) {
      if (unchoke.size >= this.#seedSlots) break;
      unchoke.add(p.id);
      if (!keeping.has(p)) starts.set(p.id, now); // a new turn (or the same peer again: no one waits)
    }
    for (const id of starts.keys()) {
      if (unchoke.has(id)) continue;
      starts.delete(id);
      ends.set(id, now);
    }
    // forget peers that are gone
    const here = new Set(interested.map((p) => p.id));
    for (const id of ends.keys()) if (!here.has(id)) ends.delete(id);
    return unchoke;
  }

  /** Since when a peer has waited for a seed's slot: its last turn's end (a turn just over counts as now). */
  #waitedSince(p: ChokerPeer, now: number): number {
    if (this.#turnStart.has(p.id)) return now;
    return this.#turnEnd.get(p.id) ?? -Infinity;
  }

  /**
   * Whether a newly interested peer may be unchoked right away, without waiting for the next round
   * (a free slot exists): this avoids the multi-second start-up delay of timer-only chokers.
   *
   * @param unchokedCount Peers currently unchoked.
   * @param seeding We have every piece (a seed's slots).
   * @returns True when a slot is free.
   */
  hasFreeSlot(unchokedCount: number, seeding = false): boolean {
    return unchokedCount < (seeding ? this.#seedSlots : this.#slots) + 1;
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
    } else chokePeer(e, trace);
  }
}

/**
 * Chokes one connection unless it is choked already.
 *
 * @param e The connection.
 * @param trace Receives the choke (`TorrentOptions.trace`).
 */
export function chokePeer(e: PeerEntry, trace?: (event: TorrentTrace) => void): void {
  if (e.conn.amChoking) return;
  e.conn.choke();
  trace?.({ type: "choke", peer: e.key });
}
