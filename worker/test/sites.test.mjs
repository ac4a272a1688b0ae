// Not-found modes (nearest 404.html, SPA, none), previews, _redirects and _headers rules, and the
// byte-bounded cache.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { buildDeploy, buildSite2, fetchText, headObject, rawRequest, startCountingRouter, takeOps } from "./helpers.mjs";

const HTML = "text/html; charset=utf-8";
const h = (body) => ({ body, type: HTML });
let mf;
let base; // miniflare's entry socket, for raw requests

const RULES_FILES = {
  "/index.html": h("home"),
  "/new.html": h("new page"),
  "/posts/2024/hello.html": h("hello post"),
  "/app/index.html": h("app shell"),
  "/assets/app.js": { body: "js", type: "text/javascript" },
  "/old.html": h("old page (shadowed by a redirect)"),
  "/404.html": h("top 404"),
};

const REDIRECTS = {
  static: {
    "/old": { to: "/new", status: 301, line: 1 },
    "/s302": { to: "/new", status: 302, line: 2 },
    "/s303": { to: "/new", status: 303, line: 3 },
    "/s307": { to: "/new", status: 307, line: 4 },
    "/s308": { to: "https://example.com/x", status: 308, line: 5 },
    "/late": { to: "/from-static", status: 302, line: 9 },
    "/hi": { to: "/posts/2024/hello", status: 200, line: 10 },
    "/caf%C3%A9": { to: "/new", status: 301, line: 12 },
  },
  dynamic: [
    { from: "/la*", to: "/from-dynamic/:splat", status: 302, line: 8 },
    { from: "/blog/:year/*", to: "/posts/:year/:splat", status: 301, line: 6 },
    { from: "/movies/:title", to: "/media/:title?from=movies", status: 302, line: 7 },
    { from: "/app/*", to: "/app/index.html", status: 200, line: 11 },
  ],
};

const HEADERS = [
  { pattern: "/*", set: [["x-frame-options", "DENY"], ["x-custom", "one"]], unset: [] },
  // Platform headers: a head written before deploy-site refused them must still not change them.
  { pattern: "/new", set: [["x-tenant", "someone-else"], ["etag", '"forged"']], unset: [] },
  { pattern: "/posts/*", set: [], unset: ["x-tenant", "etag"] },
  { pattern: "/assets/*", set: [["cache-control", "public, max-age=31536000"], ["x-custom", "two"]], unset: ["referrer-policy", "x-content-type-options"] },
  { pattern: "/posts/:year/:slug", set: [["x-year", ":year"]], unset: [] },
  { pattern: "https://rules.getai.page/new", set: [["x-host-rule", "yes"]], unset: ["x-custom"] },
];

before(async () => {
  const previewDeploy = buildDeploy("acme", { "/index.html": h("preview home") }, { deployId: "20261130T000000Z-ffffffff" });
  const live = buildDeploy("acme", { "/index.html": h("live home") });
  const objects = [
    ...buildSite2("nested", {
      "/index.html": h("home"),
      "/404.html": h("top 404"),
      "/blog/404.html": h("blog 404"),
      "/blog/2024/404.html": h("blog 2024 404"),
      "/blog/post.html": h("post"),
    }, { shards: 2 }).objects,
    ...buildSite2("spa", { "/index.html": h("spa shell"), "/app.js": { body: "js", type: "text/javascript" } }).objects,
    ...buildSite2("bare", { "/index.html": h("bare") }, { notFound: "none" }).objects,
    ...buildSite2("rules", RULES_FILES, { redirects: REDIRECTS, headers: HEADERS, shards: 2 }).objects,
    ...live.objects,
    ...previewDeploy.objects,
    headObject("acme", live.route, { previews: { "feature-x": previewDeploy.route } }),
  ];
  for (let i = 0; i < 6; i++) {
    objects.push(...buildSite2(`fill${i}`, { "/index.html": h("x".repeat(2000)) }).objects);
  }
  ({ mf } = await startCountingRouter({ objects, bindings: { BLOB_CACHE: "off", CACHE_MAX_BYTES: "8000" } }));
  base = await mf.ready;
}, { timeout: 60_000 });

after(async () => {
  await mf?.dispose();
});

describe("not found", () => {
  test("the nearest 404.html up the tree, with status 404", async () => {
    for (const [path, body] of [
      ["/nope", "top 404"],
      ["/blog/nope", "blog 404"],
      ["/blog/2024/nope.html", "blog 2024 404"],
      ["/blog/2024/x/y", "blog 2024 404"],
      ["/blogx/nope", "top 404"],
    ]) {
      const res = await fetchText(mf, "https://nested.getai.page" + path);
      assert.equal(res.status, 404, path);
      assert.equal(res.text, body, path);
      assert.equal(res.headers.get("cache-control"), "public, max-age=0, must-revalidate");
    }
  });

  test("spa: an extensionless unknown path gets /index.html with 200; a missing asset 404s", async () => {
    for (const path of ["/dashboard", "/users/42/settings", "/deep/link/"]) {
      const res = await fetchText(mf, "https://spa.getai.page" + path);
      assert.equal(res.status, 200, path);
      assert.equal(res.text, "spa shell", path);
    }
    for (const path of ["/missing.js", "/img/logo.png"]) {
      const res = await fetchText(mf, "https://spa.getai.page" + path);
      assert.equal(res.status, 404, path);
      assert.equal(res.text, "not found");
    }
  });

  test("spa: a dotted last segment gets /index.html for a navigation (Sec-Fetch-Mode or Accept)", async () => {
    for (const headers of [
      { "sec-fetch-mode": "navigate" },
      { accept: "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8" },
    ]) {
      for (const path of ["/user/john.doe", "/releases/v1.2"]) {
        const res = await rawRequest(base, path, { host: "spa.getai.page", ...headers });
        assert.equal(res.status, 200, `${path} ${JSON.stringify(headers)}`);
        assert.equal(res.text, "spa shell");
        assert.equal(res.headers.vary, "Sec-Fetch-Mode, Accept", `${path} ${JSON.stringify(headers)}`);
      }
    }
  });

  test("spa: a missing asset requested by a script still 404s, even with a dot in a route-like path", async () => {
    for (const headers of [{}, { accept: "*/*", "sec-fetch-mode": "cors" }, { accept: "application/json", "sec-fetch-mode": "no-cors" }]) {
      for (const path of ["/user/john.doe", "/missing.js"]) {
        const res = await rawRequest(base, path, { host: "spa.getai.page", ...headers });
        assert.equal(res.status, 404, `${path} ${JSON.stringify(headers)}`);
        assert.equal(res.text, "not found");
        assert.equal(res.headers.vary, "Sec-Fetch-Mode, Accept", `${path} ${JSON.stringify(headers)}`);
      }
    }
    // An existing asset is served whatever the request says.
    const js = await fetchText(mf, "https://spa.getai.page/app.js", { headers: { "sec-fetch-mode": "navigate" } });
    assert.equal(js.text, "js");
  });

  test("none: a plain 404", async () => {
    const res = await fetchText(mf, "https://bare.getai.page/dashboard");
    assert.equal(res.status, 404);
    assert.equal(res.text, "not found");
  });
});

describe("previews", () => {
  test("<name>--<tenant> serves the preview with X-Robots-Tag: noindex", async () => {
    const res = await fetchText(mf, "https://feature-x--acme.getai.page/");
    assert.equal(res.status, 200);
    assert.equal(res.text, "preview home");
    assert.equal(res.headers.get("x-robots-tag"), "noindex");
    assert.equal(res.headers.get("x-tenant"), "acme");
    const nf = await fetchText(mf, "https://feature-x--acme.getai.page/nope");
    assert.equal(nf.headers.get("x-robots-tag"), "noindex");
  });

  test("the live site has no X-Robots-Tag; an unknown preview or a malformed label is not found", async () => {
    const live = await fetchText(mf, "https://acme.getai.page/");
    assert.equal(live.text, "live home");
    assert.equal(live.headers.get("x-robots-tag"), null);
    for (const host of ["nope--acme.getai.page", "a--b--acme.getai.page", "feature-x--ghost.getai.page", "--acme.getai.page"]) {
      const res = await fetchText(mf, `https://${host}/`);
      assert.equal(res.status, 404, host);
      assert.equal(res.text, "site not found", host);
    }
  });
});

describe("_redirects", () => {
  const R = "https://rules.getai.page";
  test("static rules with each code; redirects apply before files", async () => {
    for (const [path, status, loc] of [
      ["/old", 301, "/new"],
      ["/old/", 301, "/new"],
      ["/s302", 302, "/new"],
      ["/s303", 303, "/new"],
      ["/s307", 307, "/new"],
      ["/s308", 308, "https://example.com/x"],
      ["/old?utm=1", 301, "/new?utm=1"],
      ["/café", 301, "/new"],
    ]) {
      const res = await fetchText(mf, R + path);
      assert.equal(res.status, status, path);
      assert.equal(res.headers.get("location"), loc, path);
      assert.equal(res.headers.get("x-custom"), null, "_headers do not apply to redirects");
    }
  });

  test("splat and placeholders", async () => {
    let res = await fetchText(mf, R + "/blog/2024/hello/world");
    assert.equal(res.status, 301);
    assert.equal(res.headers.get("location"), "/posts/2024/hello/world");
    res = await fetchText(mf, R + "/movies/the%20matrix");
    assert.equal(res.headers.get("location"), "/media/the%20matrix?from=movies");
    res = await fetchText(mf, R + "/movies/a/b");
    assert.equal(res.status, 404, ":placeholder matches one segment");
  });

  test("the first match by line wins, static or dynamic", async () => {
    const res = await fetchText(mf, R + "/late");
    assert.equal(res.headers.get("location"), "/from-dynamic/te", "dynamic line 8 beats static line 9");
    const only = await fetchText(mf, R + "/lamp");
    assert.equal(only.headers.get("location"), "/from-dynamic/mp");
  });

  test("200 rewrites within the site, one hop, keeping the URL", async () => {
    let res = await fetchText(mf, R + "/hi");
    assert.equal(res.status, 200);
    assert.equal(res.text, "hello post");
    res = await fetchText(mf, R + "/app/some/deep/route");
    assert.equal(res.status, 200);
    assert.equal(res.text, "app shell");
  });
});

describe("_headers", () => {
  const R = "https://rules.getai.page";
  test("every matching block applies; one name from two blocks is joined with ', '", async () => {
    const res = await fetchText(mf, R + "/assets/app.js");
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-custom"), "one, two");
    assert.equal(res.headers.get("cache-control"), "public, max-age=31536000");
    assert.equal(res.headers.get("x-frame-options"), "DENY", "a security header overridden");
    assert.equal(res.headers.get("referrer-policy"), null, "! removes");
    assert.equal(res.headers.get("x-content-type-options"), "nosniff", "stays");
  });

  test("placeholders in values; absolute-URL patterns match the host; unset after set", async () => {
    const post = await fetchText(mf, R + "/posts/2024/hello");
    assert.equal(post.headers.get("x-year"), "2024");
    const home = await fetchText(mf, R + "/");
    assert.equal(home.headers.get("x-year"), null);
    assert.equal(home.headers.get("x-frame-options"), "DENY");
    const nw = await fetchText(mf, R + "/new");
    assert.equal(nw.headers.get("x-host-rule"), "yes");
    assert.equal(nw.headers.get("x-custom"), null);
  });

  test("x-tenant and etag are platform headers: _headers can neither set nor unset them", async () => {
    const nw = await fetchText(mf, R + "/new");
    assert.equal(nw.status, 200);
    assert.equal(nw.headers.get("x-tenant"), "rules");
    assert.match(nw.headers.get("etag"), /^"[0-9a-f]{64}"$/);
    const again = await fetchText(mf, R + "/new", { headers: { "if-none-match": nw.headers.get("etag") } });
    assert.equal(again.status, 304);
    const post = await fetchText(mf, R + "/posts/2024/hello");
    assert.equal(post.headers.get("x-tenant"), "rules");
    assert.match(post.headers.get("etag"), /^"[0-9a-f]{64}"$/);
  });

  test("applies to 304 and 404 pages", async () => {
    const first = await fetchText(mf, R + "/");
    const res = await fetchText(mf, R + "/", { headers: { "if-none-match": first.headers.get("etag") } });
    assert.equal(res.status, 304);
    assert.equal(res.headers.get("x-frame-options"), "DENY");
    const nf = await fetchText(mf, R + "/missing.css");
    assert.equal(nf.status, 404);
    assert.equal(nf.headers.get("x-custom"), "one");
  });
});

describe("cache bounded in bytes (CACHE_MAX_BYTES=8000)", () => {
  test("least recently used entries are evicted; the hot tenant stays", async () => {
    await fetchText(mf, "https://bare.getai.page/");
    for (let i = 0; i < 6; i++) {
      await fetchText(mf, "https://bare.getai.page/"); // keeps bare recently used
      await fetchText(mf, `https://fill${i}.getai.page/`);
    }
    await takeOps(mf);
    await fetchText(mf, "https://bare.getai.page/");
    const bare = await takeOps(mf);
    assert.ok(!bare.some((o) => o.key.startsWith("sites/")), JSON.stringify(bare));
    await fetchText(mf, "https://fill0.getai.page/");
    const evicted = await takeOps(mf);
    assert.ok(evicted.some((o) => o.key === "sites/fill0/manifest.json" && !o.conditional), "fill0 was evicted");
  });
});
