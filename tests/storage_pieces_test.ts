import assert from "node:assert/strict";
import { join } from "node:path";
import { Bitfield } from "../src/bitfield.ts";
import { Layout, type StorageFile } from "../src/storage/layout.ts";
import { denoBackend, type FileBackend, Storage, StorageError } from "../src/storage/storage.ts";
import { payload } from "./_swarm.ts";

const PL = 100; // tiny pieces make boundaries easy to reason about

async function geometry(lengths: number[], pieceLength = PL, seed = 3) {
  const files: StorageFile[] = [];
  let offset = 0;
  lengths.forEach((length, i) => {
    files.push({ path: ["t", `f${i}.bin`], length, offset });
    offset += length;
  });
  const data = payload(offset, seed);
  const count = Math.ceil(offset / pieceLength);
  const pieces = new Uint8Array(count * 20);
  for (let i = 0; i < count; i++) {
    const d = await crypto.subtle.digest(
      "SHA-1",
      data.subarray(i * pieceLength, (i + 1) * pieceLength),
    );
    pieces.set(new Uint8Array(d), i * 20);
  }
  return { layout: { files, pieceLength, length: offset, pieces }, data, count };
}

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "seedbed-storage-" });
}

Deno.test("Layout maps a piece that spans three files, skipping zero-length files", async () => {
  const { layout } = await geometry([30, 0, 20, 60, 90]);
  const l = new Layout(layout);
  assert.equal(l.pieceCount, 2);
  assert.deepEqual(l.spans(0, 0, 100), [
    { file: 0, fileOffset: 0, bufferOffset: 0, length: 30 },
    { file: 2, fileOffset: 0, bufferOffset: 30, length: 20 },
    { file: 3, fileOffset: 0, bufferOffset: 50, length: 50 },
  ]);
  assert.deepEqual(l.spans(1, 5, 20), [
    { file: 3, fileOffset: 55, bufferOffset: 0, length: 5 },
    { file: 4, fileOffset: 0, bufferOffset: 5, length: 15 },
  ]);
  assert.deepEqual(l.filesOfPiece(1), [3, 4]);
  assert.equal(l.pieceRangeOfFile(1), undefined);
  assert.deepEqual(l.pieceRangeOfFile(3), [0, 1]);
});

Deno.test("Layout: a file ending exactly on a piece boundary is not part of the next piece (seed's off-by-one)", async () => {
  const { layout } = await geometry([100, 100, 5]);
  const l = new Layout(layout);
  assert.deepEqual(l.filesOfPiece(0), [0]);
  assert.deepEqual(l.filesOfPiece(1), [1]);
  assert.deepEqual(l.filesOfPiece(2), [2]);
  assert.deepEqual(l.pieceRangeOfFile(0), [0, 0]);
  assert.deepEqual(l.pieceRangeOfFile(1), [1, 1]);
});

Deno.test("Layout: the last piece is short and ranges outside a piece are refused", async () => {
  const { layout } = await geometry([250]);
  const l = new Layout(layout);
  assert.equal(l.pieceSize(2), 50);
  assert.throws(() => l.spans(2, 0, 51), RangeError);
  assert.throws(() => l.spans(3, 0, 1), RangeError);
});

Deno.test("writePiece() and readPiece() round-trip across file boundaries, tiny and empty files", async () => {
  const dir = await tempDir();
  try {
    const { layout, data, count } = await geometry([30, 0, 7, 160, 3, 55]);
    {
      await using s = new Storage({ dir, layout });
      for (let i = count - 1; i >= 0; i--) {
        await s.writePiece(i, data.subarray(i * PL, (i + 1) * PL));
      }
      for (let i = 0; i < count; i++) {
        const back = await s.readPiece(i);
        assert.deepEqual(back, data.subarray(i * PL, Math.min((i + 1) * PL, data.length)));
      }
      assert.deepEqual(await s.readBlock(1, 10, 20), data.subarray(110, 130));
    }
    for (const [i, f] of layout.files.entries()) {
      const bytes = await Deno.readFile(join(dir, ...f.path));
      assert.deepEqual(bytes, data.subarray(f.offset, f.offset + f.length), `file ${i}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("hashcheck() checks all, a list, or one piece; one bad byte fails exactly its pieces", async () => {
  const dir = await tempDir();
  try {
    const { layout, data, count } = await geometry([150, 150, 130]);
    await using s = new Storage({ dir, layout });
    for (let i = 0; i < count; i++) await s.writePiece(i, data.subarray(i * PL, (i + 1) * PL));
    assert.equal((await s.hashcheck()).count, count);
    // corrupt byte 120 of f1 (torrent offset 270: piece 2)
    const path = join(dir, "t", "f1.bin");
    const f1 = await Deno.readFile(path);
    f1[120] ^= 0xff;
    await Deno.writeFile(path, f1);
    const passed: number[] = [], failed: number[] = [];
    const progress: number[] = [];
    const ok = await s.hashcheck(undefined, {
      onPass: (i) => passed.push(i),
      onFail: (i) => failed.push(i),
      onProgress: (done) => progress.push(done),
    });
    assert.deepEqual(failed, [2]);
    assert.equal(passed.length, count - 1);
    assert.equal(ok.has(2), false);
    assert.deepEqual(progress, Array.from({ length: count }, (_, i) => i + 1));
    assert.deepEqual([...(await s.hashcheck([0, 2, 4]))], [0, 4]);
    assert.deepEqual([...(await s.hashcheck(3))], [3]);
    await assert.rejects(s.hashcheck([count]), RangeError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("hashcheck() fails the pieces of missing and short files instead of throwing", async () => {
  const dir = await tempDir();
  try {
    const { layout, data, count } = await geometry([150, 150, 130]);
    await using s = new Storage({ dir, layout });
    for (let i = 0; i < count; i++) await s.writePiece(i, data.subarray(i * PL, (i + 1) * PL));
    await s.close();
    await Deno.remove(join(dir, "t", "f0.bin"));
    await Deno.truncate(join(dir, "t", "f2.bin"), 100);
    await using again = new Storage({ dir, layout });
    const failed: number[] = [];
    await again.hashcheck(undefined, { onFail: (i) => failed.push(i) });
    // f0 = bytes 0-149 (pieces 0,1); f2 = 300-429, short after 400 (piece 4)
    assert.deepEqual(failed, [0, 1, 4]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("hashcheck() on two threads finds the same pieces as on one, reported in the list's order", async () => {
  const dir = await tempDir();
  // count the pieces handed to the worker thread
  const RealWorker = globalThis.Worker;
  let hashedThere = 0;
  globalThis.Worker = class extends RealWorker {
    override postMessage(
      message: unknown,
      transfer?: Transferable[] | StructuredSerializeOptions,
    ): void {
      if ((message as { op?: string }).op === "hash") hashedThere++;
      super.postMessage(message, transfer as Transferable[]);
    }
  };
  try {
    // a padding file, a priority-0 file (its boundary pieces in the part file), 61 pieces
    const { layout, data, count } = await geometry([1500, 170, 1110, 3300]);
    layout.files[2] = { ...layout.files[2], padding: true };
    data.fill(0, 1670, 2780);
    for (let i = 16; i <= 27; i++) {
      const d = await crypto.subtle.digest("SHA-1", data.subarray(i * PL, (i + 1) * PL));
      layout.pieces.set(new Uint8Array(d), i * 20);
    }
    const partPath = join(dir, "parts");
    let cache;
    {
      await using s = new Storage({ dir, layout, priorities: [1, 0, 1, 1], partPath });
      for (let i = 0; i < count; i++) await s.writePiece(i, data.subarray(i * PL, (i + 1) * PL));
      cache = s.pieceCache();
    }
    assert.deepEqual(cache.pieces.map(([p]) => p), [15, 16]);
    // damage: one byte of f0 (piece 7), f3 cut short (its last 3 pieces)
    const f0 = await Deno.readFile(join(dir, "t", "f0.bin"));
    f0[777] ^= 1;
    await Deno.writeFile(join(dir, "t", "f0.bin"), f0);
    await Deno.truncate(join(dir, "t", "f3.bin"), 3300 - 250);
    const check = async (checkThreads: 1 | 2, list?: number[]) => {
      await using s = new Storage({
        dir,
        layout,
        priorities: [1, 0, 1, 1],
        partPath,
        pieceCache: cache,
        checkThreads,
      });
      const order: string[] = [];
      const progress: number[] = [];
      const passed = await s.hashcheck(list, {
        onPass: (i) => order.push(`+${i}`),
        onFail: (i) => order.push(`-${i}`),
        onProgress: (done) => progress.push(done),
      });
      return { passed: [...passed], order, progress };
    };
    const one = await check(1);
    assert.equal(hashedThere, 0);
    const two = await check(2);
    // (how many depends on how soon the worker starts: two are handed to it at once)
    assert.ok(hashedThere >= 2, `the worker hashed ${hashedThere} pieces`);
    assert.deepEqual(two, one);
    assert.deepEqual(one.order.filter((o) => o.startsWith("-")), ["-7", "-58", "-59", "-60"]);
    assert.deepEqual(one.progress, Array.from({ length: count }, (_, i) => i + 1));
    const list = [60, 3, 16, 7, 15, 40];
    assert.deepEqual((await check(2, list)).order, ["-60", "+3", "+16", "-7", "+15", "+40"]);
  } finally {
    globalThis.Worker = RealWorker;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("priority 0: the file is never created, its boundary pieces live in the part file and come back", async () => {
  const dir = await tempDir();
  try {
    const { layout, data, count } = await geometry([150, 170, 110]);
    const partPath = join(dir, "parts");
    let cache;
    {
      await using s = new Storage({ dir, layout, priorities: [1, 0, 1], partPath });
      // pieces 1 and 3 overlap f1 and a wanted file; piece 2 is only f1 and is not written at all
      for (const i of [0, 1, 3, 4]) await s.writePiece(i, data.subarray(i * PL, (i + 1) * PL));
      await assert.rejects(Deno.stat(join(dir, "t", "f1.bin")), Deno.errors.NotFound);
      cache = s.pieceCache();
      assert.deepEqual(cache.pieces.map(([p]) => p), [1, 3]);
    }
    // a new instance restores the index and reads those pieces whole from the part file
    await using s2 = new Storage({
      dir,
      layout,
      priorities: [1, 0, 1],
      partPath,
      pieceCache: cache,
    });
    assert.deepEqual(await s2.readPiece(1), data.subarray(100, 200));
    assert.deepEqual(await s2.readPiece(3), data.subarray(300, 400));
    // raising the priority moves the data into the real file
    await s2.setPriority(1, 1);
    await s2.writePiece(2, data.subarray(200, 300));
    await s2.close();
    assert.deepEqual(await Deno.readFile(join(dir, "t", "f1.bin")), data.subarray(150, 320));
    assert.equal(count, 5);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("resume data is trusted for unchanged files and not for files that changed size or time", async () => {
  const dir = await tempDir();
  try {
    const { layout, data, count } = await geometry([150, 150, 130]);
    const resumePath = join(dir, "state", "resume.json");
    const have = new Bitfield(count);
    {
      await using s = new Storage({ dir, layout, resumePath });
      for (let i = 0; i < count; i++) {
        await s.writePiece(i, data.subarray(i * PL, (i + 1) * PL));
        have.set(i);
      }
      await s.saveResume(have);
    }
    {
      await using s = new Storage({ dir, layout, resumePath });
      const r = (await s.loadResume())!;
      assert.equal(r.have.count, count);
      assert.deepEqual(r.recheck, []);
    }
    // touch f2's modification time: its pieces (3, 4) must be verified again
    await Deno.utime(join(dir, "t", "f2.bin"), new Date(), new Date(Date.now() + 5000));
    await using s = new Storage({ dir, layout, resumePath });
    const r = (await s.loadResume())!;
    assert.deepEqual([...r.have], [0, 1, 2]);
    assert.deepEqual(r.recheck, [3, 4]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("missing or corrupt resume data means no resume data", async () => {
  const dir = await tempDir();
  try {
    const { layout } = await geometry([150]);
    const resumePath = join(dir, "resume.json");
    await using s = new Storage({ dir, layout, resumePath });
    assert.equal(await s.loadResume(), undefined);
    await Deno.writeTextFile(resumePath, "{not json");
    assert.equal(await s.loadResume(), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a full disk fails the write with StorageError ENOSPC, and writes succeed once space returns", async () => {
  const dir = await tempDir();
  try {
    const { layout, data } = await geometry([150, 150]);
    let full = true;
    const backend: FileBackend = {
      ...denoBackend,
      async open(path, write) {
        const f = await denoBackend.open(path, write);
        return {
          ...f,
          write: (bytes, pos) =>
            full
              ? Promise.reject(new Error("No space left on device (os error 28): ENOSPC"))
              : f.write(bytes, pos),
        };
      },
    };
    await using s = new Storage({ dir, layout, backend });
    const err = await s.writePiece(0, data.subarray(0, 100)).then(() => undefined, (e) => e);
    assert.ok(err instanceof StorageError);
    assert.equal(err.code, "ENOSPC");
    assert.match(err.message, /Cannot write piece 0/);
    assert.equal(s.error, err);
    full = false;
    await s.writePiece(0, data.subarray(0, 100));
    assert.equal(s.error, undefined);
    assert.deepEqual(await s.readPiece(0), data.subarray(0, 100));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a path that would leave the download directory is refused", async () => {
  const dir = await tempDir();
  try {
    const layout = {
      files: [{ path: ["..", "escaped.bin"], length: 10, offset: 0 }],
      pieceLength: 16,
      length: 10,
      pieces: new Uint8Array(20),
    };
    await using s = new Storage({ dir: join(dir, "inner"), layout });
    await assert.rejects(s.writePiece(0, new Uint8Array(10)), /outside the download directory/);
    await assert.rejects(Deno.stat(join(dir, "escaped.bin")), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a symlinked directory leading outside the download directory is refused", async () => {
  const dir = await tempDir();
  const outside = await tempDir();
  try {
    await Deno.mkdir(join(dir, "dl"));
    await Deno.symlink(outside, join(dir, "dl", "t"));
    const { layout, data } = await geometry([50]);
    await using s = new Storage({ dir: join(dir, "dl"), layout });
    await assert.rejects(s.writePiece(0, data), /leads outside/);
    assert.deepEqual([...Deno.readDirSync(outside)], []);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(outside, { recursive: true });
  }
});

Deno.test("writePieceMoving(): pieces are written and their buffers come back, across files and the part file", async () => {
  const { layout, data, count } = await geometry([30, 0, 20, 260, 90, 45]);
  const dir = await tempDir();
  try {
    {
      // file 4 skipped: its pieces' other bytes land in the files, the piece whole in the part file
      await using s = new Storage({ dir, layout, priorities: [1, 1, 1, 1, 0, 1] });
      for (let i = 0; i < count; i++) {
        const holder = { buffer: data.slice(i * PL, Math.min((i + 1) * PL, data.length)) };
        await s.writePieceMoving(i, holder);
        assert.deepEqual(
          holder.buffer,
          data.subarray(i * PL, (i + 1) * PL),
          `piece ${i} came back`,
        );
      }
      await s.flush();
      const passed = await s.hashcheck();
      assert.equal(passed.count, count, "every piece reads back from files and part file");
    }
    assert.deepEqual(await Deno.readFile(join(dir, "t", "f3.bin")), data.subarray(50, 310));
    assert.deepEqual(await Deno.readFile(join(dir, "t", "f5.bin")), data.subarray(400, 445));
    assert.equal(await Deno.stat(join(dir, "t", "f4.bin")).catch(() => undefined), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a backend file closed with a read still coming reopens for the read and leaves nothing open", async () => {
  const path = await Deno.makeTempFile({ prefix: "seedbed-backend-" });
  try {
    await Deno.writeFile(path, new Uint8Array(100).fill(7));
    const handle = await denoBackend.open(path, false);
    // evicted from a cache while a caller still holds it: the close is queued first, the read after it
    const closing = handle.close();
    const buf = new Uint8Array(10);
    assert.equal(await handle.read(buf, 0), 10);
    assert.deepEqual(buf, new Uint8Array(10).fill(7));
    await closing;
    // (the resource sanitizer fails this test if the descriptor the read reopened stayed open)
  } finally {
    await Deno.remove(path);
  }
});
