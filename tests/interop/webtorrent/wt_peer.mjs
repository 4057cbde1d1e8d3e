// A WebTorrent peer for Seedbed's interop tests (run with Node from this folder's node_modules).
//
//   node wt_peer.mjs seed|leech TORRENT DIR PORT [HOST:PORT ...]
//
// DHT, local discovery, UPnP/NAT-PMP, uTP, PEX and web seeds are off: TCP on loopback only. Prints "ready"
// once seeding (seed) or once the torrent is added (leech), "done" when a leech has every piece; runs until
// SIGTERM or stdin closes. Dials the HOST:PORT peers given.
import fs from "node:fs";
import WebTorrent from "webtorrent";

const [role, torrentPath, dir, port, ...peers] = process.argv.slice(2);
const client = new WebTorrent({
  torrentPort: Number(port),
  dht: false,
  lsd: false,
  natUpnp: false,
  natPmp: false,
  utp: false,
  utPex: false,
  webSeeds: false,
});
const quit = (code) => {
  setTimeout(() => process.exit(code), 3000).unref();
  client.destroy(() => process.exit(code));
};
client.on("error", (err) => {
  console.error("client error:", err.message);
  process.exit(1);
});
process.on("SIGTERM", () => quit(0));
process.stdin.on("end", () => quit(0));
process.stdin.resume();
setTimeout(() => {
  console.error("time limit");
  quit(124);
}, 600_000).unref();

const torrent = client.add(fs.readFileSync(torrentPath), { path: dir });
torrent.on("error", (err) => {
  console.error("torrent error:", err.message);
  process.exit(1);
});
torrent.on("infoHash", () => {
  for (const p of peers) torrent.addPeer(p);
  if (role === "leech") console.log("ready");
});
torrent.on("done", () => console.log(role === "leech" ? "done" : "ready"));
