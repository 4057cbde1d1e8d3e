/**
 * Piece ↔ file geometry: which byte ranges of which files make up a block of a piece.
 *
 * @module
 */

/** A file as storage sees it. */
export interface StorageFile {
  /** Sanitised path components relative to the download directory. */
  path: string[];
  /** Size in bytes. */
  length: number;
  /** Offset of the file in the torrent's concatenated data. */
  offset: number;
  /** BEP 47 padding file: never written, reads as zeros. */
  padding?: boolean;
  /** BEP 52 merkle root (32 bytes) of a non-empty file of a v2 or hybrid torrent. */
  piecesRoot?: Uint8Array;
  /** BEP 47 "x": made executable by {@linkcode Storage.applyAttributes}. */
  executable?: boolean;
  /** BEP 47 "l": a symbolic link to this path (relative to the download directory), made by `applyAttributes`. */
  symlink?: string[];
}

/** What a layout is built from (a parsed torrent satisfies it). */
export interface LayoutInput {
  /** The files in torrent order. */
  files: StorageFile[];
  /** Bytes per piece. */
  pieceLength: number;
  /** Total bytes. */
  length: number;
  /** Concatenated 20-byte SHA-1 piece hashes (empty for a v2-only torrent). */
  pieces: Uint8Array;
  /** Number of pieces. @default {pieces.length / 20} */
  pieceCount?: number;
  /** Which hashes verify pieces: SHA-1 (1), merkle trees (2), or both ("hybrid"). @default {1} */
  version?: 1 | 2 | "hybrid";
  /** BEP 52 piece layers by the hex of their file's `pieces root` (v2 and hybrid). */
  pieceLayers?: ReadonlyMap<string, Uint8Array>;
}

/**
 * First and last piece (inclusive) holding bytes of file `file`; undefined for an empty file.
 *
 * @param geometry The files and piece length (a parsed torrent or a {@linkcode Layout} will do).
 * @param file File index.
 */
export function pieceRangeOfFile(
  geometry: { readonly files: readonly StorageFile[]; readonly pieceLength: number },
  file: number,
): [number, number] | undefined {
  const f = geometry.files[file];
  if (f.length === 0) return undefined;
  return [
    Math.floor(f.offset / geometry.pieceLength),
    Math.floor((f.offset + f.length - 1) / geometry.pieceLength),
  ];
}

/** A contiguous range inside one file. */
export interface FileSpan {
  /** Index of the file. */
  file: number;
  /** Offset inside the file. */
  fileOffset: number;
  /** Offset inside the requested range (the piece or block buffer). */
  bufferOffset: number;
  /** Bytes in this span. */
  length: number;
}

/** Torrent geometry with fast lookups from byte offsets to files. */
export class Layout {
  /** The files. */
  readonly files: readonly StorageFile[];
  /** Bytes per piece. */
  readonly pieceLength: number;
  /** Total bytes. */
  readonly length: number;
  /** Number of pieces. */
  readonly pieceCount: number;
  /** Piece hashes (SHA-1; empty for a v2-only torrent). */
  readonly pieces: Uint8Array;
  /** Which hashes verify pieces. */
  readonly version: 1 | 2 | "hybrid";
  /** BEP 52 piece layers by the hex of their file's root (may gain layers later, for magnet links). */
  readonly pieceLayers: ReadonlyMap<string, Uint8Array>;
  /** Indexes of the non-empty files, sorted by offset (for binary search). */
  readonly #nonEmpty: number[];

  /**
   * Creates a {@linkcode Layout}.
   *
   * @param input Files, piece length, total length and piece hashes.
   */
  constructor(input: LayoutInput) {
    this.files = input.files;
    this.pieceLength = input.pieceLength;
    this.length = input.length;
    this.pieceCount = input.pieceCount ?? input.pieces.length / 20;
    this.pieces = input.pieces;
    this.version = input.version ?? 1;
    this.pieceLayers = input.pieceLayers ?? new Map();
    this.#nonEmpty = [];
    for (let i = 0; i < input.files.length; i++) {
      if (input.files[i].length > 0) this.#nonEmpty.push(i);
    }
  }

  /** Bytes in piece `index` (the last one may be shorter). */
  pieceSize(index: number): number {
    return index === this.pieceCount - 1
      ? this.length - index * this.pieceLength
      : this.pieceLength;
  }

  /**
   * The file ranges covering `length` bytes at `begin` inside piece `index`, in order; zero-length files never
   * appear.
   *
   * @throws {RangeError} When the range is outside the piece.
   */
  spans(index: number, begin: number, length: number): FileSpan[] {
    if (
      index < 0 || index >= this.pieceCount || begin < 0 || length < 0 ||
      begin + length > this.pieceSize(index)
    ) {
      throw new RangeError(`Range ${begin}+${length} is outside piece ${index}`);
    }
    const out: FileSpan[] = [];
    let pos = index * this.pieceLength + begin;
    const end = pos + length;
    let k = this.#findFile(pos);
    let bufferOffset = 0;
    while (pos < end && k < this.#nonEmpty.length) {
      const fi = this.#nonEmpty[k];
      const f = this.files[fi];
      const fileEnd = f.offset + f.length;
      const n = Math.min(end, fileEnd) - pos;
      if (n > 0) {
        out.push({ file: fi, fileOffset: pos - f.offset, bufferOffset, length: n });
        pos += n;
        bufferOffset += n;
      }
      k++;
    }
    return out;
  }

  /** Indexes of the files that hold bytes of piece `index`. */
  filesOfPiece(index: number): number[] {
    return this.spans(index, 0, this.pieceSize(index)).map((s) => s.file);
  }

  /**
   * First and last piece holding bytes of file `file`; undefined for an empty file.
   */
  pieceRangeOfFile(file: number): [number, number] | undefined {
    return pieceRangeOfFile(this, file);
  }

  /** Position in #nonEmpty of the file containing byte `pos`. */
  #findFile(pos: number): number {
    let lo = 0, hi = this.#nonEmpty.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.files[this.#nonEmpty[mid]].offset <= pos) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}
