import assert from "node:assert/strict";
import { join } from "node:path";
import { autoPieceLength, createTorrent } from "../src/create.ts";
import { parseMetainfo, pieceHash } from "../src/metainfo.ts";
import { needs } from "./_lab.ts";

const data = new URL("../fixtures/real/data/", import.meta.url).pathname;

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) throw new Error(`${cmd} failed: ${new TextDecoder().decode(out.stderr)}`);
  return new TextDecoder().decode(out.stdout);
}

Deno.test("createTorrent() of a single file and of a nested directory parses back", async () => {
  const single = await parseMetainfo(
    await createTorrent(join(data, "single.txt"), { pieceLength: 32768 }),
  );
  assert.equal(single.name, "single.txt");
  assert.equal(single.multiFile, false);
  const multi = await parseMetainfo(
    await createTorrent(join(data, "multi"), {
      pieceLength: 16384,
      announce: [["http://a/announce", "http://b/announce"], ["http://c/announce"]],
      private: true,
      comment: "hi",
      webSeeds: ["http://seed/"],
    }),
  );
  assert.equal(multi.name, "multi");
  assert.deepEqual(multi.files.map((f) => f.path.slice(1).join("/")), [
    "a.txt",
    "empty.txt",
    "nested/deeper/leaf.txt",
    "nested/numbers.txt",
    "_nul.bin",
  ]);
  assert.deepEqual(multi.announceList, [["http://a/announce", "http://b/announce"], [
    "http://c/announce",
  ]]);
  assert.equal(multi.private, true);
  assert.equal(multi.comment, "hi");
  assert.deepEqual(multi.urlList, ["http://seed/"]);
});

Deno.test("createTorrent() reports progress and hashes pieces that span files", async () => {
  const seen: number[] = [];
  const bytes = await createTorrent(join(data, "multi"), {
    pieceLength: 16384,
    onProgress: (d) => seen.push(d),
  });
  const meta = await parseMetainfo(bytes);
  assert.equal(seen.length, meta.pieceCount);
  assert.equal(seen.at(-1), meta.length);
});

Deno.test("autoPieceLength() keeps torrents near 1500 pieces within 16 KiB - 16 MiB", () => {
  assert.equal(autoPieceLength(1000), 16384);
  assert.equal(autoPieceLength(1024 ** 3), 1024 * 1024);
  assert.equal(autoPieceLength(1024 ** 5), 16 * 1024 * 1024);
});

Deno.test({
  name:
    "createTorrent() gives the same info hash as mktorrent for the same input, piece length and name",
  ignore: needs("mktorrent", "transmissionShow"),
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      for (
        const [src, log2] of [[join(data, "multi"), 15], [join(data, "single.txt"), 16]] as const
      ) {
        const out = join(dir, "mk.torrent");
        await Deno.remove(out).catch(() => {});
        await run("mktorrent", [
          "-l",
          String(log2),
          "-a",
          "http://127.0.0.1/announce",
          "-o",
          out,
          src,
        ]);
        const theirs = await parseMetainfo(await Deno.readFile(out));
        const ours = await createTorrent(src, {
          pieceLength: 2 ** log2,
          announce: ["http://127.0.0.1/announce"],
        });
        assert.equal((await parseMetainfo(ours)).infoHashHex, theirs.infoHashHex, src);
        // and transmission-show accepts ours with the same hash
        await Deno.writeFile(join(dir, "ours.torrent"), ours);
        const shown = await run("transmission-show", [join(dir, "ours.torrent")]);
        assert.match(shown, new RegExp(`Hash: ${theirs.infoHashHex}`));
      }
      // mktorrent orders files by the whole "/"-joined path ("a-c" < "a.d" < "a/b" < "a0"), and -n names it
      const tricky = join(dir, "tricky");
      for (const p of ["a/b", "a-c", "a.d", "a0", "B/x", "_z", "\u00e4", "a/b c/d", "empty"]) {
        await Deno.mkdir(join(tricky, p, ".."), { recursive: true });
        await Deno.writeTextFile(join(tricky, p), p === "empty" ? "" : `${p}\n`.repeat(300));
      }
      const out = join(dir, "tricky.torrent");
      await run("mktorrent", ["-l", "15", "-n", "renamed", "-o", out, tricky]);
      const theirs = await parseMetainfo(await Deno.readFile(out));
      const ours = await parseMetainfo(
        await createTorrent(tricky, { pieceLength: 32768, name: "renamed" }),
      );
      assert.deepEqual(
        ours.files.map((f) => f.displayPath),
        theirs.files.map((f) => f.displayPath),
      );
      assert.equal(ours.infoHashHex, theirs.infoHashHex);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("createTorrent() fails clearly on a missing path and a list without a name", async () => {
  await assert.rejects(createTorrent("/no/such/path"), Deno.errors.NotFound);
  await assert.rejects(createTorrent([]), /needs options.name/);
  await assert.rejects(createTorrent([], { name: "x" }), /empty file list/);
});

Deno.test("createTorrent() refuses unusable paths, no data, and bad piece lengths", async () => {
  const src = join(data, "single.txt");
  for (const path of [[], [".."], ["a", "."], [""], ["a/b"], ["a\\b"], ["a\u0000"]]) {
    await assert.rejects(
      createTorrent([{ source: src, path }], { name: "n" }),
      TypeError,
      JSON.stringify(path),
    );
  }
  await assert.rejects(createTorrent(src, { name: ".." }), /unusable component/);
  await assert.rejects(createTorrent(join(data, "multi/empty.txt")), /holds no data/);
  for (const pieceLength of [0, -1, 1.5, 2 ** 30, NaN]) {
    await assert.rejects(createTorrent(src, { pieceLength }), /piece length/, String(pieceLength));
  }
});

Deno.test("createTorrent() from a file list in a chosen order, with tiers given as plain URLs", async () => {
  const bytes = await createTorrent([
    { source: join(data, "multi/nested/numbers.txt"), path: ["z", "numbers.txt"] },
    { source: join(data, "single.txt"), path: ["a.txt"] },
  ], {
    name: "list",
    pieceLength: 16384,
    announce: ["http://a/announce", "http://b/announce"],
    createdBy: "test",
    creationDate: new Date(1_700_000_000_000),
  });
  const meta = await parseMetainfo(bytes);
  assert.deepEqual(meta.files.map((f) => f.path.join("/")), ["list/z/numbers.txt", "list/a.txt"]);
  assert.deepEqual(meta.announceList, [["http://a/announce"], ["http://b/announce"]]);
  assert.equal(meta.announce, "http://a/announce");
  assert.equal(meta.createdBy, "test");
  assert.equal(meta.creationDate?.getTime(), 1_700_000_000_000);
  // no announce-list for a single tracker, no creation date when null: the bytes are reproducible
  const a = await createTorrent(join(data, "single.txt"), {
    announce: ["http://a/announce"],
    creationDate: null,
  });
  const b = await createTorrent(join(data, "single.txt"), {
    announce: [["http://a/announce"]],
    creationDate: null,
  });
  assert.deepEqual(a, b);
  assert.equal(new TextDecoder().decode(a).includes("announce-list"), false);
  assert.equal(new TextDecoder().decode(a).includes("creation date"), false);
});

Deno.test("createTorrent() hashes many small pieces per read exactly like one digest per piece", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // 9 MiB + 5 bytes over three files: more than two read chunks, pieces spanning files
    const sizes = [5 * 1024 * 1024 + 3, 1, 4 * 1024 * 1024 + 1];
    const all = new Uint8Array(sizes.reduce((a, b) => a + b, 0));
    for (let i = 0; i < all.length; i += 65536) {
      crypto.getRandomValues(all.subarray(i, Math.min(i + 65536, all.length)));
    }
    let at = 0;
    for (const [i, size] of sizes.entries()) {
      await Deno.writeFile(join(dir, `f${i}`), all.subarray(at, at + size));
      at += size;
    }
    for (const pieceLength of [16384, 3 * 1024 * 1024, 16 * 1024 * 1024]) {
      const meta = await parseMetainfo(await createTorrent(dir, { pieceLength }));
      assert.equal(meta.pieceCount, Math.ceil(all.length / pieceLength));
      for (let p = 0; p < meta.pieceCount; p++) {
        const piece = all.subarray(p * pieceLength, Math.min((p + 1) * pieceLength, all.length));
        const digest = new Uint8Array(await crypto.subtle.digest("SHA-1", piece));
        assert.deepEqual(pieceHash(meta, p), digest, `piece ${p} of ${pieceLength}`);
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("createTorrent() stops when its signal aborts", async () => {
  const controller = new AbortController();
  const err = await createTorrent(join(data, "multi"), {
    pieceLength: 16384,
    signal: controller.signal,
    onProgress: () => controller.abort(),
  }).catch((e) => e);
  assert.ok(err instanceof DOMException, String(err));
  assert.equal(err.name, "AbortError");
});
