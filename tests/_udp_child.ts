// Run with --unstable-net by udp_test.ts: both UDP implementations exchange datagrams, and a DHT runs on
// Deno.listenDatagram sockets. Prints "ok" when everything worked; throws otherwise.

import assert from "node:assert/strict";
import { Dht } from "../src/dht/dht.ts";
import { hasDenoDatagram, openUdpSocket, type UdpSocket } from "../src/udp.ts";

function next(sock: UdpSocket): Promise<{ text: string; port: number }> {
  return new Promise((resolve) => {
    const off = sock.onMessage((d) => {
      off();
      resolve({ text: new TextDecoder().decode(d.data), port: d.port });
    });
  });
}

assert.ok(hasDenoDatagram(), "Deno.listenDatagram is missing under --unstable-net");
for (const [family, host] of [[4, "127.0.0.1"], [6, "::1"]] as const) {
  const deno = await openUdpSocket({ family, host }); // auto: Deno's API
  const node = await openUdpSocket({ family, host, implementation: "node" });
  const got = next(node);
  await deno.send(new TextEncoder().encode("from deno"), host, node.port);
  assert.deepEqual(await got, { text: "from deno", port: deno.port });
  const back = next(deno);
  await node.send(new TextEncoder().encode("from node"), host, deno.port);
  assert.deepEqual(await back, { text: "from node", port: node.port });
  deno.close();
  node.close();
}
const first = await Dht.open({ host: "127.0.0.1", bootstrap: [], queryTimeoutMs: 500 });
const rest = await Promise.all(
  Array.from(
    { length: 9 },
    () =>
      Dht.open({ host: "127.0.0.1", bootstrap: [`127.0.0.1:${first.port}`], queryTimeoutMs: 500 }),
  ),
);
await Promise.all(rest.map((d) => d.bootstrapped));
const ih = crypto.getRandomValues(new Uint8Array(20));
await rest[2].lookup(ih, { announcePort: 9999 });
assert.deepEqual(await rest[7].lookup(ih), [{ host: "127.0.0.1", port: 9999 }]);
await Promise.all([first, ...rest].map((d) => d.close()));
console.log("ok");
