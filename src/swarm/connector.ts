/**
 * Making one torrent's connections: dialling a candidate over uTP, then TCP when uTP fails, under the encryption
 * policy (`dialer.ts`: MSE with our handshake in its initial payload, the policy's one fallback, the transport and
 * mode that worked remembered per address; PEX's word on uTP decides the first transport of a peer never
 * dialled) and turning
 * an accepted or dialled stream into a {@linkcode PeerConnection} registered with the peer set. Dials in progress
 * are tracked so a stopping torrent can abort and await them.
 *
 * @module
 */

import { addressKey, splitAddressKey } from "../_address.ts";
import type { Metainfo } from "../metainfo.ts";
import { PeerConnection, type PeerHandler } from "../peer.ts";
import { CLIENT_NAME } from "../version.ts";
import { DEFAULT_ENCRYPTION_POLICY } from "../wire/encryption_policy.ts";
import { encodeHandshake } from "../wire/handshake.ts";
import { UT_METADATA_ID } from "../wire/metadata.ts";
import type { Encryption } from "../wire/mse.ts";
import { UT_PEX_ID } from "../wire/pex.ts";
import type { PeerStream } from "../wire/stream.ts";
import { describeDialFailure, dialPeer, dialTransports, type TransportName } from "./dialer.ts";
import type { Candidate, PeerSet } from "./peer_set.ts";
import type { PiecePicker } from "./piece_picker.ts";
import type { PeerEntry, PeerSource, TorrentEvents, TorrentOptions } from "./types.ts";

/** Time allowed for a connection's handshakes (encryption, if any, and BitTorrent's). */
export const HANDSHAKE_MS = 10_000;

/**
 * Requests a peer may keep outstanding with us (`reqq`), as libtorrent's high-performance seed says. A libtorrent
 * leecher takes the figure as its cap: at its default of 500 it kept too few requests in flight to fill a
 * loopback link (8 MiB), where 2,000 keep the socket busy. Requests beyond the send queue wait as three numbers.
 */
const REQUEST_QUEUE = 2000;

/** Options for {@linkcode Connector}. */
export interface ConnectorOptions {
  /** The torrent. */
  meta: Metainfo;
  /** Our peer id. */
  peerId: Uint8Array;
  /** Our listening port (the extension handshake's `p`). */
  port: () => number;
  /** The torrent's peer set (connections are registered there). */
  peers: PeerSet;
  /** The picker, whose request store each connection records its requests in. */
  picker: PiecePicker;
  /** What every connection reports to. */
  handler: PeerHandler;
  /** Our DHT port (0 = no DHT for this torrent). */
  dhtPort: () => number;
  /** True while the torrent is stopped (no new connections). */
  stopped: () => boolean;
  /**
   * A hybrid torrent that still lacks piece layers: its encrypted dials carry the truncated v2 hash (a peer
   * that matched an encrypted connection to the torrent no longer upgrades its SHA-1 handshake to v2, as
   * libtorrent does not); the plain fallback sends the SHA-1 with the v2 bit.
   */
  wantsV2?: () => boolean;
  /** A dial failed for a reason worth telling (not an unreachable address). */
  onFail: (event: TorrentEvents["peerfail"]) => void;
  /** Closes every connection when aborted (the torrent closes). */
  signal: AbortSignal;
  /** The clock (ms). */
  now: () => number;
  /** The torrent's settings: encryption policy, RC4 only, transports, timeouts, pipeline depth, bandwidth. */
  settings: Pick<
    TorrentOptions,
    | "encryption"
    | "rc4Only"
    | "connect"
    | "connectUtp"
    | "utpConnectTimeoutMs"
    | "utpFirst"
    | "tcp"
    | "connectTimeoutMs"
    | "queueDepth"
    | "rate"
  >;
}

/** Dials and attaches one torrent's connections. */
export class Connector {
  readonly #o: ConnectorOptions;
  /** Aborts the dials in progress when the torrent stops (a new one for each start). */
  #dialAbort = new AbortController();
  /** Dials in progress. */
  readonly #dials = new Set<Promise<boolean>>();

  /**
   * Creates a {@linkcode Connector}.
   *
   * @param options The torrent, the peer set and the policy.
   */
  constructor(options: ConnectorOptions) {
    this.#o = options;
  }

  /** Dials are allowed again (the torrent starts). */
  resume(): void {
    if (this.#dialAbort.signal.aborted) this.#dialAbort = new AbortController();
  }

  /** Aborts the dials in progress and waits for them to settle (the torrent stops). */
  async stop(): Promise<void> {
    this.#dialAbort.abort();
    await Promise.all([...this.#dials]);
  }

  /**
   * Takes an incoming connection whose encryption handshake, if any, is done.
   *
   * @param stream The connection (plain BitTorrent bytes from here on).
   * @param options The peer's address, how much of the handshake deadline is left, what the encryption
   *   handshake negotiated, and the transport (TCP by default).
   * @returns False when it was refused (stopped, full, or a banned address); the stream is then closed.
   */
  accept(
    stream: PeerStream,
    options: {
      host: string;
      port: number;
      handshakeTimeoutMs?: number;
      encryption?: Encryption;
      transport?: TransportName;
    },
  ): boolean {
    const peers = this.#o.peers;
    if (this.#o.stopped() || !peers.hasRoom() || peers.isBanned(options.host)) {
      try {
        stream.close?.();
      } catch { /* already closed */ }
      return false;
    }
    this.#attach(stream, {
      key: addressKey(options.host, options.port),
      incoming: true,
      source: "incoming",
      encryption: options.encryption ?? false,
      transport: options.transport ?? "tcp",
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? HANDSHAKE_MS,
    });
    return true;
  }

  /** Dials a candidate over its transports under the encryption policy; resolves false when no connection was made. */
  dial(c: Candidate): Promise<boolean> {
    const dial = this.#dial(c);
    this.#dials.add(dial);
    const untrack = () => this.#dials.delete(dial);
    dial.then(untrack, untrack);
    return dial;
  }

  async #dial(c: Candidate): Promise<boolean> {
    const o = this.#o, set = o.settings;
    const policy = set.encryption ?? DEFAULT_ENCRYPTION_POLICY;
    const dialing = this.#dialAbort;
    const v2 = o.meta.infoHashV2?.subarray(0, 20);
    const infoHash = v2 && o.meta.version === "hybrid" && o.wantsV2?.() ? v2 : o.meta.infoHash;
    const result = await dialPeer(c.host, c.port, {
      infoHash,
      handshake: encodeHandshake({
        infoHash,
        peerId: o.peerId,
        fast: true,
        extended: true,
        dht: o.dhtPort() > 0,
        v2: o.meta.infoHashV2 !== undefined,
      }),
      policy,
      ...(set.rc4Only ? { rc4Only: true } : {}),
      ...(c.worked ? { worked: c.worked } : {}),
      transports: dialTransports(set),
      ...(set.utpFirst ? { utpFirst: set.utpFirst } : {}),
      // what worked last time first; a peer PEX says has no uTP is dialled over TCP first
      ...(c.transport
        ? { workedTransport: c.transport }
        : c.utp === false
        ? { workedTransport: "tcp" as const }
        : {}),
      connectTimeoutMs: set.connectTimeoutMs ?? 5000,
      handshakeTimeoutMs: HANDSHAKE_MS,
      signal: dialing.signal,
      now: o.now,
      start: async (a) => {
        if (o.stopped() || dialing.signal.aborted) {
          a.stream.close?.();
          return { ok: false, reason: "stopped" };
        }
        const { entry, started } = this.#attach(a.stream, {
          key: c.key,
          incoming: false,
          source: c.source,
          encryption: a.encryption,
          transport: a.transport,
          handshakeSent: a.handshakeSent,
          handshakeTimeoutMs: a.handshakeTimeoutMs,
        });
        await started;
        o.peers.settle(entry);
        return entry.conn.remoteHandshake
          ? { ok: true }
          : { ok: false, reason: entry.conn.closeReason ?? "closed" };
      },
    });
    if (result.ok) {
      c.worked = result.mode;
      c.transport = result.transport;
    } else {
      // what worked before did not: every transport and mode again next time
      c.worked = undefined;
      c.transport = undefined;
      if (!result.unreachable && !dialing.signal.aborted && !o.stopped()) {
        o.onFail({
          address: c.key,
          incoming: false,
          reason: describeDialFailure(result.failures, policy),
        });
      }
    }
    if (o.stopped() && !result.ok) {
      c.connected = false;
      return true; // not the address's fault
    }
    return result.ok;
  }

  #attach(
    stream: PeerStream,
    a: {
      key: string;
      incoming: boolean;
      source: PeerSource;
      encryption: Encryption;
      transport: TransportName;
      handshakeSent?: boolean;
      handshakeTimeoutMs?: number;
    },
  ): { entry: PeerEntry; started: Promise<boolean> } {
    const o = this.#o, meta = o.meta;
    const conn = new PeerConnection(stream, {
      infoHash: meta.infoHash,
      // BEP 52: v2 and hybrid torrents say so; a hybrid's peer may use either hash, and one that dials us with
      // the SHA-1 and the v2 bit is answered with the v2 hash (upgraded)
      ...(meta.infoHashV2
        ? {
          v2: true,
          infoHashV2: meta.infoHashV2.subarray(0, 20),
          answerHandshake: a.incoming && meta.version === "hybrid",
        }
        : {}),
      peerId: o.peerId,
      pieceCount: meta.pieceCount,
      pieceLength: meta.pieceLength,
      totalLength: meta.length,
      queueDepth: o.settings.queueDepth ?? 768,
      maxIncomingRequests: 2 * REQUEST_QUEUE, // a peer may overshoot what we advertise a little
      extensionHandshake: {
        v: CLIENT_NAME,
        p: o.port(),
        reqq: REQUEST_QUEUE,
        // private torrents (BEP 27) get peers from their trackers only: no PEX
        m: meta.private
          ? { ut_metadata: UT_METADATA_ID }
          : { ut_metadata: UT_METADATA_ID, ut_pex: UT_PEX_ID },
        metadata_size: meta.info.length,
      },
      remoteAddress: splitAddressKey(a.key),
      handshakeTimeoutMs: a.handshakeTimeoutMs ?? HANDSHAKE_MS,
      handshakeSent: a.handshakeSent ?? false,
      dht: o.dhtPort() > 0,
      signal: o.signal,
      now: o.now,
      selfTimed: false,
      requests: o.picker.requests.forPeer(),
      ...(o.settings.rate ? { rate: o.settings.rate } : {}),
    }, o.handler);
    const entry = o.peers.register(conn, a);
    return { entry, started: conn.start() };
  }
}
