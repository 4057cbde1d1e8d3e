import assert from "node:assert/strict";
import { Layout } from "../src/storage/layout.ts";
import { type ResumeBackend, ResumeData } from "../src/storage/resume.ts";

Deno.test("ResumeData writes the journal records that arrive during an append in one append", async () => {
  const appends: Uint8Array[] = [];
  let release: () => void = () => {};
  const backend: ResumeBackend = {
    stat: () => Promise.resolve(undefined),
    mkdir: () => Promise.resolve(),
    writeAtomic: () => Promise.resolve(),
    readFile: () => Promise.resolve(undefined),
    async append(_path, data) {
      appends.push(data.slice());
      if (appends.length === 1) await new Promise<void>((r) => release = r); // the first one is slow
    },
  };
  const layout = new Layout({
    files: [{ path: ["f"], length: 10 * 16384, offset: 0 }],
    pieceLength: 16384,
    length: 10 * 16384,
    pieces: new Uint8Array(200),
  });
  const resume = new ResumeData({
    path: "/nowhere/resume.json",
    backend,
    layout,
    filePath: () => "/nowhere/f",
    priority: () => 1,
    partPath: "/nowhere/.parts",
    parts: new Map([[7, 3]]),
  });
  const first = resume.journal(0);
  await new Promise((r) => setTimeout(r, 0)); // the first append is in flight
  const rest = [1, 7, 2, 5].map((i) => resume.journal(i));
  release();
  await Promise.all([first, ...rest]);
  assert.equal(appends.length, 2, "one append for the piece in flight, one for the four after it");
  const records = (bytes: Uint8Array) => {
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return Array.from(
      { length: bytes.length / 8 },
      (_, i) => [v.getUint32(i * 8), v.getUint32(i * 8 + 4)],
    );
  };
  assert.deepEqual(records(appends[0]), [[0, 0xffffffff]]);
  assert.deepEqual(records(appends[1]), [[1, 0xffffffff], [7, 3], [2, 0xffffffff], [
    5,
    0xffffffff,
  ]]);
});
