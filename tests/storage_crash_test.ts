import assert from "node:assert/strict";
import { join } from "node:path";
import { Storage } from "../src/storage/storage.ts";
import { payload, within } from "./_swarm.ts";

Deno.test("after kill -9 at any moment, resume data never claims a piece that is not on disk", async () => {
  const dir = await Deno.makeTempDir({ prefix: "seedbed-crash-" });
  try {
    const pieceLength = 64 * 1024, seed = 11;
    const lengths = [300_000, 1, 500_000, 0, 250_000];
    let offset = 0;
    const files = lengths.map((length, i) => {
      const f = { path: ["c", `f${i}`], length, offset };
      offset += length;
      return f;
    });
    const data = payload(offset, seed);
    const count = Math.ceil(offset / pieceLength);
    const pieces = new Uint8Array(count * 20);
    for (let i = 0; i < count; i++) {
      const d = await crypto.subtle.digest(
        "SHA-1",
        data.subarray(i * pieceLength, (i + 1) * pieceLength),
      );
      pieces.set(new Uint8Array(d), i * 20);
    }
    const layoutPath = join(dir, "layout.json"), resumePath = join(dir, "resume.json");
    await Deno.writeTextFile(
      layoutPath,
      JSON.stringify({ files, pieceLength, length: offset, pieces: pieces.toBase64(), seed }),
    );
    // kill the writer at three moments of its one pass over the 17 pieces: each time while it writes a piece
    // whose write is followed by a resume save (it gets no further than we allow: it cannot finish first)
    assert.equal(count, 17);
    for (const rounds of [3, 9, 15]) {
      await Deno.remove(join(dir, "c"), { recursive: true }).catch(() => {});
      await Deno.remove(resumePath).catch(() => {});
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          new URL("./_crash_child.ts", import.meta.url).pathname,
          dir,
          layoutPath,
          resumePath,
        ],
        stdin: "piped",
        stdout: "piped",
        stderr: "null",
      }).spawn();
      const go = child.stdin.getWriter();
      const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      // every piece but the last allowed one written (and saved where due)
      await go.write(new Uint8Array(rounds - 1));
      let out = "";
      await within(
        30_000,
        `${rounds - 1} pieces written`,
        (async () => {
          while (!out.includes(`done ${rounds - 2}\n`)) {
            const { value, done } = await lines.read();
            if (done) throw new Error(`the child exited early: ${out}`);
            out += value;
          }
        })(),
      );
      // the last one, and the kill at once: it lands while that piece is written or saved
      await go.write(new Uint8Array(1));
      child.kill("SIGKILL");
      const status = await child.status;
      await lines.cancel();
      await go.close().catch(() => {});
      assert.equal(status.signal, "SIGKILL");
      assert.ok(!out.includes("finished"));
      await using storage = new Storage({
        dir,
        layout: { files, pieceLength, length: offset, pieces },
        resumePath,
      });
      const resume = await storage.loadResume();
      // killed during the first save: none yet, or the complete one; later: always one, readable (atomic rename)
      if (rounds === 3 && !resume) continue;
      assert.ok(resume, "resume data exists and is readable (atomic rename)");
      for (const i of resume.have) {
        const bytes = await storage.readPiece(i);
        assert.ok(
          bytes && await storage.verifyPiece(i, bytes),
          `piece ${i} claimed but not on disk`,
        );
      }
      // what the last completed save claimed is still claimed (the interrupted save replaced nothing half-way)
      assert.ok(
        resume.have.count + resume.recheck.length >= rounds - 3,
        `${resume.have.count} + ${resume.recheck.length} claimed after ${rounds - 1} pieces`,
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
