// scratch: 64 MiB one way between two endpoints in this process over real loopback UDP
import { UtpEndpoint, type UtpConnection } from "../src/transport/utp.ts";
const MiB = Number(Deno.args[0] ?? 64);
const accepted = Promise.withResolvers<UtpConnection>();
const server = await UtpEndpoint.open({ host: "127.0.0.1", onConnection: (c) => accepted.resolve(c) });
const client = await UtpEndpoint.open({ host: "127.0.0.1" });
const cpu = () => { const s = Deno.readTextFileSync("/proc/self/stat").split(") ")[1].split(" "); return (Number(s[11]) + Number(s[12])) / 100; };
const c0 = cpu(), t0 = performance.now();
const a = await client.connect("127.0.0.1", server.port);
const b = await accepted.promise;
const chunk = new Uint8Array(256 * 1024).fill(7);
const send = (async () => { const w = a.writable.getWriter(); for (let i = 0; i < MiB * 4; i++) await w.write(chunk); await w.close(); })();
let got = 0;
const r = b.readable.getReader({ mode: "byob" });
let buf = new ArrayBuffer(256 * 1024);
for (;;) { const { done, value } = await r.read(new Uint8Array(buf)); if (done) break; got += value!.length; buf = value!.buffer as ArrayBuffer; }
await send;
const s = (performance.now() - t0) / 1000, c = cpu() - c0;
console.log(`${MiB} MiB in ${s.toFixed(2)} s = ${(MiB / s).toFixed(1)} MiB/s; CPU ${c.toFixed(2)} s = ${(c / MiB * 1024).toFixed(1)} s/GiB (both ends)`);
console.log("sender", JSON.stringify(a.stats()));
console.log("receiver", JSON.stringify(b.stats()));
a.close(); b.close();
await client.close(); await server.close();
