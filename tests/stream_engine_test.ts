// Streaming a torrent while it downloads, with real readers: curl with byte ranges and fetch against our HTTP
// server, the torrent coming from a libtorrent seeder capped at a few MiB/s. Every byte is compared with the
// seeder's files; the two figures that say streaming works — how soon a seek to the end gets its first byte, and
// whether a reader from the start keeps pace with the seeder — are measured and printed.

import assert from "node:assert/strict";
import { needs } from "./_lab.ts";
import { payload, within } from "./_swarm.ts";
import { run, secs, streamingLab } from "./_streaming.ts";

const MiB = 1024 * 1024;
/** The seeder's upload cap: "a few MiB/s". */
const RATE = 4 * MiB;
const PIECE = 256 * 1024;

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

Deno.test({
  name:
    "curl reads byte ranges of two files while they download from a rate-limited libtorrent seeder",
  ignore: needs("libtorrent", "curl"),
  async fn() {
    const movie = payload(24 * MiB + 12_345, 3);
    const song = payload(3 * MiB + 777, 4);
    await using lab = await streamingLab("album", [
      { path: "movie.mkv", data: movie },
      { path: "extra/song.mp3", data: song },
    ], { rate: RATE, pieceLength: PIECE });
    const out = await Deno.makeTempDir({ dir: lab.root });
    const ranges: [string, string, Uint8Array][] = [
      ["movie.mkv", "0-99999", movie.subarray(0, 100_000)],
      ["movie.mkv", `${movie.length - MiB}-`, movie.subarray(movie.length - MiB)],
      ["movie.mkv", "10000000-10999999", movie.subarray(10_000_000, 11_000_000)],
      ["extra/song.mp3", "-100", song.subarray(song.length - 100)],
      ["extra/song.mp3", "1000-", song.subarray(1000)],
    ];
    // all at once, while nothing of the torrent is there yet
    assert.ok(lab.progress() < 0.1);
    const t0 = performance.now();
    const results = await within(
      60_000,
      "curl's ranges",
      Promise.all(ranges.map(async ([file, range], k) => {
        const path = `${out}/${k}`;
        const { stdout } = await run("curl", [
          ...["-sS", "--fail", "-r", range, "-o", path],
          ...["-w", "%{http_code} %{size_download}"],
          lab.url(file),
        ]);
        return { stdout, at: performance.now(), progress: lab.progress(), path };
      })),
    );
    for (const [k, r] of results.entries()) {
      const [, range, want] = ranges[k];
      assert.equal(r.stdout, `206 ${want.length}`, `range ${range}`);
      assert.ok(
        equalBytes(await Deno.readFile(r.path), want),
        `range ${range}: the seeder's bytes`,
      );
    }
    const last = Math.max(...results.map((r) => r.at));
    const progress = Math.max(...results.map((r) => r.progress));
    console.log(
      `5 ranges (${
        ((100_000 + MiB + 1_000_000 + 100 + song.length - 1000) / MiB).toFixed(1)
      } MiB) ` +
        `read in ${secs(t0, last)} s while ${
          (progress * 100).toFixed(0)
        }% of the torrent was there`,
    );
    assert.ok(progress < 0.9, `the ranges came before the download ended (${progress})`);
    // the whole file once the download completes, and the index shows it complete
    await within(60_000, "the download", lab.torrent.done);
    const whole = await run("curl", ["-sS", "--fail", "-o", `${out}/whole`, lab.url("movie.mkv")]);
    assert.equal(whole.stdout, "");
    assert.ok(equalBytes(await Deno.readFile(`${out}/whole`), movie));
    const index = await (await fetch(lab.server.url)).text();
    assert.ok(
      index.includes(
        `movie.mkv</a></td><td class="n" title="${movie.length} bytes">24.0 MiB</td><td class="n">100%`,
      ),
      index,
    );
    assert.equal(lab.torrent.engine!.readers, 0, "every reader closed");
  },
});

Deno.test({
  name: "a seek to a file's last MiB gets its first byte in a small fraction of the download time",
  ignore: needs("libtorrent"),
  async fn() {
    const movie = payload(48 * MiB, 5);
    await using lab = await streamingLab("seek", [{ path: "movie.mp4", data: movie }], {
      rate: RATE,
      pieceLength: PIECE,
    });
    // the download is under way (a quarter of it, in rarest-first order) when a player seeks to the end
    await within(60_000, "a quarter of the download", lab.reach(0.25));
    const at = lab.progress();
    // the last MiB; if some of it came already (pieces come in random order), the last MiB-long stretch of the
    // file none of which is there yet: what is measured is fetching, not reading from disk
    const have = lab.torrent.engine!.have;
    let start = movie.length - MiB;
    while ([0, 1, 2, 3].some((k) => have.has(start / PIECE + k))) start -= PIECE;
    const t0 = performance.now();
    const res = await fetch(lab.url("movie.mp4"), { headers: { range: `bytes=${start}-` } });
    assert.equal(res.status, 206);
    const reader = res.body!.getReader();
    const first = await within(60_000, "the first byte", reader.read());
    const firstByte = performance.now() - t0;
    const chunks = [first.value!];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      chunks.push(value);
    }
    const rest = performance.now() - t0;
    const got = new Uint8Array(await new Blob(chunks).arrayBuffer());
    assert.ok(equalBytes(got, movie.subarray(start)));
    await within(60_000, "the download", lab.torrent.done);
    const full = performance.now() - lab.startedAt;
    console.log(
      `seek to ${((movie.length - start) / MiB).toFixed(2)} MiB before the end at ${
        (at * 100).toFixed(0)
      }%: first byte after ${(firstByte / 1000).toFixed(2)} s, the rest of the file after ${
        (rest / 1000).toFixed(2)
      } s; the whole download (48 MiB at ${RATE / MiB} MiB/s) took ${(full / 1000).toFixed(1)} s: ${
        (firstByte / full * 100).toFixed(1)
      }%`,
    );
    assert.ok(
      firstByte < full * 0.2,
      `first byte after ${firstByte.toFixed(0)} ms of a ${full.toFixed(0)} ms download`,
    );
  },
});

Deno.test({
  name: "a reader from the start keeps pace with the seeder",
  ignore: needs("libtorrent"),
  async fn() {
    const movie = payload(48 * MiB, 6);
    await using lab = await streamingLab("pace", [{ path: "movie.mp4", data: movie }], {
      rate: RATE,
      pieceLength: PIECE,
    });
    const res = await fetch(lab.url("movie.mp4"));
    const reader = res.body!.getReader();
    let read = 0, bad = -1;
    const marks: { t: number; read: number; have: number }[] = [];
    const t0 = performance.now();
    let next = 0;
    await within(
      120_000,
      "the whole file over HTTP",
      (async () => {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          if (bad < 0 && !equalBytes(value, movie.subarray(read, read + value.length))) bad = read;
          read += value.length;
          const have = lab.progress() * movie.length;
          if (read >= next) {
            marks.push({ t: performance.now() - t0, read, have });
            next += 4 * MiB;
          }
        }
      })(),
    );
    const total = performance.now() - t0;
    assert.equal(read, movie.length);
    assert.equal(bad, -1, "every byte as seeded");
    // the reader is never far behind what has arrived: what is verified is what it reads next
    const lag = Math.max(...marks.map((m) => m.have - m.read));
    const mid = marks.find((m) => m.read >= movie.length / 2)!;
    const rate = (movie.length - marks[1].read) / ((total - marks[1].t) / 1000);
    console.log(
      `sequential read of 48 MiB: ${(total / 1000).toFixed(1)} s, ${
        (rate / MiB).toFixed(2)
      } MiB/s ` +
        `after the first 4 MiB (the seeder sends ${RATE / MiB} MiB/s); half of it read after ${
          (mid.t / 1000).toFixed(1)
        } s; the reader at most ${(lag / MiB).toFixed(1)} MiB behind the verified data`,
    );
    assert.ok(lag < 12 * MiB, `the reader fell ${lag} bytes behind the download`);
    assert.ok(rate > RATE * 0.7, `read at ${rate} bytes/s`);
  },
});
