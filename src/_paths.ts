// Path safety for names that come from torrents: every component is made safe to use as one file or directory
// name on Linux, macOS and Windows, and every joined path is checked to stay inside its directory.

import { isAbsolute, relative, resolve } from "node:path";

const RESERVED = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$/i;
const MAX_COMPONENT_BYTES = 255;
const encoder = new TextEncoder();

/**
 * Makes one path component safe: control characters, `/`, `\` and the characters Windows forbids become `_`;
 * `.`/`..`/empty become `_`; Windows reserved device names get a `_` prefix; trailing dots and spaces are removed;
 * components longer than 255 UTF-8 bytes are shortened, keeping the extension.
 *
 * @returns The safe component and whether anything changed.
 */
export function sanitizeComponent(raw: string): { name: string; changed: boolean } {
  // deno-lint-ignore no-control-regex
  let name = raw.replace(/[\x00-\x1f\x7f-\x9f/\\:*?"<>|]/g, "_");
  // Unicode look-alikes of separators (fullwidth solidus/reverse solidus, division slash, fraction slash)
  name = name.replace(/[\uff0f\uff3c\u2215\u2044\u29f8\u29f9]/g, "_");
  name = name.replace(/[. ]+$/g, (m) => (m.length === name.length ? m : ""));
  if (name === "" || name === "." || name === "..") name = "_";
  else if (/^\.+$/.test(name)) name = "_";
  if (RESERVED.test(name)) name = "_" + name;
  if (encoder.encode(name).length > MAX_COMPONENT_BYTES) name = shorten(name);
  return { name, changed: name !== raw };
}

function shorten(name: string): string {
  const dot = name.lastIndexOf(".");
  const ext = dot > 0 && name.length - dot <= 16 ? name.slice(dot) : "";
  let stem = name.slice(0, name.length - ext.length);
  while (encoder.encode(stem + ext).length > MAX_COMPONENT_BYTES) {
    stem = [...stem].slice(0, -1).join("");
  }
  return stem + ext;
}

/** Neutralises control characters (and the DEL/C1 range) for display on a terminal. */
export function printable(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g, "\ufffd");
}

/**
 * True when `path` resolves to `dir` itself or something below it.
 *
 * @param dir The directory that must contain the path.
 * @param path The path to check (absolute, or relative to the working directory).
 */
export function isInside(dir: string, path: string): boolean {
  const rel = relative(resolve(dir), resolve(path));
  if (rel === "") return true;
  if (rel === ".." || rel.startsWith("../") || rel.startsWith("..\\")) return false;
  return !isAbsolute(rel);
}
