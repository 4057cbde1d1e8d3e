/**
 * When to use protocol encryption (MSE/PE): the policy a session applies to the connections it dials and the
 * ones it accepts. The handshake itself is in `mse.ts`.
 *
 * Two separate questions, as in libtorrent:
 * - **the handshake** ({@linkcode EncryptionPolicy}): does a connection start with the MSE key exchange, or with
 *   a plain BitTorrent handshake?
 * - **the payload** (`rc4Only` on `initiateConnection` / `acceptConnection`): after an MSE
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
 * - `"require"`: never a plain BitTorrent handshake, in or out (a failed MSE dial is retried once with MSE,
 *   the BitTorrent handshake sent after it instead of inside it: see {@linkcode DialMode}).
 */
export type EncryptionPolicy = "prefer" | "require" | "allow" | "disable";

/** The policy used when none is given. */
export const DEFAULT_ENCRYPTION_POLICY: EncryptionPolicy = "prefer";

/**
 * How one attempt to connect to a peer starts:
 * - `"mse"`: the MSE handshake with our BitTorrent handshake in its initial payload (IA), as libtorrent dials;
 * - `"mse-no-ia"`: the MSE handshake with an empty IA, our BitTorrent handshake sent once it is done (one round
 *   trip later). Transmission 3.00 with its default-off "prefer plaintext" mode selects plaintext and then
 *   reads the IA (RC4-encrypted, as the spec says) as plaintext, so it hangs up on `"mse"`: this is the retry
 *   that reaches it without a plain handshake;
 * - `"plain"`: a plain BitTorrent handshake.
 */
export type DialMode = "mse" | "mse-no-ia" | "plain";

/**
 * The attempts to make, in order, when dialling a peer under `policy`. The next one is made only when the
 * previous one failed in the handshakes: the encryption handshake failed, or the connection closed before the
 * BitTorrent handshake completed (a refused or timed-out connect is not retried).
 *
 * @example Dial attempts per policy
 * ```ts
 * import { dialAttempts } from "./encryption_policy.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(dialAttempts("prefer"), ["mse", "plain"]);
 * assert.deepEqual(dialAttempts("require"), ["mse", "mse-no-ia"]);
 * assert.deepEqual(dialAttempts("allow"), ["plain"]);
 * // a peer that needed the plain retry before is dialled plain at once
 * assert.deepEqual(dialAttempts("prefer", { worked: "plain" }), ["plain"]);
 * ```
 *
 * @param policy The session's policy.
 * @param options `worked`: the mode that last got through to this peer; it is tried alone when the policy
 *   allows it.
 * @returns One or two modes.
 */
export function dialAttempts(
  policy: EncryptionPolicy,
  options: { worked?: DialMode } = {},
): readonly DialMode[] {
  const worked = options.worked;
  switch (policy) {
    case "require":
      return worked && worked !== "plain" ? [worked] : ["mse", "mse-no-ia"];
    case "prefer":
      return worked ? [worked] : ["mse", "plain"];
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
