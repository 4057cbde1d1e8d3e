/**
 * A session's peer discovery beyond trackers: one DHT node (BEP 5) for every torrent — opened on the peer port's
 * UDP socket beside uTP unless its options ask for a socket of its own, its routing table kept in the state
 * directory — looking each torrent up when due (at start, then every 15 minutes, sooner while nothing is found, a
 * few at a time), joining through the nodes a trackerless torrent names; and one Local Service Discovery socket
 * (BEP 14) announcing every running torrent. Never for private torrents (BEP 27).
 *
 * @module
 */

import { toHex } from "../_bytes.ts";
import { Dht, type DhtState } from "../dht/dht.ts";
import { LocalDiscovery } from "../lsd.ts";
import type { SessionOptions } from "./session_options.ts";
import type { UdpSockets } from "./udp_sockets.ts";

/** DHT lookups running at once (a restored session with many torrents looks them up a few at a time). */
const DHT_LOOKUPS = 4;

/** A torrent as discovery sees it. */
export interface DiscoveredTorrent {
  /** Whether its metadata is known ({@linkcode DiscoveredTorrent.metainfo} may be read). */
  readonly hasMetadata: boolean;
  /** Its metadata: private or not, and the DHT nodes it names. */
  readonly metainfo: {
    readonly private: boolean;
    readonly nodes: readonly { host: string; port: number }[];
  };
  /** Its info hash. */
  readonly infohash: Uint8Array;
  /** What the user asked for. */
  readonly desired: string;
  /** How it is driven now. */
  readonly run: string;
  /** Its engine once loaded. */
  readonly engine:
    | { addPeer(host: string, port: number, options: { source: "lsd" }): void }
    | undefined;
  /** Looks it up in the DHT; resolves with the number of peers found. */
  lookupDht(dht: Dht): Promise<number>;
}

/** What a {@linkcode SessionDiscovery} needs from its session. */
export interface SessionDiscoveryOptions<T extends DiscoveredTorrent> {
  /** The session's DHT, LSD and address options. */
  options: Pick<SessionOptions, "dht" | "lsd" | "host">;
  /** Where the DHT's routing table is kept, if anywhere. */
  store: {
    loadDhtState(): Promise<DhtState | undefined>;
    saveDhtState(state: DhtState): Promise<void>;
  } | undefined;
  /** The session's UDP sockets, once open. */
  udp: () => UdpSockets | undefined;
  /** The session's peer port. */
  port: () => number;
  /** The session's UDP port. */
  udpPort: () => number;
  /** Whether the session is closed. */
  closed: () => boolean;
  /** The clock (ms). */
  now: () => number;
  /** The torrents, in queue order. */
  torrents: () => readonly T[];
  /** The torrent a 20-byte info hash (hex) names. */
  route: (hex: string) => T | undefined;
}

/** A session's DHT node and LSD socket, and the torrents they look up and announce. */
export class SessionDiscovery<T extends DiscoveredTorrent> {
  readonly #o: SessionDiscoveryOptions<T>;
  #dht: Dht | undefined;
  #dhtOpening: Promise<Dht | undefined> | undefined;
  #ownDht = false;
  readonly #dhtDue = new Map<T, { at: number; delay: number }>();
  #dhtRunning = 0;
  #lsd: LocalDiscovery | undefined;

  /**
   * Creates a {@linkcode SessionDiscovery}; nothing runs until {@linkcode SessionDiscovery.open} and
   * {@linkcode SessionDiscovery.startLsd}.
   *
   * @param options The session's options, state directory, sockets and torrents.
   */
  constructor(options: SessionDiscoveryOptions<T>) {
    this.#o = options;
  }

  /** The DHT node, if the session runs one and it is open. */
  get dht(): Dht | undefined {
    return this.#dht;
  }

  /** Opens the DHT node (once; later calls get the same node), or undefined when the session runs none. */
  async open(): Promise<Dht | undefined> {
    const o = this.#o.options.dht;
    if (!o || this.#o.closed()) return undefined;
    if (this.#dht) return this.#dht;
    if (o instanceof Dht) return this.#dht = o;
    this.#dhtOpening ??= (async () => {
      const host = this.#o.options.host;
      const specific = host && host !== "::" && host !== "0.0.0.0" ? host : undefined;
      const state = await this.#o.store?.loadDhtState();
      const family = specific?.includes(":") ? 6 : 4;
      // a socket of its own only when the options ask for another port, address or family than ours
      const own = o !== true && (o.socket !== undefined ||
        (o.port !== undefined && o.port !== 0 && o.port !== this.#o.port() &&
          o.port !== this.#o.udpPort()) ||
        (o.host !== undefined && o.host !== specific) ||
        (o.family !== undefined && o.family !== family));
      // on the peer port's socket, beside uTP (closing the node closes only its view)
      const mux = own ? undefined : this.#o.udp()?.mux(family);
      const { port: _port, host: _host, ...rest } = o === true ? {} : o;
      const dht = await Dht.open({
        ...(specific ? { host: specific, family } : {}),
        ...(state ? { state } : {}),
        ...(mux ? { ...rest, socket: mux.dht } : o === true ? {} : o),
      });
      if (this.#o.closed()) {
        await dht.close();
        return undefined;
      }
      this.#ownDht = true;
      return this.#dht = dht;
    })();
    return await this.#dhtOpening;
  }

  /** Starts Local Service Discovery, announcing every running public torrent. */
  async startLsd(): Promise<void> {
    const lsd = this.#o.options.lsd;
    const opts = typeof lsd === "object" ? lsd : {};
    const h = this.#o.options.host;
    const iface = opts.interfaceAddress ??
      (h && h !== "::" && h !== "0.0.0.0" && !h.includes(":") ? h : undefined);
    this.#lsd = new LocalDiscovery({
      infoHashes: () =>
        this.#o.torrents().filter((t) =>
          t.hasMetadata && !t.metainfo.private && t.run === "running"
        )
          .map((t) => t.infohash),
      port: () => this.#o.port(),
      onPeer: (host, port, ih) => {
        const t = this.#o.route(toHex(ih));
        if (t?.run === "running") t.engine?.addPeer(host, port, { source: "lsd" });
      },
      ...(iface ? { interfaceAddress: iface } : {}),
      ...(opts.multicastPort ? { multicastPort: opts.multicastPort } : {}),
    });
    await this.#lsd.start();
  }

  /**
   * A torrent's identity is known: it is looked up in the DHT from now on (a magnet link's peers are found there
   * too), at once.
   *
   * @param t The torrent.
   */
  track(t: T): void {
    if (this.#o.options.dht && !this.#dhtDue.has(t) && !(t.hasMetadata && t.metainfo.private)) {
      this.#dhtDue.set(t, { at: 0, delay: 2500 });
      queueMicrotask(() => this.lookups(this.#o.now()));
    }
  }

  /**
   * A torrent left the session.
   *
   * @param t The torrent.
   */
  forget(t: T): void {
    this.#dhtDue.delete(t);
  }

  /**
   * A torrent's metadata is known: a private one is never looked up (BEP 27; a magnet link can turn out private),
   * and the DHT nodes a public one names are joined through.
   *
   * @param t The torrent.
   */
  loaded(t: T): void {
    if (t.metainfo.private) this.#dhtDue.delete(t);
    else if (this.#o.options.dht && t.metainfo.nodes.length > 0) void this.#joinThrough(t);
  }

  /** What runs changed: LSD announces soon, and due DHT lookups start. */
  changed(): void {
    this.#lsd?.announceSoon();
    this.lookups(this.#o.now());
  }

  /**
   * A torrent names DHT nodes (BEP 5 `nodes`, trackerless torrents): they are pinged, joining our node's table
   * when they answer, and the torrent is looked up again at once through them.
   */
  async #joinThrough(t: T): Promise<void> {
    const dht = await this.open().catch(() => undefined);
    if (!dht) return;
    const answered = await Promise.all(
      t.metainfo.nodes.slice(0, 20).map((n) => dht.ping(n.host, n.port).catch(() => false)),
    );
    const due = this.#dhtDue.get(t);
    if (!answered.includes(true) || !due || this.#o.closed()) return;
    if (due.at !== Number.POSITIVE_INFINITY) due.at = 0; // not while a lookup runs: it asks them already
    this.lookups(this.#o.now());
  }

  /**
   * Looks torrents up in the DHT when due: at start, then every 15 minutes (sooner while nothing is found).
   *
   * @param now The clock's time (ms).
   */
  lookups(now: number): void {
    const dht = this.#dht;
    if (!this.#o.options.dht || this.#dhtDue.size === 0) return;
    if (!dht) {
      void this.open();
      return;
    }
    for (const [t, due] of this.#dhtDue) {
      if (this.#dhtRunning >= DHT_LOOKUPS) break;
      if (due.at > now || t.desired === "stopped") continue;
      if (t.hasMetadata && t.run !== "running") continue; // a magnet link's metadata is looked for regardless
      due.at = Number.POSITIVE_INFINITY; // running
      this.#dhtRunning++;
      t.lookupDht(dht).then((found) => {
        due.delay = found > 0 ? 15 * 60_000 : Math.min(due.delay * 2, 5 * 60_000);
        due.at = this.#o.now() + due.delay;
      }).finally(() => this.#dhtRunning--);
    }
  }

  /** Stops Local Service Discovery. */
  stopLsd(): void {
    this.#lsd?.stop();
  }

  /** Saves the routing table of a DHT node the session opened, and closes it (one given as is stays open). */
  async closeDht(): Promise<void> {
    const dht = this.#dht ?? await this.#dhtOpening?.catch(() => undefined);
    if (dht && this.#ownDht) {
      await this.#o.store?.saveDhtState(dht.state()).catch(() => {});
      await dht.close();
    }
  }
}
