/**
 * A torrent's data on disk: the piece ↔ file geometry ({@linkcode Layout}), reading and writing whole pieces
 * across file boundaries with a part file for pieces that touch unwanted files ({@linkcode Storage}), hash checks
 * (Web Crypto SHA-1 for v1, BEP 52 merkle trees for v2, both for hybrids: {@linkcode TorrentVerifier}), BEP 47
 * file attributes, resume data, and the cache of whole pieces that serves uploads.
 *
 * @example Hash-check the data of a torrent
 * ```ts ignore
 * import { parseMetainfo } from "@seedbed/seedbed";
 * import { Storage } from "@seedbed/seedbed/storage";
 *
 * const meta = await parseMetainfo(await Deno.readFile("some.torrent"));
 * await using storage = new Storage({ dir: "./downloads", layout: meta });
 * await storage.hashcheck(undefined, { onFail: (i) => console.log("piece", i, "is bad") });
 * ```
 *
 * @module
 */

export {
  type FileSpan,
  Layout,
  type LayoutInput,
  pieceRangeOfFile,
  type StorageFile,
} from "./layout.ts";
export {
  type BackendFile,
  denoBackend,
  type FileBackend,
  type HashcheckOptions,
  type PieceCacheIndex,
  type ResumeState,
  Storage,
  StorageError,
  type StorageOptions,
} from "./storage.ts";
export type { AppendFile } from "./backend.ts";
export { PieceHasher, PieceVerifier, type PieceVerifierOptions } from "./hasher.ts";
export {
  BLOCK_SIZE,
  checkHashRequest,
  type FileHashes,
  FileMerkle,
  HASH_SIZE,
  type HashRequest,
  layerRoot,
  leafCount,
  MAX_HASH_REQUEST_LENGTH,
  MerkleHasher,
  MerkleTree,
  padHashes,
  type PieceSubtree,
  treeHeight,
  uncleCount,
  verifyHashes,
  verifyPieceLayer,
} from "./merkle.ts";
export {
  type PieceCheck,
  TorrentVerifier,
  type TorrentVerifierOptions,
  type V2Expectation,
} from "./verify.ts";
export {
  CacheBudget,
  type CachedPiece,
  PieceCache,
  type PieceCacheOptions,
  type PieceReader,
} from "./piece_cache.ts";
export { type CheckCallbacks, TorrentData, type TorrentDataOptions } from "./torrent_data.ts";
export { Bitfield } from "../bitfield.ts";
