// The UDP socket interface: node:dgram by default, Deno.listenDatagram when Deno runs with --unstable-net.

import assert from "node:assert/strict";
import { hasDenoDatagram, openUdpSocket } from "../src/udp.ts";

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
