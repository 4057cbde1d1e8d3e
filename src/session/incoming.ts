/**
 * A session's incoming connections: the TCP listener (dual-stack by default), its accept loop, and the routing of
 * every incoming connection (TCP or uTP) to its torrent — by the plain handshake's info hash, or by an encryption
 * handshake's `req2 ⊕ req3` over every torrent's hashes (MSE) — under one deadline for both handshakes.
 *
 * @module
 */

import { addressKey } from "../_address.ts";
import { asError } from "../_errors.ts";
import { toHex } from "../_bytes.ts";
import { tcpStream } from "../transport/tcp.ts";
import type { EncryptionPolicy } from "../wire/encryption_policy.ts";
import { acceptConnection, type Encryption } from "../wire/mse.ts";
import type { PeerStream } from "../wire/stream.ts";

/** Time allowed for a connection's handshakes (encryption, if any, and BitTorrent's). */
const HANDSHAKE_MS = 10_000;

/** A torrent incoming connections can be routed to. */
export interface RoutedTorrent {
  /** Every 20-byte info hash peers may use for it (both of a hybrid's, BEP 52). */
  readonly infoHashes: readonly Uint8Array[];
  /** Takes a connection whose handshakes named it (returns false when refused). */
  accept(
    stream: PeerStream,
    options: {
      host: string;
      port: number;
      handshakeTimeoutMs: number;
      encryption?: Encryption;
      transport?: "tcp" | "utp";
    },
  ): boolean;
}

/** What an {@linkcode IncomingRouter} needs from its session. */
export interface IncomingRouterOptions {
  /** The clock (ms). */
  now: () => number;
  /** Whether the session is closed (connections are then dropped). */
  closed: () => boolean;
  /** Room for one more incoming connection in the session's budget. */
  admit: () => boolean;
  /** A connection was refused before it reached a torrent (bad handshake, unknown torrent, too slow). */
  onFail: (address: string, reason: string) => void;
  /** The encryption policy (MSE/PE). */
  encryption?: EncryptionPolicy;
  /** Select RC4 after an MSE handshake. */
  rc4Only?: boolean;
}

/** An incoming connection before its handshakes. */
export type IncomingStream = PeerStream & {
  readonly remoteAddress: { host: string; port: number };
  close(): void;
};

/** Routes incoming connections to the session's torrents by info hash. */
export class IncomingRouter<T extends RoutedTorrent> {
  readonly #opts: IncomingRouterOptions;
  /** Info hashes in routing order, the same objects each time (MSE caches req2 by object). */
  #hashes: Uint8Array[] = [];
  /** Torrents by every 20-byte info hash peers may use (hex): a hybrid torrent's v1 and truncated v2 hash. */
  #routes = new Map<string, T>();
  /** Connections still in their handshakes, and when each is settled. */
  readonly #pending = new Map<IncomingStream, Promise<void>>();

  /**
   * Creates an {@linkcode IncomingRouter}.
   *
   * @param options The session's clock, state, budget and encryption settings.
   */
  constructor(options: IncomingRouterOptions) {
    this.#opts = options;
  }

  /**
   * Routes by every hash of every torrent from now on (both of a hybrid's, BEP 52).
   *
   * @param torrents The torrents, in queue order.
   */
  rehash(torrents: readonly T[]): void {
    this.#hashes = torrents.flatMap((t) => t.infoHashes);
    this.#routes = new Map(
      torrents.flatMap((t) => t.infoHashes.map((h) => [toHex(h), t] as const)),
    );
  }

  /**
   * The torrent a 20-byte info hash names.
   *
   * @param hex The info hash, 40 lower-case hex digits.
   */
  route(hex: string): T | undefined {
    return this.#routes.get(hex);
  }

  /**
   * Accepts TCP connections until the listener closes.
   *
   * @param listener The TCP listener.
   */
  async acceptLoop(listener: Deno.Listener): Promise<void> {
    try {
      for await (const conn of listener) {
        if (this.#opts.closed()) {
          conn.close();
          continue;
        }
        this.incoming(tcpStream(conn), "tcp");
      }
    } catch {
      // listener closed
    }
  }

  /**
   * An incoming connection: the torrent it is for is found from the plain handshake's info hash, or from an
   * encryption handshake's `req2 ⊕ req3` over every torrent; one deadline covers both handshakes.
   *
   * @param stream The connection.
   * @param transport What it came over.
   */
  incoming(stream: IncomingStream, transport: "tcp" | "utp"): void {
    const o = this.#opts;
    if (!o.admit()) return stream.close();
    const { host, port } = stream.remoteAddress;
    const accepted = o.now();
    const settled = acceptConnection(stream, this.#hashes, {
      timeoutMs: HANDSHAKE_MS,
      ...(o.encryption ? { policy: o.encryption } : {}),
      ...(o.rc4Only ? { rc4Only: true } : {}),
    }).then(
      ({ stream: plain, infoHash, encryption }) => {
        const t = infoHash && !o.closed() ? this.#routes.get(toHex(infoHash)) : undefined;
        if (!t) return plain.close?.();
        const left = Math.max(1, HANDSHAKE_MS - (o.now() - accepted));
        t.accept(plain, { host, port, handshakeTimeoutMs: left, encryption, transport });
      },
      (err) => {
        stream.close();
        if (o.closed()) return;
        o.onFail(addressKey(host, port), asError(err).message);
      },
    ).finally(() => this.#pending.delete(stream));
    this.#pending.set(stream, settled);
  }

  /** Closes the connections still in their handshakes (the session is closing) and waits for them to settle. */
  async close(): Promise<void> {
    for (const stream of this.#pending.keys()) {
      try {
        stream.close();
      } catch { /* already closed */ }
    }
    await Promise.allSettled([...this.#pending.values()]);
  }
}

/**
 * Listens over TCP: on the given address, or on every IPv6 and IPv4 address (dual-stack `::`, or `0.0.0.0` where
 * the system has no IPv6).
 *
 * @param host The address, or undefined for every address.
 * @param port The port (0 lets the system choose).
 * @returns The listener.
 */
export function listen(host: string | undefined, port: number): Deno.Listener {
  if (host !== undefined) return Deno.listen({ hostname: host, port, transport: "tcp" });
  try {
    return Deno.listen({ hostname: "::", port, transport: "tcp" });
  } catch {
    return Deno.listen({ hostname: "0.0.0.0", port, transport: "tcp" });
  }
}
