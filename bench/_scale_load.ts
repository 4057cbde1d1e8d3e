// 500 live peer connections for bench/scale.ts: `_scale_load.ts PORT TORRENTS_DIR N` opens N connections to
// PORT, each for one of the torrents (round robin), says interested, and asks for one random 16 KiB block a
// second once unchoked. Prints "connected <n>" when every connection completed its handshake, then runs until
// stdin closes.
import { join } from "node:path";
import { parseMetainfo } from "../src/metainfo.ts";
import { PeerConnection } from "../src/peer.ts";
import { makePeerId } from "../src/peer_id.ts";
import { connectTcp } from "../src/transport/tcp.ts";

const [port, dir, count] = [Number(Deno.args[0]), Deno.args[1], Number(Deno.args[2])];
const metas = [];
for await (const e of Deno.readDir(dir)) {
  if (e.name.endsWith(".torrent")) {
    metas.push(await parseMetainfo(await Deno.readFile(join(dir, e.name))));
  }
}
let ready = 0, reported = 0;
const peers: PeerConnection[] = [];
const timers: ReturnType<typeof setInterval>[] = [];
for (let i = 0; i < count; i++) {
  const meta = metas[i % metas.length];
  const stream = await connectTcp("127.0.0.1", port, { timeoutMs: 10_000 });
  const peer = new PeerConnection(stream, {
    infoHash: meta.infoHash,
    peerId: makePeerId(),
    pieceCount: meta.pieceCount,
    pieceLength: meta.pieceLength,
    totalLength: meta.length,
  }, {
    onReady: () => {
      if (++ready === count) console.log(`connected ${ready}`);
    },
    onBitfield: (p) => p.interested(),
    onUnchoke: (p) => {
      const ask = () => {
        if (p.closed || p.peerChoking || p.outstanding > 0) return;
        const index = Math.floor(Math.random() * meta.pieceCount);
        const size = index === meta.pieceCount - 1
          ? meta.length - index * meta.pieceLength
          : meta.pieceLength;
        p.request(index, 0, Math.min(16384, size));
      };
      ask();
      timers.push(setInterval(ask, 1000));
    },
    onBlock: () => {},
    onClose: (_p, reason) => {
      if (!reported++) console.error(`first close: ${reason}`);
    },
  });
  peers.push(peer);
  void peer.start();
}
for await (const _ of Deno.stdin.readable) { /* wait */ }
for (const t of timers) clearInterval(t);
for (const p of peers) p.close("done");
console.log(
  `closed; ${
    peers.filter((p) => p.closeReason !== "done").length
  } had been closed by the other side`,
);
