// Path safety for names that come from torrents: every component is made safe to use as one file or directory
// name on Linux, macOS and Windows, whole paths are made unique (case-insensitively, and no file where another
// path needs a directory), and every joined path can be checked to stay inside its directory.
// Private: mod.ts never exports this file. Everything here is linear in its input: a torrent is untrusted and
// may hold a million files or a 50 MB name.

import { isAbsolute, relative, resolve } from "node:path";

/** Windows device names, with or without an extension (and with the trailing spaces Windows ignores). */
const RESERVED = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$) *(\..*)?$/i;
/** Control characters, C1 controls, separators and what Windows forbids in a name. */
// deno-lint-ignore no-control-regex
const FORBIDDEN = /[\x00-\x1f\x7f-\x9f/\\:*?"<>|]/g;
/**
 * Unicode look-alikes of separators (fullwidth solidus / reverse solidus, division and fraction slash, …) and
 * the bidirectional overrides that make "evil\u202eexe.doc" look like a document in a file manager.
 */
const LOOKALIKE = /[\uff0f\uff3c\u2215\u2044\u29f8\u29f9\u202a-\u202e\u2066-\u2069]/g;
/** Control characters plus the bidirectional overrides that reorder what a terminal shows. */
// deno-lint-ignore no-control-regex
const UNPRINTABLE = /[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;
/** Longest component, in UTF-8 bytes (the limit of ext4, APFS and NTFS alike). */
export const MAX_COMPONENT_BYTES = 255;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Makes one path component safe: control characters, bidirectional overrides, `/`, `\`, look-alikes of them and
 * the characters Windows forbids become `_`;
 * `.`, `..`, empty and all-dots-or-spaces become `_`; Windows reserved device names get a `_` prefix; trailing
 * dots and spaces are removed; components longer than 255 UTF-8 bytes are shortened, keeping the extension.
 *
 * @param raw The component as the torrent gave it.
 * @returns A name that is safe as one file or directory name.
 */
export function sanitizeComponent(raw: string): string {
  let name = shorten(raw.replace(FORBIDDEN, "_").replace(LOOKALIKE, "_"), MAX_COMPONENT_BYTES);
  // trailing dots and spaces (Windows drops them, so "a." and "a" would collide); a loop, not /[. ]+$/,
  // which backtracks quadratically on a long run of dots followed by another character
  let end = name.length;
  while (end > 0 && (name.charCodeAt(end - 1) === 0x2e || name.charCodeAt(end - 1) === 0x20)) end--;
  name = end === 0 ? "_" : name.slice(0, end);
  // reserved names are short: the prefix cannot take the name past the limit
  return RESERVED.test(name) ? "_" + name : name;
}

/**
 * Shortens a name to at most `limit` UTF-8 bytes, cutting the stem at a character boundary and keeping a short
 * extension (up to 16 characters).
 */
function shorten(name: string, limit: number): string {
  // a UTF-8 character is at most 4 bytes: a name of limit/4 characters always fits
  if (name.length <= limit / 4) return name;
  const bytes = encoder.encode(name);
  if (bytes.length <= limit) return name;
  const dot = name.lastIndexOf(".");
  const ext = dot > 0 && name.length - dot <= 16 ? name.slice(dot) : "";
  const extBytes = encoder.encode(ext).length;
  const stemBytes = bytes.subarray(0, bytes.length - extBytes);
  let cut = Math.min(stemBytes.length, limit - extBytes);
  while (cut > 0 && (stemBytes[cut] & 0xc0) === 0x80) cut--; // not inside a multi-byte character
  const stem = decoder.decode(stemBytes.subarray(0, cut));
  return (stem === "" ? "_" : stem) + ext;
}

/**
 * Neutralises control characters (and the DEL/C1 range and bidirectional overrides) for display on a terminal.
 *
 * @param text Untrusted text.
 * @returns The text with each such character replaced by U+FFFD.
 */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, "\ufffd");
}

/**
 * Makes the sanitised paths of a torrent's files unique, as the file system sees them: case-insensitively and
 * after Unicode NFC normalisation (Windows and macOS), and with no file where another path needs a directory.
 * A later path that collides gets " (1)", " (2)", … before its extension, in the colliding component; the
 * files of a renamed directory all follow it to its new name. Amortised linear in the number of components.
 */
export class UniquePaths {
  /** key (parent key + "/" + folded name) → what occupies it */
  #taken = new Map<string, "file" | "dir">();
  /** key of a directory as the torrent asked for it → key it was moved to */
  #moved = new Map<string, { name: string; key: string }>();
  /** key → the next counter to try for it, so many duplicates of one name stay linear */
  #next = new Map<string, number>();

  /**
   * Registers one file's path and returns it, renamed where it collides with an earlier one.
   *
   * @param path Sanitised components (each already safe), at least one.
   * @returns The path to use: `path` itself, or a copy with one component renamed.
   */
  add(path: readonly string[]): string[] {
    const out = path.slice();
    let parent = "";
    for (let i = 0; i < out.length; i++) {
      const last = i === out.length - 1;
      const key = `${parent}/${fold(out[i])}`;
      if (!last) {
        const moved = this.#moved.get(key);
        if (moved !== undefined) {
          out[i] = moved.name;
          parent = moved.key;
          continue;
        }
        const kind = this.#taken.get(key);
        if (kind === "dir") {
          parent = key;
          continue;
        }
        if (kind === undefined) {
          this.#taken.set(key, "dir");
          parent = key;
          continue;
        }
        // a file already has this name: the directory moves aside, and its later files with it
        const renamed = this.#rename(parent, out[i], key, "dir");
        out[i] = renamed.name;
        this.#moved.set(key, renamed);
        parent = renamed.key;
        continue;
      }
      if (!this.#taken.has(key)) {
        this.#taken.set(key, "file");
        continue;
      }
      out[i] = this.#rename(parent, out[i], key, "file").name;
    }
    return out;
  }

  #rename(
    parent: string,
    name: string,
    key: string,
    kind: "file" | "dir",
  ): { name: string; key: string } {
    const dot = kind === "file" ? name.lastIndexOf(".") : -1;
    const stem = dot > 0 ? name.slice(0, dot) : name;
    const ext = dot > 0 ? name.slice(dot) : "";
    for (let n = this.#next.get(key) ?? 1;; n++) {
      const suffix = ` (${n})`;
      const candidate = shorten(stem, MAX_COMPONENT_BYTES - byteLength(suffix + ext)) + suffix +
        ext;
      const candidateKey = `${parent}/${fold(candidate)}`;
      if (!this.#taken.has(candidateKey)) {
        this.#next.set(key, n + 1);
        this.#taken.set(candidateKey, kind);
        return { name: candidate, key: candidateKey };
      }
    }
  }
}

function fold(name: string): string {
  return name.normalize("NFC").toLowerCase();
}

function byteLength(text: string): number {
  return encoder.encode(text).length;
}

/**
 * True when `path` resolves to `dir` itself or something below it.
 *
 * @param dir The directory that must contain the path.
 * @param path The path to check (absolute, or relative to the working directory).
 * @returns Whether the path stays inside the directory.
 */
export function isInside(dir: string, path: string): boolean {
  const rel = relative(resolve(dir), resolve(path));
  if (rel === "") return true;
  if (rel === ".." || rel.startsWith("../") || rel.startsWith("..\\")) return false;
  return !isAbsolute(rel);
}
