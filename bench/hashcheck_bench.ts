// Re-verify a file with Storage.hashcheck, on one thread and on two, and compare with sha1sum on the same file in
// the same run.
//   deno run -A bench/hashcheck_bench.ts [MiB=1024] [pieceKiB=1024] [v1|v2|hybrid]
// All read from the page cache (each is run three times, alternating; the best time counts; the load average is
// printed). v2 checks merkle roots of the pieces
// against the piece layer, hybrid checks both (sha1sum stays the reference).
import { join } from "node:path";
import { FileMerkle } from "../src/storage/merkle.ts";
import { Storage } from "../src/storage/storage.ts";

const mib = Number(Deno.args[0] ?? 1024);
const pieceLength = Number(Deno.args[1] ?? 1024) * 1024;
const version = (Deno.args[2] === "v2" ? 2 : Deno.args[2] === "hybrid" ? "hybrid" : 1) as
  | 1
  | 2
  | "hybrid";
const size = mib * 1024 * 1024;
const dir = await Deno.makeTempDir({ prefix: "seedbed-hashbench-" });
try {
  const path = join(dir, "t", "data.bin");
  await Deno.mkdir(join(dir, "t"));
  const count = Math.ceil(size / pieceLength);
  const pieces = new Uint8Array(count * 20);
  const merkle = new FileMerkle(size, pieceLength);
  {
    using f = await Deno.open(path, { write: true, create: true });
    const piece = new Uint8Array(pieceLength);
    for (let i = 0; i < count; i++) {
      const n = Math.min(pieceLength, size - i * pieceLength);
      for (let o = 0; o < n; o += 65536) {
        crypto.getRandomValues(piece.subarray(o, Math.min(o + 65536, n)));
      }
      pieces.set(new Uint8Array(await crypto.subtle.digest("SHA-1", piece.subarray(0, n))), i * 20);
      if (version !== 1) await merkle.addPiece(piece.subarray(0, n));
      let w = 0;
      while (w < n) w += await f.write(piece.subarray(w, n));
    }
  }
  const tree = version === 1 ? undefined : await merkle.finish();
  const layout = {
    files: [{ path: ["t", "data.bin"], length: size, offset: 0, piecesRoot: tree?.root }],
    pieceLength,
    length: size,
    pieces,
    version,
    pieceLayers: new Map(tree ? [[tree.root.toHex(), tree.pieceLayer]] : []),
  };
  const mbps = (ms: number) => size / 1e6 / (ms / 1000);
  let one = Infinity, two = Infinity, theirs = Infinity;
  for (let run = 0; run < 3; run++) {
    // one thread and two (a worker reading and hashing alongside the event loop's thread), alternating
    for (const checkThreads of run % 2 ? [2, 1] as const : [1, 2] as const) {
      await using storage = new Storage({ dir, layout, checkThreads });
      const t = performance.now();
      const ok = await storage.hashcheck();
      const ms = performance.now() - t;
      if (checkThreads === 1) one = Math.min(one, ms);
      else two = Math.min(two, ms);
      if (ok.count !== count) throw new Error(`only ${ok.count} of ${count} pieces passed`);
    }
    const t = performance.now();
    const out = await new Deno.Command("sha1sum", { args: [path], stdout: "null" }).output();
    theirs = Math.min(theirs, performance.now() - t);
    if (!out.success) throw new Error("sha1sum failed");
  }
  const ours = Math.min(one, two);
  console.log(
    `file: ${mib} MiB, pieces of ${pieceLength / 1024} KiB, ${
      version === 1 ? "v1" : version === 2 ? "v2" : "hybrid"
    } torrent (two threads for v1 only), page cache warm; best of 3 runs`,
  );
  console.log(
    `Seedbed hashcheck, 1 thread : ${(one / 1000).toFixed(2)} s, ${mbps(one).toFixed(0)} MB/s`,
  );
  console.log(
    `Seedbed hashcheck, 2 threads: ${(two / 1000).toFixed(2)} s, ${mbps(two).toFixed(0)} MB/s (${
      (one / two).toFixed(2)
    }x)`,
  );
  console.log(
    `sha1sum          : ${(theirs / 1000).toFixed(2)} s, ${mbps(theirs).toFixed(0)} MB/s`,
  );
  console.log(`ratio Seedbed (best)/sha1sum speed: ${(theirs / ours).toFixed(2)}`);
  console.log(
    `load average: ${Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ")}`,
  );
} finally {
  await Deno.remove(dir, { recursive: true });
}
