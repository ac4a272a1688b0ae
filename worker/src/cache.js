// @ts-check
//! Owns every cache of the router: the in-isolate byte-bounded LRU (heads, host entries, shards),
//! the negative cache, the revalidated-record logic (TTL, stale-while-revalidate, conditional
//! reads), and blob reads through the Cache API with R2 behind it. Imports only common.js and
//! responses.js' constants (never the request flow: hosts, heads, rules, files, entry).

import { ConfigError, normaliseHost, numberSetting } from "./common.js";
import { CC_IMMUTABLE } from "./responses.js";

const CACHE_TTL_MS = 5000;
const MAX_STALE_MS = 60_000;
const CACHE_MAX_BYTES = 48 * 1024 * 1024;
/** The negative cache (unknown hosts and tenants): small, so junk cannot take memory. */
const NEG_CACHE_BYTES = 256 * 1024;
/** Immutable objects (shards) and heads not revalidated for this long are dropped. */
export const KEEP_MS = 10 * 60_000;
const BLOB_CACHE_ORIGIN = "https://blobs.cfsetup.invalid/";

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
 * is not cached.
 * @param {State} st
 * @param {import("./common.js").ExecCtx | undefined} ctx
 * @param {string} key        the cache key
 * @param {string} r2key
 * @param {(text: string) => any} parse  throws ConfigError for bad data
 * @param {import("./common.js").Env} env
 * @returns {Promise<any>} the parsed value, or null when the object does not exist
 */
export async function record(st, ctx, key, r2key, parse, env) {
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

/**
 * One refresh per key at a time: concurrent requests share it.
 * @param {State} st
 * @param {string} key
 * @param {string} r2key
 * @param {(text: string) => any} parse
 * @param {Rec | undefined} prev
 * @param {import("./common.js").Env} env
 * @returns {Promise<Rec | null>}
 */
function refresh(st, key, r2key, parse, prev, env) {
  let p = st.inflight.get(key);
  if (p === undefined) {
    p = doRefresh(st, key, r2key, parse, prev, env).finally(() => st.inflight.delete(key));
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
 * @returns {Promise<Rec | null>}
 */
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
 * @param {import("./common.js").Ctx} c
 * @returns {boolean}
 */
function blobCacheOn(c) {
  return (
    c.env.BLOB_CACHE !== "off" &&
    typeof caches !== "undefined" &&
    // @ts-ignore: `caches.default` is the Workers runtime's, not the DOM's
    caches.default !== undefined &&
    !normaliseHost(c.url.hostname).endsWith(".workers.dev")
  );
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
  const useCache = blobCacheOn(c);
  // @ts-ignore: the Workers runtime's default cache
  const cache = useCache ? caches.default : null;
  const cacheKey = BLOB_CACHE_ORIGIN + entry.hash;
  if (cache) {
    const init = range ? { headers: { range: `bytes=${range.offset}-${range.offset + range.length - 1}` } } : {};
    const hit = await cache.match(new Request(cacheKey, init));
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
  if (cache && !range && c.ctx && typeof c.ctx.waitUntil === "function") {
    const [mine, theirs] = obj.body.tee();
    const stored = new Response(theirs, {
      headers: {
        "content-type": "application/octet-stream",
        "content-length": String(entry.size),
        "cache-control": CC_IMMUTABLE,
      },
    });
    c.ctx.waitUntil(cache.put(cacheKey, stored).catch(() => {}));
    return { body: mine };
  }
  return { body: obj.body };
}
