/**
 * Seedbed: a BitTorrent client for Deno, built on Web APIs.
 *
 * The {@linkcode Client} downloads and seeds one torrent with AnyEvent::BitTorrent's API. The building blocks are
 * exported too: bencode, .torrent parsing and creation (v1, v2 and hybrid), magnet links, the peer wire protocol,
 * BEP 52 merkle trees and hash messages, storage and trackers.
 *
 * @example Download a torrent
 * ```ts ignore
 * import { Client } from "@seedbed/seedbed";
 *
 * await using client = new Client({ path: "some.torrent", basedir: "./downloads" });
 * client.addEventListener("hashpass", (e) => console.log("piece", e.detail.index, "verified"));
 * await client.ready;
 * await client.done;
 * ```
 *
 * @module
 */

export {
  type BencodeDict,
  BencodeError,
  type BencodeInput,
  type BencodeValue,
  decode as decodeBencode,
  type DecodeOptions,
  decodePrefix as decodeBencodePrefix,
  type DecodePrefixResult,
  encode as encodeBencode,
  type Span,
  valueSpan,
} from "./src/bencode.ts";
export { Bitfield } from "./src/bitfield.ts";
export {
  addPieceLayer,
  type Metainfo,
  MetainfoError,
  missingPieceLayers,
  parseMetainfo,
  type ParseMetainfoOptions,
  pieceHash,
  pieceSize,
  type TorrentFile,
} from "./src/metainfo.ts";
export {
  formatMagnet,
  infoDictMatches,
  MagnetError,
  type MagnetLink,
  parseMagnet,
  type TorrentFromMetadataOptions,
} from "./src/magnet.ts";
export {
  autoPieceLength,
  type CreateFileInput,
  createTorrent,
  type CreateTorrentOptions,
} from "./src/create.ts";
export {
  Client,
  CLIENT_CODE,
  type ClientEventMap,
  type ClientFile,
  type ClientOptions,
  type InitialState,
  makePeerId,
  VERSION,
} from "./src/client.ts";
export type { PeerInfo, PeerSource, TorrentState } from "./src/swarm/torrent.ts";
export {
  DEFAULT_BOOTSTRAP,
  Dht,
  type DhtOptions,
  type DhtState,
  type DhtStats,
  type LookupOptions,
} from "./src/dht/dht.ts";
export {
  decodeKrpc,
  KrpcError,
  type KrpcMessage,
  MAX_KRPC_PACKET,
  type NodeContact,
} from "./src/dht/krpc.ts";
export {
  type AddResult,
  type NodeStatus,
  type RoutingNode,
  RoutingTable,
  type RoutingTableOptions,
} from "./src/dht/routing_table.ts";
export {
  type BlockRef,
  PeerConnection,
  type PeerConnectionOptions,
  type PeerHandler,
  type PeerStream,
} from "./src/peer.ts";
export {
  encodeHandshake,
  type Handshake,
  type HandshakeInit,
  parseHandshake,
} from "./src/wire/handshake.ts";
export { decodeMessage, encodeMessage, type PeerMessage, WireError } from "./src/wire/messages.ts";
export { FrameDecoder } from "./src/wire/frame_decoder.ts";
export { allowedFastSet } from "./src/wire/allowed_fast.ts";
export {
  decodeHashMessage,
  encodeHashes,
  encodeHashReject,
  encodeHashRequest,
  findHashRequestFile,
  type HashFile,
  type HashMessage,
  HashMessageId,
  sameHashRequest,
} from "./src/wire/hashes.ts";
export { type FileSpan, Layout, type LayoutInput, type StorageFile } from "./src/storage/layout.ts";
export {
  BLOCK_SIZE,
  checkHashRequest,
  type FileHashes,
  FileMerkle,
  type HashRequest,
  layerRoot,
  MerkleHasher,
  MerkleTree,
  type PieceSubtree,
  treeHeight,
  uncleCount,
  verifyHashes,
  verifyPieceLayer,
} from "./src/storage/merkle.ts";
export {
  type PieceCheck,
  PieceVerifier,
  type PieceVerifierOptions,
  type V2Expectation,
} from "./src/storage/verify.ts";
export type { ExtensionHandshake } from "./src/wire/extension.ts";
export {
  type BackendFile,
  type FileBackend,
  type HashcheckOptions,
  type PieceCacheIndex,
  type ResumeState,
  Storage,
  StorageError,
  type StorageOptions,
} from "./src/storage/storage.ts";
export {
  announce,
  type AnnounceRequest,
  type AnnounceResponse,
  scrape,
  type ScrapeEntry,
  scrapeUrlFor,
  TrackerError,
} from "./src/tracker/http.ts";
export {
  type TrackerEvent,
  TrackerManager,
  type TrackerManagerOptions,
  type TrackerTierView,
} from "./src/tracker/tiers.ts";
export { type PeerAddress } from "./src/tracker/compact.ts";
export { TrackerServer, type TrackerServerOptions } from "./src/tracker/server.ts";
export { announceUdp, scrapeUdp, type UdpTrackerOptions } from "./src/tracker/udp.ts";
export { announceAny } from "./src/tracker/tiers.ts";
export {
  type Datagram,
  hasDenoDatagram,
  openUdpSocket,
  type UdpImplementation,
  type UdpSocket,
  type UdpSocketOptions,
} from "./src/udp.ts";
export { fetchMetadata, type FetchMetadataOptions } from "./src/swarm/metadata_fetcher.ts";
export { torrentFromMetadata } from "./src/magnet.ts";
export {
  decodeMetadataMessage,
  encodeMetadataMessage,
  MAX_METADATA_SIZE,
  type MetadataMessage,
} from "./src/wire/metadata.ts";
export { acceptConnection, type AcceptedConnection } from "./src/wire/mse.ts";
export { decodePex, encodePex, type PexMessage } from "./src/wire/pex.ts";
export {
  formatLsdAnnounce,
  LocalDiscovery,
  type LocalDiscoveryOptions,
  LSD_GROUP,
  LSD_PORT,
  parseLsdAnnounce,
} from "./src/lsd.ts";
