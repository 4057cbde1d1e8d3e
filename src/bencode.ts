/**
 * Bencode (BEP 3): the serialisation of .torrent files, tracker responses, the extension protocol and the DHT.
 *
 * Byte strings decode to `Uint8Array` views into the input (no copy) and stay bytes; integers decode to `number`
 * when they fit in 2^53 and to `bigint` otherwise; dictionary keys are binary strings (one char per byte, so any
 * key round-trips). The decoder is iterative (a 100 000-deep input cannot overflow the stack) and bounded by
 * explicit limits on depth, token count and input size.
 *
 * @module
 */

import { concat, fromLatin1, latin1, utf8 } from "./_bytes.ts";

/** A decoded bencode value. */
export type BencodeValue = number | bigint | Uint8Array | BencodeValue[] | BencodeDict;

/** A bencode dictionary; keys are binary strings (each char code is one byte of the key). */
export interface BencodeDict {
  /** A value by its key. */
  [key: string]: BencodeValue;
}

/** A value accepted by {@linkcode encode}: like {@linkcode BencodeValue}, plus JS strings (encoded as UTF-8). */
export type BencodeInput =
  | number
  | bigint
  | string
  | Uint8Array
  | readonly BencodeInput[]
  | { readonly [key: string]: BencodeInput | undefined };

/** Thrown when bytes are not valid bencode or exceed a limit; `offset` is where the problem was found. */
export class BencodeError extends SyntaxError {
  /** Byte offset in the input where decoding failed. */
  readonly offset: number;
  /**
   * Creates a {@linkcode BencodeError}.
   *
   * @param message What is wrong.
   * @param offset The byte offset of the problem.
   */
  constructor(message: string, offset: number) {
    super(`Cannot decode bencode at offset ${offset}: ${message}`);
    this.name = "BencodeError";
    this.offset = offset;
  }
}

/** Limits and switches for {@linkcode decode}. */
export interface DecodeOptions {
  /**
   * Deepest nesting of lists and dictionaries accepted.
   * @default {64}
   */
  maxDepth?: number;
  /**
   * Most values (integers, strings, lists, dictionaries) accepted in one input.
   * @default {5000000}
   */
  maxTokens?: number;
  /**
   * Largest input accepted, in bytes.
   * @default {67108864}
   */
  maxLength?: number;
  /**
   * Reject dictionaries whose keys are not in ascending byte order (duplicates are always rejected).
   * @default {false}
   */
  strictKeyOrder?: boolean;
  /**
   * Record the byte span of every dictionary value, readable afterwards with {@linkcode valueSpan}.
   * @default {false}
   */
  spans?: boolean;
}

/** Start (inclusive) and end (exclusive) byte offsets of an encoded value inside the decoded input. */
export interface Span {
  /** Offset of the value's first byte. */
  start: number;
  /** Offset just past the value's last byte. */
  end: number;
}

const spanTable = new WeakMap<BencodeDict, Map<string, Span>>();

/**
 * The byte span of `dict[key]` as it appeared in the input; requires `{ spans: true }` when decoding.
 *
 * This is how the info hash is computed from the `info` bytes exactly as they appear in a .torrent file.
 *
 * @example Recover the raw bytes of a value
 * ```ts
 * import { decode, valueSpan } from "./bencode.ts";
 * import assert from "node:assert/strict";
 *
 * const bytes = new TextEncoder().encode("d4:infod1:ai1eee");
 * const top = decode(bytes, { spans: true }) as Record<string, unknown>;
 * const span = valueSpan(top as never, "info")!;
 * assert.equal(new TextDecoder().decode(bytes.subarray(span.start, span.end)), "d1:ai1ee");
 * ```
 *
 * @param dict A dictionary returned by {@linkcode decode} with `spans: true`.
 * @param key The key whose value's span is wanted.
 * @returns The span, or `undefined` when the key is absent or spans were not recorded.
 */
export function valueSpan(dict: BencodeDict, key: string): Span | undefined {
  return spanTable.get(dict)?.get(key);
}

/** Result of {@linkcode decodePrefix}. */
export interface DecodePrefixResult {
  /** The first value in the input. */
  value: BencodeValue;
  /** How many bytes it took; the rest of the input follows it. */
  length: number;
}

/**
 * Decodes one complete bencoded value.
 *
 * @example Decode a dictionary
 * ```ts
 * import { decode } from "./bencode.ts";
 * import assert from "node:assert/strict";
 *
 * const value = decode(new TextEncoder().encode("d3:bar4:spam3:fooi42ee")) as Record<string, unknown>;
 * assert.equal(value.foo, 42);
 * assert.deepEqual(value.bar, new TextEncoder().encode("spam"));
 * ```
 *
 * @param input The bencoded bytes.
 * @param options Limits and switches.
 * @returns The decoded value.
 * @throws {BencodeError} When the input is malformed, has trailing bytes, or exceeds a limit.
 */
export function decode(input: Uint8Array, options: DecodeOptions = {}): BencodeValue {
  const { value, length } = decodePrefix(input, options);
  if (length !== input.length) throw new BencodeError("trailing bytes after the value", length);
  return value;
}

interface Frame {
  container: BencodeValue[] | BencodeDict;
  isDict: boolean;
  start: number;
  key: string | undefined;
  lastKey: string | undefined;
  spans: Map<string, Span> | undefined;
}

/**
 * Decodes the first bencoded value of the input and reports its length, leaving any bytes after it alone
 * (as in BEP 9 `ut_metadata` messages, where raw data follows a dictionary).
 *
 * @example Decode a dictionary followed by raw bytes
 * ```ts
 * import { decodePrefix } from "./bencode.ts";
 * import assert from "node:assert/strict";
 *
 * const { value, length } = decodePrefix(new TextEncoder().encode("i7eRAW"));
 * assert.equal(value, 7);
 * assert.equal(length, 3);
 * ```
 *
 * @param input The bytes, starting with a bencoded value.
 * @param options Limits and switches.
 * @returns The value and the number of bytes it occupied.
 * @throws {BencodeError} When the value is malformed or exceeds a limit.
 */
export function decodePrefix(input: Uint8Array, options: DecodeOptions = {}): DecodePrefixResult {
  const maxDepth = options.maxDepth ?? 64;
  const maxTokens = options.maxTokens ?? 5_000_000;
  const maxLength = options.maxLength ?? 64 * 1024 * 1024;
  const strictOrder = options.strictKeyOrder ?? false;
  const wantSpans = options.spans ?? false;
  if (input.length > maxLength) {
    throw new BencodeError(`input of ${input.length} bytes exceeds the limit of ${maxLength}`, 0);
  }
  const len = input.length;
  const stack: Frame[] = [];
  let pos = 0;
  let tokens = 0;

  for (;;) {
    if (pos >= len) {
      throw new BencodeError(
        stack.length ? "truncated input: unterminated list or dictionary" : "empty input",
        pos,
      );
    }
    const c = input[pos];
    const top = stack.length ? stack[stack.length - 1] : undefined;
    const start = pos;
    let value: BencodeValue;

    if (c === 0x65 /* e */) {
      if (!top) throw new BencodeError("unexpected end marker 'e'", pos);
      if (top.key !== undefined) throw new BencodeError(`missing value for key "${top.key}"`, pos);
      stack.pop();
      pos++;
      value = top.container;
      if (top.spans) spanTable.set(top.container as BencodeDict, top.spans);
      // deliver the finished container to its parent, with its own start offset
      const parent = stack.length ? stack[stack.length - 1] : undefined;
      if (!parent) return { value, length: pos };
      deliver(parent, value, top.start, pos);
      continue;
    }

    if (top && top.isDict && top.key === undefined) {
      if (c < 0x30 || c > 0x39) {
        throw new BencodeError("dictionary key must be a byte string", pos);
      }
      const [bytes, next] = readString(input, pos);
      if (++tokens > maxTokens) throw new BencodeError(`more than ${maxTokens} tokens`, pos);
      pos = next;
      const key = latin1(bytes);
      if (top.lastKey !== undefined) {
        if (key === top.lastKey || Object.hasOwn(top.container, key)) {
          throw new BencodeError(`duplicate dictionary key "${printable(key)}"`, start);
        }
        if (strictOrder && key < top.lastKey) {
          throw new BencodeError(`dictionary key "${printable(key)}" out of order`, start);
        }
      }
      top.key = key;
      top.lastKey = key;
      continue;
    }

    if (++tokens > maxTokens) throw new BencodeError(`more than ${maxTokens} tokens`, pos);
    if (c === 0x69 /* i */) {
      [value, pos] = readInteger(input, pos);
    } else if (c >= 0x30 && c <= 0x39) {
      [value, pos] = readString(input, pos);
    } else if (c === 0x6c /* l */ || c === 0x64 /* d */) {
      if (stack.length >= maxDepth) {
        throw new BencodeError(`nesting deeper than ${maxDepth}`, pos);
      }
      const isDict = c === 0x64;
      stack.push({
        container: isDict ? Object.create(null) as BencodeDict : [],
        isDict,
        start: pos,
        key: undefined,
        lastKey: undefined,
        spans: isDict && wantSpans ? new Map() : undefined,
      });
      pos++;
      continue;
    } else {
      throw new BencodeError(`unexpected byte 0x${c.toString(16).padStart(2, "0")}`, pos);
    }
    if (!top) return { value, length: pos };
    deliver(top, value, start, pos);
  }
}

function deliver(frame: Frame, value: BencodeValue, start: number, end: number): void {
  if (frame.isDict) {
    const key = frame.key as string;
    (frame.container as BencodeDict)[key] = value;
    frame.spans?.set(key, { start, end });
    frame.key = undefined;
  } else {
    (frame.container as BencodeValue[]).push(value);
  }
}

function printable(key: string): string {
  // deno-lint-ignore no-control-regex
  return key.length > 40 ? key.slice(0, 40) + "…" : key.replace(/[\x00-\x1f\x7f-\x9f]/g, "?");
}

function readInteger(input: Uint8Array, pos: number): [number | bigint, number] {
  const start = pos;
  pos++; // 'i'
  let negative = false;
  if (input[pos] === 0x2d /* - */) {
    negative = true;
    pos++;
  }
  const digitsStart = pos;
  while (pos < input.length && input[pos] >= 0x30 && input[pos] <= 0x39) {
    pos++;
    if (pos - digitsStart > 64) throw new BencodeError("integer has more than 64 digits", start);
  }
  if (pos >= input.length) throw new BencodeError("truncated integer", start);
  if (input[pos] !== 0x65) {
    throw new BencodeError(
      `integer contains unexpected byte 0x${input[pos].toString(16).padStart(2, "0")}`,
      pos,
    );
  }
  const ndigits = pos - digitsStart;
  if (ndigits === 0) throw new BencodeError("integer has no digits", start);
  if (ndigits > 1 && input[digitsStart] === 0x30) {
    throw new BencodeError("integer has a leading zero", start);
  }
  if (negative && ndigits === 1 && input[digitsStart] === 0x30) {
    throw new BencodeError("negative zero", start);
  }
  let text = "";
  for (let i = digitsStart; i < pos; i++) text += String.fromCharCode(input[i]);
  let value: number | bigint;
  if (ndigits <= 15) {
    value = Number(text);
    if (negative) value = -value;
  } else {
    const big = BigInt(text);
    const signed = negative ? -big : big;
    value = signed >= BigInt(Number.MIN_SAFE_INTEGER) && signed <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(signed)
      : signed;
  }
  return [value, pos + 1];
}

function readString(input: Uint8Array, pos: number): [Uint8Array, number] {
  const start = pos;
  let n = 0;
  while (pos < input.length && input[pos] >= 0x30 && input[pos] <= 0x39) {
    if (pos - start >= 15) throw new BencodeError("string length has too many digits", start);
    n = n * 10 + (input[pos] - 0x30);
    pos++;
  }
  if (pos >= input.length) throw new BencodeError("truncated string length", start);
  if (input[pos] !== 0x3a /* : */) {
    throw new BencodeError("string length must be followed by ':'", pos);
  }
  if (pos - start > 1 && input[start] === 0x30) {
    throw new BencodeError("string length has a leading zero", start);
  }
  pos++;
  if (n > input.length - pos) {
    throw new BencodeError(
      `string length ${n} runs past the end of the input (${input.length - pos} bytes left)`,
      start,
    );
  }
  return [input.subarray(pos, pos + n), pos + n];
}

/**
 * Encodes a value as bencode. Dictionary keys are sorted by their bytes; `undefined` dictionary values are
 * skipped; JS strings are encoded as UTF-8 byte strings.
 *
 * @example Encode a dictionary
 * ```ts
 * import { encode } from "./bencode.ts";
 * import assert from "node:assert/strict";
 *
 * const bytes = encode({ foo: 42, bar: "spam" });
 * assert.equal(new TextDecoder().decode(bytes), "d3:bar4:spam3:fooi42ee");
 * ```
 *
 * @param value The value to encode.
 * @returns The bencoded bytes.
 * @throws {TypeError} When the value holds something bencode cannot express (a fraction, a boolean, `null`,
 *   a key with a char code above 255) or is nested more than 1000 deep.
 */
export function encode(value: BencodeInput): Uint8Array<ArrayBuffer> {
  const parts: Uint8Array[] = [];
  const push = (p: Uint8Array) => parts.push(p);
  const ascii = (s: string) => push(fromLatin1(s));
  const walk = (v: BencodeInput, depth: number): void => {
    if (depth > 1000) throw new TypeError("Cannot bencode: nested more than 1000 deep");
    if (typeof v === "number") {
      if (!Number.isSafeInteger(v)) throw new TypeError(`Cannot bencode non-integer number ${v}`);
      ascii(`i${v}e`);
    } else if (typeof v === "bigint") {
      ascii(`i${v}e`);
    } else if (typeof v === "string") {
      const bytes = utf8(v);
      ascii(`${bytes.length}:`);
      push(bytes);
    } else if (v instanceof Uint8Array) {
      ascii(`${v.length}:`);
      push(v);
    } else if (Array.isArray(v)) {
      ascii("l");
      for (const item of v) walk(item, depth + 1);
      ascii("e");
    } else if (v !== null && typeof v === "object") {
      ascii("d");
      const dict = v as { readonly [key: string]: BencodeInput | undefined };
      const keys = Object.keys(dict).sort();
      for (const key of keys) {
        const item = dict[key];
        if (item === undefined) continue;
        for (let i = 0; i < key.length; i++) {
          if (key.charCodeAt(i) > 255) {
            throw new TypeError(
              `Cannot bencode key "${key}": keys are binary strings (char codes 0-255)`,
            );
          }
        }
        ascii(`${key.length}:`);
        ascii(key);
        walk(item, depth + 1);
      }
      ascii("e");
    } else {
      throw new TypeError(`Cannot bencode a value of type ${v === null ? "null" : typeof v}`);
    }
  };
  walk(value, 0);
  return concat(parts);
}
