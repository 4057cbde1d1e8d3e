/**
 * Peer ids: ours (Azureus style, `-SE0010-` + 12 random bytes).
 *
 * @module
 */

import { randomBytes } from "./_bytes.ts";
import { CLIENT_CODE, VERSION } from "./version.ts";

/**
 * A new Azureus-style peer id: `-SE` + four version digits + `-` + 12 random bytes.
 *
 * @example Make a peer id
 * ```ts
 * import { makePeerId } from "./peer_id.ts";
 * import assert from "node:assert/strict";
 *
 * const id = makePeerId();
 * assert.equal(id.length, 20);
 * assert.equal(new TextDecoder().decode(id.subarray(0, 8)), "-SE0010-");
 * ```
 *
 * @returns 20 bytes.
 */
export function makePeerId(): Uint8Array {
  const [major, minor, patch] = VERSION.split(".").map(Number);
  const prefix = `-${CLIENT_CODE}${major}${String(minor).padStart(2, "0")}${patch}-`;
  const id = new Uint8Array(20);
  id.set(new TextEncoder().encode(prefix));
  id.set(randomBytes(12), 8);
  return id;
}

/** How a client writes its version in an Azureus-style id (`-XXabcd-`). */
type VersionStyle =
  /** libtorrent's: four characters 0-9 A-Z (A = 10), shown a.b.c (.d when d is a digit other than 0) */
  | "lt"
  /** Transmission's: `-TR3000-` is 3.00 (up to 3.x), `-TR4060-` is 4.0.6 */
  | "tr"
  /** WebTorrent's: two two-digit numbers, `-WW0300-` is 3.0 */
  | "ww"
  /** four plain digits a.b.c.d (Azureus/Vuze, BiglyBT) */
  | "four"
  /** a two-digit minor: `-BC0200-` is 2.00 */
  | "minor2"
  /** ours: `-SE0010-` is 0.1.0 (major, two-digit minor, patch) */
  | "se";

/** Azureus-style client codes: the two characters after the dash, their name and version style. */
const AZUREUS: Record<string, [string, VersionStyle]> = {
  "7T": ["aTorrent", "lt"],
  AG: ["Ares", "lt"],
  "A~": ["Ares", "lt"],
  AR: ["Arctic", "lt"],
  AT: ["Artemis", "lt"],
  AX: ["BitPump", "lt"],
  AZ: ["Vuze", "four"],
  BB: ["BitBuddy", "lt"],
  BC: ["BitComet", "minor2"],
  BE: ["BareTorrent", "lt"],
  BF: ["Bitflu", "lt"],
  BG: ["BTG", "lt"],
  BI: ["BiglyBT", "four"],
  BL: ["BitCometLite", "minor2"],
  BN: ["Baidu Netdisk", "lt"],
  BP: ["BitTorrent Pro", "lt"],
  BR: ["BitRocket", "lt"],
  BS: ["BTSlave", "lt"],
  BT: ["BitTorrent", "lt"],
  BW: ["BitWombat", "lt"],
  BX: ["BittorrentX", "lt"],
  CD: ["Enhanced CTorrent", "lt"],
  CT: ["CTorrent", "lt"],
  DE: ["Deluge", "lt"],
  DP: ["Propagate Data Client", "lt"],
  EB: ["EBit", "lt"],
  ES: ["Electric Sheep", "lt"],
  FC: ["FileCroc", "lt"],
  FD: ["Free Download Manager", "lt"],
  FT: ["FoxTorrent", "lt"],
  FW: ["FrostWire", "lt"],
  FX: ["Freebox BitTorrent", "lt"],
  GS: ["GSTorrent", "lt"],
  HL: ["Halite", "lt"],
  HN: ["Hydranode", "lt"],
  KG: ["KGet", "lt"],
  KT: ["KTorrent", "lt"],
  LC: ["LeechCraft", "lt"],
  LH: ["LH-ABC", "lt"],
  LP: ["Lphant", "lt"],
  LT: ["libtorrent", "lt"],
  lt: ["libTorrent (rakshasa)", "lt"],
  LW: ["LimeWire", "lt"],
  MO: ["MonoTorrent", "lt"],
  MP: ["MooPolice", "lt"],
  MR: ["Miro", "lt"],
  MT: ["MoonlightTorrent", "lt"],
  NX: ["Net Transport", "lt"],
  OS: ["OneSwarm", "lt"],
  OT: ["OmegaTorrent", "lt"],
  PD: ["Pando", "lt"],
  PI: ["PicoTorrent", "lt"],
  qB: ["qBittorrent", "lt"],
  QD: ["QQDownload", "lt"],
  QT: ["Qt 4 Torrent example", "lt"],
  RT: ["Retriever", "lt"],
  SB: ["Swiftbit", "lt"],
  SD: ["Thunder", "lt"],
  SE: ["Seedbed", "se"],
  SM: ["SoMud", "lt"],
  SP: ["BitSpirit", "lt"],
  SS: ["SwarmScope", "lt"],
  ST: ["SymTorrent", "lt"],
  st: ["SharkTorrent", "lt"],
  SZ: ["Shareaza", "lt"],
  "S~": ["Shareaza", "lt"],
  TL: ["Tribler", "lt"],
  TN: ["TorrentDotNET", "lt"],
  TR: ["Transmission", "tr"],
  TS: ["Torrentstorm", "lt"],
  TT: ["TuoTu", "lt"],
  UL: ["uLeecher!", "lt"],
  UM: ["µTorrent Mac", "lt"],
  UT: ["µTorrent", "lt"],
  UW: ["µTorrent Web", "lt"],
  VG: ["Vagaa", "lt"],
  WD: ["WebTorrent Desktop", "ww"],
  WT: ["BitLet", "lt"],
  WW: ["WebTorrent", "ww"],
  WY: ["FireTorrent", "lt"],
  XF: ["Xfplay", "lt"],
  XL: ["Xunlei", "lt"],
  XS: ["XSwifter", "lt"],
  XT: ["XanTorrent", "lt"],
  XX: ["Xtorrent", "lt"],
  ZT: ["ZipTorrent", "lt"],
};

/** Shadow-style clients (`T03I-----`): the first character. */
const SHADOW: Record<string, string> = {
  A: "ABC",
  O: "Osprey Permaseed",
  Q: "BTQueue",
  R: "Tribler",
  S: "Shadow",
  T: "BitTornado",
  U: "UPnP NAT Bit Torrent",
};

/** A version character of libtorrent's fingerprint: 0-9, then A-Z for 10-35 (lower case too). */
function digit36(c: number): number | undefined {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x5a) return c - 0x41 + 10;
  if (c >= 0x61 && c <= 0x7a) return c - 0x61 + 10;
  return undefined;
}

/** A version character of a Shadow-style id: 0-9, A-Z (10-35), a-z (36-61), `.` (62). */
function digit64(c: number): number | undefined {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x5a) return c - 0x41 + 10;
  if (c >= 0x61 && c <= 0x7a) return c - 0x61 + 36;
  if (c === 0x2e) return 62;
  return undefined;
}

function azureusVersion(v: string, style: VersionStyle): string | undefined {
  const isDigits = /^[0-9]{4}$/.test(v);
  switch (style) {
    case "lt": {
      const [a, b, c, d] = [...v].map((ch) => digit36(ch.charCodeAt(0)));
      if (a === undefined || b === undefined || c === undefined) return undefined;
      return `${a}.${b}.${c}${/[1-9]/.test(v[3]) ? `.${d}` : ""}`;
    }
    case "tr": {
      if (!/^[0-9]{3}[0-9A-Z]$/.test(v)) return undefined;
      const tag = v[3] === "Z" ? "+" : v[3] === "X" ? " beta" : "";
      if (v.startsWith("000")) return `0.${v[3]}`;
      if (v.startsWith("00")) return `0.${v.slice(2)}`;
      if (Number(v[0]) <= 3) return `${v[0]}.${v.slice(1, 3)}${tag}`;
      return `${v[0]}.${v[1]}.${v[2]}${tag}`;
    }
    case "ww":
      return isDigits ? `${Number(v.slice(0, 2))}.${Number(v.slice(2))}` : undefined;
    case "four":
      return isDigits ? [...v].join(".") : undefined;
    case "minor2":
      return isDigits ? `${Number(v.slice(0, 2))}.${v.slice(2)}` : undefined;
    case "se":
      return isDigits ? `${v[0]}.${Number(v.slice(1, 3))}.${v[3]}` : undefined;
  }
}

/**
 * Names the client behind a peer id, from the conventions clients follow: Azureus style (`-LT2080-`,
 * `-TR3000-`, `-qB4520-`, …), Shadow style (`T03I-----`), Mainline style (`M7-2-0--`) and aria2's
 * (`A2-1-36-0-`).
 *
 * @example Name real peer ids
 * ```ts
 * import { clientFromPeerId } from "./peer_id.ts";
 * import assert from "node:assert/strict";
 *
 * const id = (text: string) => new TextEncoder().encode(text.padEnd(20, "x"));
 * assert.equal(clientFromPeerId(id("-LT2080-")), "libtorrent 2.0.8");
 * assert.equal(clientFromPeerId(id("-TR3000-")), "Transmission 3.00");
 * assert.equal(clientFromPeerId(id("A2-1-36-0-")), "aria2 1.36.0");
 * assert.equal(clientFromPeerId(id("-ZZ1234-")), undefined);
 * ```
 *
 * @param id The 20-byte peer id from the handshake.
 * @returns "Name version" (or just the name when the version does not decode), or undefined when unknown.
 */
export function clientFromPeerId(id: Uint8Array): string | undefined {
  if (id.length < 8) return undefined;
  const head = new TextDecoder("latin1").decode(id.subarray(0, Math.min(id.length, 12)));
  // Azureus style: -XXabcd-
  if (head[0] === "-" && head[7] === "-") {
    const known = AZUREUS[head.slice(1, 3)];
    if (!known) return undefined;
    const version = azureusVersion(head.slice(3, 7), known[1]);
    return version ? `${known[0]} ${version}` : known[0];
  }
  // aria2 (A2-1-36-0-) and Mainline style (M7-2-0--, Q1-10-0-: Queen Bee)
  const dashed = /^(A2-|M|Q)(\d{1,2})-(\d{1,2})-(\d{1,2})-/.exec(head);
  if (dashed) {
    const name = dashed[1] === "A2-" ? "aria2" : dashed[1] === "M" ? "Mainline" : "Queen Bee";
    return `${name} ${Number(dashed[2])}.${Number(dashed[3])}.${Number(dashed[4])}`;
  }
  // Shadow style: one letter, up to five version characters, then dashes
  const shadow = SHADOW[head[0]];
  const m = /^.([0-9A-Za-z.]{1,5})(-+)/.exec(head);
  if (shadow && m && m[1].length + m[2].length >= 5) {
    const parts = [...m[1]].map((ch) => digit64(ch.charCodeAt(0))!);
    return `${shadow} ${parts.join(".")}`;
  }
  return undefined;
}

/** Most characters of a client name we show. */
const MAX_CLIENT_NAME = 64;

/**
 * Describes the client on the other end for people (peer lists, logs): the `v` of its extension handshake
 * (BEP 10) when that looks like a name, otherwise what its peer id says. Control and bidirectional-override
 * characters are escaped and the text is bounded, so a hostile peer cannot forge log lines or reorder text.
 *
 * @example Prefer the extension handshake's name
 * ```ts
 * import { describePeerClient } from "./peer_id.ts";
 * import assert from "node:assert/strict";
 *
 * const id = new TextEncoder().encode("-qB4520-nC!1h!ubU*PY");
 * assert.equal(describePeerClient(id, "qBittorrent/4.5.2"), "qBittorrent/4.5.2");
 * assert.equal(describePeerClient(id), "qBittorrent 4.5.2");
 * assert.equal(describePeerClient(id, "evil\nlog line"), "evil\\x0alog line");
 * ```
 *
 * @param peerId The peer id from the handshake, if known.
 * @param extensionV The `v` field of the peer's extension handshake, if it sent one.
 * @returns A printable name, at most 64 characters (plus "…"); "unknown" when nothing identifies it.
 */
export function describePeerClient(peerId: Uint8Array | undefined, extensionV?: string): string {
  const v = extensionV?.trim();
  if (v && /\p{L}/u.test(v)) return printable(v);
  const known = peerId && clientFromPeerId(peerId);
  if (known) return known;
  if (peerId && peerId[0] === 0x2d && peerId[7] === 0x2d) {
    return `unknown (${printable(new TextDecoder("latin1").decode(peerId.subarray(0, 8)))})`;
  }
  return "unknown";
}

/** Escapes control and bidirectional-formatting characters and bounds the length. */
function printable(text: string): string {
  const chars = [...text];
  const cut = chars.length > MAX_CLIENT_NAME;
  const escaped = chars.slice(0, MAX_CLIENT_NAME).map((ch) => {
    const c = ch.codePointAt(0)!;
    const unsafe = c < 0x20 || (c >= 0x7f && c <= 0x9f) || (c >= 0x200e && c <= 0x200f) ||
      (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069);
    return unsafe ? `\\x${c.toString(16).padStart(2, "0")}` : ch;
  }).join("");
  return cut ? escaped + "…" : escaped;
}
