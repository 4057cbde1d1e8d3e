import assert from "node:assert/strict";
import { join } from "node:path";
import { isInside } from "../src/_paths.ts";
import { BencodeError, encode } from "../src/bencode.ts";
import { MetainfoError, parseMetainfo } from "../src/metainfo.ts";

const fixtures = new URL("../fixtures/", import.meta.url).pathname;

Deno.test("info hashes of torrents made by mktorrent and transmission-create equal transmission-show's", async () => {
  const hashes = JSON.parse(await Deno.readTextFile(join(fixtures, "real/hashes.json"))) as Record<
    string,
    string
  >;
  assert.ok(Object.keys(hashes).length >= 4);
  for (const [file, hash] of Object.entries(hashes)) {
    const meta = await parseMetainfo(await Deno.readFile(join(fixtures, "real", file)));
    assert.equal(meta.infoHashHex, hash, file);
  }
});

Deno.test("a multi-file torrent with a nested directory, an empty file and a reserved name parses safely", async () => {
  const meta = await parseMetainfo(
    await Deno.readFile(join(fixtures, "real/mktorrent_multi.torrent")),
  );
  assert.equal(meta.multiFile, true);
  assert.equal(meta.name, "multi");
  const paths = meta.files.map((f) => f.path.join("/"));
  assert.ok(paths.includes("multi/empty.txt"));
  assert.ok(paths.includes("multi/nested/deeper/leaf.txt"));
  // "nul" is a Windows device name: never used as is
  assert.ok(paths.includes("multi/_nul.bin"), paths.join(","));
  const empty = meta.files.find((f) => f.path.at(-1) === "empty.txt")!;
  assert.equal(empty.length, 0);
  let offset = 0;
  for (const f of meta.files) {
    assert.equal(f.offset, offset);
    offset += f.length;
  }
  assert.equal(meta.length, offset);
  assert.deepEqual(meta.announceList, [["http://127.0.0.1:6969/announce"], [
    "http://127.0.0.1:6970/announce",
  ]]);
  assert.equal(meta.pieceCount, Math.ceil(meta.length / meta.pieceLength));
});

Deno.test("single-file torrents and the private flag are read", async () => {
  const single = await parseMetainfo(
    await Deno.readFile(join(fixtures, "real/mktorrent_single.torrent")),
  );
  assert.equal(single.multiFile, false);
  assert.deepEqual(single.files.map((f) => f.path), [["single.txt"]]);
  assert.equal(single.comment, "made by mktorrent");
  const priv = await parseMetainfo(
    await Deno.readFile(join(fixtures, "real/transmission_multi.torrent")),
  );
  assert.equal(priv.private, true);
  assert.match(priv.createdBy ?? "", /Transmission/);
});

Deno.test("every crafted bad torrent is rejected with an error naming its field", async () => {
  const expected = JSON.parse(
    await Deno.readTextFile(join(fixtures, "bad/expected.json")),
  ) as Record<string, string>;
  assert.ok(Object.keys(expected).length >= 30);
  for (const [file, field] of Object.entries(expected)) {
    const bytes = await Deno.readFile(join(fixtures, "bad", file));
    const err = await parseMetainfo(bytes).then(() => undefined, (e) => e);
    assert.ok(err, `${file} was accepted`);
    if (field === "bencode") {
      assert.ok(err instanceof BencodeError, `${file}: ${err}`);
      assert.equal(typeof err.offset, "number");
    } else {
      assert.ok(err instanceof MetainfoError, `${file}: ${err}`);
      assert.equal(err.field, field, file);
    }
  }
});

Deno.test("sanitised torrents keep every path inside the download directory", async () => {
  const dir = "/downloads/here";
  let count = 0;
  for await (const entry of Deno.readDir(join(fixtures, "sanitised"))) {
    const meta = await parseMetainfo(await Deno.readFile(join(fixtures, "sanitised", entry.name)));
    const seen = new Set<string>();
    for (const f of meta.files) {
      for (const c of f.path) {
        assert.ok(c !== "" && c !== "." && c !== "..", `${entry.name}: component "${c}"`);
        // deno-lint-ignore no-control-regex
        assert.ok(!/[\x00-\x1f/\\]/.test(c), `${entry.name}: component ${JSON.stringify(c)}`);
        assert.ok(new TextEncoder().encode(c).length <= 255);
        assert.ok(!/^(con|prn|aux|nul|com\d|lpt\d)(\.|$)/i.test(c), `${entry.name}: reserved ${c}`);
      }
      const full = join(dir, ...f.path);
      assert.ok(isInside(dir, full), `${entry.name}: ${full}`);
      const key = f.path.join("/").toLowerCase();
      assert.ok(!seen.has(key), `${entry.name}: duplicate ${key}`);
      seen.add(key);
    }
    // deno-lint-ignore no-control-regex
    assert.ok(!/[\x00-\x1f\x7f]/.test(meta.displayName));
    count++;
  }
  assert.ok(count >= 15);
});

Deno.test("the info hash is taken from the raw info bytes, even when keys are unsorted", async () => {
  // keys out of order inside info: re-encoding would sort them and change the hash
  const info = "d6:lengthi5e4:name1:a6:pieces20:" + "x".repeat(20) + "12:piece lengthi16384ee";
  const bytes = new TextEncoder().encode(`d4:info${info}e`);
  const meta = await parseMetainfo(bytes);
  const expected = new Uint8Array(
    await crypto.subtle.digest("SHA-1", new TextEncoder().encode(info)),
  );
  assert.deepEqual(meta.infoHash, expected);
  assert.deepEqual(meta.info, new TextEncoder().encode(info));
});

Deno.test("announce-list tiers win over announce, and web seeds are read", async () => {
  const bytes = encode({
    announce: "http://a/announce",
    "announce-list": [["http://b/announce", "http://c/announce"], ["udp://d:80"]],
    "url-list": ["http://seed/"],
    info: { name: "x", length: 1, "piece length": 16384, pieces: new Uint8Array(20) },
  });
  const meta = await parseMetainfo(bytes);
  assert.deepEqual(meta.announceList, [["http://b/announce", "http://c/announce"], ["udp://d:80"]]);
  assert.deepEqual(meta.urlList, ["http://seed/"]);
});

Deno.test("limits on size and file count apply", async () => {
  const bytes = encode({
    info: {
      name: "x",
      "piece length": 16384,
      pieces: new Uint8Array(20),
      files: [{ length: 1, path: ["a"] }, { length: 1, path: ["b"] }],
    },
  });
  await assert.rejects(parseMetainfo(bytes, { maxFiles: 1 }), /info\.files: 2 files exceed/);
  await assert.rejects(parseMetainfo(bytes, { maxSize: 10 }), MetainfoError);
});

Deno.test("mutated torrents only ever fail with BencodeError or MetainfoError (bounded fuzz)", async () => {
  const sources = await Promise.all(
    ["mktorrent_multi.torrent", "transmission_single.torrent"].map((f) =>
      Deno.readFile(join(fixtures, "real", f))
    ),
  );
  let seed = 12345;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  let accepted = 0;
  for (let i = 0; i < 3000; i++) {
    const src = sources[i % sources.length];
    let bytes = src.slice();
    const kind = rand(3);
    if (kind === 0) {
      for (let k = 0; k <= rand(4); k++) bytes[rand(bytes.length)] = rand(256);
    } else if (kind === 1) {
      bytes = bytes.subarray(0, rand(bytes.length));
    } else {
      const at = rand(bytes.length);
      bytes = new Uint8Array([...bytes.subarray(0, at), rand(256), ...bytes.subarray(at)]);
    }
    try {
      const meta = await parseMetainfo(bytes);
      for (const f of meta.files) assert.ok(isInside("/d", join("/d", ...f.path)));
      accepted++;
    } catch (err) {
      assert.ok(
        err instanceof BencodeError || err instanceof MetainfoError,
        `iteration ${i}: ${err}`,
      );
    }
  }
  assert.ok(accepted < 3000);
});
