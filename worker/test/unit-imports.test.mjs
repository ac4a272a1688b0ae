// The module boundaries of worker/src/ that each module's `//!` comment states: who may import
// whom. A new import that crosses a boundary fails here (and must be argued in the comment).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";

const SRC = fileURLToPath(new URL("../src/", import.meta.url));

const ALLOWED = {
  "common.js": [],
  "responses.js": [],
  "cache.js": ["common.js", "responses.js"],
  "hosts.js": ["common.js", "cache.js"],
  "heads.js": ["common.js", "cache.js", "hosts.js"],
  "previews.js": [],
  "rules.js": ["common.js"],
  "files.js": ["cache.js", "heads.js", "responses.js", "rules.js"],
  "entry.js": ["common.js", "cache.js", "hosts.js", "heads.js", "previews.js", "rules.js", "files.js", "responses.js"],
};

test("each module imports only what its //! comment allows (no cycles, no npm imports)", () => {
  const names = readdirSync(SRC).filter((n) => n.endsWith(".js")).sort();
  assert.deepEqual(names, Object.keys(ALLOWED).sort(), "a new module needs an entry here");
  for (const name of names) {
    const text = readFileSync(SRC + name, "utf8");
    const imports = [...text.matchAll(/^import\s[^;]*?from\s+"([^"]+)";/gms)].map((m) => m[1]);
    for (const spec of imports) {
      assert.match(spec, /^\.\/[a-z]+\.js$/, `${name} imports ${spec}: the Worker has no dependencies`);
      assert.ok(ALLOWED[name].includes(spec.slice(2)), `${name} may not import ${spec}`);
    }
  }
});
