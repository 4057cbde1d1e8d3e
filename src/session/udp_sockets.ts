/**
 * A session's UDP side: one socket per address family on the peer port's number (the TCP listener's), each shared
 * by uTP, the DHT and UDP trackers through a {@linkcode UdpMux}, as libtorrent does — one port to open in a
 * firewall, and peers that learn our port from a tracker, the DHT or PEX reach us over TCP and uTP alike.
 *
 * Without a specific address, an IPv4 socket on `0.0.0.0` and an IPv6-only socket on `::` with the same number
 * (left out when the system has no IPv6 or the number is taken there); with one, a single socket on it. When the
 * peer port's number is taken for UDP, any free port is used (peers then reach us over TCP only).
 *
 * @module
 */

import { openUdpSocket } from "../udp.ts";
import { UdpMux } from "../transport/udp_mux.ts";
import {
  type UtpConnection,
  UtpEndpoint,
  type UtpEndpointOptions,
  type UtpEndpointStats,
} from "../transport/utp.ts";

/** Options for {@linkcode UdpSockets.open}. */
export interface UdpSocketsOptions {
  /** The session's listening address; every IPv4 and IPv6 address when omitted (or `::`). */
  host?: string;
  /** The port number to bind (the TCP listener's); 0 = any. */
  port: number;
  /** Run a uTP endpoint on each socket. */
  utp: boolean;
  /** Each incoming uTP connection, once confirmed. */
  onConnection?: (conn: UtpConnection) => void;
  /** More settings of the uTP endpoints (tests: timers, windows). */
  utpOptions?: Omit<UtpEndpointOptions, "socket" | "onConnection">;
}

/** One bound socket and what runs on it. */
interface Family {
  family: 4 | 6;
  mux: UdpMux;
  utp: UtpEndpoint | undefined;
}

/** A session's UDP sockets (one per family), their demultiplexers and uTP endpoints. */
export class UdpSockets implements AsyncDisposable {
  readonly #families: Family[];
  #closed = false;

  private constructor(families: Family[]) {
    this.#families = families;
  }

  /**
   * Binds the sockets and starts the uTP endpoints.
   *
   * @param options Where to bind and whether to run uTP.
   * @returns The sockets (at least one).
   * @throws {Error} When no socket can be bound at all.
   */
  static async open(options: UdpSocketsOptions): Promise<UdpSockets> {
    const h = options.host;
    const specific = h !== undefined && h !== "::" && h !== "0.0.0.0";
    const plan: { family: 4 | 6; host: string }[] = specific
      ? [{ family: h.includes(":") ? 6 : 4, host: h }]
      : h === "0.0.0.0"
      ? [{ family: 4, host: "0.0.0.0" }]
      : [{ family: 4, host: "0.0.0.0" }, { family: 6, host: "::" }];
    const families: Family[] = [];
    let port = options.port;
    for (const [i, p] of plan.entries()) {
      const bind = (at: number) =>
        openUdpSocket({ family: p.family, host: p.host, port: at, ipv6Only: !specific });
      let socket;
      try {
        // the first socket falls back to any port; the IPv6 one takes the same number or is left out
        socket = await bind(port).catch((
          err,
        ) => (port === 0 || i > 0 ? Promise.reject(err) : bind(0)));
      } catch (err) {
        if (i === 0) throw err;
        continue; // no IPv6 here (or the number is taken there): IPv4 only
      }
      if (i === 0) port = socket.port;
      const mux = new UdpMux(socket);
      const utp = options.utp
        ? new UtpEndpoint({
          ...options.utpOptions,
          socket: mux.utp,
          ...(options.onConnection ? { onConnection: options.onConnection } : {}),
        })
        : undefined;
      families.push({ family: p.family, mux, utp });
    }
    return new UdpSockets(families);
  }

  /** The UDP port (every socket has the same number). */
  get port(): number {
    return this.#families[0]?.mux.port ?? 0;
  }

  /**
   * The demultiplexer of a family's socket, for the DHT and UDP trackers.
   *
   * @param family 4 or 6.
   * @returns It, or undefined when there is no socket of that family.
   */
  mux(family: 4 | 6): UdpMux | undefined {
    return this.#families.find((f) => f.family === family)?.mux;
  }

  /** True when uTP runs on some socket. */
  get utp(): boolean {
    return this.#families.some((f) => f.utp);
  }

  /**
   * Dials a peer over uTP from the socket of its address family.
   *
   * @param host The peer's IP address.
   * @param port Its port.
   * @param options Deadline and abort signal.
   * @returns The connection, once the peer answered.
   * @throws {Error} When there is no uTP endpoint of that family, or the host is not an IP address.
   * @throws {UtpError} When the peer does not answer or refuses.
   */
  connectUtp(
    host: string,
    port: number,
    options: { timeoutMs: number; signal?: AbortSignal },
  ): Promise<UtpConnection> {
    const family = host.includes(":") ? 6 : /^[\d.]+$/.test(host) ? 4 : 0;
    const utp = this.#families.find((f) => f.family === family)?.utp;
    if (this.#closed || !utp) {
      return Promise.reject(
        new Error(
          family === 0 ? `uTP needs an IP address, not ${host}` : `no uTP over IPv${family}`,
        ),
      );
    }
    return utp.connect(host, port, options);
  }

  /** The uTP endpoints' counters, added up. */
  utpStats(): UtpEndpointStats {
    const total: UtpEndpointStats = {
      connections: 0,
      halfOpen: 0,
      accepted: 0,
      refused: 0,
      malformed: 0,
      unknown: 0,
    };
    for (const f of this.#families) {
      const s = f.utp?.stats();
      if (!s) continue;
      for (const k of Object.keys(total) as (keyof UtpEndpointStats)[]) total[k] += s[k];
    }
    return total;
  }

  /**
   * Resets every uTP connection and closes the sockets. Whoever uses the other views (the DHT) closes them
   * first.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all(this.#families.map((f) => f.utp?.close()));
    for (const f of this.#families) f.mux.close();
  }

  /** Same as {@linkcode UdpSockets.close}. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
