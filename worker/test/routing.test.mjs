// Host → tenant, /_health, methods, HEAD, broken platform data.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  CC,
  SECURITY_HEADERS,
  buildSite,
  fetchText,
  hostEntry,
  sha256,
  standardObjects,
  startRouter,
} from "./helpers.mjs";

let mf;

before(async () => {
  const holes = buildSite("holes", {
    "/index.html": { body: "<h1>holes</h1>", type: "text/html; charset=utf-8" },
  });
  const objects = [
    ...standardObjects(),
    // holes: the manifest is there, the blob is not.
    ...holes.objects.filter((o) => !o.key.startsWith("blobs/")),
    { key: "sites/broken/manifest.json", body: "{not json", contentType: "application/json" },
    {
      key: "sites/badhash/manifest.json",
      body: JSON.stringify({
        format: 1,
        tenant: "badhash",
        files: { "/index.html": { hash: "../../sites/acme/manifest.json", size: 1, content_type: "text/html" } },
      }),
      contentType: "application/json",
    },
    {
      key: "sites/format2/manifest.json",
      body: JSON.stringify({ format: 2, tenant: "format2", files: {} }),
      contentType: "application/json",
    },
    hostEntry("bad-entry.example", "../acme"),
    { key: "hosts/notjson.example.json", body: "acme", contentType: "application/json" },
    hostEntry("broken.example", "broken"),
  ];
  ({ mf } = await startRouter({ objects }));
}, { timeout: 30_000 });

after(async () => {
  await mf?.dispose();
});

function assertSecurityHeaders(res) {
  for (const [k, v] of Object.entries(SECURITY_HEADERS)) assert.equal(res.headers.get(k), v, k);
}

describe("host → tenant", () => {
  test("TENANT.<PLATFORM_DOMAIN> resolves directly", async () => {
    const res = await fetchText(mf, "https://acme.getai.page/");
    assert.equal(res.status, 200);
    assert.equal(res.text, "<h1>acme home</h1>");
    assert.equal(res.headers.get("x-tenant"), "acme");
    const other = await fetchText(mf, "https://other.getai.page/");
    assert.equal(other.text, "<h1>other home</h1>");
    assert.equal(other.headers.get("x-tenant"), "other");
  });

  test("the host is lowercased, a trailing dot stripped, the port ignored", async () => {
    for (const url of [
      "https://ACME.GetAI.Page/",
      "https://acme.getai.page./",
      "https://acme.getai.page:8443/",
      "http://acme.getai.page/",
    ]) {
      const res = await fetchText(mf, url);
      assert.equal(res.status, 200, url);
      assert.equal(res.headers.get("x-tenant"), "acme", url);
    }
  });

  test("a custom domain resolves through hosts/<host>.json", async () => {
    const res = await fetchText(mf, "https://www.acme-corp.com/about");
    assert.equal(res.status, 200);
    assert.equal(res.text, "<h1>about</h1>");
    assert.equal(res.headers.get("x-tenant"), "acme");
    const upper = await fetchText(mf, "https://WWW.Acme-Corp.com./about");
    assert.equal(upper.headers.get("x-tenant"), "acme");
  });

  test("an IDN custom domain is looked up in punycode", async () => {
    const res = await fetchText(mf, "https://café.example/");
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-tenant"), "other");
  });

  test("an unknown host is 404 'site not found'", async () => {
    for (const url of [
      "https://unknown.example/",
      "https://getai.page/", // the bare platform domain
      "https://a.b.getai.page/", // deeper subdomain without a host entry
      "https://-bad.getai.page/", // not a valid slug
      "https://acme.getai.page.evil.example/",
      "https://acmegetai.page/",
      "http://127.0.0.1/",
      "http://[::1]/",
    ]) {
      const res = await fetchText(mf, url);
      assert.equal(res.status, 404, url);
      assert.equal(res.text, "site not found", url);
      assert.equal(res.headers.get("content-type"), "text/plain; charset=utf-8", url);
      assert.equal(res.headers.get("cache-control"), CC.notFound, url);
      assert.equal(res.headers.get("x-tenant"), null, url);
      assertSecurityHeaders(res);
    }
  });

  test("a deeper subdomain resolves when a host entry exists", async () => {
    const res = await fetchText(mf, "https://shop.acme.getai.page/secret.txt");
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-tenant"), "other");
    assert.equal(res.text, "other tenant secret");
  });

  test("a valid slug with no manifest is 404 'site not found'", async () => {
    const res = await fetchText(mf, "https://ghost.getai.page/");
    assert.equal(res.status, 404);
    assert.equal(res.text, "site not found");
    assert.equal(res.headers.get("content-type"), "text/plain; charset=utf-8");
    assertSecurityHeaders(res);
  });

  test("a host entry naming an invalid slug, or not JSON, is a 500 without details", async () => {
    for (const url of ["https://bad-entry.example/", "https://notjson.example/"]) {
      const res = await fetchText(mf, url);
      assert.equal(res.status, 500, url);
      assert.equal(res.text, "site configuration error", url);
      assert.equal(res.headers.get("cache-control"), CC.noStore);
      assertSecurityHeaders(res);
    }
  });
});

describe("/_health", () => {
  test("is 200 ok on any host, known or not", async () => {
    for (const url of [
      "https://acme.getai.page/_health",
      "https://unknown.example/_health",
      "https://getai.page/_health",
      "https://broken.getai.page/_health",
    ]) {
      const res = await fetchText(mf, url);
      assert.equal(res.status, 200, url);
      assert.equal(res.text, "ok");
      assert.equal(res.headers.get("content-type"), "text/plain; charset=utf-8");
      assert.equal(res.headers.get("cache-control"), "no-store");
      assertSecurityHeaders(res);
    }
  });

  test("HEAD /_health has no body", async () => {
    const res = await fetchText(mf, "https://unknown.example/_health", { method: "HEAD" });
    assert.equal(res.status, 200);
    assert.equal(res.body.length, 0);
    assert.equal(res.headers.get("cache-control"), "no-store");
  });
});

describe("methods", () => {
  test("anything but GET and HEAD is 405 with Allow: GET, HEAD", async () => {
    for (const method of ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]) {
      const init = { method };
      if (method !== "OPTIONS" && method !== "DELETE") init.body = "x";
      const res = await fetchText(mf, "https://acme.getai.page/", init);
      assert.equal(res.status, 405, method);
      assert.equal(res.headers.get("allow"), "GET, HEAD", method);
      assertSecurityHeaders(res);
    }
    const unknownHost = await fetchText(mf, "https://unknown.example/", { method: "POST", body: "x" });
    assert.equal(unknownHost.status, 405);
  });

  test("HEAD returns the same headers as GET and no body", async () => {
    for (const path of ["/", "/about", "/img/logo.png", "/js/app.3f2a9c1b.js", "/nope"]) {
      const get = await fetchText(mf, `https://acme.getai.page${path}`);
      const head = await fetchText(mf, `https://acme.getai.page${path}`, { method: "HEAD" });
      assert.equal(head.status, get.status, path);
      assert.equal(head.body.length, 0, path);
      assert.deepEqual(
        Object.fromEntries(head.headers),
        Object.fromEntries(get.headers),
        `headers of HEAD ${path}`,
      );
      assert.equal(Number(get.headers.get("content-length")), get.body.length, path);
    }
  });

  test("HEAD of an unknown host is a 404 without body", async () => {
    const res = await fetchText(mf, "https://unknown.example/", { method: "HEAD" });
    assert.equal(res.status, 404);
    assert.equal(res.body.length, 0);
  });
});

describe("broken platform data", () => {
  test("a manifest that is not JSON is a 500 'site configuration error'", async () => {
    for (const url of ["https://broken.getai.page/", "https://broken.example/about"]) {
      const res = await fetchText(mf, url);
      assert.equal(res.status, 500, url);
      assert.equal(res.text, "site configuration error");
      assert.equal(res.headers.get("content-type"), "text/plain; charset=utf-8");
      assert.equal(res.headers.get("cache-control"), "no-store");
      assert.equal(res.headers.get("x-tenant"), "broken");
      assertSecurityHeaders(res);
    }
  });

  test("a manifest with a bad hash or format is a 500 and never reads that key", async () => {
    for (const t of ["badhash", "format2"]) {
      const res = await fetchText(mf, `https://${t}.getai.page/`);
      assert.equal(res.status, 500, t);
      assert.equal(res.text, "site configuration error", t);
      assert.doesNotMatch(res.text, /manifest|sites\//);
    }
  });

  test("a blob missing from R2 is a 500 'content missing' (GET and HEAD)", async () => {
    const res = await fetchText(mf, "https://holes.getai.page/");
    assert.equal(res.status, 500);
    assert.equal(res.text, "content missing");
    assert.equal(res.headers.get("content-type"), "text/plain; charset=utf-8");
    assert.equal(res.headers.get("x-tenant"), "holes");
    assertSecurityHeaders(res);
    const head = await fetchText(mf, "https://holes.getai.page/", { method: "HEAD" });
    assert.equal(head.status, 500);
    assert.equal(head.body.length, 0);
  });

  test("a 304 does not need the blob", async () => {
    const hash = sha256(Buffer.from("<h1>holes</h1>"));
    const res = await fetchText(mf, "https://holes.getai.page/", {
      headers: { "if-none-match": `"${hash}"` },
    });
    assert.equal(res.status, 304);
  });
});
