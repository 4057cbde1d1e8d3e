/**
 * One UDP socket shared by uTP, the DHT and UDP trackers, as libtorrent does: one port to open in a firewall or
 * map on a router, and peers that learn our port from any of them reach all three. {@linkcode UdpMux} routes
 * each datagram by its shape to one of three views, each a {@linkcode UdpSocket} for the code that used to own a
 * socket of its own:
 *
 * - `utp`: at least 20 bytes with version 1 in the low nibble of the first byte and a type 0–4 in the high one
 *   (first byte 0x01, 0x11, 0x21, 0x31 or 0x41). The endpoint drops packets for connection ids it does not know.
 * - `dht`: KRPC messages, bencoded dictionaries: the first byte is `d` (0x64).
 * - `trackers`: everything else. UDP tracker replies start with a 32-bit action 0–3 (first byte 0), which no uTP
 *   or KRPC packet does; the tracker client matches its transaction id as before.
 *
 * Closing a view only removes its listeners; {@linkcode UdpMux.close} closes the socket.
 *
 * @example A DHT and a uTP endpoint on one port
 * ```ts ignore
 * import { openUdpSocket } from "../udp.ts";
 * import { UdpMux } from "./udp_mux.ts";
 * import { UtpEndpoint } from "./utp.ts";
 * import { Dht } from "../dht/dht.ts";
 *
 * const mux = new UdpMux(await openUdpSocket({ port: 6881 }));
 * const utp = new UtpEndpoint({ socket: mux.utp, onConnection: (conn) => conn.close() });
 * const dht = await Dht.open({ socket: mux.dht });
 * // udp trackers: announceUdp(url, params, { socket: mux.trackers })
 * ```
 *
 * @module
 */

import type { Datagram, UdpSocket } from "../udp.ts";

type Listener = (d: Datagram) => void;

/** Which view a datagram goes to. */
export type UdpMuxRoute = "utp" | "dht" | "trackers";

/**
 * Classifies a datagram the way {@linkcode UdpMux} routes it.
 *
 * @param data A datagram.
 * @returns The view it belongs to.
 */
export function classifyDatagram(data: Uint8Array): UdpMuxRoute {
  const b = data[0];
  if (data.length >= 20 && (b & 0x0f) === 1 && b >> 4 <= 4) return "utp";
  if (b === 0x64) return "dht";
  return "trackers";
}

/** Counters of a {@linkcode UdpMux}. */
export interface UdpMuxStats {
  /** Datagrams routed to the uTP view. */
  utp: number;
  /** Datagrams routed to the DHT view. */
  dht: number;
  /** Datagrams routed to the trackers view. */
  trackers: number;
}

/** A UDP socket shared by uTP, the DHT and UDP trackers. */
export class UdpMux implements Disposable {
  readonly #socket: UdpSocket;
  readonly #lists: Record<UdpMuxRoute, Listener[]> = { utp: [], dht: [], trackers: [] };
  readonly #stats: UdpMuxStats = { utp: 0, dht: 0, trackers: 0 };
  readonly #unlisten: () => void;
  #closed = false;
  /** uTP packets. */
  readonly utp: UdpSocket;
  /** KRPC (DHT) messages. */
  readonly dht: UdpSocket;
  /** Everything else: UDP tracker replies. */
  readonly trackers: UdpSocket;

  /**
   * Creates a {@linkcode UdpMux} and starts routing the socket's datagrams.
   *
   * @param socket The bound socket; closed by {@linkcode UdpMux.close}.
   */
  constructor(socket: UdpSocket) {
    this.#socket = socket;
    const lists = this.#lists, stats = this.#stats;
    this.#unlisten = socket.onMessage((d) => {
      const route = classifyDatagram(d.data);
      stats[route]++;
      const list = lists[route];
      for (let i = 0; i < list.length; i++) list[i](d);
    });
    this.utp = this.#view("utp");
    this.dht = this.#view("dht");
    this.trackers = this.#view("trackers");
  }

  /** The UDP port. */
  get port(): number {
    return this.#socket.port;
  }

  /** Datagrams routed to each view. */
  stats(): UdpMuxStats {
    return { ...this.#stats };
  }

  /** Closes the shared socket (every view stops receiving). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unlisten();
    for (const list of Object.values(this.#lists)) list.length = 0;
    this.#socket.close();
  }

  /** Same as {@linkcode UdpMux.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  #view(route: UdpMuxRoute): UdpSocket {
    const socket = this.#socket;
    const list = this.#lists[route];
    const mine: Listener[] = [];
    const remove = (l: Listener) => {
      const i = list.indexOf(l);
      if (i >= 0) list.splice(i, 1);
      const j = mine.indexOf(l);
      if (j >= 0) mine.splice(j, 1);
    };
    return {
      get port() {
        return socket.port;
      },
      send: (data, host, port) => socket.send(data, host, port),
      onMessage: (l) => {
        list.push(l);
        mine.push(l);
        return () => remove(l);
      },
      close: () => {
        for (const l of [...mine]) remove(l);
      },
    };
  }
}
