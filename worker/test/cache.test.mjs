// The in-isolate cache of manifests and host entries (MANIFEST_TTL_MS).
// One Miniflare instance runs router.js three times over the same bucket: with a short TTL, with
// the default TTL (5 s), with an unparsable TTL, with the cache off (TTL 0), and without a bucket.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { Miniflare } from "miniflare";
import { PLATFORM_DOMAIN, ROUTER_PATH, buildSite, hostEntry, putAll } from "./helpers.mjs";

const SHORT_TTL_MS = 1000; // long enough for a loaded 2-core machine between two requests
let mf;
let bucket;
const workers = {};

function routerWorker(name, extraBindings) {
  return {
    name,
    modules: true,
    scriptPath: ROUTER_PATH,
    compatibilityDate: "2025-01-01",
    r2Buckets: { SITES: "sites" },
    bindings: { PLATFORM_DOMAIN, ...extraBindings },
  };
}

before(async () => {
  mf = new Miniflare({
    cf: false,
    workers: [
      routerWorker("short", { MANIFEST_TTL_MS: String(SHORT_TTL_MS) }),
      routerWorker("default", {}),
      routerWorker("bogus", { MANIFEST_TTL_MS: "soon" }), // unparsable: falls back to the default
      routerWorker("off", { MANIFEST_TTL_MS: "0" }),
      // SITES is not an R2 bucket here: every bucket read throws, as a storage outage would.
      { ...routerWorker("outage", { SITES: "not a bucket" }), r2Buckets: {} },
    ],
  });
  await mf.ready;
  bucket = await mf.getR2Bucket("SITES", "short");
  for (const name of ["short", "default", "bogus", "off", "outage"]) workers[name] = await mf.getWorker(name);
}, { timeout: 30_000 });

after(async () => {
  await mf?.dispose();
});

function version(tenant, text) {
  return buildSite(tenant, { "/index.html": { body: text, type: "text/html; charset=utf-8" } })
    .objects;
}

async function get(worker, url) {
  const res = await workers[worker].fetch(url, { headers: { "accept-encoding": "identity" } });
  return { status: res.status, text: await res.text(), res };
}

/**
 * After the TTL the first request may still get the stale copy (it is revalidated in the
 * background): poll until `ok(res)`, at most 3 s.
 */
async function eventually(worker, url, ok) {
  const deadline = Date.now() + 3000;
  for (;;) {
    const res = await get(worker, url);
    if (ok(res) || Date.now() > deadline) return res;
    await sleep(20);
  }
}

// The scenarios use distinct tenants and hosts, so they run side by side (their sleeps overlap).
describe("with a short MANIFEST_TTL_MS", { concurrency: true }, () => {
  test("a new deploy is served once the TTL has passed", async () => {
    await putAll(bucket, version("deploy", "v1"));
    assert.equal((await get("short", "https://deploy.getai.page/")).text, "v1");
    await putAll(bucket, version("deploy", "v2"));
    assert.equal((await get("short", "https://deploy.getai.page/")).text, "v1", "still cached");
    await sleep(SHORT_TTL_MS + 100);
    const res = await eventually("short", "https://deploy.getai.page/", (r) => r.text === "v2");
    assert.equal(res.text, "v2", "after the TTL");
  });

  test("a missing manifest is cached too, then picked up", async () => {
    assert.equal((await get("short", "https://late.getai.page/")).status, 404);
    await putAll(bucket, version("late", "arrived"));
    assert.equal((await get("short", "https://late.getai.page/")).status, 404, "negative cached");
    await sleep(SHORT_TTL_MS + 100);
    const res = await get("short", "https://late.getai.page/");
    assert.equal(res.status, 200);
    assert.equal(res.text, "arrived");
  });

  test("an unknown host is cached negatively, then a new host entry is picked up", async () => {
    await putAll(bucket, version("target", "target site"));
    assert.equal((await get("short", "https://new.example/")).text, "site not found");
    await putAll(bucket, [hostEntry("new.example", "target")]);
    assert.equal((await get("short", "https://new.example/")).status, 404, "negative cached");
    await sleep(SHORT_TTL_MS + 100);
    const res = await get("short", "https://new.example/");
    assert.equal(res.status, 200);
    assert.equal(res.text, "target site");
    assert.equal(res.res.headers.get("x-tenant"), "target");
  });

  test("a changed host entry is picked up after the TTL", async () => {
    await putAll(bucket, [...version("first", "first"), ...version("second", "second")]);
    await putAll(bucket, [hostEntry("moving.example", "first")]);
    assert.equal((await get("short", "https://moving.example/")).text, "first");
    await putAll(bucket, [hostEntry("moving.example", "second")]);
    assert.equal((await get("short", "https://moving.example/")).text, "first", "cached");
    await sleep(SHORT_TTL_MS + 100);
    const res = await eventually("short", "https://moving.example/", (r) => r.text === "second");
    assert.equal(res.text, "second");
  });

  test("a corrupt manifest is a 500, and a fixed one is served after the TTL", async () => {
    await putAll(bucket, [
      { key: "sites/fixme/manifest.json", body: '{"format":1,"files":', contentType: "application/json" },
    ]);
    const broken = await get("short", "https://fixme.getai.page/");
    assert.equal(broken.status, 500);
    assert.equal(broken.text, "site configuration error");
    await putAll(bucket, version("fixme", "fixed"));
    await sleep(SHORT_TTL_MS + 100);
    const fixed = await eventually("short", "https://fixme.getai.page/", (r) => r.status === 200);
    assert.equal(fixed.status, 200);
    assert.equal(fixed.text, "fixed");
  });

  test("a deleted manifest takes the site down after the TTL", async () => {
    await putAll(bucket, version("gone", "here"));
    assert.equal((await get("short", "https://gone.getai.page/")).status, 200);
    await bucket.delete("sites/gone/manifest.json");
    await sleep(SHORT_TTL_MS + 100);
    const res = await eventually("short", "https://gone.getai.page/", (r) => r.status === 404);
    assert.equal(res.status, 404);
    assert.equal(res.text, "site not found");
  });
});

describe("default TTL", { concurrency: true }, () => {
  for (const worker of ["default", "bogus"]) {
    test(`${worker}: a deploy is not re-read within a few hundred ms`, async () => {
      const tenant = `dflt-${worker}`;
      await putAll(bucket, version(tenant, "v1"));
      assert.equal((await get(worker, `https://${tenant}.getai.page/`)).text, "v1");
      await putAll(bucket, version(tenant, "v2"));
      await sleep(SHORT_TTL_MS + 100);
      assert.equal((await get(worker, `https://${tenant}.getai.page/`)).text, "v1");
    });
  }
});

describe("MANIFEST_TTL_MS=0", () => {
  test("disables the cache", async () => {
    await putAll(bucket, version("nocache", "v1"));
    assert.equal((await get("off", "https://nocache.getai.page/")).text, "v1");
    await putAll(bucket, version("nocache", "v2"));
    assert.equal((await get("off", "https://nocache.getai.page/")).text, "v2");
  });
});

describe("storage failure", () => {
  test("is a 500 'internal error' that leaks nothing; /_health still answers", async () => {
    for (let i = 0; i < 2; i++) {
      const res = await get("outage", "https://acme.getai.page/");
      assert.equal(res.status, 500);
      assert.equal(res.text, "internal error");
      assert.equal(res.res.headers.get("cache-control"), "no-store");
      assert.equal(res.res.headers.get("x-content-type-options"), "nosniff");
    }
    const health = await get("outage", "https://acme.getai.page/_health");
    assert.equal(health.text, "ok");
  });
});
