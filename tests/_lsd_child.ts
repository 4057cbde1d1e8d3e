// Run by lsd_test.ts inside a network namespace of its own (`unshare -n`, loopback up, a multicast route on lo):
// Local Service Discovery (BEP 14) between Seedbed and libtorrent, on the real LSD group and port, where nothing
// leaves the namespace. Args: ROOT TORRENT (ROOT/seed holds the data). Prints one JSON line of what each side
// saw; lsd_test.ts asserts on it.

import { createSocket } from "node:dgram";
import { join } from "node:path";
import { Client } from "../src/client.ts";
import { LSD_GROUP, LSD_PORT, parseLsdAnnounce } from "../src/lsd.ts";
import { parseMetainfo } from "../src/metainfo.ts";
import type { PeerSource } from "../src/swarm/types.ts";
import { type PeerLogLine, readPeerLog, startLibtorrent } from "./_lab.ts";
import { within } from "./_swarm.ts";

const [root, torrent] = Deno.args;
const LT_LSD = { LT_SETTINGS: JSON.stringify({ enable_lsd: true }) };
const bytes = await Deno.readFile(torrent);
const infoHash = (await parseMetainfo(bytes)).infoHashHex;

/** Resolves once `count` LSD announces of `infoHash` from BitTorrent port `port` were heard. */
async function announced(infoHash: string, port: number, count: number): Promise<void> {
  const sock = createSocket({ type: "udp4", reuseAddr: true });
  try {
    const heard = Promise.withResolvers<void>();
    let n = 0;
    sock.on("message", (msg: Uint8Array) => {
      const a = parseLsdAnnounce(new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength));
      if (a && a.port === port && a.infoHashes.includes(infoHash) && ++n >= count) heard.resolve();
    });
    await new Promise<void>((resolve) => sock.bind(LSD_PORT, "0.0.0.0", resolve));
    sock.addMembership(LSD_GROUP, "127.0.0.1");
    await within(60_000, "libtorrent's LSD announce", heard.promise);
  } finally {
    sock.close();
  }
}

// 1. a libtorrent leecher that knows no peer announces itself before we listen; then we seed (slowly: libtorrent
// logs its peers every 0.25 s), announce, and it finds us by our announce. (libtorrent repeats its announce while
// it has no peer, 1, 3, 7, 15 s after starting: we start right after the second, so that it hears ours well before
// we could hear its next one and dial it.)
const ltLog = join(root, "lt-leech.jsonl");
let ltSawUs: PeerLogLine | undefined;
{
  await using lt = await startLibtorrent("leech", torrent, join(root, "lt"), [], {
    env: { ...LT_LSD, LT_PEERLOG: ltLog },
  });
  await announced(infoHash, lt.port, 2);
  await using _seed = await Client.open({
    torrent: bytes,
    basedir: join(root, "seed"),
    host: "127.0.0.1",
    resumeFile: false,
    trackers: false,
    lsd: true,
    uploadLimit: 256 * 1024,
  });
  await lt.line("done", 60_000);
  const lines = (await readPeerLog(ltLog)).filter((l) => l.client.startsWith("Seedbed"));
  ltSawUs = lines.find((l) => !l.incoming && l.source.includes("lsd")) ?? lines[0];
}

// 2. a libtorrent seed that starts after us announces itself; we find it by its announce and download
const sources: PeerSource[] = [];
let weCompleted = false;
{
  await using leecher = await Client.open({
    torrent: bytes,
    basedir: join(root, "sb"),
    host: "127.0.0.1",
    resumeFile: false,
    trackers: false,
    lsd: true,
  });
  leecher.addEventListener("peer", () => sources.push(...leecher.peers.map((p) => p.source)));
  await using _lt = await startLibtorrent("seed", torrent, join(root, "seed"), [], { env: LT_LSD });
  await within(60_000, "the download from the libtorrent seed found by LSD", leecher.done);
  weCompleted = true;
}

console.log(JSON.stringify({ ltSawUs, sources, weCompleted }));
