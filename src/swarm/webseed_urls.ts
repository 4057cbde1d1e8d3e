/**
 * Which web seeds a torrent has and the URL of each of its files (BEP 19 `url-list`, BEP 17 `httpseeds`).
 *
 * @module
 */

import type { StorageFile } from "../storage/layout.ts";

/** Which kind of web seed: BEP 19 (`url-list`, files on a web server) or BEP 17 (`httpseeds`, a script). */
export type WebSeedKind = "url-list" | "httpseeds";

/** A file of the torrent as a web seed sees it (a parsed torrent's files satisfy it). */
export interface WebSeedFile extends StorageFile {
  /**
   * The components the torrent gave (`[name, ...path]`), unsanitised, for the URL; `path` is used when absent.
   */
  torrentPath?: string[];
}

/** What a web seed needs to know of the torrent (a parsed {@linkcode Metainfo} satisfies it). */
export interface WebSeedTorrent {
  /** The 20-byte info hash (BEP 17 requests name it). */
  infoHash: Uint8Array;
  /** Bytes per piece. */
  pieceLength: number;
  /** Total bytes. */
  length: number;
  /** Concatenated 20-byte piece hashes (only their count is used). */
  pieces: Uint8Array;
  /** True for a torrent with a `files` list (URLs get `<name>/<path…>`). */
  multiFile: boolean;
  /** The files in torrent order. */
  files: WebSeedFile[];
}

/**
 * The URL of file `file` on a BEP 19 web seed. Single-file torrent: the URL as given, or with the torrent's name
 * appended when its path ends in `/`. Multi-file: the URL, a `/` unless its path ends in one, then
 * `<name>/<path…>`; every component percent-encoded. The torrent's own names are used (`torrentPath`), not the
 * sanitised ones on disk. A query in the URL is kept; a fragment is dropped.
 *
 * @example A multi-file torrent
 * ```ts
 * import { webSeedFileUrl } from "./webseed.ts";
 * import assert from "node:assert/strict";
 *
 * const torrent = {
 *   multiFile: true,
 *   files: [{ path: ["michael", "Readme.txt"], length: 949, offset: 0 }],
 * };
 * assert.equal(
 *   webSeedFileUrl("http://mirror.com/pub/", torrent, 0),
 *   "http://mirror.com/pub/michael/Readme.txt",
 * );
 * assert.equal(
 *   webSeedFileUrl("http://mirror.com/pub", {
 *     multiFile: true,
 *     files: [{ path: ["a"], torrentPath: ["my files", "r&d", "50%.txt"], length: 1, offset: 0 }],
 *   }, 0),
 *   "http://mirror.com/pub/my%20files/r%26d/50%25.txt",
 * );
 * ```
 *
 * @param base The seed's URL.
 * @param torrent Whether it is multi-file, and its files.
 * @param file Index of the file.
 * @returns The file's URL.
 * @throws {TypeError} When `base` is not a URL.
 */
export function webSeedFileUrl(
  base: string,
  torrent: Pick<WebSeedTorrent, "multiFile" | "files">,
  file: number,
): string {
  const url = new URL(base);
  url.hash = "";
  const f = torrent.files[file];
  const components = f.torrentPath ?? f.path;
  const dir = url.pathname.endsWith("/");
  if (torrent.multiFile) {
    url.pathname = url.pathname + (dir ? "" : "/") + components.map(encodeURIComponent).join("/");
  } else if (dir) {
    url.pathname = url.pathname + encodeURIComponent(components[0]);
  }
  return url.href;
}

/** Options of {@linkcode webSeedsOf}. */
export interface WebSeedsOfOptions {
  /**
   * Use the torrent's web seeds (`url-list`, `httpseeds`); `false` leaves them out (`extra` ones are still used).
   * @default {true}
   */
  enabled?: boolean;
  /** More BEP 19 URLs, from the user (`--web-seed URL`, the same name `create` uses). */
  extra?: readonly string[];
}

/**
 * The web seeds to use for a torrent: its `url-list` (BEP 19) and `httpseeds` (BEP 17), plus the user's, without
 * duplicates; entries that are not http: or https: URLs are left out (a client ignores protocols it does not
 * know, BEP 19).
 *
 * @example
 * ```ts
 * import { webSeedsOf } from "./webseed.ts";
 * import assert from "node:assert/strict";
 *
 * const meta = { urlList: ["http://a/pub/", "ftp://b/pub/"], httpSeeds: ["https://c/seed.php"] };
 * assert.deepEqual(webSeedsOf(meta, { extra: ["http://d/"] }), [
 *   { url: "http://a/pub/", kind: "url-list" },
 *   { url: "http://d/", kind: "url-list" },
 *   { url: "https://c/seed.php", kind: "httpseeds" },
 * ]);
 * assert.deepEqual(webSeedsOf(meta, { enabled: false }), []);
 * ```
 *
 * @param meta The torrent's web seed lists.
 * @param options Whether to use them, and the user's.
 * @returns URL and kind of each seed.
 */
export function webSeedsOf(
  meta: { urlList?: readonly string[]; httpSeeds?: readonly string[] },
  options: WebSeedsOfOptions = {},
): { url: string; kind: WebSeedKind }[] {
  const enabled = options.enabled ?? true;
  const out: { url: string; kind: WebSeedKind }[] = [];
  const seen = new Set<string>();
  const add = (url: string, kind: WebSeedKind) => {
    if (!isHttpUrl(url) || seen.has(`${kind} ${url}`)) return;
    seen.add(`${kind} ${url}`);
    out.push({ url, kind });
  };
  if (enabled) { for (const u of meta.urlList ?? []) add(u, "url-list"); }
  for (const u of options.extra ?? []) add(u, "url-list");
  if (enabled) { for (const u of meta.httpSeeds ?? []) add(u, "httpseeds"); }
  return out;
}

/**
 * Reads an HTTP `Retry-After` value: a number of seconds or an HTTP date.
 *
 * @example
 * ```ts
 * import { parseRetryAfter } from "./webseed.ts";
 * import assert from "node:assert/strict";
 *
 * const now = Date.UTC(2030, 0, 1);
 * assert.equal(parseRetryAfter("120", now), 120_000);
 * assert.equal(parseRetryAfter("Tue, 01 Jan 2030 00:02:00 GMT", now), 120_000);
 * assert.equal(parseRetryAfter("soon", now), undefined);
 * ```
 *
 * @param value The header's value.
 * @param now The current time (ms since the epoch).
 * @returns Milliseconds to wait (0 for a date in the past), or undefined when the value is neither.
 */
export function parseRetryAfter(value: string, now: number): number | undefined {
  const v = value.trim();
  if (/^\d{1,10}$/.test(v)) return Number(v) * 1000;
  if (!/^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(v)) return undefined;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

export function isHttpUrl(url: string): boolean {
  try {
    const u = new URL(url);
    return u.protocol === "http:" || u.protocol === "https:";
  } catch {
    return false;
  }
}
