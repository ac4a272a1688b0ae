// @ts-check
//! `_redirects` and `_headers`: compiles a Route's rules once (kept with the cached head), matches
//! redirects (first by line wins; 200 = rewrite) and applies header blocks. Imports common.js only;
//! never reads storage.

import { ConfigError, HEADER_NAME_RE, HEADER_VALUE_RE, isObject, normaliseHost } from "./common.js";

const REDIRECT_CODES = new Set([200, 301, 302, 303, 307, 308]);

/**
 * Names a `_headers` rule may not touch: framing (set from the file), the one security header
 * that stays, and the platform's own (`x-tenant` names the tenant, `etag` is the blob hash that
 * If-None-Match / If-Range are checked against). The same list is PROTECTED_HEADERS in
 * src/site/rules.rs (deploy-site refuses them); test/unit-rules.test.mjs compares the two.
 */
export const PROTECTED_HEADERS = new Set([
  "x-content-type-options",
  "content-length",
  "content-range",
  "transfer-encoding",
  "connection",
  "x-tenant",
  "etag",
]);

/**
 * @typedef {object} Pattern
 * @property {RegExp} re
 * @property {string[]} names   capture names in order (`splat` for `*`)
 */

/**
 * @typedef {object} Compiled
 * @property {Map<string, {to: string, status: number, line: number}>} static
 * @property {Array<Pattern & {to: string, status: number, line: number}>} dynamic
 * @property {Array<Pattern & {hostRe: RegExp | null, set: string[][], unset: string[]}>} headers
 */

/**
 * Rules are matched against the decoded, NFC path (files.js decodeAndNormalise), so a pattern
 * written percent-encoded is decoded, and NFC-normalised like the path.
 * @param {string} s
 * @returns {string}
 */
export function safeDecode(s) {
  let d = s;
  try {
    d = decodeURIComponent(s);
  } catch {
    // kept as written
  }
  return d.normalize("NFC");
}

/**
 * @param {string} p
 * @returns {string}
 */
export function trimSlash(p) {
  return p.length > 1 && p.endsWith("/") ? p.slice(0, -1) : p;
}

/**
 * A source pattern → {re, names}. `*` (one) matches anything and is `:splat`; `:name` matches
 * one path segment. Matching ignores a trailing slash unless the pattern ends with `*`.
 * @param {unknown} pattern
 * @param {string} what  names the field in the ConfigError
 * @returns {Pattern}
 */
export function compilePattern(pattern, what) {
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
      const m = /** @type {RegExpExecArray} */ (/^:([A-Za-z]\w*)/.exec(src.slice(i)));
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

/**
 * Replaces `:name` placeholders in template with the captured values (each path segment
 * percent-encoded when encode, for a Location).
 * @param {string} template
 * @param {string[]} names
 * @param {string[]} values
 * @param {boolean} encode
 * @returns {string}
 */
export function substitute(template, names, values, encode) {
  return template.replace(/:([A-Za-z]\w*)/g, (m, name) => {
    const i = names.indexOf(name);
    if (i < 0) return m;
    return encode ? values[i].split("/").map(encodeURIComponent).join("/") : values[i];
  });
}

/**
 * Compiles (once) and returns the Route's rules. ConfigError on a malformed rule.
 * @param {import("./heads.js").Route} route
 * @returns {Compiled}
 */
export function compileRules(route) {
  if (route.compiled !== null) return route.compiled;
  /** @type {Compiled} */
  const compiled = { static: new Map(), dynamic: [], headers: [] };
  const rd = route.redirects;
  if (rd !== undefined && rd !== null) {
    if (!isObject(rd)) throw new ConfigError("redirects");
    /** @param {any} r */
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
      const { re, names } = compilePattern(typeof r.from === "string" ? safeDecode(r.from) : r.from, "redirect from");
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

/**
 * The first matching redirect by line, with `to` substituted; or null.
 * @param {Compiled} compiled
 * @param {string} path  decoded, normalised
 * @returns {{to: string, status: number} | null}
 */
export function matchRedirect(compiled, path) {
  const s = compiled.static.get(trimSlash(path));
  const limit = s === undefined ? Infinity : s.line;
  for (const d of compiled.dynamic) {
    if (d.line >= limit) break;
    const m = d.re.exec(path);
    if (m !== null) return { to: substitute(d.to, d.names, m.slice(1), true), status: d.status };
  }
  return s === undefined ? null : s;
}

/**
 * Applies every matching `_headers` block to h, in order (all matching blocks; values of one
 * name joined with ", "; unset removes; protected names were dropped at compile time).
 * @param {Compiled} compiled
 * @param {string} hostname  the request's
 * @param {string} path      the decoded request path
 * @param {Headers} h
 */
export function applyHeaderRules(compiled, hostname, path, h) {
  const rules = compiled.headers;
  if (rules.length === 0) return;
  const host = normaliseHost(hostname);
  /** @type {Map<string, string>} */
  const set = new Map();
  for (const r of rules) {
    if (r.hostRe !== null && !r.hostRe.test(host)) continue;
    const m = r.re.exec(path);
    if (m === null) continue;
    for (const n of r.unset) {
      set.delete(n);
      h.delete(n);
    }
    for (const [n, v] of r.set) {
      const value = substitute(v, r.names, m.slice(1), false);
      const had = set.get(n);
      set.set(n, had !== undefined ? had + ", " + value : value);
    }
  }
  for (const [n, v] of set) h.set(n, v);
}
