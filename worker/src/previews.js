// @ts-check
//! Previews: which Route of a head a request gets (live, or the named preview), and what marks a
//! preview's responses. Imports only types from heads.js; the host part (`<name>--<slug>`) is
//! hosts.js', the head's `previews` map is parsed by heads.js.

/**
 * The Route to serve: the live deploy, or the preview named by the host; null when the tenant has
 * no head or no such preview (a 404, like an unknown site).
 * @param {import("./heads.js").Head | null} head
 * @param {string | null} preview
 * @returns {import("./heads.js").Route | null}
 */
export function routeFor(head, preview) {
  if (head === null) return null;
  return preview === null ? head.live : head.previews.get(preview) || null;
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
