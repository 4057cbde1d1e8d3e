// Run by tracker_bep7_test.ts in a private mount namespace whose /etc/hosts names "dual.test" as both 127.0.0.1
// and ::1: a Client listening dual-stack (no host) on a torrent whose tracker is http://dual.test:PORT/announce
// must announce once over each family, each with the `started` event. Prints the tracker's view as one JSON
// line, e.g. {"announcers":["127.0.0.1","::1"]}.

import { join } from "node:path";
import { Client } from "../src/client.ts";
import { announce } from "../src/tracker/http.ts";
import { TrackerServer } from "../src/tracker/server.ts";
import { makeTorrent, nextEvent, within } from "./_swarm.ts";

const root = await Deno.makeTempDir({ prefix: "seedbed-bep7-" });
try {
  await using tracker = new TrackerServer({ hostname: "::" });
  const port = new URL(tracker.url).port;
  const { meta } = await makeTorrent(join(root, "seed"), "t", [{ path: "a", length: 1000 }], {
    pieceLength: 16384,
    announce: [[`http://dual.test:${port}/announce`]],
  });
  await using client = new Client({
    metainfo: meta,
    basedir: join(root, "seed"),
    resumeFile: false,
  });
  const announced = nextEvent(client, "tracker", (d: { type: string }) => d.type === "announce");
  await client.ready;
  await within(10_000, "the announce", announced);
  // a probe announce is given every other peer: one over each family, both with our port
  const probe = await announce(`http://127.0.0.1:${port}/announce`, {
    infoHash: meta.infoHash,
    peerId: new Uint8Array(20).fill(1),
    port: 1,
    uploaded: 0,
    downloaded: 0,
    left: 1,
  });
  const announcers = [...probe.peers, ...probe.peers6].map((p) =>
    `${p.host} ${p.port === client.port ? "our port" : p.port}`
  );
  console.log(JSON.stringify({ announcers }));
} finally {
  await Deno.remove(root, { recursive: true });
}
