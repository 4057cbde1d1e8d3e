// Crash-safe progress against a real seeder: a download from libtorrent (capped with LT_UPLOAD_LIMIT) is killed
// with SIGKILL at a random point, then run again to the end. The bytes the two runs received add up to at most
// the torrent's size + 16 MiB (what was in flight when it died), and the files end byte-exact. Repeated --runs
// times, each from an empty folder.
//
//   deno run -A bench/crash_resume.ts [--size MiB=200] [--runs 5] [--rate MiB/s=20]
//
// The bytes are counted by a relay between our client and libtorrent (everything libtorrent sent on the
// connection, message headers included): an upper bound of what each run downloaded. Needs python3-libtorrent.
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createTorrent } from "../src/create.ts";
import { parseMetainfo } from "../src/metainfo.ts";
import { startLibtorrent } from "../tests/_lab.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    size: { type: "string", default: "200" },
    runs: { type: "string", default: "5" },
    rate: { type: "string", default: "20" },
  },
});
const MiB = 1024 * 1024;
const SIZE = Number(values.size) * MiB,
  RUNS = Number(values.runs),
  RATE = Number(values.rate) * MiB;
const MAIN = new URL("../main.ts", import.meta.url).pathname;
const work = await Deno.makeTempDir({ prefix: "seedbed-crash-bench-" });
const log = (m: string) => console.error(`[crash ${new Date().toISOString().slice(11, 19)}] ${m}`);

// the data and its torrent
const seedDir = join(work, "seed");
await Deno.mkdir(seedDir);
{
  using file = await Deno.open(join(seedDir, "big.bin"), { write: true, create: true });
  const chunk = new Uint8Array(MiB);
  for (let done = 0; done < SIZE; done += MiB) {
    for (let o = 0; o < MiB; o += 65536) crypto.getRandomValues(chunk.subarray(o, o + 65536));
    await file.write(chunk.subarray(0, Math.min(MiB, SIZE - done)));
  }
}
const torrentBytes = await createTorrent(join(seedDir, "big.bin"), { pieceLength: 256 * 1024 });
const meta = await parseMetainfo(torrentBytes);
const torrent = join(work, "big.torrent");
await Deno.writeFile(torrent, torrentBytes);
log(`${values.size} MiB, ${meta.pieceCount} pieces; libtorrent seeds at ${values.rate} MiB/s`);

await using lt = await startLibtorrent("seed", torrent, seedDir, [], {
  env: { LT_UPLOAD_LIMIT: String(RATE) },
});

// the relay that counts what libtorrent sends us
let received = 0;
const relay = Deno.listen({ hostname: "127.0.0.1", port: 0 });
const relayPort = (relay.addr as Deno.NetAddr).port;
const relaying = (async () => {
  for await (const ours of relay) {
    void (async () => {
      let theirs: Deno.TcpConn;
      try {
        theirs = await Deno.connect({ hostname: "127.0.0.1", port: lt.port });
      } catch {
        ours.close();
        return;
      }
      const count = new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, c) {
          received += chunk.length;
          c.enqueue(chunk);
        },
      });
      await Promise.allSettled([
        ours.readable.pipeTo(theirs.writable),
        theirs.readable.pipeThrough(count).pipeTo(ours.writable),
      ]);
    })();
  }
})();

async function sameBytes(a: string, b: string): Promise<boolean> {
  using fa = await Deno.open(a);
  using fb = await Deno.open(b);
  const x = new Uint8Array(MiB), y = new Uint8Array(MiB);
  for (;;) {
    const [n, m] = [await fa.read(x), await fb.read(y)];
    if (n !== m) return false;
    if (n === null) return true;
    for (let i = 0; i < n; i++) if (x[i] !== y[i]) return false;
  }
}

const rows: string[] = [];
let allOk = true;
for (let run = 1; run <= RUNS; run++) {
  const leech = join(work, `leech-${run}`), state = join(work, `state-${run}`);
  const args = [
    "run",
    "-A",
    MAIN,
    torrent,
    "-o",
    leech,
    "--no-dht",
    "-p",
    "0",
    "--peer",
    `127.0.0.1:${relayPort}`,
    "--json",
    "--state",
    state,
  ];
  const killAt = Math.floor(meta.pieceCount * (0.05 + 0.9 * Math.random()));
  received = 0;
  const child = new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "null" })
    .spawn();
  let pieces = 0, buf = "";
  for await (const text of child.stdout.pipeThrough(new TextDecoderStream())) {
    buf += text;
    const lines = buf.split("\n");
    buf = lines.pop()!;
    pieces += lines.filter((l) => l.includes('"event":"piece"')).length;
    if (pieces >= killAt) break;
  }
  child.kill("SIGKILL");
  await child.status;
  await new Promise((r) => setTimeout(r, 300)); // the relay sees the connection end
  const killed = received;
  received = 0;
  const started = performance.now();
  const out = await new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "piped" })
    .output();
  const secs = (performance.now() - started) / 1000;
  await new Promise((r) => setTimeout(r, 300));
  const again = received;
  const events = new TextDecoder().decode(out.stdout).split("\n").filter((l) => l).map((l) =>
    JSON.parse(l)
  );
  const ready = events.find((e) => e.event === "ready");
  const complete = events.find((e) => e.event === "complete");
  const exact = out.code === 0 && await sameBytes(join(seedDir, "big.bin"), join(leech, "big.bin"));
  const sum = killed + again;
  const ok = exact && sum <= SIZE + 16 * MiB;
  allOk &&= ok;
  const mib = (n: number) => (n / MiB).toFixed(1);
  rows.push(
    `| ${run} | ${killAt}/${meta.pieceCount} | ${mib(killed)} | ${ready?.have ?? "?"} | ${
      mib(again)
    } | ${complete ? mib(complete.downloaded) : "?"} | ${mib(sum)} | ${mib(SIZE + 16 * MiB)} | ${
      secs.toFixed(1)
    } | ${exact ? "yes" : "NO"} | ${ok ? "ok" : "FAIL"} |`,
  );
  log(rows.at(-1)!);
  await Deno.remove(leech, { recursive: true });
  await Deno.remove(state, { recursive: true });
}
relay.close();
await relaying;
await lt.stop();
await Deno.remove(work, { recursive: true });

console.log(
  `${values.size} MiB from libtorrent at ${values.rate} MiB/s, SIGKILL after a random number of pieces, then run again (MiB):\n`,
);
console.log(
  "| run | killed after (pieces) | killed run got | rerun resumed with (pieces) | rerun got | rerun's --json downloaded | sum | bound | rerun s | byte-exact | |",
);
console.log("|---|---|---|---|---|---|---|---|---|---|---|");
for (const r of rows) console.log(r);
Deno.exit(allOk ? 0 : 1);
