// Unit tests (node:test, no miniflare) of host parsing (src/hosts.js) and heads and shard hashing
// (src/heads.js).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError, normaliseHost } from "../src/common.js";
import { isEntryHost, isTenantSlug, parseHostEntry, parsePlatformHost } from "../src/hosts.js";
import { fnv1a32, parseHead, parseRoute, shardOf, shardStem } from "../src/heads.js";
import { routeFor } from "../src/previews.js";

describe("hosts", () => {
  const D = "getai.page";
  test("normaliseHost lowercases and drops trailing dots", () => {
    assert.equal(normaliseHost("Acme.GetAI.page.."), "acme.getai.page");
    assert.equal(normaliseHost(undefined), "");
  });
  test("<slug>.<domain> is the tenant, <name>--<slug>.<domain> its preview", () => {
    assert.deepEqual(parsePlatformHost("acme.getai.page", D), { tenant: "acme", preview: null });
    assert.deepEqual(parsePlatformHost("feature-x--acme.getai.page", D), { tenant: "acme", preview: "feature-x" });
  });
  test("a malformed name under the domain is no site (null), never a hosts/ lookup", () => {
    assert.equal(parsePlatformHost("a--b--c.getai.page", D), null);
    assert.equal(parsePlatformHost("--acme.getai.page", D), undefined); // not a DNS label at all
    assert.equal(parsePlatformHost("x---acme.getai.page", D), null);
  });
  test("anything else is for hosts/ (undefined)", () => {
    assert.equal(parsePlatformHost("www.acme-corp.com", D), undefined);
    assert.equal(parsePlatformHost("shop.acme.getai.page", D), undefined); // two labels
    assert.equal(parsePlatformHost("getai.page", D), undefined);
    assert.equal(parsePlatformHost("acme.getai.page", ""), undefined);
  });
  test("isEntryHost keeps hosts/<host>.json inside hosts/", () => {
    assert.equal(isEntryHost("www.acme-corp.com"), true);
    assert.equal(isEntryHost("xn--caf-dma.example"), true);
    for (const bad of ["", "a..b", "[::1]", "a/b", "../x", "a_b.com", "-a.com", "a.com-"]) {
      assert.equal(isEntryHost(bad), false, bad);
    }
  });
  test("isTenantSlug refuses `--` (the preview separator)", () => {
    assert.equal(isTenantSlug("acme"), true);
    assert.equal(isTenantSlug("a--b"), false);
    assert.equal(isTenantSlug("A"), false);
  });
  test("parseHostEntry", () => {
    assert.equal(parseHostEntry('{"tenant":"acme"}'), "acme");
    assert.throws(() => parseHostEntry("{"), ConfigError);
    assert.throws(() => parseHostEntry('{"tenant":"../x"}'), ConfigError);
    assert.throws(() => parseHostEntry("[]"), ConfigError);
  });
});

describe("shards", () => {
  test("fnv1a32 matches the Rust test vectors (src/site/manifest.rs)", () => {
    assert.equal(fnv1a32(""), 0x811c9dc5);
    assert.equal(fnv1a32("a"), 0xe40c292c);
    assert.equal(fnv1a32("foobar"), 0xbf9cf968);
  });
  test("fnv1a32 hashes UTF-8 bytes", () => {
    // "é" is C3 A9 in UTF-8: the same as hashing those two bytes, not the one UTF-16 unit.
    let h = 0x811c9dc5;
    for (const b of [0xc3, 0xa9]) h = Math.imul(h ^ b, 0x01000193) >>> 0;
    assert.equal(fnv1a32("é"), h);
  });
  test("shardStem", () => {
    assert.equal(shardStem("/index.html"), "/");
    assert.equal(shardStem("/docs/index.html"), "/docs");
    assert.equal(shardStem("/about.html"), "/about");
    assert.equal(shardStem("/about"), "/about");
    assert.equal(shardStem("/app.js"), "/app.js");
  });
  test("shardOf: stem keeps /a, /a.html and /a/index.html together", () => {
    const r = { stem: true, shards: 64 };
    const k = shardOf(r, "/about");
    assert.equal(shardOf(r, "/about.html"), k);
    assert.equal(shardOf(r, "/about/index.html"), k);
    assert.equal(k, fnv1a32("/about") & 63);
    assert.equal(shardOf({ stem: false, shards: 64 }, "/about.html"), fnv1a32("/about.html") & 63);
    assert.equal(shardOf({ stem: false, shards: 1 }, "/anything"), 0);
  });
});

describe("heads", () => {
  const route = { deploy_id: "20261128T010203Z-1a2b3c4d", shards: 4, not_found: "spa" };
  test("format 2: live and previews; a preview name with `--` is ignored", () => {
    const h = parseHead(JSON.stringify({ format: 2, tenant: "acme", live: route, previews: { pr: route, "a--b": route } }), "acme");
    assert.equal(h.live.shards, 4);
    assert.equal(h.live.notFound, "spa");
    assert.deepEqual([...h.previews.keys()], ["pr"]);
    assert.equal(routeFor(h, null), h.live);
    assert.equal(routeFor(h, "pr"), h.previews.get("pr"));
    assert.equal(routeFor(h, "nope"), null);
    assert.equal(routeFor(null, null), null);
  });
  test("format 1: files inline", () => {
    const hash = "a".repeat(64);
    const h = parseHead(JSON.stringify({ format: 1, files: { "/404.html": { hash, size: 1 } } }), "acme");
    assert.deepEqual(h.live.files.get("/404.html"), { hash, size: 1, contentType: "application/octet-stream" });
    assert.equal(h.live.notFound, "404");
  });
  test("bad heads are ConfigErrors", () => {
    assert.throws(() => parseHead("{", "acme"), ConfigError);
    assert.throws(() => parseHead(JSON.stringify({ format: 2, tenant: "other", live: route }), "acme"), ConfigError);
    assert.throws(() => parseHead(JSON.stringify({ format: 3 }), "acme"), ConfigError);
    assert.throws(() => parseRoute({ ...route, shards: 3 }), ConfigError);
    assert.throws(() => parseRoute({ ...route, shards: 2048 }), ConfigError);
    assert.throws(() => parseRoute({ ...route, deploy_id: "../x" }), ConfigError);
    assert.throws(() => parseRoute({ ...route, not_found: "x" }), ConfigError);
    assert.throws(() => parseRoute({ ...route, shard_key: "x" }), ConfigError);
  });
});
