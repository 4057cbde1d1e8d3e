// deno bench: the RC4 of protocol encryption (MSE), alone and as a connection's stream over loopback TCP, against
// the same connection in plaintext. MB/s = the iteration's bytes / its average time.
import { acceptConnection, initiateConnection, Rc4 } from "../src/wire/mse.ts";
import type { PeerStream } from "../src/wire/stream.ts";

const KEY = new Uint8Array(20).fill(3);
const CHUNK = 256 * 1024;
const src = new Uint8Array(CHUNK).fill(7), dst = new Uint8Array(CHUNK);
const rc4 = new Rc4(KEY);

Deno.bench({
  name: "Rc4.process 256 KiB into another buffer",
  group: "rc4",
  baseline: true,
  fn() {
    rc4.process(src, dst);
  },
});

Deno.bench({
  name: "Rc4.process 256 KiB in place",
  group: "rc4",
  fn() {
    rc4.process(dst);
  },
});

Deno.bench({
  name: "Rc4.process 16 KiB + 13 (one piece message)",
  group: "rc4",
  fn() {
    rc4.process(src.subarray(0, 16397), dst);
  },
});

Deno.bench({
  name: "MSE handshake, both roles (4 modPow, 7 SHA-1) over an in-memory pipe",
  group: "handshake",
  async fn() {
    const ab = new TransformStream<Uint8Array, Uint8Array>();
    const ba = new TransformStream<Uint8Array, Uint8Array>();
    const [a, b] = await Promise.all([
      initiateConnection({ readable: ba.readable, writable: ab.writable }, KEY),
      acceptConnection({ readable: ab.readable, writable: ba.writable }, [KEY]),
    ]);
    for (const s of [a.stream, b.stream]) {
      await s.writable.abort().catch(() => {});
      await s.readable.cancel().catch(() => {});
    }
  },
});

// a loopback connection through the negotiated streams: 16 MiB written in 256 KiB writes, read with BYOB
const TOTAL = 16 * 1024 * 1024;
async function connected(rc4Only: boolean): Promise<{ a: PeerStream; b: PeerStream }> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [a, b] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }).then((c) =>
      initiateConnection(c, KEY, { rc4Only })
    ),
    listener.accept().then((c) => acceptConnection(c, [KEY])),
  ]);
  listener.close();
  return { a: a.stream, b: b.stream };
}

async function raw(): Promise<{ a: PeerStream; b: PeerStream }> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [a, b] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
    listener.accept(),
  ]);
  listener.close();
  return { a, b };
}

for (const mode of ["raw", "plaintext", "rc4"] as const) {
  const { a, b } = mode === "raw" ? await raw() : await connected(mode === "rc4");
  const writer = a.writable.getWriter();
  const reader = b.readable.getReader({ mode: "byob" });
  let buffer = new ArrayBuffer(256 * 1024);
  Deno.bench({
    name: mode === "raw"
      ? "16 MiB through a loopback Deno.Conn (no MSE, no wrapper)"
      : `16 MiB through a loopback connection after MSE (${mode === "rc4" ? "RC4" : "plaintext"})`,
    group: "stream",
    baseline: mode === "raw",
    async fn() {
      const writing = (async () => {
        for (let at = 0; at < TOTAL; at += CHUNK) await writer.write(src);
      })();
      let got = 0;
      while (got < TOTAL) {
        const r = await reader.read(new Uint8Array(buffer));
        if (r.done) throw new Error("closed");
        got += r.value.length;
        buffer = r.value.buffer as ArrayBuffer;
      }
      await writing;
    },
  });
}
