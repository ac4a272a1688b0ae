// worker/src/ is plain JavaScript with `// @ts-check` and JSDoc types; this runs the TypeScript
// checker over it (strict, no emit; worker/tsconfig.json), so a type error fails `npm test`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const WORKER_DIR = fileURLToPath(new URL("..", import.meta.url));

test("every module in worker/src/ opens with // @ts-check and a //! ownership comment", () => {
  for (const name of readdirSync(WORKER_DIR + "src").filter((n) => n.endsWith(".js"))) {
    const lines = readFileSync(WORKER_DIR + "src/" + name, "utf8").split("\n");
    assert.equal(lines[0], "// @ts-check", name);
    assert.match(lines[1], /^\/\/! /, name);
  }
});

test("tsc --noEmit over worker/src/ (strict) finds no errors", { timeout: 120_000 }, () => {
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  const r = spawnSync(process.execPath, [tsc, "-p", WORKER_DIR + "tsconfig.json"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stdout + r.stderr);
});
