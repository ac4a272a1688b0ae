// @ts-check
//! Previews: which Route of a head a request gets (live, or the named preview), a preview's end
//! (404 after `expires_at`), its password (basic auth against the PBKDF2 hash in the head), and
//! what marks a preview's responses. Imports only types from heads.js; the host part
//! (`<name>--<slug>`) is hosts.js', the head's `previews` and `protected_previews` maps are parsed
//! by heads.js.

/**
 * The Route to serve: the live deploy, or the preview named by the host; null when the tenant has
 * no head or no such preview (a 404, like an unknown site).
 * @param {import("./heads.js").Head | null} head
 * @param {string | null} preview
 * @returns {import("./heads.js").Route | null}
 */
export function routeFor(head, preview) {
  if (head === null) return null;
  if (preview === null) return head.live;
  const route = head.previews.get(preview) || null;
  // After its end a preview is gone, as if removed: the next gc drops it from the head.
  if (route !== null && route.expiresAt !== null && route.expiresAt <= Date.now()) return null;
  return route;
}

/** Verified `Authorization` values, by SHA-256 of deploy id, salt and header: PBKDF2's 100,000
 * rounds run once per password per isolate, not once per request. Bounded; oldest out first. */
const verified = new Map();
const VERIFIED_MAX = 256;

/**
 * @param {Uint8Array} a
 * @param {Uint8Array} b
 */
function sameBytes(a, b) {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

/**
 * The password of a `Basic` Authorization header (any user name), or null.
 * @param {string | null} header
 * @returns {string | null}
 */
export function basicPassword(header) {
  if (header === null) return null;
  const m = /^Basic[ ]+([A-Za-z0-9+/=]+)[ ]*$/i.exec(header);
  if (m === null) return null;
  let text;
  try {
    const bin = atob(m[1]);
    text = new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
  } catch {
    return null;
  }
  const i = text.indexOf(":");
  return i < 0 ? null : text.slice(i + 1);
}

/**
 * Whether the request carries the preview's password: PBKDF2-HMAC-SHA256 through Web Crypto,
 * compared in constant time.
 * @param {Request} request
 * @param {import("./heads.js").Route} route
 * @returns {Promise<boolean>}
 */
export async function authorised(request, route) {
  const p = route.protect;
  if (p === null) return true;
  const header = request.headers.get("authorization");
  const password = basicPassword(header);
  if (password === null) return false;
  const enc = new TextEncoder();
  const keyBytes = await crypto.subtle.digest(
    "SHA-256",
    enc.encode(`${route.deployId}\n${[...p.salt].join(",")}\n${header}`),
  );
  const key = [...new Uint8Array(keyBytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
  if (verified.has(key)) return true;
  const material = await crypto.subtle.importKey("raw", enc.encode(password), "PBKDF2", false, ["deriveBits"]);
  const bits = await crypto.subtle.deriveBits(
    { name: "PBKDF2", hash: "SHA-256", salt: p.salt, iterations: p.iterations },
    material,
    256,
  );
  if (!sameBytes(new Uint8Array(bits), p.hash)) return false;
  if (verified.size >= VERIFIED_MAX) verified.delete(verified.keys().next().value);
  verified.set(key, true);
  return true;
}

/**
 * Marks a preview's response: previews are never indexed.
 * @param {Response} res
 * @param {string | null} preview
 * @returns {Response}
 */
export function markPreview(res, preview) {
  if (preview !== null) res.headers.set("x-robots-tag", "noindex");
  return res;
}
