// Shared helpers for the router tests: build the real bucket layout and run router.js in miniflare.
// (node --test test/ also loads this file as a "test file"; it defines no tests, so it just passes.)
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import http from "node:http";
import { Miniflare } from "miniflare";

export const ROUTER_PATH = fileURLToPath(new URL("../router.js", import.meta.url));
export const ROUTER_SOURCE = readFileSync(ROUTER_PATH, "utf8");
export const PLATFORM_DOMAIN = "getai.page";

export function sha256(bytes) {
  return createHash("sha256").update(bytes).digest("hex");
}

function toBytes(body) {
  return typeof body === "string" ? Buffer.from(body, "utf8") : Buffer.from(body);
}

/**
 * Builds a tenant's objects the way deploy-site does.
 * files: { "/path": { body: string|Uint8Array, type: "content/type" } }
 * Returns { manifest, objects: [{ key, body, contentType }] } (blobs first, manifest last).
 */
export function buildSite(tenant, files, { deployId = "20261128T010203Z-1a2b3c4d" } = {}) {
  const objects = [];
  const entries = {};
  for (const [path, { body, type }] of Object.entries(files)) {
    const bytes = toBytes(body);
    const hash = sha256(bytes);
    entries[path] = { hash, size: bytes.length, content_type: type };
    objects.push({ key: `blobs/${hash}`, body: bytes, contentType: type });
  }
  const manifest = {
    format: 1,
    tenant,
    deploy_id: deployId,
    created_at: "2026-11-28T01:02:03Z",
    files: entries,
  };
  objects.push({
    key: `sites/${tenant}/manifest.json`,
    body: Buffer.from(JSON.stringify(manifest)),
    contentType: "application/json",
  });
  return { manifest, objects };
}

export function hostEntry(host, tenant) {
  return {
    key: `hosts/${host}.json`,
    body: Buffer.from(JSON.stringify({ tenant })),
    contentType: "application/json",
  };
}

/** Starts router.js in miniflare, offline (cf: false), and seeds the SITES bucket. */
export async function startRouter({ objects = [], bindings = {} } = {}) {
  const mf = new Miniflare({
    modules: true,
    scriptPath: ROUTER_PATH,
    script: ROUTER_SOURCE,
    compatibilityDate: "2025-01-01",
    cf: false,
    r2Buckets: { SITES: "sites" },
    bindings: { PLATFORM_DOMAIN, ...bindings },
  });
  try {
    await mf.ready;
    const bucket = await mf.getR2Bucket("SITES");
    await putAll(bucket, objects);
    return { mf, bucket };
  } catch (err) {
    // The caller never gets `mf`, so dispose here: a live workerd would keep the test process up.
    await mf.dispose().catch(() => {});
    throw err;
  }
}

export async function putAll(bucket, objects) {
  for (const o of objects) {
    // A plain Uint8Array over its own ArrayBuffer: miniflare's proxy rejects pooled Buffers.
    const body = typeof o.body === "string" ? o.body : new Uint8Array(o.body);
    await bucket.put(o.key, body, { httpMetadata: { contentType: o.contentType } });
  }
}

/**
 * dispatchFetch with `accept-encoding: identity`: otherwise miniflare emulates the edge's gzip
 * and drops Content-Length, which the tests want to see.
 */
export async function fetchText(mf, url, init = {}) {
  const headers = { "accept-encoding": "identity", ...(init.headers || {}) };
  const res = await mf.dispatchFetch(url, { redirect: "manual", ...init, headers });
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: res.headers, body, text: body.toString("utf8") };
}

export const SECURITY_HEADERS = {
  "x-content-type-options": "nosniff",
  "x-frame-options": "SAMEORIGIN",
  "referrer-policy": "strict-origin-when-cross-origin",
};

export const CC = {
  html: "public, max-age=0, must-revalidate",
  asset: "public, max-age=3600",
  immutable: "public, max-age=31536000, immutable",
  notFound: "public, max-age=0, must-revalidate",
  noStore: "no-store",
};

// A PNG header plus bytes that are not valid UTF-8.
export const PNG_BYTES = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0xff, 0xfe, 0x00, 0x01]);

export const ACME_FILES = {
  "/index.html": { body: "<h1>acme home</h1>", type: "text/html; charset=utf-8" },
  "/about.html": { body: "<h1>about</h1>", type: "text/html; charset=utf-8" },
  "/docs/index.html": { body: "<h1>docs</h1>", type: "text/html; charset=utf-8" },
  "/docs/intro.html": { body: "<h1>intro</h1>", type: "text/html; charset=utf-8" },
  // `/plain` exists as a file AND as `/plain.html` and `/plain/index.html`: the file wins.
  "/plain": { body: "plain file", type: "text/plain; charset=utf-8" },
  "/plain.html": { body: "<h1>plain.html</h1>", type: "text/html; charset=utf-8" },
  "/plain/index.html": { body: "<h1>plain dir</h1>", type: "text/html; charset=utf-8" },
  // `/blog` has both `.html` and a directory index: `.html` wins.
  "/blog.html": { body: "<h1>blog.html</h1>", type: "text/html; charset=utf-8" },
  "/blog/index.html": { body: "<h1>blog dir</h1>", type: "text/html; charset=utf-8" },
  "/css/site.css": { body: "body{color:red}", type: "text/css; charset=utf-8" },
  "/css/main-8d7e6f5a4b.css": { body: "main{}", type: "text/css; charset=utf-8" },
  "/js/app.3f2a9c1b.js": { body: "console.log(1)", type: "text/javascript; charset=utf-8" },
  "/js/3f2a9c1b.js": { body: "console.log(2)", type: "text/javascript; charset=utf-8" },
  "/js/app.3f2a9c1.js": { body: "console.log(3)", type: "text/javascript; charset=utf-8" },
  "/js/app.3f2a9c1bxx.js": { body: "console.log(4)", type: "text/javascript; charset=utf-8" },
  "/js/app-3f2a9c1b": { body: "console.log(5)", type: "text/javascript; charset=utf-8" },
  "/page.3f2a9c1b.html": { body: "<h1>hashed html</h1>", type: "text/html; charset=utf-8" },
  "/img/logo.png": { body: PNG_BYTES, type: "image/png" },
  "/a\\b.txt": { body: "backslash file", type: "text/plain; charset=utf-8" },
  "/hello world.html": { body: "<h1>spaces</h1>", type: "text/html; charset=utf-8" },
  "/café.html": { body: "<h1>café</h1>", type: "text/html; charset=utf-8" },
  "/404.html": { body: "<h1>acme: page not found</h1>", type: "text/html; charset=utf-8" },
};

export const OTHER_FILES = {
  "/index.html": { body: "<h1>other home</h1>", type: "text/html; charset=utf-8" },
  "/secret.txt": { body: "other tenant secret", type: "text/plain; charset=utf-8" },
};

/** The standard fixture: acme (with 404.html), other (without), host entries. */
export function standardObjects() {
  return [
    ...buildSite("acme", ACME_FILES).objects,
    ...buildSite("other", OTHER_FILES).objects,
    hostEntry("www.acme-corp.com", "acme"),
    hostEntry("shop.acme.getai.page", "other"),
    hostEntry("xn--caf-dma.example", "other"),
  ];
}

// ---------------------------------------------------------------------------------------------
// Format 2 (docs/storage-layout.md): deploy copies, shards, heads, previews.

/** 32-bit FNV-1a over the UTF-8 bytes of s (the shard hash of the storage layout). */
export function fnv1a32(s) {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(s, "utf8")) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** The shard key with `shard_key: "stem"`: `/a/index.html` → `/a`, `/a.html` → `/a`. */
export function shardStem(path) {
  let s = path;
  if (s.endsWith("/index.html")) s = s.slice(0, -"/index.html".length);
  else if (s.endsWith(".html")) s = s.slice(0, -".html".length);
  return s === "" ? "/" : s;
}

export function defaultShards(n) {
  let s = 1;
  while (s < Math.ceil(n / 512)) s *= 2;
  return Math.min(Math.max(1, s), 1024);
}

/**
 * One deploy of a tenant, format 2. files as for buildSite, or pre-hashed entries with
 * `{ entries: {path: {hash,size,content_type}} }` (no blobs then).
 * Returns { route, objects: blobs, shards and the deploy copy }.
 */
export function buildDeploy(tenant, files, opts = {}) {
  const deployId = opts.deployId || "20261128T010203Z-1a2b3c4d";
  const objects = [];
  let entries = {};
  if (files.entries) {
    entries = files.entries;
  } else {
    for (const [path, { body, type }] of Object.entries(files)) {
      const bytes = toBytes(body);
      const hash = sha256(bytes);
      entries[path] = { hash, size: bytes.length, content_type: type };
      objects.push({ key: `blobs/${hash}`, body: bytes, contentType: type });
    }
  }
  const paths = Object.keys(entries);
  const shards = opts.shards || defaultShards(paths.length);
  const stem = opts.stem || false;
  const shardFiles = Array.from({ length: shards }, () => ({}));
  for (const p of paths) {
    shardFiles[fnv1a32(stem ? shardStem(p) : p) & (shards - 1)][p] = entries[p];
  }
  const pages = paths.filter((p) => p.endsWith("/404.html"));
  pages.sort((a, b) => b.split("/").length - a.split("/").length || (a < b ? -1 : 1));
  const notFound =
    opts.notFound || (entries["/404.html"] ? "404" : entries["/index.html"] ? "spa" : "none");
  const route = {
    deploy_id: deployId,
    created_at: "2026-11-28T01:02:03Z",
    digest: sha256(Buffer.from(JSON.stringify(entries))),
    files: paths.length,
    bytes: paths.reduce((n, p) => n + entries[p].size, 0),
    shards,
    ...(stem ? { shard_key: "stem" } : {}),
    not_found: notFound,
    not_found_pages: pages,
    redirects: opts.redirects || { static: {}, dynamic: [] },
    headers: opts.headers || [],
  };
  shardFiles.forEach((f, k) => {
    objects.push({
      key: `sites/${tenant}/deploys/${deployId}/shards/${k}.json`,
      body: Buffer.from(JSON.stringify({ files: f })),
      contentType: "application/json",
    });
  });
  objects.push({
    key: `sites/${tenant}/deploys/${deployId}.json`,
    body: Buffer.from(
      JSON.stringify({ format: 2, tenant, deploy_id: deployId, created_at: route.created_at, route, files: entries }),
    ),
    contentType: "application/json",
  });
  return { route, objects };
}

export function headObject(tenant, live, { previews = {}, kept } = {}) {
  const head = {
    format: 2,
    tenant,
    live,
    kept: kept || [live.deploy_id],
    previews,
    updated_at: "2026-11-28T01:02:04Z",
    updated_by: `deploy-site ${live.deploy_id}`,
  };
  return { key: `sites/${tenant}/manifest.json`, body: Buffer.from(JSON.stringify(head)), contentType: "application/json" };
}

/** A format-2 tenant: its deploy and the head naming it (last). Returns { route, objects }. */
export function buildSite2(tenant, files, opts = {}) {
  const { route, objects } = buildDeploy(tenant, files, opts);
  return { route, objects: [...objects, headObject(tenant, route, opts)] };
}

// ---------------------------------------------------------------------------------------------
// A router whose R2 binding counts its operations: GET /__ops on any host returns (and clears)
// [{op, key, conditional, range}].

const COUNTING_WRAPPER = `
import router from "./router.js";
const ops = [];
let wrapped = null;
function wrap(b) {
  return {
    get(key, opts) {
      ops.push({ op: "get", key, conditional: !!(opts && opts.onlyIf), range: !!(opts && opts.range) });
      return b.get(key, opts);
    },
    head(key) { ops.push({ op: "head", key }); return b.head(key); },
    put(key, v, o) { ops.push({ op: "put", key }); return b.put(key, v, o); },
    list(o) { ops.push({ op: "list" }); return b.list(o); },
    delete(k) { ops.push({ op: "delete", key: k }); return b.delete(k); },
  };
}
export default {
  async fetch(request, env, ctx) {
    if (new URL(request.url).pathname === "/__ops") return Response.json(ops.splice(0));
    if (wrapped === null) wrapped = { ...env, SITES: wrap(env.SITES) };
    return router.fetch(request, wrapped, ctx);
  },
};
`;

const WORKER_DIR = fileURLToPath(new URL("..", import.meta.url));

export function countingWorkerOptions(bindings = {}, name) {
  return {
    ...(name ? { name } : {}),
    modules: [
      { type: "ESModule", path: WORKER_DIR + "__counting.mjs", contents: COUNTING_WRAPPER },
      { type: "ESModule", path: WORKER_DIR + "router.js", contents: ROUTER_SOURCE },
    ],
    compatibilityDate: "2025-01-01",
    r2Buckets: { SITES: "sites" },
    bindings: { PLATFORM_DOMAIN, ...bindings },
  };
}

/** Like startRouter, with the counting wrapper. */
export async function startCountingRouter({ objects = [], bindings = {} } = {}) {
  const mf = new Miniflare({ cf: false, ...countingWorkerOptions(bindings) });
  try {
    await mf.ready;
    const bucket = await mf.getR2Bucket("SITES");
    await putAll(bucket, objects);
    return { mf, bucket };
  } catch (err) {
    await mf.dispose().catch(() => {});
    throw err;
  }
}

/** The R2 operations since the last call (waits a moment for background revalidations). */
export async function takeOps(mf, { settle = 30 } = {}) {
  if (settle) await new Promise((r) => setTimeout(r, settle));
  const res = await mf.dispatchFetch("https://ops.invalid/__ops");
  return res.json();
}

/**
 * A raw HTTP/1.1 GET to miniflare's entry socket (base = await mf.ready) with exactly these
 * headers. dispatchFetch goes through undici's fetch, which overwrites `Sec-Fetch-Mode` with
 * `cors`, so navigation requests must be sent this way.
 */
export function rawRequest(base, path, headers) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: base.hostname, port: base.port, path, headers }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(chunks).toString("utf8") }));
    });
    req.on("error", reject);
    req.end();
  });
}

// ---------------------------------------------------------------------------------------------
// Format 3 (docs/storage-layout.md "Shards"): content-addressed shards `shards/<sha256>.json`.

/**
 * One deploy of a tenant, format 3: as buildDeploy, but each shard is stored under the SHA-256
 * of its bytes and the Route lists them (`shard_hashes`); the copy is the Route alone.
 * Returns { route, objects } (shards, blobs and the copy).
 */
export function buildDeploy3(tenant, files, opts = {}) {
  const two = buildDeploy(tenant, files, { stem: true, ...opts });
  const deployId = two.route.deploy_id;
  const objects = [];
  const hashes = [];
  for (const o of two.objects) {
    const m = o.key.match(/\/shards\/(\d+)\.json$/);
    if (m) {
      const hash = sha256(o.body);
      hashes[Number(m[1])] = hash;
      objects.push({ key: `shards/${hash}.json`, body: o.body, contentType: "application/json" });
    } else if (o.key.startsWith("blobs/")) {
      objects.push(o);
    }
  }
  const route = { ...two.route, shard_hashes: hashes };
  objects.push({
    key: `sites/${tenant}/deploys/${deployId}.json`,
    body: Buffer.from(JSON.stringify({ format: 3, tenant, deploy_id: deployId, created_at: route.created_at, route })),
    contentType: "application/json",
  });
  return { route, objects };
}

/** A format 3 head. */
export function headObject3(tenant, live, opts = {}) {
  const o = headObject(tenant, live, opts);
  const head = JSON.parse(o.body.toString("utf8"));
  head.format = 3;
  return { ...o, body: Buffer.from(JSON.stringify(head)) };
}
