// The engine side of streaming through the library API: `torrent.files[i].stream()` while the torrent downloads
// from a rate-limited libtorrent seeder — BYOB readers, several readers at once, cancellation, files not selected
// for download, a torrent closed under a waiting reader, a stopped torrent's data — and `files`' new members.

import assert from "node:assert/strict";
import { join } from "node:path";
import { Client } from "../src/client.ts";
import { createTorrent } from "../src/create.ts";
import { parseMetainfo } from "../src/metainfo.ts";
import { needs } from "./_lab.ts";
import { payload, within } from "./_swarm.ts";
import { streamingLab } from "./_streaming.ts";

const MiB = 1024 * 1024;
const PIECE = 256 * 1024;

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

Deno.test({
  name:
    "files[i].stream(): BYOB and default readers, several at once, cancelled ones drop their deadlines",
  ignore: needs("libtorrent"),
  async fn() {
    const a = payload(12 * MiB + 5, 7), b = payload(4 * MiB + 99, 8);
    await using lab = await streamingLab("two", [
      { path: "a.mkv", data: a },
      { path: "b.mkv", data: b },
    ], { rate: 3 * MiB, pieceLength: PIECE });
    const t = lab.torrent;
    const [fa, fb] = t.files;
    assert.deepEqual([fa.name, fa.index, fa.offset, fa.length], ["a.mkv", 0, 0, a.length]);
    assert.deepEqual([fb.name, fb.index, fb.offset], ["b.mkv", 1, a.length]);
    assert.equal(fa.path, join(lab.root, "leech", "two", "a.mkv"));
    assert.equal(fb.complete, false);

    // a BYOB reader gets the bytes in its own buffer
    const byob = fa.stream({ start: 5 * MiB, end: 5 * MiB + 100_000 }).getReader({ mode: "byob" });
    let buf = new ArrayBuffer(40_000), got = 0;
    const parts: Uint8Array<ArrayBuffer>[] = [];
    for (;;) {
      const { value, done } = await within(60_000, "a BYOB read", byob.read(new Uint8Array(buf)));
      if (done) break;
      assert.ok(value.byteLength <= 40_000);
      parts.push(value.slice());
      got += value.byteLength;
      buf = value.buffer;
    }
    assert.equal(got, 100_000);
    assert.ok(
      equalBytes(
        new Uint8Array(await new Blob(parts).arrayBuffer()),
        a.subarray(5 * MiB, 5 * MiB + 100_000),
      ),
    );

    // three readers at once on two files, and one that gives up
    const quitter = fa.stream({ start: 11 * MiB });
    const q = quitter.getReader();
    assert.equal(t.engine!.readers, 1);
    const all = await within(
      60_000,
      "three streams",
      Promise.all([
        collect(fa.stream({ start: 9 * MiB, end: 10 * MiB })),
        collect(fa.stream({ start: 2 * MiB + 3, end: 3 * MiB })),
        collect(fb.stream()),
      ]),
    );
    assert.ok(equalBytes(all[0], a.subarray(9 * MiB, 10 * MiB)));
    assert.ok(equalBytes(all[1], a.subarray(2 * MiB + 3, 3 * MiB)));
    assert.ok(equalBytes(all[2], b));
    assert.equal(fb.complete || t.files[1].complete, true);
    assert.equal(t.files[1].bytesCompleted, b.length);
    await q.cancel("seen enough");
    assert.equal(t.engine!.readers, 0, "the cancelled stream's deadlines are gone");
    assert.ok(lab.progress() < 1, "all of this before the download ended");

    // arrayBuffer() and blob() wait for the whole file
    assert.ok(equalBytes(new Uint8Array(await fb.arrayBuffer()), b));
    assert.equal((await fa.blob()).size, a.length);
    assert.throws(() => fa.stream({ start: 10, end: a.length + 1 }), RangeError);
    assert.throws(() => fa.stream({ start: -1 }), RangeError);
    assert.equal((await collect(fa.stream({ start: 7, end: 7 }))).length, 0);
  },
});

Deno.test({
  name: "a file not selected for download can be streamed: only the pieces read are fetched",
  ignore: needs("libtorrent"),
  async fn() {
    const a = payload(8 * MiB, 9), b = payload(8 * MiB, 10);
    await using lab = await streamingLab("skip", [
      { path: "a.bin", data: a },
      { path: "b.bin", data: b },
    ], { rate: 4 * MiB, pieceLength: PIECE, add: { priorities: [1, 0] } });
    const t = lab.torrent;
    const got = await within(
      60_000,
      "the unselected file's range",
      collect(t.files[1].stream({ start: 3 * MiB, end: 4 * MiB })),
    );
    assert.ok(equalBytes(got, b.subarray(3 * MiB, 4 * MiB)));
    await within(60_000, "the selected file", t.done);
    // b's other pieces were never wanted: 4 (+1 shared) pieces of it at most
    assert.ok(t.files[1].bytesCompleted <= 5 * PIECE, `${t.files[1].bytesCompleted}`);
    assert.equal(t.files[1].priority, 0);
    // read back again (from the part file or b's own file) once more
    assert.ok(equalBytes(await collect(t.files[1].stream({ start: 3 * MiB, end: 4 * MiB })), got));
  },
});

Deno.test({
  name: "closing a torrent errors a stream that waits for a piece",
  ignore: needs("libtorrent"),
  async fn() {
    const a = payload(16 * MiB, 11);
    await using lab = await streamingLab("close", [{ path: "a.bin", data: a }], {
      rate: 512 * 1024,
      pieceLength: PIECE,
    });
    const reader = lab.torrent.files[0].stream({ start: 15 * MiB }).getReader();
    const read = reader.read();
    await lab.session.remove(lab.torrent);
    await assert.rejects(within(15_000, "the stream to error", read), /torrent was closed/);
  },
});

Deno.test("a stopped torrent's complete files stream from disk; files leaves out padding files", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-stream-" });
  try {
    const dir = join(root, "t");
    await Deno.mkdir(dir);
    const x = payload(100_000, 12), y = payload(50_000, 13);
    await Deno.writeFile(join(dir, "x.bin"), x);
    await Deno.writeFile(join(dir, "y.bin"), y);
    // a hybrid torrent has a padding file after x.bin
    const meta = await parseMetainfo(
      await createTorrent(dir, { pieceLength: 32768, version: "hybrid" }),
    );
    assert.ok(meta.files.some((f) => f.padding));
    await using c = await Client.open({
      metainfo: meta,
      basedir: root,
      state: "stopped",
      resumeFile: false,
    });
    assert.equal(c.state, "stopped");
    const files = c.files;
    assert.deepEqual(files.map((f) => [f.name, f.index, f.complete]), [
      ["x.bin", 0, true],
      ["y.bin", 2, true],
    ]);
    assert.equal(files[1].offset, meta.files[2].offset);
    assert.ok(equalBytes(await collect(files[1].stream()), y));
    assert.ok(equalBytes(await collect(files[0].stream({ start: 99_000 })), x.subarray(99_000)));
    const source = c.streamSource();
    assert.equal(source.infoHash, meta.infoHashHex);
    assert.deepEqual(source.files.map((f) => [f.path, f.length, f.complete]), [
      [["x.bin"], 100_000, true],
      [["y.bin"], 50_000, true],
    ]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
