// Worker side of PieceHasher: SHA-1 of transferred piece buffers, on its own thread. Buffers come and go
// back by transfer (no copies).
/// <reference lib="deno.worker" />

self.onmessage = async (e: MessageEvent<{ id: number; buf: ArrayBuffer; length: number }>) => {
  const { id, buf, length } = e.data;
  const digest = await crypto.subtle.digest("SHA-1", new Uint8Array(buf, 0, length));
  self.postMessage({ id, buf, digest }, [buf, digest]);
};
