// A Session in a child process, for crash tests: `_session_child.ts STATE_DIR DIR [TORRENT PEER]` restores the
// session in STATE_DIR (adding TORRENT with PEER the first time), prints one JSON line when each torrent is ready
// ({ready, id, have, checkedAtLoad}) and for each piece, and `done` when every torrent is complete.
import { Session } from "../src/session/session.ts";

const [stateDir, dir, torrent, peer] = Deno.args;
const session = await Session.open({ host: "127.0.0.1", basedir: dir, stateDir });
if (torrent && session.torrents.length === 0) {
  const [host, port] = peer.split(":");
  await session.add(torrent, { peers: [{ host, port: Number(port) }] });
}
const out = (o: unknown) => console.log(JSON.stringify(o));
await Promise.all(session.torrents.map(async (t) => {
  t.addEventListener("piece", (e) => out({ piece: e.detail.index, id: t.id }));
  await t.ready;
  out({ ready: t.infohashHex, id: t.id, have: t.progress.have, checkedAtLoad: t.checkedAtLoad });
  // peers are given once: a restored torrent dials the peer again
  if (peer) {
    const [host, port] = peer.split(":");
    t.addPeer(host, Number(port));
  }
}));
await Promise.all(session.torrents.map((t) => t.done));
out({ done: true });
await session.close();
