/**
 * Seedbed: a BitTorrent client for Deno, built on Web APIs.
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
