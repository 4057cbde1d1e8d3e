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
    require: { dial: ["mse"], plain: false, mse: true },
  } as const;
  for (const [policy, want] of Object.entries(table)) {
    const p = parseEncryptionPolicy(policy)!;
    assert.deepEqual(dialAttempts(p), want.dial, policy);
    assert.equal(acceptsPlain(p), want.plain, policy);
    assert.equal(acceptsEncrypted(p), want.mse, policy);
  }
  assert.equal(DEFAULT_ENCRYPTION_POLICY, "prefer");
});

Deno.test("prefer dials plain at once a peer that needed the plain retry before; require never does", () => {
  assert.deepEqual(dialAttempts("prefer", { plainWorked: true }), ["plain"]);
  assert.deepEqual(dialAttempts("require", { plainWorked: true }), ["mse"]);
  assert.deepEqual(dialAttempts("allow", { plainWorked: false }), ["plain"]);
});

Deno.test("parseEncryptionPolicy takes the four names only", () => {
  assert.equal(parseEncryptionPolicy("require"), "require");
  assert.equal(parseEncryptionPolicy("forced"), undefined);
  assert.equal(parseEncryptionPolicy("PREFER"), undefined);
  assert.equal(parseEncryptionPolicy(""), undefined);
});
