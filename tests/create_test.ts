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

/** Runs a python3-libtorrent helper script from tests/peers/ and parses its JSON. */
async function libtorrent(script: string, ...args: string[]): Promise<Record<string, unknown>> {
  const path = new URL(`./peers/${script}`, import.meta.url).pathname;
  return JSON.parse(await run("/usr/bin/python3", [path, ...args]));
}

/** A directory with the cases file ordering, padding and attributes depend on. */
async function edgeCases(root: string): Promise<void> {
  const files: [string, number][] = [
    ["a/b", 3], // tree order puts directory "a" before "a-c" (the "/"-joined order would not)
    ["a-c", 20000],
    ["a.d/q", 2],
    ["B", 2], // upper case sorts first, bytewise
    ["exact", 16384], // ends on a piece boundary: no padding after it
    ["two", 32768],
    ["\u00e9.txt", 2],
    ["a/empty", 0],
    ["z/last-empty", 0],
    ["run.sh", 40], // executable: attribute "x"
  ];
  for (const [p, n] of files) {
    await Deno.mkdir(join(root, p, ".."), { recursive: true });
    await Deno.writeFile(join(root, p), payloadOf(n, p.length));
  }
  await Deno.chmod(join(root, "run.sh"), 0o755);
}

function payloadOf(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 7) & 0xff);
}

Deno.test({
  name:
    "createTorrent() v2 and hybrid: the same info hashes as libtorrent's create_torrent, which checks our data complete",
  ignore: needs("libtorrent"),
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "seedbed-create-v2-" });
    try {
      await edgeCases(join(dir, "edge"));
      await Deno.mkdir(join(dir, "one"));
      await Deno.writeTextFile(join(dir, "one", "only.txt"), "one file in a folder\n");
      await Deno.mkdir(join(dir, "big"));
      await Deno.writeFile(join(dir, "big", "data.bin"), payloadOf(5 * 65536 + 123, 9));
      await Deno.writeFile(join(dir, "big", "small.bin"), payloadOf(1000, 3));
      const cases: [string, 1 | 2 | "hybrid", number][] = [
        [join(data, "single.txt"), 1, 16384],
        [join(data, "single.txt"), 2, 16384],
        [join(data, "single.txt"), "hybrid", 16384],
        [join(data, "multi"), 2, 16384],
        [join(data, "multi"), "hybrid", 32768],
        [join(dir, "edge"), 2, 16384],
        [join(dir, "edge"), "hybrid", 16384],
        [join(dir, "one"), 2, 16384],
        [join(dir, "one"), "hybrid", 16384],
        [join(dir, "big"), 2, 65536],
        [join(dir, "big"), "hybrid", 65536],
      ];
      const specs = cases.map(([src, v, pl]) =>
        `${src}:${v === 1 ? "v1" : v === 2 ? "v2" : v}:${pl}`
      );
      const theirs = await libtorrent("lt_create.py", dir, ...specs) as Record<
        string,
        { v1: string | null; v2: string | null }
      >;
      for (let i = 0; i < cases.length; i++) {
        const [src, version, pieceLength] = cases[i];
        const bytes = await createTorrent(src, { pieceLength, version, creationDate: null });
        const ours = await parseMetainfo(bytes);
        const lt = theirs[specs[i]];
        assert.equal(ours.version, version, specs[i]);
        assert.equal(ours.infoHashV2Hex, lt.v2 ?? undefined, `v2 hash of ${specs[i]}`);
        if (version !== 2) assert.equal(ours.infoHashHex, lt.v1, `v1 hash of ${specs[i]}`);
        if (version === 1) continue;
        // libtorrent loads ours (piece layers and all) and finds every piece of the data
        const file = join(dir, `ours-${i}.torrent`);
        await Deno.writeFile(file, bytes);
        // a v2-only torrent of a folder holding one file is a single-file torrent (for libtorrent too): the
        // folder's name is not part of the path
        const base = ours.multiFile || src.endsWith(".txt") ? join(src, "..") : src;
        const check = await libtorrent("lt_check.py", file, base);
        assert.equal(check.have, check.pieces, `libtorrent's check of ${specs[i]}`);
        assert.equal(check.v2, lt.v2);
      }
      // and the executable file carries "x" in both lists
      const hybrid = await parseMetainfo(
        await createTorrent(join(dir, "edge"), { pieceLength: 16384, version: "hybrid" }),
      );
      const run = hybrid.files.find((f) => f.path.at(-1) === "run.sh")!;
      assert.equal(run.executable, true);
      assert.deepEqual(
        hybrid.files.filter((f) => !f.padding).map((f) => f.path.slice(1).join("/")),
        ["B", "a/b", "a/empty", "a-c", "a.d/q", "exact", "run.sh", "two", "z/last-empty", "é.txt"],
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("createTorrent() v2: trackers, web seeds, private flag and comment kept; bad input refused", async () => {
  const bytes = await createTorrent(join(data, "multi"), {
    version: 2,
    pieceLength: 16384,
    announce: [["http://a/announce"], ["udp://b:80"]],
    webSeeds: ["http://seed/"],
    private: true,
    comment: "v2",
  });
  const meta = await parseMetainfo(bytes);
  assert.equal(meta.version, 2);
  assert.deepEqual(meta.announceList, [["http://a/announce"], ["udp://b:80"]]);
  assert.deepEqual(meta.urlList, ["http://seed/"]);
  assert.equal(meta.private, true);
  assert.equal(meta.comment, "v2");
  assert.equal(meta.pieceLayers.size, 2);
  await assert.rejects(
    createTorrent(join(data, "multi"), { version: 2, pieceLength: 24576 }),
    /power of two of at least 16384/,
  );
  await assert.rejects(
    createTorrent(join(data, "multi"), { version: "hybrid", pieceLength: 8192 }),
    /power of two of at least 16384/,
  );
  const src = join(data, "single.txt");
  await assert.rejects(
    createTorrent([{ source: src, path: ["a"] }, { source: src, path: ["a", "b"] }], {
      name: "x",
      version: 2,
    }),
    /"a" is a file and the directory of "a\/b"/,
  );
  // a list in any order comes out in file tree order
  const listed = await parseMetainfo(
    await createTorrent([{ source: src, path: ["z"] }, { source: src, path: ["a"] }], {
      name: "x",
      version: "hybrid",
    }),
  );
  assert.deepEqual(listed.files.map((f) => f.displayPath), [
    "x/a",
    ".pad/16370",
    "x/z",
    ".pad/16370",
  ]);
});

Deno.test("createTorrent() v2 reports progress by file bytes and stops when its signal aborts", async () => {
  const seen: number[] = [];
  const meta = await parseMetainfo(
    await createTorrent(join(data, "multi"), {
      version: "hybrid",
      pieceLength: 16384,
      onProgress: (d) => seen.push(d),
    }),
  );
  const bytes = meta.files.filter((f) => !f.padding).reduce((n, f) => n + f.length, 0);
  assert.equal(seen.length, meta.pieceCount);
  assert.equal(seen.at(-1), bytes);
  const abort = new AbortController();
  abort.abort();
  await assert.rejects(
    createTorrent(join(data, "multi"), { version: 2, signal: abort.signal }),
    (e: unknown) => e instanceof DOMException && e.name === "AbortError",
  );
});
