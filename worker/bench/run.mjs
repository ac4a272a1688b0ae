#!/usr/bin/env node
// Router benchmark in miniflare (run by hand: `node worker/bench/run.mjs [sizes…]`).
//
// For sites of 1,000 / 20,000 / 100,000 files it compares
//   before: `git show main:worker/router.js` with a format-1 manifest (every file inline), and
//   after:  worker/router.js with a format-2 head and shards (shard_key "stem"),
// and prints, per size: the head/manifest size, parse time (JSON.parse + building the Map of the
// entries, in Node's V8: what the Worker does on a cold request), wall time per request cold
// (a tenant this isolate has never seen) and warm (median of 30), and R2 operations per page
// view (the HTML page plus 10 assets): cold, warm, warm after the TTL (head revalidation), and
// with the blob Cache API (after only; it has no effect on workers.dev).
// Wall times are dispatchFetch round trips from Node, so they include ~1 ms of miniflare IPC.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { Miniflare } from "miniflare";
import { buildDeploy, headObject, putAll, sha256 } from "../test/helpers.mjs";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const WORKER_DIR = fileURLToPath(new URL("..", import.meta.url));
const SIZES = process.argv.slice(2).map(Number).filter(Boolean);
const RUN_SIZES = SIZES.length ? SIZES : [1_000, 20_000, 100_000];
const COLD_SAMPLES = 3;
const TTL = 1000;

const before = execFileSync("git", ["show", "main:worker/router.js"], { cwd: WORKER_DIR, encoding: "utf8" });
const after = readFileSync(WORKER_DIR + "router.js", "utf8");
const WRAPPER = readFileSync(WORKER_DIR + "test/helpers.mjs", "utf8").match(/const COUNTING_WRAPPER = `([\s\S]*?)`;/)[1];

const HTML = "text/html; charset=utf-8";
const pageBody = Buffer.from("<!doctype html><title>page</title><h1>a page</h1>");
const assetBodies = Array.from({ length: 10 }, (_, j) => Buffer.from(`body{--a:${j}}`.repeat(50)));

function site(n) {
  const entries = {};
  const ph = sha256(pageBody);
  for (let i = 0; i < n - 11; i++) {
    entries[`/section-${i % 100}/page-${i}.html`] = { hash: ph, size: pageBody.length, content_type: HTML };
  }
  entries["/index.html"] = { hash: ph, size: pageBody.length, content_type: HTML };
  assetBodies.forEach((b, j) => {
    entries[`/assets/asset-${j}.css`] = { hash: sha256(b), size: b.length, content_type: "text/css; charset=utf-8" };
  });
  return entries;
}

function worker(name, source, bindings) {
  return {
    name,
    modules: [
      { type: "ESModule", path: HERE + `${name}-wrapper.mjs`, contents: WRAPPER },
      { type: "ESModule", path: HERE + "router.js", contents: source },
    ],
    compatibilityDate: "2025-01-01",
    r2Buckets: { SITES: "sites" },
    bindings: { PLATFORM_DOMAIN: "getai.page", MANIFEST_TTL_MS: String(TTL), ...bindings },
  };
}

function timeParse(text, pick) {
  const runs = [];
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    const data = JSON.parse(text);
    const files = new Map();
    for (const [p, e] of Object.entries(pick(data))) files.set(p, { hash: e.hash, size: e.size, contentType: e.content_type });
    runs.push(performance.now() - t0);
  }
  runs.sort((a, b) => a - b);
  return runs[2];
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (ms) => (ms < 10 ? ms.toFixed(1) : ms.toFixed(0));
const kb = (n) => (n >= 1e6 ? (n / 1e6).toFixed(1) + " MB" : n >= 1e4 ? (n / 1e3).toFixed(0) + " KB" : (n / 1e3).toFixed(1) + " KB");

async function main() {
  const mf = new Miniflare({
    cf: false,
    workers: [
      worker("before", before, {}),
      worker("after", after, { BLOB_CACHE: "off" }),
      worker("cached", after, {}),
    ],
  });
  await mf.ready;
  const bucket = await mf.getR2Bucket("SITES", "before");
  const w = {};
  for (const n of ["before", "after", "cached"]) w[n] = await mf.getWorker(n);
  await putAll(bucket, [pageBody, ...assetBodies].map((b) => ({ key: `blobs/${sha256(b)}`, body: b, contentType: "application/octet-stream" })));

  const get = async (name, url) => {
    const t0 = performance.now();
    const res = await w[name].fetch(url, { headers: { "accept-encoding": "identity" } });
    const body = await res.text();
    const ms = performance.now() - t0;
    if (res.status !== 200) throw new Error(`${name} ${url}: ${res.status} ${body}`);
    return ms;
  };
  const ops = async (name) => (await (await w[name].fetch("https://x.invalid/__ops")).json()).filter((o) => o.op === "get" || o.op === "head");
  const pageView = async (name, tenant) => {
    await get(name, `https://${tenant}.getai.page/section-3/page-903`);
    for (let j = 0; j < 10; j++) await get(name, `https://${tenant}.getai.page/assets/asset-${j}.css`);
  };

  // Warm up each isolate's JIT on a small site, so the first size is not charged for it.
  {
    const entries = site(20);
    const v1 = JSON.stringify({ format: 1, tenant: "warmup", files: entries });
    const d = buildDeploy("warmup", { entries }, { stem: true });
    await putAll(bucket, [
      { key: "sites/bwarmup/manifest.json", body: v1.replace('"tenant":"warmup"', '"tenant":"bwarmup"'), contentType: "application/json" },
      ...d.objects.filter((o) => o.key.includes("/shards/")),
      headObject("warmup", d.route),
    ]);
    for (let i = 0; i < 3; i++) {
      await get("before", "https://bwarmup.getai.page/index.html").catch(() => {});
      await get("after", "https://warmup.getai.page/").catch(() => {});
      await get("cached", "https://warmup.getai.page/").catch(() => {});
    }
  }

  const rows = [];
  for (const n of RUN_SIZES) {
    const entries = site(n);
    const v1 = JSON.stringify({ format: 1, tenant: "x", deploy_id: "20261128T010203Z-1a2b3c4d", created_at: "2026-11-28T01:02:03Z", files: entries });
    const tenants = Array.from({ length: COLD_SAMPLES + 2 }, (_, i) => `s${n}-${i}`);
    let head2 = null;
    let shard2 = null;
    for (const t of tenants) {
      await putAll(bucket, [{ key: `sites/b${t}/manifest.json`, body: v1.replace('"tenant":"x"', `"tenant":"b${t}"`), contentType: "application/json" }]);
      const d = buildDeploy(`a${t}`, { entries }, { stem: true });
      const objs = d.objects.filter((o) => o.key.includes("/shards/"));
      const head = headObject(`a${t}`, d.route);
      await putAll(bucket, [...objs, head]);
      head2 = head.body.toString();
      shard2 = objs[0].body.toString();
    }
    const r = { n, v1Size: v1.length, headSize: head2.length, shardSize: shard2.length, shards: JSON.parse(head2).live.shards };
    r.parseBefore = timeParse(v1, (d) => d.files);
    r.parseAfter = timeParse(head2, () => ({})) + timeParse(shard2, (d) => d.files);

    for (const [name, prefix] of [["before", "b"], ["after", "a"]]) {
      const cold = [];
      const coldOps = [];
      for (let i = 0; i < COLD_SAMPLES; i++) {
        await ops(name);
        cold.push(await get(name, `https://${prefix}${tenants[i]}.getai.page/section-3/page-903`));
        coldOps.push((await ops(name)).length);
      }
      const warmT = tenants[COLD_SAMPLES];
      await pageView(name, prefix + warmT);
      const warm = [];
      for (let i = 0; i < 30; i++) warm.push(await get(name, `https://${prefix}${warmT}.getai.page/section-3/page-903`));
      // Page views: cold (a tenant never seen), warm, and warm after the TTL.
      const fresh = tenants[COLD_SAMPLES + 1];
      await ops(name);
      await pageView(name, prefix + fresh);
      const pvCold = (await ops(name)).length;
      await pageView(name, prefix + fresh);
      const pvWarm = (await ops(name)).length;
      await sleep(TTL + 50);
      await pageView(name, prefix + fresh);
      await sleep(100);
      const pvTtl = (await ops(name)).length;
      r[name] = { cold: median(cold), coldOps: Math.max(...coldOps), warm: median(warm), pvCold, pvWarm, pvTtl };
    }
    // After, with the blob Cache API (routes / custom domains). A cold request to a tenant this
    // isolate has never seen, its blob already at the edge (blobs are shared by hash).
    await get("cached", `https://a${tenants[0]}.getai.page/section-3/page-903`);
    await sleep(200);
    await ops("cached");
    await get("cached", `https://a${tenants[1]}.getai.page/section-3/page-903`);
    r.coldCached = (await ops("cached")).length;
    const ct = "a" + tenants[COLD_SAMPLES + 1];
    await pageView("cached", ct);
    await sleep(200);
    await ops("cached");
    await pageView("cached", ct);
    r.pvCached = (await ops("cached")).length;
    rows.push(r);
    console.error(`done ${n}`);
  }
  await mf.dispose();

  console.log("| files | | manifest read cold | parse (V8) | cold request | warm request | R2 reads cold request | R2 reads / page view cold · warm · after TTL |");
  console.log("|---|---|---|---|---|---|---|---|");
  for (const r of rows) {
    const b = r.before;
    const a = r.after;
    console.log(`| ${r.n.toLocaleString("en")} | before | ${kb(r.v1Size)} manifest | ${fmt(r.parseBefore)} ms | ${fmt(b.cold)} ms | ${fmt(b.warm)} ms | ${b.coldOps} | ${b.pvCold} · ${b.pvWarm} · ${b.pvTtl} |`);
    console.log(`| | after | ${kb(r.headSize)} head + ${kb(r.shardSize)} shard (of ${r.shards}) | ${fmt(r.parseAfter)} ms | ${fmt(a.cold)} ms | ${fmt(a.warm)} ms | ${a.coldOps} (edge cache: ${r.coldCached}) | ${a.pvCold} · ${a.pvWarm} · ${a.pvTtl} (edge cache: ${r.pvCached}) |`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
