// deno bench: uTP between two endpoints in this process over real loopback UDP (both ends' CPU counted): 16 MiB
// one way, written in 256 KiB chunks and read with a BYOB reader, as the wire code does.
import { type UtpConnection, UtpEndpoint } from "../src/transport/utp.ts";

const MIB = 16;
const chunk = new Uint8Array(256 * 1024).fill(7);

async function transfer(): Promise<void> {
  const accepted = Promise.withResolvers<UtpConnection>();
  await using server = await UtpEndpoint.open({
    host: "127.0.0.1",
    onConnection: (c) => accepted.resolve(c),
  });
  await using client = await UtpEndpoint.open({ host: "127.0.0.1" });
  const a = await client.connect("127.0.0.1", server.port);
  const b = await accepted.promise;
  const sending = (async () => {
    const w = a.writable.getWriter();
    for (let i = 0; i < MIB * 4; i++) await w.write(chunk);
    await w.close();
  })();
  let got = 0;
  const r = b.readable.getReader({ mode: "byob" });
  let buf = new ArrayBuffer(256 * 1024);
  for (;;) {
    const { done, value } = await r.read(new Uint8Array(buf));
    if (done || !value) break;
    got += value.length;
    buf = value.buffer as ArrayBuffer;
  }
  await sending;
  if (got !== MIB << 20) throw new Error(`got ${got} bytes`);
}

Deno.bench({
  name: `uTP: ${MIB} MiB over loopback UDP between two endpoints`,
  group: "utp",
  n: 5,
  warmup: 1,
  fn: transfer,
});
