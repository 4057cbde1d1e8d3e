import assert from "node:assert/strict";
import { BencodeError, decode, decodePrefix, encode, valueSpan } from "../src/bencode.ts";

const te = new TextEncoder();
const b = (s: string) => te.encode(s);

function fails(input: string | Uint8Array, pattern: RegExp, options = {}): BencodeError {
  const bytes = typeof input === "string" ? b(input) : input;
  let caught: unknown;
  try {
    decode(bytes, options);
  } catch (err) {
    caught = err;
  }
  assert.ok(
    caught instanceof BencodeError,
    `expected BencodeError for ${String(input).slice(0, 40)}`,
  );
  assert.ok(caught instanceof SyntaxError);
  assert.match(caught.message, pattern);
  return caught;
}

Deno.test("decode() reads integers, strings, lists and dictionaries", () => {
  assert.equal(decode(b("i42e")), 42);
  assert.equal(decode(b("i-7e")), -7);
  assert.equal(decode(b("i0e")), 0);
  assert.deepEqual(decode(b("4:spam")), b("spam"));
  assert.deepEqual(decode(b("0:")), new Uint8Array(0));
  assert.deepEqual(decode(b("li1ei2ee")), [1, 2]);
  const d = decode(b("d3:cow3:moo4:spaml1:a1:bee")) as Record<string, unknown>;
  assert.deepEqual(d.cow, b("moo"));
  assert.deepEqual(d.spam, [b("a"), b("b")]);
});

Deno.test("decode() keeps byte strings as bytes, including invalid UTF-8 and NUL", () => {
  const raw = new Uint8Array([0x33, 0x3a, 0xff, 0x00, 0xfe]);
  assert.deepEqual(decode(raw), new Uint8Array([0xff, 0x00, 0xfe]));
});

Deno.test("decode() turns integers past 2^53 into bigint", () => {
  assert.equal(decode(b("i9007199254740991e")), 9007199254740991);
  assert.equal(decode(b("i9007199254740993e")), 9007199254740993n);
  assert.equal(decode(b("i-99999999999999999999e")), -99999999999999999999n);
});

Deno.test("decode() rejects an integer with a leading zero, -0, no digits, or junk", () => {
  fails("i03e", /leading zero/);
  fails("i-0e", /negative zero/);
  fails("ie", /no digits/);
  fails("i-e", /no digits/);
  fails("i1x2e", /unexpected byte/);
  fails("i12", /truncated integer/);
  fails("i" + "1".repeat(70) + "e", /more than 64 digits/);
});

Deno.test("decode() rejects strings with a leading zero length, a missing colon, or running past the end", () => {
  fails("04:spam", /leading zero/);
  fails("4spam", /followed by ':'/);
  const err = fails("10:short", /runs past the end/);
  assert.equal(err.offset, 0);
  fails("3", /truncated string length/);
  fails("9999999999999999:x", /too many digits/);
});

Deno.test("decode() rejects truncation, trailing bytes, stray end markers and unknown bytes", () => {
  fails("", /empty input/);
  fails("l", /truncated/);
  fails("d3:foo", /truncated/);
  fails("i1ei2e", /trailing bytes/);
  fails("e", /unexpected end marker/);
  fails("x", /unexpected byte 0x78/);
});

Deno.test("decode() rejects non-string keys, missing values and duplicate keys; order is optional", () => {
  fails("di1ei2ee", /key must be a byte string/);
  fails("d3:fooe", /missing value for key "foo"/);
  fails("d1:ai1e1:ai2ee", /duplicate dictionary key "a"/);
  assert.deepEqual(Object.keys(decode(b("d1:bi1e1:ai2ee")) as object), ["b", "a"]);
  fails("d1:bi1e1:ai2ee", /out of order/, { strictKeyOrder: true });
});

Deno.test("decode() survives 100 000 levels of nesting with an error, not a stack overflow", () => {
  const deep = "l".repeat(100_000) + "e".repeat(100_000);
  const err = fails(deep, /nesting deeper than 64/);
  assert.equal(err.offset, 64);
  assert.deepEqual(decode(b("l".repeat(10) + "e".repeat(10)), { maxDepth: 10 }), [[[[[[[[[
    [],
  ]]]]]]]]]);
});

Deno.test("decode() enforces token and size limits", () => {
  fails("li1ei2ei3ee", /more than 3 tokens/, { maxTokens: 3 });
  fails("4:spam", /exceeds the limit of 5/, { maxLength: 5 });
});

Deno.test("decode() offsets point at the problem", () => {
  assert.equal(fails("d3:fooi01ee", /leading zero/).offset, 6);
});

Deno.test("valueSpan() recovers the raw bytes of a dictionary value", () => {
  const bytes = b("d4:infod1:bi1e1:ai2ee3:zzz1:ye");
  const top = decode(bytes, { spans: true }) as Record<string, never>;
  const span = valueSpan(top, "info")!;
  assert.equal(new TextDecoder().decode(bytes.subarray(span.start, span.end)), "d1:bi1e1:ai2ee");
  const z = valueSpan(top, "zzz")!;
  assert.equal(new TextDecoder().decode(bytes.subarray(z.start, z.end)), "1:y");
  assert.equal(valueSpan(decode(bytes) as never, "info"), undefined);
});

Deno.test("decodePrefix() stops after the first value", () => {
  const r = decodePrefix(b("d8:msg_typei1e5:piecei0eeRAWDATA"));
  assert.equal(r.length, 25);
  assert.equal((r.value as Record<string, unknown>).piece, 0);
});

Deno.test("encode() sorts keys, skips undefined, encodes strings as UTF-8 and round-trips", () => {
  assert.equal(new TextDecoder().decode(encode({ b: 1, a: "é", c: undefined })), "d1:a2:é1:bi1ee");
  const value = { list: [1, -2, b("x"), [], {}], big: 2n ** 70n, bytes: new Uint8Array([0, 255]) };
  const back = decode(encode(value)) as Record<string, unknown>;
  assert.deepEqual(back.list, [1, -2, b("x"), [], Object.create(null)]);
  assert.equal(back.big, 2n ** 70n);
  assert.deepEqual(back.bytes, new Uint8Array([0, 255]));
});

Deno.test("encode() refuses what bencode cannot express", () => {
  assert.throws(() => encode(1.5), TypeError);
  assert.throws(() => encode(null as never), TypeError);
  assert.throws(() => encode(true as never), TypeError);
  assert.throws(() => encode({ "é€": 1 }), /binary strings/);
});

Deno.test("a dictionary key named __proto__ is an ordinary key", () => {
  const d = decode(b("d9:__proto__i1ee")) as Record<string, unknown>;
  assert.equal(Object.getPrototypeOf(d), null);
  assert.equal(d["__proto__"], 1);
});
