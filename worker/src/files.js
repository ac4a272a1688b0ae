// @ts-check
//! Files and ranges: request path decoding, canonical URLs (which file a path serves, or where it
//! redirects), not-found handling, conditional requests and byte ranges, and the file response.
//! Imports heads (lookup), rules (applyHeaderRules), cache (readBlob), responses; never
//! hosts or entry.

import { readBlob } from "./cache.js";
import { lookup } from "./heads.js";
import { CC_NOT_FOUND, CC_NO_STORE, baseHeaders, cacheControlFor, plain } from "./responses.js";
import { applyHeaderRules } from "./rules.js";

/** @typedef {import("./common.js").Ctx} Ctx */
/** @typedef {import("./heads.js").FileEntry} FileEntry */

// ---------------------------------------------------------------------------------------------
// Paths and canonical URLs

/**
 * Percent-decodes and normalises a URL pathname. Returns an absolute path ("/…", a trailing "/"
 * kept when the request named a directory), or null for a malformed escape or a NUL.
 * `\` is an ordinary character; `..` never climbs above "/". The result is Unicode NFC, as the
 * stored paths are (docs/storage-layout.md): `/cafe\u0301` (e + combining acute, as some systems
 * spell it) finds `/café`.
 * @param {string} pathname
 * @returns {string | null}
 */
export function decodeAndNormalise(pathname) {
  let decoded;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    return null;
  }
  if (decoded.includes("\0")) return null;
  const raw = decoded.normalize("NFC").split("/");
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

/**
 * @param {string} p  a decoded path
 * @returns {string} the same path percent-encoded per segment (for a Location)
 */
export function encodePath(p) {
  return p.split("/").map(encodeURIComponent).join("/");
}

/**
 * @param {string} to
 * @param {string} search  the request's `?…` ("" when none)
 * @returns {string} to with the request's query, unless to has its own
 */
export function withQuery(to, search) {
  return search && !to.includes("?") ? to + search : to;
}

/**
 * Returns {path, entry} to serve, {location} for a 308, or null. Every location serves a file
 * directly under the same rules (checked by the property test), so a redirect never chains:
 *   `/d/`            → `/d/index.html`; else 308 `/d` if `/d.html` exists and `/d` does not
 *   `/d/index.html`  → 308 `/d/` when it exists
 *   `/a.html`        → 308 `/a` when it exists and `/a` does not (else served as is)
 *   `/a`             → `/a`, else `/a.html`, else 308 `/a/` when `/a/index.html` exists
 * @param {Ctx} c
 * @param {string} path
 * @returns {Promise<{path: string, entry: FileEntry, location?: undefined} | {location: string} | null>}
 */
export async function resolve(c, path) {
  if (path.endsWith("/")) {
    const d = path.slice(0, -1);
    const idx = path + "index.html";
    const f = await lookup(c, d === "" ? [idx] : [idx, d + ".html", d]);
    const e = f.get(idx);
    if (e) return { path: idx, entry: e };
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
  for (const p of [path, path + ".html"]) {
    const e = f.get(p);
    if (e) return { path: p, entry: e };
  }
  if (f.has(path + "/index.html")) return { location: path + "/" };
  return null;
}

/**
 * A rewrite's target: the file, else `.html`, else the directory index; no redirects.
 * @param {Ctx} c
 * @param {string} path
 * @returns {Promise<{path: string, entry: FileEntry} | null>}
 */
export async function resolveRewrite(c, path) {
  const candidates = path.endsWith("/")
    ? [path + "index.html"]
    : [path, path + ".html", path + "/index.html"];
  const f = await lookup(c, candidates);
  for (const p of candidates) {
    const e = f.get(p);
    if (e) return { path: p, entry: e };
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Not found

/**
 * True when the request wants a page (a browser navigation), not an asset: `Sec-Fetch-Mode:
 * navigate`, or an Accept that names text/html. A script's fetch or an <img> sends neither.
 * @param {Request} request
 * @returns {boolean}
 */
export function isNavigation(request) {
  if ((request.headers.get("sec-fetch-mode") || "").trim().toLowerCase() === "navigate") return true;
  return /(^|[\s,])text\/html\s*(;|,|$)/i.test(request.headers.get("accept") || "");
}

/** The request headers that decide a dotted SPA path's answer (so caches keep both answers). */
const SPA_VARY = "Sec-Fetch-Mode, Accept";

/**
 * The Route's not-found answer for path: the nearest `…/404.html` (status 404), the SPA's
 * `/index.html` (200), or a plain 404. In SPA mode a path whose last segment has no dot is a
 * route (`/user/42`) and gets `/index.html`; one with a dot (`/user/john.doe`, `/app.js`) gets it
 * only for a navigation, so a missing asset requested by a script still 404s.
 * @param {Ctx} c
 * @param {string} path
 * @returns {Promise<Response>}
 */
export async function notFound(c, path) {
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
    const dotted = last.includes(".");
    if (!dotted || isNavigation(c.request)) {
      const f = await lookup(c, ["/index.html"]);
      const entry = f.get("/index.html");
      if (entry) {
        const res = await serveEntry(c, "/index.html", entry, 200);
        if (dotted) res.headers.append("vary", SPA_VARY);
        return res;
      }
    }
    if (dotted) {
      return plain(404, "not found", { cacheControl: CC_NOT_FOUND, head: c.head, tenant: c.tenant, extra: { vary: SPA_VARY } });
    }
  }
  return plain(404, "not found", { cacheControl: CC_NOT_FOUND, head: c.head, tenant: c.tenant });
}

// ---------------------------------------------------------------------------------------------
// Conditional requests and ranges

/**
 * RFC 9110 weak comparison: `W/"x"` matches `"x"`; `*` matches any existing representation.
 * @param {string | null} header  If-None-Match
 * @param {string} etag
 * @returns {boolean}
 */
export function ifNoneMatchMatches(header, etag) {
  if (header === null) return false;
  for (let tag of header.split(",")) {
    tag = tag.trim();
    if (tag === "*") return true;
    if (tag.startsWith("W/") || tag.startsWith("w/")) tag = tag.slice(2);
    if (tag === etag) return true;
  }
  return false;
}

export const UNSATISFIABLE = Object.freeze({ unsatisfiable: true });

/** @typedef {{offset: number, length: number}} ByteRange */

/**
 * One `bytes=` range → {offset, length}, UNSATISFIABLE, or null (no range, a malformed one, or
 * several: the whole file is sent with 200).
 * @param {string | null} header
 * @param {number} size
 * @returns {ByteRange | typeof UNSATISFIABLE | null}
 */
export function parseRange(header, size) {
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

// ---------------------------------------------------------------------------------------------
// The file response

/**
 * @param {Ctx} c
 * @param {Headers} h
 */
function applyRules(c, h) {
  if (c.route.compiled !== null) applyHeaderRules(c.route.compiled, c.url.hostname, c.reqPath, h);
}

/**
 * Serves one file: 200 (or the given 404 status), 304, 206 or 416.
 * @param {Ctx} c
 * @param {string} path
 * @param {FileEntry} entry
 * @param {number} status  200, or 404 for a 404 page
 * @returns {Promise<Response>}
 */
export async function serveEntry(c, path, entry, status) {
  const { request, tenant, head } = c;
  const cacheControl = status === 404 ? CC_NOT_FOUND : cacheControlFor(path, entry.contentType);
  const etag = `"${entry.hash}"`;
  if (status === 200 && ifNoneMatchMatches(request.headers.get("if-none-match"), etag)) {
    const h = baseHeaders(tenant, cacheControl);
    h.set("etag", etag);
    h.set("accept-ranges", "bytes");
    applyRules(c, h);
    return new Response(null, { status: 304, headers: h });
  }
  /** @type {ByteRange | typeof UNSATISFIABLE | null} */
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
    applyRules(c, h);
    return new Response(head ? null : "", { status: 416, headers: h });
  }
  const byteRange = /** @type {ByteRange | null} */ (range);
  const blob = await readBlob(c, entry, byteRange);
  if (blob === null) {
    if (status === 404) return plain(404, "not found", { cacheControl: CC_NOT_FOUND, head, tenant });
    return plain(500, "content missing", { cacheControl: CC_NO_STORE, head, tenant });
  }
  if (byteRange !== null) {
    h.set("content-range", `bytes ${byteRange.offset}-${byteRange.offset + byteRange.length - 1}/${entry.size}`);
    h.set("content-length", String(byteRange.length));
    status = 206;
  } else {
    h.set("content-length", String(entry.size));
  }
  applyRules(c, h);
  return new Response(head ? null : blob.body, { status, headers: h });
}
