import assert from "node:assert/strict";
import {
  acceptsEncrypted,
  acceptsPlain,
  DEFAULT_ENCRYPTION_POLICY,
  dialAttempts,
  parseEncryptionPolicy,
} from "../src/wire/encryption_policy.ts";

Deno.test("each policy's dial attempts and accepted handshakes", () => {
  const table = {
    disable: { dial: ["plain"], plain: true, mse: false },
    allow: { dial: ["plain"], plain: true, mse: true },
    prefer: { dial: ["mse", "plain"], plain: true, mse: true },
    require: { dial: ["mse", "mse-no-ia"], plain: false, mse: true },
  } as const;
  for (const [policy, want] of Object.entries(table)) {
    const p = parseEncryptionPolicy(policy)!;
    assert.deepEqual(dialAttempts(p), want.dial, policy);
    assert.equal(acceptsPlain(p), want.plain, policy);
    assert.equal(acceptsEncrypted(p), want.mse, policy);
  }
  assert.equal(DEFAULT_ENCRYPTION_POLICY, "prefer");
});

Deno.test("the mode that got through last is tried alone when the policy allows it", () => {
  assert.deepEqual(dialAttempts("prefer", { worked: "plain" }), ["plain"]);
  assert.deepEqual(dialAttempts("prefer", { worked: "mse-no-ia" }), ["mse-no-ia"]);
  assert.deepEqual(dialAttempts("require", { worked: "mse-no-ia" }), ["mse-no-ia"]);
  assert.deepEqual(dialAttempts("require", { worked: "plain" }), ["mse", "mse-no-ia"]);
  assert.deepEqual(dialAttempts("allow", { worked: "mse" }), ["plain"]);
  assert.deepEqual(dialAttempts("disable", { worked: "mse" }), ["plain"]);
});

Deno.test("parseEncryptionPolicy takes the four names only", () => {
  assert.equal(parseEncryptionPolicy("require"), "require");
  assert.equal(parseEncryptionPolicy("forced"), undefined);
  assert.equal(parseEncryptionPolicy("PREFER"), undefined);
  assert.equal(parseEncryptionPolicy(""), undefined);
});
