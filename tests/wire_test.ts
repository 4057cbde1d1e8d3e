import assert from "node:assert/strict";
import { decode } from "../src/bencode.ts";
import { concat } from "../src/_bytes.ts";
import { allowedFastSet } from "../src/wire/allowed_fast.ts";
import { decodeExtensionHandshake, encodeExtensionHandshake } from "../src/wire/extension.ts";
import { FrameDecoder, FrameParser } from "../src/wire/frame_decoder.ts";
import { encodeHandshake, parseHandshake } from "../src/wire/handshake.ts";
import { decodeMessage, encodeMessage, type PeerMessage, WireError } from "../src/wire/messages.ts";
import { decodePex, encodePex, PEX_REACHABLE, PEX_SEED, PEX_UTP } from "../src/wire/pex.ts";

const ALL: PeerMessage[] = [
  { type: "keepalive" },
  { type: "choke" },
  { type: "unchoke" },
  { type: "interested" },
  { type: "notinterested" },
  { type: "have", index: 0xfffffffe },
  { type: "bitfield", bits: new Uint8Array([0b10100000, 0x80]) },
  { type: "request", index: 3, begin: 16384, length: 16384 },
  { type: "piece", index: 7, begin: 32768, data: new Uint8Array([1, 2, 3, 4, 5]) },
  { type: "cancel", index: 3, begin: 16384, length: 16384 },
  { type: "port", port: 6881 },
  { type: "suggest", index: 9 },
  { type: "haveall" },
  { type: "havenone" },
  { type: "reject", index: 1, begin: 0, length: 100 },
  { type: "allowedfast", index: 12 },
  { type: "extended", id: 3, payload: new Uint8Array([100, 101]) },
  { type: "unknown", id: 99, payload: new Uint8Array([7]) },
];

const stream = () => concat(ALL.map(encodeMessage));

async function decodeChunks(chunks: Uint8Array[], max?: number): Promise<PeerMessage[]> {
  const batches = await Array.fromAsync(
    ReadableStream.from(chunks).pipeThrough(new FrameDecoder(max)),
  );
  return batches.flatMap((b) => b.messages);
}

Deno.test("every message encodes and decodes to itself", () => {
  for (const m of ALL) assert.deepEqual(decodeMessage(encodeMessage(m).subarray(4)), m, m.type);
});

Deno.test("a known message with the wrong length is a WireError", () => {
  assert.throws(() => decodeMessage(new Uint8Array([4, 0, 0])), WireError);
  assert.throws(() => decodeMessage(new Uint8Array([0, 1])), /message 0 has 1 payload bytes/);
  assert.throws(() => decodeMessage(new Uint8Array([6, 0, 0, 0, 0])), WireError);
  assert.throws(() => decodeMessage(new Uint8Array([7, 0, 0])), /piece message/);
});

Deno.test("FrameDecoder decodes all messages in one chunk", async () => {
  assert.deepEqual(await decodeChunks([stream()]), ALL);
});

Deno.test("FrameDecoder decodes the stream split at every byte boundary", async () => {
  const bytes = stream();
  for (let cut = 1; cut < bytes.length; cut++) {
    const got = await decodeChunks([bytes.subarray(0, cut), bytes.subarray(cut)]);
    assert.deepEqual(got, ALL, `split at ${cut}`);
  }
});

Deno.test("FrameDecoder decodes the stream delivered one byte at a time", async () => {
  const bytes = stream();
  const chunks = Array.from(bytes, (_, i) => bytes.subarray(i, i + 1));
  assert.deepEqual(await decodeChunks(chunks), ALL);
});

Deno.test("a length prefix over the limit is refused before any allocation", async () => {
  const parser = new FrameParser(1000);
  assert.throws(
    () => parser.push(new Uint8Array([0xff, 0xff, 0xff, 0xff]), () => {}),
    /4294967295 exceeds/,
  );
  assert.equal(parser.buffered, 0);
  await assert.rejects(decodeChunks([new Uint8Array([0, 0, 4, 1, 7])], 1000), WireError);
});

Deno.test("a stream that ends inside a frame is an error", async () => {
  await assert.rejects(decodeChunks([new Uint8Array([0, 0, 0, 5, 4, 0])]), /ended inside a frame/);
});

Deno.test("piece payloads inside one chunk are views, not copies", () => {
  const bytes = encodeMessage({
    type: "piece",
    index: 0,
    begin: 0,
    data: new Uint8Array(16384).fill(9),
  });
  const parser = new FrameParser();
  let frame: Uint8Array | undefined;
  parser.push(bytes, (f) => (frame = f));
  assert.equal(frame!.buffer, bytes.buffer);
});

Deno.test("the frame decoder survives random chunking and random garbage (bounded fuzz)", async () => {
  let seed = 99;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const bytes = stream();
  for (let round = 0; round < 300; round++) {
    const chunks: Uint8Array[] = [];
    for (let off = 0; off < bytes.length;) {
      const n = 1 + rand(40);
      chunks.push(bytes.subarray(off, off + n));
      off += n;
    }
    assert.deepEqual(await decodeChunks(chunks), ALL);
    const garbage = Uint8Array.from({ length: 1 + rand(64) }, () => rand(256));
    try {
      await decodeChunks([garbage], 4096);
    } catch (err) {
      assert.ok(err instanceof WireError, String(err));
    }
  }
});

Deno.test("handshake encodes and parses the reserved bits", () => {
  const infoHash = new Uint8Array(20).fill(1), peerId = new Uint8Array(20).fill(2);
  const bytes = encodeHandshake({ infoHash, peerId, fast: true, extended: true, dht: true });
  assert.equal(bytes.length, 68);
  assert.equal(bytes[25], 0x10);
  assert.equal(bytes[27], 0x05);
  const hs = parseHandshake(bytes);
  assert.deepEqual([hs.fast, hs.extended, hs.dht], [true, true, true]);
  assert.deepEqual(hs.infoHash, infoHash);
  assert.deepEqual(hs.peerId, peerId);
  const plain = parseHandshake(encodeHandshake({ infoHash, peerId }));
  assert.deepEqual([plain.fast, plain.extended, plain.dht], [false, false, false]);
  const bad = bytes.slice();
  bad[5] = 0x78;
  assert.throws(() => parseHandshake(bad), /not "BitTorrent protocol"/);
});

Deno.test("allowed-fast sets match BEP 6's published vectors", async () => {
  const infoHash = new Uint8Array(20).fill(0xaa);
  assert.deepEqual(await allowedFastSet("80.4.4.200", infoHash, 1313, 7), [
    1059,
    431,
    808,
    1217,
    287,
    376,
    1188,
  ]);
  assert.deepEqual(
    await allowedFastSet("80.4.4.200", infoHash, 1313, 9),
    [1059, 431, 808, 1217, 287, 376, 1188, 353, 508],
  );
  // only the /24 matters
  assert.deepEqual(
    await allowedFastSet("80.4.4.1", infoHash, 1313, 7),
    await allowedFastSet("80.4.4.200", infoHash, 1313, 7),
  );
  assert.equal((await allowedFastSet("1.2.3.4", infoHash, 5, 10)).length, 5);
  await assert.rejects(allowedFastSet("::1", infoHash, 10, 2), TypeError);
});

Deno.test("extension handshakes round-trip and bad ones are WireErrors", () => {
  const bytes = encodeExtensionHandshake({
    m: { ut_metadata: 2 },
    v: "Seedbed",
    p: 6881,
    reqq: 250,
    metadata_size: 1234,
  });
  const hs = decodeExtensionHandshake(bytes);
  assert.deepEqual(hs.m, { ut_metadata: 2 });
  assert.equal(hs.v, "Seedbed");
  assert.equal(hs.p, 6881);
  assert.equal(hs.reqq, 250);
  assert.equal(hs.metadataSize, 1234);
  assert.throws(() => decodeExtensionHandshake(new TextEncoder().encode("le")), /not a dictionary/);
  assert.throws(
    () => decodeExtensionHandshake(new TextEncoder().encode("d1:mi1ee")),
    /m is not a dictionary/,
  );
  assert.throws(() => decodeExtensionHandshake(new TextEncoder().encode("d1:m")), /not bencode/);
  // out-of-range values are ignored, not trusted
  const odd = decodeExtensionHandshake(
    new TextEncoder().encode("d1:md1:xi999ee1:pi70000e4:reqqi-1ee"),
  );
  assert.deepEqual([odd.m, odd.p, odd.reqq], [{}, undefined, undefined]);
});

Deno.test("PEX messages round-trip IPv4 and IPv6 contacts and bound what they accept", () => {
  const added = [{ host: "10.0.0.1", port: 1 }, { host: "::1", port: 2 }];
  const back = decodePex(encodePex({ added, dropped: [{ host: "10.0.0.9", port: 9 }] }));
  assert.deepEqual(back.added, added.map((p) => ({ ...p, flags: 0 }))); // flags always sent, 0 when none
  assert.deepEqual(back.dropped, [{ host: "10.0.0.9", port: 9 }]);
  // one flag byte per added peer, as libtorrent requires before it takes any of them
  const raw = decode(encodePex({ added, dropped: [] })) as Record<string, Uint8Array>;
  assert.equal(raw["added.f"].length, 1);
  assert.equal(raw["added6.f"].length, 1);
  const many = Array.from(
    { length: 500 },
    (_, i) => ({ host: `10.0.${i >> 8}.${i & 255}`, port: 1000 + i }),
  );
  assert.equal(decodePex(encodePex({ added: many, dropped: [] })).added.length, 200);
  assert.throws(() => decodePex(new TextEncoder().encode("li1ee")), /not a dictionary/);
});

Deno.test("PEX flags (added.f, added6.f) round-trip per contact, uTP among them (BEP 11)", () => {
  const added = [
    { host: "10.0.0.1", port: 1, flags: PEX_UTP | PEX_REACHABLE },
    { host: "10.0.0.2", port: 2, flags: 0 },
    { host: "::1", port: 3, flags: PEX_UTP | PEX_SEED },
  ];
  const bytes = encodePex({ added, dropped: [] });
  const text = new TextDecoder("latin1").decode(bytes);
  assert.ok(text.includes("7:added.f2:\x14\x00"), text);
  assert.ok(text.includes("8:added6.f1:\x06"), text);
  assert.deepEqual(decodePex(bytes).added, added);
  // a flags string shorter than the contacts: the rest have none
  const raw = new TextEncoder().encode("d5:added12:");
  const msg = new Uint8Array([
    ...raw,
    ...[10, 0, 0, 1, 0, 1, 10, 0, 0, 2, 0, 2],
    ...new TextEncoder().encode("7:added.f1:"),
    PEX_UTP,
    0x65,
  ]);
  assert.deepEqual(decodePex(msg).added, [
    { host: "10.0.0.1", port: 1, flags: PEX_UTP },
    { host: "10.0.0.2", port: 2 },
  ]);
});
