// @ts-check
//! Heads and shards: parses `sites/<t>/manifest.json` (format 1, 2 and 3) into Routes, and looks
//! file paths up in a Route (inline files; format-2 shards cached by deploy id; format-3 shards
//! `shards/<sha256>.json`, content-addressed, read and cached by hash, at the edge too).
//! Imports common.js, hosts.js' isTenantSlug and cache.js; never rules, files or entry.

import { ConfigError, DEPLOY_ID_RE, HASH_RE, HEADER_VALUE_RE, isObject } from "./common.js";
import { KEEP_MS, matchEdge, putEdge, record } from "./cache.js";
import { isTenantSlug } from "./hosts.js";

/**
 * @typedef {object} FileEntry
 * @property {string} hash
 * @property {number} size
 * @property {string} contentType
 */

/**
 * One deploy as the router serves it (the head's `live` or a preview).
 * @typedef {object} Route
 * @property {string} deployId
 * @property {number} shards
 * @property {string[] | null} shardHashes  format 3: shard k is `shards/<shardHashes[k]>.json`
 * @property {boolean} stem               shard by stem (`shard_key: "stem"`)
 * @property {Map<string, FileEntry> | null} files  inline files (format 1), else null
 * @property {"404" | "spa" | "none"} notFound
 * @property {string[]} notFoundPages
 * @property {any} redirects
 * @property {any} headers
 * @property {import("./rules.js").Compiled | null} compiled  filled on first use
 * @property {number | null} expiresAt    a preview's end (ms since the epoch): 404 after it
 * @property {number | null} retainedUntil  live only: the retained index's last `until` (skew
 *                                          protection), after which it is never read
 * @property {Protect | null} protect     a protected preview's password hash
 */

/**
 * A preview's password as deploy-site stores it (docs/storage-layout.md "Previews"):
 * PBKDF2-HMAC-SHA256, `iterations` rounds (at most 100,000, the Workers runtime's cap), 32 bytes.
 * @typedef {object} Protect
 * @property {number} iterations
 * @property {Uint8Array<ArrayBuffer>} salt
 * @property {Uint8Array<ArrayBuffer>} hash
 */

/**
 * @typedef {object} Head
 * @property {Route} live
 * @property {Map<string, Route>} previews
 */

/**
 * The documented size bound of a head, `sites/<t>/manifest.json` (docs/storage-layout.md, "Head"):
 * deploy-site refuses a site whose head would be larger, and the router refuses to read, parse or
 * cache a larger one (that tenant answers 503; issue 17 item 1: one 59 MB head slowed every tenant
 * of the isolate).
 */
export const HEAD_MAX_BYTES = 1_048_576;

/**
 * The tenant's head, through the revalidated-record cache; null when the tenant has none.
 * TooLargeError when it is over HEAD_MAX_BYTES.
 * @param {import("./cache.js").State} st
 * @param {import("./common.js").ExecCtx | undefined} ctx
 * @param {string} tenant
 * @param {import("./common.js").Env} env
 * @returns {Promise<Head | null>}
 */
export function loadHead(st, ctx, tenant, env) {
  const parse = (/** @type {string} */ t) => parseHead(t, tenant);
  return record(st, ctx, `m:${tenant}`, `sites/${tenant}/manifest.json`, parse, env, {
    max: HEAD_MAX_BYTES,
    what: `tenant ${tenant}: head`,
  });
}

/**
 * @param {string} text
 * @param {string} tenant
 * @returns {Head}
 */
export function parseHead(text, tenant) {
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
    /** @type {Route} */
    const route = {
      deployId: typeof data.deploy_id === "string" ? data.deploy_id : "",
      shards: 1,
      shardHashes: null,
      stem: false,
      files,
      notFound: files.has("/404.html") ? "404" : "none",
      notFoundPages: pages,
      redirects: undefined,
      headers: undefined,
      compiled: null,
      expiresAt: null,
      protect: null,
      retainedUntil: null,
    };
    return { live: route, previews: new Map() };
  }
  // Format 3 differs from 2 only in that a Route may name its shards by hash (`shard_hashes`):
  // a router that knows only format 2 refuses it instead of looking for per-deploy shards.
  if (data.format !== 2 && data.format !== 3) throw new ConfigError("manifest format");
  const live = parseRoute(data.live);
  if (data.retained !== undefined && data.retained !== null) {
    if (!isObject(data.retained)) throw new ConfigError("retained");
    live.retainedUntil = parseExpiry(data.retained.until);
  }
  const previews = new Map();
  if (data.previews !== undefined) {
    if (!isObject(data.previews)) throw new ConfigError("previews");
    for (const [name, r] of Object.entries(data.previews)) {
      if (isTenantSlug(name)) previews.set(name, parseRoute(r));
    }
  }
  // Previews behind a password: a map of their own, so a router that predates `protect` never
  // serves one. Here one without a valid `protect` is a configuration error: never served open.
  if (data.protected_previews !== undefined) {
    if (!isObject(data.protected_previews)) throw new ConfigError("protected_previews");
    for (const [name, r] of Object.entries(data.protected_previews)) {
      if (!isTenantSlug(name)) continue;
      const route = parseRoute(r);
      if (route.protect === null) throw new ConfigError("protected preview without protect");
      previews.set(name, route);
    }
  }
  return { live, previews };
}

/**
 * @param {unknown} r
 * @returns {Route}
 */
export function parseRoute(r) {
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
  /** @type {string[] | null} */
  let shardHashes = null;
  if (r.shard_hashes !== undefined && r.shard_hashes !== null) {
    const h = r.shard_hashes;
    if (!Array.isArray(h) || h.length !== shards || !h.every((x) => typeof x === "string" && HASH_RE.test(x))) {
      throw new ConfigError("shard_hashes");
    }
    shardHashes = h;
  }
  return {
    deployId: r.deploy_id,
    shards,
    shardHashes,
    stem: r.shard_key === "stem",
    files: null,
    notFound,
    notFoundPages: pages,
    redirects: r.redirects,
    headers: r.headers,
    compiled: null,
    expiresAt: parseExpiry(r.expires_at),
    protect: parseProtect(r.protect),
    retainedUntil: null,
  };
}

// ---------------------------------------------------------------------------------------------
// Skew protection

/**
 * The rule deploy-site retains by (`is_content_hashed` in src/site/manifest.rs): a `.` segment of
 * ≥ 8 hex before the extension (`app.4f9c2a1b.js`), or a tail after a `-` of ≥ 8 `[A-Za-z0-9_-]`
 * with a digit or both cases (`index-DiwrgTda.js`, `index-a-b3Xk9z.js`); never HTML.
 * @param {string} path
 * @returns {boolean}
 */
export function isSkewAsset(path) {
  const name = path.slice(path.lastIndexOf("/") + 1);
  const dot = name.lastIndexOf(".");
  if (dot <= 0) return false;
  const stem = name.slice(0, dot);
  const ext = name.slice(dot + 1).toLowerCase();
  if (ext === "html" || ext === "htm") return false;
  if (stem.split(".").slice(1).some((s) => /^[0-9a-fA-F]{8,}$/.test(s))) return true;
  // URL-safe base64 hashes (Rollup's default) may hold a `-`: any tail after a `-` counts.
  for (let i = stem.indexOf("-", 1); i > 0; i = stem.indexOf("-", i + 1)) {
    const seg = stem.slice(i + 1);
    if (/^[A-Za-z0-9_-]{8,}$/.test(seg) && (/[0-9]/.test(seg) || (/[A-Z]/.test(seg) && /[a-z]/.test(seg)))) return true;
  }
  return false;
}

/**
 * A path the live deploy lacks, from the retained index of the deploys live before it (skew
 * protection): at most one read per live deploy (the index is immutable and cached, a missing one
 * as empty), so a miss costs at most one extra read and repeated misses none. HTML and unhashed
 * names never look.
 * @param {import("./common.js").Ctx} c
 * @param {string} path
 * @returns {Promise<FileEntry | null>}
 */
export async function retainedEntry(c, path) {
  const { route } = c;
  const now = Date.now();
  if (route.retainedUntil === null || route.retainedUntil <= now || !isSkewAsset(path)) return null;
  const index = await loadRetained(c);
  const e = index.get(path);
  return e !== undefined && e.until > now ? e.entry : null;
}

/**
 * @param {import("./common.js").Ctx} c
 * @returns {Promise<Map<string, {entry: FileEntry, until: number}>>}
 */
async function loadRetained(c) {
  const { st, tenant, route, env } = c;
  const key = `r:${tenant}/${route.deployId}`;
  const hit = st.cache.get(key, Date.now());
  if (hit !== undefined) return hit;
  let p = st.inflight.get(key);
  if (p === undefined) {
    p = (async () => {
      const obj = await env.SITES.get(`sites/${tenant}/deploys/${route.deployId}/retained.json`);
      const text = obj === null ? "" : await obj.text();
      /** @type {Map<string, {entry: FileEntry, until: number}>} */
      const index = new Map();
      if (text !== "") {
        let data;
        try {
          data = JSON.parse(text);
        } catch {
          throw new ConfigError("retained index is not JSON");
        }
        if (!isObject(data) || !isObject(data.files)) throw new ConfigError("retained index");
        const files = parseFiles(data.files);
        for (const [path, entry] of files) {
          const until = parseExpiry(data.files[path].until);
          if (until !== null) index.set(path, { entry, until });
        }
      }
      const t = Date.now();
      st.cache.set(key, index, text.length * 3 + 256, t + KEEP_MS, t);
      return index;
    })().finally(() => st.inflight.delete(key));
    st.inflight.set(key, p);
  }
  return p;
}

/**
 * @param {unknown} v
 * @returns {number | null}
 */
function parseExpiry(v) {
  if (v === undefined || v === null) return null;
  const t = typeof v === "string" ? Date.parse(v) : NaN;
  if (!Number.isFinite(t)) throw new ConfigError("expires_at");
  return t;
}

const HEX_RE = /^(?:[0-9a-f]{2})+$/;

/**
 * @param {string} s
 * @returns {Uint8Array<ArrayBuffer>}
 */
function fromHex(s) {
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * @param {unknown} p
 * @returns {Protect | null}
 */
function parseProtect(p) {
  if (p === undefined || p === null) return null;
  if (!isObject(p) || p.kdf !== "pbkdf2-sha256") throw new ConfigError("protect");
  const { iterations, salt, hash } = p;
  // Above 100,000 the runtime refuses deriveBits: a head asking for more is refused here.
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > 100_000) throw new ConfigError("protect iterations");
  if (typeof salt !== "string" || !HEX_RE.test(salt) || salt.length < 16) throw new ConfigError("protect salt");
  if (typeof hash !== "string" || !HEX_RE.test(hash) || hash.length !== 64) throw new ConfigError("protect hash");
  return { iterations, salt: fromHex(salt), hash: fromHex(hash) };
}

/**
 * A `files` map (format-1 head or shard) → path → entry. ConfigError on any bad entry.
 * @param {Record<string, any>} raw
 * @returns {Map<string, FileEntry>}
 */
export function parseFiles(raw) {
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

/**
 * FNV-1a, 32 bits, over the UTF-8 bytes of s (docs/storage-layout.md's shard hash).
 * @param {string} s
 * @returns {number}
 */
export function fnv1a32(s) {
  let h = 0x811c9dc5;
  const bytes = new TextEncoder().encode(s);
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i];
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/**
 * `/a/index.html` → `/a`, `/index.html` → `/`, `/a.html` → `/a`, anything else itself.
 * @param {string} path
 * @returns {string}
 */
export function shardStem(path) {
  let s = path;
  if (s.endsWith("/index.html")) s = s.slice(0, -"/index.html".length);
  else if (s.endsWith(".html")) s = s.slice(0, -".html".length);
  return s === "" ? "/" : s;
}

/**
 * @param {{stem: boolean, shards: number}} route
 * @param {string} path
 * @returns {number}
 */
export function shardOf(route, path) {
  return fnv1a32(route.stem ? shardStem(path) : path) & (route.shards - 1);
}

/**
 * Looks up several paths at once: reads (in parallel) only the shards they fall in.
 * @param {import("./common.js").Ctx} c
 * @param {string[]} paths
 * @returns {Promise<Map<string, FileEntry>>} the paths that exist
 */
export async function lookup(c, paths) {
  const route = c.route;
  const out = new Map();
  if (route.files !== null) {
    for (const p of paths) {
      const e = route.files.get(p);
      if (e) out.set(p, e);
    }
    return out;
  }
  /** @type {Map<number, string[]>} */
  const byShard = new Map();
  for (const p of paths) {
    const k = shardOf(route, p);
    let ps = byShard.get(k);
    if (ps === undefined) byShard.set(k, (ps = []));
    ps.push(p);
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

/**
 * One shard, immutable. Format 3: `shards/<hash>.json`, cached in the isolate by hash (shared by
 * every tenant and deploy that has it) and at the edge like a blob. Format 2: by tenant, deploy
 * id and k.
 * @param {import("./common.js").Ctx} c
 * @param {number} k
 * @returns {Promise<Map<string, FileEntry>>}
 */
async function loadShard(c, k) {
  const { st, tenant, route, env } = c;
  const hash = route.shardHashes === null ? null : route.shardHashes[k];
  const key = hash === null ? `s:${tenant}/${route.deployId}/${k}` : `h:${hash}`;
  const now = Date.now();
  const hit = st.cache.get(key, now);
  if (hit !== undefined) return hit;
  let p = st.inflight.get(key);
  if (p === undefined) {
    p = (async () => {
      const text =
        hash === null
          ? await readText(env, `sites/${tenant}/deploys/${route.deployId}/shards/${k}.json`)
          : await readShardByHash(c, hash);
      if (text === null) throw new ConfigError("shard missing");
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

/**
 * @param {import("./common.js").Env} env
 * @param {string} key
 * @returns {Promise<string | null>}
 */
async function readText(env, key) {
  const obj = await env.SITES.get(key);
  return obj === null ? null : obj.text();
}

/**
 * A content-addressed shard's text: from the edge cache (caches.default, keyed on the platform
 * domain like a blob) or R2, checked against its hash when it comes from R2 (a key is the
 * SHA-256 of the bytes, so wrong bytes are never cached or served).
 * @param {import("./common.js").Ctx} c
 * @param {string} hash
 * @returns {Promise<string | null>}
 */
async function readShardByHash(c, hash) {
  const cached = await matchEdge(c, "shard", hash);
  if (cached !== null) return cached;
  const obj = await c.env.SITES.get(`shards/${hash}.json`);
  if (obj === null) return null;
  const bytes = new Uint8Array(await obj.arrayBuffer());
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  if (hex !== hash) throw new ConfigError("shard does not hash to its name");
  const text = new TextDecoder().decode(bytes);
  putEdge(c, "shard", hash, text);
  return text;
}
