/**
 * When to use protocol encryption (MSE/PE): the policy a session applies to the connections it dials and the
 * ones it accepts. The handshake itself is in {@linkcode ./mse.ts}.
 *
 * Two separate questions, as in libtorrent:
 * - **the handshake** ({@linkcode EncryptionPolicy}): does a connection start with the MSE key exchange, or with
 *   a plain BitTorrent handshake?
 * - **the payload** (`rc4Only` on {@linkcode initiateConnection} / {@linkcode acceptConnection}): after an MSE
 *   handshake, is the rest RC4-encrypted or plaintext? We offer both and take plaintext (cheaper, and
 *   the handshake already hid the torrent and defeated simple protocol filters) unless the other side
 *   insists on RC4; `rc4Only` makes RC4 the only offer.
 *
 * @module
 */

/**
 * Whether connections use an MSE handshake.
 *
 * - `"disable"`: plain BitTorrent handshakes only, in and out; an incoming MSE handshake is refused.
 * - `"allow"`: dial with a plain handshake; accept both.
 * - `"prefer"` (the default, as libtorrent): dial with MSE, and if that handshake fails, dial the same peer
 *   once more with a plain handshake (and remember it); accept both.
 * - `"require"`: never a plain BitTorrent handshake, in or out.
 */
export type EncryptionPolicy = "prefer" | "require" | "allow" | "disable";

/** The policy used when none is given. */
export const DEFAULT_ENCRYPTION_POLICY: EncryptionPolicy = "prefer";

/** How one attempt to connect to a peer starts: with the MSE handshake, or a plain BitTorrent handshake. */
export type DialMode = "mse" | "plain";

/**
 * The attempts to make, in order, when dialling a peer under `policy`; the next one is made only when the
 * previous one failed during the encryption handshake (connection refused or timed out: give up instead).
 *
 * @example Dial attempts per policy
 * ```ts
 * import { dialAttempts } from "./encryption_policy.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(dialAttempts("prefer"), ["mse", "plain"]);
 * assert.deepEqual(dialAttempts("require"), ["mse"]);
 * assert.deepEqual(dialAttempts("allow"), ["plain"]);
 * // a peer that needed the plain retry before is dialled plain at once
 * assert.deepEqual(dialAttempts("prefer", { plainWorked: true }), ["plain"]);
 * ```
 *
 * @param policy The session's policy.
 * @param options `plainWorked`: this peer failed the MSE handshake before and then took a plain one (only
 *   `"prefer"` looks at it).
 * @returns One or two modes.
 */
export function dialAttempts(
  policy: EncryptionPolicy,
  options: { plainWorked?: boolean } = {},
): readonly DialMode[] {
  switch (policy) {
    case "require":
      return ["mse"];
    case "prefer":
      return options.plainWorked ? ["plain"] : ["mse", "plain"];
    case "allow":
    case "disable":
      return ["plain"];
  }
}

/**
 * Whether an incoming connection that starts with a plain BitTorrent handshake is accepted.
 *
 * @param policy The session's policy.
 * @returns False only for `"require"`.
 */
export function acceptsPlain(policy: EncryptionPolicy): boolean {
  return policy !== "require";
}

/**
 * Whether an incoming connection that starts with an MSE handshake is accepted.
 *
 * @param policy The session's policy.
 * @returns False only for `"disable"`.
 */
export function acceptsEncrypted(policy: EncryptionPolicy): boolean {
  return policy !== "disable";
}

/**
 * Reads a policy from text (a CLI flag, a settings file).
 *
 * @param text `prefer`, `require`, `allow` or `disable`.
 * @returns The policy, or undefined when the text is none of them.
 */
export function parseEncryptionPolicy(text: string): EncryptionPolicy | undefined {
  return text === "prefer" || text === "require" || text === "allow" || text === "disable"
    ? text
    : undefined;
}
