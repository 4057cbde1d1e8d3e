// deno bench: the piece picker filling a 256-request pipeline and receiving blocks.
import { Bitfield } from "../src/bitfield.ts";
import { BLOCK_SIZE, PiecePicker } from "../src/swarm/piece_picker.ts";

const PIECES = 1024, PL = 1 << 20;
const all = new Bitfield(PIECES);
all.setAll();
const block = new Uint8Array(BLOCK_SIZE);

Deno.bench({
  name: "pick + receive a whole 1 GiB torrent (65 536 blocks) from one peer",
  fn() {
    const have = new Bitfield(PIECES);
    const picker = new PiecePicker({
      pieceCount: PIECES,
      pieceLength: PL,
      totalLength: PIECES * PL,
      have,
      maxInMemory: 8,
    });
    picker.addAvailability(all);
    const peer = picker.requests.forPeer();
    let done = 0;
    while (done < PIECES) {
      const blocks = picker.pick(all, 256, peer);
      if (blocks.length === 0) throw new Error("stuck");
      for (const b of blocks) peer.add(picker.requests.key(b.index, b.begin));
      for (const b of blocks) {
        peer.delete(picker.requests.key(b.index, b.begin));
        const piece = picker.receive(b.index, b.begin, block, 1);
        if (piece) {
          picker.pieceVerified(piece);
          picker.release(piece.buffer);
          have.set(piece.index);
          done++;
        }
      }
    }
  },
});
