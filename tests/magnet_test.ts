import assert from "node:assert/strict";
import { join } from "node:path";
import { fromHex } from "../src/_bytes.ts";
import {
  formatMagnet,
  infoDictMatches,
  MagnetError,
  parseMagnet,
  torrentFromMetadata,
} from "../src/magnet.ts";
import { parseMetainfo } from "../src/metainfo.ts";
import { needs } from "./_lab.ts";

const REAL = new URL("../fixtures/real/", import.meta.url).pathname;

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

Deno.test("parseMagnet() reads BEP 52 btmh links: v2-only (truncated wire hash) and hybrid (both hashes)", () => {
  const v2 = "ab".repeat(32);
  const only = parseMagnet(`magnet:?xt=urn:btmh:1220${v2}&dn=x`);
  assert.equal(only.infoHashV2Hex, v2);
  assert.equal(only.infoHashHex, v2.slice(0, 40));
  // a hybrid link carries both: the v1 hash is the wire hash, the v2 one is kept
  const hybrid = parseMagnet(`magnet:?xt=urn:btmh:1220${v2.toUpperCase()}&xt=urn:btih:${HEX}`);
  assert.equal(hybrid.infoHashHex, HEX);
  assert.equal(hybrid.infoHashV2Hex, v2);
  assert.throws(() => parseMagnet(`magnet:?xt=urn:btmh:1220${v2.slice(2)}`), /1220 and 64 hex/);
  assert.throws(() => parseMagnet(`magnet:?xt=urn:btmh:1220${"zz".repeat(32)}`), /1220 and 64 hex/);
  assert.throws(
    () => parseMagnet(`magnet:?xt=urn:btmh:1b20${v2}`),
    /multihash 1b20… is not SHA-256/,
  );
  // another multihash beside a usable hash is ignored
  assert.equal(
    parseMagnet(`magnet:?xt=urn:btmh:1b20${v2}&xt=urn:btih:${HEX}`).infoHashV2,
    undefined,
  );
});

Deno.test("formatMagnet() writes btih, btmh or both, and round-trips", () => {
  const v1 = new Uint8Array(20).fill(1), v2 = new Uint8Array(32).fill(2);
  const hybrid = formatMagnet({ infoHash: v1, infoHashV2: v2, name: "h" });
  assert.equal(
    hybrid,
    `magnet:?xt=urn:btih:${"01".repeat(20)}&xt=urn:btmh:1220${"02".repeat(32)}&dn=h`,
  );
  assert.deepEqual(parseMagnet(hybrid).infoHashV2, v2);
  // v2-only: the wire hash is the truncated v2 hash, so no btih
  const only = parseMagnet(formatMagnet({ infoHash: v2.subarray(0, 20), infoHashV2: v2 }));
  assert.deepEqual([only.infoHash, only.infoHashV2], [v2.subarray(0, 20), v2]);
  assert.equal(formatMagnet({ infoHashV2: v2 }), `magnet:?xt=urn:btmh:1220${"02".repeat(32)}`);
  assert.throws(() => formatMagnet({ infoHashV2: new Uint8Array(20) }), /32/);
  assert.throws(() => formatMagnet({}), /without an info hash/);
});

Deno.test(
  "libtorrent's magnet links for v2 and hybrid torrents parse to its hashes, and it reads ours",
  {
    ignore: needs("libtorrent"),
  },
  async () => {
    const script = `
import json, sys, libtorrent as lt
out = {}
for f in sys.argv[2:]:
    out[f] = lt.make_magnet_uri(lt.torrent_info(f))
ours = lt.parse_magnet_uri(sys.argv[1])
ih = ours.info_hashes
out["ours"] = [str(ih.v1) if ih.has_v1() else None, str(ih.v2) if ih.has_v2() else None]
print(json.dumps(out))`;
    const files = ["libtorrent_v2_multi.torrent", "libtorrent_hybrid_multi.torrent"];
    const hashes = JSON.parse(await Deno.readTextFile(join(REAL, "libtorrent_hashes.json")));
    const ours = formatMagnet({
      infoHash: fromHex(hashes[files[1]].v1)!,
      infoHashV2: fromHex(hashes[files[1]].v2)!,
    });
    const out = await new Deno.Command("/usr/bin/python3", {
      args: ["-c", script, ours, ...files.map((f) => join(REAL, f))],
    }).output();
    assert.ok(out.success, new TextDecoder().decode(out.stderr));
    const result = JSON.parse(new TextDecoder().decode(out.stdout));
    for (const f of files) {
      const m = parseMagnet(result[join(REAL, f)]);
      assert.equal(m.infoHashV2Hex, hashes[f].v2, f);
      assert.equal(m.infoHashHex, hashes[f].v1 ?? hashes[f].v2.slice(0, 40), f);
    }
    assert.deepEqual(result.ours, [hashes[files[1]].v1, hashes[files[1]].v2]);
  },
);

Deno.test("infoDictMatches() checks a fetched info dictionary against every hash of the link", async () => {
  const meta = await parseMetainfo(
    await Deno.readFile(join(REAL, "libtorrent_hybrid_multi.torrent")),
  );
  const v2only = await parseMetainfo(
    await Deno.readFile(join(REAL, "libtorrent_v2_multi.torrent")),
  );
  const link = (m: typeof meta) => parseMagnet(formatMagnet(m));
  assert.equal(await infoDictMatches(meta.info, link(meta)), true);
  assert.equal(await infoDictMatches(v2only.info, link(v2only)), true);
  assert.equal(await infoDictMatches(v2only.info, link(meta)), false);
  // a btih-only link and a bare truncated v2 hash (from a tracker or the DHT)
  assert.equal(await infoDictMatches(meta.info, { infoHash: meta.infoHash }), true);
  assert.equal(await infoDictMatches(v2only.info, { infoHash: v2only.infoHash }), true);
  // a hybrid link whose btih does not belong to the dictionary
  assert.equal(
    await infoDictMatches(meta.info, { infoHash: new Uint8Array(20), infoHashV2: meta.infoHashV2 }),
    false,
  );
});

Deno.test("torrentFromMetadata() wraps a v2 info dictionary, with or without the piece layers", async () => {
  const full = await parseMetainfo(await Deno.readFile(join(REAL, "libtorrent_v2_multi.torrent")));
  const bare = torrentFromMetadata(full.info, ["http://t/announce"]);
  await assert.rejects(parseMetainfo(bare), /piece layers: missing/);
  const partial = await parseMetainfo(bare, { allowMissingPieceLayers: true });
  assert.equal(partial.infoHashV2Hex, full.infoHashV2Hex);
  const whole = await parseMetainfo(
    torrentFromMetadata(full.info, ["http://t/announce"], { pieceLayers: full.pieceLayers }),
  );
  assert.equal(whole.infoHashV2Hex, full.infoHashV2Hex);
  assert.deepEqual(whole.pieceLayers, full.pieceLayers);
  assert.deepEqual(whole.announceList, [["http://t/announce"]]);
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
