// The blob cache's edges: its key is on the platform's own domain
// (https://<PLATFORM_DOMAIN>/__cfsetup/blob/<hash>, one entry per hash for every tenant); a
// Cache API that throws or rejects falls through to R2 (never a 500); and a blob over 32 MiB,
// which is not tee()d, is served whole straight from R2 while the cache is filled from a second
// read in the background.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";
import { PLATFORM_DOMAIN, ROUTER_SOURCE, buildSite2, fetchText, putAll, sha256 } from "./helpers.mjs";

const WORKER_DIR = fileURLToPath(new URL("..", import.meta.url));

// A wrapper around the router: counts R2 reads of blobs, answers /__cached?key=… from
// caches.default, and with BREAK_CACHE set replaces the Cache API with one that fails.
const WRAPPER = `
import router from "./router.js";
let blobGets = 0;
let wrapped = null;
const broken = {
  throw: { match() { throw new Error("cache down"); }, put() { throw new Error("cache down"); } },
  reject: { match: async () => { throw new Error("cache down"); }, put: async () => { throw new Error("cache down"); } },
};
export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    if (url.pathname === "/__blobgets") { const n = blobGets; blobGets = 0; return Response.json(n); }
    if (url.pathname === "/__cached") {
      const hit = await caches.default.match(url.searchParams.get("key"));
      return Response.json(hit ? (await hit.arrayBuffer()).byteLength : null);
    }
    if (env.BREAK_CACHE && !globalThis.__broken) {
      Object.defineProperty(globalThis, "caches", { value: { default: broken[env.BREAK_CACHE] }, configurable: true });
      globalThis.__broken = true;
    }
    if (wrapped === null) {
      const b = env.SITES;
      wrapped = { ...env, SITES: {
        get(k, o) { if (k.startsWith("blobs/")) blobGets++; return b.get(k, o); },
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
      { type: "ESModule", path: WORKER_DIR + "__wrapper.mjs", contents: WRAPPER },
      { type: "ESModule", path: WORKER_DIR + "router.js", contents: ROUTER_SOURCE },
    ],
    compatibilityDate: "2025-01-01",
    r2Buckets: { SITES: "sites" },
    bindings: { PLATFORM_DOMAIN, ...bindings },
  };
}

const BIG = 40 * 1024 * 1024;
const bigBytes = new Uint8Array(BIG);
for (let i = 0; i < BIG; i += 4096) bigBytes[i] = (i / 4096) & 0xff; // fixed, not all zero
const files = {
  "/index.html": { body: "<h1>home</h1>", type: "text/html; charset=utf-8" },
  "/app.js": { body: "console.log('app')", type: "text/javascript" },
  "/big.bin": { body: bigBytes, type: "application/octet-stream" },
};
const APP_HASH = sha256(Buffer.from("console.log('app')"));
const BIG_HASH = sha256(bigBytes);

let mf;

before(async () => {
  mf = new Miniflare({
    cf: false,
    workers: [
      options("main"),
      options("throwing", { BREAK_CACHE: "throw" }),
      options("rejecting", { BREAK_CACHE: "reject" }),
    ],
  });
  await mf.ready;
  await putAll(await mf.getR2Bucket("SITES"), buildSite2("edge", files).objects);
}, { timeout: 120_000 });

after(async () => {
  await mf?.dispose();
});

async function worker(name) {
  const w = await mf.getWorker(name);
  return {
    get: async (path, headers = {}) => {
      const res = await w.fetch("https://edge.getai.page" + path, { headers: { "accept-encoding": "identity", ...headers } });
      return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
    },
    blobGets: async () => (await w.fetch("https://x.invalid/__blobgets")).json(),
    cached: async (key) => (await w.fetch("https://x.invalid/__cached?key=" + encodeURIComponent(key))).json(),
  };
}

describe("blob cache key", () => {
  test("https://<PLATFORM_DOMAIN>/__cfsetup/blob/<hash>", async () => {
    const w = await worker("main");
    const res = await w.get("/app.js");
    assert.equal(res.body.toString(), "console.log('app')");
    let n = null;
    for (let i = 0; i < 50 && n === null; i++) {
      await sleep(20); // the put runs in waitUntil
      n = await w.cached(`https://getai.page/__cfsetup/blob/${APP_HASH}`);
    }
    assert.equal(n, Buffer.byteLength("console.log('app')"));
    assert.equal(await w.cached(`https://blobs.cfsetup.invalid/${APP_HASH}`), null, "the old invalid-host key is gone");
  });
});

describe("a failing Cache API falls through to R2", () => {
  for (const name of ["throwing", "rejecting"]) {
    test(`${name} match and put: every request is served from R2, never a 500`, async () => {
      const w = await worker(name);
      await w.blobGets();
      for (let i = 0; i < 3; i++) {
        const res = await w.get("/app.js");
        assert.equal(res.status, 200);
        assert.equal(res.body.toString(), "console.log('app')");
      }
      const ranged = await w.get("/app.js", { range: "bytes=0-6" });
      assert.equal(ranged.status, 206);
      assert.equal(ranged.body.toString(), "console");
      const head = await (await mf.getWorker(name)).fetch("https://edge.getai.page/app.js", { method: "HEAD" });
      assert.equal(head.status, 200);
      await sleep(50);
      assert.equal(await w.blobGets(), 4);
    });
  }
});

describe("a blob over 32 MiB", () => {
  test("is served whole from R2 (not tee'd), and cached from a second read in the background", { timeout: 120_000 }, async () => {
    const w = await worker("main");
    await w.blobGets();
    const res = await w.get("/big.bin");
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-length"), String(BIG));
    assert.equal(res.body.length, BIG);
    assert.equal(sha256(res.body), BIG_HASH);
    let n = null;
    for (let i = 0; i < 200 && n === null; i++) {
      await sleep(50);
      n = await w.cached(`https://getai.page/__cfsetup/blob/${BIG_HASH}`);
    }
    assert.equal(n, BIG);
    assert.equal(await w.blobGets(), 2, "one read for the visitor, one for the cache");
    const again = await w.get("/big.bin");
    assert.equal(sha256(again.body), BIG_HASH);
    assert.equal(await w.blobGets(), 0, "then served from the cache");
  });
});
