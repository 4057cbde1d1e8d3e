/**
 * The receiving half of a uTP connection: in-order delivery, the reorder buffer, selective ack bitmasks, the end
 * of the stream at the peer's FIN, and the readable byte stream the application reads.
 *
 * Packets in order are copied straight into the reader's buffer when a read is waiting (one copy, datagram to
 * reader), else into a ring buffer (64 KiB, growing up to the window while the reader lags, let go once it has
 * caught up, so an idle connection holds no buffer). Packets ahead of a hole wait in a reorder
 * ring of {@linkcode REORDER_SLOTS} slots; the bytes held in both count against the advertised window, so a peer
 * that honours the window can never make us hold more than `capacity` bytes.
 *
 * @module
 */

import { seqBefore } from "./utp_packet.ts";

const M = 0xffff;
/** Packets ahead of the next expected one that are kept for reordering. */
export const REORDER_SLOTS = 1024;
/** The ring of unread bytes starts this small and grows (up to the window) only while the reader lags. */
const RING_START = 64 * 1024;
/** A ring larger than this is let go once the reader has caught up. */
const RING_KEEP = 256 * 1024;

/** What {@linkcode UtpReceiver.data} and {@linkcode UtpReceiver.fin} did with a packet. */
export const Rx = {
  /** The next packet in order: delivered (and any packets it unblocked). */
  inOrder: 0,
  /** Ahead of a hole: kept for later (a selective ack should say so). */
  stored: 1,
  /** Already received: the peer missed our ack. */
  old: 2,
  /** Not kept: beyond the window, the reorder ring or the end of the stream. */
  dropped: 3,
} as const;

/** The receiving half of one connection. */
export class UtpReceiver {
  /** What the application reads: a byte stream, so BYOB readers work. */
  readonly readable: ReadableStream<Uint8Array>;
  /** The last sequence number received in order (the FIN's, once everything before it arrived). */
  ackNr = 0;
  /** Payload bytes received in order. */
  bytesReceived = 0;
  readonly #capacity: number;
  readonly #onRead: () => void;
  #rc!: ReadableByteStreamController;
  #open = true;
  #discard = false;
  // reorder ring: slot = seq mod REORDER_SLOTS
  #inbuf: (Uint8Array | undefined)[] | undefined;
  #inbufBytes = 0;
  #inbufCount = 0;
  #oooHigh = 0;
  // bytes received in order and not yet read
  #ring: Uint8Array | undefined;
  #rhead = 0;
  #rlen = 0;
  // end of stream
  #gotFin = false;
  #eofSeq = 0;
  #eof = false;

  /**
   * Creates a {@linkcode UtpReceiver}.
   *
   * @param capacity Bytes held at most (in order and out of order): the receive window.
   * @param onRead Called after the reader took bytes (the window opened).
   */
  constructor(capacity: number, onRead: () => void) {
    this.#capacity = capacity;
    this.#onRead = onRead;
    this.readable = new ReadableStream({
      type: "bytes",
      autoAllocateChunkSize: 65536,
      start: (c) => {
        this.#rc = c;
      },
      pull: (c) => this.#pull(c),
      cancel: () => this.#drop(),
    });
  }

  /** Bytes we can still take: the window to advertise. */
  get window(): number {
    return Math.max(0, this.#capacity - this.#rlen - this.#inbufBytes);
  }

  /** Everything up to the peer's FIN has arrived. */
  get eof(): boolean {
    return this.#eof;
  }

  /** Packets wait out of order (a selective ack is due). */
  get reordering(): boolean {
    return this.#inbufCount > 0;
  }

  /**
   * True when `seq` is further ahead than the reorder ring reaches (a data packet or FIN that cannot be ours).
   *
   * @param seq A data or FIN packet's sequence number.
   * @returns Whether to ignore the whole packet.
   */
  tooFar(seq: number): boolean {
    const d = (seq - this.ackNr - 1) & M;
    return d >= REORDER_SLOTS && d < 0x8000;
  }

  /**
   * Takes a data packet's payload.
   *
   * @param seq Its sequence number.
   * @param data The datagram (valid only during the call).
   * @param off Where the payload starts.
   * @returns One of {@linkcode Rx}.
   */
  data(seq: number, data: Uint8Array, off: number): number {
    const n = data.length - off;
    if (this.#gotFin && !seqBefore(seq, this.#eofSeq)) return Rx.dropped; // past the end of the stream
    const d = (seq - this.ackNr - 1) & M;
    if (d >= 0x8000) return Rx.old;
    if (d === 0) {
      if (n > this.window) return Rx.dropped; // the peer overran our window
      this.#deliver(data, off);
      this.ackNr = seq;
      this.bytesReceived += n;
      if (this.#inbufCount > 0) this.#drainReorder();
      this.#checkEof();
      return Rx.inOrder;
    }
    if (d >= REORDER_SLOTS) return Rx.dropped;
    const inbuf = this.#inbuf ??= new Array(REORDER_SLOTS);
    const slot = seq & (REORDER_SLOTS - 1);
    if (inbuf[slot] !== undefined) return Rx.old;
    if (n > this.window) return Rx.dropped;
    inbuf[slot] = data.slice(off); // the datagram's buffer may be large or reused: keep only the payload
    this.#inbufBytes += n;
    this.#inbufCount++;
    if (this.#inbufCount === 1 || seqBefore(this.#oooHigh, seq)) this.#oooHigh = seq;
    return Rx.stored;
  }

  /**
   * Takes the peer's FIN: its sequence number is the end of the stream.
   *
   * @param seq The FIN's sequence number.
   * @returns `inOrder` when the stream ended now, `stored` when packets before it are still missing, `old` for a
   *   repeated FIN, `dropped` for one inside what already arrived.
   */
  fin(seq: number): number {
    if (this.#gotFin) return seq === this.#eofSeq ? Rx.old : Rx.dropped;
    if (!seqBefore(this.ackNr, seq)) return Rx.dropped;
    this.#gotFin = true;
    this.#eofSeq = seq;
    this.#checkEof();
    return this.#eof ? Rx.inOrder : Rx.stored;
  }

  /** Bytes of selective ack bitmask to send (0 when nothing waits out of order); a multiple of 4, at most 32. */
  sackBytes(): number {
    if (this.#inbufCount === 0) return 0;
    // bit i acks ack_nr + 2 + i: the highest packet held needs (high - ack_nr - 1) bits
    const bits = (this.#oooHigh - this.ackNr - 1) & M;
    return Math.min(32, ((bits + 31) >> 5) * 4);
  }

  /**
   * Writes the selective ack bitmask (bit i set when ack_nr + 2 + i is held).
   *
   * @param buf The packet.
   * @param off Where the bitmask goes.
   * @param bytes Its length, from {@linkcode UtpReceiver.sackBytes}.
   */
  writeSack(buf: Uint8Array, off: number, bytes: number): void {
    const inbuf = this.#inbuf!;
    for (let i = 0; i < bytes * 8; i++) {
      if (inbuf[(this.ackNr + 2 + i) & (REORDER_SLOTS - 1)] !== undefined) {
        buf[off + (i >> 3)] |= 1 << (i & 7);
      }
    }
  }

  /** The application closed the connection: the readable ends; later data is acknowledged and discarded. */
  close(): void {
    this.#end();
    this.#drop();
  }

  /**
   * The connection failed: the readable errors.
   *
   * @param err The reason.
   */
  error(err: Error): void {
    if (this.#open) {
      this.#open = false;
      try {
        this.#rc.error(err);
      } catch { /* closed */ }
    }
    this.release();
  }

  /** Drops the reorder ring (and the bytes not yet read, unless the readable still has them to give). */
  release(keepUnread = false): void {
    this.#inbuf = undefined;
    this.#inbufCount = this.#inbufBytes = 0;
    if (!keepUnread) {
      this.#ring = undefined;
      this.#rlen = 0;
    }
  }

  #drainReorder(): void {
    const inbuf = this.#inbuf!;
    for (;;) {
      const next = (this.ackNr + 1) & M;
      const slot = next & (REORDER_SLOTS - 1);
      const p = inbuf[slot];
      if (p === undefined) break;
      inbuf[slot] = undefined;
      this.#inbufBytes -= p.length;
      this.#inbufCount--;
      this.ackNr = next;
      this.bytesReceived += p.length;
      this.#deliver(p, 0);
    }
  }

  /** Everything up to the FIN arrived: the FIN takes its sequence number and the readable ends once read. */
  #checkEof(): void {
    if (!this.#gotFin || this.#eof || this.ackNr !== ((this.#eofSeq - 1) & M)) return;
    this.ackNr = this.#eofSeq;
    this.#eof = true;
    if (this.#rlen === 0) this.#end();
  }

  /** Hands payload to the reader: straight into a waiting BYOB buffer, else into the ring. */
  #deliver(data: Uint8Array, off: number): void {
    if (this.#discard) return;
    let n = data.length - off;
    if (this.#rlen === 0) {
      const req = this.#rc.byobRequest;
      if (req) {
        const v = req.view as Uint8Array;
        const k = Math.min(n, v.byteLength);
        new Uint8Array(v.buffer, v.byteOffset, k).set(data.subarray(off, off + k));
        req.respond(k);
        off += k;
        n -= k;
        if (n === 0) return;
      }
    }
    let ring = this.#ring;
    if (!ring || this.#rlen + n > ring.length) ring = this.#grow(this.#rlen + n);
    const cap = ring.length;
    const tail = (this.#rhead + this.#rlen) % cap;
    const first = Math.min(n, cap - tail);
    ring.set(data.subarray(off, off + first), tail);
    if (first < n) ring.set(data.subarray(off + first, off + n), 0);
    this.#rlen += n;
  }

  /** A ring with room for `need` bytes: starts at 64 KiB and doubles up to the capacity, bytes kept in order. */
  #grow(need: number): Uint8Array {
    let size = this.#ring ? this.#ring.length : RING_START;
    while (size < need) size *= 2;
    const ring = new Uint8Array(Math.min(this.#capacity, size));
    const old = this.#ring;
    if (old && this.#rlen > 0) {
      const first = Math.min(this.#rlen, old.length - this.#rhead);
      ring.set(old.subarray(this.#rhead, this.#rhead + first));
      if (first < this.#rlen) ring.set(old.subarray(0, this.#rlen - first), first);
    }
    this.#rhead = 0;
    this.#ring = ring;
    return ring;
  }

  #pull(c: ReadableByteStreamController): void {
    const req = c.byobRequest;
    if (!req) return;
    if (this.#rlen === 0) {
      if (this.#eof) this.#end();
      return; // answered when data arrives (#deliver)
    }
    const v = req.view as Uint8Array;
    const ring = this.#ring!;
    const cap = ring.length;
    const k = Math.min(this.#rlen, v.byteLength);
    const dst = new Uint8Array(v.buffer, v.byteOffset, k);
    const first = Math.min(k, cap - this.#rhead);
    dst.set(ring.subarray(this.#rhead, this.#rhead + first));
    if (first < k) dst.set(ring.subarray(0, k - first), first);
    this.#rhead = (this.#rhead + k) % cap;
    this.#rlen -= k;
    req.respond(k);
    if (this.#rlen === 0) {
      if (this.#eof) this.#end();
      if (cap > RING_KEEP) this.#ring = undefined; // a burst is over: do not keep its memory
    }
    this.#onRead();
  }

  #end(): void {
    if (!this.#open) return;
    this.#open = false;
    try {
      this.#rc.close();
      this.#rc.byobRequest?.respond(0);
    } catch { /* already closed */ }
  }

  /** The reader cancelled (or the application closed): keep acking, stop keeping bytes. */
  #drop(): void {
    this.#open = false;
    this.#discard = true;
    this.#ring = undefined;
    this.#rlen = 0;
  }
}
