// Swarm behaviour observed in a real swarm, not only in unit tests: one rate-capped Seedbed seed, two libtorrent
// leechers that start with part of the data, and four Seedbed leechers, every upload capped so that the seed alone
// could not serve everyone in time. The engine's trace (TorrentOptions.trace: requests, blocks, cancels, chokes)
// and libtorrent's peer log show rarest-first, choking with the optimistic slot, leechers trading among
// themselves, and endgame.

import assert from "node:assert/strict";
import { join } from "node:path";
import { toHex } from "../src/_bytes.ts";
import { Client } from "../src/client.ts";
import type { TorrentTrace } from "../src/swarm/types.ts";
import { needs, type Proc, readPeerLog, startLibtorrent } from "./_lab.ts";
import { makeTorrent, sameFiles, within } from "./_swarm.ts";

const PIECE = 32 * 1024;
const PIECES = 48;
const FILES = [{ path: "swarm.bin", length: PIECES * PIECE }];
/** Pieces each libtorrent leecher starts with; 36-47 are the seed's alone. */
const LT_HAS = [24, 36];
/** Upload caps, bytes/s: the seed's, and every leecher's. */
const SEED_UP = 128 * 1024;
const LEECH_UP = 96 * 1024;

/** A trace event and when it happened (ms, performance.now()). */
type Timed = TorrentTrace & { at: number };

/** Waits for a condition of several peers' state that no single event announces; polled, bounded. */
async function until(what: string, ms: number, cond: () => boolean): Promise<void> {
  await within(
    ms,
    what,
    (async () => {
      while (!cond()) await new Promise((r) => setTimeout(r, 50));
    })(),
  );
}

Deno.test({
  name:
    "a swarm of Seedbed and libtorrent leechers: rarest first, an optimistic unchoke, trading among leechers, endgame",
  ignore: needs("libtorrent"),
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "seedbed-swarm-" });
    const procs: Proc[] = [];
    const clients: Client[] = [];
    try {
      const { meta, bytes } = await makeTorrent(join(root, "seed"), "t", FILES, {
        pieceLength: PIECE,
      });
      const torrent = join(root, "t.torrent");
      await Deno.writeFile(torrent, bytes);
      const data = await Deno.readFile(join(root, "seed", "t", "swarm.bin"));

      // the seed starts paused: nobody gets a byte until everyone is connected and has told what it has
      const seedTrace: TorrentTrace[] = [];
      // how many peers the seed unchokes at most, counted once each choking round is through
      const box: { seed?: Client } = {};
      let most = 0;
      const countUnchoked = () => {
        const n = box.seed?.peers.filter((p) => !p.amChoking).length ?? 0;
        most = Math.max(most, n);
      };
      const seed = await Client.open({
        metainfo: meta,
        basedir: join(root, "seed"),
        host: "127.0.0.1",
        resumeFile: false,
        trackers: false,
        state: "paused",
        uploadLimit: SEED_UP,
        seedSlots: 4, // as while downloading: six interested peers are more than it unchokes
        tickMs: 250,
        trace: (e) => {
          seedTrace.push(e);
          queueMicrotask(countUnchoked);
        },
      });
      box.seed = seed;
      clients.push(seed);
      const seedAddr = `127.0.0.1:${seed.port}`;
      // the seed's connections as the leechers know them: dialled at its port, or incoming from it (it may dial
      // a leecher it hears of by PEX, and the duplicate connection is dropped)
      const seedKeys = new Set([seedAddr]);
      const seedId = toHex(seed.peerid);

      // libtorrent leechers holding pieces [0, LT_HAS[i]): the first pieces of the file, the rest zeroed
      const ltLogs: string[] = [];
      const lts: Proc[] = [];
      for (const [i, has] of LT_HAS.entries()) {
        const dir = join(root, `lt${i}`);
        await Deno.mkdir(join(dir, "t"), { recursive: true });
        const partial = new Uint8Array(data.length);
        partial.set(data.subarray(0, has * PIECE));
        await Deno.writeFile(join(dir, "t", "swarm.bin"), partial);
        ltLogs.push(join(root, `lt${i}.jsonl`));
        const lt = await startLibtorrent(
          "leech",
          torrent,
          dir,
          [seedAddr, ...lts.map((p) => `127.0.0.1:${p.port}`)],
          { env: { LT_UPLOAD_LIMIT: String(LEECH_UP), LT_PEERLOG: ltLogs[i] } },
        );
        procs.push(lt);
        lts.push(lt);
      }

      // Seedbed leechers, paused too, each dialling the seed, both libtorrent peers and the leechers before it
      const traces: Timed[][] = [];
      const completed: number[][] = [];
      const leechers: Client[] = [];
      for (let i = 0; i < 4; i++) {
        const trace: Timed[] = [];
        const order: number[] = [];
        const leecher = await Client.open({
          metainfo: meta,
          basedir: join(root, `sb${i}`),
          host: "127.0.0.1",
          resumeFile: false,
          trackers: false,
          state: "paused",
          uploadLimit: LEECH_UP,
          queueDepth: 16,
          tickMs: 250,
          trace: (e) => trace.push({ ...e, at: performance.now() }),
          peers: [
            { host: "127.0.0.1", port: seed.port },
            ...lts.map((p) => ({ host: "127.0.0.1", port: p.port })),
            ...leechers.map((c) => ({ host: "127.0.0.1", port: c.port })),
          ],
        });
        leecher.addEventListener("piece", (e) => order.push(e.detail.index));
        leecher.addEventListener("peer", (e) => {
          if (e.detail.peerId && toHex(e.detail.peerId) === seedId) seedKeys.add(e.detail.address);
        });
        clients.push(leecher);
        leechers.push(leecher);
        traces.push(trace);
        completed.push(order);
      }
      // everyone is connected to the seed and wants something from it; every Seedbed leecher knows what each
      // libtorrent peer has
      await until("six interested peers at the seed", 30_000, () => {
        const p = seed.peers;
        return p.length === 6 && p.every((x) => x.peerInterested);
      });
      await until("the leechers to see every bitfield", 30_000, () =>
        leechers.every((c) => {
          const haves = c.peers.map((p) => p.have);
          // the seed's bitfield, and each libtorrent peer's from that peer (not counting the seed)
          return haves.includes(PIECES) &&
            LT_HAS.every((n) => haves.some((h) => h >= n && h < PIECES));
        }));

      const started = performance.now();
      for (const c of [...leechers, seed]) await c.start();
      await within(
        120_000,
        "every leecher to complete",
        Promise.all([...leechers.map((c) => c.done), ...lts.map((p) => p.line("done", 120_000))]),
      );
      const seconds = (performance.now() - started) / 1000;
      for (const i of leechers.keys()) {
        assert.ok(await sameFiles(join(root, "seed", "t"), join(root, `sb${i}`, "t"), FILES));
      }
      for (const i of LT_HAS.keys()) {
        assert.ok(await sameFiles(join(root, "seed", "t"), join(root, `lt${i}`, "t"), FILES));
      }

      // rarest first: the leechers the seed unchoked in its first round (all at once, before any piece could
      // spread) first asked it for pieces only the seed had
      const firsts = traces.map((t) => t.find((e) => e.type === "request" && seedKeys.has(e.peer)))
        .filter((e) => e !== undefined);
      const round1 = Math.min(...firsts.map((e) => e.at));
      const early = firsts.filter((e) => e.at < round1 + 500);
      assert.ok(early.length >= 1, "no leecher asked the seed");
      for (const e of early) {
        const index = e.type === "request" ? e.index : -1;
        assert.ok(index >= LT_HAS[1], `first asked the seed for piece ${index}`);
      }

      // choking: six interested peers, four regular slots and one optimistic: five unchoked (one optimistically)
      // and one left choked, never more
      const optimistic = seedTrace.filter((e) => e.type === "unchoke" && e.optimistic).length;
      assert.ok(optimistic >= 1, "the seed never gave the optimistic slot");
      assert.equal(most, 5, `the seed unchoked ${most} peers at once`);

      // trading: the seed uploaded far less than the leechers downloaded; every Seedbed leecher got blocks from
      // another leecher; libtorrent got data from Seedbed leechers
      const needed = (leechers.length + LT_HAS.reduce((n, has) => n + (PIECES - has) / PIECES, 0)) *
        meta.length;
      assert.ok(seed.uploaded < needed / 2, `the seed uploaded ${seed.uploaded} of ${needed}`);
      for (const [i, trace] of traces.entries()) {
        const from = new Set(trace.filter((e) => e.type === "block").map((e) => e.peer));
        for (const k of seedKeys) from.delete(k);
        assert.ok(from.size >= 1, `leecher ${i} got nothing from other leechers`);
      }
      // (the libtorrent leecher that lacks only the seed's own pieces may get them all from the seed)
      const fromSeedbedLeechers = await Promise.all(
        ltLogs.map(async (log) =>
          (await readPeerLog(log)).some((l) =>
            l.client.startsWith("Seedbed") && l.progress < 1 && l.down > 0
          )
        ),
      );
      assert.ok(
        fromSeedbedLeechers.some((x) => x),
        "libtorrent got nothing from a Seedbed leecher",
      );

      // endgame: a block of a leecher's last piece was in flight from two peers at once (asked of a second peer
      // before the first delivered it), and duplicates were cancelled once a copy arrived
      let duplicatedLast = 0, cancels = 0;
      for (const [i, trace] of traces.entries()) {
        const last = completed[i].at(-1)!;
        const askedOf = new Map<number, Set<string>>();
        let twice = false;
        for (const e of trace) {
          if (e.type !== "request" && e.type !== "block" || e.index !== last) continue;
          const peers = askedOf.get(e.begin) ?? new Set();
          askedOf.set(e.begin, peers);
          if (e.type === "block") peers.clear(); // delivered: later requests are not duplicates of this one
          else if (peers.add(e.peer).size >= 2) twice = true;
        }
        if (twice) duplicatedLast++;
        cancels += trace.filter((e) => e.type === "cancel").length;
      }
      assert.ok(
        duplicatedLast >= 2,
        `${duplicatedLast} of 4 leechers had their last piece in endgame`,
      );
      assert.ok(cancels >= 1, "no endgame duplicate was cancelled");
      console.log(
        `swarm: ${seconds.toFixed(1)} s; seed uploaded ${
          (seed.uploaded / meta.length).toFixed(2)
        }x; ` +
          `last piece in endgame: ${duplicatedLast}/4 leechers; cancels: ${cancels}`,
      );
    } finally {
      for (const c of clients.reverse()) await c.close();
      for (const p of procs) await p.stop();
      await Deno.remove(root, { recursive: true });
    }
  },
});
