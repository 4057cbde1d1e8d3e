/**
 * Trackers: HTTP announces and scrapes (BEP 3, BEP 23 compact peers, BEP 7 IPv6), UDP trackers (BEP 15), tiers
 * with failover (BEP 12), and a small in-process tracker server for tests and private swarms.
 *
 * @example Announce to an HTTP tracker
 * ```ts ignore
 * import { announce } from "@seedbed/seedbed/tracker";
 *
 * const res = await announce("http://tracker.example/announce", {
 *   infoHash, peerId, port: 6881, uploaded: 0, downloaded: 0, left: size, event: "started",
 * });
 * console.log(res.interval, res.peers);
 * ```
 *
 * @module
 */

export {
  announce,
  type AnnounceRequest,
  type AnnounceResponse,
  decodeTrackerBody,
  parseAnnounceResponse,
  scrape,
  type ScrapeEntry,
  scrapeUrlFor,
  TrackerError,
} from "./http.ts";
export { announceUdp, scrapeUdp, type UdpTrackerOptions } from "./udp.ts";
export {
  announceAny,
  type TrackerAnnounceResult,
  type TrackerEvent,
  TrackerManager,
  type TrackerManagerOptions,
  type TrackerTierView,
} from "./tiers.ts";
export {
  encodeCompactPeers,
  formatAddress,
  parseCompactPeers,
  type PeerAddress,
} from "./compact.ts";
export { TrackerServer, type TrackerServerOptions } from "./server.ts";
export type { BencodeDict, BencodeValue } from "../bencode.ts";
export type { Datagram, UdpSocket } from "../udp.ts";
