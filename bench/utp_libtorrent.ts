// uTP throughput and CPU on loopback: one libtorrent seed with TCP switched off (high_performance_seed profile),
// leeched in turn, in the same sitting, by
//   - seedbed: a raw PeerConnection over a UtpConnection fetching every piece and checking its SHA-1 (a child
//     process, so its CPU is its own; the UDP socket is node:dgram, or Deno.listenDatagram with --impl deno);
//   - engine: the real Client (its Session's UDP socket, the dialler's uTP attempt, the engine's picker,
//     verification and disk writes), a child process too, same --impl choice;
//   - libtorrent: a second lt_peer.py, uTP only (it also writes the file to disk).
// Reports wall time, MiB/s and CPU seconds per GiB of the leecher and of the seed (from /proc).
//
//   deno run -A bench/utp_libtorrent.ts [--size MiB=256] [--runs 2] [--impl node,deno]
//       [--who seedbed,engine,libtorrent]
//
// Needs python3-libtorrent.
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Client } from "../src/client.ts";
import { createTorrent } from "../src/create.ts";
import { parseMetainfo } from "../src/metainfo.ts";
import { PeerConnection } from "../src/peer.ts";
import { UtpEndpoint } from "../src/transport/utp.ts";
import { startLibtorrent } from "../tests/_lab.ts";
import { writePayload } from "./_payload.ts";

const UTP_ONLY = JSON.stringify({
  enable_outgoing_tcp: false,
  enable_incoming_tcp: false,
  enable_outgoing_utp: true,
  enable_incoming_utp: true,
});

/** utime + stime of a process (all threads), seconds. */
function cpuOf(pid: number | "self"): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
  return (Number(stat[11]) + Number(stat[12])) / 100;
}

if (Deno.args[0] === "--engine-child") {
  // the Seedbed engine as the leecher: a Client dialling the seed (uTP first), writing to disk; one JSON line
  const [, torrentPath, port, dir] = Deno.args;
  const cpu0 = cpuOf("self");
  const t0 = performance.now();
  const client = await Client.open({
    path: torrentPath,
    basedir: dir,
    host: "127.0.0.1",
    resumeFile: false,
    trackers: false,
    peers: [{ host: "127.0.0.1", port: Number(port) }],
  });
  let transport = "";
  client.addEventListener("peer", () => transport = client.peers[0]?.transport ?? "");
  await client.done;
  const seconds = (performance.now() - t0) / 1000;
  const cpu = cpuOf("self") - cpu0;
  await client.close();
  console.log(
    JSON.stringify({ seconds, cpu, bad: transport === "utp" ? 0 : 1, stats: { transport } }),
  );
  Deno.exit(0);
}

if (Deno.args[0] === "--child") {
  // the Seedbed leecher: fetch every piece over uTP, verify, print one JSON line
  const [, torrentPath, port] = Deno.args;
  const meta = await parseMetainfo(await Deno.readFile(torrentPath));
  const utp = await UtpEndpoint.open({ host: "127.0.0.1" });
  const cpu0 = cpuOf("self");
  const t0 = performance.now();
  const conn = await utp.connect("127.0.0.1", Number(port));
  const size = (i: number) => Math.min(meta.pieceLength, meta.length - i * meta.pieceLength);
  const pieces = new Map<number, { buf: Uint8Array<ArrayBuffer>; got: number }>();
  let next = 0, verified = 0, bad = 0;
  const done = Promise.withResolvers<void>();
  const more = (p: PeerConnection) => {
    while (next < meta.pieceCount && p.outstanding + 64 <= p.queueDepth) {
      pieces.set(next, { buf: new Uint8Array(size(next)), got: 0 });
      for (let b = 0; b < size(next); b += 16384) {
        p.request(next, b, Math.min(16384, size(next) - b));
      }
      next++;
    }
  };
  const peer = new PeerConnection(conn, {
    infoHash: meta.infoHash,
    peerId: new TextEncoder().encode("-SE0010-utpbench0001"),
    pieceCount: meta.pieceCount,
    pieceLength: meta.pieceLength,
    totalLength: meta.length,
  }, {
    onBitfield: (p) => p.interested(),
    onUnchoke: (p) => more(p),
    onBlock: (p, index, begin, data) => {
      const e = pieces.get(index)!;
      e.buf.set(data, begin);
      e.got += data.length;
      if (e.got === e.buf.length) {
        pieces.delete(index);
        void crypto.subtle.digest("SHA-1", e.buf).then((d) => {
          const want = meta.pieces.subarray(index * 20, index * 20 + 20);
          if (!new Uint8Array(d).every((b, i) => b === want[i])) bad++;
          if (++verified === meta.pieceCount) done.resolve();
        });
      }
      more(p);
    },
    onClose: (_p, reason) => done.reject(new Error(reason)),
  });
  await peer.start();
  await done.promise;
  const seconds = (performance.now() - t0) / 1000;
  const cpu = cpuOf("self") - cpu0;
  const stats = conn.stats();
  await peer[Symbol.asyncDispose]();
  await utp.close();
  console.log(JSON.stringify({ seconds, cpu, bad, stats }));
  Deno.exit(0);
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    size: { type: "string", default: "256" },
    runs: { type: "string", default: "2" },
    impl: { type: "string", default: "node,deno" },
    who: { type: "string", default: "seedbed,engine,libtorrent" },
  },
});
const MiB = Number(values.size), RUNS = Number(values.runs);
const GiB = MiB / 1024;
const work = await Deno.makeTempDir({ prefix: "seedbed-utpbench-" });
const log = (m: string) => console.error(`[utp-bench] ${m}`);
interface Row {
  who: string;
  seconds: number;
  leechCpu: number;
  seedCpu: number;
  ok: boolean;
}
const rows: Row[] = [];

try {
  const src = join(work, "src");
  await Deno.mkdir(src);
  const file = join(src, "payload.bin");
  await writePayload(file, MiB);
  const torrentPath = join(work, "payload.torrent");
  await Deno.writeFile(torrentPath, await createTorrent(file, { pieceLength: 1 << 20 }));
  await using seed = await startLibtorrent("seed", torrentPath, src, [], {
    profile: "hps",
    env: { LT_SETTINGS: UTP_ONLY, LT_PEER_MAX_S: "7200" }, // lt_peer.py stops after 10 min otherwise
  });
  log(`${MiB} MiB; libtorrent seed (uTP only, hps) on ${seed.port}`);
  const kinds: string[] = [];
  for (const who of values.who!.split(",")) {
    if (who === "seedbed" || who === "engine") {
      for (const impl of values.impl!.split(",")) kinds.push(`${who}-${impl}`);
    } else kinds.push(who);
  }
  for (let run = 0; run <= RUNS; run++) {
    const order = run % 2 === 0 ? kinds : [...kinds].reverse();
    for (const who of order) {
      const seed0 = cpuOf(seed.pid);
      const t0 = performance.now();
      let row: Row;
      if (who.startsWith("seedbed") || who.startsWith("engine")) {
        const flags = who.endsWith("-deno") ? ["--unstable-net"] : [];
        const engine = who.startsWith("engine");
        const dir = join(work, `engine-${run}`);
        const out = await new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            ...flags,
            import.meta.filename!,
            engine ? "--engine-child" : "--child",
            torrentPath,
            String(seed.port),
            ...(engine ? [dir] : []),
          ],
          stdout: "piped",
          stderr: "inherit",
        }).output();
        const text = new TextDecoder().decode(out.stdout).trim();
        const r = out.success ? JSON.parse(text) : undefined;
        row = {
          who,
          seconds: r?.seconds ?? NaN,
          leechCpu: r?.cpu ?? NaN,
          seedCpu: cpuOf(seed.pid) - seed0,
          ok: out.success && r.bad === 0,
        };
        if (r) log(`${who} uTP stats: ${JSON.stringify(r.stats)}`);
        if (engine) await Deno.remove(dir, { recursive: true }).catch(() => {});
      } else {
        const dir = join(work, `lt-${run}`);
        const lt = await startLibtorrent("leech", torrentPath, dir, [`127.0.0.1:${seed.port}`], {
          env: { LT_SETTINGS: UTP_ONLY },
        });
        const c0 = cpuOf(lt.pid);
        const l0 = performance.now();
        let ok = true;
        await lt.line("done", 600_000).catch((e) => {
          log(String(e));
          ok = false;
        });
        row = {
          who,
          seconds: (performance.now() - l0) / 1000,
          leechCpu: cpuOf(lt.pid) - c0,
          seedCpu: cpuOf(seed.pid) - seed0,
          ok,
        };
        await lt.stop();
        await Deno.remove(dir, { recursive: true });
      }
      const line =
        `${who}: ${row.ok ? "OK" : "FAILED"} ${row.seconds.toFixed(2)} s, ${
          (MiB / row.seconds).toFixed(0)
        } MiB/s, leecher CPU ${row.leechCpu.toFixed(2)} s, seed CPU ${row.seedCpu.toFixed(2)} s` +
        ` (wall incl. start ${((performance.now() - t0) / 1000).toFixed(1)} s)`;
      if (run === 0) log(`(warm-up) ${line}`);
      else {
        log(line);
        rows.push(row);
      }
    }
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
  console.log(
    `\n${MiB} MiB over uTP on loopback, libtorrent ${"2.0"} seed (uTP only), ${RUNS} runs each, medians\n`,
  );
  console.log("| leecher | s | MiB/s | leecher CPU s/GiB | seed CPU s/GiB | ok |");
  console.log("| --- | --- | --- | --- | --- | --- |");
  for (const who of kinds) {
    const rs = rows.filter((r) => r.who === who);
    const s = median(rs.map((r) => r.seconds));
    console.log(
      `| ${who} | ${s.toFixed(2)} | ${(MiB / s).toFixed(0)} | ${
        (median(rs.map((r) => r.leechCpu)) / GiB).toFixed(2)
      } | ${(median(rs.map((r) => r.seedCpu)) / GiB).toFixed(2)} | ${
        rs.every((r) => r.ok) ? "yes" : "NO"
      } |`,
    );
  }
} finally {
  await Deno.remove(work, { recursive: true });
}
