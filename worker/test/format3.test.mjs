// Format 3 (issue 20): a Route names its shards by hash; the router reads `shards/<hash>.json`,
// caches it by hash (so tenants and deploys with the same shard share one read), refuses bytes
// that do not hash to the name, and still serves format 2 beside it.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import { buildDeploy3, buildSite2, fetchText, headObject3, sha256, startCountingRouter, takeOps } from "./helpers.mjs";

const HTML = "text/html; charset=utf-8";
const FILES = {
  "/index.html": { body: "<h1>home</h1>", type: HTML },
  "/about.html": { body: "<h1>about</h1>", type: HTML },
  "/css/site.css": { body: "body{}", type: "text/css; charset=utf-8" },
};

let mf;
let acme;
before(async () => {
  acme = buildDeploy3("acme", FILES, { shards: 4 });
  const globex = buildDeploy3("globex", FILES, { shards: 4, deployId: "20261129T010203Z-2b3c4d5e" });
  const bad = buildDeploy3("bad", { "/index.html": { body: "<h1>x</h1>", type: HTML } }, { shards: 1 });
  // The bad tenant's shard is replaced by other bytes under the same name.
  const badObjects = bad.objects.map((o) =>
    o.key.startsWith("shards/") ? { ...o, body: Buffer.from('{"files":{}}') } : o,
  );
  ({ mf } = await startCountingRouter({
    objects: [
      ...acme.objects,
      headObject3("acme", acme.route),
      ...globex.objects,
      headObject3("globex", globex.route),
      ...badObjects,
      headObject3("bad", bad.route),
      ...buildSite2("old", FILES, { shards: 2, stem: true }).objects,
    ],
    bindings: { BLOB_CACHE: "off" },
  }));
}, { timeout: 120_000 });

after(async () => {
  await mf?.dispose();
});

describe("format 3", () => {
  test("the router reads a shard by its hash", async () => {
    await takeOps(mf);
    const res = await fetchText(mf, "https://acme.getai.page/about");
    assert.equal(res.status, 200);
    assert.equal(res.text, "<h1>about</h1>");
    const ops = await takeOps(mf);
    const shardReads = ops.filter((o) => o.key?.startsWith("shards/"));
    const k = acme.route.shard_hashes.findIndex((h) => h !== undefined && ops.some((o) => o.key === `shards/${h}.json`));
    assert.equal(shardReads.length, 1, JSON.stringify(ops));
    assert.ok(k >= 0);
    assert.ok(!ops.some((o) => o.key?.includes("/deploys/")), "never a per-deploy shard");
  });

  test("a tenant with the same shard reuses the one read (cached by hash)", async () => {
    await fetchText(mf, "https://acme.getai.page/css/site.css");
    await takeOps(mf);
    const res = await fetchText(mf, "https://globex.getai.page/css/site.css");
    assert.equal(res.status, 200);
    assert.equal(res.text, "body{}");
    const ops = await takeOps(mf);
    assert.deepEqual(
      ops.filter((o) => o.key?.startsWith("shards/")),
      [],
      `globex's shard is acme's: ${JSON.stringify(ops)}`,
    );
  });

  test("a shard whose bytes do not hash to its name is never served", async () => {
    const res = await fetchText(mf, "https://bad.getai.page/");
    assert.notEqual(res.status, 200);
    assert.ok(res.status >= 500, String(res.status));
  });

  test("a format 2 tenant is still served beside format 3", async () => {
    const res = await fetchText(mf, "https://old.getai.page/about");
    assert.equal(res.status, 200);
    assert.equal(res.text, "<h1>about</h1>");
  });

  test("the hashes in the Route are the shards' SHA-256", () => {
    for (const o of acme.objects.filter((o) => o.key.startsWith("shards/"))) {
      assert.equal(o.key, `shards/${sha256(o.body)}.json`);
    }
  });
});
