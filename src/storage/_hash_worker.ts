// Worker side of PieceHasher: SHA-1 of transferred piece buffers, on its own thread. Buffers come and go
// back by transfer. node:crypto's SHA-1 is synchronous and faster than Web Crypto's here (bench/hashcheck).
/// <reference lib="deno.worker" />

import { createHash } from "node:crypto";

self.onmessage = (e: MessageEvent<{ id: number; buf: ArrayBuffer; length: number }>) => {
  const { id, buf, length } = e.data;
  const d = createHash("sha1").update(new Uint8Array(buf, 0, length)).digest();
  const digest = new Uint8Array(d.buffer, d.byteOffset, d.byteLength).slice().buffer;
  self.postMessage({ id, buf, digest }, [buf, digest]);
};
