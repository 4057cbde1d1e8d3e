// A real full filesystem: a download into a small tmpfs fills it mid-way. The client says so clearly, pauses,
// marks nothing it could not write, and resumes by itself once space is freed (the tmpfs is grown).
// Needs root (mount); skipped elsewhere unless SEEDBED_REQUIRE_PEERS=1 (CI), where it must run.

import assert from "node:assert/strict";
import { join } from "node:path";
import { Client } from "../src/client.ts";
import { REQUIRE_PEERS } from "./_lab.ts";
import { makeTorrent, nextEvent, payload, within } from "./_swarm.ts";

function run(cmd: string, args: string[]): boolean {
  try {
    return new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
}

const canMount = (() => {
  if (Deno.build.os !== "linux") return false;
  const dir = Deno.makeTempDirSync({ prefix: "seedbed-mount-probe-" });
  try {
    if (!run("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", dir])) return false;
    run("umount", [dir]);
    return true;
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
})();

const PIECE = 65536;
const SIZE = 6 * 1024 * 1024;

Deno.test({
  name:
    "a full disk mid-download: clear error, paused, nothing wrongly had; resumes when space is freed",
  ignore: !canMount && !REQUIRE_PEERS,
  async fn() {
    const root = await Deno.makeTempDir({ prefix: "seedbed-diskfull-" });
    const mnt = join(root, "small");
    await Deno.mkdir(mnt);
    assert.ok(run("mount", ["-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt]), "cannot mount a tmpfs");
    try {
      const files = [{ path: "big.bin", length: SIZE }];
      const { meta } = await makeTorrent(join(root, "seed"), "t", files, { pieceLength: PIECE });
      await using seeder = await Client.open({
        metainfo: meta,
        basedir: join(root, "seed"),
        host: "127.0.0.1",
        resumeFile: false,
      });
      // failed retries to write what the disk refused, counted as they happen
      let retries = 0;
      const retried = new EventTarget();
      const leecher = new Client({
        metainfo: meta,
        basedir: mnt,
        host: "127.0.0.1",
        resumeFile: false,
        diskRetryMs: 300,
        tickMs: 200,
        peers: [{ host: "127.0.0.1", port: seeder.port }],
        trace: (e) => {
          if (e.type !== "diskretry") return;
          retries++;
          retried.dispatchEvent(new CustomEvent("retry", { detail: retries }));
        },
      });
      try {
        const error = nextEvent<{ error: Error }>(leecher, "error");
        const paused = nextEvent<{ state: string }>(leecher, "state", (d) => d.state === "paused");
        await leecher.ready;
        const { error: err } = await within(30_000, "the disk-full error", error);
        assert.match(err.message, /ENOSPC|No space left/);
        assert.match(err.message, /paused/);
        await within(5000, "the pause", paused);
        assert.equal(leecher.state, "paused");
        // every piece we claim is on disk, byte for byte; nothing beyond what fits
        const data = payload(SIZE, 1);
        const onDisk = await Deno.readFile(join(mnt, "t", "big.bin"));
        const had: number[] = [];
        for (let i = 0; i < meta.pieceCount; i++) {
          if (leecher.bitfield[i >> 3] & (0x80 >> (i & 7))) had.push(i);
        }
        assert.ok(
          had.length > 0 && had.length * PIECE <= 3 * 1024 * 1024,
          `had ${had.length} pieces`,
        );
        for (const i of had) {
          assert.deepEqual(
            onDisk.subarray(i * PIECE, (i + 1) * PIECE),
            data.subarray(i * PIECE, (i + 1) * PIECE),
            `piece ${i} is marked had but is not on disk`,
          );
        }
        // still paused three failed retries later: the disk is still full
        const from = retries;
        await within(
          10_000,
          "three more write retries",
          nextEvent<number>(retried, "retry", (n) => n >= from + 3),
        );
        assert.equal(leecher.state, "paused");
        // free space: grow the filesystem; the download resumes by itself and completes
        const resumed = nextEvent<{ state: string }>(leecher, "state", (d) => d.state === "active");
        assert.ok(run("mount", ["-o", "remount,size=16m", mnt]), "cannot grow the tmpfs");
        await within(30_000, "the resume", resumed);
        await within(60_000, "the download", leecher.done);
        assert.deepEqual(await Deno.readFile(join(mnt, "t", "big.bin")), data);
      } finally {
        await leecher.close();
      }
    } finally {
      run("umount", [mnt]);
      await Deno.remove(root, { recursive: true });
    }
  },
});
