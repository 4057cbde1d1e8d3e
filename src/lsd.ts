/**
 * Local Service Discovery (BEP 14): announce the torrents we take part in on the local network's multicast
 * group, and learn peers on the same network that announce the same info hash.
 *
 * Off by default in {@linkcode Client} (`lsd: true` turns it on): it sends packets to everyone on the network.
 *
 * @module
 */

import { createSocket, type Socket } from "node:dgram";
import { toHex } from "./_bytes.ts";

/** The IPv4 multicast group and port of BEP 14. */
export const LSD_GROUP = "239.192.152.143";
/** The LSD port. */
export const LSD_PORT = 6771;

/** Options for {@linkcode LocalDiscovery}. */
export interface LocalDiscoveryOptions {
  /** The torrents to announce and listen for (a function: a session's torrents come and go). */
  infoHashes: Uint8Array[] | (() => Uint8Array[]);
  /** Our BitTorrent listening port. */
  port: number | (() => number);
  /** Receives peers found on the local network. */
  onPeer: (host: string, port: number, infoHash: Uint8Array) => void;
  /** The interface address to announce on (e.g. "127.0.0.1" to stay on this machine). Default: the system's. */
  interfaceAddress?: string;
  /** Multicast group. @default {LSD_GROUP} */
  group?: string;
  /** Multicast port. @default {6771} */
  multicastPort?: number;
  /** Milliseconds between announces (BEP 14: every 5 minutes, never more than one a minute). @default {300000} */
  intervalMs?: number;
}

/**
 * Formats an LSD announce.
 *
 * @param infoHashes Up to 20 info hashes (the packet stays under 1400 bytes).
 * @param port Our listening port.
 * @param cookie An opaque token to recognise our own announces.
 * @param host The group "address:port" for the Host header.
 * @returns The packet.
 */
export function formatLsdAnnounce(
  infoHashes: Uint8Array[],
  port: number,
  cookie: string,
  host: string,
): Uint8Array {
  const lines = ["BT-SEARCH * HTTP/1.1", `Host: ${host}`, `Port: ${port}`];
  for (const ih of infoHashes.slice(0, 20)) lines.push(`Infohash: ${toHex(ih)}`);
  lines.push(`cookie: ${cookie}`, "", "", "");
  return new TextEncoder().encode(lines.join("\r\n"));
}

/**
 * Parses an LSD announce; undefined when it is not one (or is malformed).
 *
 * @param packet The datagram.
 * @returns The announced port, info hashes (lower-case hex) and cookie.
 */
export function parseLsdAnnounce(
  packet: Uint8Array,
): { port: number; infoHashes: string[]; cookie: string } | undefined {
  if (packet.length > 1500) return undefined;
  const text = new TextDecoder().decode(packet);
  const lines = text.split("\r\n");
  if (lines[0] !== "BT-SEARCH * HTTP/1.1") return undefined;
  let port = 0, cookie = "";
  const infoHashes: string[] = [];
  for (const line of lines.slice(1)) {
    const m = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
    if (!m) continue;
    const key = m[1].toLowerCase(), value = m[2].trim();
    if (key === "port") port = Number(value);
    else if (key === "infohash" && /^[0-9a-fA-F]{40}$/.test(value) && infoHashes.length < 20) {
      infoHashes.push(value.toLowerCase());
    } else if (key === "cookie") cookie = value.slice(0, 64);
  }
  if (!Number.isInteger(port) || port <= 0 || port > 65535 || infoHashes.length === 0) {
    return undefined;
  }
  return { port, infoHashes, cookie };
}

/** Announces and listens on the LSD multicast group. */
export class LocalDiscovery implements AsyncDisposable {
  readonly #o: LocalDiscoveryOptions;
  readonly #cookie = toHex(crypto.getRandomValues(new Uint8Array(8)));
  readonly #lastHeard = new Map<string, number>();
  #socket: Socket | undefined;
  readonly #announced = new Set<string>();
  #timer: ReturnType<typeof setInterval> | undefined;

  /**
   * Creates a {@linkcode LocalDiscovery}; call {@linkcode LocalDiscovery.start}.
   *
   * @param options Torrents, port, callback and network settings.
   */
  constructor(options: LocalDiscoveryOptions) {
    this.#o = options;
  }

  /** Joins the group, announces now and then every interval. */
  async start(): Promise<void> {
    const group = this.#o.group ?? LSD_GROUP, mport = this.#o.multicastPort ?? LSD_PORT;
    const sock = createSocket({ type: "udp4", reuseAddr: true });
    await new Promise<void>((resolve, reject) => {
      sock.once("error", reject);
      sock.bind(mport, "0.0.0.0", () => {
        sock.off("error", reject);
        resolve();
      });
    });
    sock.on("error", () => {});
    sock.addMembership(group, this.#o.interfaceAddress);
    if (this.#o.interfaceAddress) sock.setMulticastInterface(this.#o.interfaceAddress);
    sock.setMulticastLoopback(true);
    sock.on("message", (msg: Uint8Array, rinfo: { address: string }) => {
      const a = parseLsdAnnounce(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength));
      if (!a || a.cookie === this.#cookie) return;
      // at most one announce a minute is expected from a peer: ignore floods
      const key = `${rinfo.address}|${a.port}`;
      const now = Date.now();
      if ((this.#lastHeard.get(key) ?? 0) > now - 1000) return;
      this.#lastHeard.set(key, now);
      if (this.#lastHeard.size > 1000) this.#lastHeard.clear();
      const wanted = new Map(this.#hashes().map((h) => [toHex(h), h]));
      for (const hex of a.infoHashes) {
        const ih = wanted.get(hex);
        if (ih) this.#o.onPeer(rinfo.address, a.port, ih);
      }
    });
    this.#socket = sock;
    this.#announce();
    this.#timer = setInterval(
      () => this.#announce(),
      Math.max(60_000, this.#o.intervalMs ?? 300_000),
    );
  }

  #hashes(): Uint8Array[] {
    return typeof this.#o.infoHashes === "function" ? this.#o.infoHashes() : this.#o.infoHashes;
  }

  /**
   * Announces the torrents not announced yet (a torrent was added), at most once a minute per torrent: the next
   * regular announce covers the others.
   */
  announceSoon(): void {
    const fresh = this.#hashes().filter((h) => !this.#announced.has(toHex(h)));
    if (fresh.length > 0) this.#send(fresh);
  }

  /** Announces every torrent now (twenty per packet). */
  #announce(): void {
    this.#send(this.#hashes());
  }

  #send(hashes: Uint8Array[]): void {
    const sock = this.#socket;
    if (!sock) return;
    const group = this.#o.group ?? LSD_GROUP, mport = this.#o.multicastPort ?? LSD_PORT;
    const port = typeof this.#o.port === "function" ? this.#o.port() : this.#o.port;
    for (let i = 0; i < hashes.length; i += 20) {
      const batch = hashes.slice(i, i + 20);
      for (const h of batch) this.#announced.add(toHex(h));
      const packet = formatLsdAnnounce(batch, port, this.#cookie, `${group}:${mport}`);
      sock.send(packet, mport, group, () => {});
    }
  }

  /** Leaves the group and stops announcing. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#socket?.close();
    this.#socket = undefined;
  }

  /** Same as {@linkcode LocalDiscovery.stop}. */
  [Symbol.asyncDispose](): Promise<void> {
    this.stop();
    return Promise.resolve();
  }
}
