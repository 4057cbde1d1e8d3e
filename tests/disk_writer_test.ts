import assert from "node:assert/strict";
import { join } from "node:path";
import { DiskWriter } from "../src/storage/_disk_writer.ts";

/** Runs `fn` with a temporary directory, removed afterwards. */
async function inTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function bytes(n: number, seed: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

Deno.test("DiskWriter: quick writes stay on the event loop's thread, the buffer is never moved", () =>
  inTempDir(async (dir) => {
    const w = DiskWriter.open();
    const path = join(dir, "f.bin");
    const a = bytes(40_000, 1), b = bytes(40_000, 2);
    const backA = await w.write(path, a.buffer, 0, a.length, 0);
    assert.equal(backA, a.buffer, "the same memory");
    assert.equal(a.byteLength, 40_000, "never detached");
    await w.write(path, b.buffer, 1000, 39_000, 40_000);
    assert.equal(w.threaded, false);
    await w.close();
    const got = await Deno.readFile(path);
    assert.deepEqual(got.subarray(0, 40_000), a);
    assert.deepEqual(got.subarray(40_000), b.subarray(1000));
  }));

Deno.test("DiskWriter: on the worker thread (slowMs 0) the buffer goes there and comes back", () =>
  inTempDir(async (dir) => {
    const w = DiskWriter.open({ slowMs: 0 });
    const path = join(dir, "f.bin");
    const a = bytes(70_000, 3);
    const copy = a.slice();
    const pending = w.write(path, a.buffer, 0, a.length, 5);
    assert.equal(a.byteLength, 0, "transferred to the worker");
    assert.equal(w.threaded, true);
    const back = new Uint8Array(await pending);
    assert.deepEqual(back, copy);
    await w.close();
    const got = await Deno.readFile(path);
    assert.deepEqual(got.subarray(5), copy);
  }));

Deno.test("DiskWriter: a refused write rejects with the error's code and hands the buffer back, on either thread", () =>
  inTempDir(async (dir) => {
    for (const slowMs of [50, 0]) {
      const w = DiskWriter.open({ slowMs });
      const a = bytes(1000, 4);
      const err = await w.write(join(dir, "missing", "f.bin"), a.buffer, 0, a.length, 0).then(
        () => undefined,
        (e: Error & { code?: string; buffer?: ArrayBuffer }) => e,
      );
      assert.ok(err, `slowMs ${slowMs}: rejected`);
      assert.equal(err.code, "ENOENT");
      assert.equal(err.buffer?.byteLength, 1000, "the buffer comes back");
      await w.close();
    }
  }));

Deno.test("DiskWriter: a write that keeps the event loop too long hands its rest, and what follows, to the worker thread", () =>
  inTempDir(async (dir) => {
    // 8 MiB in 16 KiB writes takes far longer than a microsecond: the switch happens part-way through
    const w = DiskWriter.open({ slowMs: 0.001 });
    const path = join(dir, "f.bin");
    const a = bytes(8 << 20, 5);
    const copy = a.slice();
    const pending = w.write(path, a.buffer, 0, a.length, 0);
    assert.equal(w.threaded, true, "moved to the worker");
    assert.equal(a.byteLength, 0, "the rest went to the worker with the buffer");
    assert.deepEqual(new Uint8Array(await pending), copy);
    const b = bytes(1000, 6);
    const next = w.write(path, b.buffer, 0, b.length, 8 << 20);
    assert.equal(b.byteLength, 0, "later writes go to the worker too");
    await next;
    await w.close();
    const got = await Deno.readFile(path);
    assert.equal(got.length, (8 << 20) + 1000);
    assert.deepEqual(got.subarray(0, 8 << 20), copy);
  }));
