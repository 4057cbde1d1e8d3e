// An in-process UDP network for transport tests: sockets that implement UdpSocket, joined by a link that loses,
// duplicates, delays and reorders datagrams, decided by a seeded generator (xorshift32) so a failure reproduces.

import type { Datagram, UdpSocket } from "../src/udp.ts";
import { rng } from "./_fuzz.ts";

/** How the link misbehaves; probabilities per datagram. */
export interface LinkOptions {
  /** Generator seed. @default {1} */
  seed?: number;
  /** Probability a datagram is lost. @default {0} */
  loss?: number;
  /** Probability a datagram is delivered twice. @default {0} */
  duplicate?: number;
  /** Base one-way delay, ms. @default {1} */
  delayMs?: number;
  /** Extra random delay up to this many ms (datagrams overtake each other). @default {0} */
  jitterMs?: number;
}

/** Counters of a {@linkcode FakeNet}. */
export interface FakeNetStats {
  sent: number;
  delivered: number;
  lost: number;
  duplicated: number;
}

/** A set of fake UDP sockets on one fake host per address, joined by one misbehaving link. */
export class FakeNet {
  readonly #opts: LinkOptions;
  readonly #rand: (n: number) => number;
  readonly #sockets = new Map<string, (d: Datagram) => void>();
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  #nextPort = 40000;
  /** Drops every datagram to or from these addresses (`host:port`) while set. */
  readonly blackholes: Set<string> = new Set();
  readonly stats: FakeNetStats = { sent: 0, delivered: 0, lost: 0, duplicated: 0 };

  constructor(options: LinkOptions = {}) {
    this.#opts = options;
    this.#rand = rng(options.seed ?? 1);
  }

  /** A random number in [0, 1) from the seeded generator. */
  #p(): number {
    return this.#rand(1_000_000) / 1_000_000;
  }

  /** A socket bound to `host` (a free fake port). */
  socket(host = "127.0.0.1", port = this.#nextPort++): UdpSocket {
    const key = `${host}:${port}`;
    const listeners: ((d: Datagram) => void)[] = [];
    this.#sockets.set(key, (d) => {
      for (const l of listeners) l(d);
    });
    let closed = false;
    return {
      port,
      send: (data, toHost, toPort) => {
        if (closed) return Promise.reject(new Error("socket closed"));
        this.#route(data.slice(), host, port, toHost, toPort);
        return Promise.resolve();
      },
      onMessage: (l) => {
        listeners.push(l);
        return () => {
          const i = listeners.indexOf(l);
          if (i >= 0) listeners.splice(i, 1);
        };
      },
      close: () => {
        closed = true;
        this.#sockets.delete(key);
      },
    };
  }

  #route(data: Uint8Array, fromHost: string, fromPort: number, toHost: string, toPort: number) {
    this.stats.sent++;
    const from = `${fromHost}:${fromPort}`, to = `${toHost}:${toPort}`;
    if (
      this.blackholes.has(from) || this.blackholes.has(to) || this.#p() < (this.#opts.loss ?? 0)
    ) {
      this.stats.lost++;
      return;
    }
    const copies = this.#p() < (this.#opts.duplicate ?? 0) ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    for (let i = 0; i < copies; i++) {
      const delay = (this.#opts.delayMs ?? 1) + this.#p() * (this.#opts.jitterMs ?? 0);
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        const deliver = this.#sockets.get(to);
        if (!deliver || this.blackholes.has(to)) return;
        this.stats.delivered++;
        deliver({ data: i === 0 ? data : data.slice(), host: fromHost, port: fromPort });
      }, delay);
      this.#timers.add(timer);
    }
  }

  /** Delivers a forged datagram as if `from` (`host:port`) had sent it to `to`. */
  inject(data: Uint8Array, from: [string, number], to: [string, number]): void {
    this.#route(data.slice(), from[0], from[1], to[0], to[1]);
  }

  /** Cancels every datagram still on the wire. */
  close(): void {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
