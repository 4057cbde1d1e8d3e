import assert from "node:assert/strict";
import { checkHost, hostAllowed } from "../src/http/host_check.ts";

Deno.test("hostAllowed() allows IP literals, v4 and bracketed v6, with or without port", () => {
  for (
    const host of [
      "127.0.0.1",
      "127.0.0.1:8888",
      "192.168.1.20:80",
      "10.0.0.1",
      "[::1]",
      "[::1]:8888",
      "[fe80::1]:9091",
      "[::ffff:127.0.0.1]:8888",
      "127.1:8888", // what the URL parser reads as 127.0.0.1: still no DNS involved
      "0x7f.0.0.1",
    ]
  ) assert.ok(hostAllowed(host), host);
});

Deno.test("hostAllowed() allows localhost in any case, with trailing dot, and names under .localhost", () => {
  for (
    const host of ["localhost", "localhost:8888", "LOCALHOST:1", "localhost.:8888", "a.localhost"]
  ) {
    assert.ok(hostAllowed(host), host);
  }
});

Deno.test("hostAllowed() refuses names that are not on the list (the DNS-rebinding attack)", () => {
  for (
    const host of [
      "evil.example",
      "evil.example:8888",
      "127.0.0.1.evil.example",
      "localhost.evil.example",
      "evilocalhost",
      "1.2.3.4.5",
      "",
      ":8888",
      "evil.example:8888:1",
      "a@127.0.0.1",
      "evil.example/127.0.0.1",
      "evil.example 127.0.0.1",
      "[not-v6]",
      "[::1",
    ]
  ) assert.ok(!hostAllowed(host), JSON.stringify(host));
  assert.ok(!hostAllowed(null), "a missing Host header");
});

Deno.test("hostAllowed() allows names on the list, case-insensitively, and *.suffix wildcards", () => {
  const options = { allowedHosts: ["media.lan", "*.home.arpa", "Bücher.Example"] };
  assert.ok(hostAllowed("media.lan:8888", options));
  assert.ok(hostAllowed("MEDIA.LAN", options));
  assert.ok(hostAllowed("media.lan.", options));
  assert.ok(hostAllowed("tv.home.arpa:8888", options));
  assert.ok(hostAllowed("a.b.home.arpa", options));
  assert.ok(!hostAllowed("home.arpa", options), "the wildcard needs a label before the suffix");
  assert.ok(!hostAllowed("evilhome.arpa", options));
  assert.ok(!hostAllowed("media.lan.evil.example", options));
  assert.ok(!hostAllowed("other.lan", options));
  // IDNA: the browser sends punycode, the list may hold either form
  assert.ok(hostAllowed("xn--bcher-kva.example:8888", options));
  assert.ok(hostAllowed("bücher.example", options));
});

Deno.test('hostAllowed() with "*" on the list allows everything', () => {
  assert.ok(hostAllowed("evil.example", { allowedHosts: ["*"] }));
  assert.ok(hostAllowed(null, { allowedHosts: ["*"] }));
});

Deno.test("checkHost() answers 421 Misdirected Request, or undefined to go on", async () => {
  const req = (host: string) => new Request("http://127.0.0.1/", { headers: { host } });
  assert.equal(checkHost(req("127.0.0.1:8888")), undefined);
  assert.equal(checkHost(req("tv.lan"), { allowedHosts: ["tv.lan"] }), undefined);
  const res = checkHost(req("evil.example:8888"));
  assert.ok(res);
  assert.equal(res.status, 421);
  assert.equal(res.headers.get("content-type"), "text/plain; charset=utf-8");
  assert.match(await res.text(), /does not answer to Host "evil\.example:8888"/);
});
