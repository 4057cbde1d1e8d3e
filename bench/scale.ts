// Scale benchmark (deno task bench:scale): one Session holding 1,000 small seeding torrents (resume data present),
// then 500 live peer connections; beside libtorrent (python bindings, one session, the same torrents, seed_mode)
// in the same sitting. Reports: time until every torrent is loaded and running, RSS, CPU while idle and while
// serving the 500 connections (each asking for one 16 KiB block a second).
//
//   deno run -A bench/scale.ts [--torrents 1000] [--connections 500] [--idle 20] [--serve 30]
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createTorrent } from "../src/create.ts";
import { payload } from "../tests/_swarm.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    torrents: { type: "string", default: "1000" },
    connections: { type: "string", default: "500" },
    idle: { type: "string", default: "20" },
    serve: { type: "string", default: "30" },
  },
});
const N = Number(values.torrents), CONNS = Number(values.connections);
const IDLE = Number(values.idle), SERVE = Number(values.serve);
const HERE = new URL(".", import.meta.url).pathname;
const work = await Deno.makeTempDir({ prefix: "seedbed-scale-" });
const log = (m: string) => console.error(`[scale ${new Date().toISOString().slice(11, 19)}] ${m}`);
const tickHz = 100;

function cpuSeconds(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
  return (Number(stat[11]) + Number(stat[12])) / tickHz;
}
function rssMiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))?.[1] ?? 0) /
    1024;
}
const sleep = (s: number) => new Promise((r) => setTimeout(r, s * 1000));

interface Child {
  proc: Deno.ChildProcess;
  lines: AsyncIterator<string>;
  writer: WritableStreamDefaultWriter<Uint8Array>;
}
function start(cmd: string, args: string[]): Child {
  const proc = new Deno.Command(cmd, { args, stdin: "piped", stdout: "piped", stderr: "inherit" })
    .spawn();
  const lines = proc.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(
    new TransformStream<string, string>({
      transform(chunk, c) {
        for (const l of chunk.split("\n")) if (l) c.enqueue(l);
      },
    }),
  )[Symbol.asyncIterator]();
  return { proc, lines, writer: proc.stdin.getWriter() };
}
async function line(c: Child, prefix: string): Promise<string> {
  for (;;) {
    const r = await c.lines.next();
    if (r.done) throw new Error(`exited before "${prefix}"`);
    if (r.value.startsWith(prefix)) return r.value;
  }
}
async function stop(c: Child): Promise<void> {
  await c.writer.close().catch(() => {});
  await c.proc.status;
}

// 1,000 torrents of one 256 KiB file each (16 KiB pieces)
const data = join(work, "data"), tdir = join(work, "torrents");
await Deno.mkdir(data, { recursive: true });
await Deno.mkdir(tdir, { recursive: true });
for (let i = 0; i < N; i++) {
  const path = join(data, `f${String(i).padStart(5, "0")}.bin`);
  await Deno.writeFile(path, payload(256 * 1024, i + 1));
  await Deno.writeFile(
    join(tdir, `t${i}.torrent`),
    await createTorrent(path, { pieceLength: 16384 }),
  );
}
log(`${N} torrents made`);

interface Result {
  who: string;
  readyMs: number;
  rssIdle: number;
  cpuIdlePct: number;
  rssServing: number;
  rssServingEnd: number;
  cpuServingPct: number;
}
const results: Result[] = [];

async function measure(who: string, c: Child): Promise<void> {
  const ready = (await line(c, "ready")).split(" ");
  const port = Number((await line(c, "port")).split(" ")[1]);
  const pid = c.proc.pid;
  log(`${who}: ready in ${ready[1]} ms (${ready[2]} torrents, ${ready[3]} pieces checked)`);
  await sleep(5); // settle after start-up
  const c0 = cpuSeconds(pid);
  await sleep(IDLE);
  const cpuIdlePct = (cpuSeconds(pid) - c0) / IDLE * 100;
  const rssIdle = rssMiB(pid);
  log(`${who}: idle ${cpuIdlePct.toFixed(2)} % CPU, RSS ${rssIdle.toFixed(0)} MiB`);
  const load = start(Deno.execPath(), [
    "run",
    "-A",
    join(HERE, "_scale_load.ts"),
    String(port),
    tdir,
    String(CONNS),
  ]);
  await line(load, "connected");
  await sleep(3);
  const rssServing = rssMiB(pid);
  const c1 = cpuSeconds(pid);
  let peak = rssServing;
  for (let s = 0; s < SERVE; s++) {
    await sleep(1);
    peak = Math.max(peak, rssMiB(pid));
  }
  const cpuServingPct = (cpuSeconds(pid) - c1) / SERVE * 100;
  const rssServingEnd = rssMiB(pid);
  log(
    `${who}: ${CONNS} connections, ${cpuServingPct.toFixed(2)} % CPU, RSS ${
      rssServing.toFixed(0)
    } → ${rssServingEnd.toFixed(0)} MiB (peak ${peak.toFixed(0)})`,
  );
  await stop(load);
  results.push({
    who,
    readyMs: Number(ready[1]),
    rssIdle,
    cpuIdlePct,
    rssServing,
    rssServingEnd,
    cpuServingPct,
  });
}

try {
  const state = join(work, "state");
  const prep = start(Deno.execPath(), [
    "run",
    "-A",
    join(HERE, "_scale_seedbed.ts"),
    "prepare",
    state,
    data,
    tdir,
  ]);
  log(await line(prep, "prepared"));
  await stop(prep);
  const sb = start(Deno.execPath(), ["run", "-A", join(HERE, "_scale_seedbed.ts"), "run", state]);
  await measure("Seedbed", sb);
  await stop(sb);
  // V8 keeps a young generation of up to 3 × 16 MiB once start-up allocated a lot; a smaller one trades a few
  // more minor collections for memory (the daemon's README line and `deno task compile` use it)
  const small = start(Deno.execPath(), [
    "run",
    "-A",
    "--v8-flags=--max-semi-space-size=4",
    join(HERE, "_scale_seedbed.ts"),
    "run",
    state,
  ]);
  await measure("Seedbed, --v8-flags=--max-semi-space-size=4", small);
  await stop(small);
  const lt = start("/usr/bin/python3", [join(HERE, "_scale_libtorrent.py"), tdir, data]);
  await measure("libtorrent", lt);
  await stop(lt);
  console.log(
    `\n${N} seeding torrents, then ${CONNS} connections (one 16 KiB request a second each):\n`,
  );
  console.log(
    "| client | ready (all torrents running) | RSS idle | CPU idle | RSS serving (start → end) | CPU serving |",
  );
  console.log("| --- | ---: | ---: | ---: | ---: | ---: |");
  for (const r of results) {
    console.log(
      `| ${r.who} | ${(r.readyMs / 1000).toFixed(2)} s | ${r.rssIdle.toFixed(0)} MiB | ${
        r.cpuIdlePct.toFixed(2)
      } % | ${r.rssServing.toFixed(0)} → ${r.rssServingEnd.toFixed(0)} MiB | ${
        r.cpuServingPct.toFixed(1)
      } % |`,
    );
  }
} finally {
  await Deno.remove(work, { recursive: true });
}
