// The serving benchmark (task bench:serve): one seed and N libtorrent leechers that start together, each given
// only the seed's address (a private torrent: no PEX, no tracker, so the leechers cannot trade and every byte comes
// from the seed). It shows whether a seed shares itself out or serves a few peers while the others wait: each
// leecher's finish time, the first and the last. Seeds (--seeds, alternating, the order swapping every run):
//   seedbed         Seedbed's `seed` command
//   seedbed:b       the same with the main.ts of --main-b (an A/B comparison of two versions in one sitting)
//   libtorrent-hps  libtorrent with high_performance_seed()
//   libtorrent      libtorrent with default settings
//
//   deno run -A bench/serve.ts [--size MiB=256] [--leechers 8] [--runs 3] [--limit-up MiB/s=0 (none)]
//                              [--seeds seedbed,libtorrent-hps] [--main-b PATH]
//
// Needs python3-libtorrent (Debian). Prints a markdown table.
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createTorrent } from "../src/create.ts";
import { type Proc, spawn, startLibtorrent } from "../tests/_lab.ts";
import { median, writePayload } from "./_payload.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    size: { type: "string", default: "256" },
    leechers: { type: "string", default: "8" },
    runs: { type: "string", default: "3" },
    "limit-up": { type: "string", default: "0" },
    seeds: { type: "string", default: "seedbed,libtorrent-hps" },
    "main-b": { type: "string" },
  },
});
const MiB = Number(values.size), N = Number(values.leechers), RUNS = Number(values.runs);
const LIMIT = Number(values["limit-up"]);
const seeds = values.seeds!.split(",").filter(Boolean);
const MAIN = new URL("../main.ts", import.meta.url).pathname;
const MAIN_B = values["main-b"];
if (seeds.includes("seedbed:b") && !MAIN_B) throw new Error("--seeds seedbed:b needs --main-b");
const log = (m: string) => console.error(`[serve ${new Date().toISOString().slice(11, 19)}] ${m}`);

/** Starts a seed of `torrent` (data in `dir`); its port is `Proc.port`. */
async function startSeed(who: string, torrent: string, dir: string, state: string): Promise<Proc> {
  if (who.startsWith("libtorrent")) {
    return await startLibtorrent("seed", torrent, dir, [], {
      profile: who === "libtorrent-hps" ? "hps" : "default",
      ...(LIMIT > 0 ? { env: { LT_UPLOAD_LIMIT: String(LIMIT * 1048576) } } : {}),
    });
  }
  const args = ["run", "-A", who === "seedbed:b" ? MAIN_B! : MAIN, "seed", torrent, "-o", dir];
  args.push("--no-dht", "-p", "0", "--json", "-q", "--state", state);
  if (LIMIT > 0) args.push("--limit-up", `${LIMIT}M`);
  const p = spawn(Deno.execPath(), args, 0);
  try {
    p.port = Number((await p.match(/"event":"ready".*"port":(\d+)/, 120_000))[1]);
  } catch (err) {
    await p.stop();
    throw err;
  }
  return p;
}

const work = await Deno.makeTempDir({ prefix: "seedbed-serve-" });
const results: { who: string; run: number; finished: number[] }[] = [];
try {
  const src = join(work, "src");
  await Deno.mkdir(src);
  const file = join(src, "payload.bin");
  await writePayload(file, MiB);
  const torrent = join(work, "payload.torrent");
  await Deno.writeFile(torrent, await createTorrent(file, { pieceLength: 1 << 20, private: true }));
  log(
    `${MiB} MiB, ${N} libtorrent leechers${LIMIT > 0 ? `, the seed capped at ${LIMIT} MiB/s` : ""}`,
  );
  for (let run = 1; run <= RUNS; run++) {
    for (const who of run % 2 === 1 ? seeds : [...seeds].reverse()) {
      await new Deno.Command("sync").output();
      const tag = `${who.replace(":", "-")}-${run}`;
      const seed = await startSeed(who, torrent, src, join(work, `state-${tag}`));
      const leechers: Proc[] = [];
      try {
        const t0 = performance.now();
        leechers.push(
          ...await Promise.all(
            Array.from({ length: N }, async (_, i) => {
              const dir = join(work, `leech-${tag}-${i}`);
              await Deno.mkdir(dir);
              return await startLibtorrent("leech", torrent, dir, [`127.0.0.1:${seed.port}`]);
            }),
          ),
        );
        const finished = await Promise.all(
          leechers.map((p) => p.line("done", 600_000).then(() => (performance.now() - t0) / 1000)),
        );
        finished.sort((a, b) => a - b);
        results.push({ who, run, finished });
        log(`${who}: ${finished.map((s) => s.toFixed(2)).join(" ")} s`);
      } finally {
        for (const p of leechers) await p.stop();
        await seed.stop();
        for await (const e of Deno.readDir(work)) {
          if (e.name.startsWith(`leech-${tag}-`)) {
            await Deno.remove(join(work, e.name), { recursive: true });
          }
        }
      }
    }
  }
} finally {
  await Deno.remove(work, { recursive: true });
}

console.log(
  `\n${MiB} MiB to ${N} libtorrent leechers at once, each given only the seed (private torrent)${
    LIMIT > 0 ? `, the seed capped at ${LIMIT} MiB/s` : ""
  }, ${RUNS} runs, ${
    new Date().toISOString().slice(0, 10)
  }, ${navigator.hardwareConcurrency} cores\n`,
);
console.log(
  "| seed | first done s (median) | last done s (median) | last ÷ first | runs: each leecher's finish s |",
);
console.log("| --- | ---: | ---: | ---: | --- |");
for (const who of seeds) {
  const rs = results.filter((r) => r.who === who);
  if (rs.length === 0) continue;
  const first = median(rs.map((r) => r.finished[0])),
    last = median(rs.map((r) => r.finished.at(-1)!));
  const runs = rs.map((r) => r.finished.map((s) => s.toFixed(1)).join(" ")).join("; ");
  console.log(
    `| ${who} | ${first.toFixed(2)} | ${last.toFixed(2)} | ${
      (last / first).toFixed(2)
    } | ${runs} |`,
  );
}
