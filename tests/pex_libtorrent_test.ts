// PEX (BEP 11) with libtorrent, both ways: a Seedbed peer given only one libtorrent peer learns a second libtorrent
// peer from the first one's ut_pex message and dials it; and two libtorrent peers that only Seedbed knows about
// learn each other from our ut_pex messages (libtorrent's peer log says where it learnt the address).

import assert from "node:assert/strict";
import { join } from "node:path";
import { Client } from "../src/client.ts";
import { needs, type Proc, readPeerLog, startLibtorrent, waitPeerLog } from "./_lab.ts";
import { makeTorrent, nextEvent, within } from "./_swarm.ts";

const FILES = [{ path: "p.bin", length: 4 * 65536 }];

Deno.test({
  name: "PEX with libtorrent: a peer's ut_pex message introduces another peer, which we dial",
  ignore: needs("libtorrent"),
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "seedbed-pex-lt-" });
    const procs: Proc[] = [];
    try {
      const { bytes } = await makeTorrent(join(root, "c"), "t", FILES, { pieceLength: 65536 });
      const torrent = join(root, "t.torrent");
      await Deno.writeFile(torrent, bytes);
      // we hold only the first half, so nobody completes and every connection stays up until PEX is sent
      const file = await Deno.open(join(root, "c", "t", "p.bin"), { write: true });
      await file.truncate(FILES[0].length / 2);
      file.close();
      // two empty libtorrent leechers, B connected to A; nobody tells us about B
      const a = await startLibtorrent("leech", torrent, join(root, "a"));
      procs.push(a);
      const b = await startLibtorrent("leech", torrent, join(root, "b"), [`127.0.0.1:${a.port}`]);
      procs.push(b);
      await b.line("connected", 20_000);
      await using client = await Client.open({
        torrent: bytes,
        basedir: join(root, "c"),
        host: "127.0.0.1",
        resumeFile: false,
        trackers: false,
        peers: [{ host: "127.0.0.1", port: a.port }],
      });
      assert.ok(!client.seed);

      const viaPex = await within(
        30_000,
        "a connection to libtorrent B learnt through PEX",
        nextEvent<{ address: string; incoming: boolean }>(
          client,
          "peer",
          (d) => d.address === `127.0.0.1:${b.port}`,
        ),
      );
      assert.equal(viaPex.incoming, false);
      const info = client.peers.find((p) => p.address === `127.0.0.1:${b.port}`);
      assert.equal(info?.source, "pex");
    } finally {
      for (const p of procs) await p.stop();
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "PEX to libtorrent: two libtorrent peers told only about us learn each other from our ut_pex and connect",
  ignore: needs("libtorrent"),
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "seedbed-pex-to-lt-" });
    const procs: Proc[] = [];
    try {
      const files = [{ path: "p.bin", length: 16 * 65536 }];
      const { bytes } = await makeTorrent(join(root, "c"), "t", files, { pieceLength: 65536 });
      const torrent = join(root, "t.torrent");
      await Deno.writeFile(torrent, bytes);
      // two empty libtorrent leechers that know nobody (no tracker, DHT or LSD) and dial nobody
      const logs = [join(root, "a.jsonl"), join(root, "b.jsonl")];
      const [a, b] = await Promise.all(
        ["a", "b"].map((n, i) =>
          startLibtorrent("leech", torrent, join(root, n), [], { env: { LT_PEERLOG: logs[i] } })
        ),
      );
      procs.push(a, b);
      // we seed slowly (nobody completes while the test looks) and dial A, then B once A is connected
      await using client = await Client.open({
        torrent: bytes,
        basedir: join(root, "c"),
        host: "127.0.0.1",
        resumeFile: false,
        trackers: false,
        uploadLimit: 32 * 1024,
      });
      assert.ok(client.seed);
      const first = nextEvent(client, "peer");
      client.addPeer("127.0.0.1", a.port);
      await within(20_000, "the connection to A", first);
      client.addPeer("127.0.0.1", b.port);
      // one of them dials the other, at the address it got from our PEX message
      const line = await waitPeerLog(
        logs,
        (l, file) => l.port === [b, a][file].port && !l.incoming,
        30_000,
        "a libtorrent peer dialling the other",
      );
      assert.ok(line.source.includes("pex"), JSON.stringify(line));
      // and they were never told about each other any other way
      const all = [...await readPeerLog(logs[0]), ...await readPeerLog(logs[1])];
      const between = all.filter((l) => l.port === a.port || l.port === b.port);
      assert.ok(
        between.every((l) => l.incoming || l.source.includes("pex")),
        JSON.stringify(between),
      );
    } finally {
      for (const p of procs) await p.stop();
      await Deno.remove(root, { recursive: true });
    }
  },
});
