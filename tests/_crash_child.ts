// Child process for the storage crash test: one pass over the pieces, writing one piece per byte read from stdin
// (the test decides how far it gets, so it can never finish before the kill), saving resume data after every
// third piece. Prints "done N" once piece N (0-based) is written, and its save made when it had one.
// Args: DIR LAYOUT_JSON RESUME_PATH
import { Bitfield } from "../src/bitfield.ts";
import { Storage } from "../src/storage/storage.ts";
import { payload } from "./_swarm.ts";

const [dir, layoutPath, resumePath] = Deno.args;
const spec = JSON.parse(await Deno.readTextFile(layoutPath));
const layout = { ...spec, pieces: Uint8Array.fromBase64(spec.pieces) };
const data = payload(layout.length, spec.seed);
const count = layout.pieces.length / 20;
const storage = new Storage({ dir, layout, resumePath });
const have = new Bitfield(count);
const enc = new TextEncoder();
const go = Deno.stdin.readable.getReader();
let credit = 0;
for (let i = 0; i < count; i++) {
  while (credit === 0) {
    const { value, done } = await go.read();
    if (done) Deno.exit(3); // the test went away
    credit += value.length;
  }
  credit--;
  await storage.writePiece(i, data.subarray(i * layout.pieceLength, (i + 1) * layout.pieceLength));
  have.set(i);
  if (i % 3 === 2) await storage.saveResume(have);
  Deno.stdout.writeSync(enc.encode(`done ${i}\n`));
}
Deno.stdout.writeSync(enc.encode("finished\n"));
