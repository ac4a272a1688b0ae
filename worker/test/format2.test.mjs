// Format 2: heads, shards, revalidation and what each request costs in R2 operations.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import {
  buildDeploy,
  buildSite,
  buildSite2,
  fetchText,
  headObject,
  putAll,
  sha256,
  startCountingRouter,
  takeOps,
} from "./helpers.mjs";

const TTL = 300;
let mf;
let bucket;

const HTML = "text/html; charset=utf-8";
const SMALL = {
  "/index.html": { body: "<h1>v1 home</h1>", type: HTML },
  "/about.html": { body: "<h1>about</h1>", type: HTML },
  "/docs/index.html": { body: "<h1>docs</h1>", type: HTML },
  "/css/site.css": { body: "body{}", type: "text/css; charset=utf-8" },
  "/404.html": { body: "<h1>nf</h1>", type: HTML },
};

/** 100,000 pre-hashed entries (no blobs but the ones requested). */
function bigEntries(n) {
  const entries = {};
  const hash = sha256(Buffer.from("big page"));
  for (let i = 0; i < n; i++) {
    entries[`/section-${i % 100}/page-${i}.html`] = { hash, size: 8, content_type: HTML };
  }
  entries["/index.html"] = { hash, size: 8, content_type: HTML };
  return { entries, blob: { key: `blobs/${hash}`, body: Buffer.from("big page"), contentType: HTML } };
}

before(async () => {
  const big = bigEntries(100_000);
  const bigDeploy = buildDeploy("big", { entries: big.entries }, { stem: true });
  const objects = [
    ...buildSite2("small", SMALL, { shards: 4 }).objects,
    ...buildSite2("stemmed", SMALL, { shards: 8, stem: true }).objects,
    ...buildSite("legacy", SMALL).objects,
    ...bigDeploy.objects,
    headObject("big", bigDeploy.route),
    big.blob,
  ];
  ({ mf, bucket } = await startCountingRouter({
    objects,
    bindings: { MANIFEST_TTL_MS: String(TTL), MANIFEST_MAX_STALE_MS: "60000", BLOB_CACHE: "off" },
  }));
}, { timeout: 120_000 });

after(async () => {
  await mf?.dispose();
});

const r2reads = (ops) => ops.filter((o) => o.op === "get" || o.op === "head");

describe("format 2 serving", () => {
  test("files resolve through the shards, like format 1", async () => {
    for (const t of ["small", "stemmed", "legacy"]) {
      const home = await fetchText(mf, `https://${t}.getai.page/`);
      assert.equal(home.status, 200, t);
      assert.equal(home.text, "<h1>v1 home</h1>");
      assert.equal((await fetchText(mf, `https://${t}.getai.page/about`)).text, "<h1>about</h1>");
      assert.equal((await fetchText(mf, `https://${t}.getai.page/docs/`)).text, "<h1>docs</h1>");
      const css = await fetchText(mf, `https://${t}.getai.page/css/site.css`);
      assert.equal(css.headers.get("content-type"), "text/css; charset=utf-8");
      const nf = await fetchText(mf, `https://${t}.getai.page/nope`);
      assert.equal(nf.status, 404);
      assert.equal(nf.text, "<h1>nf</h1>");
    }
  });

  test("a missing shard is a 500 'site configuration error'", async () => {
    const d = buildSite2("noshard", SMALL, { shards: 1 });
    await putAll(bucket, d.objects.filter((o) => !o.key.includes("/shards/")));
    const res = await fetchText(mf, "https://noshard.getai.page/");
    assert.equal(res.status, 500);
    assert.equal(res.text, "site configuration error");
  });

  test("a head with a bad deploy id or shard count is a 500 and reads no shard", async () => {
    const d = buildSite2("badid", SMALL, { shards: 1 });
    for (const live of [{ ...d.route, deploy_id: "../acme" }, { ...d.route, shards: 3 }]) {
      await putAll(bucket, [headObject("badid", live)]);
      await sleep(TTL + 50);
      await takeOps(mf);
      let res = await fetchText(mf, "https://badid.getai.page/");
      if (res.status !== 500) res = await fetchText(mf, "https://badid.getai.page/"); // stale copy first
      assert.equal(res.status, 500);
      assert.ok(!(await takeOps(mf)).some((o) => o.key && o.key.includes("../")));
    }
  });
});

describe("R2 operations", () => {
  test("cold request to a 100,000-file site: the head and one shard (then the blob)", async () => {
    await takeOps(mf);
    const res = await fetchText(mf, "https://big.getai.page/section-7/page-4207");
    assert.equal(res.status, 200);
    assert.equal(res.text, "big page");
    const ops = r2reads(await takeOps(mf));
    const meta = ops.filter((o) => !o.key.startsWith("blobs/"));
    assert.deepEqual(
      meta.map((o) => o.key.replace(/\d+\.json$/, "K.json")),
      ["sites/big/manifest.json", "sites/big/deploys/20261128T010203Z-1a2b3c4d/shards/K.json"],
    );
    assert.equal(ops.length, 3, JSON.stringify(ops)); // + blobs/<hash>
  });

  test("warm request: at most one R2 read (the blob)", async () => {
    await fetchText(mf, "https://big.getai.page/section-8/page-4208");
    await takeOps(mf);
    const res = await fetchText(mf, "https://big.getai.page/section-8/page-4208");
    assert.equal(res.status, 200);
    const ops = r2reads(await takeOps(mf));
    assert.deepEqual(ops.map((o) => o.key.split("/")[0]), ["blobs"]);
  });

  test("an unchanged head is revalidated without a body after its TTL, and not re-parsed", async () => {
    await fetchText(mf, "https://small.getai.page/about");
    await sleep(TTL + 50);
    await takeOps(mf);
    const res = await fetchText(mf, "https://small.getai.page/about");
    assert.equal(res.status, 200, "served from the stale copy");
    const ops = await takeOps(mf, { settle: 100 });
    const heads = ops.filter((o) => o.key === "sites/small/manifest.json");
    assert.equal(heads.length, 1);
    assert.equal(heads[0].conditional, true, "onlyIf etagDoesNotMatch");
    // Nothing else but the blob: the shard is still cached (same deploy id).
    assert.deepEqual(ops.filter((o) => !o.key.startsWith("blobs/")).length, 1);
    // Within the TTL again: no head read at all.
    await fetchText(mf, "https://small.getai.page/about");
    assert.equal((await takeOps(mf)).filter((o) => o.key.startsWith("sites/")).length, 0);
  });

  test("a changed head is picked up (stale served meanwhile), new shards read once", async () => {
    const v2 = buildSite2(
      "small",
      { ...SMALL, "/index.html": { body: "<h1>v2 home</h1>", type: HTML } },
      { shards: 4, deployId: "20261129T010203Z-2b3c4d5e" },
    );
    await fetchText(mf, "https://small.getai.page/");
    await putAll(bucket, v2.objects);
    await sleep(TTL + 50);
    const stale = await fetchText(mf, "https://small.getai.page/");
    assert.equal(stale.text, "<h1>v1 home</h1>", "the stale copy, while revalidating");
    await sleep(100);
    const fresh = await fetchText(mf, "https://small.getai.page/");
    assert.equal(fresh.text, "<h1>v2 home</h1>");
  });

  test("an unknown host hammered 1,000 times costs one R2 read per TTL", async () => {
    await takeOps(mf);
    const start = Date.now();
    for (let i = 0; i < 1000; i++) {
      const res = await mf.dispatchFetch("https://junk-host.example/x");
      await res.arrayBuffer();
      assert.equal(res.status, 404);
    }
    const elapsed = Date.now() - start;
    const ops = await takeOps(mf);
    assert.ok(ops.length <= Math.ceil(elapsed / TTL) + 1, `${ops.length} reads in ${elapsed} ms`);
    assert.ok(ops.every((o) => o.key === "hosts/junk-host.example.json"));
  });

  test("junk tenants do not evict real ones", async () => {
    await fetchText(mf, "https://stemmed.getai.page/about");
    for (let i = 0; i < 3000; i++) {
      const res = await mf.dispatchFetch(`https://junk${i}.getai.page/`);
      await res.arrayBuffer();
    }
    await takeOps(mf);
    await fetchText(mf, "https://stemmed.getai.page/about");
    const ops = await takeOps(mf);
    assert.ok(!ops.some((o) => o.key.includes("/shards/")), "the shard is still cached");
  });
});
