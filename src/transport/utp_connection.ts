/**
 * One uTP connection (BEP 29) as a byte stream: {@linkcode UtpConnection} is what callers see (a
 * {@linkcode PeerStream} like a TCP connection); `UtpSocket` is the state machine behind it — connection setup,
 * acks, keep-alives, timeouts, FIN, RESET and time-wait — over a sending half (`_utp_send.ts`: packets, windows,
 * retransmission, LEDBAT) and a receiving half (`_utp_receive.ts`: reordering, selective acks, the readable). The
 * `UtpEndpoint` (utp.ts) owns the UDP socket, routes datagrams by connection id and runs one timer for all
 * connections.
 *
 * @module
 */

import { Rx, UtpReceiver } from "./_utp_receive.ts";
import { INITIAL_RTO, type OutPacket, SEND_SLOTS, UtpSender } from "./_utp_send.ts";
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
/** In-order data packets received before an ack goes out at once (else it is deferred to the end of the turn). */
const ACK_EVERY = 4;
/**
 * How long (ms) a connection whose FINs are both through stays to ack the peer's FIN again. It must outlast the
 * peer's retransmission timeout, which has often backed off (seconds) by the end of a lossy connection and which
 * we do not know: with the time-wait sized from our own timeout (1–2 s), an ack of the peer's FIN that was lost
 * left the peer resending its FIN to nobody, and its close never completed.
 */
const TIME_WAIT_MS = 10_000;

/** Connection states; `timeWait` re-acks the peer's last packets for a while after both FINs are through. */
const State = { synSent: 1, synRecv: 2, connected: 3, timeWait: 4, dead: 5 } as const;
type State = typeof State[keyof typeof State];

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
  readonly #tx: UtpSender;
  readonly #rx: UtpReceiver;
  #state: State = State.synSent as State;
  readonly #closedP = Promise.withResolvers<void>();
  #synSeq = 0;
  #synSentAt = 0;
  #synTransmissions = 0;
  #synTimeoutAt = 0;
  #replyMicro = 0;
  #lastSent = 0;
  #lastReceived = 0;
  #advertised = 0;
  #ackDue = 0;
  #wc!: WritableStreamDefaultController;
  #writeOpen = true;
  #appClosed = false;
  #lingerUntil = 0;
  #timeWaitUntil = 0;
  #error: UtpError | undefined;
  readonly #stats = { packetsReceived: 0, acksSent: 0 };

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
    this.#lastReceived = this.#lastSent = link.now();
    this.#tx = new UtpSender(
      config.mss,
      config.targetDelayUs,
      sendId,
      (p, now) => this.#transmit(p, now),
    );
    this.#rx = new UtpReceiver(config.recvWindow, () => this.#onRead());
    this.readable = this.#rx.readable;
    this.writable = new WritableStream<Uint8Array>({
      start: (c) => {
        this.#wc = c;
      },
      write: (chunk) => {
        if (this.#error) throw this.#error;
        if (this.#tx.writeClosed) throw new UtpError("closed", "connection closed");
        return this.#tx.write(chunk, link.now(), this.#state === State.connected);
      },
      close: () => {
        if (this.#error) return Promise.reject(this.#error);
        this.#writeOpen = false;
        return this.#tx.end(link.now(), this.#state === State.connected);
      },
      abort: () => {
        this.#writeOpen = false;
        this.#tx.abort();
        if (this.#state === State.connected) this.#tx.flush(link.now());
      },
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
    const tx = this.#tx;
    return {
      rttMs: tx.rtt,
      rtoMs: tx.rto,
      window: tx.cc.window,
      peerWindow: tx.peerWnd,
      bytesInFlight: tx.curWindow,
      queuingDelayUs: tx.cc.queuingDelay,
      bytesReceived: this.#rx.bytesReceived,
      ...tx.stats,
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
    this.#state = State.synSent;
    this.#synSeq = seq & M;
    this.#tx.start(seq + 1); // the SYN takes `seq`; it is acked separately
    this.connectDeadline = deadline;
    this.#sendSyn(this.#link.now());
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
    this.#rx.ackNr = h.seq;
    this.#tx.start(seq);
    this.#tx.peerWnd = h.wndSize;
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
      this.#rx.window,
      this.#synSeq,
      0,
    );
    this.#synTransmissions++;
    this.#synSentAt = now;
    this.#lastSent = now;
    this.#synTimeoutAt = now + INITIAL_RTO * 2 ** (this.#synTransmissions - 1);
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
    const tx = this.#tx;
    if (this.#state === State.timeWait) {
      // our last ack was lost: the peer resends its FIN (or data before it)
      if (type === PacketType.data || type === PacketType.fin) this.#sendState(now);
      return;
    }
    if (type === PacketType.reset) {
      // an ST_RESET is honoured only if its ack could be an ack of ours (a blind one needs to guess it too)
      if (((tx.seqNr - 1 - h.ack) & M) < SEND_SLOTS + 8 || this.#state === State.synSent) {
        this.#fail(new UtpError("reset", `connection reset by ${this.host}:${this.port}`));
      }
      return;
    }
    if (this.#state === State.synSent) {
      if (type === PacketType.syn || h.ack !== this.#synSeq) return;
      // the SYN is acked: ST_STATE carries the peer's next sequence number, ST_DATA its first packet
      this.#state = State.connected;
      this.#rx.ackNr = (h.seq - 1) & M;
      if (this.#synTransmissions === 1) tx.rttSample(now - this.#synSentAt);
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
      if (h.ack !== tx.ackedSeq) return;
      this.#state = State.connected;
      this.#link.confirmed(this);
      if (this.dead) return;
    } else if (type === PacketType.syn) {
      return;
    }
    // an ack of something we never sent, or data far beyond the reorder window: a forged or corrupt
    // packet, ignored whole (as libtorrent does)
    if (seqBefore((tx.seqNr - 1) & M, h.ack)) return;
    if ((type === PacketType.data || type === PacketType.fin) && this.#rx.tooFar(h.seq)) return;
    this.#lastReceived = now;
    if (h.timestamp !== 0) this.#replyMicro = (micros(now) - h.timestamp) >>> 0;
    tx.onAck(h, data, now);
    if (type === PacketType.data) this.#onData(h.seq, data, h.payloadOffset, now);
    else if (type === PacketType.fin) this.#onFin(h.seq, now);
    if (this.dead) return;
    if (!this.#error) tx.flush(now);
    if (this.#ackDue > 0 && !this.ackQueued) this.#link.deferAck(this);
    this.#maybeFinish(now);
  }

  #onData(seq: number, data: Uint8Array, off: number, now: number): void {
    this.#stats.packetsReceived++;
    const r = this.#rx.data(seq, data, off);
    if (r === Rx.inOrder) {
      if (this.#rx.eof) this.#onEof(now);
      else if (this.#rx.reordering || ++this.#ackDue >= ACK_EVERY) this.#sendState(now);
    } else if (r !== Rx.dropped) this.#sendState(now); // a selective ack, or a repeated ack the peer missed
  }

  #onFin(seq: number, now: number): void {
    const r = this.#rx.fin(seq);
    if (r === Rx.inOrder) this.#onEof(now);
    else if (r !== Rx.dropped) this.#sendState(now);
  }

  /** Everything up to the peer's FIN arrived: ack it at once. */
  #onEof(now: number): void {
    this.#sendState(now);
    this.#maybeFinish(now);
  }

  /** The reader took bytes: if the window opened by a quarter since we last said, tell the sender. */
  #onRead(): void {
    if (
      this.#state === State.connected &&
      this.#rx.window - this.#advertised >= this.#cfg.recvWindow / 4
    ) {
      this.#sendState(this.#link.now());
    }
  }

  // ------------------------------------------------------------------ outgoing packets

  /** Sends (or re-sends) a data or FIN packet with fresh timestamp, ack and window fields. */
  #transmit(p: OutPacket, now: number): void {
    const wnd = this.#rx.window;
    refreshUtpHeader(p.buf, micros(now), this.#replyMicro, wnd, this.#rx.ackNr);
    this.#advertised = wnd;
    this.#lastSent = now;
    this.#ackDue = 0; // the ack rides along
    this.#link.send(this, p.len === p.buf.length ? p.buf : p.buf.subarray(0, p.len));
  }

  /** Sends an ST_STATE (an ack), with a selective ack when packets wait out of order. */
  #sendState(now: number): void {
    const rx = this.#rx;
    const sack = rx.sackBytes();
    const buf = new Uint8Array(UTP_HEADER_SIZE + (sack ? 2 + sack : 0));
    const wnd = rx.window;
    writeUtpHeader(
      buf,
      PacketType.state,
      sack ? EXTENSION_SACK : 0,
      this.sendId,
      micros(now),
      this.#replyMicro,
      wnd,
      this.#tx.seqNr,
      rx.ackNr,
    );
    if (sack) {
      buf[21] = sack;
      rx.writeSack(buf, 22, sack);
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

  // ------------------------------------------------------------------ timers

  /**
   * Runs the timers: SYN retransmission, the retransmission timeout, zero-window probes, keep-alives, the idle
   * timeout, the linger after a close and time-wait.
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
      } else if (now >= this.#synTimeoutAt) this.#sendSyn(now);
      return;
    }
    if (st === State.synRecv) {
      if (now >= this.connectDeadline) this.#fail(new UtpError("timeout", "not confirmed"));
      return;
    }
    const tx = this.#tx;
    if (tx.timeoutAt !== 0 && now >= tx.timeoutAt && !tx.onTimeout(now, this.#cfg.maxRetransmits)) {
      this.#fail(new UtpError("timeout", `${this.host}:${this.port} stopped acknowledging`));
      return;
    }
    if (this.#lingerUntil !== 0 && now >= this.#lingerUntil) return this.#finish(now);
    if (now - this.#lastReceived >= this.#cfg.idleTimeoutMs) {
      this.#fail(new UtpError("timeout", `nothing from ${this.host}:${this.port} for too long`));
      return;
    }
    tx.probe(now);
    if (this.#ackDue > 0 || now - this.#lastSent >= this.#cfg.keepAliveMs) this.#sendState(now);
  }

  // ------------------------------------------------------------------ closing

  /** Closes both directions gracefully. */
  close(): void {
    if (this.#state === State.dead || this.#appClosed) return;
    this.#appClosed = true;
    this.#rx.close();
    const err = new UtpError("closed", "connection closed");
    if (this.#writeOpen) {
      this.#writeOpen = false;
      try {
        this.#wc.error(err);
      } catch { /* already closed */ }
    }
    this.#tx.abort(err);
    if (this.#state !== State.connected) return this.reset();
    const now = this.#link.now();
    this.#tx.flush(now);
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
      this.#tx.seqNr,
      this.#rx.ackNr,
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
    if (this.#state !== State.connected || !this.#tx.finAcked) return;
    if (this.#rx.eof) return this.#finish(now);
    if (this.#appClosed && this.#lingerUntil === 0) this.#lingerUntil = now + this.#cfg.lingerMs;
  }

  /** Both FINs are through (or the linger ran out): the streams end without error; time-wait begins. */
  #finish(now: number): void {
    if (this.#state >= State.timeWait) return;
    if (this.#ackDue > 0) this.#sendState(now);
    this.#state = State.timeWait;
    this.#timeWaitUntil = now + Math.max(TIME_WAIT_MS, 2 * this.#tx.rto);
    if (this.#writeOpen) {
      this.#writeOpen = false;
      try {
        this.#wc.error(new UtpError("closed", "connection closed"));
      } catch { /* closed */ }
    }
    this.#tx.release();
    this.#rx.release(true); // bytes not yet read stay readable
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
    this.#rx.error(err);
    if (this.#writeOpen) {
      this.#writeOpen = false;
      try {
        this.#wc.error(err);
      } catch { /* closed */ }
    }
    this.#tx.fail(err);
    this.onConnect?.(err);
    this.onConnect = undefined;
    this.#link.gone(this);
    this.#closedP.resolve();
  }
}

/** Our clock in microseconds mod 2^32, never 0 (0 means "no timestamp"). */
function micros(ms: number): number {
  return (ms * 1000) >>> 0 || 1;
}
