// @ts-check
//! Owns every cache of the router: the in-isolate byte-bounded LRU (heads, host entries, shards),
//! the negative cache, the revalidated-record logic (TTL, stale-while-revalidate, conditional
//! reads), and blob reads through the Cache API with R2 behind it. Imports only common.js and
//! responses.js' constants (never the request flow: hosts, heads, rules, files, entry).

import { ConfigError, HOST_RE, TooLargeError, normaliseHost, numberSetting } from "./common.js";
import { CC_IMMUTABLE } from "./responses.js";

const CACHE_TTL_MS = 5000;
const MAX_STALE_MS = 60_000;
const CACHE_MAX_BYTES = 48 * 1024 * 1024;
/** The negative cache (unknown hosts and tenants): small, so junk cannot take memory. */
const NEG_CACHE_BYTES = 256 * 1024;
/** Immutable objects (shards) and heads not revalidated for this long are dropped. */
export const KEEP_MS = 10 * 60_000;

// ---------------------------------------------------------------------------------------------
// Bounded LRU cache (bytes, not entries; expired entries dropped)

/**
 * @template V
 */
export class Lru {
  /** @param {number} maxBytes */
  constructor(maxBytes) {
    this.max = maxBytes;
    this.bytes = 0;
    /** @type {Map<string, {value: V, size: number, expires: number}>} */
    this.map = new Map();
  }
  /**
   * @param {string} key
   * @param {number} now
   * @returns {V | undefined}
   */
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
  /**
   * @param {string} key
   * @param {V} value
   * @param {number} size     bytes it is charged for
   * @param {number} expires  ms timestamp
   * @param {number} now
   */
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
  /** @param {string} key */
  delete(key) {
    const e = this.map.get(key);
    if (e === undefined) return;
    this.map.delete(key);
    this.bytes -= e.size;
  }
}

/**
 * A cached mutable object (head or host entry): its parsed value or the ConfigError it gave.
 * @typedef {object} Rec
 * @property {string} etag
 * @property {any} value
 * @property {Error | null} error
 * @property {number} checkedAt
 * @property {number} size
 */

/**
 * A size bound for a revalidated record.
 * @typedef {object} Limit
 * @property {number} max   bytes
 * @property {string} what  names the object in the log line (e.g. "tenant acme: head")
 */

/**
 * @typedef {object} State
 * @property {import("./common.js").Env} env
 * @property {number} ttl
 * @property {number} maxStale
 * @property {Lru<any>} cache
 * @property {Lru<true>} neg
 * @property {Map<string, Promise<any>>} inflight
 */

/** Module state, created on the first request (the limits come from env). @type {State | null} */
let state = null;

/**
 * @param {import("./common.js").Env} env
 * @returns {State}
 */
export function getState(env) {
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

// ---------------------------------------------------------------------------------------------
// Revalidated records (heads, host entries)

/**
 * The parsed value of a mutable object, cached in the isolate. Fresh (younger than the TTL): no
 * R2 call. Stale within MAX_STALE: served, and revalidated in the background. Older, or TTL 0:
 * revalidated before answering. Revalidation is a conditional get (`etagDoesNotMatch`), so an
 * unchanged object costs one read without a body and is not parsed again. A missing object goes
 * to the negative cache. A ConfigError is cached like a value (with its ETag); a storage failure
 * is not cached. With a limit, an object larger than limit.max is neither read (its size is
 * checked before the body) nor parsed nor kept: only the verdict is cached, a TooLargeError with
 * the object's ETag (so it is revalidated like a value and logged once per change), and every
 * request gets that error until the object shrinks.
 * @param {State} st
 * @param {import("./common.js").ExecCtx | undefined} ctx
 * @param {string} key        the cache key
 * @param {string} r2key
 * @param {(text: string) => any} parse  throws ConfigError for bad data
 * @param {import("./common.js").Env} env
 * @param {Limit} [limit]  the object's size bound (none when absent)
 * @returns {Promise<any>} the parsed value, or null when the object does not exist
 */
export async function record(st, ctx, key, r2key, parse, env, limit) {
  const now = Date.now();
  if (st.ttl > 0 && st.neg.get(key, now) !== undefined) return null;
  const rec = st.cache.get(key, now);
  let r = rec;
  if (rec === undefined || now - rec.checkedAt >= st.ttl) {
    const p = refresh(st, key, r2key, parse, rec, env, limit);
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

/**
 * One refresh per key at a time: concurrent requests share it.
 * @param {State} st
 * @param {string} key
 * @param {string} r2key
 * @param {(text: string) => any} parse
 * @param {Rec | undefined} prev
 * @param {import("./common.js").Env} env
 * @param {Limit | undefined} limit
 * @returns {Promise<Rec | null>}
 */
function refresh(st, key, r2key, parse, prev, env, limit) {
  let p = st.inflight.get(key);
  if (p === undefined) {
    p = doRefresh(st, key, r2key, parse, prev, env, limit).finally(() => st.inflight.delete(key));
    st.inflight.set(key, p);
  }
  return p;
}

/**
 * @param {State} st
 * @param {string} key
 * @param {string} r2key
 * @param {(text: string) => any} parse
 * @param {Rec | undefined} prev
 * @param {import("./common.js").Env} env
 * @param {Limit | undefined} limit
 * @returns {Promise<Rec | null>}
 */
async function doRefresh(st, key, r2key, parse, prev, env, limit) {
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
  if (limit !== undefined && obj.size > limit.max) {
    // Checked before the body is read: an oversized object costs no memory and no parse. Its
    // verdict replaces any earlier good copy, so a stale copy is not served in its place.
    await obj.body?.cancel();
    console.error(`cfsetup router: ${limit.what} ${r2key} is ${obj.size} bytes, over its ${limit.max}-byte bound: not read, answering 503`);
    /** @type {Rec} */
    const refused = { etag: obj.etag, value: null, error: new TooLargeError(r2key, obj.size, limit.max), checkedAt: now, size: 512 };
    st.neg.delete(key);
    st.cache.set(key, refused, refused.size, now + Math.max(KEEP_MS, st.ttl + st.maxStale), now);
    return refused;
  }
  const text = await obj.text();
  /** @type {Rec} */
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
// Blobs: the Cache API, then R2

/**
 * Bodies up to this size are tee()d into the Cache API while they are sent. workerd bounds what a
 * tee buffers for its slower branch ("ReadableStream.tee() buffer limit exceeded", hit when
 * caching large responses: honojs/hono#3612; docs/cloudflare-api.md §7), so a larger blob is sent
 * straight from R2 and the cache is filled from a second R2 read in the background.
 */
export const TEE_MAX_BYTES = 32 * 1024 * 1024;

/**
 * The Cache API key of a blob: on the platform's own domain, one entry per hash for every tenant.
 * The Cache API docs say to key on the hostname of the Worker's own zone, never a dynamic or
 * invalid one (docs/cloudflare-api.md §7; `workers/runtime-apis/cache.mdx`, cloudflare-docs PR
 * #18634). The `/__cfsetup/` prefix is not a path any site serves through the Cache API, and the
 * key is only ever used as a cache key (never fetched), so no tenant's URL can collide with it.
 * Null when there is no usable PLATFORM_DOMAIN (then blobs are not cached).
 * @param {string | undefined} platformDomain
 * @param {string} hash  64 hex
 * @returns {string | null}
 */
export function blobCacheKey(platformDomain, hash) {
  return edgeKey(platformDomain, "blob", hash);
}

/**
 * The Cache API key of an immutable object named by its hash: a blob or a format-3 shard
 * (`/__cfsetup/shard/<hash>`), on the platform's own domain as above.
 * @param {string | undefined} platformDomain
 * @param {"blob" | "shard"} kind
 * @param {string} hash  64 hex
 * @returns {string | null}
 */
export function edgeKey(platformDomain, kind, hash) {
  const domain = normaliseHost(platformDomain || "");
  if (!HOST_RE.test(domain) || domain.includes("..")) return null;
  return `https://${domain}/__cfsetup/${kind}/${hash}`;
}

/**
 * A small immutable object (a shard's JSON) from the edge cache, or null: a miss, no usable
 * cache, or any failure (never a 500; the caller reads R2).
 * @param {import("./common.js").Ctx} c
 * @param {"shard"} kind
 * @param {string} hash
 * @returns {Promise<string | null>}
 */
export async function matchEdge(c, kind, hash) {
  const key = edgeKey(c.env.PLATFORM_DOMAIN, kind, hash);
  const cache = key === null ? null : blobCache(c);
  if (cache === null || key === null) return null;
  const hit = await safeMatch(cache, key, {});
  if (!hit) return null;
  try {
    if (hit.status !== 200) {
      await hit.body?.cancel().catch(() => {});
      return null;
    }
    return await hit.text();
  } catch {
    return null;
  }
}

/**
 * Stores a small immutable object at the edge in the background (a failure is ignored).
 * @param {import("./common.js").Ctx} c
 * @param {"shard"} kind
 * @param {string} hash
 * @param {string} text
 */
export function putEdge(c, kind, hash, text) {
  const key = edgeKey(c.env.PLATFORM_DOMAIN, kind, hash);
  const cache = key === null ? null : blobCache(c);
  if (cache === null || key === null || !c.ctx || typeof c.ctx.waitUntil !== "function") return;
  backgroundPut(c, cache, key, async () =>
    new Response(text, {
      headers: { "content-type": "application/json", "cache-control": CC_IMMUTABLE },
    }),
  );
}

/**
 * The default cache when blobs may use it: not on *.workers.dev (where the Cache API does
 * nothing, docs/cloudflare-api.md §7), not with BLOB_CACHE=off, and only where the runtime has one.
 * @param {import("./common.js").Ctx} c
 * @returns {Cache | null}
 */
function blobCache(c) {
  if (c.env.BLOB_CACHE === "off" || normaliseHost(c.url.hostname).endsWith(".workers.dev")) return null;
  try {
    // @ts-ignore: `caches.default` is the Workers runtime's, not the DOM's
    const cache = typeof caches === "undefined" ? undefined : caches.default;
    return cache || null;
  } catch {
    return null;
  }
}

/**
 * cache.match that never fails the request: any error (the cache unavailable, a runtime limit)
 * is a miss, and the blob comes from R2.
 * @param {Cache} cache
 * @param {string} key
 * @param {RequestInit} init
 * @returns {Promise<Response | undefined>}
 */
async function safeMatch(cache, key, init) {
  try {
    return await cache.match(new Request(key, init));
  } catch {
    return undefined;
  }
}

/**
 * cache.put in the background; a failure (thrown or rejected) only means the next request reads
 * R2 again.
 * @param {import("./common.js").Ctx} c
 * @param {Cache} cache
 * @param {string} key
 * @param {() => Promise<Response | null>} make  the response to store, or null for nothing
 */
function backgroundPut(c, cache, key, make) {
  const p = (async () => {
    /** @type {Response | null} */
    let res = null;
    try {
      res = await make();
      if (res !== null) await cache.put(key, res);
    } catch {
      // Ignored (see above). A body the cache never read is cancelled, so a tee()d branch stops
      // buffering what the visitor's branch reads.
      if (res !== null && res.body !== null && !res.bodyUsed && !res.body.locked) {
        await res.body.cancel().catch(() => {});
      }
    }
  })();
  c.ctx?.waitUntil(p);
}

/**
 * @param {ReadableStream} body
 * @param {number} size
 * @returns {Response}
 */
function cacheable(body, size) {
  return new Response(body, {
    headers: {
      "content-type": "application/octet-stream",
      "content-length": String(size),
      "cache-control": CC_IMMUTABLE,
    },
  });
}

/**
 * The blob's bytes (or, for HEAD, proof it exists): {body} or null when R2 does not have it.
 * Whole reads go through caches.default (filled in the background on a miss); ranged reads use a
 * cached whole copy when there is one (the Cache API answers a Range with 206), else R2's range.
 * @param {import("./common.js").Ctx} c
 * @param {import("./heads.js").FileEntry} entry
 * @param {{offset: number, length: number} | null} range
 * @returns {Promise<{body: ReadableStream | null} | null>}
 */
export async function readBlob(c, entry, range) {
  const key = `blobs/${entry.hash}`;
  const cacheKey = blobCacheKey(c.env.PLATFORM_DOMAIN, entry.hash);
  const cache = cacheKey === null ? null : blobCache(c);
  if (cache !== null && cacheKey !== null) {
    const init = range ? { headers: { range: `bytes=${range.offset}-${range.offset + range.length - 1}` } } : {};
    const hit = await safeMatch(cache, cacheKey, init);
    if (hit) {
      if (hit.status === (range ? 206 : 200) && hit.body !== null) {
        if (c.head) {
          await hit.body.cancel().catch(() => {});
          return { body: null };
        }
        return { body: hit.body };
      }
      await hit.body?.cancel().catch(() => {});
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
  if (cache === null || cacheKey === null || range || !c.ctx || typeof c.ctx.waitUntil !== "function") {
    return { body: obj.body };
  }
  if (entry.size <= TEE_MAX_BYTES) {
    const [mine, theirs] = obj.body.tee();
    backgroundPut(c, cache, cacheKey, async () => cacheable(theirs, entry.size));
    return { body: mine };
  }
  // Too large to tee: the visitor gets R2's stream untouched; the cache gets its own read.
  backgroundPut(c, cache, cacheKey, async () => {
    const again = await c.env.SITES.get(key);
    if (again === null) return null;
    if (again.size !== entry.size) {
      await again.body?.cancel();
      return null;
    }
    return cacheable(again.body, entry.size);
  });
  return { body: obj.body };
}
