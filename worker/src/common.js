// @ts-check
//! Shared by every module of the router: the validation patterns, the error type for bad stored
//! data, and tiny helpers. Imports nothing (every other module may import it).

/** A tenant slug (a DNS label). */
export const SLUG_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** A blob hash: SHA-256, 64 lowercase hex. */
export const HASH_RE = /^[0-9a-f]{64}$/;
/** A host that can have a `hosts/<host>.json` entry. */
export const HOST_RE = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;
export const DEPLOY_ID_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;
export const HEADER_VALUE_RE = /^[\x20-\x7e\x80-\xff]*$/;
export const HEADER_NAME_RE = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;

/** Thrown (and turned into a 500) when stored platform data is not what the contract says. */
export class ConfigError extends Error {}

/**
 * A stored object over its documented size bound (a tenant's head over 1 MiB): it is neither
 * parsed nor cached, and only that tenant answers 503.
 */
export class TooLargeError extends Error {
  /**
   * @param {string} key   the R2 key
   * @param {number} size  its size in bytes
   * @param {number} max   the bound
   */
  constructor(key, size, max) {
    super(`${key} is ${size} bytes, over the ${max}-byte bound`);
    this.key = key;
    this.size = size;
    this.max = max;
  }
}

/**
 * @param {unknown} v
 * @returns {v is Record<string, any>}
 */
export function isObject(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/**
 * A numeric env setting: the default when unset, empty, negative or not a number.
 * @param {unknown} raw
 * @param {number} dflt
 * @returns {number}
 */
export function numberSetting(raw, dflt) {
  if (raw === undefined || raw === null || raw === "") return dflt;
  const n = Number(raw);
  return Number.isFinite(n) && n >= 0 ? n : dflt;
}

/**
 * Lower case, trailing dots dropped.
 * @param {string | undefined | null} hostname
 * @returns {string}
 */
export function normaliseHost(hostname) {
  let h = String(hostname || "").toLowerCase();
  while (h.endsWith(".")) h = h.slice(0, -1);
  return h;
}

/**
 * What one request carries through the modules.
 * @typedef {object} Ctx
 * @property {Request} request
 * @property {URL} url
 * @property {Env} env
 * @property {ExecCtx | undefined} ctx
 * @property {import("./cache.js").State} st
 * @property {string} tenant
 * @property {import("./heads.js").Route} route
 * @property {boolean} head        true for a HEAD request
 * @property {string} reqPath      the decoded, normalised request path
 */

/**
 * The Worker's bindings (see the entry module's comment).
 * @typedef {object} Env
 * @property {any} SITES                      the R2 bucket
 * @property {string} [PLATFORM_DOMAIN]
 * @property {string} [MANIFEST_TTL_MS]
 * @property {string} [MANIFEST_MAX_STALE_MS]
 * @property {string} [CACHE_MAX_BYTES]
 * @property {string} [BLOB_CACHE]
 */

/**
 * @typedef {object} ExecCtx
 * @property {(p: Promise<unknown>) => void} waitUntil
 */
