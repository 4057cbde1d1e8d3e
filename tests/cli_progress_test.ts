import assert from "node:assert/strict";
import { formatBytes, formatDuration, formatProgress } from "../src/cli/progress.ts";
import { parsePeerAddress, parseSelection, UsageError } from "../src/cli/download.ts";

Deno.test("formatBytes() uses binary units with three significant digits", () => {
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(1023), "1023 B");
  assert.equal(formatBytes(1536), "1.50 KiB");
  assert.equal(formatBytes(12.34 * 1024 * 1024), "12.3 MiB");
  assert.equal(formatBytes(256 * 1024 ** 3), "256 GiB");
  assert.equal(formatBytes(-1), "?");
});

Deno.test("formatDuration() is compact and gives up on absurd values", () => {
  assert.equal(formatDuration(45), "45s");
  assert.equal(formatDuration(185), "3m05s");
  assert.equal(formatDuration(2 * 3600 + 3 * 60), "2h03m");
  assert.equal(formatDuration(Infinity), "--");
});

Deno.test("formatProgress() shows percent, sizes, speeds, peers and ETA", () => {
  const line = formatProgress({
    have: 512 * 1024 * 1024,
    total: 1024 * 1024 * 1024,
    down: 100 * 1024 * 1024,
    up: 0,
    unchoked: 1,
    peers: 3,
  });
  assert.equal(line, "[ 50.0%] 512 MiB/1.00 GiB ↓ 100 MiB/s ↑ 0 B/s peers 1/3 ETA 5s");
});

Deno.test("formatProgress() shows verification progress while hash-checking", () => {
  const line = formatProgress({
    have: 0,
    total: 100,
    down: 0,
    up: 0,
    unchoked: 0,
    peers: 0,
    verifying: 0.42,
  });
  assert.match(line, /^\[verifying {2}42%\]/);
});

Deno.test("parseSelection() takes 1-based numbers and ranges", () => {
  assert.deepEqual([...parseSelection("1-3,7", 8)], [0, 1, 2, 6]);
  assert.throws(() => parseSelection("0", 3), UsageError);
  assert.throws(() => parseSelection("2-9", 3), /outside 1-3/);
  assert.throws(() => parseSelection("a", 3), UsageError);
});

Deno.test("parsePeerAddress() accepts host:port and [v6]:port", () => {
  assert.deepEqual(parsePeerAddress("127.0.0.1:6881"), { host: "127.0.0.1", port: 6881 });
  assert.deepEqual(parsePeerAddress("[::1]:51413"), { host: "::1", port: 51413 });
  assert.throws(() => parsePeerAddress("127.0.0.1"), UsageError);
  assert.throws(() => parsePeerAddress("h:70000"), UsageError);
});
