import assert from "node:assert/strict";
import { decode } from "../src/bencode.ts";
import { TrackerServer } from "../src/tracker/server.ts";

function enc(bytes: Uint8Array): string {
  return [...bytes].map((b) => "%" + b.toString(16).padStart(2, "0")).join("");
}

async function get(url: string): Promise<Record<string, unknown>> {
  const res = await fetch(url);
  return decode(new Uint8Array(await res.arrayBuffer())) as Record<string, unknown>;
}

Deno.test("TrackerServer returns the other peers of a swarm as compact peers", async () => {
  await using tracker = new TrackerServer();
  const ih = crypto.getRandomValues(new Uint8Array(20));
  const base = `${tracker.url}?info_hash=${enc(ih)}&peer_id=${enc(new Uint8Array(20))}&compact=1`;
  const first = await get(`${base}&port=6001&left=0&event=started`);
  assert.deepEqual(first.peers, new Uint8Array(0));
  const second = await get(`${base}&port=6002&left=100&event=started`);
  assert.deepEqual(second.peers, new Uint8Array([127, 0, 0, 1, 6001 >> 8, 6001 & 0xff]));
  assert.equal(second.complete, 1);
  assert.equal(second.incomplete, 1);
  assert.equal(tracker.peerCount(ih), 2);
  await get(`${base}&port=6001&left=0&event=stopped`);
  assert.equal(tracker.peerCount(ih), 1);
});

Deno.test("TrackerServer answers scrape and refuses untracked hashes with a failure reason", async () => {
  const allowed = new Uint8Array(20).fill(7);
  await using tracker = new TrackerServer({ allow: [allowed] });
  const refused = await get(`${tracker.url}?info_hash=${enc(new Uint8Array(20))}&port=1&left=0`);
  assert.match(new TextDecoder().decode(refused["failure reason"] as Uint8Array), /not tracked/);
  await get(`${tracker.url}?info_hash=${enc(allowed)}&port=1&left=0&event=completed`);
  const scrape = await get(
    `${tracker.url.replace("/announce", "/scrape")}?info_hash=${enc(allowed)}`,
  );
  const files = scrape.files as Record<string, Record<string, number>>;
  const entry = Object.values(files)[0];
  assert.equal(entry.complete, 1);
  assert.equal(entry.downloaded, 1);
});
