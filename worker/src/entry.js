// @ts-check
//! The router Worker's entry module: the fetch handler and the order of one request (method,
//! health, host, head, rules, canonical URLs, files). Imports every other module; none imports it.

/**
 * cfsetup router Worker: serves every tenant's static site out of one R2 bucket.
 *
 * This is the entry module. The sources are the ES modules in worker/src/ (hosts, heads and
 * shards, rules, files and ranges, previews, cache, responses, this entry); `npm run build`
 * (worker/build.mjs, esbuild) bundles them into ONE module, worker/router.js, which is committed,
 * embedded in the cfsetup binary (`include_str!`) and uploaded as the main module `router.js`
 * (`application/javascript+module`), so building cfsetup needs no npm. The bundle has no runtime
 * dependencies. docs/storage-layout.md is the contract for everything it reads.
 *
 * Bindings
 *   SITES               R2 bucket holding every tenant.
 *   PLATFORM_DOMAIN     plain text, e.g. "getai.page": `acme.getai.page` is tenant `acme`, and
 *                       `feature-x--acme.getai.page` is acme's preview `feature-x`. Also the host
 *                       of the blob cache's keys (step 7).
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
 *      A head over its documented bound (1 MiB, heads.js HEAD_MAX_BYTES) is refused on its R2
 *      size, before the body is read: not parsed, not cached (only the refusal, by ETag); that
 *      tenant gets 503 no-store and a console.error line names it and the size.
 *   4. Format 2 files live in shards `sites/<t>/deploys/<id>/shards/<k>.json`, immutable, cached
 *      by deploy id and k. Every lookup of one request is gathered first and the shards it needs
 *      are read in parallel (with `shard_key: "stem"` they are all one shard).
 *   5. The path is percent-decoded, `.`/`..`/`//` resolved, and NFC-normalised (stored paths are
 *      NFC). `_redirects` rules (compiled once per head, first match by line wins; 200 = rewrite), then
 *      canonical URLs: `/a.html` → 308 `/a`, `/a/index.html` → 308 `/a/`, `/d` → 308 `/d/` when
 *      only `/d/index.html` exists, `/a/` → 308 `/a` when only `/a.html` exists; query kept.
 *      Every canonical redirect targets a URL that serves a file directly, so there are no chains.
 *   6. Not found: `404` (nearest `…/404.html` up the tree, status 404), `spa` (`/index.html` with
 *      200 when the last segment has no dot; with a dot, `/user/john.doe`, only for a navigation,
 *      `Sec-Fetch-Mode: navigate` or Accept naming text/html, with `Vary: Sec-Fetch-Mode, Accept`,
 *      so a script's missing asset still 404s), `none` (plain 404).
 *   7. Files: ETag "<hash>", If-None-Match → 304, Range (single range → 206, unsatisfiable → 416,
 *      several → 200 whole, If-Range honoured), Accept-Ranges: bytes. Blob bytes come from
 *      `caches.default` under `https://<PLATFORM_DOMAIN>/__cfsetup/blob/<hash>` when possible (not
 *      on *.workers.dev), else R2; a failing cache is a miss, never a 500; blobs up to 32 MiB are
 *      tee()d into the cache, larger ones filled from a second R2 read in the background.
 *   8. `_headers` rules apply to file responses (all matching blocks; values of one name joined
 *      with ", "; unset removes; x-content-type-options, framing headers, x-tenant and etag cannot
 *      be changed: rules.js PROTECTED_HEADERS, the same list as Rust's). Previews carry
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
 *   405, 500, 503 no-store. Every response: X-Content-Type-Options: nosniff, X-Frame-Options:
 *   SAMEORIGIN, Referrer-Policy: strict-origin-when-cross-origin; once the tenant is known x-tenant.
 */

import { ConfigError, TooLargeError, normaliseHost } from "./common.js";
import { getState } from "./cache.js";
import { resolveHost } from "./hosts.js";
import { loadHead, retainedEntry } from "./heads.js";
import { authorised, markPreview, routeFor } from "./previews.js";
import { compileRules, matchRedirect } from "./rules.js";
import {
  decodeAndNormalise,
  encodePath,
  notFound,
  resolve,
  resolveRewrite,
  serveEntry,
  withQuery,
} from "./files.js";
import { CC_NOT_FOUND, CC_NO_STORE, plain, redirect } from "./responses.js";

export default {
  /**
   * @param {Request} request
   * @param {import("./common.js").Env} env
   * @param {import("./common.js").ExecCtx} ctx
   * @returns {Promise<Response>}
   */
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

/**
 * @param {Request} request
 * @param {import("./common.js").Env} env
 * @param {import("./common.js").ExecCtx} ctx
 * @returns {Promise<Response>}
 */
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
  return markPreview(res, preview);
}

/**
 * @param {Request} request
 * @param {URL} url
 * @param {import("./common.js").Env} env
 * @param {import("./common.js").ExecCtx} ctx
 * @param {import("./cache.js").State} st
 * @param {string} tenant
 * @param {string | null} preview
 * @param {boolean} head
 * @returns {Promise<Response>}
 */
async function serveSite(request, url, env, ctx, st, tenant, preview, head) {
  let route;
  try {
    route = routeFor(await loadHead(st, ctx, tenant, env), preview);
    if (route !== null) compileRules(route);
  } catch (err) {
    if (err instanceof ConfigError) {
      return plain(500, "site configuration error", { cacheControl: CC_NO_STORE, head, tenant });
    }
    if (err instanceof TooLargeError) {
      // This tenant only (its head is over the bound; cache.js logged it when it was read).
      return plain(503, "site temporarily unavailable", { cacheControl: CC_NO_STORE, head, tenant });
    }
    throw err;
  }
  if (route === null) return plain(404, "site not found", { cacheControl: CC_NOT_FOUND, head, tenant });
  if (route.protect !== null && !(await authorised(request, route))) {
    return plain(401, "this preview needs its password", {
      cacheControl: CC_NO_STORE,
      head,
      tenant,
      extra: { "www-authenticate": 'Basic realm="preview", charset="UTF-8"' },
    });
  }
  const res = await serveRoute(request, url, env, ctx, st, tenant, route, head);
  // A response to a request with credentials: `public` would let a shared cache keep it and hand
  // it to anyone (RFC 9111 §3.5), so a protected preview's answers are private.
  if (route.protect !== null) res.headers.set("cache-control", "private, no-cache");
  return res;
}

/**
 * The Route's answer for the request's path: redirects, rewrites, files, not found.
 * @param {Request} request
 * @param {URL} url
 * @param {import("./common.js").Env} env
 * @param {import("./common.js").ExecCtx} ctx
 * @param {import("./cache.js").State} st
 * @param {string} tenant
 * @param {import("./heads.js").Route} route
 * @param {boolean} head
 * @returns {Promise<Response>}
 */
async function serveRoute(request, url, env, ctx, st, tenant, route, head) {
  const compiled = compileRules(route);

  const path = decodeAndNormalise(url.pathname);
  if (path === null) return plain(400, "bad request", { cacheControl: CC_NO_STORE, head, tenant });

  /** @type {import("./common.js").Ctx} */
  const c = { request, url, env, ctx, st, tenant, route, head, reqPath: path };
  try {
    const rule = matchRedirect(compiled, path);
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
    // Skew protection: a hashed asset an earlier live deploy served, for its window.
    const old = await retainedEntry(c, path);
    if (old !== null) return serveEntry(c, path, old, 200);
    return notFound(c, path);
  } catch (err) {
    if (err instanceof ConfigError) {
      return plain(500, "site configuration error", { cacheControl: CC_NO_STORE, head, tenant });
    }
    throw err;
  }
}
