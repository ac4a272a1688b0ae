// Shared helpers for the router tests: build the real bucket layout and run router.js in miniflare.
// (node --test test/ also loads this file as a "test file"; it defines no tests, so it just passes.)
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
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
