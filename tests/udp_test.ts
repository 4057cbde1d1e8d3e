// The UDP socket interface: node:dgram by default, Deno.listenDatagram when Deno runs with --unstable-net.

import assert from "node:assert/strict";
import { hasDenoDatagram, openUdpSocket } from "../src/udp.ts";
import { within } from "./_swarm.ts";

Deno.test("without --unstable-net the node:dgram implementation is chosen, and asking for Deno's fails clearly", async () => {
  assert.equal(hasDenoDatagram(), false);
  await assert.rejects(
    openUdpSocket({ host: "127.0.0.1", implementation: "deno" }),
    /needs --unstable-net/,
  );
  const sock = await openUdpSocket({ host: "127.0.0.1" });
  assert.ok(sock.port > 0);
  sock.close();
});

Deno.test("with --unstable-net Deno.listenDatagram is used: it talks to node:dgram sockets and carries a DHT", async () => {
  const child = new URL("./_udp_child.ts", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--unstable-net", "-A", child],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  assert.equal(new TextDecoder().decode(out.stdout).trim(), "ok", stderr);
});

Deno.test("node:dgram sockets deliver datagrams whole up to 8 KiB (each is read into a smaller buffer than 64 KiB)", async () => {
  const a = await openUdpSocket({ host: "127.0.0.1" });
  const b = await openUdpSocket({ host: "127.0.0.1" });
  try {
    const sizes = [1, 1400, 4096, 8000];
    const got: Uint8Array[] = [];
    const all = Promise.withResolvers<void>();
    b.onMessage((d) => {
      got.push(d.data.slice());
      if (got.length === sizes.length) all.resolve();
    });
    for (const n of sizes) {
      await a.send(
        Uint8Array.from({ length: n }, (_, i) => (i * 7 + n) & 0xff),
        "127.0.0.1",
        b.port,
      );
    }
    await within(5000, "the datagrams", all.promise);
    got.sort((x, y) => x.length - y.length);
    for (const [i, n] of sizes.entries()) {
      assert.deepEqual(got[i], Uint8Array.from({ length: n }, (_, k) => (k * 7 + n) & 0xff));
    }
  } finally {
    a.close();
    b.close();
  }
});
