/**
 * The memory for pieces being downloaded, shared by the torrents of a session. Each torrent's piece budget
 * follows its own link (see {@linkcode PieceBudget}); above its floor, what it may hold comes out of one total,
 * divided fairly among the torrents that want more than their floor: each gets what it asks for, or an equal
 * share of what the others leave over, whichever is less (max-min fairness). One torrent alone may use the
 * whole total; two that both want more get half each; a torrent at its floor takes nothing from the others, so
 * a session of a thousand torrents, most of them seeding, does not divide the total a thousandfold.
 *
 * A torrent asks once per update of its budget (a tick, or earlier as pieces arrive), so a share handed out
 * before another torrent asked holds until the next update: for up to a tick the grants may add up to more than
 * the total.
 *
 * @module
 */

/** A byte total for pieces being downloaded, shared by several torrents above their floors. */
export class PieceMemoryPool {
  readonly #total: number;
  /** What each torrent that wants more than its floor asks for above it, bytes. */
  readonly #extra = new Map<object, number>();

  /**
   * Creates a {@linkcode PieceMemoryPool}.
   *
   * @param total Most bytes over every torrent, except that each keeps its floor.
   */
  constructor(total: number) {
    this.#total = total;
  }

  /** The total, bytes. */
  get total(): number {
    return this.#total;
  }

  /** How many torrents want more than their floor now. */
  get wanting(): number {
    return this.#extra.size;
  }

  /**
   * A torrent's budget asks for `want` bytes, `floor` of which are its own: what it may hold now.
   *
   * @param member The torrent (any object, the same one each time).
   * @param want The budget, bytes.
   * @param floor The budget's floor, bytes: always granted.
   * @returns Between `floor` and `want`.
   */
  grant(member: object, want: number, floor: number): number {
    const extra = want - floor;
    if (extra <= 0) {
      this.#extra.delete(member);
      return want;
    }
    this.#extra.set(member, extra);
    const room = Math.max(0, this.#total - floor);
    return floor + Math.min(extra, fairLevel(this.#extra.values(), room));
  }

  /** The torrent wants nothing above its floor any more (stopped, paused, complete, or without peers). */
  release(member: object): void {
    this.#extra.delete(member);
  }
}

/**
 * The level `L` at which the asks, each capped at `L`, add up to `room` (max-min fairness); Infinity when all of
 * them fit.
 */
function fairLevel(asks: Iterable<number>, room: number): number {
  const sorted = [...asks].sort((a, b) => a - b);
  let left = room;
  for (let i = 0; i < sorted.length; i++) {
    const share = left / (sorted.length - i);
    if (sorted[i] > share) return share;
    left -= sorted[i];
  }
  return Infinity;
}
