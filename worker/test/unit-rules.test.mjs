// Unit tests (node:test, no miniflare) of `_redirects` / `_headers` compilation and matching
// (src/rules.js), and the protected-headers list that Rust (src/site/rules.rs) and JS share.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { ConfigError } from "../src/common.js";
import {
  PROTECTED_HEADERS,
  applyHeaderRules,
  compilePattern,
  compileRules,
  matchRedirect,
  substitute,
} from "../src/rules.js";

/** A Route with only what compileRules reads. */
function route(redirects, headers) {
  return { redirects, headers, compiled: null };
}

describe("compilePattern", () => {
  test("`*` is the splat, `:name` one segment, a trailing slash optional", () => {
    const { re, names } = compilePattern("/blog/:year/*", "x");
    assert.deepEqual(names, ["year", "splat"]);
    assert.deepEqual(re.exec("/blog/2024/a/b").slice(1), ["2024", "a/b"]);
    assert.equal(re.exec("/blog/2024"), null);
    const p = compilePattern("/docs/", "x").re;
    assert.ok(p.test("/docs") && p.test("/docs/"));
    assert.ok(!p.test("/docs/x"));
  });
  test("regex characters are literal", () => {
    const { re } = compilePattern("/a.b+(c)", "x");
    assert.ok(re.test("/a.b+(c)"));
    assert.ok(!re.test("/aXb+(c)"));
  });
  test("an empty or missing pattern is a ConfigError", () => {
    assert.throws(() => compilePattern("", "x"), ConfigError);
    assert.throws(() => compilePattern(undefined, "x"), ConfigError);
  });
  test("substitute encodes captured segments for a Location, not for a header", () => {
    assert.equal(substitute("/p/:splat", ["splat"], ["a b/c"], true), "/p/a%20b/c");
    assert.equal(substitute("v=:splat", ["splat"], ["a b/c"], false), "v=a b/c");
    assert.equal(substitute("/:unknown", ["splat"], ["x"], true), "/:unknown");
  });
});

describe("redirects", () => {
  const compiled = compileRules(
    route({
      static: {
        "/old": { to: "/new", status: 301, line: 5 },
        "/caf%C3%A9": { to: "/cafe", status: 302, line: 9 },
        "/x/": { to: "/y", status: 308, line: 1 },
      },
      dynamic: [
        { from: "/blog/:year/*", to: "/posts/:year/:splat", status: 302, line: 2 },
        { from: "/*", to: "/index.html", status: 200, line: 7 },
        { from: "/old", to: "/too-late", status: 307, line: 6 },
      ],
    }),
  );
  test("the first matching rule by line wins, static or dynamic", () => {
    assert.deepEqual(matchRedirect(compiled, "/old"), { to: "/new", status: 301, line: 5 });
    assert.deepEqual(matchRedirect(compiled, "/blog/2024/hello world"), { to: "/posts/2024/hello%20world", status: 302 });
    // The splat at line 7 comes before the static café rule at line 9.
    assert.deepEqual(matchRedirect(compiled, "/café"), { to: "/index.html", status: 200 });
  });
  test("static sources are decoded and match with or without a trailing slash", () => {
    assert.equal(matchRedirect(compiled, "/x").to, "/y");
    assert.equal(matchRedirect(compiled, "/x/").to, "/y");
  });
  test("no rule: null", () => {
    assert.equal(matchRedirect(compileRules(route({ static: {}, dynamic: [] })), "/a"), null);
  });
  test("bad rules are ConfigErrors", () => {
    for (const rd of [
      [],
      { static: { "/a": { to: "/b", status: 404, line: 1 } } },
      { static: { "/a": { to: "/b", status: 301 } } },
      { static: { "/a": { to: "https://x.example/", status: 200, line: 1 } } },
      { dynamic: {} },
      { dynamic: [{ to: "/b", status: 301, line: 1 }] },
    ]) {
      assert.throws(() => compileRules(route(rd)), ConfigError, JSON.stringify(rd));
    }
  });
  test("compiled once per route", () => {
    const r = route({ static: {}, dynamic: [] });
    assert.equal(compileRules(r), compileRules(r));
  });
});

describe("headers", () => {
  function apply(headers, host, path, initial = {}) {
    const h = new Headers(initial);
    applyHeaderRules(compileRules(route(undefined, headers)), host, path, h);
    return Object.fromEntries(h);
  }
  test("every matching block applies; values of one name are joined; unset removes", () => {
    const rules = [
      { pattern: "/*", set: [["x-a", "1"]], unset: ["x-frame-options"] },
      { pattern: "/assets/:name", set: [["x-a", "2"], ["x-name", ":name"]] },
      { pattern: "/other", set: [["x-b", "no"]] },
    ];
    assert.deepEqual(apply(rules, "acme.getai.page", "/assets/logo.png", { "x-frame-options": "SAMEORIGIN" }), {
      "x-a": "1, 2",
      "x-name": "logo.png",
    });
  });
  test("a block with an absolute URL applies on its host only", () => {
    const rules = [{ pattern: "https://:sub.example.com/*", set: [["x-h", "yes"]] }];
    assert.deepEqual(apply(rules, "www.example.com", "/a"), { "x-h": "yes" });
    assert.deepEqual(apply(rules, "acme.getai.page", "/a"), {});
  });
  test("protected names (framing, nosniff, x-tenant, etag) are ignored, set or unset", () => {
    const initial = { "x-content-type-options": "nosniff", "x-tenant": "acme", etag: '"h"', "content-length": "5" };
    const rules = [
      {
        pattern: "/*",
        set: [["x-tenant", "evil"], ["etag", '"forged"'], ["x-content-type-options", "sniff"], ["x-ok", "1"]],
        unset: ["x-tenant", "etag", "content-length", "x-content-type-options"],
      },
    ];
    assert.deepEqual(apply(rules, "acme.getai.page", "/a", initial), { ...initial, "x-ok": "1" });
  });
  test("bad header rules are ConfigErrors", () => {
    for (const hd of [
      {},
      [{ pattern: 1 }],
      [{ pattern: "/*", set: [["Bad Name", "v"]] }],
      [{ pattern: "/*", set: [["x-a", "line\nbreak"]] }],
      [{ pattern: "/*", set: [["x-a"]] }],
      [{ pattern: "/*", unset: [7] }],
    ]) {
      assert.throws(() => compileRules(route(undefined, hd)), ConfigError, JSON.stringify(hd));
    }
  });
});

describe("protected headers: one list in Rust and JS", () => {
  // Names the router protects that the Rust list (deploy-site's check) is being given on another
  // branch (i17). Adding them to the Rust set is a no-op once it has them, so this stays an exact
  // comparison after that lands and catches every other drift now.
  const PENDING_IN_RUST = ["x-tenant", "etag"];
  test("src/site/rules.rs PROTECTED_HEADERS equals the router's PROTECTED_HEADERS", () => {
    const rs = readFileSync(new URL("../../src/site/rules.rs", import.meta.url), "utf8");
    const m = /pub const PROTECTED_HEADERS: \[&str; (\d+)\] = \[([^\]]*)\];/.exec(rs);
    assert.ok(m, "PROTECTED_HEADERS not found in src/site/rules.rs");
    const rust = [...m[2].matchAll(/"([^"]*)"/g)].map((x) => x[1]);
    assert.equal(rust.length, Number(m[1]));
    const want = new Set([...rust, ...PENDING_IN_RUST]);
    assert.deepEqual([...PROTECTED_HEADERS].sort(), [...want].sort());
  });
});
