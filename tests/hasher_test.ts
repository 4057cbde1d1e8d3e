// PieceHasher: the same digests on the calling thread and on a worker, buffers handed back; a download with the
// worker on completes.

import assert from "node:assert/strict";
import { join } from "node:path";
import { sha1 } from "../src/_bytes.ts";
import { Client } from "../src/client.ts";
import { PieceHasher } from "../src/storage/hasher.ts";
import { makeTorrent, payload, sameFiles, within } from "./_swarm.ts";

Deno.test("PieceHasher hashes the first `length` bytes, on the calling thread and on a worker", async () => {
  for (const worker of [false, true]) {
    using hasher = new PieceHasher({ worker });
    for (const size of [1, 16384, 100_000]) {
      const buf = new Uint8Array(size + 10);
      buf.set(payload(size, size));
      const { digest, buffer } = await hasher.hash(buf, size);
      assert.deepEqual(digest, await sha1(payload(size, size)), `worker=${worker} size=${size}`);
      assert.equal(buffer.length, size + 10);
      assert.deepEqual(buffer.subarray(0, size), payload(size, size));
    }
  }
});

Deno.test("a download with hashWorker on completes byte-exact", async () => {
  const root = await Deno.makeTempDir({ prefix: "seedbed-hashworker-" });
  try {
    const files = [{ path: "x.bin", length: 700_000 }];
    const { meta } = await makeTorrent(join(root, "seed"), "t", files, { pieceLength: 65536 });
    await using seeder = await Client.open({
      metainfo: meta,
      basedir: join(root, "seed"),
      host: "127.0.0.1",
      resumeFile: false,
    });
    await using leecher = await Client.open({
      metainfo: meta,
      basedir: join(root, "leech"),
      host: "127.0.0.1",
      resumeFile: false,
      hashWorker: true,
      peers: [{ host: "127.0.0.1", port: seeder.port }],
    });
    await within(20_000, "the download", leecher.done);
    assert.ok(await sameFiles(join(root, "seed", "t"), join(root, "leech", "t"), files));
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
