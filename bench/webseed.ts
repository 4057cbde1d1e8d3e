// Web seed throughput against Debian's nginx on loopback: a 256 MiB file downloaded through WebSeed +
// WebSeedScheduler + PiecePicker.pickRun + SHA-1 + Storage (the test driver), and through a Client (the engine:
// its piece writer, writer thread and resume data), next to curl and one plain fetch() of the whole file.
// Run: deno run -A bench/webseed.ts [MiB] [piece KiB] [run MiB]

import { join } from "node:path";
import { Client } from "../src/client.ts";
import { createTorrent } from "../src/create.ts";
import { parseMetainfo } from "../src/metainfo.ts";
import { WebSeed } from "../src/swarm/webseed.ts";
import { drive, httpClient, startNginx } from "../tests/_webseed.ts";

const mib = Number(Deno.args[0] ?? 256);
const pieceLength = Number(Deno.args[1] ?? 256) * 1024;
const runBytes = Number(Deno.args[2] ?? 4) * 1024 * 1024;
const tmp = await Deno.makeTempDir({ prefix: "seedbed-webseed-bench-" });
await Deno.chmod(tmp, 0o755);
try {
  const www = join(tmp, "www");
  await Deno.mkdir(www);
  {
    using f = await Deno.open(join(www, "data.bin"), { write: true, create: true });
    const chunk = new Uint8Array(1 << 20);
    for (let i = 0; i < mib; i++) {
      for (let o = 0; o < chunk.length; o += 65536) {
        crypto.getRandomValues(chunk.subarray(o, o + 65536));
      }
      let off = 0;
      while (off < chunk.length) off += await f.write(chunk.subarray(off));
    }
  }
  await using nginx = await startNginx(www);
  const meta = await parseMetainfo(
    await createTorrent(join(www, "data.bin"), { pieceLength, creationDate: null }),
  );
  const mbps = (ms: number) => `${(mib / (ms / 1000)).toFixed(0)} MiB/s`;

  let t = performance.now();
  await new Deno.Command("curl", {
    args: ["-s", "-o", "/dev/null", `${nginx.origin}/data.bin`],
  }).output();
  console.log(`curl, whole file:          ${mbps(performance.now() - t)}`);

  using client = httpClient();
  t = performance.now();
  const res = await client.fetch(`${nginx.origin}/data.bin`);
  for await (const _ of res.body!) { /* drain */ }
  console.log(`fetch(), whole file:       ${mbps(performance.now() - t)}`);

  {
    // the module alone: runs of runBytes, pieces handed over and dropped
    const seed = new WebSeed({ url: `${nginx.origin}/`, torrent: meta, fetch: client.fetch });
    const per = Math.max(1, Math.floor(runBytes / pieceLength));
    t = performance.now();
    let pieces = 0;
    for (let first = 0; first < meta.pieceCount; first += per) {
      const count = Math.min(per, meta.pieceCount - first);
      await seed.fetchPieces(first, count, { onPiece: () => pieces++ });
    }
    console.log(`WebSeed.fetchPieces only:  ${mbps(performance.now() - t)} (${pieces} pieces)`);
  }

  for (const runs of [1, 2]) {
    await Deno.remove(join(tmp, "out"), { recursive: true }).catch(() => {});
    const seed = new WebSeed({ url: `${nginx.origin}/`, torrent: meta, fetch: client.fetch });
    t = performance.now();
    await using d = drive(meta, [seed], join(tmp, "out"), { runBytes, runsPerSeed: runs });
    await d.complete;
    const ms = performance.now() - t;
    await d.close();
    const requests = (await nginx.accessLog()).filter((l) => l.includes("bytes=")).length;
    console.log(
      `web seed, ${runs} run(s) in flight: ${mbps(ms)} (${pieceLength / 1024} KiB pieces, ` +
        `${runBytes / 1048576} MiB runs, ${requests} ranged GETs so far)`,
    );
  }

  {
    // the engine: a Client with the server as its only source (4 MiB runs, one in flight)
    t = performance.now();
    await using c = await Client.open({
      metainfo: meta,
      basedir: join(tmp, "engine"),
      host: "127.0.0.1",
      resumeFile: false,
      extraWebSeeds: [`${nginx.origin}/`],
    });
    await c.done;
    console.log(`Client (the engine):       ${mbps(performance.now() - t)}`);
  }
} finally {
  await Deno.remove(tmp, { recursive: true });
}
