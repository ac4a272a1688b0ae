/**
 * cfsetup router Worker: serves every tenant's static site out of one R2 bucket.
 *
 * This file is embedded in the cfsetup binary (`include_str!`) and uploaded as-is as the main
 * module `router.js` (`application/javascript+module`). It has no dependencies and no build step.
 *
 * Bindings
 *   SITES            R2 bucket holding every tenant (see docs/storage-layout.md).
 *   PLATFORM_DOMAIN  plain text, e.g. "getai.page": `acme.getai.page` is tenant `acme`.
 *   MANIFEST_TTL_MS  optional, milliseconds; how long manifests and host entries stay cached in
 *                    isolate memory. Default 5000 (CACHE_TTL_MS). Tests set it low; 0 = no cache.
 *
 * Bucket layout (content-addressed; docs/storage-layout.md is the contract)
 *   blobs/<sha256 hex>            a file's bytes, keyed by the SHA-256 of the bytes
 *   sites/<tenant>/manifest.json  {"format":1,"tenant":…,"files":{"/path":{hash,size,content_type}}}
 *   hosts/<hostname>.json         {"tenant":"<tenant>"} for a custom domain
 *
 * Request handling
 *   1. Method: GET and HEAD only; anything else is 405 with `Allow: GET, HEAD`. HEAD answers with
 *      exactly the headers GET would send, and no body.
 *   2. `/_health` on any host: 200 "ok", `cache-control: no-store`.
 *   3. Host → tenant. The host comes from the request URL (`new URL(request.url).hostname`; in
 *      production that is the Host header, under miniflare's dispatchFetch it is the only source),
 *      lowercased, trailing dot stripped, port ignored.
 *        - `<slug>.<PLATFORM_DOMAIN>` with one DNS-label slug (^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$)
 *          is tenant <slug> directly.
 *        - anything else (custom domains, the bare platform domain, `a.b.<PLATFORM_DOMAIN>`) is
 *          looked up in `hosts/<host>.json`. No entry: 404 "site not found". An entry that is not
 *          JSON or names an invalid slug: 500 "site configuration error".
 *   4. Tenant → `sites/<tenant>/manifest.json`. None: 404 "site not found". Not a valid format-1
 *      manifest: 500 "site configuration error" (details are never leaked).
 *      Manifests and host entries (including "no such entry") are cached in a module-level Map for
 *      CACHE_TTL_MS, so a deploy or a new custom domain is live within seconds everywhere.
 *   5. Path: percent-decoded (malformed escapes or invalid UTF-8: 400), NUL rejected (400),
 *      normalised: empty and `.` segments dropped, `..` pops one segment but never goes above the
 *      root. A decoded `%2F` is a separator like `/`; `\` (and `%5C`) is an ordinary character.
 *   6. Resolution against the manifest's `files` map:
 *        `/`       → `/index.html`
 *        `/a/`     → `/a/index.html`
 *        `/a`      → `/a`, else `/a.html`, else `/a/index.html`
 *      No redirects are issued.
 *
 *   SECURITY: the request path is only ever used as a key into the manifest's `files` map. R2 is
 *   read only at `blobs/<hash>` (hash taken from the manifest and checked to be 64 lowercase hex),
 *   at `sites/<tenant>/manifest.json` (tenant checked to be a DNS-label slug) and at
 *   `hosts/<host>.json` (host checked to be [a-z0-9.-]). So no path, however encoded, can read
 *   another tenant's files or any other key: traversal is not merely filtered, it is impossible.
 *
 * Responses
 *   Found      200, body streamed from `blobs/<hash>`, Content-Type from the manifest,
 *              Content-Length = manifest size, ETag "<hash>". If-None-Match (a list; `W/` prefixes
 *              are compared weakly; `*`) matching → 304 with ETag + Cache-Control, no body.
 *              Blob absent from R2 → 500 "content missing".
 *   Not found  the tenant's `/404.html` (from its manifest) with status 404 and its own
 *              Content-Type/Length/ETag, or plain-text 404 "not found" if it has none (or its
 *              blob is missing).
 *   Cache-Control
 *     text/html                                  public, max-age=0, must-revalidate
 *     content-hashed file name (below)           public, max-age=31536000, immutable
 *     other assets                               public, max-age=3600
 *     every 404                                  public, max-age=0, must-revalidate
 *     health, 400, 405, 500                      no-store
 *     A file name is content-hashed when, before its extension, it has a segment of ≥ 8 hex
 *     characters delimited by `.` or `-`: `app.3f2a9c1b.js`, `main-8d7e6f5a4b.css`, `3f2a9c1b.js`.
 *   Every response: X-Content-Type-Options: nosniff, X-Frame-Options: SAMEORIGIN,
 *     Referrer-Policy: strict-origin-when-cross-origin. Once the tenant is known: x-tenant.
 */

/** How long a manifest or host entry stays cached in isolate memory, in ms (override: MANIFEST_TTL_MS). */
const CACHE_TTL_MS = 5000;
/** Upper bound on cached entries per map, so a busy isolate cannot grow without bound. */
const CACHE_MAX_ENTRIES = 1000;

const SLUG_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const HASH_RE = /^[0-9a-f]{64}$/;
const HOST_RE = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;
const HEADER_VALUE_RE = /^[\x20-\x7e]+$/;
const HASHED_SEGMENT_RE = /^[0-9a-f]{8,}$/i;

const SECURITY_HEADERS = {
  "x-content-type-options": "nosniff",
  "x-frame-options": "SAMEORIGIN",
  "referrer-policy": "strict-origin-when-cross-origin",
};

const CC_HTML = "public, max-age=0, must-revalidate";
const CC_ASSET = "public, max-age=3600";
const CC_IMMUTABLE = "public, max-age=31536000, immutable";
const CC_NOT_FOUND = "public, max-age=0, must-revalidate";
const CC_NO_STORE = "no-store";

/** key → { expires: number, value: Promise<…> } */
const manifestCache = new Map();
const hostCache = new Map();

/** Thrown (and turned into a 500) when stored platform data is not what the contract says. */
class ConfigError extends Error {}

export default {
  async fetch(request, env, ctx) {
    try {
      return await handle(request, env);
    } catch {
      // A storage failure or a bug: never leak internals (messages, stack traces, keys).
      return plain(500, "internal error", {
        cacheControl: CC_NO_STORE,
        head: request.method === "HEAD",
      });
    }
  },
};

async function handle(request, env) {
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

  const ttl = cacheTtl(env);
  const host = normaliseHost(url.hostname);
  let tenant;
  try {
    tenant = await resolveTenant(host, env, ttl);
  } catch (err) {
    if (err instanceof ConfigError) {
      return plain(500, "site configuration error", { cacheControl: CC_NO_STORE, head });
    }
    throw err;
  }
  if (tenant === null) {
    return plain(404, "site not found", { cacheControl: CC_NOT_FOUND, head });
  }

  let manifest;
  try {
    manifest = await loadManifest(tenant, env, ttl);
  } catch (err) {
    if (err instanceof ConfigError) {
      return plain(500, "site configuration error", { cacheControl: CC_NO_STORE, head, tenant });
    }
    throw err;
  }
  if (manifest === null) {
    return plain(404, "site not found", { cacheControl: CC_NOT_FOUND, head, tenant });
  }

  const path = decodeAndNormalise(url.pathname);
  if (path === null) {
    return plain(400, "bad request", { cacheControl: CC_NO_STORE, head, tenant });
  }

  const found = resolvePath(manifest.files, path);
  if (found !== null) {
    return serveFile(request, env, tenant, found.path, found.entry, head);
  }
  return notFound(env, tenant, manifest.files, head);
}

// ---------------------------------------------------------------------------------------------
// Host → tenant

function normaliseHost(hostname) {
  let h = String(hostname || "").toLowerCase();
  while (h.endsWith(".")) h = h.slice(0, -1);
  return h;
}

function platformDomain(env) {
  return normaliseHost(env.PLATFORM_DOMAIN || "");
}

/** Returns the tenant slug, or null for an unknown host. Throws ConfigError on a bad host entry. */
async function resolveTenant(host, env, ttl) {
  const domain = platformDomain(env);
  if (domain && host.endsWith("." + domain)) {
    const label = host.slice(0, host.length - domain.length - 1);
    if (SLUG_RE.test(label)) return label;
  }
  // Anything that is not a plain DNS name (IPv6 literals, odd characters) can have no entry.
  if (!HOST_RE.test(host) || host.includes("..")) return null;
  return cached(hostCache, host, ttl, () => loadHostEntry(host, env));
}

async function loadHostEntry(host, env) {
  const obj = await env.SITES.get(`hosts/${host}.json`);
  if (obj === null) return null;
  let data;
  try {
    data = JSON.parse(await obj.text());
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
// Manifest

/** Returns { files: Map<path, {hash,size,contentType}> }, or null if the tenant has none. */
async function loadManifest(tenant, env, ttl) {
  return cached(manifestCache, tenant, ttl, async () => {
    const obj = await env.SITES.get(`sites/${tenant}/manifest.json`);
    if (obj === null) return null;
    let data;
    try {
      data = JSON.parse(await obj.text());
    } catch {
      throw new ConfigError("manifest is not JSON");
    }
    return parseManifest(data, tenant);
  });
}

function parseManifest(data, tenant) {
  if (!data || typeof data !== "object" || Array.isArray(data)) throw new ConfigError("manifest");
  if (data.format !== 1) throw new ConfigError("manifest format");
  if (data.tenant !== undefined && data.tenant !== tenant) throw new ConfigError("manifest tenant");
  const raw = data.files;
  if (!raw || typeof raw !== "object" || Array.isArray(raw)) throw new ConfigError("manifest files");
  const files = new Map();
  for (const [path, e] of Object.entries(raw)) {
    if (!path.startsWith("/") || !e || typeof e !== "object") throw new ConfigError("manifest entry");
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
  return { files };
}

// ---------------------------------------------------------------------------------------------
// In-isolate cache (manifests and host entries, negative results and config errors included)

function cacheTtl(env) {
  const raw = env.MANIFEST_TTL_MS;
  if (raw === undefined || raw === null || raw === "") return CACHE_TTL_MS;
  const n = Number(raw);
  return Number.isFinite(n) && n >= 0 ? n : CACHE_TTL_MS;
}

/**
 * Caches the promise, so concurrent requests share one R2 read. A storage failure (anything but
 * a ConfigError) is not cached: the next request retries.
 */
function cached(map, key, ttl, load) {
  const now = Date.now();
  const hit = map.get(key);
  if (hit && hit.expires > now) return hit.value;
  if (hit) map.delete(key);
  const value = load();
  if (ttl > 0) {
    const entry = { expires: now + ttl, value };
    map.set(key, entry);
    while (map.size > CACHE_MAX_ENTRIES) map.delete(map.keys().next().value);
    value.catch((err) => {
      if (!(err instanceof ConfigError) && map.get(key) === entry) map.delete(key);
    });
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Paths

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

function resolvePath(files, path) {
  const candidates = path.endsWith("/")
    ? [path + "index.html"]
    : [path, path + ".html", path + "/index.html"];
  for (const p of candidates) {
    const entry = files.get(p);
    if (entry) return { path: p, entry };
  }
  return null;
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

function fileHeaders(tenant, entry, cacheControl) {
  const h = baseHeaders(tenant, cacheControl);
  h.set("content-type", entry.contentType);
  h.set("content-length", String(entry.size));
  h.set("etag", `"${entry.hash}"`);
  return h;
}

/** Fetches the blob (or only its metadata for HEAD); null if it is not in R2. */
async function readBlob(env, entry, head) {
  const key = `blobs/${entry.hash}`;
  const obj = head ? await env.SITES.head(key) : await env.SITES.get(key);
  if (obj === null) return null;
  if (obj.size !== entry.size) {
    // The bytes under a hash can only disagree with the manifest if something is badly wrong;
    // sending a wrong Content-Length would corrupt the connection, so treat it as missing.
    if (!head && obj.body) await obj.body.cancel();
    return null;
  }
  return obj;
}

async function serveFile(request, env, tenant, path, entry, head) {
  const cacheControl = cacheControlFor(path, entry.contentType);
  const etag = `"${entry.hash}"`;
  if (ifNoneMatchMatches(request.headers.get("if-none-match"), etag)) {
    const h = baseHeaders(tenant, cacheControl);
    h.set("etag", etag);
    return new Response(null, { status: 304, headers: h });
  }
  const obj = await readBlob(env, entry, head);
  if (obj === null) {
    return plain(500, "content missing", { cacheControl: CC_NO_STORE, head, tenant });
  }
  return new Response(head ? null : obj.body, {
    status: 200,
    headers: fileHeaders(tenant, entry, cacheControl),
  });
}

async function notFound(env, tenant, files, head) {
  const entry = files.get("/404.html");
  if (entry) {
    const obj = await readBlob(env, entry, head);
    if (obj !== null) {
      return new Response(head ? null : obj.body, {
        status: 404,
        headers: fileHeaders(tenant, entry, CC_NOT_FOUND),
      });
    }
  }
  return plain(404, "not found", { cacheControl: CC_NOT_FOUND, head, tenant });
}
