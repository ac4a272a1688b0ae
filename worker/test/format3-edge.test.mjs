// Format 3 shards at the edge (issue 20): a shard read from R2 is put in caches.default under
// https://<PLATFORM_DOMAIN>/__cfsetup/shard/<hash> (like a blob), so a new isolate finds it there
// without an R2 read; a Cache API that throws falls through to R2 (never a 500).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";
import { PLATFORM_DOMAIN, ROUTER_SOURCE, buildDeploy3, headObject3, putAll } from "./helpers.mjs";

const WORKER_DIR = fileURLToPath(new URL("..", import.meta.url));

// Counts R2 reads of shards; /__cached?key=… answers from caches.default; /__fresh drops the
// isolate's caches by loading a second copy of the router (a new module instance).
const WRAPPER = `
import router from "./router.js";
let shardGets = 0;
let wrapped = null;
const broken = { match() { throw new Error("cache down"); }, put() { throw new Error("cache down"); } };
export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    if (url.pathname === "/__shardgets") { const n = shardGets; shardGets = 0; return Response.json(n); }
    if (url.pathname === "/__cached") {
      const hit = await caches.default.match(url.searchParams.get("key"));
      return Response.json(hit ? await hit.text() : null);
    }
    if (env.BREAK_CACHE && !globalThis.__broken) {
      Object.defineProperty(globalThis, "caches", { value: { default: broken }, configurable: true });
      globalThis.__broken = true;
    }
    if (wrapped === null) {
      const b = env.SITES;
      wrapped = { ...env, SITES: {
        get(k, o) { if (k.startsWith("shards/")) shardGets++; return b.get(k, o); },
        head(k) { return b.head(k); },
      } };
    }
    return router.fetch(request, wrapped, ctx);
  },
};
`;

function options(name, bindings = {}) {
  return {
    name,
    modules: [
      { type: "ESModule", path: WORKER_DIR + "__wrapper3.mjs", contents: WRAPPER },
      { type: "ESModule", path: WORKER_DIR + "router.js", contents: ROUTER_SOURCE },
    ],
    compatibilityDate: "2025-01-01",
    r2Buckets: { SITES: "sites" },
    bindings: { PLATFORM_DOMAIN, ...bindings },
  };
}

let mf;
let deploy;
before(async () => {
  deploy = buildDeploy3("edge", { "/index.html": { body: "<h1>edge</h1>", type: "text/html; charset=utf-8" } }, { shards: 1 });
  mf = new Miniflare({ cf: false, workers: [options("main"), options("other"), options("throwing", { BREAK_CACHE: "1" })] });
  await mf.ready;
  await putAll(await mf.getR2Bucket("SITES"), [...deploy.objects, headObject3("edge", deploy.route)]);
}, { timeout: 120_000 });

after(async () => {
  await mf?.dispose();
});

describe("format 3 shards at the edge", () => {
  test("a shard read from R2 is cached by hash on the platform domain", async () => {
    const main = await mf.getWorker("main");
    const res = await main.fetch("https://edge.getai.page/");
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "<h1>edge</h1>");
    assert.equal(await (await main.fetch("https://x.invalid/__shardgets")).json(), 1);
    const key = `https://${PLATFORM_DOMAIN}/__cfsetup/shard/${deploy.route.shard_hashes[0]}`;
    let cached = null;
    for (let i = 0; i < 50 && cached === null; i++) {
      cached = await (await main.fetch("https://x.invalid/__cached?key=" + encodeURIComponent(key))).json();
      if (cached === null) await sleep(20);
    }
    const shard = deploy.objects.find((o) => o.key.startsWith("shards/"));
    assert.equal(cached, shard.body.toString("utf8"));
    // Another isolate (worker) of the same location finds it at the edge: no R2 read of it.
    const other = await mf.getWorker("other");
    const again = await other.fetch("https://edge.getai.page/");
    assert.equal(await again.text(), "<h1>edge</h1>");
    assert.equal(await (await other.fetch("https://x.invalid/__shardgets")).json(), 0);
  });

  test("a Cache API that throws falls through to R2", async () => {
    const w = await mf.getWorker("throwing");
    const res = await w.fetch("https://edge.getai.page/");
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "<h1>edge</h1>");
    assert.equal(await (await w.fetch("https://x.invalid/__shardgets")).json(), 1);
  });
});
