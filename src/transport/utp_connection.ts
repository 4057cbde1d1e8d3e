/**
 * One uTP connection (BEP 29) as a byte stream: {@linkcode UtpConnection} is what callers see (a
 * {@linkcode PeerStream} like a TCP connection); `UtpSocket` is the state machine behind it, driven by
 * `UtpEndpoint` (utp.ts), which owns the UDP socket, routes datagrams by connection id and runs one timer for all
 * connections.
 *
 * Sending: bytes written are cut into packets of at most `mss` payload bytes (small writes are coalesced; a
 * partial packet waits while data is in flight — Nagle), each kept until acknowledged. A write resolves once its
 * bytes are in packets, and packets go out only inside min(congestion window, peer's advertised window), so
 * back-pressure follows the send window. Losses are repaired by fast retransmit (three duplicate acks, or three
 * packets selectively acked past a hole) and by the retransmission timer (RTT-based, at least 500 ms, doubling).
 *
 * Receiving: packets in order are copied straight into the reader's BYOB buffer when a read is waiting, else
 * into a ring buffer the size of the advertised window; packets out of order wait in a bounded reorder buffer and
 * are reported with selective acks. A FIN ends the readable once every packet before it has arrived.
 *
 * @module
 */

import { Ledbat } from "./ledbat.ts";
import {
  EXTENSION_SACK,
  PacketType,
  refreshUtpHeader,
  seqBefore,
  UTP_HEADER_SIZE,
  type UtpHeader,
  writeUtpHeader,
} from "./utp_packet.ts";
import type { PeerStream } from "../wire/stream.ts";

/** Why a uTP connection failed. */
export type UtpErrorCode = "timeout" | "reset" | "closed" | "aborted" | "limit";

/** A uTP connection failed or was refused. */
export class UtpError extends Error {
  /** What happened: `timeout` (no answer), `reset` (ST_RESET), `closed` (locally), `aborted`, `limit`. */
  readonly code: UtpErrorCode;
  /**
   * Creates a {@linkcode UtpError}.
   *
   * @param code What happened.
   * @param message A sentence saying so.
   */
  constructor(code: UtpErrorCode, message: string) {
    super(message);
    this.name = "UtpError";
    this.code = code;
  }
}

/** Counters and estimates of one connection. */
export interface UtpStats {
  /** Smoothed round-trip time, ms (0 before the first sample). */
  rttMs: number;
  /** Current retransmission timeout, ms. */
  rtoMs: number;
  /** LEDBAT congestion window, bytes. */
  window: number;
  /** The peer's advertised receive window, bytes. */
  peerWindow: number;
  /** Payload bytes sent and not yet acknowledged. */
  bytesInFlight: number;
  /** Current queuing delay estimate, microseconds. */
  queuingDelayUs: number;
  /** Data and FIN packets sent, retransmissions included. */
  packetsSent: number;
  /** Retransmissions (fast or on timeout). */
  packetsResent: number;
  /** Data packets received (duplicates included). */
  packetsReceived: number;
  /** Acks (state packets) sent. */
  acksSent: number;
  /** Retransmission timeouts. */
  timeouts: number;
  /** Losses detected by duplicate or selective acks. */
  fastRetransmits: number;
  /** Payload bytes received in order. */
  bytesReceived: number;
  /** Payload bytes acknowledged by the peer. */
  bytesAcked: number;
}

/** A uTP connection: a byte stream to one peer, usable wherever a TCP connection is. */
export interface UtpConnection extends PeerStream, AsyncDisposable {
  /** Bytes from the peer: a byte stream, so BYOB readers work. Ends at the peer's FIN. */
  readonly readable: ReadableStream<Uint8Array>;
  /** Bytes to the peer. A write resolves once its bytes are in packets inside the send window. */
  readonly writable: WritableStream<Uint8Array>;
  /** Always `"utp"`. */
  readonly transport: "utp";
  /** The peer's address. */
  readonly remoteAddress: { host: string; port: number };
  /** Our UDP port. */
  readonly localPort: number;
  /** Resolves when the connection is gone (closed gracefully, reset or timed out); never rejects. */
  readonly closed: Promise<void>;
  /** Counters and estimates. */
  stats(): UtpStats;
  /** Closes both directions gracefully: queued data and a FIN still go out; what arrives is dropped. */
  close(): void;
  /** Ends the connection at once with an ST_RESET. */
  reset(): void;
}

/** What the endpoint gives each connection. */
export interface UtpLink {
  /** Our UDP port. */
  readonly localPort: number;
  /** Milliseconds (monotonic). */
  now(): number;
  /** Sends a datagram to the connection's peer. */
  send(sock: UtpSocket, datagram: Uint8Array): void;
  /** Asks for `sock.flushAck()` once the datagrams received in this turn are processed. */
  deferAck(sock: UtpSocket): void;
  /** An incoming connection is confirmed (the initiator answered our ST_STATE). */
  confirmed(sock: UtpSocket): void;
  /** The connection is gone: forget it. */
  gone(sock: UtpSocket): void;
}

/** Per-connection settings (the endpoint's options, resolved). */
export interface UtpSocketConfig {
  /** Payload bytes per packet. */
  mss: number;
  /** Receive buffer = most bytes advertised. */
  recvWindow: number;
  /** Send a keep-alive after this long without sending. */
  keepAliveMs: number;
  /** Fail after this long without receiving anything. */
  idleTimeoutMs: number;
  /** Consecutive retransmission timeouts before the connection fails. */
  maxRetransmits: number;
  /** LEDBAT target delay, microseconds. */
  targetDelayUs: number;
  /** How long a closed connection waits for the peer's FIN after ours was acked. */
  lingerMs: number;
}

const M = 0xffff;
/** Packets in flight at most (and slots in the send ring): must stay well under 32768. */
const OUT_RING = 2048;
/** Packets ahead of the next expected one that are kept for reordering (slots in the reorder ring). */
const IN_RING = 1024;
/** Most selective ack bytes sent (32 bytes = 256 packets past ack_nr + 1). */
const MAX_SACK = 32;
/** In-order data packets received before an ack goes out at once (else it is deferred to the end of the turn). */
const ACK_EVERY = 4;
/** Packets fast-resent per selective ack at most. */
const SACK_RESENDS = 4;
const MIN_RTO = 500;
const MAX_RTO = 60_000;
const INITIAL_RTO = 1000;

/** Connection states; `timeWait` re-acks the peer's last packets for a while after both FINs are through. */
const State = { synSent: 1, synRecv: 2, connected: 3, timeWait: 4, dead: 5 } as const;
type State = typeof State[keyof typeof State];

/** A packet of ours that is not yet acknowledged: the datagram is kept for retransmission. */
class OutPacket {
  buf: Uint8Array;
  len = UTP_HEADER_SIZE;
  payload = 0;
  sentAt = 0;
  transmissions = 0;
  needResend = false;
  fastResent = false;
  constructor(buf: Uint8Array) {
    this.buf = buf;
  }
}

/**
 * The state machine of one connection. Made by the endpoint; callers only see it as a
 * {@linkcode UtpConnection}.
 */
export class UtpSocket implements UtpConnection {
  /** The peer's IP address (as the UDP socket reports it). */
  readonly host: string;
  /** The peer's UDP port. */
  readonly port: number;
  /** The id the peer sends to us with. */
  readonly recvId: number;
  /** The id we send with. */
  readonly sendId: number;
  /** The next connection in the endpoint's hash chain. */
  nextInChain: UtpSocket | undefined;
  /** True while queued for a deferred ack. */
  ackQueued = false;
  /** When the connection attempt fails (initiator, or unconfirmed acceptor). */
  connectDeadline = 0;
  /** Settles the initiator's connect(). */
  onConnect: ((err: UtpError | undefined) => void) | undefined;

  readonly transport = "utp" as const;
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;

  readonly #link: UtpLink;
  readonly #cfg: UtpSocketConfig;
  readonly #cc: Ledbat;
  #state: State = State.synSent as State;
  #closedP = Promise.withResolvers<void>();
  // sequence state
  #seqNr = 0;
  #ackedSeq = 0;
  #ackNr = 0;
  #synSeq = 0;
  #synSentAt = 0;
  #synTransmissions = 0;
  // sending
  #outbuf: (OutPacket | undefined)[] = new Array(OUT_RING);
  #curWindow = 0;
  #resendCount = 0;
  #peerWnd = 0;
  #cwndLimited = false;
  #lossSeq = 0;
  #dupAcks = 0;
  #rtt = 0;
  #rttVar = 0;
  #rto = INITIAL_RTO;
  #timeoutAt = 0;
  #numTimeouts = 0;
  #replyMicro = 0;
  #lastSent = 0;
  #lastDataSent = 0;
  #lastReceived = 0;
  #advertised = 0;
  #fill: OutPacket | undefined;
  #pending: Uint8Array | undefined;
  #pendingOff = 0;
  #pendingWrite: PromiseWithResolvers<void> | undefined;
  #closeWrite: PromiseWithResolvers<void> | undefined;
  #writeClosed = false;
  #finSeq = -1;
  #finAcked = false;
  // receiving
  #ackDue = 0;
  #inbuf: (Uint8Array | undefined)[] | undefined;
  #inbufBytes = 0;
  #inbufCount = 0;
  #oooHigh = 0;
  #ring: Uint8Array | undefined;
  #rhead = 0;
  #rlen = 0;
  #gotFin = false;
  #eofSeq = 0;
  #eof = false;
  // streams
  #rc!: ReadableByteStreamController;
  #wc!: WritableStreamDefaultController;
  #readOpen = true;
  #readDead = false;
  #writeOpen = true;
  #appClosed = false;
  #lingerUntil = 0;
  #timeWaitUntil = 0;
  #error: UtpError | undefined;
  readonly #stats = {
    packetsSent: 0,
    packetsResent: 0,
    packetsReceived: 0,
    acksSent: 0,
    timeouts: 0,
    fastRetransmits: 0,
    bytesReceived: 0,
    bytesAcked: 0,
  };

  /**
   * Creates a {@linkcode UtpSocket} (the endpoint does).
   *
   * @param link The endpoint's services.
   * @param config Settings.
   * @param host Peer address.
   * @param port Peer port.
   * @param recvId The id the peer sends with.
   * @param sendId The id we send with.
   */
  constructor(
    link: UtpLink,
    config: UtpSocketConfig,
    host: string,
    port: number,
    recvId: number,
    sendId: number,
  ) {
    this.#link = link;
    this.#cfg = config;
    this.host = host;
    this.port = port;
    this.recvId = recvId;
    this.sendId = sendId;
    this.#cc = new Ledbat({ mss: config.mss, targetDelayUs: config.targetDelayUs });
    this.#lastReceived = this.#lastSent = link.now();
    this.readable = new ReadableStream({
      type: "bytes",
      autoAllocateChunkSize: 65536,
      start: (c) => {
        this.#rc = c;
      },
      pull: (c) => this.#pull(c),
      cancel: () => this.#cancelRead(),
    });
    this.writable = new WritableStream<Uint8Array>({
      start: (c) => {
        this.#wc = c;
      },
      write: (chunk) => this.#write(chunk),
      close: () => this.#endWrite(),
      abort: () => this.#abortWrite(),
    });
  }

  /** The peer's address. */
  get remoteAddress(): { host: string; port: number } {
    return { host: this.host, port: this.port };
  }
  /** Our UDP port. */
  get localPort(): number {
    return this.#link.localPort;
  }
  /** Resolves when the connection is gone. */
  get closed(): Promise<void> {
    return this.#closedP.promise;
  }
  /** True while the initiator waits for the answer to its SYN. */
  get connecting(): boolean {
    return this.#state === State.synSent;
  }
  /** True for an incoming connection not yet confirmed by the initiator (half-open). */
  get halfOpen(): boolean {
    return this.#state === State.synRecv;
  }
  /** The connection is over (possibly still re-acking the peer's last packets). */
  get dead(): boolean {
    return this.#state >= State.timeWait;
  }

  /** Counters and estimates. */
  stats(): UtpStats {
    return {
      rttMs: this.#rtt,
      rtoMs: this.#rto,
      window: this.#cc.window,
      peerWindow: this.#peerWnd,
      bytesInFlight: this.#curWindow,
      queuingDelayUs: this.#cc.queuingDelay,
      ...this.#stats,
    };
  }

  // ------------------------------------------------------------------ setup

  /**
   * Starts an outgoing connection: sends ST_SYN with sequence number `seq`.
   *
   * @param seq The initial sequence number.
   * @param deadline When to give up (ms, link clock).
   */
  startConnect(seq: number, deadline: number): void {
    const now = this.#link.now();
    this.#state = State.synSent;
    this.#synSeq = seq & M;
    this.#seqNr = (seq + 1) & M;
    this.#ackedSeq = (seq - 1) & M;
    this.#lossSeq = this.#ackedSeq;
    this.connectDeadline = deadline;
    this.#sendSyn(now);
  }

  /**
   * Answers an incoming ST_SYN with ST_STATE; the connection is half-open until the initiator's next packet.
   *
   * @param h The SYN's header.
   * @param seq Our initial sequence number.
   * @param deadline When an unconfirmed connection is dropped.
   */
  acceptSyn(h: UtpHeader, seq: number, deadline: number): void {
    const now = this.#link.now();
    this.#state = State.synRecv;
    this.#synSeq = h.seq;
    this.#ackNr = h.seq;
    this.#seqNr = seq & M;
    this.#ackedSeq = (seq - 1) & M;
    this.#lossSeq = this.#ackedSeq;
    this.#peerWnd = h.wndSize;
    this.connectDeadline = deadline;
    if (h.timestamp !== 0) this.#replyMicro = (micros(now) - h.timestamp) >>> 0;
    this.#sendState(now);
  }

  #sendSyn(now: number): void {
    const buf = new Uint8Array(UTP_HEADER_SIZE);
    writeUtpHeader(
      buf,
      PacketType.syn,
      0,
      this.recvId,
      micros(now),
      0,
      this.#wnd(),
      this.#synSeq,
      0,
    );
    this.#synTransmissions++;
    this.#synSentAt = now;
    this.#lastSent = now;
    this.#timeoutAt = now + INITIAL_RTO * 2 ** (this.#synTransmissions - 1);
    this.#link.send(this, buf);
  }

  // ------------------------------------------------------------------ incoming packets

  /**
   * Handles a datagram the endpoint routed here (already parsed into `h`).
   *
   * @param h The parsed header.
   * @param data The whole datagram (valid only during the call).
   */
  onPacket(h: UtpHeader, data: Uint8Array): void {
    if (this.#state === State.dead) return;
    const now = this.#link.now();
    const type = h.type;
    if (this.#state === State.timeWait) {
      // our last ack was lost: the peer resends its FIN (or data before it)
      if (type === PacketType.data || type === PacketType.fin) this.#sendState(now);
      return;
    }
    if (type === PacketType.reset) {
      // an ST_RESET is honoured only if its ack could be an ack of ours (a blind one needs to guess it too)
      if (((this.#seqNr - 1 - h.ack) & M) < OUT_RING + 8 || this.#state === State.synSent) {
        this.#fail(new UtpError("reset", `connection reset by ${this.host}:${this.port}`));
      }
      return;
    }
    if (this.#state === State.synSent) {
      if (type === PacketType.syn || h.ack !== this.#synSeq) return;
      // the SYN is acked: ST_STATE carries the peer's next sequence number, ST_DATA its first packet
      this.#state = State.connected;
      this.#ackNr = (h.seq - 1) & M;
      this.#ackedSeq = this.#synSeq;
      this.#timeoutAt = 0;
      if (this.#synTransmissions === 1) this.#rttSample(now - this.#synSentAt);
      // confirm at once, so the acceptor hands the connection over even if we are not the first to speak
      if (type === PacketType.state) this.#ackDue = 1;
      this.onConnect?.(undefined);
      this.onConnect = undefined;
    } else if (this.#state === State.synRecv) {
      if (type === PacketType.syn) {
        if (h.seq === this.#synSeq) this.#sendState(now); // our ST_STATE was lost
        return;
      }
      // confirmed: the initiator knows our sequence number, so it is not a spoofed SYN
      if (h.ack !== this.#ackedSeq) return;
      this.#state = State.connected;
      this.#link.confirmed(this);
      if (this.dead) return;
    } else if (type === PacketType.syn) {
      return;
    }
    // an ack of something we never sent, or data far beyond the reorder window: a forged or corrupt
    // packet, ignored whole (as libtorrent does)
    if (seqBefore((this.#seqNr - 1) & M, h.ack)) return;
    if (type === PacketType.data || type === PacketType.fin) {
      const d = (h.seq - this.#ackNr - 1) & M;
      if (d >= IN_RING && d < 0x8000) return;
    }
    this.#lastReceived = now;
    if (h.timestamp !== 0) this.#replyMicro = (micros(now) - h.timestamp) >>> 0;
    const peerWndBefore = this.#peerWnd;
    this.#peerWnd = h.wndSize;
    const tsd = h.timestampDiff;
    if (tsd !== 0 && tsd !== 0x7fffffff) this.#cc.addDelaySample(tsd, now);

    const inFlightBefore = this.#curWindow;
    let acked = 0;
    let minRtt = Infinity;
    let progress = false;
    if (seqBefore(this.#ackedSeq, h.ack)) {
      for (let s = (this.#ackedSeq + 1) & M;; s = (s + 1) & M) {
        const p = this.#outbuf[s & (OUT_RING - 1)];
        if (p) {
          acked += p.payload;
          if (p.transmissions === 1) minRtt = Math.min(minRtt, now - p.sentAt);
          this.#release(p, s);
        }
        if (s === h.ack) break;
      }
      this.#ackedSeq = h.ack;
      this.#dupAcks = 0;
      this.#numTimeouts = 0;
      progress = true;
    } else if (
      h.ack === this.#ackedSeq && type === PacketType.state && h.wndSize === peerWndBefore &&
      this.#ackedSeq !== ((this.#seqNr - 1) & M)
    ) {
      this.#dupAcks++; // (an ack that only moves the window is a window update, not a duplicate)
    }
    if (h.sackLength > 0) {
      const r = this.#onSack(h.ack, data, h.sackOffset, h.sackLength, now);
      acked += r.acked;
      if (r.minRtt < minRtt) minRtt = r.minRtt;
    }
    if (minRtt !== Infinity) this.#rttSample(minRtt);
    if (acked > 0) {
      this.#stats.bytesAcked += acked;
      this.#cc.onAck(
        acked,
        inFlightBefore,
        this.#cwndLimited,
        minRtt === Infinity ? undefined : minRtt * 1000,
      );
      this.#cwndLimited = false;
    }
    if (this.#ackedSeq === ((this.#seqNr - 1) & M)) this.#timeoutAt = 0;
    else if (progress || this.#timeoutAt === 0) this.#timeoutAt = now + this.#rto;
    if (this.#dupAcks >= 3) {
      const s = (this.#ackedSeq + 1) & M;
      const p = this.#outbuf[s & (OUT_RING - 1)];
      if (p) this.#lost(p, s, now);
    }

    if (type === PacketType.data) this.#onData(h.seq, data, h.payloadOffset, now);
    else if (type === PacketType.fin) this.#onFin(h.seq, now);
    if (this.dead) return;
    this.#flushSend(now);
    if (this.#ackDue > 0 && !this.ackQueued) this.#link.deferAck(this);
    this.#maybeFinish(now);
  }

  /** Applies a selective ack: bit i of the mask acks ack + 2 + i; a hole with 3 acked packets above it is lost. */
  #onSack(
    ack: number,
    data: Uint8Array,
    off: number,
    len: number,
    now: number,
  ): { acked: number; minRtt: number } {
    let acked = 0, minRtt = Infinity;
    const bits = len * 8;
    let last = -1; // highest bit that maps to a packet we sent
    for (let i = 0; i < bits; i++) {
      const s = (ack + 2 + i) & M;
      if (!seqBefore(s, this.#seqNr)) break;
      last = i;
      if ((data[off + (i >> 3)] >> (i & 7)) & 1) {
        const p = this.#outbuf[s & (OUT_RING - 1)];
        if (p && seqBefore(this.#ackedSeq, s)) {
          acked += p.payload;
          if (p.transmissions === 1) minRtt = Math.min(minRtt, now - p.sentAt);
          this.#release(p, s);
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
      const p = this.#outbuf[s & (OUT_RING - 1)];
      if (p && seqBefore(this.#ackedSeq, s) && !p.fastResent && !p.needResend) {
        this.#lost(p, s, now);
        resent++;
      }
    }
    return { acked, minRtt };
  }

  /** A packet is acknowledged: it leaves the send window. */
  #release(p: OutPacket, s: number): void {
    if (p.needResend) this.#resendCount--;
    else this.#curWindow -= p.payload;
    this.#outbuf[s & (OUT_RING - 1)] = undefined;
    if (s === this.#finSeq) {
      this.#finAcked = true;
      this.#closeWrite?.resolve();
      this.#closeWrite = undefined;
    }
  }

  /** Fast retransmit of a packet found lost; the window halves once per window of packets. */
  #lost(p: OutPacket, s: number, now: number): void {
    if (p.fastResent || p.needResend) return;
    p.fastResent = true;
    this.#stats.fastRetransmits++;
    if (seqBefore(this.#lossSeq, s)) {
      this.#cc.onLoss();
      this.#lossSeq = (this.#seqNr - 1) & M;
    }
    this.#transmit(p, now);
    this.#stats.packetsResent++;
  }

  #onData(seq: number, data: Uint8Array, off: number, now: number): void {
    this.#stats.packetsReceived++;
    const n = data.length - off;
    if (this.#gotFin && !seqBefore(seq, this.#eofSeq)) return; // past the end of the stream
    const d = (seq - this.#ackNr - 1) & M;
    if (d >= 0x8000) {
      this.#sendState(now); // a duplicate: our ack was probably lost
      return;
    }
    if (d === 0) {
      if (n > this.#wnd()) return; // the peer overran our window
      this.#deliver(data, off);
      this.#ackNr = seq;
      this.#stats.bytesReceived += n;
      if (this.#inbufCount > 0) this.#drainReorder();
      this.#checkEof(now);
      if (this.#inbufCount > 0 || ++this.#ackDue >= ACK_EVERY) this.#sendState(now);
      return;
    }
    if (d >= IN_RING) return; // too far ahead to keep
    const inbuf = this.#inbuf ??= new Array(IN_RING);
    const slot = seq & (IN_RING - 1);
    if (inbuf[slot] === undefined) {
      if (n > this.#wnd()) return;
      inbuf[slot] = data.slice(off); // the datagram's buffer may be large or reused: keep only the payload
      this.#inbufBytes += n;
      this.#inbufCount++;
      if (this.#inbufCount === 1 || seqBefore(this.#oooHigh, seq)) this.#oooHigh = seq;
    }
    this.#sendState(now); // with a selective ack
  }

  #drainReorder(): void {
    const inbuf = this.#inbuf!;
    for (;;) {
      const next = (this.#ackNr + 1) & M;
      const slot = next & (IN_RING - 1);
      const p = inbuf[slot];
      if (p === undefined) break;
      inbuf[slot] = undefined;
      this.#inbufBytes -= p.length;
      this.#inbufCount--;
      this.#ackNr = next;
      this.#deliver(p, 0);
      this.#stats.bytesReceived += p.length;
    }
  }

  #onFin(seq: number, now: number): void {
    if (this.#gotFin) {
      if (seq === this.#eofSeq) this.#sendState(now);
      return;
    }
    if (!seqBefore(this.#ackNr, seq)) return; // a FIN inside what we already received
    this.#gotFin = true;
    this.#eofSeq = seq;
    this.#checkEof(now);
    if (!this.#eof) this.#sendState(now);
  }

  /** Everything up to the FIN has arrived: the FIN takes its sequence number and the readable ends. */
  #checkEof(now: number): void {
    if (!this.#gotFin || this.#eof || this.#ackNr !== ((this.#eofSeq - 1) & M)) return;
    this.#ackNr = this.#eofSeq;
    this.#eof = true;
    if (this.#rlen === 0) this.#endReadable();
    this.#sendState(now);
    this.#maybeFinish(now);
  }

  // ------------------------------------------------------------------ the readable

  /** Hands payload to the reader: straight into a waiting BYOB buffer, else into the ring. */
  #deliver(data: Uint8Array, off: number): void {
    if (this.#readDead) return;
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
    const ring = this.#ring ??= new Uint8Array(this.#cfg.recvWindow);
    const cap = ring.length;
    const tail = (this.#rhead + this.#rlen) % cap;
    const first = Math.min(n, cap - tail);
    ring.set(data.subarray(off, off + first), tail);
    if (first < n) ring.set(data.subarray(off + first, off + n), 0);
    this.#rlen += n;
  }

  #pull(c: ReadableByteStreamController): void {
    const req = c.byobRequest;
    if (!req) return;
    if (this.#rlen === 0) {
      if (this.#eof) this.#endReadable();
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
    if (this.#rlen === 0 && this.#eof) this.#endReadable();
    // the window opened by a quarter of the buffer since we last said: tell the sender
    if (
      this.#state === State.connected && this.#wnd() - this.#advertised >= this.#cfg.recvWindow / 4
    ) {
      this.#sendState(this.#link.now());
    }
  }

  #endReadable(): void {
    if (!this.#readOpen) return;
    this.#readOpen = false;
    try {
      this.#rc.close();
      this.#rc.byobRequest?.respond(0);
    } catch { /* already closed */ }
  }

  #cancelRead(): void {
    this.#readOpen = false;
    this.#readDead = true;
    this.#rlen = 0;
    this.#ring = undefined;
  }

  // ------------------------------------------------------------------ the writable

  #write(chunk: Uint8Array): Promise<void> | void {
    if (this.#error) throw this.#error;
    if (this.#writeClosed) throw new UtpError("closed", "connection closed");
    if (chunk.length === 0) return;
    this.#pending = chunk;
    this.#pendingOff = 0;
    this.#flushSend(this.#link.now());
    if (this.#pending === undefined) return;
    this.#pendingWrite = Promise.withResolvers<void>();
    return this.#pendingWrite.promise;
  }

  #endWrite(): Promise<void> {
    if (this.#error) return Promise.reject(this.#error);
    this.#writeOpen = false;
    this.#writeClosed = true;
    this.#closeWrite = Promise.withResolvers<void>();
    const done = this.#closeWrite.promise;
    this.#flushSend(this.#link.now());
    return done;
  }

  #abortWrite(): void {
    this.#writeOpen = false;
    this.#writeClosed = true;
    this.#pending = undefined;
    this.#pendingWrite = undefined;
    if (this.#state === State.connected) this.#flushSend(this.#link.now());
  }

  /** Sends what the windows allow: retransmissions first, then new packets, then the FIN. */
  #flushSend(now: number): void {
    if (this.#state !== State.connected) return;
    if (this.#resendCount > 0) {
      for (let s = (this.#ackedSeq + 1) & M; s !== this.#seqNr; s = (s + 1) & M) {
        const p = this.#outbuf[s & (OUT_RING - 1)];
        if (!p || !p.needResend) continue;
        if (!this.#canSend(p.payload)) return;
        p.needResend = false;
        this.#resendCount--;
        this.#curWindow += p.payload;
        this.#transmit(p, now);
        this.#stats.packetsResent++;
        if (this.#resendCount === 0) break;
      }
    }
    const mss = this.#cfg.mss;
    for (;;) {
      const fillLen = this.#fill ? this.#fill.payload : 0;
      const pending = this.#pending;
      const avail = fillLen + (pending ? pending.length - this.#pendingOff : 0);
      if (avail === 0) break;
      const size = Math.min(mss, avail);
      const idle = this.#ackedSeq === ((this.#seqNr - 1) & M);
      if (size < mss && !idle && !this.#writeClosed) {
        this.#stage(); // Nagle: wait for the acks before sending a partial packet
        break;
      }
      if (!this.#canSend(size)) break;
      if (((this.#seqNr - this.#ackedSeq) & M) >= OUT_RING) break; // the send ring is full
      const p = this.#fill ?? new OutPacket(new Uint8Array(UTP_HEADER_SIZE + mss));
      this.#fill = undefined;
      this.#take(p, size);
      const seq = this.#seqNr;
      this.#seqNr = (seq + 1) & M;
      writeUtpHeader(p.buf, PacketType.data, 0, this.sendId, 0, 0, 0, seq, 0);
      this.#outbuf[seq & (OUT_RING - 1)] = p;
      this.#curWindow += p.payload;
      if (this.#timeoutAt === 0) this.#timeoutAt = now + this.#rto;
      this.#transmit(p, now);
    }
    if (this.#pending === undefined && this.#pendingWrite) {
      const w = this.#pendingWrite;
      this.#pendingWrite = undefined;
      w.resolve();
    }
    if (this.#writeClosed && this.#finSeq < 0 && !this.#pending && !this.#fill) this.#sendFin(now);
  }

  /** True when a packet of `size` payload bytes fits the congestion and receive windows. */
  #canSend(size: number): boolean {
    const cwnd = this.#cc.window, peer = this.#peerWnd;
    if (this.#curWindow + size <= Math.min(cwnd, peer)) return true;
    // one packet may exceed a congestion window smaller than a packet (BEP 29), never the peer's window
    if (this.#curWindow === 0 && size <= peer) return true;
    if (this.#curWindow + size > cwnd) this.#cwndLimited = true;
    return false;
  }

  /** Moves `size` payload bytes into packet `p` from the staged partial packet and the pending write. */
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

  /** Copies the rest of the pending write into the partial packet, so the write can resolve. */
  #stage(): void {
    if (!this.#pending) return;
    const p = this.#fill ??= new OutPacket(new Uint8Array(UTP_HEADER_SIZE + this.#cfg.mss));
    this.#take(p, p.payload + (this.#pending.length - this.#pendingOff));
  }

  #sendFin(now: number): void {
    const p = new OutPacket(new Uint8Array(UTP_HEADER_SIZE));
    const seq = this.#seqNr;
    this.#seqNr = (seq + 1) & M;
    this.#finSeq = seq;
    writeUtpHeader(p.buf, PacketType.fin, 0, this.sendId, 0, 0, 0, seq, 0);
    this.#outbuf[seq & (OUT_RING - 1)] = p;
    if (this.#timeoutAt === 0) this.#timeoutAt = now + this.#rto;
    this.#transmit(p, now);
  }

  /** Sends (or re-sends) a packet with fresh timestamp, ack and window fields. */
  #transmit(p: OutPacket, now: number): void {
    const wnd = this.#wnd();
    refreshUtpHeader(p.buf, micros(now), this.#replyMicro, wnd, this.#ackNr);
    this.#advertised = wnd;
    p.transmissions++;
    p.sentAt = now;
    this.#lastSent = this.#lastDataSent = now;
    this.#ackDue = 0;
    this.#stats.packetsSent++;
    this.#link.send(this, p.len === p.buf.length ? p.buf : p.buf.subarray(0, p.len));
  }

  /** Sends an ST_STATE (an ack), with a selective ack when packets wait out of order. */
  #sendState(now: number): void {
    let sack = 0;
    if (this.#inbufCount > 0) {
      // bit i acks ack_nr + 2 + i: the highest packet held needs (high - ack_nr - 1) bits
      const bits = (this.#oooHigh - this.#ackNr - 1) & M;
      sack = Math.min(MAX_SACK, ((bits + 31) >> 5) * 4);
    }
    const buf = new Uint8Array(UTP_HEADER_SIZE + (sack ? 2 + sack : 0));
    const wnd = this.#wnd();
    writeUtpHeader(
      buf,
      PacketType.state,
      sack ? EXTENSION_SACK : 0,
      this.sendId,
      micros(now),
      this.#replyMicro,
      wnd,
      this.#seqNr,
      this.#ackNr,
    );
    if (sack) {
      buf[21] = sack;
      const inbuf = this.#inbuf!;
      for (let i = 0; i < sack * 8; i++) {
        if (inbuf[(this.#ackNr + 2 + i) & (IN_RING - 1)] !== undefined) {
          buf[22 + (i >> 3)] |= 1 << (i & 7);
        }
      }
    }
    this.#advertised = wnd;
    this.#ackDue = 0;
    this.#lastSent = now;
    this.#stats.acksSent++;
    this.#link.send(this, buf);
  }

  /** Sends the ack deferred to the end of the turn, if still due. */
  flushAck(): void {
    this.ackQueued = false;
    if (this.#ackDue > 0 && this.#state === State.connected) this.#sendState(this.#link.now());
  }

  /** Bytes we can still take: the advertised window. */
  #wnd(): number {
    if (this.#readDead) return this.#cfg.recvWindow - this.#inbufBytes;
    return Math.max(0, this.#cfg.recvWindow - this.#rlen - this.#inbufBytes);
  }

  #rttSample(ms: number): void {
    if (this.#rtt === 0) {
      this.#rtt = ms;
      this.#rttVar = ms / 2;
    } else {
      const delta = this.#rtt - ms;
      this.#rttVar += (Math.abs(delta) - this.#rttVar) / 4;
      this.#rtt += (ms - this.#rtt) / 8;
    }
    this.#rto = Math.min(MAX_RTO, Math.max(MIN_RTO, this.#rtt + 4 * this.#rttVar));
  }

  // ------------------------------------------------------------------ timers

  /**
   * Runs the timers: SYN retransmission, the retransmission timeout, zero-window probes, keep-alives, the idle
   * timeout and the linger after a close.
   *
   * @param now The link clock, ms.
   */
  tick(now: number): void {
    const st = this.#state;
    if (st === State.dead) return;
    if (st === State.timeWait) {
      if (now >= this.#timeWaitUntil) {
        this.#state = State.dead;
        this.#link.gone(this);
      }
      return;
    }
    if (st === State.synSent) {
      if (now >= this.connectDeadline) {
        this.#fail(new UtpError("timeout", `no answer from ${this.host}:${this.port} over uTP`));
      } else if (now >= this.#timeoutAt) this.#sendSyn(now);
      return;
    }
    if (st === State.synRecv) {
      if (now >= this.connectDeadline) this.#fail(new UtpError("timeout", "not confirmed"));
      return;
    }
    if (this.#timeoutAt !== 0 && now >= this.#timeoutAt) {
      this.#onTimeout(now);
      if (this.dead) return;
    }
    if (this.#lingerUntil !== 0 && now >= this.#lingerUntil) return this.#finish(now);
    if (now - this.#lastReceived >= this.#cfg.idleTimeoutMs) {
      this.#fail(new UtpError("timeout", `nothing from ${this.host}:${this.port} for too long`));
      return;
    }
    const idle = this.#ackedSeq === ((this.#seqNr - 1) & M);
    if (idle && (this.#pending || this.#fill) && now - this.#lastDataSent >= this.#rto) {
      // the peer's window stays shut: probe it with one packet (its ack reopens it, or says it is still 0)
      this.#peerWnd = Math.max(this.#peerWnd, this.#cfg.mss);
      this.#flushSend(now);
    }
    if (this.#ackDue > 0 || now - this.#lastSent >= this.#cfg.keepAliveMs) this.#sendState(now);
  }

  #onTimeout(now: number): void {
    if (++this.#numTimeouts > this.#cfg.maxRetransmits) {
      this.#fail(new UtpError("timeout", `${this.host}:${this.port} stopped acknowledging`));
      return;
    }
    this.#stats.timeouts++;
    this.#cc.onTimeout();
    this.#lossSeq = (this.#seqNr - 1) & M;
    for (let s = (this.#ackedSeq + 1) & M; s !== this.#seqNr; s = (s + 1) & M) {
      const p = this.#outbuf[s & (OUT_RING - 1)];
      if (!p || p.needResend) continue;
      p.needResend = true;
      this.#curWindow -= p.payload;
      this.#resendCount++;
    }
    this.#rto = Math.min(MAX_RTO, this.#rto * 2);
    this.#timeoutAt = now + this.#rto;
    this.#flushSend(now);
  }

  // ------------------------------------------------------------------ closing

  /** Closes both directions gracefully. */
  close(): void {
    if (this.#state === State.dead || this.#appClosed) return;
    this.#appClosed = true;
    if (this.#readOpen) {
      this.#readOpen = false;
      try {
        this.#rc.close();
        this.#rc.byobRequest?.respond(0);
      } catch { /* already closed */ }
    }
    this.#cancelRead();
    if (this.#writeOpen) {
      this.#writeOpen = false;
      try {
        this.#wc.error(new UtpError("closed", "connection closed"));
      } catch { /* already closed */ }
    }
    this.#pendingWrite?.reject(new UtpError("closed", "connection closed"));
    this.#pendingWrite = undefined;
    this.#pending = undefined;
    this.#writeClosed = true;
    if (this.#state !== State.connected) {
      this.reset();
      return;
    }
    const now = this.#link.now();
    this.#flushSend(now);
    this.#maybeFinish(now);
  }

  /**
   * Ends the connection at once with an ST_RESET.
   *
   * @param err What the streams and a pending connect fail with. @default {UtpError "closed"}
   */
  reset(err?: UtpError): void {
    if (this.#state === State.dead) return;
    if (this.#state === State.timeWait) return this.#fail(err ?? new UtpError("closed", "reset"));
    const buf = new Uint8Array(UTP_HEADER_SIZE);
    const now = this.#link.now();
    writeUtpHeader(
      buf,
      PacketType.reset,
      0,
      this.sendId,
      micros(now),
      this.#replyMicro,
      0,
      this.#seqNr,
      this.#ackNr,
    );
    this.#link.send(this, buf);
    this.#fail(err ?? new UtpError("closed", "connection reset locally"));
  }

  /**
   * Fails the connection with `err` (the endpoint closing, an abort).
   *
   * @param err The error both streams and a pending connect reject with.
   */
  abort(err: UtpError): void {
    this.#fail(err);
  }

  /** Same as {@linkcode UtpSocket.close}, then waits until the connection is gone. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.closed;
  }

  #maybeFinish(now: number): void {
    if (this.#state !== State.connected || !this.#finAcked) return;
    if (this.#eof) return this.#finish(now);
    if (this.#appClosed && this.#lingerUntil === 0) this.#lingerUntil = now + this.#cfg.lingerMs;
  }

  /** Both FINs are through (or the linger ran out): the streams end without error; time-wait begins. */
  #finish(now: number): void {
    if (this.#state >= State.timeWait) return;
    if (this.#ackDue > 0) this.#sendState(now);
    this.#state = State.timeWait;
    this.#timeWaitUntil = now + Math.min(10_000, Math.max(1000, 2 * this.#rto));
    if (this.#rlen === 0) this.#endReadable(); // else once the reader has drained the ring
    if (this.#writeOpen) {
      this.#writeOpen = false;
      try {
        this.#wc.error(new UtpError("closed", "connection closed"));
      } catch { /* closed */ }
    }
    this.#releaseBuffers(false);
    this.#closedP.resolve();
  }

  #fail(err: UtpError): void {
    if (this.#state === State.dead) return;
    if (this.#state === State.timeWait) {
      this.#state = State.dead;
      this.#link.gone(this);
      return;
    }
    this.#state = State.dead;
    this.#error = err;
    if (this.#readOpen) {
      this.#readOpen = false;
      try {
        this.#rc.error(err);
      } catch { /* closed */ }
    }
    if (this.#writeOpen) {
      this.#writeOpen = false;
      try {
        this.#wc.error(err);
      } catch { /* closed */ }
    }
    this.#pendingWrite?.reject(err);
    this.#pendingWrite = undefined;
    this.#closeWrite?.reject(err);
    this.#closeWrite = undefined;
    this.onConnect?.(err);
    this.onConnect = undefined;
    this.#teardown();
  }

  #teardown(): void {
    this.#releaseBuffers(true);
    this.#link.gone(this);
    this.#closedP.resolve();
  }

  #releaseBuffers(ring: boolean): void {
    this.#outbuf = [];
    this.#inbuf = undefined;
    this.#inbufCount = this.#inbufBytes = 0;
    if (ring) {
      this.#ring = undefined;
      this.#rlen = 0;
    }
    this.#fill = undefined;
    this.#pending = undefined;
  }
}

/** Our clock in microseconds mod 2^32, never 0 (0 means "no timestamp"). */
function micros(ms: number): number {
  return (ms * 1000) >>> 0 || 1;
}
