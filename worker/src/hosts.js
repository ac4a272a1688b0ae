// @ts-check
//! Host → tenant (and preview name): `<slug>.<domain>`, `<name>--<slug>.<domain>`, else a custom
//! hostname's `hosts/<host>.json` entry. Imports common.js and cache.js's `record` (the entry is a
//! revalidated record); never the heads, files or rules.

import { ConfigError, HOST_RE, SLUG_RE, normaliseHost } from "./common.js";
import { record } from "./cache.js";

/**
 * A slug that can name a tenant or a preview: a DNS label without `--` (which separates them).
 * @param {string} s
 * @returns {boolean}
 */
export function isTenantSlug(s) {
  return SLUG_RE.test(s) && !s.includes("--");
}

/**
 * @typedef {object} Site
 * @property {string} tenant
 * @property {string | null} preview
 */

/**
 * The platform-domain part of host resolution, pure: a Site for `<slug>.<domain>` or
 * `<name>--<slug>.<domain>`, null for a malformed name under the domain, undefined when the host
 * is not a single label under the domain (then it may be a custom hostname).
 * @param {string} host    normalised
 * @param {string} domain  normalised PLATFORM_DOMAIN ("" when unset)
 * @returns {Site | null | undefined}
 */
export function parsePlatformHost(host, domain) {
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
  return undefined;
}

/**
 * True when a host can have a `hosts/<host>.json` entry (a plain DNS name: never an IPv6
 * literal, odd characters or an empty label), so the key can never leave `hosts/`.
 * @param {string} host
 * @returns {boolean}
 */
export function isEntryHost(host) {
  return HOST_RE.test(host) && !host.includes("..");
}

/**
 * Returns {tenant, preview|null}, or null for an unknown host. ConfigError on a bad entry.
 * @param {import("./cache.js").State} st
 * @param {import("./common.js").ExecCtx | undefined} ctx
 * @param {string} host  normalised
 * @param {import("./common.js").Env} env
 * @returns {Promise<Site | null>}
 */
export async function resolveHost(st, ctx, host, env) {
  const direct = parsePlatformHost(host, normaliseHost(env.PLATFORM_DOMAIN || ""));
  if (direct !== undefined) return direct;
  if (!isEntryHost(host)) return null;
  const tenant = await record(st, ctx, `h:${host}`, `hosts/${host}.json`, parseHostEntry, env);
  return tenant === null ? null : { tenant, preview: null };
}

/**
 * @param {string} text  the entry's JSON
 * @returns {string} the tenant
 */
export function parseHostEntry(text) {
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
