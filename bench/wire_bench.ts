// deno bench: decoding a stream of 16 KiB piece messages, and encoding requests.
import { FrameParser } from "../src/wire/frame_decoder.ts";
import { encodePiece, writeBlockMessage } from "../src/wire/messages.ts";

const BLOCK = 16384;
const COUNT = 1024; // 16 MiB of piece messages per iteration
const one = encodePiece(1, 0, new Uint8Array(BLOCK).fill(7));
const stream = new Uint8Array(one.length * COUNT);
for (let i = 0; i < COUNT; i++) stream.set(one, i * one.length);
// as a socket delivers it: 64 KiB reads that cut frames anywhere
const chunks: Uint8Array[] = [];
for (let off = 0; off < stream.length; off += 65536) chunks.push(stream.subarray(off, off + 65536));

Deno.bench({
  name: "frame parser: 16 MiB of 16 KiB piece messages in 64 KiB chunks",
  group: "wire",
  baseline: true,
  fn() {
    const parser = new FrameParser();
    let bytes = 0;
    for (const c of chunks) parser.push(c, (f) => (bytes += f.length));
    if (bytes !== COUNT * (BLOCK + 9)) throw new Error("lost bytes");
  },
});

Deno.bench({
  name: "frame parser: the same stream in 256 KiB chunks",
  group: "wire",
  fn() {
    const parser = new FrameParser();
    for (let off = 0; off < stream.length; off += 262144) {
      parser.push(stream.subarray(off, off + 262144), () => {});
    }
  },
});

const requests = new Uint8Array(17 * 256);
Deno.bench({
  name: "encode 256 requests into one buffer",
  group: "encode",
  fn() {
    let off = 0;
    for (let i = 0; i < 256; i++) {
      off = writeBlockMessage(requests, off, 6, i >> 6, (i & 63) * BLOCK, BLOCK);
    }
  },
});
