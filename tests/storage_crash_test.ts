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
    // kill the writer at three different moments
    for (const afterSaves of [1, 4, 9]) {
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
        stdout: "piped",
        stderr: "null",
      }).spawn();
      let saves = 0;
      const reader = child.stdout.getReader();
      const decoder = new TextDecoder();
      await within(
        30_000,
        `${afterSaves} resume saves`,
        (async () => {
          while (saves < afterSaves) {
            const { value, done } = await reader.read();
            if (done) throw new Error("child exited early");
            saves += (decoder.decode(value).match(/saved/g) ?? []).length;
          }
        })(),
      );
      child.kill("SIGKILL");
      await reader.cancel();
      const status = await child.status;
      assert.equal(status.signal, "SIGKILL");
      await using storage = new Storage({
        dir,
        layout: { files, pieceLength, length: offset, pieces },
        resumePath,
      });
      const resume = await storage.loadResume();
      assert.ok(resume, "resume data exists and is readable (atomic rename)");
      for (const i of resume.have) {
        const bytes = await storage.readPiece(i);
        assert.ok(
          bytes && await storage.verifyPiece(i, bytes),
          `piece ${i} claimed but not on disk`,
        );
      }
      assert.ok(resume.have.count + resume.recheck.length > 0);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
