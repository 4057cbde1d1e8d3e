import assert from "node:assert/strict";
import { concat, fromHex, toHex, utf8 } from "../src/_bytes.ts";
import { acceptConnection, Rc4 } from "../src/wire/mse.ts";
import { encodeHandshake } from "../src/wire/handshake.ts";
import { pipePair } from "./_swarm.ts";

// An MSE initiator written from the spec, to drive the responder: Ya + pad, then req1, req2^req3, and the
// RC4-encrypted VC / crypto_provide / pad / initial payload.
const P = BigInt(
  "0xFFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563",
);
const modPow = (b: bigint, e: bigint, m: bigint) => {
  let r = 1n;
  for (b %= m; e > 0n; e >>= 1n, b = b * b % m) if (e & 1n) r = r * b % m;
  return r;
};
const big = (x: Uint8Array) => BigInt("0x" + toHex(x));
const bytes96 = (n: bigint) => fromHex(n.toString(16).padStart(192, "0"))!;
const sha1 = async (...p: Uint8Array[]) =>
  new Uint8Array(await crypto.subtle.digest("SHA-1", concat(p)));

async function initiate(
  side: { readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array> },
  infoHash: Uint8Array,
  provide: number,
  payload: Uint8Array,
) {
  const w = side.writable.getWriter(), r = side.readable.getReader();
  const xa = big(crypto.getRandomValues(new Uint8Array(20)));
  w.write(concat([bytes96(modPow(2n, xa, P)), new Uint8Array(33).fill(7)])).catch(() => {});
  let buf = new Uint8Array(0);
  while (buf.length < 96) buf = concat([buf, (await r.read()).value!]);
  const s = bytes96(modPow(big(buf.subarray(0, 96)), xa, P));
  buf = buf.subarray(96);
  const enc = new Rc4(await sha1(utf8("keyA"), s, infoHash));
  const keyB = await sha1(utf8("keyB"), s, infoHash);
  const dec = new Rc4(keyB);
  const req2 = await sha1(utf8("req2"), infoHash), req3 = await sha1(utf8("req3"), s);
  const head = new Uint8Array(8 + 4 + 2 + 2);
  head[11] = provide;
  head[15] = payload.length; // len(IA) (short payloads only)
  head[14] = payload.length >> 8;
  const secret = concat([head, payload]);
  enc.process(secret);
  w.write(concat([await sha1(utf8("req1"), s), req2.map((b, i) => b ^ req3[i]), secret])).catch(
    () => {},
  );
  return { w, r, enc, dec, buf, keyB };
}

Deno.test("a plain BitTorrent handshake passes through acceptConnection untouched", async () => {
  const { a, b } = pipePair();
  const hs = encodeHandshake({ infoHash: new Uint8Array(20).fill(1), peerId: new Uint8Array(20) });
  const w = a.writable.getWriter();
  const writing = w.write(hs);
  const accepted = await acceptConnection(b, [new Uint8Array(20).fill(1)]);
  await writing;
  assert.equal(accepted.mode, "plaintext");
  const got = await accepted.stream.readable.getReader().read();
  assert.deepEqual(got.value, hs);
  await w.close();
  await a.readable.cancel();
});

for (const [provide, mode] of [[0x03, "mse-plaintext"], [0x02, "rc4"]] as const) {
  Deno.test(`an MSE handshake offering ${provide === 3 ? "plaintext and RC4" : "RC4 only"} is answered (${mode})`, async () => {
    const { a, b } = pipePair();
    const infoHash = new Uint8Array(20).fill(9);
    const ia = encodeHandshake({ infoHash, peerId: new Uint8Array(20).fill(5) });
    const [side, accepted] = await Promise.all([
      initiate(a, infoHash, provide, ia),
      acceptConnection(b, [new Uint8Array(20), infoHash]),
    ]);
    assert.equal(accepted.mode, mode);
    // our side sees the initial payload (the BitTorrent handshake) decrypted
    const reader = accepted.stream.readable.getReader();
    assert.deepEqual((await reader.read()).value, ia);
    // the reply is VC + crypto_select, encrypted with keyB, after a random PadB: find the encrypted VC
    const vc = new Uint8Array(8);
    new Rc4(side.keyB).process(vc);
    let buf = side.buf;
    let at = -1;
    while (at < 0) {
      for (let i = 0; i + 14 <= buf.length; i++) {
        if (vc.every((v, k) => buf[i + k] === v)) {
          at = i;
          break;
        }
      }
      if (at < 0) buf = concat([buf, (await side.r.read()).value!]);
    }
    const reply = buf.slice(at, at + 14);
    side.dec.process(reply);
    assert.deepEqual([...reply.subarray(0, 8)], [0, 0, 0, 0, 0, 0, 0, 0]);
    assert.equal(reply[11], mode === "rc4" ? 0x02 : 0x01);
    // data after the handshake flows both ways, encrypted only in RC4 mode
    const message = new Uint8Array([0, 0, 0, 1, 2]);
    const out = message.slice();
    if (mode === "rc4") side.enc.process(out);
    const sent = side.w.write(out);
    assert.deepEqual((await reader.read()).value, message);
    await sent;
    await side.w.close();
    await reader.cancel();
    await side.r.cancel();
    await accepted.stream.writable.close().catch(() => {});
  });
}

Deno.test("an MSE handshake for a torrent we do not serve is refused", async () => {
  const { a, b } = pipePair();
  const [, err] = await Promise.all([
    initiate(a, new Uint8Array(20).fill(3), 0x03, new Uint8Array(0)).catch(() => undefined),
    acceptConnection(b, [new Uint8Array(20).fill(4)]).then(() => undefined, (e) => e),
  ]);
  assert.match(String(err), /torrent we do not serve/);
  await a.writable.close().catch(() => {});
  await a.readable.cancel().catch(() => {});
});

Deno.test("garbage that is neither handshake times out or fails, never hangs", async () => {
  const { a, b } = pipePair();
  const w = a.writable.getWriter();
  w.write(new Uint8Array(200).fill(0x41)).catch(() => {});
  const err = await acceptConnection(b, [new Uint8Array(20)], { timeoutMs: 100 }).then(
    () => undefined,
    (e) => e,
  );
  assert.match(String(err), /timed out|invalid|req1/);
  await w.close().catch(() => {});
  await a.readable.cancel().catch(() => {});
});

Deno.test("RC4 decrypts what it encrypted with the same key", () => {
  const key = new Uint8Array([1, 2, 3, 4, 5]);
  const data = utf8("attack at dawn, attack at dawn!!");
  const x = data.slice();
  new Rc4(key).process(x);
  assert.notDeepEqual(x, data);
  new Rc4(key).process(x);
  assert.deepEqual(x, data);
});
