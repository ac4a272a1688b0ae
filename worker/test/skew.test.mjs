// Skew protection (issue 19): for the retention window after a switch, a content-hashed asset the
// live deploy lacks is served from the retained index; HTML and unhashed files never are, the
// window is honoured per entry and for the whole index, and a miss costs at most one extra read.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";

import { buildDeploy, fetchText, startCountingRouter, takeOps, sha256 } from "./helpers.mjs";
import { isSkewAsset } from "../src/heads.js";

const js = (body) => ({ body, type: "text/javascript" });
const h = (body) => ({ body, type: "text/html; charset=utf-8" });
const FUTURE = "2999-01-01T00:00:00Z";
const PAST = "2020-01-01T00:00:00Z";

function entry(body, type, until) {
  return { hash: sha256(Buffer.from(body)), size: Buffer.byteLength(body), content_type: type, until, from: "20261201T000000Z-11111111" };
}

function head(tenant, live, retainedUntil) {
  const data = { format: 2, tenant, live, kept: [live.deploy_id], previews: {}, updated_at: FUTURE, updated_by: "t" };
  if (retainedUntil) data.retained = { until: retainedUntil, files: 2, deploys: 1 };
  return { key: `sites/${tenant}/manifest.json`, body: Buffer.from(JSON.stringify(data)), contentType: "application/json" };
}

let mf;
before(async () => {
  // The old deploy's blobs are still in the bucket: the retained index names them.
  const old = buildDeploy("acme", {
    "/assets/app.4f9c2a1b.js": js("old bundle"),
    "/assets/gone.1234abcd.js": js("ended"),
    "/leak.pdf": { body: "leaked", type: "application/pdf" },
  }, { deployId: "20261201T000000Z-11111111" });
  const live = buildDeploy("acme", { "/index.html": h("new home"), "/assets/app.9e8d7c6b.js": js("new bundle") });
  const closed = buildDeploy("closed", { "/index.html": h("x") }, { deployId: "20261202T000000Z-22222222" });
  const index = {
    files: {
      "/assets/app.4f9c2a1b.js": entry("old bundle", "text/javascript", FUTURE),
      "/assets/gone.1234abcd.js": entry("ended", "text/javascript", PAST),
    },
  };
  const objects = [
    ...old.objects.filter((o) => o.key.startsWith("blobs/")),
    ...live.objects,
    ...closed.objects,
    { key: `sites/acme/deploys/${live.route.deploy_id}/retained.json`, body: Buffer.from(JSON.stringify(index)), contentType: "application/json" },
    head("acme", live.route, FUTURE),
    { key: `sites/closed/deploys/${closed.route.deploy_id}/retained.json`, body: Buffer.from(JSON.stringify(index)), contentType: "application/json" },
    head("closed", closed.route, PAST),
  ];
  ({ mf } = await startCountingRouter({ objects, bindings: { BLOB_CACHE: "off" } }));
}, { timeout: 60_000 });

after(async () => {
  await mf?.dispose();
});

describe("skew protection", () => {
  test("an old hashed asset is served during its window; the live one as usual", async () => {
    const res = await fetchText(mf, "https://acme.getai.page/assets/app.4f9c2a1b.js");
    assert.equal(res.status, 200);
    assert.equal(res.text, "old bundle");
    assert.match(res.headers.get("cache-control"), /immutable/);
    const now = await fetchText(mf, "https://acme.getai.page/assets/app.9e8d7c6b.js");
    assert.equal(now.text, "new bundle");
  });

  test("a removed unhashed file and HTML are gone at once; an entry past its window too", async () => {
    for (const path of ["/leak.pdf", "/old.html", "/assets/gone.1234abcd.js", "/assets/never.abcdef12.js"]) {
      const res = await fetchText(mf, `https://acme.getai.page${path}`);
      assert.equal(res.status, 404, path);
    }
  });

  test("after the head's window the index is never read", async () => {
    await takeOps(mf);
    const res = await fetchText(mf, "https://closed.getai.page/assets/app.4f9c2a1b.js");
    assert.equal(res.status, 404);
    const ops = await takeOps(mf);
    assert.ok(!ops.some((o) => String(o.key || o).includes("retained.json")), JSON.stringify(ops));
  });

  test("misses cost at most one read of the index, then none", async () => {
    await fetchText(mf, "https://acme.getai.page/assets/a.aaaaaaaa.js");
    await takeOps(mf);
    for (const p of ["/assets/b.bbbbbbbb.js", "/assets/c.cccccccc.js", "/assets/app.4f9c2a1b.js"]) {
      await fetchText(mf, `https://acme.getai.page${p}`);
    }
    const ops = await takeOps(mf);
    assert.ok(!ops.some((o) => String(o.key || o).includes("retained.json")), JSON.stringify(ops));
  });

  test("the hashed-name rule matches deploy-site's", () => {
    for (const yes of ["/a/app.4f9c2a1b.js", "/index-DiwrgTda.js", "/logo-3f2a9c1b.png", "/index-a-b3Xk9z.js"]) assert.ok(isSkewAsset(yes), yes);
    for (const no of ["/index.html", "/app.4f9c2a1b.html", "/my-background.png", "/app.js", "/4f9c2a1b"]) assert.ok(!isSkewAsset(no), no);
  });
});
