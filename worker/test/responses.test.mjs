// Response bodies and headers: ETag/304, Cache-Control classes, 404 pages, security headers.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  ACME_FILES,
  CC,
  PNG_BYTES,
  SECURITY_HEADERS,
  fetchText,
  sha256,
  standardObjects,
  startRouter,
} from "./helpers.mjs";

let mf;

before(async () => {
  ({ mf } = await startRouter({ objects: standardObjects() }));
}, { timeout: 30_000 });

after(async () => {
  await mf?.dispose();
});

const ACME = "https://acme.getai.page";
const etagOf = (file) => `"${sha256(Buffer.from(ACME_FILES[file].body))}"`;

describe("found files", () => {
  test("body, Content-Type, Content-Length and ETag come from the manifest and the blob", async () => {
    const res = await fetchText(mf, ACME + "/css/site.css");
    assert.equal(res.status, 200);
    assert.equal(res.text, "body{color:red}");
    assert.equal(res.headers.get("content-type"), "text/css; charset=utf-8");
    assert.equal(res.headers.get("content-length"), String(Buffer.byteLength("body{color:red}")));
    assert.equal(res.headers.get("etag"), etagOf("/css/site.css"));
    assert.equal(res.headers.get("x-tenant"), "acme");
  });

  test("binary bytes are streamed unchanged", async () => {
    const res = await fetchText(mf, ACME + "/img/logo.png");
    assert.equal(res.status, 200);
    assert.deepEqual(new Uint8Array(res.body), PNG_BYTES);
    assert.equal(res.headers.get("content-type"), "image/png");
    assert.equal(res.headers.get("content-length"), String(PNG_BYTES.length));
  });

  test("non-ASCII content has a byte Content-Length", async () => {
    const res = await fetchText(mf, ACME + "/café");
    assert.equal(res.text, "<h1>café</h1>");
    assert.equal(res.headers.get("content-length"), String(Buffer.byteLength("<h1>café</h1>")));
  });
});

describe("ETag and If-None-Match", () => {
  const url = ACME + "/css/site.css";
  const etag = etagOf("/css/site.css");

  async function conditional(inm, method = "GET") {
    return fetchText(mf, url, { method, headers: { "if-none-match": inm } });
  }

  function assert304(res, label) {
    assert.equal(res.status, 304, label);
    assert.equal(res.body.length, 0, label);
    assert.equal(res.headers.get("etag"), etag, label);
    assert.equal(res.headers.get("cache-control"), CC.asset, label);
    assert.equal(res.headers.get("x-tenant"), "acme", label);
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) assert.equal(res.headers.get(k), v, k);
  }

  test("a matching strong tag is 304 with ETag and cache headers, no body", async () => {
    assert304(await conditional(etag), "strong");
    assert304(await conditional(etag, "HEAD"), "HEAD");
  });

  test("a W/ tag matches (weak comparison)", async () => {
    assert304(await conditional(`W/${etag}`), "weak");
  });

  test("a list matches if any member does", async () => {
    assert304(await conditional(`"aaaa", W/"bbbb", ${etag}`), "list");
    assert304(await conditional(`"aaaa",${etag}`), "list without spaces");
    assert304(await conditional(`  W/${etag}  , "x"`), "weak first");
  });

  test("* matches any existing file", async () => {
    assert304(await conditional("*"), "*");
  });

  test("a non-matching tag gets the full 200", async () => {
    for (const inm of [
      `"deadbeef"`,
      etag.slice(1, -1), // unquoted
      `"${etag.slice(2)}`,
      `W/"aaaa", "bbbb"`,
      "",
    ]) {
      const res = await conditional(inm);
      assert.equal(res.status, 200, inm);
      assert.equal(res.text, "body{color:red}", inm);
    }
  });

  test("HTML revalidates the same way", async () => {
    const res = await fetchText(mf, ACME + "/about", {
      headers: { "if-none-match": etagOf("/about.html") },
    });
    assert.equal(res.status, 304);
    assert.equal(res.headers.get("cache-control"), CC.html);
  });

  test("the ETag of one file does not match another", async () => {
    const res = await fetchText(mf, ACME + "/about", {
      headers: { "if-none-match": etag },
    });
    assert.equal(res.status, 200);
  });
});

describe("Cache-Control", () => {
  const cases = [
    ["/", CC.html],
    ["/about", CC.html],
    ["/docs/", CC.html],
    ["/page.3f2a9c1b", CC.html], // HTML is never immutable
    ["/css/site.css", CC.asset],
    ["/img/logo.png", CC.asset],
    ["/plain", CC.asset],
    ["/js/app.3f2a9c1b.js", CC.immutable],
    ["/css/main-8d7e6f5a4b.css", CC.immutable],
    ["/js/3f2a9c1b.js", CC.immutable],
    ["/js/app.3f2a9c1.js", CC.asset], // 7 hex: not a hash
    ["/js/app.3f2a9c1bxx.js", CC.asset], // not all hex
    ["/js/app-3f2a9c1b", CC.asset], // no extension
  ];
  for (const [path, cc] of cases) {
    test(`${path} → ${cc}`, async () => {
      const res = await fetchText(mf, ACME + path);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("cache-control"), cc);
    });
  }
});

describe("missing pages", () => {
  test("the tenant's /404.html is served with status 404 and its own headers", async () => {
    for (const path of ["/nope", "/nope/", "/css/missing.css", "/docs/nope.html"]) {
      const res = await fetchText(mf, ACME + path);
      assert.equal(res.status, 404, path);
      assert.equal(res.text, "<h1>acme: page not found</h1>");
      assert.equal(res.headers.get("content-type"), "text/html; charset=utf-8");
      assert.equal(res.headers.get("content-length"), String(res.body.length));
      assert.equal(res.headers.get("etag"), etagOf("/404.html"));
      assert.equal(res.headers.get("cache-control"), CC.notFound);
      assert.equal(res.headers.get("x-tenant"), "acme");
      for (const [k, v] of Object.entries(SECURITY_HEADERS)) assert.equal(res.headers.get(k), v, k);
    }
  });

  test("/404.html requested directly is a 308 to /404, which is a 200", async () => {
    const redirect = await fetchText(mf, ACME + "/404.html");
    assert.equal(redirect.status, 308);
    assert.equal(redirect.headers.get("location"), "/404");
    const res = await fetchText(mf, ACME + "/404");
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("cache-control"), CC.html);
  });

  test("the 404 page ignores If-None-Match", async () => {
    const res = await fetchText(mf, ACME + "/nope", {
      headers: { "if-none-match": etagOf("/404.html") },
    });
    assert.equal(res.status, 404);
    assert.equal(res.text, "<h1>acme: page not found</h1>");
  });

  test("HEAD of a missing page: 404 headers, no body", async () => {
    const res = await fetchText(mf, ACME + "/nope", { method: "HEAD" });
    assert.equal(res.status, 404);
    assert.equal(res.body.length, 0);
    assert.equal(res.headers.get("content-type"), "text/html; charset=utf-8");
  });

  test("without a 404.html: plain-text 404 'not found'", async () => {
    const res = await fetchText(mf, "https://other.getai.page/nope");
    assert.equal(res.status, 404);
    assert.equal(res.text, "not found");
    assert.equal(res.headers.get("content-type"), "text/plain; charset=utf-8");
    assert.equal(res.headers.get("cache-control"), CC.notFound);
    assert.equal(res.headers.get("x-tenant"), "other");
    assert.equal(res.headers.get("etag"), null);
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) assert.equal(res.headers.get(k), v, k);
  });
});

describe("security headers", () => {
  test("are on every kind of response", async () => {
    const requests = [
      [ACME + "/", {}],
      [ACME + "/img/logo.png", {}],
      [ACME + "/nope", {}],
      [ACME + "/", { headers: { "if-none-match": "*" } }],
      [ACME + "/%zz", {}],
      [ACME + "/", { method: "POST", body: "x" }],
      [ACME + "/", { method: "HEAD" }],
      [ACME + "/_health", {}],
      ["https://other.getai.page/nope", {}],
      ["https://unknown.example/", {}],
      ["https://ghost.getai.page/", {}],
    ];
    for (const [url, init] of requests) {
      const res = await fetchText(mf, url, init);
      for (const [k, v] of Object.entries(SECURITY_HEADERS)) {
        assert.equal(res.headers.get(k), v, `${k} on ${init.method || "GET"} ${url}`);
      }
    }
  });
});
