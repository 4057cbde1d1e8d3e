import assert from "node:assert/strict";
import { fromHex } from "../src/_bytes.ts";
import { clientFromPeerId, describePeerClient, makePeerId } from "../src/peer_id.ts";
import { VERSION } from "../src/version.ts";

// Peer ids seen on real connections (handshakes read by a PeerConnection on loopback, 2026-11-30), with the
// `v` of the extension handshake each sent.
const OBSERVED = [
  {
    client: "libtorrent 2.0.8 (python3-libtorrent)",
    id: "2d4c54323038302d53612e715333756b41524f57", // -LT2080-Sa.qS3ukAROW
    name: "libtorrent 2.0.8",
    v: "libtorrent/2.0.8.0",
  },
  {
    client: "aria2 1.36.0",
    id: "41322d312d33362d302da98f2ba00b40bf7e6a56", // A2-1-36-0- + 10 random bytes
    name: "aria2 1.36.0",
    v: "aria2/1.36.0",
  },
  {
    client: "qBittorrent 4.5.2 (qbittorrent-nox)",
    id: "2d7142343532302d6e43213168217562552a5059", // -qB4520-nC!1h!ubU*PY
    name: "qBittorrent 4.5.2",
    v: "qBittorrent/4.5.2",
  },
  {
    client: "Transmission 3.00 (transmission-daemon)",
    id: "2d5452333030302d693162793639397a79713078", // -TR3000-i1by699zyq0x
    name: "Transmission 3.00",
    v: "Transmission 3.00",
  },
  {
    client: "WebTorrent 3.0.21 (npm webtorrent, which sends no `v`)",
    id: "2d5757303330302d4d64715236384e4d6e505a78", // -WW0300-MdqR68NMnPZx
    name: "WebTorrent 3.0",
    v: undefined,
  },
];

for (const o of OBSERVED) {
  Deno.test(`clientFromPeerId names ${o.client} from the id it really sends`, () => {
    const id = fromHex(o.id)!;
    assert.equal(clientFromPeerId(id), o.name);
    assert.equal(describePeerClient(id, o.v), o.v ?? o.name);
    assert.equal(describePeerClient(id), o.name);
  });
}

Deno.test("clientFromPeerId names our own peer id", () => {
  assert.equal(clientFromPeerId(makePeerId()), `Seedbed ${VERSION}`);
});

const id = (text: string) => new TextEncoder().encode(text.padEnd(20, "x"));

Deno.test("clientFromPeerId decodes each convention's version digits", () => {
  const cases: [string, string | undefined][] = [
    // libtorrent: 0-9 then A-Z for 10-35; a fourth digit other than 0 is shown
    ["-LT12A0-", "libtorrent 1.2.10"],
    ["-LT2081-", "libtorrent 2.0.8.1"],
    ["-qB46A0-", "qBittorrent 4.6.10"],
    ["-qB5000-", "qBittorrent 5.0.0"],
    ["-lt0D80-", "libTorrent (rakshasa) 0.13.8"],
    ["-UT355W-", "µTorrent 3.5.5"],
    ["-DE211s-", "Deluge 2.1.1"],
    // Transmission: 0.6, 0.72, 1.33 (+ for a development build), then 4.0.6
    ["-TR0006-", "Transmission 0.6"],
    ["-TR0072-", "Transmission 0.72"],
    ["-TR133Z-", "Transmission 1.33+"],
    ["-TR2940-", "Transmission 2.94"],
    ["-TR4060-", "Transmission 4.0.6"],
    ["-TR400X-", "Transmission 4.0.0 beta"],
    ["-WW0105-", "WebTorrent 1.5"],
    ["-WD0012-", "WebTorrent Desktop 0.12"],
    ["-AZ5770-", "Vuze 5.7.7.0"],
    ["-BI3610-", "BiglyBT 3.6.1.0"],
    ["-BC0200-", "BitComet 2.00"],
    // a known client whose version does not decode: the name alone
    ["-TR3#00-", "Transmission"],
    // Mainline and aria2: dash-separated numbers
    ["M7-2-0--", "Mainline 7.2.0"],
    ["M4-20-8-", "Mainline 4.20.8"],
    ["A2-1-36-0-", "aria2 1.36.0"],
    // Shadow style: 0-9, A-Z = 10-35, a-z = 36-61
    ["T03I-----", "BitTornado 0.3.18"],
    ["S58B-----", "Shadow 5.8.11"],
    ["A310-----", "ABC 3.1.0"],
    // unknown
    ["-ZZ1234-", undefined],
    ["-LT2080", undefined],
    ["Txx", undefined],
  ];
  for (const [text, name] of cases) assert.equal(clientFromPeerId(id(text)), name, text);
  assert.equal(clientFromPeerId(new Uint8Array(20)), undefined);
  assert.equal(clientFromPeerId(new Uint8Array(3)), undefined);
  assert.equal(
    clientFromPeerId(crypto.getRandomValues(new Uint8Array(20)).fill(0x41, 0, 1)),
    undefined,
  );
});

Deno.test("describePeerClient escapes what a hostile peer puts in `v` and bounds it", () => {
  const lt = fromHex(OBSERVED[0].id)!;
  assert.equal(
    describePeerClient(lt, "Bad\r\n[INFO] forged line"),
    "Bad\\x0d\\x0a[INFO] forged line",
  );
  assert.equal(describePeerClient(lt, "abc\u202edcba"), "abc\\x202edcba");
  assert.equal(describePeerClient(lt, "\x1b[31mred"), "\\x1b[31mred");
  const long = describePeerClient(lt, "X".repeat(500));
  assert.equal(long, "X".repeat(64) + "…");
  // empty, blank or letterless: the peer id decides
  assert.equal(describePeerClient(lt, ""), "libtorrent 2.0.8");
  assert.equal(describePeerClient(lt, "   "), "libtorrent 2.0.8");
  assert.equal(describePeerClient(lt, "1234"), "libtorrent 2.0.8");
  // nothing known
  assert.equal(describePeerClient(id("-ZZ1234-")), "unknown (-ZZ1234-)");
  assert.equal(describePeerClient(id("-Z\n1234-")), "unknown (-Z\\x0a1234-)");
  assert.equal(describePeerClient(new Uint8Array(20)), "unknown");
  assert.equal(describePeerClient(undefined), "unknown");
  assert.equal(describePeerClient(undefined, "Tixati 3.19"), "Tixati 3.19");
});
