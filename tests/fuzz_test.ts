// The short fuzz run of every parser of untrusted bytes (the long one: `deno task fuzz`).

import { fuzz, TARGETS } from "./_fuzz.ts";

for (const target of TARGETS) {
  Deno.test(`fuzz ${target.name}: 20 000 mutated inputs parse or fail with the documented error`, async () => {
    await fuzz(target, 20_000, 0xc1);
  });
}
