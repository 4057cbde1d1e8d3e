// Memory stays bounded under sustained attack: 300 hostile connections against one seeding Client (oversize
// frames, request floods, a million keep-alives, unrequested blocks, garbage), measured in a child process with
// the garbage collector exposed: the heap after the last round is within a few MiB of the heap after round 5.

import assert from "node:assert/strict";

Deno.test("memory stays bounded while a seeding Client fends off 300 hostile connections", async () => {
  const child = new URL("./_attack_child.ts", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--v8-flags=--expose-gc", child, "60"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  const r = JSON.parse(new TextDecoder().decode(out.stdout).trim());
  assert.equal(r.connections, 300);
  assert.equal(r.dropped, 300, "every hostile peer is dropped");
  const growth = (r.end.heap - r.warm.heap) / 2 ** 20;
  assert.ok(growth < 8, `heap grew ${growth.toFixed(1)} MiB over 55 rounds: ${JSON.stringify(r)}`);
  assert.ok(r.end.rss < 256 * 2 ** 20, `RSS ${r.end.rss} bytes`);
});
