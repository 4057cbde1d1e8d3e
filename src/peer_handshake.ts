/**
 * The handshake phase of a peer connection (BEP 3, BEP 10, BEP 52): our handshake with the extension bits the
 * options ask for, which info hash both handshakes carry once the peer's has arrived (a hybrid torrent's upgrade
 * to v2), and our extension handshake.
 *
 * @module
 */

import { bytesEqual } from "./_bytes.ts";
import { encodeExtensionHandshake } from "./wire/extension.ts";
import { encodeHandshake, type Handshake } from "./wire/handshake.ts";
import { encodeExtended } from "./wire/messages.ts";
import type { PeerConnectionOptions } from "./peer_options.ts";

/**
 * Our handshake carrying `infoHash`, with our peer id and the extension bits (fast, extended, DHT, v2) the
 * options ask for.
 *
 * @param options The connection's options.
 * @param infoHash The info hash it carries (the torrent's, or the one we answer a peer with).
 * @returns The handshake's 68 bytes.
 */
export function encodeOurHandshake(
  options: PeerConnectionOptions,
  infoHash: Uint8Array,
): Uint8Array<ArrayBuffer> {
  return encodeHandshake({
    infoHash,
    peerId: options.peerId,
    fast: options.fast ?? true,
    extended: options.extended ?? true,
    dht: options.dht ?? false,
    v2: options.v2 ?? false,
  });
}

/**
 * The info hash both handshakes carry, given the peer's. A hybrid torrent's peer may use either hash (BEP 52's
 * upgrade: our SHA-1 answered with the truncated v2 hash). With `answerHandshake` we answer second: with the
 * hash the peer used, or upgraded to v2 when it offers that and we speak v2.
 *
 * @param options The connection's options.
 * @param handshake The peer's handshake.
 * @returns The agreed hash, or undefined when the peer's handshake is for a different torrent.
 */
export function agreedInfoHash(
  options: PeerConnectionOptions,
  handshake: Handshake,
): Uint8Array | undefined {
  const v2 = options.infoHashV2;
  const ours = bytesEqual(handshake.infoHash, options.infoHash)
    ? options.infoHash
    : v2 && bytesEqual(handshake.infoHash, v2)
    ? v2
    : undefined;
  if (!ours || !options.answerHandshake) return ours;
  return v2 && handshake.v2 && (options.v2 ?? false) ? v2 : ours;
}

/**
 * Our extension handshake (BEP 10), as the extended message with id 0.
 *
 * @param options The connection's options (`extensionHandshake`: the fields to send).
 * @returns The whole message, length prefix included.
 */
export function encodeOurExtensionHandshake(options: PeerConnectionOptions): Uint8Array {
  return encodeExtended(0, encodeExtensionHandshake(options.extensionHandshake ?? {}));
}
