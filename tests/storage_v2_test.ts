// Storage for v2 and hybrid torrents: merkle verification of pieces (hashcheck, verifyPiece, resume), padding
// never written, BEP 47 attributes (executable files, symbolic links).
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { Bitfield } from "../src/bitfield.ts";
import { toHex } from "../src/_bytes.ts";
import { type Metainfo, parseMetainfo } from "../src/metainfo.ts";
import { PieceVerifier } from "../src/storage/hasher.ts";
import { Layout } from "../src/storage/layout.ts";
import { Storage } from "../src/storage/storage.ts";
import { TorrentVerifier } from "../src/storage/verify.ts";

const REAL = new URL("../fixtures/real/", import.meta.url).pathname;

async function fixture(name: string): Promise<Metainfo> {
  return await parseMetainfo(await Deno.readFile(join(REAL, name)));
}

/** A temporary download directory holding a fixture torrent's files at their (sanitised) paths. */
async function placed(meta: Metainfo): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "seedbed-v2-" });
  for (const f of meta.files) {
    if (f.padding) continue;
    const to = join(dir, ...f.path);
    await Deno.mkdir(dirname(to), { recursive: true });
    await Deno.copyFile(join(REAL, "data", f.displayPath), to);
  }
  return dir;
}

Deno.test("hashcheck passes every piece of libtorrent's v2 and hybrid torrents, and fails exactly a damaged one", async () => {
  for (
    const name of [
      "libtorrent_v2_single.torrent",
      "libtorrent_v2_multi.torrent",
      "libtorrent_hybrid_single.torrent",
      "libtorrent_hybrid_multi.torrent",
    ]
  ) {
    const meta = await fixture(name);
    const dir = await placed(meta);
    try {
      {
        await using storage = new Storage({ dir, layout: meta, writerThread: false });
        const ok = await storage.hashcheck();
        assert.equal(ok.count, meta.pieceCount, name);
        for (let i = 0; i < meta.pieceCount; i++) {
          const check = await storage.checkPiece(i, (await storage.readPiece(i))!);
          assert.deepEqual(check, {
            v1: meta.version === "hybrid" ? true : undefined,
            v2: true,
          }, `${name} piece ${i}`);
        }
      }
      // one byte changed in the middle of the last (or only) non-empty file
      const last = meta.files.findLast((f) => !f.padding && f.length > 0)!;
      const path = join(dir, ...last.path);
      const bytes = await Deno.readFile(path);
      const at = Math.floor(bytes.length / 2);
      bytes[at] ^= 1;
      await Deno.writeFile(path, bytes);
      const broken = Math.floor((last.offset + at) / meta.pieceLength);
      await using storage = new Storage({ dir, layout: meta, writerThread: false });
      const failed: number[] = [];
      await storage.hashcheck(undefined, { onFail: (i) => failed.push(i) });
      assert.deepEqual(failed, [broken], name);
      assert.deepEqual(await storage.checkPiece(broken, (await storage.readPiece(broken))!), {
        v1: meta.version === "hybrid" ? false : undefined,
        v2: false,
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
});

Deno.test("a hybrid piece whose SHA-1 passes but whose merkle hash does not is a failure (unless SHA-1 alone decides)", async () => {
  const meta = await fixture("libtorrent_hybrid_multi.torrent");
  // leaf.txt (5 bytes, one piece) with a wrong root: the v1 hash still matches the data
  const files = meta.files.map((f) =>
    f.displayPath.endsWith("leaf.txt") ? { ...f, piecesRoot: new Uint8Array(32).fill(7) } : f
  );
  const leaf = files.findIndex((f) => f.displayPath.endsWith("leaf.txt"));
  const piece = files[leaf].offset / meta.pieceLength;
  const dir = await placed(meta);
  try {
    await using both = new Storage({ dir, layout: { ...meta, files }, writerThread: false });
    const data = (await both.readPiece(piece))!;
    assert.deepEqual(await both.checkPiece(piece, data), { v1: true, v2: false });
    assert.equal(await both.verifyPiece(piece, data), false);
    await using sha1Only = new Storage({
      dir,
      layout: { ...meta, files },
      writerThread: false,
      hybridVerifyBoth: false,
    });
    assert.equal(await sha1Only.verifyPiece(piece, data), true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("without a file's piece layer, v2 pieces cannot pass; hybrids fall back to SHA-1", async () => {
  for (const name of ["libtorrent_v2_multi.torrent", "libtorrent_hybrid_multi.torrent"]) {
    const meta = await fixture(name);
    const dir = await placed(meta);
    try {
      const a = meta.files.findIndex((f) => f.displayPath === "multi/a.txt");
      const layers = new Map(meta.pieceLayers);
      layers.delete(toHex(meta.files[a].piecesRoot!));
      await using storage = new Storage({
        dir,
        layout: { ...meta, pieceLayers: layers },
        writerThread: false,
      });
      const ok = await storage.hashcheck();
      const piecesOfA = Math.ceil(meta.files[a].length / meta.pieceLength);
      for (let i = 0; i < meta.pieceCount; i++) {
        assert.equal(ok.has(i), meta.version === "hybrid" || i >= piecesOfA, `${name} piece ${i}`);
      }
      const verifier = new TorrentVerifier(new Layout({ ...meta, pieceLayers: layers }));
      assert.equal(verifier.expectedV2(0), undefined);
      // the next piece is leaf.txt's, after a padding file and an empty file
      assert.equal(verifier.expectedV2(piecesOfA)?.file, a + 3);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
});

Deno.test("writing a v2 torrent's pieces never creates its padding, and resume data covers the real files", async () => {
  const meta = await fixture("libtorrent_v2_multi.torrent");
  const source = await placed(meta);
  const dir = await Deno.makeTempDir({ prefix: "seedbed-v2-" });
  try {
    await using from = new Storage({ dir: source, layout: meta, writerThread: false });
    {
      await using to = new Storage({
        dir,
        layout: meta,
        writerThread: false,
        resumePath: join(dir, "resume.json"),
      });
      const have = new Bitfield(meta.pieceCount);
      for (let i = 0; i < meta.pieceCount; i++) {
        const data = (await from.readPiece(i))!;
        assert.ok(await to.verifyPiece(i, data));
        await to.writePiece(i, data);
        have.set(i);
      }
      await to.saveResume(have);
    }
    const written: string[] = [];
    for await (const e of Deno.readDir(join(dir, "multi"))) written.push(e.name);
    assert.deepEqual(written.sort(), ["_nul.bin", "a.txt", "empty.txt", "nested"]);
    for (const f of meta.files) {
      if (f.padding) continue;
      const a = await Deno.readFile(join(source, ...f.path));
      assert.deepEqual(await Deno.readFile(join(dir, ...f.path)), a, f.displayPath);
    }
    await using again = new Storage({
      dir,
      layout: meta,
      writerThread: false,
      resumePath: join(dir, "resume.json"),
    });
    const resumed = await again.loadResume();
    assert.equal(resumed?.have.count, meta.pieceCount);
    assert.deepEqual(resumed?.recheck, []);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(source, { recursive: true });
  }
});

Deno.test("applyAttributes(): executable files get +x where readable; links inside the torrent are made, nothing is clobbered", async () => {
  const dir = await Deno.makeTempDir({ prefix: "seedbed-attr-" });
  try {
    const files = [
      { path: ["t", "run.sh"], length: 4, offset: 0, executable: true },
      { path: ["t", "link"], length: 0, offset: 4, symlink: ["t", "run.sh"] },
      { path: ["t", "d", "up"], length: 0, offset: 4, symlink: ["t", "d"] },
      { path: ["t", "taken"], length: 0, offset: 4, symlink: ["t", "run.sh"] },
      { path: ["t", "escape"], length: 0, offset: 4, symlink: ["t", "..", "x"] },
    ];
    await Deno.mkdir(join(dir, "t"), { recursive: true });
    await Deno.writeTextFile(join(dir, "t", "taken"), "user data");
    const data = new TextEncoder().encode("#!/b");
    const pieces = new Uint8Array(await crypto.subtle.digest("SHA-1", data));
    await using storage = new Storage({
      dir,
      layout: { files, pieceLength: 16384, length: 4, pieces },
      writerThread: false,
    });
    await storage.writePiece(0, data);
    await Deno.chmod(join(dir, "t", "run.sh"), 0o640);
    const warnings = await storage.applyAttributes();
    assert.equal((await Deno.stat(join(dir, "t", "run.sh"))).mode! & 0o777, 0o750);
    assert.equal(await Deno.readLink(join(dir, "t", "link")), "run.sh");
    assert.equal(await Deno.readTextFile(join(dir, "t", "link")), "#!/b");
    assert.equal(await Deno.readLink(join(dir, "t", "d", "up")), ".");
    assert.equal(await Deno.readTextFile(join(dir, "t", "taken")), "user data");
    assert.equal((await Deno.lstat(join(dir, "t", "escape"))).isSymlink, false);
    assert.equal(warnings.length, 2, warnings.join("\n"));
    assert.match(warnings[0], /t\/taken: symbolic link not made: a file with data is in its place/);
    assert.match(
      warnings[1],
      /t\/escape: symbolic link not made: its target is outside the torrent/,
    );
    // idempotent
    assert.equal((await storage.applyAttributes()).length, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the engine's PieceVerifier checks v2 pieces by merkle hash and hybrids by both, on either thread", async () => {
  for (const name of ["libtorrent_v2_multi.torrent", "libtorrent_hybrid_multi.torrent"]) {
    const meta = await fixture(name);
    const dir = await placed(meta);
    try {
      await using storage = new Storage({ dir, layout: meta, writerThread: false });
      for (const worker of [false, true]) {
        const verifier = new PieceVerifier({ pieces: meta.pieces, worker, layout: meta });
        try {
          for (let i = 0; i < meta.pieceCount; i++) {
            const data = (await storage.readPiece(i))!;
            const piece = { index: i, buffer: data.slice() as Uint8Array<ArrayBuffer> };
            assert.equal(await verifier.verify(piece, meta.pieceLength), true, `${name} ${i}`);
            piece.buffer[0] ^= 1; // (a byte of padding would not count for v2: it is not hashed)
            assert.equal(await verifier.verify(piece, meta.pieceLength), false, `${name} ${i} bad`);
          }
        } finally {
          verifier.close();
        }
      }
      // without the layout, a v2-only torrent has no SHA-1 to check against: nothing passes
      const blind = new PieceVerifier({ pieces: meta.pieces });
      const piece = {
        index: 0,
        buffer: (await storage.readPiece(0))!.slice() as Uint8Array<ArrayBuffer>,
      };
      assert.equal(await blind.verify(piece, meta.pieceLength), meta.version === "hybrid");
      blind.close();
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
});
