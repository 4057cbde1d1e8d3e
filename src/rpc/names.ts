/**
 * The three spellings of Transmission's RPC names: the old protocol's mix of camelCase and kebab-case
 * (`hashString`, `download-dir`, `peer-limit`), which Transmission 3.00 and 4.0 speak, and the snake_case of
 * Transmission 4.1's JSON-RPC 2.0 protocol (`hash_string`, `download_dir`). Requests are read in any spelling by
 * turning every name into snake_case; answers use the spelling of the protocol the request came in.
 *
 * @module
 */

/** Names that Transmission 4.1 renamed rather than respelled (snake_case of the old name → the 4.1 name). */
const RENAMED: Record<string, string> = { cache_size_mb: "cache_size_mib" };

/**
 * The snake_case form of an RPC name in any spelling.
 *
 * @example
 * ```ts
 * import { snakeCase } from "./names.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(snakeCase("hashString"), "hash_string");
 * assert.equal(snakeCase("download-dir"), "download_dir");
 * assert.equal(snakeCase("isUTP"), "is_utp");
 * assert.equal(snakeCase("rate_download"), "rate_download");
 * ```
 *
 * @param name A method, argument or field name.
 * @returns The name in snake_case.
 */
export function snakeCase(name: string): string {
  const snake = name.replace(/-/g, "_")
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .replace(/([A-Z]+)([A-Z][a-z])/g, "$1_$2")
    .toLowerCase();
  return RENAMED[snake] ?? snake;
}

/**
 * A copy of a JSON value with every object key in snake_case (for answers in the JSON-RPC 2.0 protocol).
 *
 * @param value A JSON value built with the old protocol's names.
 * @returns The same value with snake_case keys.
 */
export function snakeKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(snakeKeys);
  if (value === null || typeof value !== "object") return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[snakeCase(k)] = snakeKeys(v);
  return out;
}

/**
 * An arguments object with its keys in snake_case (values untouched); anything but a plain object is empty.
 *
 * @param args The request's `arguments` (or `params`).
 * @returns The arguments by snake_case name.
 */
export function snakeArgs(args: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (args === null || typeof args !== "object" || Array.isArray(args)) return out;
  for (const [k, v] of Object.entries(args)) out[snakeCase(k)] = v;
  return out;
}
