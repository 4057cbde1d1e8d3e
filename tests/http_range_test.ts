import assert from "node:assert/strict";
import { ifRangeHits, matchHits, noneMatchHits, parseRange } from "../src/http/range.ts";

Deno.test("parseRange() reads single ranges, open ends and suffixes against the length", () => {
  const cases: [string, number, ReturnType<typeof parseRange>][] = [
    ["bytes=0-99", 1000, { start: 0, end: 100 }],
    ["bytes=1000-", 5000, { start: 1000, end: 5000 }],
    ["bytes=-500", 5000, { start: 4500, end: 5000 }],
    ["bytes=-5000", 100, { start: 0, end: 100 }],
    ["bytes=10-10", 100, { start: 10, end: 11 }],
    ["bytes=90-1000", 100, { start: 90, end: 100 }],
    ["Bytes = 0 - 9 ", 100, { start: 0, end: 10 }],
    ["bytes=99-", 100, { start: 99, end: 100 }],
  ];
  for (const [header, length, want] of cases) {
    assert.deepEqual(parseRange(header, length), want, header);
  }
});

Deno.test("parseRange() coalesces several ranges into one covering them, skipping unsatisfiable ones", () => {
  assert.deepEqual(parseRange("bytes=0-9,20-29", 100), { start: 0, end: 30 });
  assert.deepEqual(parseRange("bytes=50-59, -10", 100), { start: 50, end: 100 });
  assert.deepEqual(parseRange("bytes=500-,0-0", 100), { start: 0, end: 1 });
  assert.deepEqual(parseRange("bytes=0-1,,5-6", 100), { start: 0, end: 7 });
});

Deno.test("parseRange() says unsatisfiable for ranges past the end, and ignores malformed headers", () => {
  assert.equal(parseRange("bytes=100-", 100), "unsatisfiable");
  assert.equal(parseRange("bytes=100-200,300-", 100), "unsatisfiable");
  assert.equal(parseRange("bytes=-0", 100), "unsatisfiable");
  assert.equal(parseRange("bytes=0-", 0), "unsatisfiable");
  assert.equal(parseRange("bytes=-10", 0), "unsatisfiable");
  for (
    const bad of [
      "bytes=5-2",
      "bytes=abc",
      "bytes=",
      "bytes=1-2-3",
      "bytes=-",
      "bytes=0x10-",
      "bytes=1.5-2",
      "bytes=+1-2",
      "items=0-9",
      "0-9",
      "bytes=" + "0-1,".repeat(200),
      "bytes=0-" + "9".repeat(5000),
    ]
  ) assert.equal(parseRange(bad, 100), undefined, bad.slice(0, 40));
  assert.equal(parseRange(null, 100), undefined);
});

Deno.test("entity-tag comparisons: If-None-Match weak, If-Match and If-Range strong", () => {
  const tag = `"abc-0-10"`;
  assert.ok(noneMatchHits(tag, tag));
  assert.ok(noneMatchHits(`W/${tag}`, tag));
  assert.ok(noneMatchHits(`"x", ${tag}`, tag));
  assert.ok(noneMatchHits("*", tag));
  assert.ok(!noneMatchHits(`"abc-0-11"`, tag));
  assert.ok(matchHits(tag, tag));
  assert.ok(matchHits("*", tag));
  assert.ok(!matchHits(`W/${tag}`, tag));
  assert.ok(ifRangeHits(` ${tag} `, tag));
  assert.ok(!ifRangeHits(`W/${tag}`, tag));
  assert.ok(!ifRangeHits("Tue, 01 Dec 2026 00:00:00 GMT", tag));
});
