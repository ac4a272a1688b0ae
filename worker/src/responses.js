// @ts-check
//! Builds the router's responses: the security headers every response carries, Cache-Control by
//! kind of file, plain-text answers and redirects. Imports nothing from the other modules (pure
//! Web API: Headers, Response).

export const SECURITY_HEADERS = {
  "x-content-type-options": "nosniff",
  "x-frame-options": "SAMEORIGIN",
  "referrer-policy": "strict-origin-when-cross-origin",
};

export const CC_HTML = "public, max-age=0, must-revalidate";
export const CC_ASSET = "public, max-age=3600";
export const CC_IMMUTABLE = "public, max-age=31536000, immutable";
export const CC_NOT_FOUND = "public, max-age=0, must-revalidate";
export const CC_REDIRECT = "public, max-age=0, must-revalidate";
export const CC_NO_STORE = "no-store";

const HASHED_SEGMENT_RE = /^[0-9a-f]{8,}$/i;

/**
 * Cache-Control for a file: HTML always revalidates, content-hashed names are immutable, other
 * assets an hour.
 * @param {string} path
 * @param {string} contentType
 * @returns {string}
 */
export function cacheControlFor(path, contentType) {
  const mime = contentType.split(";")[0].trim().toLowerCase();
  if (mime === "text/html") return CC_HTML;
  return isContentHashed(path) ? CC_IMMUTABLE : CC_ASSET;
}

/**
 * True when a segment of the file name before its extension is ≥ 8 hex (app.3f2a9c1b.js).
 * @param {string} path
 * @returns {boolean}
 */
export function isContentHashed(path) {
  const name = path.slice(path.lastIndexOf("/") + 1);
  const dot = name.lastIndexOf(".");
  if (dot <= 0) return false; // no extension
  return name.slice(0, dot).split(/[.-]/).some((seg) => HASHED_SEGMENT_RE.test(seg));
}

/**
 * @param {string | undefined} tenant
 * @param {string | undefined} cacheControl
 * @returns {Headers}
 */
export function baseHeaders(tenant, cacheControl) {
  const h = new Headers(SECURITY_HEADERS);
  if (cacheControl) h.set("cache-control", cacheControl);
  if (tenant) h.set("x-tenant", tenant);
  return h;
}

/**
 * @typedef {object} PlainOptions
 * @property {string} [cacheControl]
 * @property {boolean} [head]
 * @property {string} [tenant]
 * @property {Record<string, string>} [extra]
 */

/**
 * A text/plain response (no body for HEAD, Content-Length still the body's).
 * @param {number} status
 * @param {string} text
 * @param {PlainOptions} [options]
 * @returns {Response}
 */
export function plain(status, text, { cacheControl, head = false, tenant, extra } = {}) {
  const h = baseHeaders(tenant, cacheControl);
  h.set("content-type", "text/plain; charset=utf-8");
  h.set("content-length", String(new TextEncoder().encode(text).length));
  if (extra) for (const [k, v] of Object.entries(extra)) h.set(k, v);
  return new Response(head ? null : text, { status, headers: h });
}

/**
 * @param {number} status
 * @param {string} location
 * @param {string} tenant
 * @param {boolean} head
 * @returns {Response}
 */
export function redirect(status, location, tenant, head) {
  const h = baseHeaders(tenant, CC_REDIRECT);
  h.set("location", location);
  h.set("content-length", "0");
  return new Response(head ? null : "", { status, headers: h });
}
