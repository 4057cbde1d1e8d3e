// The swarm benchmark (task bench:swarm8): one seed whose upload is capped and N leechers (default 8) that start
// together, each a separate process, all on loopback in a private network namespace (the script re-executes
// itself under `unshare -n`, needs root). The seed's cap means that the leechers must trade among themselves:
// that is where piece picking, choking and request pipelines show.
//
// Swarms (--modes, alternating in one sitting, the order rotating every run):
//   seedbed     a Seedbed seed (`seed --limit-up`) and N Seedbed leechers
//   libtorrent  a libtorrent seed (LT_UPLOAD_LIMIT) and N libtorrent leechers (default settings)
//   mixed       a libtorrent seed, N/2 Seedbed and N/2 libtorrent leechers
//   seedbed:b, mixed:b   the same with the Seedbed of --main-b (an A/B comparison of two versions in one sitting)
// Per run: the time until every leecher has everything (each leecher's own finish time: Seedbed's `complete`
// JSON event, libtorrent's "done"), what each leecher uploaded (Seedbed's last `progress` event; libtorrent's
// peer log, the sum over its connections), and the leechers' CPU (user + system from /proc, when the last
// finished). Leechers keep seeding until the last one is done, as in a real swarm.
//
// The tracker is the script's own (a few lines of HTTP; every peer gets every other peer). --rtt MS [--loss P]
// puts a bench/relay.ts in front of every peer's port and the tracker hands out the relays' ports, so every
// connection is delayed; the torrent is then private (BEP 27: no PEX), so that no peer learns a direct address.
//
//   deno run -A bench/swarm8.ts [--size MiB=256] [--leechers 8] [--runs 3] [--limit-up MiB/s=40]
//                               [--modes seedbed,libtorrent,mixed] [--piece-kib 256] [--rtt MS] [--loss P]
//                               [--timeout S=300] [--seedbed-args "..."] [--deno-args "..."]
//
// --seedbed-args are added to every Seedbed peer's command line, --deno-args to the Seedbed leechers' `deno run`
// (e.g. "--v8-flags=--perf-basic-prof" to profile one with `perf record -p PID`).
//
// Needs python3-libtorrent and root (for the namespace). Prints markdown tables.
import { join } from "node:path";
import { parseArgs } from "node:util";
import { encode } from "../src/bencode.ts";
import { createTorrent } from "../src/create.ts";
import { type Child, loadAverage, startChild, usage } from "./_procs.ts";
import { median, writePayload } from "./_payload.ts";

const ARGS = Deno.args;
if (!Deno.env.get("SEEDBED_IN_NETNS")) {
  const out = await new Deno.Command("unshare", {
    args: ["-n", Deno.execPath(), "run", "-A", import.meta.filename!, ...ARGS],
    env: { SEEDBED_IN_NETNS: "1" },
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  Deno.exit(out.code);
}
{
  const up = await new Deno.Command("ip", { args: ["link", "set", "lo", "up"] }).output();
  if (!up.success) throw new Error("cannot bring lo up in the network namespace");
}

const { values } = parseArgs({
  args: ARGS,
  options: {
    size: { type: "string", default: "256" },
    leechers: { type: "string", default: "8" },
    runs: { type: "string", default: "3" },
    "limit-up": { type: "string", default: "40" },
    modes: { type: "string", default: "seedbed,libtorrent,mixed" },
    "piece-kib": { type: "string", default: "256" },
    rtt: { type: "string", default: "0" },
    loss: { type: "string", default: "0" },
    timeout: { type: "string", default: "300" },
    "seedbed-args": { type: "string", default: "" },
    "deno-args": { type: "string", default: "" },
    keep: { type: "boolean", default: false },
    "main-b": { type: "string" },
  },
});
const MiB = Number(values.size), N = Number(values.leechers), RUNS = Number(values.runs);
const LIMIT = Number(values["limit-up"]), PIECE = Number(values["piece-kib"]) * 1024;
const RTT = Number(values.rtt),
  LOSS = Number(values.loss),
  TIMEOUT_MS = Number(values.timeout) * 1000;
const RELAYED = RTT > 0 || LOSS > 0;
const EXTRA = values["seedbed-args"]!.split(" ").filter(Boolean);
const DENO_EXTRA = values["deno-args"]!.split(" ").filter(Boolean);
type Mode = "seedbed" | "libtorrent" | "mixed" | "seedbed:b" | "mixed:b";
const modes = values.modes!.split(",") as Mode[];
const MAIN_A = new URL("../main.ts", import.meta.url).pathname;
const MAIN_B = values["main-b"];
if (modes.some((m) => m.endsWith(":b")) && !MAIN_B) {
  throw new Error("modes ending in :b need --main-b");
}
const LT = new URL("../tests/peers/lt_peer.py", import.meta.url).pathname;
const RELAY = new URL("./relay.ts", import.meta.url).pathname;
const log = (m: string) => console.error(`[swarm8 ${new Date().toISOString().slice(11, 19)}] ${m}`);
const work = await Deno.makeTempDir({ prefix: "seedbed-swarm8-" });

/** One leecher of one run. */
interface Leecher {
  kind: "seedbed" | "libtorrent";
  port: number;
  dir: string;
  child?: Child;
  /** Seconds from the common start to having everything. */
  finished?: number;
  uploadedMiB: number;
  /** Payload received, duplicates included (more than the torrent's size: endgame's duplicates). */
  downloadedMiB: number;
  cpu: number;
  peerlog?: string;
}
interface Run {
  mode: Mode;
  run: number;
  ok: boolean;
  seconds: number;
  leechers: Leecher[];
  cpu: number;
  seedUploadedMiB: number;
  load: string;
}
const results: Run[] = [];

/** The script's tracker: every peer gets every other peer, at its relay's port when relayed. */
function startTracker(portMap: Map<number, number>) {
  const peers = new Map<string, number>(); // peer id (as sent, percent-encoded) → port
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const query = new URL(req.url).search.slice(1).split("&");
    const get = (k: string) => query.find((q) => q.startsWith(k + "="))?.slice(k.length + 1);
    const id = get("peer_id") ?? "", port = Number(get("port") ?? 0);
    if (get("event") === "stopped") peers.delete(id);
    else if (port > 0) peers.set(id, port);
    const list: number[] = [];
    for (const [other, p] of peers) {
      if (other === id) continue;
      const q = portMap.get(p) ?? p;
      list.push(127, 0, 0, 1, q >> 8, q & 255);
    }
    return new Response(
      encode({ interval: 1800, "min interval": 60, peers: new Uint8Array(list) }),
    );
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}/announce`,
    has: (port: number) => [...peers.values()].includes(port),
    clear: () => peers.clear(),
    close: () => server.shutdown(),
  };
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function until(what: string, ok: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50)); // polling state that has no event of its own
  }
}

/**
 * Bytes a libtorrent peer uploaded (or downloaded): per connection the largest total seen in its peer log, summed.
 */
async function ltTotal(peerlog: string, field: "up" | "down" = "up"): Promise<number> {
  let text = "";
  try {
    text = await Deno.readTextFile(peerlog);
  } catch { /* no peers */ }
  const most = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line) continue;
    const p = JSON.parse(line) as { ip: string; port: number; up: number; down: number };
    const key = `${p.ip}:${p.port}`;
    most.set(key, Math.max(most.get(key) ?? 0, p[field]));
  }
  let sum = 0;
  for (const v of most.values()) sum += v;
  return sum;
}

try {
  const srcDir = join(work, "src");
  await Deno.mkdir(srcDir);
  const file = join(srcDir, "payload.bin");
  await writePayload(file, MiB, 0x2545f491);
  // ports: the seed's and each leecher's, fixed for the sitting; relayed, a relay port in front of each
  const seedPort = freePort();
  const leechPorts = Array.from({ length: N }, () => freePort());
  const portMap = new Map<number, number>();
  let relay: Child | undefined;
  if (RELAYED) {
    const mapped: number[] = [];
    relay = startChild(Deno.execPath(), [
      "run",
      "-A",
      RELAY,
      "--rtt",
      String(RTT),
      "--loss",
      String(LOSS),
      ...[seedPort, ...leechPorts].flatMap((p) => ["--map", `127.0.0.1:${p}`]),
    ], {
      onLine: (l) => {
        const m = /^relay (\d+) /.exec(l);
        if (m) mapped.push(Number(m[1]));
      },
    });
    await relay.waitLine((l) => l === "ready", 30_000);
    [seedPort, ...leechPorts].forEach((p, i) => portMap.set(p, mapped[i]));
  }
  const tracker = startTracker(portMap);
  const torrentPath = join(work, "payload.torrent");
  await Deno.writeFile(
    torrentPath,
    await createTorrent(file, { pieceLength: PIECE, announce: [tracker.url], private: RELAYED }),
  );
  log(
    `${MiB} MiB, pieces of ${PIECE / 1024} KiB, ${N} leechers, seed capped at ${LIMIT} MiB/s${
      RELAYED ? `, every connection relayed: RTT ${RTT} ms, loss ${LOSS}` : ""
    }`,
  );
  // compile Seedbed once, untimed
  for (const main of [MAIN_A, MAIN_B]) {
    if (!main) continue;
    await new Deno.Command(Deno.execPath(), { args: ["run", "-A", main, "--help"], stdout: "null" })
      .output();
  }

  for (let run = 1; run <= RUNS; run++) {
    const order = modes.map((_, i) => modes[(i + run - 1) % modes.length]);
    for (const mode of order) {
      const MAIN = mode.endsWith(":b") ? MAIN_B! : MAIN_A;
      const base = mode.replace(":b", "") as "seedbed" | "libtorrent" | "mixed";
      await new Deno.Command("sync").output();
      tracker.clear();
      const tag = `${mode}-${run}`;
      // the seed
      let seed: Child;
      let seedUploaded = 0;
      if (base === "seedbed") {
        seed = startChild(Deno.execPath(), [
          "run",
          "-A",
          MAIN,
          "seed",
          torrentPath,
          "-o",
          srcDir,
          "--no-dht",
          "-p",
          String(seedPort),
          "--limit-up",
          `${LIMIT}M`,
          "--json",
          "-q",
          "--state",
          join(work, `state-seed-${tag}`),
          ...EXTRA,
        ], {
          onLine: (l) => {
            if (l.startsWith('{"event":"progress"')) seedUploaded = JSON.parse(l).uploaded;
          },
        });
      } else {
        seed = startChild("/usr/bin/python3", [LT, "seed", torrentPath, srcDir, String(seedPort)], {
          env: {
            LT_UPLOAD_LIMIT: String(LIMIT * 1048576),
            LT_PEERLOG: join(work, `seed-${tag}.jsonl`),
          },
        });
      }
      try {
        await seed.waitLine((l) => l === "ready" || l.startsWith('{"event":"ready"'), 120_000);
        await until("the seed's announce", () => tracker.has(seedPort), 30_000);
      } catch (err) {
        await seed.stop();
        throw err;
      }
      // the leechers, all at once
      const leechers: Leecher[] = leechPorts.map((port, i) => ({
        kind: base === "seedbed" || (base === "mixed" && i % 2 === 0) ? "seedbed" : "libtorrent",
        port,
        dir: join(work, `leech-${tag}-${i}`),
        uploadedMiB: 0,
        downloadedMiB: 0,
        cpu: 0,
      }));
      for (const l of leechers) await Deno.mkdir(l.dir);
      const t0 = performance.now();
      const lastProgress = new Map<Leecher, number>();
      let allDoneAt = Infinity;
      const { promise: allDone, resolve: allDoneResolve } = Promise.withResolvers<void>();
      const finish = (l: Leecher, at: number) => {
        if (l.finished !== undefined) return;
        l.finished = (at - t0) / 1000;
        if (leechers.every((x) => x.finished !== undefined)) {
          allDoneAt = at;
          allDoneResolve();
        }
      };
      for (const l of leechers) {
        if (l.kind === "seedbed") {
          l.child = startChild(Deno.execPath(), [
            "run",
            "-A",
            ...DENO_EXTRA,
            MAIN,
            torrentPath,
            "-o",
            l.dir,
            "--no-dht",
            "-p",
            String(l.port),
            "--keep-seeding",
            "--json",
            "-q",
            "--state",
            join(work, `state-${tag}-${l.port}`),
            ...EXTRA,
          ], {
            onLine: (line, at) => {
              if (line.startsWith('{"event":"complete"')) finish(l, at);
              else if (line.startsWith('{"event":"progress"')) {
                const e = JSON.parse(line);
                l.uploadedMiB = e.uploaded / 1048576;
                l.downloadedMiB = e.downloaded / 1048576;
                lastProgress.set(l, at);
              }
            },
          });
        } else {
          l.peerlog = join(work, `peers-${tag}-${l.port}.jsonl`);
          l.child = startChild("/usr/bin/python3", [
            LT,
            "leech",
            torrentPath,
            l.dir,
            String(l.port),
          ], {
            env: { LT_PEERLOG: l.peerlog },
            onLine: (line, at) => line === "done" && finish(l, at),
          });
        }
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const ok = await Promise.race([
        allDone.then(() => true),
        new Promise<boolean>((r) => timer = setTimeout(() => r(false), TIMEOUT_MS)),
        ...leechers.map((l) => l.child!.exited.then(() => false)),
      ]);
      clearTimeout(timer);
      const seconds = ok ? (allDoneAt - t0) / 1000 : NaN;
      let cpu = 0;
      for (const l of leechers) cpu += l.cpu = usage(l.child!.pid).cpu;
      // the Seedbed leechers' upload totals: one more progress event after the last finished
      await until(
        "final progress events",
        () =>
          !ok ||
          leechers.every((l) => l.kind !== "seedbed" || (lastProgress.get(l) ?? 0) > allDoneAt),
        5000,
      ).catch(() => log("(some upload totals are from before the end)"));
      for (const l of leechers) await l.child!.stop();
      await seed.stop();
      for (const l of leechers) {
        if (!l.peerlog) continue;
        l.uploadedMiB = await ltTotal(l.peerlog) / 1048576;
        l.downloadedMiB = await ltTotal(l.peerlog, "down") / 1048576;
      }
      if (base !== "seedbed") seedUploaded = await ltTotal(join(work, `seed-${tag}.jsonl`));
      // every byte compared
      let verified = ok;
      for (const l of leechers) {
        if (!verified) break;
        const out = await new Deno.Command("cmp", {
          args: ["-s", file, join(l.dir, "payload.bin")],
        }).output();
        if (!out.success) {
          verified = false;
          log(`${tag}: leecher on ${l.port} (${l.kind}) has different bytes`);
        }
      }
      if (!ok) {
        for (const l of leechers.filter((l) => l.finished === undefined)) {
          log(
            `${tag}: ${l.kind} leecher on ${l.port} did not finish: ${
              l.child!.stderr().slice(-300)
            }`,
          );
        }
      }
      const load = loadAverage();
      results.push({
        mode,
        run,
        ok: verified,
        seconds,
        leechers,
        cpu,
        seedUploadedMiB: seedUploaded / 1048576,
        load,
      });
      log(
        `${tag}: ${verified ? "OK" : "FAILED"} ${seconds.toFixed(2)} s; finished ${
          leechers.map((l) => `${l.kind[0]}${l.finished?.toFixed(1) ?? "-"}`).join(" ")
        }; uploaded MiB ${
          leechers.map((l) => l.uploadedMiB.toFixed(0)).join(" ")
        }; downloaded MiB ${leechers.map((l) => l.downloadedMiB.toFixed(0)).join(" ")}; seed ${
          (seedUploaded / 1048576).toFixed(0)
        } MiB; CPU ${cpu.toFixed(1)} s; load ${load}`,
      );
      for (const l of leechers) await Deno.remove(l.dir, { recursive: true });
    }
  }
  await tracker.close();
  await relay?.stop();
} finally {
  if (!values.keep) await Deno.remove(work, { recursive: true });
}

// ------------------------------------------------------------------ tables
const f1 = (x: number) => Number.isNaN(x) ? "-" : x.toFixed(1);
const f2 = (x: number) => Number.isNaN(x) ? "-" : x.toFixed(2);
console.log(
  `\n${N} leechers of ${MiB} MiB (pieces of ${
    PIECE / 1024
  } KiB), seed capped at ${LIMIT} MiB/s, ${RUNS} runs, ${
    new Date().toISOString().slice(0, 10)
  }, ${navigator.hardwareConcurrency} cores${
    RELAYED ? `, every connection through a relay: RTT ${RTT} ms, loss ${LOSS}` : ", loopback"
  }\n`,
);
console.log(
  "| swarm | ok | median s (all done) | runs s | leechers' CPU s (median) | seed uploaded MiB | leechers uploaded MiB (sum) | leechers received MiB (sum) | load (1 5 15 min) |",
);
console.log("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |");
const medians = new Map<Mode, number>();
for (const mode of modes) {
  const rs = results.filter((r) => r.mode === mode);
  const m = median(rs.map((r) => r.seconds));
  medians.set(mode, m);
  const b = mode.endsWith(":b") ? " (B)" : "";
  const seedLabel = mode.startsWith("seedbed") ? `Seedbed${b}` : "libtorrent";
  const leechLabel = mode.startsWith("seedbed")
    ? `${N} Seedbed${b}`
    : mode === "libtorrent"
    ? `${N} libtorrent`
    : `${Math.ceil(N / 2)} Seedbed${b} + ${Math.floor(N / 2)} libtorrent`;
  console.log(
    `| ${seedLabel} seed, ${leechLabel} | ${rs.filter((r) => r.ok).length}/${rs.length} | ${
      f2(m)
    } | ${rs.map((r) => f2(r.seconds)).join(", ")} | ${f1(median(rs.map((r) => r.cpu)))} | ${
      f1(median(rs.map((r) => r.seedUploadedMiB)))
    } | ${f1(median(rs.map((r) => r.leechers.reduce((s, l) => s + l.uploadedMiB, 0))))} | ${
      f1(median(rs.map((r) => r.leechers.reduce((s, l) => s + l.downloadedMiB, 0))))
    } | ${rs.map((r) => r.load.split(" ")[0]).join(", ")} |`,
  );
}
console.log(
  "\nEach leecher in each run (finish time s / uploaded MiB / CPU s), sorted by finish time:\n",
);
console.log("| swarm | run | all done s | Seedbed leechers | libtorrent leechers |");
console.log("| --- | ---: | ---: | --- | --- |");
const each = (ls: Leecher[]) =>
  ls.sort((a, b) => (a.finished ?? Infinity) - (b.finished ?? Infinity))
    .map((l) => `${f1(l.finished ?? NaN)} / ${l.uploadedMiB.toFixed(0)} / ${l.cpu.toFixed(1)}`)
    .join("; ") || "-";
for (const r of results) {
  console.log(
    `| ${r.mode} | ${r.run} | ${f2(r.seconds)} | ${
      each(r.leechers.filter((l) => l.kind === "seedbed"))
    } | ${each(r.leechers.filter((l) => l.kind === "libtorrent"))} |`,
  );
}
if (medians.has("seedbed") && medians.has("libtorrent")) {
  console.log(
    `\nall-Seedbed / all-libtorrent swarm time: ${
      f2(medians.get("seedbed")! / medians.get("libtorrent")!)
    }`,
  );
}
for (const r of results.filter((r) => r.mode.startsWith("mixed") && r.ok)) {
  const sb = r.leechers.filter((l) => l.kind === "seedbed").map((l) => l.finished!);
  const lt = r.leechers.filter((l) => l.kind === "libtorrent").map((l) => l.finished!);
  const behind = Math.max(...sb) - Math.max(...lt), spread = Math.max(...lt) - Math.min(...lt);
  console.log(
    `${r.mode} run ${r.run}: last Seedbed leecher ${
      behind >= 0 ? "behind" : "ahead of"
    } the last libtorrent one by ${Math.abs(behind).toFixed(2)} s; libtorrent's spread ${
      spread.toFixed(2)
    } s: ${behind <= spread ? "ok" : "NOT ok"}`,
  );
}
if (results.some((r) => !r.ok)) Deno.exit(1);
