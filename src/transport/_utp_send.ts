/**
 * The sending half of a uTP connection: packetising written bytes, the send window (LEDBAT congestion window and
 * the peer's advertised window), acknowledgements (cumulative and selective), loss detection, retransmission
 * with RTT-based timeouts, and the FIN.
 *
 * Bytes written are cut into packets of at most `mss` payload bytes; small writes are coalesced and a partial
 * packet waits while data is in flight (Nagle). Each packet keeps its datagram until acknowledged: uTP numbers
 * packets, not bytes, so a retransmission resends the same packet with fresh header fields. A write resolves once
 * its bytes are in packets inside the window, so back-pressure follows the send window.
 *
 * @module
 */

import { Ledbat } from "./ledbat.ts";
import {
  PacketType,
  seqBefore,
  UTP_HEADER_SIZE,
  type UtpHeader,
  writeUtpHeader,
} from "./utp_packet.ts";

const M = 0xffff;
/** Packets in flight at most (slots in the send ring): well under half the sequence space. */
export const SEND_SLOTS = 2048;
/** Packets fast-resent per selective ack at most. */
const SACK_RESENDS = 4;
const MIN_RTO = 500;
const MAX_RTO = 60_000;
/** The retransmission timeout before the first round-trip sample (BEP 29: 1 s). */
export const INITIAL_RTO = 1000;

/** A packet of ours that is not yet acknowledged: the datagram is kept for retransmission. */
export class OutPacket {
  /** The datagram: header and payload. */
  buf: Uint8Array;
  /** Bytes of `buf` in use. */
  len: number = UTP_HEADER_SIZE;
  /** Payload bytes. */
  payload = 0;
  /** When it was last sent, ms. */
  sentAt = 0;
  /** Times sent. */
  transmissions = 0;
  /** Lost on a timeout: to be resent, no longer counted in flight. */
  needResend = false;
  /** Already fast-resent once. */
  fastResent = false;
  /**
   * Creates an {@linkcode OutPacket}.
   *
   * @param buf The datagram's buffer.
   */
  constructor(buf: Uint8Array) {
    this.buf = buf;
  }
}

/** Counters of the sending half. */
export interface SendStats {
  /** Data and FIN packets sent, retransmissions included. */
  packetsSent: number;
  /** Retransmissions. */
  packetsResent: number;
  /** Retransmission timeouts. */
  timeouts: number;
  /** Losses found by duplicate or selective acks. */
  fastRetransmits: number;
  /** Payload bytes acknowledged. */
  bytesAcked: number;
}

/** The sending half of one connection. */
export class UtpSender {
  /** The next sequence number to use. */
  seqNr = 0;
  /** The peer's cumulative ack: every packet up to this one arrived. */
  ackedSeq = 0;
  /** The peer's advertised receive window, bytes. */
  peerWnd = 0;
  /** Payload bytes in flight (sent, not acked, not given up for lost). */
  curWindow = 0;
  /** Smoothed round trip, ms (0 before a sample). */
  rtt = 0;
  /** Retransmission timeout, ms. */
  rto: number = INITIAL_RTO;
  /** When the retransmission timer fires (0: not running). */
  timeoutAt = 0;
  /** When data was last sent. */
  lastDataSent = 0;
  /** Our FIN was acknowledged. */
  finAcked = false;
  /** The application closed the writable (or the connection is closing): a FIN follows the data. */
  writeClosed = false;
  /** The congestion controller. */
  readonly cc: Ledbat;
  /** Counters. */
  readonly stats: SendStats = {
    packetsSent: 0,
    packetsResent: 0,
    timeouts: 0,
    fastRetransmits: 0,
    bytesAcked: 0,
  };
  readonly #mss: number;
  readonly #sendId: number;
  readonly #transmit: (p: OutPacket, now: number) => void;
  #outbuf: (OutPacket | undefined)[] = new Array(SEND_SLOTS);
  #resendCount = 0;
  #cwndLimited = false;
  #lossSeq = 0;
  #dupAcks = 0;
  #numTimeouts = 0;
  #rttVar = 0;
  #sackMinRtt = Infinity;
  #fill: OutPacket | undefined;
  #pending: Uint8Array | undefined;
  #pendingOff = 0;
  #pendingWrite: PromiseWithResolvers<void> | undefined;
  #closeWrite: PromiseWithResolvers<void> | undefined;
  #finSeq = -1;

  /**
   * Creates a {@linkcode UtpSender}.
   *
   * @param mss Payload bytes per packet.
   * @param targetDelayUs LEDBAT target delay, microseconds.
   * @param sendId The connection id we send with.
   * @param transmit Stamps a packet's header (time, ack, window) and sends it.
   */
  constructor(
    mss: number,
    targetDelayUs: number,
    sendId: number,
    transmit: (p: OutPacket, now: number) => void,
  ) {
    this.#mss = mss;
    this.#sendId = sendId;
    this.#transmit = transmit;
    this.cc = new Ledbat({ mss, targetDelayUs });
  }

  /**
   * Sets the sequence numbers: `seq` is the next to send, everything before it counts as acknowledged.
   *
   * @param seq The next sequence number.
   */
  start(seq: number): void {
    this.seqNr = seq & M;
    this.ackedSeq = this.#lossSeq = (seq - 1) & M;
  }

  /** Everything sent has been acknowledged. */
  get idle(): boolean {
    return this.ackedSeq === ((this.seqNr - 1) & M);
  }

  /** Bytes are waiting to be sent (a write in progress or a partial packet). */
  get queued(): boolean {
    return this.#pending !== undefined || this.#fill !== undefined;
  }

  // ------------------------------------------------------------------ writing

  /**
   * Takes a chunk to send; it resolves once the chunk's bytes are all in packets.
   *
   * @param chunk The bytes (not kept after the returned promise settles).
   * @param now The clock, ms.
   * @param canSend Whether packets may go out now (the connection is established).
   * @returns A promise while bytes wait for window space, else nothing.
   */
  write(chunk: Uint8Array, now: number, canSend: boolean): Promise<void> | undefined {
    if (chunk.length === 0) return undefined;
    this.#pending = chunk;
    this.#pendingOff = 0;
    if (canSend) this.flush(now);
    if (this.#pending === undefined) return undefined;
    this.#pendingWrite = Promise.withResolvers<void>();
    return this.#pendingWrite.promise;
  }

  /**
   * No more writes: the FIN goes out after the data. The promise resolves when the FIN is acknowledged.
   *
   * @param now The clock, ms.
   * @param canSend Whether packets may go out now.
   * @returns Settles when the FIN is acknowledged, or rejects with the connection's error.
   */
  end(now: number, canSend: boolean): Promise<void> {
    this.writeClosed = true;
    this.#closeWrite = Promise.withResolvers<void>();
    const done = this.#closeWrite.promise;
    if (canSend) this.flush(now);
    return done;
  }

  /**
   * Drops the write in progress (what is already in packets still goes, then the FIN).
   *
   * @param err The error a waiting write rejects with; none: it is dropped silently.
   */
  abort(err?: Error): void {
    this.writeClosed = true;
    this.#pending = undefined;
    if (err) this.#pendingWrite?.reject(err);
    this.#pendingWrite = undefined;
  }

  /**
   * The connection failed: a waiting write and the FIN's promise reject; packets are let go.
   *
   * @param err The reason.
   */
  fail(err: Error): void {
    this.#pendingWrite?.reject(err);
    this.#pendingWrite = undefined;
    this.#closeWrite?.reject(err);
    this.#closeWrite = undefined;
    this.release();
  }

  /** Lets every packet go. */
  release(): void {
    this.#outbuf = [];
    this.#fill = undefined;
    this.#pending = undefined;
  }

  /**
   * Sends what the windows allow: retransmissions first, then new packets, then the FIN.
   *
   * @param now The clock, ms.
   */
  flush(now: number): void {
    if (this.#resendCount > 0) {
      for (let s = (this.ackedSeq + 1) & M; s !== this.seqNr; s = (s + 1) & M) {
        const p = this.#outbuf[s & (SEND_SLOTS - 1)];
        if (!p || !p.needResend) continue;
        if (!this.#canSend(p.payload)) return;
        p.needResend = false;
        this.#resendCount--;
        this.curWindow += p.payload;
        this.#send(p, now);
        this.stats.packetsResent++;
        if (this.#resendCount === 0) break;
      }
    }
    const mss = this.#mss;
    for (;;) {
      const pending = this.#pending;
      const avail = (this.#fill ? this.#fill.payload : 0) +
        (pending ? pending.length - this.#pendingOff : 0);
      if (avail === 0) break;
      const size = Math.min(mss, avail);
      if (size < mss && !this.idle && !this.writeClosed) {
        this.#stage(); // Nagle: a partial packet waits for the acks of what is in flight
        break;
      }
      if (!this.#canSend(size)) break;
      if (((this.seqNr - this.ackedSeq) & M) >= SEND_SLOTS) break; // the send ring is full
      const p = this.#fill ?? new OutPacket(new Uint8Array(UTP_HEADER_SIZE + mss));
      this.#fill = undefined;
      this.#take(p, size);
      this.#queue(p, PacketType.data, now);
    }
    if (this.#pending === undefined && this.#pendingWrite) {
      const w = this.#pendingWrite;
      this.#pendingWrite = undefined;
      w.resolve();
    }
    if (this.writeClosed && this.#finSeq < 0 && !this.queued) {
      const fin = new OutPacket(new Uint8Array(UTP_HEADER_SIZE));
      this.#finSeq = this.seqNr;
      this.#queue(fin, PacketType.fin, now);
    }
  }

  /** Numbers a new packet, puts it in the send ring and sends it. */
  #queue(p: OutPacket, type: number, now: number): void {
    const seq = this.seqNr;
    this.seqNr = (seq + 1) & M;
    writeUtpHeader(p.buf, type, 0, this.#sendId, 0, 0, 0, seq, 0);
    this.#outbuf[seq & (SEND_SLOTS - 1)] = p;
    this.curWindow += p.payload;
    if (this.timeoutAt === 0) this.timeoutAt = now + this.rto;
    this.#send(p, now);
  }

  #send(p: OutPacket, now: number): void {
    p.transmissions++;
    p.sentAt = now;
    this.lastDataSent = now;
    this.stats.packetsSent++;
    this.#transmit(p, now);
  }

  /** True when a packet of `size` payload bytes fits the congestion and receive windows. */
  #canSend(size: number): boolean {
    const cwnd = this.cc.window, peer = this.peerWnd;
    if (this.curWindow + size <= Math.min(cwnd, peer)) return true;
    // one packet may exceed a congestion window smaller than a packet (BEP 29), never the peer's window
    if (this.curWindow === 0 && size <= peer) return true;
    if (this.curWindow + size > cwnd) this.#cwndLimited = true;
    return false;
  }

  /** Moves `size` payload bytes into packet `p` from the pending write (after what `p` holds). */
  #take(p: OutPacket, size: number): void {
    let need = size - p.payload;
    while (need > 0 && this.#pending) {
      const src = this.#pending;
      const k = Math.min(need, src.length - this.#pendingOff);
      p.buf.set(src.subarray(this.#pendingOff, this.#pendingOff + k), UTP_HEADER_SIZE + p.payload);
      p.payload += k;
      this.#pendingOff += k;
      need -= k;
      if (this.#pendingOff === src.length) this.#pending = undefined;
    }
    p.len = UTP_HEADER_SIZE + p.payload;
  }

  /** Copies the rest of the pending write into the partial packet, so that the write can resolve. */
  #stage(): void {
    if (!this.#pending) return;
    const p = this.#fill ??= new OutPacket(new Uint8Array(UTP_HEADER_SIZE + this.#mss));
    this.#take(p, p.payload + (this.#pending.length - this.#pendingOff));
  }

  // ------------------------------------------------------------------ acknowledgements

  /**
   * Reads the ack fields of an incoming packet: the window, the delay sample, the cumulative ack, the
   * selective ack, duplicate acks; updates RTT, LEDBAT and the timer and fast-resends lost packets.
   *
   * @param h The packet's header (its ack was checked to be one of ours).
   * @param data The datagram (for the selective ack).
   * @param now The clock, ms.
   */
  onAck(h: UtpHeader, data: Uint8Array, now: number): void {
    const peerWndBefore = this.peerWnd;
    this.peerWnd = h.wndSize;
    const tsd = h.timestampDiff;
    if (tsd !== 0 && tsd !== 0x7fffffff) this.cc.addDelaySample(tsd, now);
    const inFlightBefore = this.curWindow;
    let acked = 0;
    let minRtt = Infinity;
    let progress = false;
    if (seqBefore(this.ackedSeq, h.ack)) {
      for (let s = (this.ackedSeq + 1) & M;; s = (s + 1) & M) {
        const p = this.#outbuf[s & (SEND_SLOTS - 1)];
        if (p) {
          acked += p.payload;
          if (p.transmissions === 1) minRtt = Math.min(minRtt, now - p.sentAt);
          this.#acked(p, s);
        }
        if (s === h.ack) break;
      }
      this.ackedSeq = h.ack;
      this.#dupAcks = 0;
      this.#numTimeouts = 0;
      progress = true;
    } else if (
      h.ack === this.ackedSeq && h.type === PacketType.state && h.wndSize === peerWndBefore &&
      !this.idle
    ) {
      this.#dupAcks++; // (an ack that only moves the window is a window update, not a duplicate)
    }
    if (h.sackLength > 0) {
      acked += this.#onSack(h.ack, data, h.sackOffset, h.sackLength, now);
      if (this.#sackMinRtt < minRtt) minRtt = this.#sackMinRtt;
    }
    if (minRtt !== Infinity) this.rttSample(minRtt);
    if (acked > 0) {
      this.stats.bytesAcked += acked;
      const rttUs = minRtt === Infinity ? undefined : minRtt * 1000;
      this.cc.onAck(acked, inFlightBefore, this.#cwndLimited, rttUs);
      this.#cwndLimited = false;
    }
    if (this.idle) this.timeoutAt = 0;
    else if (progress || this.timeoutAt === 0) this.timeoutAt = now + this.rto;
    if (this.#dupAcks >= 3) {
      const s = (this.ackedSeq + 1) & M;
      const p = this.#outbuf[s & (SEND_SLOTS - 1)];
      if (p) this.#lost(p, s, now);
    }
  }

  /**
   * Applies a selective ack: bit i of the mask acks ack + 2 + i; a hole with 3 acked packets above it is lost.
   * Returns the payload bytes newly acked; the smallest round trip among them is left in `#sackMinRtt`.
   */
  #onSack(ack: number, data: Uint8Array, off: number, len: number, now: number): number {
    let acked = 0, minRtt = Infinity;
    const bits = len * 8;
    let last = -1; // highest bit that maps to a packet we sent
    for (let i = 0; i < bits; i++) {
      const s = (ack + 2 + i) & M;
      if (!seqBefore(s, this.seqNr)) break;
      last = i;
      if ((data[off + (i >> 3)] >> (i & 7)) & 1) {
        const p = this.#outbuf[s & (SEND_SLOTS - 1)];
        if (p && seqBefore(this.ackedSeq, s)) {
          acked += p.payload;
          if (p.transmissions === 1) minRtt = Math.min(minRtt, now - p.sentAt);
          this.#acked(p, s);
        }
      }
    }
    // walk down from the top counting acked packets; a hole with 3 or more above it is lost
    let above = 0, resent = 0;
    for (let i = last; i >= -1 && resent < SACK_RESENDS; i--) {
      const s = (ack + 2 + i) & M; // i = -1 is ack + 1, assumed missing
      if (i >= 0 && (data[off + (i >> 3)] >> (i & 7)) & 1) {
        above++;
        continue;
      }
      if (above < 3) continue;
      const p = this.#outbuf[s & (SEND_SLOTS - 1)];
      if (p && seqBefore(this.ackedSeq, s) && !p.fastResent && !p.needResend) {
        this.#lost(p, s, now);
        resent++;
      }
    }
    this.#sackMinRtt = minRtt;
    return acked;
  }

  /** A packet is acknowledged: it leaves the send window. */
  #acked(p: OutPacket, s: number): void {
    if (p.needResend) this.#resendCount--;
    else this.curWindow -= p.payload;
    this.#outbuf[s & (SEND_SLOTS - 1)] = undefined;
    if (s === this.#finSeq) {
      this.finAcked = true;
      this.#closeWrite?.resolve();
      this.#closeWrite = undefined;
    }
  }

  /** Fast retransmit of a packet found lost; the window halves once per window of packets. */
  #lost(p: OutPacket, s: number, now: number): void {
    if (p.fastResent || p.needResend) return;
    p.fastResent = true;
    this.stats.fastRetransmits++;
    if (seqBefore(this.#lossSeq, s)) {
      this.cc.onLoss();
      this.#lossSeq = (this.seqNr - 1) & M;
    }
    this.#send(p, now);
    this.stats.packetsResent++;
  }

  /**
   * Feeds a round-trip sample (BEP 29: rtt_var += (|rtt - sample| - rtt_var) / 4; rtt += (sample - rtt) / 8;
   * timeout = max(rtt + 4 rtt_var, 500 ms)).
   *
   * @param ms The sample.
   */
  rttSample(ms: number): void {
    if (this.rtt === 0) {
      this.rtt = ms;
      this.#rttVar = ms / 2;
    } else {
      const delta = this.rtt - ms;
      this.#rttVar += (Math.abs(delta) - this.#rttVar) / 4;
      this.rtt += (ms - this.rtt) / 8;
    }
    this.rto = Math.min(MAX_RTO, Math.max(MIN_RTO, this.rtt + 4 * this.#rttVar));
  }

  /**
   * The retransmission timer fired: every packet in flight counts as lost, the window drops to one packet,
   * the timeout doubles, and the oldest packet is resent.
   *
   * @param now The clock, ms.
   * @param maxTimeouts Consecutive timeouts allowed.
   * @returns False when that was one timeout too many (the connection is dead).
   */
  onTimeout(now: number, maxTimeouts: number): boolean {
    if (++this.#numTimeouts > maxTimeouts) return false;
    this.stats.timeouts++;
    this.cc.onTimeout();
    this.#lossSeq = (this.seqNr - 1) & M;
    for (let s = (this.ackedSeq + 1) & M; s !== this.seqNr; s = (s + 1) & M) {
      const p = this.#outbuf[s & (SEND_SLOTS - 1)];
      if (!p || p.needResend) continue;
      p.needResend = true;
      this.curWindow -= p.payload;
      this.#resendCount++;
    }
    this.rto = Math.min(MAX_RTO, this.rto * 2);
    this.timeoutAt = now + this.rto;
    this.flush(now);
    return true;
  }

  /**
   * Zero-window probe: when the peer's window has stayed shut for a timeout with bytes waiting and nothing in
   * flight, one packet goes anyway (its ack reopens the window, or says it is still shut).
   *
   * @param now The clock, ms.
   */
  probe(now: number): void {
    if (!this.idle || !this.queued || now - this.lastDataSent < this.rto) return;
    this.peerWnd = Math.max(this.peerWnd, this.#mss);
    this.flush(now);
  }
}
