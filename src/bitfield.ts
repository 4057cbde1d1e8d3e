/**
 * A fixed-size set of piece indexes packed as BitTorrent sends it: bit 7 of byte 0 is piece 0 (BEP 3).
 *
 * @module
 */

/** A set of piece indexes packed MSB-first, with a population count kept current. */
export class Bitfield {
  /** The packed bits; spare bits in the last byte are always zero. */
  readonly bytes: Uint8Array<ArrayBuffer>;
  /** Number of indexes in the set's domain (pieces in the torrent). */
  readonly length: number;
  #count = 0;

  /**
   * Creates a {@linkcode Bitfield}.
   *
   * @param length How many pieces the torrent has.
   * @param bytes Packed bits to copy in (spare bits are cleared); all zero when omitted.
   */
  constructor(length: number, bytes?: Uint8Array) {
    if (!Number.isSafeInteger(length) || length < 0) {
      throw new RangeError(`Bad bitfield length ${length}`);
    }
    this.length = length;
    this.bytes = new Uint8Array(Math.ceil(length / 8));
    if (bytes) {
      this.bytes.set(bytes.subarray(0, this.bytes.length));
      const spare = this.bytes.length * 8 - length;
      if (spare > 0) this.bytes[this.bytes.length - 1] &= (0xff << spare) & 0xff;
      this.#recount();
    }
  }

  /** True when `bytes` is a valid packed bitfield for `length` pieces: right size and no spare bit set. */
  static isValid(length: number, bytes: Uint8Array): boolean {
    if (bytes.length !== Math.ceil(length / 8)) return false;
    const spare = bytes.length * 8 - length;
    return spare === 0 || (bytes[bytes.length - 1] & ((1 << spare) - 1)) === 0;
  }

  /** How many indexes are set. */
  get count(): number {
    return this.#count;
  }

  /** True when every index is set. */
  get full(): boolean {
    return this.#count === this.length;
  }

  /** True when index `i` is set. */
  has(i: number): boolean {
    return i >= 0 && i < this.length && (this.bytes[i >> 3] & (0x80 >> (i & 7))) !== 0;
  }

  /** Sets index `i`; returns true when it was not set before. */
  set(i: number): boolean {
    if (i < 0 || i >= this.length) {
      throw new RangeError(`Piece index ${i} out of range 0-${this.length - 1}`);
    }
    const mask = 0x80 >> (i & 7);
    if (this.bytes[i >> 3] & mask) return false;
    this.bytes[i >> 3] |= mask;
    this.#count++;
    return true;
  }

  /** Clears index `i`; returns true when it was set before. */
  clear(i: number): boolean {
    if (i < 0 || i >= this.length) return false;
    const mask = 0x80 >> (i & 7);
    if (!(this.bytes[i >> 3] & mask)) return false;
    this.bytes[i >> 3] &= ~mask;
    this.#count--;
    return true;
  }

  /** Sets every index. */
  setAll(): void {
    this.bytes.fill(0xff);
    const spare = this.bytes.length * 8 - this.length;
    if (spare > 0) this.bytes[this.bytes.length - 1] = (0xff << spare) & 0xff;
    this.#count = this.length;
  }

  /** Clears every index. */
  clearAll(): void {
    this.bytes.fill(0);
    this.#count = 0;
  }

  /** A copy of this bitfield. */
  clone(): Bitfield {
    return new Bitfield(this.length, this.bytes);
  }

  /** The set indexes in ascending order. */
  *[Symbol.iterator](): IterableIterator<number> {
    for (let b = 0; b < this.bytes.length; b++) {
      const byte = this.bytes[b];
      if (byte === 0) continue;
      for (let bit = 0; bit < 8; bit++) if (byte & (0x80 >> bit)) yield b * 8 + bit;
    }
  }

  #recount(): void {
    let n = 0;
    for (let b = 0; b < this.bytes.length; b++) {
      let v = this.bytes[b];
      while (v) {
        v &= v - 1;
        n++;
      }
    }
    this.#count = n;
  }
}
