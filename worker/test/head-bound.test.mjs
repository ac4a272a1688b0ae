// The head's documented size bound (docs/storage-layout.md, "Head"): 1 MiB. The router checks the
// R2 object's size before reading the body, and a head over the bound is neither parsed nor
// cached: that tenant answers 503 (no-store) and a log line names tenant and size; every other
// tenant is served as usual.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Miniflare } from "miniflare";
import { buildDeploy, buildSite2, countingWorkerOptions, fetchText, headObject, putAll, takeOps } from "./helpers.mjs";

const BOUND = 1_048_576;
const h = (body) => ({ body, type: "text/html; charset=utf-8" });
let mf;
let bucket;
let stderr = "";

/** A valid format-2 head of exactly `size` bytes (padded in `updated_by`, which the router ignores). */
function headOfSize(tenant, route, size) {
  const o = headObject(tenant, route);
  const data = JSON.parse(o.body.toString("utf8"));
  data.updated_by = "";
  const bare = Buffer.byteLength(JSON.stringify(data));
  data.updated_by = "x".repeat(size - bare);
  const body = Buffer.from(JSON.stringify(data));
  assert.equal(body.length, size);
  return { ...o, body };
}

const big = buildDeploy("big", { "/index.html": h("big home") });
const edge = buildDeploy("edge", { "/index.html": h("edge home") });

before(async () => {
  mf = new Miniflare({
    cf: false,
    ...countingWorkerOptions({ MANIFEST_TTL_MS: "0" }),
    handleRuntimeStdio(out, err) {
      out.resume();
      err.on("data", (c) => {
        stderr += c;
      });
    },
  });
  await mf.ready;
  bucket = await mf.getR2Bucket("SITES");
  await putAll(bucket, [
    ...big.objects,
    headOfSize("big", big.route, BOUND + 1),
    ...edge.objects,
    headOfSize("edge", edge.route, BOUND),
    ...buildSite2("small", { "/index.html": h("small home") }).objects,
  ]);
}, { timeout: 60_000 });

after(async () => {
  await mf?.dispose();
});

describe("head size bound (1 MiB)", () => {
  test("a head over the bound: 503, no-store, for that tenant only, and a log line", async () => {
    const res = await fetchText(mf, "https://big.getai.page/");
    assert.equal(res.status, 503);
    assert.equal(res.headers.get("cache-control"), "no-store");
    assert.equal(res.headers.get("x-tenant"), "big");
    assert.doesNotMatch(res.text, /manifest|bytes|sites\//, "no internals in the body");
    const other = await fetchText(mf, "https://small.getai.page/");
    assert.equal(other.status, 200);
    assert.equal(other.text, "small home");
    // The log reaches the test through workerd's stderr; give the pipe a moment.
    for (let i = 0; i < 50 && !stderr.includes("tenant big"); i++) await new Promise((r) => setTimeout(r, 20));
    assert.match(stderr, /tenant big: head sites\/big\/manifest\.json is 1048577 bytes, over its 1048576-byte bound/);
  });

  test("a head of exactly the bound is served", async () => {
    const res = await fetchText(mf, "https://edge.getai.page/");
    assert.equal(res.status, 200);
    assert.equal(res.text, "edge home");
  });

  test("the refusal is kept, not the head: unchanged, it is revalidated without a body; shrunk, it is served", async () => {
    await fetchText(mf, "https://big.getai.page/");
    await takeOps(mf);
    const again = await fetchText(mf, "https://big.getai.page/");
    assert.equal(again.status, 503);
    const ops = await takeOps(mf);
    assert.deepEqual(ops, [{ op: "get", key: "sites/big/manifest.json", conditional: true, range: false }]);
    await putAll(bucket, [headObject("big", big.route)]);
    const fixed = await fetchText(mf, "https://big.getai.page/");
    assert.equal(fixed.status, 200);
    assert.equal(fixed.text, "big home");
  });
});
