// Path decoding, normalisation, resolution and traversal attempts.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { ACME_FILES, CC, fetchText, sha256, standardObjects, startRouter } from "./helpers.mjs";

let mf;
let base; // http://127.0.0.1:<port>/ of the miniflare entry socket

before(async () => {
  ({ mf } = await startRouter({ objects: standardObjects() }));
  base = await mf.ready;
}, { timeout: 30_000 });

after(async () => {
  await mf?.dispose();
});

const ACME = "https://acme.getai.page";

function bodyOf(path) {
  return Buffer.from(ACME_FILES[path].body).toString("utf8");
}

/** Requests path, follows at most one canonical 308, and expects `file`'s bytes. */
async function expectFile(path, file) {
  let res = await fetchText(mf, ACME + path);
  if (res.status === 308) {
    const next = new URL(res.headers.get("location"), ACME + "/");
    res = await fetchText(mf, next.href);
    assert.notEqual(res.status, 308, `${path}: a second redirect`);
  }
  assert.equal(res.status, 200, `${path} → ${file}`);
  assert.equal(res.text, bodyOf(file), `${path} → ${file}`);
  assert.equal(res.headers.get("etag"), `"${sha256(Buffer.from(ACME_FILES[file].body))}"`);
  return res;
}

async function expectNotFound(path) {
  const res = await fetchText(mf, ACME + path);
  assert.equal(res.status, 404, path);
  assert.equal(res.text, bodyOf("/404.html"), path);
  return res;
}

/** A raw HTTP/1.1 request, so the request line reaches workerd exactly as written. */
function rawGet(path, host = "acme.getai.page") {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: base.hostname, port: base.port, path, headers: { host } },
      (res) => {
        const chunks = [];
        res.on("data", (c) => chunks.push(c));
        res.on("end", () =>
          resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString("utf8") }),
        );
      },
    );
    req.on("error", reject);
    req.end();
  });
}

describe("resolution", () => {
  test("/ → /index.html", async () => {
    await expectFile("/", "/index.html");
    await expectFile("/index.html", "/index.html");
  });

  test("/about → /about.html", async () => {
    await expectFile("/about", "/about.html");
    await expectFile("/about.html", "/about.html");
  });

  test("/docs → /docs/index.html, /docs/ → /docs/index.html", async () => {
    await expectFile("/docs", "/docs/index.html");
    await expectFile("/docs/", "/docs/index.html");
    await expectFile("/docs/intro", "/docs/intro.html");
  });

  test("an exact file wins over .html, which wins over /index.html", async () => {
    const res = await expectFile("/plain", "/plain");
    assert.equal(res.headers.get("content-type"), "text/plain; charset=utf-8");
    await expectFile("/blog", "/blog.html");
    await expectFile("/blog/", "/blog/index.html");
    await expectFile("/plain/", "/plain/index.html");
  });

  test("a trailing slash means the directory index, or the .html page without it", async () => {
    await expectFile("/about/", "/about.html"); // 308 /about: /about.html exists, /about/index.html does not
    await expectNotFound("/css/site.css/");
  });

  test("the query string is ignored", async () => {
    await expectFile("/about?x=1&y=../../etc", "/about.html");
  });

  test("paths are case-sensitive", async () => {
    await expectNotFound("/ABOUT");
    await expectNotFound("/Index.html");
  });

  test("percent-encoded and non-ASCII names are decoded", async () => {
    await expectFile("/hello%20world", "/hello world.html");
    await expectFile("/hello%20world.html", "/hello world.html");
    await expectFile("/caf%C3%A9", "/café.html");
    await expectFile("/café", "/café.html");
    await expectFile("/%61bout", "/about.html");
  });

  test("request paths are NFC-normalised, as stored paths are: /cafe\u0301 serves /café", async () => {
    // "e" + U+0301 COMBINING ACUTE ACCENT (NFD, as macOS spells names) is "é" (U+00E9) in NFC.
    await expectFile("/cafe%CC%81", "/café.html");
    await expectFile("/cafe%CC%81.html", "/café.html");
    await expectFile("/cafe\u0301", "/café.html");
  });

  test("//, . and .. are normalised", async () => {
    await expectFile("//about", "/about.html");
    await expectFile("/docs//intro", "/docs/intro.html");
    await expectFile("///docs///", "/docs/index.html");
    await expectFile("/docs/./intro", "/docs/intro.html");
    await expectFile("/docs/%2e/intro", "/docs/intro.html");
    await expectFile("/docs/x/%2e%2e/intro", "/docs/intro.html");
    await expectFile("/docs%2f%2e%2e%2fabout", "/about.html");
    await expectFile("/docs%2Fintro", "/docs/intro.html");
    await expectFile("/docs/%2e", "/docs/index.html"); // trailing . names the directory
    await expectFile("/docs/intro/%2e%2e", "/docs/index.html");
  });

  test("\\ is an ordinary character, never a separator", async () => {
    await expectFile("/a%5Cb.txt", "/a\\b.txt");
    await expectNotFound("/docs%5Cintro");
    await expectNotFound("/docs%5C..%5Cabout");
    // A raw backslash is turned into / by the URL parser before the Worker sees it.
    await expectFile("/docs\\intro", "/docs/intro.html");
  });
});

describe("bad paths", () => {
  test("a malformed percent escape is 400", async () => {
    for (const path of ["/%zz", "/about%", "/about%2", "/%ff", "/%c3%28", "/%ed%a0%80"]) {
      const res = await fetchText(mf, ACME + path);
      assert.equal(res.status, 400, path);
      assert.equal(res.text, "bad request", path);
      assert.equal(res.headers.get("content-type"), "text/plain; charset=utf-8");
      assert.equal(res.headers.get("cache-control"), CC.noStore);
      assert.equal(res.headers.get("x-content-type-options"), "nosniff");
    }
  });

  test("a NUL is 400", async () => {
    for (const path of ["/%00", "/about%00.html", "/index.html%00"]) {
      const res = await fetchText(mf, ACME + path);
      assert.equal(res.status, 400, path);
    }
  });
});

describe("traversal never leaves the tenant", () => {
  // `other` has /secret.txt and /index.html; acme has neither /secret.txt nor /other/….
  const attempts = [
    "/../other/secret.txt",
    "/../../sites/other/manifest.json",
    "/%2e%2e/other/secret.txt",
    "/%2e%2e%2fother%2fsecret.txt",
    "/..%2f..%2fsites%2fother%2fmanifest.json",
    "/docs/..%2f..%2f..%2fsecret.txt",
    "/%2E%2E/%2E%2E/secret.txt",
    "/..%5c..%5csecret.txt",
    "/%5c..%5csecret.txt",
    "//other.getai.page/secret.txt",
    "/..;/secret.txt",
    "/.%2e/secret.txt",
    "/blobs/" + sha256(Buffer.from("other tenant secret")),
    "/sites/other/manifest.json",
    "/hosts/www.acme-corp.com.json",
  ];

  test("encoded and literal .., %2f, %5c, //: 404 from acme, never other's bytes", async () => {
    for (const path of attempts) {
      const res = await fetchText(mf, ACME + path);
      assert.ok(res.status === 404 || res.status === 400, `${path}: ${res.status}`);
      assert.equal(res.headers.get("x-tenant"), "acme", path);
      assert.doesNotMatch(res.text, /other tenant secret|other home|"files"/, path);
    }
  });

  test(".. above the root stays at the root", async () => {
    await expectFile("/%2e%2e", "/index.html");
    await expectFile("/%2e%2e/%2e%2e/", "/index.html");
    await expectFile("/..%2f..%2f..%2fabout", "/about.html");
    await expectFile("/%2e%2e%2f%2e%2e%2findex.html", "/index.html");
  });

  test("raw request lines (as a client can send them) are just as safe", async () => {
    for (const path of [
      "/../other/secret.txt",
      "/../../sites/other/manifest.json",
      "/a/../../../secret.txt",
      "/..\\..\\secret.txt",
      "/%2e%2e/%2e%2e/secret.txt",
      "/..%2f..%2fsecret.txt",
    ]) {
      const res = await rawGet(path);
      assert.equal(res.status, 404, path);
      assert.doesNotMatch(res.text, /other tenant secret|"files"/, path);
    }
    const ok = await rawGet("/docs/../about");
    assert.equal(ok.status, 200);
    assert.equal(ok.text, bodyOf("/about.html"));
    const other = await rawGet("/secret.txt", "other.getai.page");
    assert.equal(other.text, "other tenant secret");
  });
});
