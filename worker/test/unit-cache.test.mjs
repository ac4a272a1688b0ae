// Unit tests (node:test, no miniflare) of the cache helpers (src/cache.js) and the SPA navigation
// test (src/files.js).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Lru, TEE_MAX_BYTES, blobCacheKey } from "../src/cache.js";
import { isNavigation } from "../src/files.js";

const HASH = "ab".repeat(32);

describe("blobCacheKey", () => {
  test("on the platform's own domain, one key per hash", () => {
    assert.equal(blobCacheKey("getai.page", HASH), `https://getai.page/__cfsetup/blob/${HASH}`);
    assert.equal(blobCacheKey("GetAI.page.", HASH), `https://getai.page/__cfsetup/blob/${HASH}`);
  });
  test("no usable domain, no key (blobs then come from R2)", () => {
    for (const d of [undefined, "", "a..b", "bad host", "[::1]", "x/y"]) assert.equal(blobCacheKey(d, HASH), null, String(d));
  });
  test("the tee bound is 32 MiB", () => {
    assert.equal(TEE_MAX_BYTES, 32 * 1024 * 1024);
  });
});

describe("Lru", () => {
  test("bounded in bytes: least recently used goes first, expired entries before that", () => {
    const c = new Lru(100);
    c.set("a", 1, 40, 1000, 0);
    c.set("b", 2, 40, 1000, 0);
    assert.equal(c.get("a", 1), 1); // a is now the most recent
    c.set("c", 3, 40, 1000, 2); // over budget: b goes
    assert.equal(c.get("b", 3), undefined);
    assert.equal(c.get("a", 3), 1);
    assert.equal(c.get("c", 3), 3);
    assert.equal(c.bytes, 80);
    assert.equal(c.get("a", 1000), undefined, "expired");
    assert.equal(c.bytes, 40);
    c.set("huge", 4, 101, 1000, 0);
    assert.equal(c.get("huge", 0), undefined, "larger than the budget: not kept");
  });
});

describe("isNavigation", () => {
  const req = (headers) => new Request("https://a.getai.page/x", { headers });
  test("Sec-Fetch-Mode: navigate, or an Accept naming text/html", () => {
    assert.equal(isNavigation(req({ "sec-fetch-mode": "navigate" })), true);
    assert.equal(isNavigation(req({ accept: "text/html,application/xhtml+xml,*/*;q=0.8" })), true);
    assert.equal(isNavigation(req({ accept: "application/json, text/html;q=0.5" })), true);
  });
  test("a script's or an image's request is not", () => {
    assert.equal(isNavigation(req({})), false);
    assert.equal(isNavigation(req({ accept: "*/*", "sec-fetch-mode": "cors" })), false);
    assert.equal(isNavigation(req({ accept: "image/avif,image/webp,*/*", "sec-fetch-mode": "no-cors" })), false);
    assert.equal(isNavigation(req({ accept: "text/htmlx" })), false);
  });
});
