// Child process for the storage crash test: writes pieces and saves resume data in a loop until killed.
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
for (let round = 0; round < 1_000_000; round++) {
  const i = round % count;
  await storage.writePiece(i, data.subarray(i * layout.pieceLength, (i + 1) * layout.pieceLength));
  have.set(i);
  if (round % 3 === 2) {
    await storage.saveResume(have);
    Deno.stdout.writeSync(enc.encode(`saved ${round}\n`));
  }
}
