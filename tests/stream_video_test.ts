// A real video played over our HTTP server while its torrent downloads from a libtorrent seeder capped at a few
// MiB/s: ffprobe reads its duration, ffmpeg seeks near the end and decodes a frame, and a full decode is frame
// for frame the source's. The MP4 keeps its index (moov) at the end, as ffmpeg writes it by default: a player
// must fetch the file's tail first, so all of this works only if the pieces a reader asks for come first.

import assert from "node:assert/strict";
import { join } from "node:path";
import { needs } from "./_lab.ts";
import { within } from "./_swarm.ts";
import { run, secs, streamingLab } from "./_streaming.ts";

const MiB = 1024 * 1024;
const RATE = 4 * MiB;

async function framemd5(input: string, args: string[] = [], out: string[] = []): Promise<string> {
  const { stdout } = await run("ffmpeg", [
    ...["-v", "error", ...args, "-i", input, ...out, "-f", "framemd5", "-"],
  ]);
  return stdout.split("\n").filter((l) => l !== "" && !l.startsWith("#")).join("\n");
}

Deno.test({
  name: "ffprobe and ffmpeg play, seek and decode a video over HTTP while its torrent downloads",
  ignore: needs("libtorrent", "ffmpeg"),
  async fn(t) {
    const work = await Deno.makeTempDir({ prefix: "seedbed-video-" });
    try {
      const local = join(work, "clip.mp4");
      // 30 s with noise (hardly compressible): some 33 MB, the index written at the end
      await run("ffmpeg", [
        ...["-v", "error", "-f", "lavfi", "-i", "testsrc2=duration=30:size=480x270:rate=25"],
        ...["-vf", "noise=alls=20:allf=t", "-c:v", "libx264", "-preset", "ultrafast"],
        ...["-pix_fmt", "yuv420p", "-g", "50", local],
      ]);
      const size = (await Deno.stat(local)).size;
      assert.ok(size > 20 * MiB, `the video is ${size} bytes`);
      await using lab = await streamingLab("Clip", [{ path: "clip.mp4", disk: local }], {
        rate: RATE,
        pieceLength: 256 * 1024,
      });
      const url = lab.url("clip.mp4");
      const full = (size / RATE).toFixed(1);

      await t.step(
        "ffprobe reports the duration while the download is under half done",
        async () => {
          const { stdout, ms } = await within(
            60_000,
            "ffprobe",
            run("ffprobe", [
              "-v",
              "error",
              "-show_entries",
              "format=duration",
              "-of",
              "csv=p=0",
              url,
            ]),
          );
          const progress = lab.progress();
          console.log(
            `ffprobe: ${stdout.trim()} s after ${(ms / 1000).toFixed(2)} s, at ${
              (progress * 100).toFixed(0)
            }% of ${(size / MiB).toFixed(1)} MiB (${full} s at ${RATE / MiB} MiB/s)`,
          );
          assert.equal(Number(stdout.trim()), 30);
          assert.ok(progress < 0.5, `ffprobe finished at ${progress}`);
        },
      );

      await t.step(
        "ffmpeg -ss near the end decodes a frame long before the file is there",
        async () => {
          const t0 = performance.now();
          const frame = await within(
            60_000,
            "ffmpeg -ss 28",
            framemd5(url, ["-ss", "28"], ["-frames:v", "1"]),
          );
          const progress = lab.progress();
          console.log(
            `ffmpeg -ss 28 -frames:v 1: a frame after ${secs(t0)} s, at ${
              (progress * 100).toFixed(0)
            }% of the download`,
          );
          assert.equal(frame.split("\n").length, 1, frame);
          assert.equal(frame, await framemd5(local, ["-ss", "28"], ["-frames:v", "1"]));
          assert.ok(progress < 0.75, `the frame came at ${progress}`);
        },
      );

      await t.step("a full decode over HTTP is frame for frame the source's", async () => {
        const t0 = performance.now();
        const startedAt = lab.progress();
        const overHttp = await within(120_000, "ffmpeg's full decode", framemd5(url));
        console.log(
          `full decode over HTTP: ${secs(t0)} s, begun at ${
            (startedAt * 100).toFixed(0)
          }% of the download`,
        );
        assert.equal(overHttp.split("\n").length, 750);
        assert.equal(overHttp, await framemd5(local));
        assert.ok(startedAt < 1, "begun while the torrent was downloading");
      });
      await within(60_000, "the download", lab.torrent.done);
      assert.equal(lab.torrent.engine!.readers, 0);
    } finally {
      await Deno.remove(work, { recursive: true });
    }
  },
});
