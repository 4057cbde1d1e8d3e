// The swarm benchmark (task bench:swarm): one torrent, one libtorrent seeder (high_performance_seed) found
// through opentracker, leeched in turn by Seedbed, libtorrent and aria2 (the order rotates every run); then
// Seedbed seeding to libtorrent against libtorrent-hps seeding to libtorrent.
// Wall time from leecher start to exit (or to "done" for libtorrent), every byte compared, peak RSS sampled.
// Each run starts after `sync`, with the page cache clean.
// The seeding runs use a copy of the torrent without a tracker (the leecher is given the seeder's address), so that
// the leecher cannot also reach the first seeder through the tracker.
//
// --rtt MS [--loss P]: every connection goes through bench/relay.ts, which delays each direction by RTT/2 (and
// stalls a chunk with probability P per segment, see there); the leechers are then given the relay's address
// instead of a tracker (aria2 cannot be given a peer: it is left out).
//
//   deno run -A bench/swarm.ts [--size MiB=1024] [--runs 3] [--warmup 1] [--leechers seedbed,libtorrent,aria2]
//                              [--no-seed] [--rtt MS] [--loss P] [--seeders N=1] [--main-b PATH]
//
// --seeders N: the leechers download from N libtorrent-hps seeders at once (each behind its own relay when
// relayed, with its own loss draws).
//
// --main-b PATH: the leecher "seedbed:b" runs that main.ts (another version of Seedbed), for A/B comparisons.
//
// Needs python3-libtorrent, opentracker and aria2 (Debian). Prints a markdown table.
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createTorrent } from "../src/create.ts";
import { parseMetainfo } from "../src/metainfo.ts";
import { type Relay, startRelay } from "./relay.ts";
import { startChild } from "./_procs.ts";
import { median, writePayload } from "./_payload.ts";
import {
  freePort,
  type Proc,
  spawn,
  startAria2Leecher,
  startLibtorrent,
  startOpentracker,
} from "../tests/_lab.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    size: { type: "string", default: "1024" },
    runs: { type: "string", default: "3" },
    leechers: { type: "string", default: "seedbed,libtorrent,aria2" },
    "no-seed": { type: "boolean", default: false },
    warmup: { type: "string", default: "1" },
    keep: { type: "boolean", default: false },
    rtt: { type: "string", default: "0" },
    "seed-leechers": { type: "string", default: "libtorrent,seedbed" },
    "main-b": { type: "string" },
    loss: { type: "string", default: "0" },
    seeders: { type: "string", default: "1" },
  },
});
const MiB = Number(values.size), RUNS = Number(values.runs), WARMUP = Number(values.warmup);
const RTT = Number(values.rtt), LOSS = Number(values.loss);
const RELAYED = RTT > 0 || LOSS > 0;
const SEEDERS = Math.max(1, Number(values.seeders));
/** A relay in front of a seeder's port when --rtt/--loss ask for one, else the port itself. */
const via = (port: number, seed = 1): { port: number; relay?: Relay } => {
  if (!RELAYED) return { port };
  const relay = startRelay({
    target: { hostname: "127.0.0.1", port },
    rttMs: RTT,
    loss: LOSS,
    seed,
  });
  return { port: relay.port, relay };
};
const seedLeechers = values["seed-leechers"]!.split(",").filter(Boolean);
const leechers = values.leechers!.split(",").filter((who) => !(RELAYED && who === "aria2"));
const MAIN = new URL("../main.ts", import.meta.url).pathname;
/** Another version's main.ts, for the leecher "seedbed:b" (an A/B comparison in one sitting). */
const MAIN_B = values["main-b"];
if (leechers.includes("seedbed:b") && !MAIN_B) {
  throw new Error("--leechers seedbed:b needs --main-b");
}
const work = await Deno.makeTempDir({ prefix: "seedbed-swarm-" });
/** The leech runs' relays, and the seeders beyond the first (--seeders): closed and stopped at the end. */
const relays: Relay[] = [];
const more: Proc[] = [];
const log = (m: string) => console.error(`[swarm ${new Date().toISOString().slice(11, 19)}] ${m}`);

interface Run {
  who: string;
  role: "leech" | "seed";
  seconds: number;
  ok: boolean;
  rssMiB: number;
  anonMiB: number;
  cpuS: number;
}
const results: Run[] = [];
/** False during the warm-up round: the first downloads after writing the payload run in colder memory. */
let recording = true;

/** Samples a process tree's resident memory (sum of VmRSS and RssAnon over the tree) every 100 ms. */
function sampleMemory(
  pid: number,
): { stop(): { rss: number; anon: number; cpu: number; sys: number } } {
  let rss = 0, anon = 0, cpu = 0, sys = 0;
  // CPU is counted from the first sample: a seeder started earlier is charged only for this transfer
  let cpu0: number | undefined, sys0 = 0;
  const tick = () => {
    let r = 0, a = 0, c = 0, k = 0;
    for (const p of tree(pid)) {
      try {
        const status = Deno.readTextFileSync(`/proc/${p}/status`);
        r += Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
        a += Number(/RssAnon:\s+(\d+)/.exec(status)?.[1] ?? 0);
        const stat = Deno.readTextFileSync(`/proc/${p}/stat`).split(") ")[1].split(" ");
        c += (Number(stat[11]) + Number(stat[12])) / 100; // utime + stime, clock ticks
        k += Number(stat[12]) / 100;
      } catch { /* exited */ }
    }
    rss = Math.max(rss, r);
    anon = Math.max(anon, a);
    if (cpu0 === undefined) {
      cpu0 = c;
      sys0 = k;
    }
    cpu = Math.max(cpu, c - cpu0);
    sys = Math.max(sys, k - sys0);
  };
  tick(); // the baseline
  const timer = setInterval(tick, 100);
  return {
    stop() {
      tick();
      clearInterval(timer);
      return { rss: rss / 1024, anon: anon / 1024, cpu, sys };
    },
  };
}

function tree(pid: number): number[] {
  const out = [pid];
  try {
    for (const t of Deno.readDirSync(`/proc/${pid}/task`)) {
      const kids = Deno.readTextFileSync(`/proc/${pid}/task/${t.name}/children`).trim();
      for (const k of kids ? kids.split(" ") : []) out.push(...tree(Number(k)));
    }
  } catch { /* gone */ }
  return out;
}

/** Flushes dirty pages (`sync`) so that the next timed run does not share the disk with earlier writes. */
async function settle(): Promise<void> {
  await new Deno.Command("sync").output();
}

async function same(a: string, b: string): Promise<boolean> {
  const out = await new Deno.Command("cmp", { args: ["-s", a, b] }).output();
  return out.success;
}

async function timed(
  who: string,
  role: "leech" | "seed",
  start: () => Proc,
  done: (p: Proc) => Promise<unknown>,
  check: () => Promise<boolean>,
) {
  // every run starts with nothing dirty in the page cache: otherwise whoever runs next pays for the kernel
  // writing back the previous download (or the payload just created) while it downloads
  await settle();
  const t0 = performance.now();
  const p = start();
  const mem = sampleMemory(p.pid);
  let ok = false;
  try {
    await done(p);
    ok = true;
  } catch (err) {
    log(`${who}: ${(err as Error).message}`);
  }
  const seconds = (performance.now() - t0) / 1000;
  const m = mem.stop();
  await p.stop();
  ok = ok && await check();
  if (!recording) {
    log(`(warm-up, not counted) ${role} ${who}: ${ok ? "OK" : "FAILED"} ${seconds.toFixed(2)} s`);
    return;
  }
  results.push({ who, role, seconds, ok, rssMiB: m.rss, anonMiB: m.anon, cpuS: m.cpu });
  log(
    `${role} ${who}: ${ok ? "OK" : "FAILED"} ${seconds.toFixed(2)} s, ${
      (MiB * 1.048576 / seconds).toFixed(0)
    } MB/s, peak RSS ${m.rss.toFixed(0)} MiB (anon ${m.anon.toFixed(0)}), CPU ${
      m.cpu.toFixed(2)
    } s (system ${m.sys.toFixed(2)} s)`,
  );
}

try {
  // payload: deterministic pseudo-random bytes, one file
  const src = join(work, "src");
  await Deno.mkdir(src);
  const file = join(src, "payload.bin");
  await writePayload(file, MiB);
  const probe = await parseMetainfo(await createTorrent(file, { pieceLength: 1 << 20 }));
  await using tracker = await startOpentracker([probe.infoHash]);
  const torrentPath = join(work, "payload.torrent");
  await Deno.writeFile(
    torrentPath,
    await createTorrent(file, { pieceLength: 1 << 20, announce: [tracker.url] }),
  );
  // the same torrent without a tracker: for leechers given the seeder's address (relayed, and seeding runs)
  const directPath = join(work, "direct.torrent");
  await Deno.writeFile(directPath, await createTorrent(file, { pieceLength: 1 << 20 }));
  log(`${MiB} MiB, ${probe.pieceCount} pieces of 1 MiB, tracker ${tracker.url}`);
  await using seeder = await startLibtorrent("seed", torrentPath, src, [], { profile: "hps" });
  const seederVia = via(seeder.port);
  log(
    `libtorrent-hps seeding on ${seeder.port}${
      RELAYED ? `, relayed by ${seederVia.port} (RTT ${RTT} ms, loss ${LOSS})` : ""
    }`,
  );
  // more seeders (--seeders): found through the tracker too, or each behind a relay of its own
  const vias = [seederVia];
  for (let i = 1; i < SEEDERS; i++) {
    // relayed, without the tracker: seeders that met there would name each other's own ports in PEX
    const s = await startLibtorrent("seed", RELAYED ? directPath : torrentPath, src, [], {
      profile: "hps",
    });
    more.push(s);
    vias.push(via(s.port, i + 1));
  }
  for (const v of vias) if (v.relay) relays.push(v.relay);
  /** How a leecher finds the seeders: the tracker, or (relayed) the relays' addresses. */
  const leechTorrent = RELAYED ? directPath : torrentPath;
  const seedbedPeer = RELAYED
    ? [...vias.flatMap((v) => ["--peer", `127.0.0.1:${v.port}`]), "--no-trackers"]
    : [];
  const ltPeer = RELAYED ? vias.map((v) => `127.0.0.1:${v.port}`) : [];

  for (let run = 1 - WARMUP; run <= RUNS; run++) {
    // untimed warm-up round(s) first: right after the payload is written, the kernel's first 1 GiB of new page
    // cache is far slower to fill on this VM, whoever downloads
    recording = run >= 1;
    // rotate the order every run, and reverse it every other run: whoever follows another download pays for
    // its aftermath (the seeder's state, the kernel cleaning up 1 GiB), so each client takes each position and
    // follows each other client in turn
    const rotated = leechers.map((_, i) => leechers[(i + Math.max(run, 1) - 1) % leechers.length]);
    const order = run % 2 === 0 ? rotated.reverse() : rotated;
    for (const who of order) {
      const dir = join(work, `${who}-${run}`);
      await Deno.mkdir(dir);
      const check = () => same(file, join(dir, "payload.bin"));
      if (who === "seedbed" || who === "seedbed:b") {
        await timed(
          who,
          "leech",
          () =>
            spawn(Deno.execPath(), [
              "run",
              "-A",
              who === "seedbed:b" ? MAIN_B! : MAIN,
              leechTorrent,
              "-o",
              dir,
              "--no-dht",
              "-p",
              "0",
              "-q",
              // (a --main-b older than the state directory keeps its resume data beside the data)
              ...(who === "seedbed" ? ["--state", join(work, "state-leech")] : []),
              ...seedbedPeer,
            ], 0),
          async (p) => {
            const code = await p.exited;
            if (code !== 0) throw new Error(`exit ${code}: ${p.stderr().slice(-500)}`);
          },
          check,
        );
      } else if (who === "libtorrent") {
        const lt = new URL("../tests/peers/lt_peer.py", import.meta.url).pathname;
        await timed(
          who,
          "leech",
          () =>
            spawn(
              "/usr/bin/python3",
              [lt, "leech", leechTorrent, dir, "0", ...ltPeer],
              0,
              RELAYED ? { env: { LT_PEERLOG: join(work, `peers-${run}.jsonl`) } } : {},
            ),
          (p) => p.line("done", 600_000),
          check,
        );
        if (RELAYED) {
          // every connection must have gone through the relay
          const text = await Deno.readTextFile(join(work, `peers-${run}.jsonl`)).catch(() => "");
          // the last line of each such connection: its port, how libtorrent learnt it, and the bytes it gave
          const others = new Map<number, string>();
          for (const line of text.split("\n").filter(Boolean)) {
            const c = JSON.parse(line);
            if (vias.some((v) => v.port === c.port)) continue;
            const how = c.incoming ? "incoming" : [c.source].flat().join("+");
            others.set(c.port, `${c.port} (${how}, ${((c.down ?? 0) / 1048576).toFixed(0)} MiB)`);
          }
          if (others.size > 0) {
            log(`libtorrent also connected to ${[...others.values()].join(", ")}: not relayed`);
          }
        }
      } else if (who === "aria2") {
        await timed(who, "leech", () => startAria2Leecher(torrentPath, dir), async (p) => {
          const code = await p.exited;
          if (code !== 0) throw new Error(`aria2 exit ${code}`);
        }, check);
      }
      await Deno.remove(dir, { recursive: true });
    }
  }

  if (!values["no-seed"]) {
    // seeding: Seedbed vs libtorrent-hps as the seeder, a libtorrent (then a Seedbed) leecher dialing it directly;
    // each seeder is ready (data checked, torrent added) before the leecher starts
    for (const leecher of seedLeechers) {
      for (let run = 1; run <= RUNS; run++) {
        for (const who of ["seedbed", "libtorrent-hps"]) {
          const port = freePort();
          let seed: { pid: number; stop(): Promise<void> };
          if (who === "seedbed") {
            const child = startChild(Deno.execPath(), [
              "run",
              "-A",
              MAIN,
              "seed",
              directPath,
              "-o",
              src,
              "--no-dht",
              "-p",
              String(port),
              "-q",
              "--json",
              "--no-trackers",
              "--state",
              join(work, "state-seed"),
            ]);
            seed = child;
            await child.waitLine((l) => l.startsWith('{"event":"ready"'), 120_000);
          } else {
            seed = await startLibtorrent("seed", directPath, src, [], { profile: "hps", port });
          }
          const seedVia = via(port);
          const dir = join(work, `seed-${who}-${run}`);
          await Deno.mkdir(dir);
          const lt = new URL("../tests/peers/lt_peer.py", import.meta.url).pathname;
          const lport = freePort();
          const mem = sampleMemory(seed.pid);
          await timed(
            `${leecher} <- ${who}`,
            "seed",
            () =>
              leecher === "libtorrent"
                ? spawn("/usr/bin/python3", [
                  lt,
                  "leech",
                  directPath,
                  dir,
                  String(lport),
                  `127.0.0.1:${seedVia.port}`,
                ], lport)
                : spawn(Deno.execPath(), [
                  "run",
                  "-A",
                  MAIN,
                  directPath,
                  "-o",
                  dir,
                  "--no-dht",
                  "-p",
                  String(lport),
                  "-q",
                  "--no-trackers",
                  "--state",
                  join(work, "state-leech"),
                  "--peer",
                  `127.0.0.1:${seedVia.port}`,
                ], lport),
            async (p) => {
              if (leecher === "libtorrent") return await p.line("done", 600_000);
              const code = await p.exited;
              if (code !== 0) throw new Error(`exit ${code}: ${p.stderr().slice(-500)}`);
            },
            () => same(file, join(dir, "payload.bin")),
          );
          const m = mem.stop();
          results[results.length - 1].rssMiB = m.rss;
          results[results.length - 1].anonMiB = m.anon;
          results[results.length - 1].cpuS = m.cpu;
          await seedVia.relay?.close();
          await seed.stop();
          await Deno.remove(dir, { recursive: true });
        }
      }
    }
  }
} finally {
  for (const r of relays) await r.close();
  for (const m of more) await m.stop();
  if (!values.keep) await Deno.remove(work, { recursive: true });
}

console.log(
  `\n${MiB} MiB, 1 MiB pieces, ${RUNS} runs, ${
    new Date().toISOString().slice(0, 10)
  }, ${navigator.hardwareConcurrency} cores, load average at the end ${
    Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ")
  }${RELAYED ? `, through a relay: RTT ${RTT} ms, loss ${LOSS}` : ""}${
    SEEDERS > 1 ? `, ${SEEDERS} seeders` : ""
  }\n`,
);
console.log(
  "| role | client | ok | median s | MB/s | runs s | peak RSS MiB | peak anon MiB | CPU s |",
);
console.log("| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |");
const groups = [...new Set(results.map((r) => `${r.role}|${r.who}`))];
const medians = new Map<string, number>();
for (const g of groups) {
  const rs = results.filter((r) => `${r.role}|${r.who}` === g);
  const m = median(rs.map((r) => r.seconds));
  medians.set(g, m);
  const [role, who] = g.split("|");
  console.log(
    `| ${role} | ${role === "seed" ? who.replace(/^(\S+) <- (\S+)$/, "$2 → $1") : who} | ${
      rs.filter((r) => r.ok).length
    }/${rs.length} | ${m.toFixed(2)} | ${(MiB * 1.048576 / m).toFixed(0)} | ${
      rs.map((r) => r.seconds.toFixed(2)).join(", ")
    } | ${median(rs.map((r) => r.rssMiB)).toFixed(0)} | ${
      median(rs.map((r) => r.anonMiB)).toFixed(0)
    } | ${median(rs.map((r) => r.cpuS)).toFixed(2)} |`,
  );
}
const ratio = (a: string, b: string) =>
  medians.has(a) && medians.has(b) ? (medians.get(a)! / medians.get(b)!).toFixed(2) : "n/a";
console.log(`\nleech ratio Seedbed/libtorrent: ${ratio("leech|seedbed", "leech|libtorrent")}`);
for (const leecher of seedLeechers) {
  console.log(
    `seed ratio Seedbed/libtorrent-hps, ${leecher} leeching: ${
      ratio(`seed|${leecher} <- seedbed`, `seed|${leecher} <- libtorrent-hps`)
    }`,
  );
}
if (results.some((r) => !r.ok)) Deno.exit(1);
