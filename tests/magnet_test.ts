import assert from "node:assert/strict";
import { formatMagnet, MagnetError, parseMagnet } from "../src/magnet.ts";

const HEX = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";

Deno.test("parseMagnet() reads a hex info hash, name, trackers, web seeds and peers", () => {
  const m = parseMagnet(
    `magnet:?xt=urn:btih:${HEX.toUpperCase()}&dn=Some+File%20name&tr=http%3A%2F%2Ft1%2Fannounce` +
      `&tr=udp%3A%2F%2Ft2%3A80&tr=http%3A%2F%2Ft1%2Fannounce&ws=http%3A%2F%2Fseed%2F&x.pe=127.0.0.1:6881` +
      `&x.pe=%5B::1%5D:51413&x.pe=bad`,
  );
  assert.equal(m.infoHashHex, HEX);
  assert.equal(m.name, "Some File name");
  assert.deepEqual(m.trackers, ["http://t1/announce", "udp://t2:80"]);
  assert.deepEqual(m.webSeeds, ["http://seed/"]);
  assert.deepEqual(m.peers, [{ host: "127.0.0.1", port: 6881 }, { host: "::1", port: 51413 }]);
});

Deno.test("parseMagnet() reads a base32 info hash", () => {
  // base32 of the bytes 0x00..0x13
  const bytes = Uint8Array.from({ length: 20 }, (_, i) => i);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const x of bytes) bits += x.toString(2).padStart(8, "0");
  let b32 = "";
  for (let i = 0; i < 160; i += 5) b32 += alphabet[parseInt(bits.slice(i, i + 5), 2)];
  assert.deepEqual(parseMagnet(`magnet:?xt=urn:btih:${b32}`).infoHash, bytes);
  assert.deepEqual(parseMagnet(`magnet:?xt=urn:btih:${b32.toLowerCase()}`).infoHash, bytes);
});

Deno.test("parseMagnet() reads BEP 53 file selections", () => {
  assert.deepEqual(parseMagnet(`magnet:?xt=urn:btih:${HEX}&so=0,2,4-6`).selectOnly, [
    0,
    2,
    4,
    5,
    6,
  ]);
  assert.throws(() => parseMagnet(`magnet:?xt=urn:btih:${HEX}&so=0-999999`), /too large/);
});

Deno.test("parseMagnet() rejects what is not a usable magnet link, with a clear message", () => {
  assert.throws(() => parseMagnet("http://example/"), /must start with "magnet:\?"/);
  assert.throws(() => parseMagnet("magnet:?dn=x"), /no xt=urn:btih/);
  assert.throws(() => parseMagnet("magnet:?xt=urn:btih:1234"), /40 hex or 32 base32/);
  assert.throws(() => parseMagnet(`magnet:?xt=urn:btih:${"zz".repeat(20)}`), /non-hex/);
  assert.throws(() => parseMagnet(`magnet:?xt=urn:btih:${HEX}&dn=%E0%A4%A`), MagnetError);
  assert.throws(
    () => parseMagnet(`magnet:?xt=urn:btih:${HEX}` + "&tr=x".repeat(300)),
    /more than 200/,
  );
  assert.throws(() => parseMagnet("magnet:?" + "x".repeat(70000)), /longer than/);
});

Deno.test("formatMagnet() round-trips through parseMagnet()", () => {
  const link = {
    infoHash: Uint8Array.from({ length: 20 }, (_, i) => 255 - i),
    name: "a & b = c",
    trackers: ["http://t/announce?x=1&y=2"],
    webSeeds: ["http://w/"],
    peers: [{ host: "::1", port: 1 }, { host: "10.0.0.1", port: 2 }],
    selectOnly: [1, 3],
  };
  const back = parseMagnet(formatMagnet(link));
  assert.deepEqual(back.infoHash, link.infoHash);
  assert.equal(back.name, link.name);
  assert.deepEqual(back.trackers, link.trackers);
  assert.deepEqual(back.webSeeds, link.webSeeds);
  assert.deepEqual(back.peers, link.peers);
  assert.deepEqual(back.selectOnly, link.selectOnly);
});

Deno.test("parseMagnet() takes numbered and upper-case keys, skips empty and duplicate values", () => {
  const m = parseMagnet(
    `magnet:?XT=urn:btih:${HEX}&tr.1=http%3A%2F%2Fa&tr.2=http%3A%2F%2Fb&tr=&ws=&ws=http%3A%2F%2Fw` +
      `&ws=http%3A%2F%2Fw&x.pe=127.0.0.1:0&x.pe=127.0.0.1:70000&x.pe=%5B::1%5D&x.pe=host.example:80`,
  );
  assert.deepEqual(m.trackers, ["http://a", "http://b"]);
  assert.deepEqual(m.webSeeds, ["http://w"]);
  assert.deepEqual(m.peers, [{ host: "host.example", port: 80 }]);
  assert.equal(m.name, undefined);
  assert.equal(m.selectOnly, undefined);
});

Deno.test("parseMagnet() says when a link has only a v2 (btmh) info hash", () => {
  assert.throws(
    () => parseMagnet("magnet:?xt=urn:btmh:1220" + "ab".repeat(32)),
    /only a v2 info hash/,
  );
  // a hybrid link carries both: the v1 hash is used
  const hybrid = parseMagnet(`magnet:?xt=urn:btmh:1220${"ab".repeat(32)}&xt=urn:btih:${HEX}`);
  assert.equal(hybrid.infoHashHex, HEX);
});

Deno.test("parseMagnet() bounds BEP 53 selections", () => {
  const base = `magnet:?xt=urn:btih:${HEX}&so=`;
  assert.deepEqual(parseMagnet(base + "3,1,1-2").selectOnly, [1, 2, 3]);
  assert.throws(() => parseMagnet(base + "5-2"), /ends before it starts/);
  assert.throws(() => parseMagnet(base + "99999999999999999999"), /not a list/);
  assert.throws(() => parseMagnet(base + "2000000"), /past the limit/);
  assert.throws(() => parseMagnet(base + "1,,2"), /not a list/);
  assert.throws(() => parseMagnet(base + "a"), MagnetError);
});

Deno.test("formatMagnet() refuses an info hash that is not 20 bytes", () => {
  assert.throws(() => formatMagnet({ infoHash: new Uint8Array(19) }), TypeError);
  assert.equal(
    formatMagnet({ infoHash: new Uint8Array(20) }),
    `magnet:?xt=urn:btih:${"00".repeat(20)}`,
  );
});
