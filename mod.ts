/**
 * Seedbed: a BitTorrent client for Deno, built on Web APIs.
 *
 * This module is what an application uses: the {@linkcode Client} (one torrent, with AnyEvent::BitTorrent's API),
 * .torrent files (v1, v2 and hybrid) and magnet links (parse, create), bencode, streaming a torrent's files over
 * HTTP, and the errors these throw. The building blocks have their own entry points: `@seedbed/seedbed/wire` (the peer protocol),
 * `/tracker`, `/dht` (and local discovery), `/storage` and `/http`.
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
 * @example Play a file while it downloads
 * ```ts ignore
 * import { Client, serveStreams } from "@seedbed/seedbed";
 *
 * await using client = new Client({ path: "movie.torrent", basedir: "./downloads" });
 * await client.ready;
 * // over HTTP, for mpv or VLC: the pieces a player reads are fetched first
 * await using server = serveStreams(client.streamSource());
 * console.log(`mpv ${server.playlistUrl}`);
 * // or the bytes themselves, in order, as soon as their pieces are verified
 * for await (const chunk of client.files[0].stream({ start: 1_000_000 })) console.log(chunk.length);
 * ```
 *
 * @example Read a magnet link
 * ```ts
 * import { parseMagnet } from "@seedbed/seedbed";
 * import assert from "node:assert/strict";
 *
 * const link = parseMagnet(
 *   "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&dn=demo&tr=http%3A%2F%2F127.0.0.1%3A6969%2Fannounce",
 * );
 * assert.equal(link.name, "demo");
 * assert.deepEqual(link.trackers, ["http://127.0.0.1:6969/announce"]);
 * ```
 *
 * @module
 */

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
export {
  DuplicateTorrentError,
  type EngineSettings,
  Session,
  type SessionEventMap,
  type SessionLimits,
  type SessionOptions,
  type SessionStats,
} from "./src/session/session.ts";
export {
  type FileStreamOptions,
  type RunState,
  SessionTorrent,
  type TorrentAddOptions,
  type TorrentHost,
  type TorrentSource,
} from "./src/session/session_torrent.ts";
export type {
  PeerInfo,
  PeerSource,
  TorrentEvents,
  TorrentOptions,
  TorrentState,
  TorrentTrace,
} from "./src/swarm/types.ts";
export type { LookupOptions } from "./src/dht/dht.ts";
export type { NodeContact } from "./src/dht/krpc.ts";
export type { RoutingTable } from "./src/dht/routing_table.ts";
export type { UdpSocket } from "./src/udp.ts";
export type { PeerAddress } from "./src/tracker/compact.ts";
export type { HostCheckOptions } from "./src/http/host_check.ts";
export type { RateGate, TokenBucket } from "./src/transport/bandwidth.ts";
export type { Torrent } from "./src/swarm/torrent.ts";
export type { DeadlineReader, PieceDeadlines } from "./src/swarm/deadlines.ts";
export type { TorrentEmit } from "./src/swarm/types.ts";
export type { CacheBudget } from "./src/storage/piece_cache.ts";
export type { PieceMemoryPool } from "./src/swarm/piece_memory_pool.ts";
export type { PeerStream } from "./src/wire/stream.ts";
export type { AddResult, NodeStatus, RoutingNode } from "./src/dht/routing_table.ts";
export type { Datagram } from "./src/udp.ts";
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
  torrentFromMetadata,
  type TorrentFromMetadataOptions,
} from "./src/magnet.ts";
export {
  autoPieceLength,
  type CreateFileInput,
  createTorrent,
  type CreateTorrentOptions,
} from "./src/create.ts";
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
export { clientFromPeerId, describePeerClient } from "./src/peer_id.ts";
export type { EncryptionPolicy } from "./src/wire/encryption_policy.ts";
export type { UtpFirst } from "./src/swarm/dialer.ts";
export { Dht, type DhtOptions, type DhtState, type DhtStats } from "./src/dht/dht.ts";
export type { PieceCacheIndex } from "./src/storage/storage.ts";
export { StorageError } from "./src/storage/storage.ts";
export { TrackerError } from "./src/tracker/http.ts";
export type { TrackerTierView } from "./src/tracker/tiers.ts";
export { WireError } from "./src/wire/errors.ts";
export {
  createStreamHandler,
  type StreamFile,
  type StreamHandler,
  type StreamHandlerOptions,
  type StreamSource,
  type StreamSources,
  streamUrlPath,
} from "./src/http/stream_handler.ts";
export { serveStreams, type ServeStreamsOptions, type StreamServer } from "./src/http/serve.ts";
