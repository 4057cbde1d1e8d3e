// Bandwidth limits against a real peer: libtorrent leeching from a Session capped at 2 MiB/s averages 2 MiB/s
// (± 10 %) over 20 s, as libtorrent itself counts it; lifting the cap at runtime restores full speed.
import assert from "node:assert/strict";
import { join } from "node:path";
import { Session } from "../../src/session/session.ts";
import { needs, startLibtorrent } from "../_lab.ts";
import { makeTorrent, within } from "../_swarm.ts";

const MiB = 1024 * 1024;

/**
 * libtorrent's receive rate from the peer on `port` between two of its log times (s), MiB/s: the least-squares
 * slope of its byte counter, which libtorrent updates in steps.
 */
async function ltRate(log: string, port: number, from: number, to: number): Promise<number> {
  const points: [number, number][] = [];
  for (const line of (await Deno.readTextFile(log)).split("\n")) {
    if (!line) continue;
    const p = JSON.parse(line);
    if (p.port === port && p.t >= from && p.t <= to) points.push([p.t, p.down]);
  }
  const n = points.length;
  const mt = points.reduce((s, [t]) => s + t, 0) / n,
    md = points.reduce((s, [, d]) => s + d, 0) / n;
  let num = 0, den = 0;
  for (const [t, d] of points) {
    num += (t - mt) * (d - md);
    den += (t - mt) ** 2;
  }
  return num / den / MiB;
}

/** The time (s) of libtorrent's last log line. */
async function ltNow(log: string): Promise<number> {
  const lines = (await Deno.readTextFile(log).catch(() => "")).trim().split("\n");
  return lines[lines.length - 1] ? JSON.parse(lines[lines.length - 1]).t : 0;
}

Deno.test({
  name:
    "a 2 MiB/s upload cap holds against a libtorrent leecher over 20 s, and lifting it restores full speed",
  ignore: needs("libtorrent"),
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "seedbed-limits-" });
    try {
      const { meta, bytes } = await makeTorrent(join(root, "seed"), "big", [
        { path: "big.bin", length: 128 * MiB },
      ], { pieceLength: 256 * 1024 });
      const torrent = join(root, "big.torrent");
      await Deno.writeFile(torrent, bytes);
      await using session = await Session.open({
        host: "127.0.0.1",
        basedir: join(root, "seed"),
        limits: { upload: 2 * MiB },
      });
      const seed = await session.add({ metainfo: meta });
      await seed.ready;
      const log = join(root, "peers.jsonl");
      await using lt = await startLibtorrent("leech", torrent, join(root, "leech"), [
        `127.0.0.1:${session.port}`,
      ], { env: { LT_PEERLOG: log } });
      await lt.line("connected", 30_000);
      // skip the first seconds (handshakes, the bucket's burst), then measure 24 s
      await new Promise((r) => setTimeout(r, 3000)); // a measurement window, not an event
      const from = await ltNow(log);
      await new Promise((r) => setTimeout(r, 24_000));
      const to = await ltNow(log);
      const rate = await ltRate(log, session.port, from, to);
      console.log(
        `capped at 2 MiB/s, libtorrent received ${rate.toFixed(3)} MiB/s over ${
          (to - from).toFixed(1)
        } s`,
      );
      assert.ok(to - from >= 20, "measured over at least 20 s");
      assert.ok(Math.abs(rate - 2) <= 0.2, `libtorrent's rate ${rate.toFixed(3)} MiB/s`);
      // lift the cap: the rest (over 50 MiB) arrives at full speed
      const left = meta.length - seed.uploaded;
      const lifted = performance.now();
      session.setLimits({ upload: 0 });
      await within(30_000, "the rest at full speed", lt.line("done", 30_000));
      const fast = left / ((performance.now() - lifted) / 1000) / MiB;
      console.log(
        `after lifting the cap: ${(left / MiB).toFixed(1)} MiB at ${fast.toFixed(1)} MiB/s`,
      );
      assert.ok(fast > 10, `after lifting: ${fast.toFixed(1)} MiB/s`);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
