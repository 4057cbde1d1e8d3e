/**
 * The BitTorrent peer wire, with no sockets: handshakes, messages and their framing (BEP 3), the fast extension
 * (BEP 6), the extension protocol (BEP 10) with `ut_metadata` (BEP 9) and `ut_pex` (BEP 11), BEP 52's hash
 * messages, protocol encryption (MSE), and {@linkcode PeerConnection} — one connection's state machine over any
 * pair of Web Streams.
 *
 * Bytes from a socket go through {@linkcode FrameDecoder} (a `TransformStream`: the handshake, then one batch of
 * {@linkcode PeerMessage}s per chunk); {@linkcode decodeMessage} is the one message decoder. Writes are framed
 * straight into reused send buffers ({@linkcode SendQueue}).
 *
 * @example Decode a stream of peer-wire bytes
 * ```ts
 * import { encodeMessage, FrameDecoder } from "@seedbed/seedbed/wire";
 * import assert from "node:assert/strict";
 *
 * const bytes = [encodeMessage({ type: "have", index: 7 }), encodeMessage({ type: "unchoke" })];
 * const batches = await Array.fromAsync(ReadableStream.from(bytes).pipeThrough(new FrameDecoder()));
 * assert.deepEqual(batches.flatMap((b) => b.messages), [{ type: "have", index: 7 }, { type: "unchoke" }]);
 * ```
 *
 * @module
 */

export {
  type BlockRef,
  type OutstandingRequests,
  PeerConnection,
  type PeerConnectionOptions,
  type PeerHandler,
} from "../peer.ts";
export type { PeerStream } from "./stream.ts";
export { WireError } from "./errors.ts";
export {
  DEFAULT_MAX_MESSAGE_LENGTH,
  FrameDecoder,
  type FrameDecoderOptions,
  FrameParser,
  type MessageBatch,
  WireDecoder,
} from "./frame_decoder.ts";
export {
  encodeHandshake,
  type Handshake,
  HANDSHAKE_LENGTH,
  type HandshakeInit,
  parseHandshake,
} from "./handshake.ts";
export {
  decodeMessage,
  encodeBitfield,
  encodeBlockMessage,
  encodeExtended,
  encodeIndex,
  encodeKeepAlive,
  encodeMessage,
  encodePiece,
  encodePort,
  encodeSimple,
  MessageId,
  type PeerMessage,
  writeBlockMessage,
  writePieceHeader,
} from "./messages.ts";
export { SendQueue, type SendQueueOptions } from "./send_queue.ts";
export {
  decodeHashMessage,
  encodeHashes,
  encodeHashReject,
  encodeHashRequest,
  findHashRequestFile,
  HASH_REQUEST_SIZE,
  type HashFile,
  type HashMessage,
  HashMessageId,
  type HashRequest,
  sameHashRequest,
} from "./hashes.ts";
export { allowedFastSet } from "./allowed_fast.ts";
export {
  decodeExtensionHandshake,
  encodeExtensionHandshake,
  type ExtensionHandshake,
  MAX_EXTENSION_HANDSHAKE,
} from "./extension.ts";
export {
  decodeMetadataMessage,
  encodeMetadataMessage,
  MAX_METADATA_SIZE,
  METADATA_PIECE,
  type MetadataMessage,
  UT_METADATA_ID,
} from "./metadata.ts";
export {
  decodePex,
  encodePex,
  MAX_PEX_PEERS,
  PEX_ENCRYPTION,
  PEX_HOLEPUNCH,
  PEX_REACHABLE,
  PEX_SEED,
  PEX_UTP,
  type PexMessage,
  type PexPeer,
  UT_PEX_ID,
} from "./pex.ts";
export {
  acceptConnection,
  type AcceptOptions,
  type EncryptedConnection,
  type Encryption,
  initiateConnection,
  type InitiateOptions,
  Rc4,
} from "./mse.ts";
export {
  acceptsEncrypted,
  acceptsPlain,
  DEFAULT_ENCRYPTION_POLICY,
  dialAttempts,
  type DialMode,
  type EncryptionPolicy,
  parseEncryptionPolicy,
} from "./encryption_policy.ts";
export { Bandwidth, type RateGate, rateGate, TokenBucket } from "../transport/bandwidth.ts";
export { type ConnectOptions, connectTcp, type TcpStream, tcpStream } from "../transport/tcp.ts";
export { Bitfield } from "../bitfield.ts";
export type { BencodeDict } from "../bencode.ts";
export type { PeerAddress } from "../tracker/compact.ts";
export type { BencodeValue } from "../bencode.ts";
