/**
 * uTP (BEP 29): BitTorrent's reliable byte streams over UDP with LEDBAT congestion control. A
 * {@linkcode UtpEndpoint} owns one UDP socket (or a view of one shared with the DHT and UDP trackers, see
 * {@linkcode UdpMux}), routes datagrams to connections by address and connection id, accepts incoming
 * connections and dials out; each connection is a {@linkcode UtpConnection}, a byte stream that runs MSE, the
 * handshake and the wire protocol exactly like a TCP connection.
 *
 * One timer per endpoint drives retransmissions, keep-alives and timeouts of every connection. Everything is
 * bounded: connections, half-open incoming connections (a SYN flood fills only that), each connection's reorder
 * buffer (by its advertised window) and send ring. Malformed datagrams are dropped silently.
 *
 * Packet size: uTP cannot repackage data on retransmission, so packets are sized once, conservatively, to pass
 * any path without fragmentation: 1400-byte IP packets over IPv4 (1352 payload bytes after the IP, UDP and uTP
 * headers) and IPv6's guaranteed 1280-byte minimum MTU over IPv6 (1212 payload bytes). There is no path MTU
 * discovery.
 *
 * @example Two endpoints on loopback
 * ```ts
 * import { UtpEndpoint } from "./utp.ts";
 *
 * const accepted = Promise.withResolvers<ReadableStream<Uint8Array>>();
 * await using server = await UtpEndpoint.open({
 *   host: "127.0.0.1",
 *   onConnection: (conn) => accepted.resolve(conn.readable),
 * });
 * await using client = await UtpEndpoint.open({ host: "127.0.0.1" });
 * const conn = await client.connect("127.0.0.1", server.port);
 * const writer = conn.writable.getWriter();
 * await writer.write(new TextEncoder().encode("hello"));
 * await writer.close(); // resolves once the FIN is acknowledged
 * const text = await new Response(await accepted.promise).text();
 * if (text !== "hello") throw new Error(text);
 * ```
 *
 * @module
 */

import { openUdpSocket, type UdpSocket } from "../udp.ts";
import { emptyHeader, PacketType, parseUtpPacket, UTP_HEADER_SIZE } from "./utp_packet.ts";
import {
  type UtpConnection,
  UtpError,
  type UtpLink,
  UtpSocket,
  type UtpSocketConfig,
} from "./utp_connection.ts";

export {
  type UtpConnection,
  UtpError,
  type UtpErrorCode,
  type UtpStats,
} from "./utp_connection.ts";

/** Options for {@linkcode UtpEndpoint}. */
export interface UtpEndpointOptions {
  /** The UDP socket (or a {@linkcode UdpMux} view of it); closed with the endpoint. */
  socket: UdpSocket;
  /** Receives each incoming connection once the initiator confirmed it; without it, SYNs are ignored. */
  onConnection?: (conn: UtpConnection) => void;
  /** Most connections, in and out. @default {1024} */
  maxConnections?: number;
  /** Most incoming connections not yet confirmed (SYN flood bound). @default {64} */
  maxHalfOpen?: number;
  /** Milliseconds a connect waits for the answer to its SYN (resent after 1 s, 2 s, …). @default {5000} */
  connectTimeoutMs?: number;
  /** Receive buffer per connection: the most bytes advertised and held out of order. @default {1048576} */
  receiveWindow?: number;
  /** UDP payload bytes per packet. @default {1372 over IPv4, 1232 over IPv6} */
  packetSize?: number;
  /** A keep-alive goes out after this long without sending. @default {29000} */
  keepAliveMs?: number;
  /** A connection fails after this long without hearing from the peer. @default {300000} */
  idleTimeoutMs?: number;
  /** Consecutive retransmission timeouts before a connection fails (0.5 s, 1 s, 2 s, … apart). @default {6} */
  maxRetransmits?: number;
  /** LEDBAT target queuing delay, milliseconds. @default {100} */
  targetDelayMs?: number;
  /** How long a closed connection waits for the peer's FIN after ours was acknowledged. @default {5000} */
  lingerMs?: number;
  /** Interval of the one timer, milliseconds. @default {50} */
  tickMs?: number;
  /** Monotonic clock in milliseconds. @default {performance.now} */
  clock?: () => number;
  /** Source of 16-bit random numbers (connection ids, initial sequence numbers). @default {crypto} */
  random?: () => number;
}

/** Options for {@linkcode UtpEndpoint.open}: the endpoint's options plus where to bind. */
export interface UtpOpenOptions extends Omit<UtpEndpointOptions, "socket"> {
  /** Local address. @default {"127.0.0.1" for family 4, "::1" for family 6} */
  host?: string;
  /** Local port; 0 = any free port. @default {0} */
  port?: number;
  /** Address family. @default {4} */
  family?: 4 | 6;
}

/** Options for {@linkcode UtpEndpoint.connect}. */
export interface UtpConnectOptions {
  /** Aborts the attempt (the connection is reset). */
  signal?: AbortSignal;
  /** Milliseconds to wait for the answer. @default {the endpoint's connectTimeoutMs} */
  timeoutMs?: number;
}

/** Counters of an endpoint. */
export interface UtpEndpointStats {
  /** Live connections. */
  connections: number;
  /** Incoming connections not yet confirmed. */
  halfOpen: number;
  /** Incoming connections confirmed and handed to `onConnection`. */
  accepted: number;
  /** SYNs dropped because a limit was reached. */
  refused: number;
  /** Datagrams that were not well-formed uTP. */
  malformed: number;
  /** Well-formed packets for no known connection. */
  unknown: number;
}

const M = 0xffff;
const IPV4_PACKET = 1400 - 20 - 8;
const IPV6_PACKET = 1280 - 40 - 8;

/** A uTP endpoint on one UDP socket. */
export class UtpEndpoint implements AsyncDisposable {
  readonly #socket: UdpSocket;
  readonly #onConnection: ((conn: UtpConnection) => void) | undefined;
  readonly #o: UtpEndpointOptions;
  readonly #clock: () => number;
  readonly #random: () => number;
  readonly #cfg4: UtpSocketConfig;
  readonly #cfg6: UtpSocketConfig;
  readonly #link: UtpLink;
  readonly #table = new Map<number, UtpSocket>();
  readonly #all = new Set<UtpSocket>();
  readonly #halfOpen = new Set<UtpSocket>();
  readonly #h = emptyHeader();
  readonly #unlisten: () => void;
  #last: UtpSocket | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #acks: UtpSocket[] = [];
  #ackTimer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  #closing: Promise<void>[] | undefined;
  readonly #stats = { accepted: 0, refused: 0, malformed: 0, unknown: 0 };

  /**
   * Opens a UDP socket and an endpoint on it.
   *
   * @param options Where to bind, and the endpoint's options.
   * @returns The endpoint.
   */
  static async open(options: UtpOpenOptions = {}): Promise<UtpEndpoint> {
    const family = options.family ?? 4;
    const socket = await openUdpSocket({
      family,
      host: options.host ?? (family === 6 ? "::1" : "127.0.0.1"),
      port: options.port ?? 0,
    });
    return new UtpEndpoint({ ...options, socket });
  }

  /**
   * Creates a {@linkcode UtpEndpoint} on a bound socket and starts listening.
   *
   * @param options The socket and limits.
   */
  constructor(options: UtpEndpointOptions) {
    this.#o = options;
    this.#socket = options.socket;
    this.#onConnection = options.onConnection;
    this.#clock = options.clock ?? (() => performance.now());
    this.#random = options.random ?? randomU16;
    const config = (packet: number): UtpSocketConfig => ({
      mss: Math.max(150, packet - UTP_HEADER_SIZE),
      recvWindow: Math.max(65536, options.receiveWindow ?? 1024 * 1024),
      keepAliveMs: options.keepAliveMs ?? 29_000,
      idleTimeoutMs: options.idleTimeoutMs ?? 300_000,
      maxRetransmits: options.maxRetransmits ?? 6,
      targetDelayUs: (options.targetDelayMs ?? 100) * 1000,
      lingerMs: options.lingerMs ?? 5000,
    });
    this.#cfg4 = config(options.packetSize ?? IPV4_PACKET);
    this.#cfg6 = config(options.packetSize ?? IPV6_PACKET);
    this.#link = {
      localPort: this.#socket.port,
      now: this.#clock,
      send: (sock, datagram) => this.#send(sock, datagram),
      deferAck: (sock) => this.#deferAck(sock),
      confirmed: (sock) => this.#confirmed(sock),
      gone: (sock) => this.#gone(sock),
    };
    this.#unlisten = this.#socket.onMessage((d) => this.#onDatagram(d.data, d.host, d.port));
  }

  /** The UDP port. */
  get port(): number {
    return this.#socket.port;
  }

  /** Live connections (in and out, half-open included). */
  get connectionCount(): number {
    return this.#all.size;
  }

  /** Counters. */
  stats(): UtpEndpointStats {
    return { connections: this.#all.size, halfOpen: this.#halfOpen.size, ...this.#stats };
  }

  /**
   * Opens a connection to `host:port`.
   *
   * @param host The peer's IP address (a literal: uTP does no name lookups).
   * @param port The peer's UDP port.
   * @param options Abort signal and timeout.
   * @returns The connection, once the peer answered the SYN.
   * @throws {UtpError} `timeout` when nobody answers, `reset` when refused, `limit` at `maxConnections`,
   *   `closed` when the endpoint closes meanwhile.
   * @throws {TypeError} When `host` is not an IP address.
   * @throws {DOMException} The signal's reason when aborted.
   */
  connect(host: string, port: number, options: UtpConnectOptions = {}): Promise<UtpConnection> {
    try {
      if (this.#closed) throw new UtpError("closed", "the uTP endpoint is closed");
      options.signal?.throwIfAborted();
      host = ipLiteral(host);
      if (!(port > 0 && port < 65536)) throw new TypeError(`invalid port ${port}`);
      if (this.#all.size >= (this.#o.maxConnections ?? 1024)) {
        throw new UtpError("limit", "too many uTP connections");
      }
    } catch (err) {
      return Promise.reject(err);
    }
    let recvId = this.#random() & M;
    while (this.#find(host, port, recvId)) recvId = (recvId + 1) & M;
    const sock = new UtpSocket(
      this.#link,
      this.#config(host),
      host,
      port,
      recvId,
      (recvId + 1) & M,
    );
    this.#add(sock);
    const result = Promise.withResolvers<UtpConnection>();
    const signal = options.signal;
    const onAbort = () => sock.reset(ABORTED);
    sock.onConnect = (err) => {
      signal?.removeEventListener("abort", onAbort);
      if (err) result.reject(err === ABORTED ? signal?.reason : err);
      else result.resolve(sock);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    const now = this.#clock();
    sock.startConnect(
      this.#random(),
      now + (options.timeoutMs ?? this.#o.connectTimeoutMs ?? 5000),
    );
    return result.promise;
  }

  /** Resets every connection, stops the timer and closes the socket. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    clearTimeout(this.#ackTimer);
    this.#timer = this.#ackTimer = undefined;
    this.#closing = [];
    const err = new UtpError("closed", "the uTP endpoint closed");
    for (const sock of [...this.#all]) {
      if (!sock.halfOpen) sock.reset(err);
      else sock.abort(err);
    }
    const sends = this.#closing;
    this.#closing = undefined;
    await Promise.allSettled(sends);
    this.#unlisten();
    this.#socket.close();
  }

  /** Same as {@linkcode UtpEndpoint.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ------------------------------------------------------------------ routing

  #onDatagram(data: Uint8Array, host: string, port: number): void {
    if (this.#closed) return;
    const h = this.#h;
    if (parseUtpPacket(data, h) !== undefined) {
      this.#stats.malformed++;
      return;
    }
    if (h.type === PacketType.syn) return this.#onSyn(data, host, port);
    let sock = this.#last;
    if (!sock || sock.recvId !== h.connectionId || sock.port !== port || sock.host !== host) {
      sock = this.#find(host, port, h.connectionId);
      // some implementations reset with the id they send with: match it against ours too
      if (!sock && h.type === PacketType.reset) {
        sock = this.#findBySendId(host, port, h.connectionId);
      }
      if (!sock) {
        this.#stats.unknown++;
        return;
      }
      this.#last = sock;
    }
    sock.onPacket(h, data);
  }

  #onSyn(data: Uint8Array, host: string, port: number): void {
    const h = this.#h;
    const recvId = (h.connectionId + 1) & M;
    const existing = this.#find(host, port, recvId);
    if (existing) return existing.onPacket(h, data);
    if (!this.#onConnection) return;
    if (
      this.#all.size >= (this.#o.maxConnections ?? 1024) ||
      this.#halfOpen.size >= (this.#o.maxHalfOpen ?? 64)
    ) {
      this.#stats.refused++;
      return;
    }
    const sock = new UtpSocket(this.#link, this.#config(host), host, port, recvId, h.connectionId);
    this.#add(sock);
    this.#halfOpen.add(sock);
    sock.acceptSyn(h, this.#random(), this.#clock() + (this.#o.connectTimeoutMs ?? 5000));
  }

  #confirmed(sock: UtpSocket): void {
    this.#halfOpen.delete(sock);
    this.#stats.accepted++;
    try {
      this.#onConnection?.(sock);
    } catch {
      sock.reset();
    }
  }

  #key(port: number, id: number): number {
    return id * 65536 + port;
  }

  #find(host: string, port: number, id: number): UtpSocket | undefined {
    for (let s = this.#table.get(this.#key(port, id)); s; s = s.nextInChain) {
      if (s.host === host) return s;
    }
    return undefined;
  }

  #findBySendId(host: string, port: number, id: number): UtpSocket | undefined {
    for (const recv of [(id + 1) & M, (id - 1) & M]) {
      const s = this.#find(host, port, recv);
      if (s && s.sendId === id) return s;
    }
    return undefined;
  }

  #add(sock: UtpSocket): void {
    const k = this.#key(sock.port, sock.recvId);
    sock.nextInChain = this.#table.get(k);
    this.#table.set(k, sock);
    this.#all.add(sock);
    this.#timer ??= setInterval(() => this.#tick(), this.#o.tickMs ?? 50);
  }

  #gone(sock: UtpSocket): void {
    if (!this.#all.delete(sock)) return;
    this.#halfOpen.delete(sock);
    if (this.#last === sock) this.#last = undefined;
    const k = this.#key(sock.port, sock.recvId);
    let s = this.#table.get(k);
    if (s === sock) {
      if (sock.nextInChain) this.#table.set(k, sock.nextInChain);
      else this.#table.delete(k);
    } else {
      while (s && s.nextInChain !== sock) s = s.nextInChain;
      if (s) s.nextInChain = sock.nextInChain;
    }
    sock.nextInChain = undefined;
    if (this.#all.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  #config(host: string): UtpSocketConfig {
    return host.includes(":") ? this.#cfg6 : this.#cfg4;
  }

  // ------------------------------------------------------------------ sending and timers

  #send(sock: UtpSocket, datagram: Uint8Array): void {
    const sent = this.#socket.send(datagram, sock.host, sock.port);
    if (this.#closing) this.#closing.push(sent.catch(ignore));
    else if (sock.connecting) {
      // a SYN that cannot be sent (no route, wrong address family) fails the connect now
      sent.catch((err) =>
        sock.abort(
          new UtpError("aborted", `cannot send to ${sock.host}: ${(err as Error).message}`),
        )
      );
    } else sent.catch(ignore);
  }

  #deferAck(sock: UtpSocket): void {
    sock.ackQueued = true;
    this.#acks.push(sock);
    this.#ackTimer ??= setTimeout(() => this.#flushAcks(), 0);
  }

  #flushAcks(): void {
    this.#ackTimer = undefined;
    const list = this.#acks;
    this.#acks = [];
    for (const s of list) s.flushAck();
  }

  #tick(): void {
    const now = this.#clock();
    for (const sock of this.#all) sock.tick(now);
  }
}

/** The reason a connect aborted by its signal is failed with (swapped for the signal's reason). */
const ABORTED = new UtpError("aborted", "connect aborted");

function ignore(): void {}

function randomU16(): number {
  return crypto.getRandomValues(new Uint16Array(1))[0];
}

/** Normalises an IP literal the way the UDP socket reports sender addresses. */
function ipLiteral(host: string): string {
  const bare = host.replace(/^\[|\]$/g, "");
  if (bare.includes(":")) {
    try {
      return new URL(`http://[${bare}]/`).hostname.slice(1, -1);
    } catch {
      throw new TypeError(`not an IP address: ${host}`);
    }
  }
  if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(bare)) throw new TypeError(`not an IP address: ${host}`);
  return bare.split(".").map((p) => String(Number(p))).join(".");
}
