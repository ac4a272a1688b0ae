// Blobs through caches.default (keyed by hash): a warm page view costs no R2 read; off on
// *.workers.dev. (Miniflare implements the Cache API; on workers.dev it has no effect.)
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { buildSite2, fetchText, hostEntry, startCountingRouter, takeOps } from "./helpers.mjs";

let mf;
const files = {
  "/index.html": { body: "<h1>home</h1>", type: "text/html; charset=utf-8" },
  "/app.js": { body: "console.log('app')", type: "text/javascript" },
  "/big.bin": { body: Buffer.alloc(5000, 7), type: "application/octet-stream" },
};

before(async () => {
  ({ mf } = await startCountingRouter({
    objects: [
      ...buildSite2("edge", files).objects,
      ...buildSite2("edge2", files, { deployId: "20261130T000000Z-abcdef01" }).objects,
      hostEntry("edge.workers.dev", "edge"),
    ],
  }));
}, { timeout: 30_000 });

after(async () => {
  await mf?.dispose();
});

describe("Cache API for blobs", () => {
  test("the second request for a blob is served from caches.default: no R2 read", async () => {
    const first = await fetchText(mf, "https://edge.getai.page/app.js");
    assert.equal(first.text, "console.log('app')");
    await sleep(100); // the cache put runs in waitUntil
    await takeOps(mf);
    const second = await fetchText(mf, "https://edge.getai.page/app.js");
    assert.equal(second.status, 200);
    assert.equal(second.text, "console.log('app')");
    assert.equal(second.headers.get("content-type"), "text/javascript");
    assert.deepEqual(await takeOps(mf), []);
  });

  test("a Range is answered from the cached whole blob (206), also with no R2 read", async () => {
    await fetchText(mf, "https://edge.getai.page/big.bin");
    await sleep(100);
    await takeOps(mf);
    const res = await fetchText(mf, "https://edge.getai.page/big.bin", { headers: { range: "bytes=10-19" } });
    assert.equal(res.status, 206);
    assert.equal(res.body.length, 10);
    assert.equal(res.headers.get("content-range"), "bytes 10-19/5000");
    assert.deepEqual(await takeOps(mf), []);
  });

  test("a cold request whose blob is at the edge costs 2 R2 reads: the head and one shard", async () => {
    await fetchText(mf, "https://edge.getai.page/app.js");
    await sleep(100);
    await takeOps(mf);
    const res = await fetchText(mf, "https://edge2.getai.page/app.js"); // never seen by this isolate
    assert.equal(res.text, "console.log('app')");
    const ops = await takeOps(mf);
    assert.deepEqual(
      ops.map((o) => o.key),
      ["sites/edge2/manifest.json", `sites/edge2/deploys/20261130T000000Z-abcdef01/shards/0.json`],
    );
  });

  test("not used on *.workers.dev, where it would do nothing", async () => {
    await fetchText(mf, "https://edge.workers.dev/");
    await sleep(100);
    await takeOps(mf);
    await fetchText(mf, "https://edge.workers.dev/");
    const ops = await takeOps(mf);
    assert.equal(ops.filter((o) => o.key.startsWith("blobs/")).length, 1);
  });
});
