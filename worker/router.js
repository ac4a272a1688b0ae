/**
 * cfsetup router Worker: serves every tenant's static site out of one R2 bucket.
 *
 * This file is embedded in the cfsetup binary (`include_str!`) and uploaded as-is as the main
 * module `router.js` (`application/javascript+module`). It has no dependencies and no build step.
 * docs/storage-layout.md is the contract for everything it reads.
 *
 * Bindings
 *   SITES               R2 bucket holding every tenant.
 *   PLATFORM_DOMAIN     plain text, e.g. "getai.page": `acme.getai.page` is tenant `acme`, and
 *                       `feature-x--acme.getai.page` is acme's preview `feature-x`.
 *   MANIFEST_TTL_MS     optional; a head or host entry younger than this is used without asking R2.
 *                       Default 5000. 0 = ask R2 on every request (still a conditional read).
 *   MANIFEST_MAX_STALE_MS optional; for this long after the TTL a stale head is served while it is
 *                       revalidated in the background (ctx.waitUntil). Default 60000.
 *   CACHE_MAX_BYTES     optional; the in-isolate cache's budget (heads, shards, host entries).
 *                       Default 48 MiB.
 *   BLOB_CACHE          optional; "off" disables the Cache API for blobs.
 *
 * Per request (cost does not grow with the site or the fleet)
 *   1. GET and HEAD only (405 with `Allow: GET, HEAD`); `/_health` on any host is 200 "ok".
 *   2. Host → tenant: `<slug>.<domain>` directly, `<name>--<slug>.<domain>` a preview, anything
 *      else `hosts/<host>.json` (cached; a miss goes to a separate small negative cache).
 *   3. The head `sites/<t>/manifest.json` is cached; after MANIFEST_TTL_MS it is revalidated with
 *      `onlyIf: {etagDoesNotMatch}` (an unchanged head returns no body and is not re-parsed), and
 *      the stale copy is served meanwhile. Format 1 (files inline) and format 2 are served.
 *   4. Format 2 files live in shards `sites/<t>/deploys/<id>/shards/<k>.json`, immutable, cached
 *      by deploy id and k. Every lookup of one request is gathered first and the shards it needs
 *      are read in parallel (with `shard_key: "stem"` they are all one shard).
 *   5. `_redirects` rules (compiled once per head, first match by line wins; 200 = rewrite), then
 *      canonical URLs: `/a.html` → 308 `/a`, `/a/index.html` → 308 `/a/`, `/d` → 308 `/d/` when
 *      only `/d/index.html` exists, `/a/` → 308 `/a` when only `/a.html` exists; query kept.
 *      Every canonical redirect targets a URL that serves a file directly, so there are no chains.
 *   6. Not found: `404` (nearest `…/404.html` up the tree, status 404), `spa` (`/index.html` with
 *      200 for an extensionless path), `none` (plain 404).
 *   7. Files: ETag "<hash>", If-None-Match → 304, Range (single range → 206, unsatisfiable → 416,
 *      several → 200 whole, If-Range honoured), Accept-Ranges: bytes. Blob bytes come from
 *      `caches.default` keyed by hash when possible (not on *.workers.dev), else R2.
 *   8. `_headers` rules apply to file responses (all matching blocks; values of one name joined
 *      with ", "; unset removes; x-content-type-options cannot be changed). Previews carry
 *      `X-Robots-Tag: noindex`.
 *
 *   SECURITY: the request path is only ever a key into a files map. R2 is read only at
 *   `blobs/<hash>` (64 lowercase hex, from the manifest), `sites/<tenant>/manifest.json` (tenant a
 *   DNS-label slug), `sites/<tenant>/deploys/<id>/shards/<k>.json` (id checked, k an integer) and
 *   `hosts/<host>.json` (host checked to be [a-z0-9.-]). No path can read another tenant's files.
 *
 * Cache-Control
 *   text/html public, max-age=0, must-revalidate; content-hashed names (a segment of ≥ 8 hex
 *   before the extension: app.3f2a9c1b.js) public, max-age=31536000, immutable; other assets
 *   public, max-age=3600; 404s and redirects public, max-age=0, must-revalidate; health, 400,
 *   405, 500 no-store. Every response: X-Content-Type-Options: nosniff, X-Frame-Options:
 *   SAMEORIGIN, Referrer-Policy: strict-origin-when-cross-origin; once the tenant is known x-tenant.
 */

const CACHE_TTL_MS = 5000;
const MAX_STALE_MS = 60_000;
const CACHE_MAX_BYTES = 48 * 1024 * 1024;
/** The negative cache (unknown hosts and tenants): small, so junk cannot take memory. */
const NEG_CACHE_BYTES = 256 * 1024;
/** Immutable objects (shards) and heads not revalidated for this long are dropped. */
const KEEP_MS = 10 * 60_000;

const SLUG_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const HASH_RE = /^[0-9a-f]{64}$/;
const HOST_RE = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;
const DEPLOY_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;
const HEADER_VALUE_RE = /^[\x20-\x7e\x80-\xff]*$/;
const HEADER_NAME_RE = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;
const HASHED_SEGMENT_RE = /^[0-9a-f]{8,}$/i;
const REDIRECT_CODES = new Set([200, 301, 302, 303, 307, 308]);
/** Names a `_headers` rule may not touch (framing, and the one security header that stays). */
const PROTECTED_HEADERS = new Set([
  "x-content-type-options",
  "content-length",
  "content-range",
  "transfer-encoding",
  "connection",
]);
const BLOB_CACHE_ORIGIN = "https://blobs.cfsetup.invalid/";

const SECURITY_HEADERS = {
  "x-content-type-options": "nosniff",
  "x-frame-options": "SAMEORIGIN",
  "referrer-policy": "strict-origin-when-cross-origin",
};

const CC_HTML = "public, max-age=0, must-revalidate";
const CC_ASSET = "public, max-age=3600";
const CC_IMMUTABLE = "public, max-age=31536000, immutable";
const CC_NOT_FOUND = "public, max-age=0, must-revalidate";
const CC_REDIRECT = "public, max-age=0, must-revalidate";
const CC_NO_STORE = "no-store";

/** Thrown (and turned into a 500) when stored platform data is not what the contract says. */
class ConfigError extends Error {}

// ---------------------------------------------------------------------------------------------
// Bounded LRU cache (bytes, not entries; expired entries dropped)

class Lru {
  constructor(maxBytes) {
    this.max = maxBytes;
    this.bytes = 0;
    this.map = new Map();
  }
  get(key, now) {
    const e = this.map.get(key);
    if (e === undefined) return undefined;
    if (e.expires <= now) {
      this.delete(key);
      return undefined;
    }
    this.map.delete(key); // most recently used goes last
    this.map.set(key, e);
    return e.value;
  }
  set(key, value, size, expires, now) {
    this.delete(key);
    if (size > this.max) return;
    this.map.set(key, { value, size, expires });
    this.bytes += size;
    if (this.bytes > this.max) {
      for (const [k, e] of this.map) if (e.expires <= now) this.delete(k);
      for (const k of this.map.keys()) {
        if (this.bytes <= this.max) break;
        this.delete(k);
      }
    }
  }
  delete(key) {
    const e = this.map.get(key);
    if (e === undefined) return;
    this.map.delete(key);
    this.bytes -= e.size;
  }
}

/** Module state, created on the first request (the limits come from env). */
let state = null;

function getState(env) {
  if (state === null || state.env !== env) {
    const ttl = numberSetting(env.MANIFEST_TTL_MS, CACHE_TTL_MS);
    const prev = state;
    state = {
      env,
      ttl,
      maxStale: numberSetting(env.MANIFEST_MAX_STALE_MS, MAX_STALE_MS),
      cache: prev ? prev.cache : new Lru(numberSetting(env.CACHE_MAX_BYTES, CACHE_MAX_BYTES)),
      neg: prev ? prev.neg : new Lru(NEG_CACHE_BYTES),
      inflight: prev ? prev.inflight : new Map(),
    };
  }
  return state;
}

function numberSetting(raw, dflt) {
  if (raw === undefined || raw === null || raw === "") return dflt;
  const n = Number(raw);
  return Number.isFinite(n) && n >= 0 ? n : dflt;
}

export default {
  async fetch(request, env, ctx) {
    try {
      return await handle(request, env, ctx);
    } catch {
      // A storage failure or a bug: never leak internals (messages, stack traces, keys).
      return plain(500, "internal error", {
        cacheControl: CC_NO_STORE,
        head: request.method === "HEAD",
      });
    }
  },
};

async function handle(request, env, ctx) {
  const method = request.method;
  if (method !== "GET" && method !== "HEAD") {
    return plain(405, "method not allowed", {
      cacheControl: CC_NO_STORE,
      extra: { allow: "GET, HEAD" },
    });
  }
  const head = method === "HEAD";
  const url = new URL(request.url);
  if (url.pathname === "/_health") {
    return plain(200, "ok", { cacheControl: CC_NO_STORE, head });
  }

  const st = getState(env);
  const host = normaliseHost(url.hostname);
  let site;
  try {
    site = await resolveHost(st, ctx, host, env);
  } catch (err) {
    if (err instanceof ConfigError) {
      return plain(500, "site configuration error", { cacheControl: CC_NO_STORE, head });
    }
    throw err;
  }
  if (site === null) return plain(404, "site not found", { cacheControl: CC_NOT_FOUND, head });
  const { tenant, preview } = site;

  const res = await serveSite(request, url, env, ctx, st, tenant, preview, head);
  if (preview !== null) res.headers.set("x-robots-tag", "noindex");
  return res;
}

async function serveSite(request, url, env, ctx, st, tenant, preview, head) {
  let route;
  try {
    const h = await loadHead(st, ctx, tenant, env);
    route = h === null ? null : preview === null ? h.live : h.previews.get(preview) || null;
    if (route !== null) compileRules(route);
  } catch (err) {
    if (err instanceof ConfigError) {
      return plain(500, "site configuration error", { cacheControl: CC_NO_STORE, head, tenant });
    }
    throw err;
  }
  if (route === null) return plain(404, "site not found", { cacheControl: CC_NOT_FOUND, head, tenant });

  const path = decodeAndNormalise(url.pathname);
  if (path === null) return plain(400, "bad request", { cacheControl: CC_NO_STORE, head, tenant });

  const c = { request, url, env, ctx, st, tenant, route, head, reqPath: path };
  try {
    const rule = matchRedirect(route.compiled, path);
    if (rule !== null && rule.status !== 200) {
      return redirect(rule.status, withQuery(rule.to, url.search), tenant, head);
    }
    if (rule !== null) {
      // A rewrite: serve another path of the site, one hop (no rules, no canonical redirects).
      const target = decodeAndNormalise(rule.to.split("?")[0]);
      const found = target === null ? null : await resolveRewrite(c, target);
      if (found !== null) return serveEntry(c, found.path, found.entry, 200);
      return notFound(c, target === null ? path : target);
    }
    const r = await resolve(c, path);
    if (r !== null && r.location !== undefined) {
      return redirect(308, encodePath(r.location) + url.search, tenant, head);
    }
    if (r !== null) return serveEntry(c, r.path, r.entry, 200);
    return notFound(c, path);
  } catch (err) {
    if (err instanceof ConfigError) {
      return plain(500, "site configuration error", { cacheControl: CC_NO_STORE, head, tenant });
    }
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Host → tenant (and preview)

function normaliseHost(hostname) {
  let h = String(hostname || "").toLowerCase();
  while (h.endsWith(".")) h = h.slice(0, -1);
  return h;
}

function isTenantSlug(s) {
  return SLUG_RE.test(s) && !s.includes("--");
}

/** Returns {tenant, preview|null}, or null for an unknown host. ConfigError on a bad entry. */
async function resolveHost(st, ctx, host, env) {
  const domain = normaliseHost(env.PLATFORM_DOMAIN || "");
  if (domain && host.endsWith("." + domain)) {
    const label = host.slice(0, host.length - domain.length - 1);
    if (SLUG_RE.test(label)) {
      const i = label.indexOf("--");
      if (i < 0) return { tenant: label, preview: null };
      const name = label.slice(0, i);
      const tenant = label.slice(i + 2);
      if (isTenantSlug(name) && isTenantSlug(tenant)) return { tenant, preview: name };
      return null;
    }
  }
  // Anything that is not a plain DNS name (IPv6 literals, odd characters) can have no entry.
  if (!HOST_RE.test(host) || host.includes("..")) return null;
  const tenant = await record(st, ctx, `h:${host}`, `hosts/${host}.json`, parseHostEntry, env);
  return tenant === null ? null : { tenant, preview: null };
}

function parseHostEntry(text) {
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    throw new ConfigError("host entry is not JSON");
  }
  const tenant = data && typeof data === "object" ? data.tenant : undefined;
  if (typeof tenant !== "string" || !SLUG_RE.test(tenant)) {
    throw new ConfigError("host entry names no valid tenant");
  }
  return tenant;
}

// ---------------------------------------------------------------------------------------------
// Revalidated records (heads, host entries)

/**
 * The parsed value of a mutable object, cached in the isolate. Fresh (younger than the TTL): no
 * R2 call. Stale within MAX_STALE: served, and revalidated in the background. Older, or TTL 0:
 * revalidated before answering. Revalidation is a conditional get (`etagDoesNotMatch`), so an
 * unchanged object costs one read without a body and is not parsed again. A missing object goes
 * to the negative cache. A ConfigError is cached like a value (with its ETag); a storage failure
 * is not cached.
 */
async function record(st, ctx, key, r2key, parse, env) {
  const now = Date.now();
  if (st.ttl > 0 && st.neg.get(key, now) !== undefined) return null;
  const rec = st.cache.get(key, now);
  let r = rec;
  if (rec === undefined || now - rec.checkedAt >= st.ttl) {
    const p = refresh(st, key, r2key, parse, rec, env);
    if (rec !== undefined && st.ttl > 0 && now - rec.checkedAt < st.ttl + st.maxStale) {
      if (ctx && typeof ctx.waitUntil === "function") ctx.waitUntil(p.catch(() => {}));
    } else {
      r = await p;
    }
  }
  if (r === null) return null;
  if (r.error) throw r.error;
  return r.value;
}

function refresh(st, key, r2key, parse, prev, env) {
  let p = st.inflight.get(key);
  if (p === undefined) {
    p = doRefresh(st, key, r2key, parse, prev, env).finally(() => st.inflight.delete(key));
    st.inflight.set(key, p);
  }
  return p;
}

async function doRefresh(st, key, r2key, parse, prev, env) {
  const options = prev !== undefined && prev.etag ? { onlyIf: { etagDoesNotMatch: prev.etag } } : {};
  const obj = await env.SITES.get(r2key, options);
  const now = Date.now();
  if (obj === null) {
    st.cache.delete(key);
    if (st.ttl > 0) st.neg.set(key, true, key.length * 2 + 64, now + st.ttl, now);
    return null;
  }
  if (prev !== undefined && (!("body" in obj) || obj.etag === prev.etag)) {
    // Unchanged (the condition failed, so R2 sent no body).
    if ("body" in obj && obj.body) await obj.body.cancel();
    prev.checkedAt = now;
    st.cache.set(key, prev, prev.size, now + Math.max(KEEP_MS, st.ttl + st.maxStale), now);
    return prev;
  }
  const text = await obj.text();
  const rec = { etag: obj.etag, value: null, error: null, checkedAt: now, size: text.length * 3 + 256 };
  try {
    rec.value = parse(text);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    rec.error = err;
  }
  st.neg.delete(key);
  st.cache.set(key, rec, rec.size, now + Math.max(KEEP_MS, st.ttl + st.maxStale), now);
  return rec;
}

// ---------------------------------------------------------------------------------------------
// Heads and routes

function loadHead(st, ctx, tenant, env) {
  return record(st, ctx, `m:${tenant}`, `sites/${tenant}/manifest.json`, (t) => parseHead(t, tenant), env);
}

function isObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Returns {live: Route, previews: Map<name, Route>}. */
function parseHead(text, tenant) {
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    throw new ConfigError("manifest is not JSON");
  }
  if (!isObject(data)) throw new ConfigError("manifest");
  if (data.tenant !== undefined && data.tenant !== tenant) throw new ConfigError("manifest tenant");
  if (data.format === 1) {
    if (!isObject(data.files)) throw new ConfigError("manifest files");
    const files = parseFiles(data.files);
    const pages = [...files.keys()].filter((p) => p.endsWith("/404.html"));
    pages.sort((a, b) => b.split("/").length - a.split("/").length || (a < b ? -1 : 1));
    const route = {
      deployId: typeof data.deploy_id === "string" ? data.deploy_id : "",
      shards: 1,
      stem: false,
      files,
      notFound: files.has("/404.html") ? "404" : "none",
      notFoundPages: pages,
      redirects: undefined,
      headers: undefined,
      compiled: null,
    };
    return { live: route, previews: new Map() };
  }
  if (data.format !== 2) throw new ConfigError("manifest format");
  const live = parseRoute(data.live);
  const previews = new Map();
  if (data.previews !== undefined) {
    if (!isObject(data.previews)) throw new ConfigError("previews");
    for (const [name, r] of Object.entries(data.previews)) {
      if (isTenantSlug(name)) previews.set(name, parseRoute(r));
    }
  }
  return { live, previews };
}

function parseRoute(r) {
  if (!isObject(r)) throw new ConfigError("route");
  if (typeof r.deploy_id !== "string" || !DEPLOY_ID_RE.test(r.deploy_id)) throw new ConfigError("deploy_id");
  const shards = r.shards;
  if (!Number.isInteger(shards) || shards < 1 || shards > 1024 || (shards & (shards - 1)) !== 0) {
    throw new ConfigError("shards");
  }
  const notFound = r.not_found === undefined ? "none" : r.not_found;
  if (notFound !== "404" && notFound !== "spa" && notFound !== "none") throw new ConfigError("not_found");
  const pages = r.not_found_pages === undefined ? [] : r.not_found_pages;
  if (!Array.isArray(pages) || !pages.every((p) => typeof p === "string" && p.endsWith("/404.html"))) {
    throw new ConfigError("not_found_pages");
  }
  if (r.shard_key !== undefined && r.shard_key !== "path" && r.shard_key !== "stem") {
    throw new ConfigError("shard_key");
  }
  return {
    deployId: r.deploy_id,
    shards,
    stem: r.shard_key === "stem",
    files: null,
    notFound,
    notFoundPages: pages,
    redirects: r.redirects,
    headers: r.headers,
    compiled: null,
  };
}

function parseFiles(raw) {
  const files = new Map();
  for (const path in raw) {
    const e = raw[path];
    if (!path.startsWith("/") || !isObject(e)) throw new ConfigError("manifest entry");
    if (typeof e.hash !== "string" || !HASH_RE.test(e.hash)) throw new ConfigError("manifest hash");
    if (!Number.isSafeInteger(e.size) || e.size < 0) throw new ConfigError("manifest size");
    let contentType = e.content_type;
    if (contentType === undefined || contentType === null || contentType === "") {
      contentType = "application/octet-stream";
    }
    if (typeof contentType !== "string" || !HEADER_VALUE_RE.test(contentType)) {
      throw new ConfigError("manifest content_type");
    }
    files.set(path, { hash: e.hash, size: e.size, contentType });
  }
  return files;
}

// ---------------------------------------------------------------------------------------------
// Shards

/** FNV-1a, 32 bits, over the UTF-8 bytes of s. */
function fnv1a32(s) {
  let h = 0x811c9dc5;
  const bytes = new TextEncoder().encode(s);
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i];
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** `/a/index.html` → `/a`, `/index.html` → `/`, `/a.html` → `/a`, anything else itself. */
function shardStem(path) {
  let s = path;
  if (s.endsWith("/index.html")) s = s.slice(0, -"/index.html".length);
  else if (s.endsWith(".html")) s = s.slice(0, -".html".length);
  return s === "" ? "/" : s;
}

function shardOf(route, path) {
  return fnv1a32(route.stem ? shardStem(path) : path) & (route.shards - 1);
}

/** Looks up several paths at once: reads (in parallel) only the shards they fall in. */
async function lookup(c, paths) {
  const route = c.route;
  const out = new Map();
  if (route.files !== null) {
    for (const p of paths) {
      const e = route.files.get(p);
      if (e) out.set(p, e);
    }
    return out;
  }
  const byShard = new Map();
  for (const p of paths) {
    const k = shardOf(route, p);
    if (!byShard.has(k)) byShard.set(k, []);
    byShard.get(k).push(p);
  }
  await Promise.all(
    [...byShard].map(async ([k, ps]) => {
      const files = await loadShard(c, k);
      for (const p of ps) {
        const e = files.get(p);
        if (e) out.set(p, e);
      }
    }),
  );
  return out;
}

async function loadShard(c, k) {
  const { st, tenant, route, env } = c;
  const key = `s:${tenant}/${route.deployId}/${k}`;
  const now = Date.now();
  const hit = st.cache.get(key, now);
  if (hit !== undefined) return hit;
  let p = st.inflight.get(key);
  if (p === undefined) {
    p = (async () => {
      const obj = await env.SITES.get(`sites/${tenant}/deploys/${route.deployId}/shards/${k}.json`);
      if (obj === null) throw new ConfigError("shard missing");
      const text = await obj.text();
      let data;
      try {
        data = JSON.parse(text);
      } catch {
        throw new ConfigError("shard is not JSON");
      }
      if (!isObject(data) || !isObject(data.files)) throw new ConfigError("shard");
      const files = parseFiles(data.files);
      const t = Date.now();
      st.cache.set(key, files, text.length * 3 + 256, t + KEEP_MS, t);
      return files;
    })().finally(() => st.inflight.delete(key));
    st.inflight.set(key, p);
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// Paths and canonical URLs

/**
 * Percent-decodes and normalises a URL pathname. Returns an absolute path ("/…", a trailing "/"
 * kept when the request named a directory), or null for a malformed escape or a NUL.
 * `\` is an ordinary character; `..` never climbs above "/".
 */
function decodeAndNormalise(pathname) {
  let decoded;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    return null;
  }
  if (decoded.includes("\0")) return null;
  const raw = decoded.split("/");
  const out = [];
  for (const seg of raw) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") {
      out.pop();
      continue;
    }
    out.push(seg);
  }
  const last = raw[raw.length - 1];
  const dir = last === "" || last === "." || last === "..";
  if (out.length === 0) return "/";
  return "/" + out.join("/") + (dir ? "/" : "");
}

function encodePath(p) {
  return p.split("/").map(encodeURIComponent).join("/");
}

/**
 * Returns {path, entry} to serve, {location} for a 308, or null. Every location serves a file
 * directly under the same rules (checked by the property test), so a redirect never chains:
 *   `/d/`            → `/d/index.html`; else 308 `/d` if `/d.html` exists and `/d` does not
 *   `/d/index.html`  → 308 `/d/` when it exists
 *   `/a.html`        → 308 `/a` when it exists and `/a` does not (else served as is)
 *   `/a`             → `/a`, else `/a.html`, else 308 `/a/` when `/a/index.html` exists
 */
async function resolve(c, path) {
  if (path.endsWith("/")) {
    const d = path.slice(0, -1);
    const idx = path + "index.html";
    const f = await lookup(c, d === "" ? [idx] : [idx, d + ".html", d]);
    if (f.has(idx)) return { path: idx, entry: f.get(idx) };
    if (d !== "" && f.has(d + ".html") && !f.has(d)) return { location: d };
    return null;
  }
  const candidates = [path, path + ".html", path + "/index.html"];
  let stem = null;
  if (path.endsWith("/index.html")) {
    stem = path.slice(0, -"index.html".length);
  } else if (path.endsWith(".html")) {
    stem = path.slice(0, -".html".length);
    if (stem.endsWith("/")) stem = null; // `/.html`: a file named ".html"
    else candidates.push(stem);
  }
  const f = await lookup(c, candidates);
  if (f.has(path) && stem !== null) {
    if (stem.endsWith("/")) return { location: stem };
    if (!f.has(stem)) return { location: stem };
  }
  for (const p of [path, path + ".html"]) if (f.has(p)) return { path: p, entry: f.get(p) };
  if (f.has(path + "/index.html")) return { location: path + "/" };
  return null;
}

/** A rewrite's target: the file, else `.html`, else the directory index; no redirects. */
async function resolveRewrite(c, path) {
  const candidates = path.endsWith("/")
    ? [path + "index.html"]
    : [path, path + ".html", path + "/index.html"];
  const f = await lookup(c, candidates);
  for (const p of candidates) if (f.has(p)) return { path: p, entry: f.get(p) };
  return null;
}

function withQuery(to, search) {
  return search && !to.includes("?") ? to + search : to;
}

// ---------------------------------------------------------------------------------------------
// _redirects and _headers (compiled once per route, kept with the cached head)

/** Rules are matched against the decoded path, so a pattern written percent-encoded is decoded. */
function safeDecode(s) {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function trimSlash(p) {
  return p.length > 1 && p.endsWith("/") ? p.slice(0, -1) : p;
}

/**
 * A source pattern → {re, names}. `*` (one) matches anything and is `:splat`; `:name` matches
 * one path segment. Matching ignores a trailing slash unless the pattern ends with `*`.
 */
function compilePattern(pattern, what) {
  if (typeof pattern !== "string" || pattern.length === 0) throw new ConfigError(what);
  const names = [];
  let re = "";
  const src = pattern.endsWith("*") ? pattern : trimSlash(pattern);
  for (let i = 0; i < src.length; ) {
    const ch = src[i];
    if (ch === "*") {
      re += "(.*)";
      names.push("splat");
      i++;
    } else if (ch === ":" && /[A-Za-z]/.test(src[i + 1] || "")) {
      const m = /^:([A-Za-z]\w*)/.exec(src.slice(i));
      re += "([^/]+)";
      names.push(m[1]);
      i += m[0].length;
    } else {
      re += ch.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
      i++;
    }
  }
  if (!pattern.endsWith("*")) re += "/?";
  return { re: new RegExp("^" + re + "$"), names };
}

function substitute(template, names, values, encode) {
  return template.replace(/:([A-Za-z]\w*)/g, (m, name) => {
    const i = names.indexOf(name);
    if (i < 0) return m;
    return encode ? values[i].split("/").map(encodeURIComponent).join("/") : values[i];
  });
}

function compileRules(route) {
  if (route.compiled !== null) return route.compiled;
  const compiled = { static: new Map(), dynamic: [], headers: [] };
  const rd = route.redirects;
  if (rd !== undefined && rd !== null) {
    if (!isObject(rd)) throw new ConfigError("redirects");
    const checkRule = (r) => {
      if (!isObject(r) || typeof r.to !== "string" || !REDIRECT_CODES.has(r.status)) {
        throw new ConfigError("redirect");
      }
      if (!Number.isInteger(r.line)) throw new ConfigError("redirect line");
      if (r.status === 200 && !r.to.startsWith("/")) throw new ConfigError("rewrite target");
    };
    for (const [from, r] of Object.entries(rd.static || {})) {
      checkRule(r);
      const key = trimSlash(safeDecode(from));
      const had = compiled.static.get(key);
      if (had === undefined || had.line > r.line) compiled.static.set(key, { to: r.to, status: r.status, line: r.line });
    }
    const dyn = rd.dynamic === undefined ? [] : rd.dynamic;
    if (!Array.isArray(dyn)) throw new ConfigError("redirects dynamic");
    for (const r of dyn) {
      checkRule(r);
      const { re, names } = compilePattern(safeDecode(r.from), "redirect from");
      compiled.dynamic.push({ re, names, to: r.to, status: r.status, line: r.line });
    }
    compiled.dynamic.sort((a, b) => a.line - b.line);
  }
  const hd = route.headers;
  if (hd !== undefined && hd !== null) {
    if (!Array.isArray(hd)) throw new ConfigError("headers");
    for (const h of hd) {
      if (!isObject(h) || typeof h.pattern !== "string") throw new ConfigError("headers rule");
      let hostRe = null;
      let pathPattern = h.pattern;
      const abs = /^(?:https?:)?\/\/([^/]+)(\/.*)?$/.exec(h.pattern);
      if (abs) {
        const hostSrc = abs[1].toLowerCase().replace(/[.+?^${}()|[\]\\]/g, "\\$&");
        hostRe = new RegExp("^" + hostSrc.replace(/\*/g, ".*").replace(/:[A-Za-z]\w*/g, "[^.]+") + "$");
        pathPattern = abs[2] || "/*";
      }
      const { re, names } = compilePattern(safeDecode(pathPattern), "headers pattern");
      const set = h.set === undefined ? [] : h.set;
      const unset = h.unset === undefined ? [] : h.unset;
      if (!Array.isArray(set) || !Array.isArray(unset)) throw new ConfigError("headers rule");
      for (const pair of set) {
        if (!Array.isArray(pair) || pair.length !== 2) throw new ConfigError("headers set");
        const [n, v] = pair;
        if (typeof n !== "string" || !HEADER_NAME_RE.test(n)) throw new ConfigError("header name");
        if (typeof v !== "string" || !HEADER_VALUE_RE.test(v)) throw new ConfigError("header value");
      }
      for (const n of unset) {
        if (typeof n !== "string" || !HEADER_NAME_RE.test(n)) throw new ConfigError("header name");
      }
      compiled.headers.push({
        hostRe,
        re,
        names,
        set: set.filter(([n]) => !PROTECTED_HEADERS.has(n)),
        unset: unset.filter((n) => !PROTECTED_HEADERS.has(n)),
      });
    }
  }
  route.compiled = compiled;
  return compiled;
}

/** The first matching redirect by line, with `to` substituted; or null. */
function matchRedirect(compiled, path) {
  const s = compiled.static.get(trimSlash(path));
  const limit = s === undefined ? Infinity : s.line;
  for (const d of compiled.dynamic) {
    if (d.line >= limit) break;
    const m = d.re.exec(path);
    if (m !== null) return { to: substitute(d.to, d.names, m.slice(1), true), status: d.status };
  }
  return s === undefined ? null : s;
}

/** Applies every matching `_headers` block to h, in order. */
function applyHeaderRules(c, h) {
  const rules = c.route.compiled.headers;
  if (rules.length === 0) return;
  const hostname = normaliseHost(c.url.hostname);
  const set = new Map();
  for (const r of rules) {
    if (r.hostRe !== null && !r.hostRe.test(hostname)) continue;
    const m = r.re.exec(c.reqPath);
    if (m === null) continue;
    for (const n of r.unset) {
      set.delete(n);
      h.delete(n);
    }
    for (const [n, v] of r.set) {
      const value = substitute(v, r.names, m.slice(1), false);
      set.set(n, set.has(n) ? set.get(n) + ", " + value : value);
    }
  }
  for (const [n, v] of set) h.set(n, v);
}

// ---------------------------------------------------------------------------------------------
// Not found

async function notFound(c, path) {
  const route = c.route;
  if (route.notFound === "404") {
    for (const page of route.notFoundPages) {
      const dir = page.slice(0, -"404.html".length);
      if (!path.startsWith(dir)) continue;
      const f = await lookup(c, [page]);
      const entry = f.get(page);
      if (entry) return serveEntry(c, page, entry, 404);
    }
  } else if (route.notFound === "spa") {
    const last = path.slice(path.lastIndexOf("/") + 1);
    if (!last.includes(".")) {
      const f = await lookup(c, ["/index.html"]);
      const entry = f.get("/index.html");
      if (entry) return serveEntry(c, "/index.html", entry, 200);
    }
  }
  return plain(404, "not found", { cacheControl: CC_NOT_FOUND, head: c.head, tenant: c.tenant });
}

// ---------------------------------------------------------------------------------------------
// Responses

function cacheControlFor(path, contentType) {
  const mime = contentType.split(";")[0].trim().toLowerCase();
  if (mime === "text/html") return CC_HTML;
  return isContentHashed(path) ? CC_IMMUTABLE : CC_ASSET;
}

function isContentHashed(path) {
  const name = path.slice(path.lastIndexOf("/") + 1);
  const dot = name.lastIndexOf(".");
  if (dot <= 0) return false; // no extension
  return name.slice(0, dot).split(/[.-]/).some((seg) => HASHED_SEGMENT_RE.test(seg));
}

/** RFC 9110 weak comparison: `W/"x"` matches `"x"`; `*` matches any existing representation. */
function ifNoneMatchMatches(header, etag) {
  if (header === null) return false;
  for (let tag of header.split(",")) {
    tag = tag.trim();
    if (tag === "*") return true;
    if (tag.startsWith("W/") || tag.startsWith("w/")) tag = tag.slice(2);
    if (tag === etag) return true;
  }
  return false;
}

const UNSATISFIABLE = { unsatisfiable: true };

/**
 * One `bytes=` range → {offset, length}, UNSATISFIABLE, or null (no range, a malformed one, or
 * several: the whole file is sent with 200).
 */
function parseRange(header, size) {
  if (header === null) return null;
  const m = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (m === null) return null;
  const [, a, b] = m;
  if (a === "" && b === "") return null;
  if (a === "") {
    const n = Number(b);
    if (n === 0 || size === 0) return UNSATISFIABLE;
    const len = Math.min(n, size);
    return { offset: size - len, length: len };
  }
  const start = Number(a);
  if (b !== "" && Number(b) < start) return null;
  if (start >= size) return UNSATISFIABLE;
  const end = b === "" ? size - 1 : Math.min(Number(b), size - 1);
  return { offset: start, length: end - start + 1 };
}

function baseHeaders(tenant, cacheControl) {
  const h = new Headers(SECURITY_HEADERS);
  if (cacheControl) h.set("cache-control", cacheControl);
  if (tenant) h.set("x-tenant", tenant);
  return h;
}

function plain(status, text, { cacheControl, head = false, tenant, extra } = {}) {
  const h = baseHeaders(tenant, cacheControl);
  h.set("content-type", "text/plain; charset=utf-8");
  h.set("content-length", String(new TextEncoder().encode(text).length));
  if (extra) for (const [k, v] of Object.entries(extra)) h.set(k, v);
  return new Response(head ? null : text, { status, headers: h });
}

function redirect(status, location, tenant, head) {
  const h = baseHeaders(tenant, CC_REDIRECT);
  h.set("location", location);
  h.set("content-length", "0");
  return new Response(head ? null : "", { status, headers: h });
}

function blobCacheOn(c) {
  return (
    c.env.BLOB_CACHE !== "off" &&
    typeof caches !== "undefined" &&
    caches.default !== undefined &&
    !normaliseHost(c.url.hostname).endsWith(".workers.dev")
  );
}

/**
 * The blob's bytes (or, for HEAD, proof it exists): {body} or null when R2 does not have it.
 * Whole reads go through caches.default (filled in the background on a miss); ranged reads use a
 * cached whole copy when there is one (the Cache API answers a Range with 206), else R2's range.
 */
async function readBlob(c, entry, range) {
  const key = `blobs/${entry.hash}`;
  const useCache = blobCacheOn(c);
  const cacheKey = BLOB_CACHE_ORIGIN + entry.hash;
  if (useCache) {
    const init = range ? { headers: { range: `bytes=${range.offset}-${range.offset + range.length - 1}` } } : {};
    const hit = await caches.default.match(new Request(cacheKey, init));
    if (hit) {
      if (hit.status === (range ? 206 : 200)) {
        if (c.head) {
          await hit.body?.cancel();
          return { body: null };
        }
        return { body: hit.body };
      }
      await hit.body?.cancel();
    }
  }
  if (c.head) {
    const obj = await c.env.SITES.head(key);
    return obj !== null && obj.size === entry.size ? { body: null } : null;
  }
  const obj = await c.env.SITES.get(key, range ? { range } : {});
  if (obj === null) return null;
  if (obj.size !== entry.size) {
    // The bytes under a hash can only disagree with the manifest if something is badly wrong;
    // sending a wrong Content-Length would corrupt the connection, so treat it as missing.
    await obj.body?.cancel();
    return null;
  }
  if (useCache && !range && c.ctx && typeof c.ctx.waitUntil === "function") {
    const [mine, theirs] = obj.body.tee();
    const stored = new Response(theirs, {
      headers: {
        "content-type": "application/octet-stream",
        "content-length": String(entry.size),
        "cache-control": CC_IMMUTABLE,
      },
    });
    c.ctx.waitUntil(caches.default.put(cacheKey, stored).catch(() => {}));
    return { body: mine };
  }
  return { body: obj.body };
}

async function serveEntry(c, path, entry, status) {
  const { request, tenant, head } = c;
  const cacheControl = status === 404 ? CC_NOT_FOUND : cacheControlFor(path, entry.contentType);
  const etag = `"${entry.hash}"`;
  if (status === 200 && ifNoneMatchMatches(request.headers.get("if-none-match"), etag)) {
    const h = baseHeaders(tenant, cacheControl);
    h.set("etag", etag);
    h.set("accept-ranges", "bytes");
    applyHeaderRules(c, h);
    return new Response(null, { status: 304, headers: h });
  }
  let range = null;
  if (status === 200) {
    range = parseRange(request.headers.get("range"), entry.size);
    const ifRange = request.headers.get("if-range");
    if (range !== null && ifRange !== null && ifRange.trim() !== etag) range = null;
  }
  const h = baseHeaders(tenant, cacheControl);
  h.set("content-type", entry.contentType);
  h.set("etag", etag);
  h.set("accept-ranges", "bytes");
  if (range === UNSATISFIABLE) {
    h.set("content-range", `bytes */${entry.size}`);
    h.set("content-length", "0");
    applyHeaderRules(c, h);
    return new Response(head ? null : "", { status: 416, headers: h });
  }
  const blob = await readBlob(c, entry, range);
  if (blob === null) {
    if (status === 404) return plain(404, "not found", { cacheControl: CC_NOT_FOUND, head, tenant });
    return plain(500, "content missing", { cacheControl: CC_NO_STORE, head, tenant });
  }
  if (range !== null) {
    h.set("content-range", `bytes ${range.offset}-${range.offset + range.length - 1}/${entry.size}`);
    h.set("content-length", String(range.length));
    status = 206;
  } else {
    h.set("content-length", String(entry.size));
  }
  applyHeaderRules(c, h);
  return new Response(head ? null : blob.body, { status, headers: h });
}
