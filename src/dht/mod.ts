/**
 * The mainline DHT (BEP 5, IPv6 per BEP 32, read-only nodes per BEP 43): a {@linkcode Dht} node, its KRPC codec
 * and routing table, and the small UDP socket interface it runs on (`node:dgram`, or `Deno.listenDatagram` when
 * Deno runs with `--unstable-net`).
 *
 * @example Find peers for an info hash
 * ```ts ignore
 * import { Dht } from "@seedbed/seedbed/dht";
 *
 * await using dht = await Dht.open({ port: 6881 });
 * const peers = await dht.lookup(infoHash, { announcePort: 6881 });
 * ```
 *
 * @module
 */

export {
  DEFAULT_BOOTSTRAP,
  Dht,
  type DhtOptions,
  type DhtState,
  type DhtStats,
  type LookupOptions,
} from "./dht.ts";
export {
  decodeKrpc,
  encodeCompactNodes,
  KrpcError,
  KrpcErrorCode,
  type KrpcMessage,
  MAX_KRPC_PACKET,
  type NodeContact,
  parseCompactNodes,
} from "./krpc.ts";
export {
  type AddResult,
  type NodeStatus,
  type RoutingNode,
  RoutingTable,
  type RoutingTableOptions,
} from "./routing_table.ts";
export {
  type Datagram,
  hasDenoDatagram,
  openUdpSocket,
  type UdpImplementation,
  type UdpSocket,
  type UdpSocketOptions,
} from "../udp.ts";
export {
  formatLsdAnnounce,
  LocalDiscovery,
  type LocalDiscoveryOptions,
  LSD_GROUP,
  LSD_PORT,
  parseLsdAnnounce,
} from "../lsd.ts";
export type { PeerAddress } from "../tracker/compact.ts";
export type { BencodeDict, BencodeValue } from "../bencode.ts";
