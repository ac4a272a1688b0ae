// Tests for e2e-runner.mjs, the CLI the Rust end-to-end test drives.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ROUTER_SOURCE, PNG_BYTES, buildSite, hostEntry, sha256 } from "./helpers.mjs";

const RUNNER = fileURLToPath(new URL("./e2e-runner.mjs", import.meta.url));
let dir;

before(() => {
  dir = mkdtempSync(join(tmpdir(), "e2e-runner-"));
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
});

const b64 = (x) => Buffer.from(x).toString("base64");

function runRunner(dump, name = "dump.json") {
  const path = join(dir, name);
  writeFileSync(path, typeof dump === "string" ? dump : JSON.stringify(dump));
  return runArgs([path]);
}

function runArgs(args) {
  return new Promise((resolve) => {
    // Without NODE_TEST_CONTEXT, so the runner behaves as it does for the Rust test.
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    execFile(process.execPath, [RUNNER, ...args], { env, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr });
    });
  });
}

function routerScript(bindings) {
  return {
    main_module: "router.js",
    compatibility_date: "2025-01-01",
    modules: [
      { name: "router.js", content_type: "application/javascript+module", body_b64: b64(ROUTER_SOURCE) },
    ],
    bindings: bindings ?? [
      { type: "r2_bucket", name: "SITES", bucket_name: "platform-sites" },
      { type: "plain_text", name: "PLATFORM_DOMAIN", text: "getai.page" },
      { type: "secret_text", name: "IGNORED", text: "s3cret" },
    ],
  };
}

function bucketObjects(objects) {
  return objects.map((o) => ({ key: o.key, content_type: o.contentType, body_b64: b64(o.body) }));
}

describe("e2e-runner.mjs", { concurrency: true }, () => {
  test("runs router.js against the dumped bucket and prints one JSON line", async () => {
    const site = buildSite("acme", {
      "/index.html": { body: "<h1>home</h1>", type: "text/html; charset=utf-8" },
      "/about.html": { body: "<h1>about</h1>", type: "text/html; charset=utf-8" },
      "/logo.png": { body: PNG_BYTES, type: "image/png" },
    });
    const aboutHash = sha256(Buffer.from("<h1>about</h1>"));
    const dump = {
      script: routerScript(),
      buckets: {
        "platform-sites": bucketObjects([...site.objects, hostEntry("www.acme.example", "acme")]),
        "unbound-bucket": [{ key: "x", body_b64: b64("x") }],
      },
      requests: [
        { url: "https://acme.getai.page/about", method: "GET", headers: {} },
        { url: "https://www.acme.example/about", headers: { "if-none-match": `"${aboutHash}"` } },
        { url: "https://acme.getai.page/logo.png" },
        { url: "https://acme.getai.page/", method: "HEAD" },
        { url: "https://nobody.example/" },
        { url: "https://acme.getai.page/", method: "POST", body_b64: b64("x") },
      ],
    };
    const { code, stdout, stderr } = await runRunner(dump);
    assert.equal(code, 0, stderr);
    assert.match(stderr, /unbound-bucket/);
    const lines = stdout.split("\n").filter(Boolean);
    assert.equal(lines.length, 1, stdout);
    const [about, notModified, png, head, unknown, post] = JSON.parse(lines[0]);

    assert.equal(about.status, 200);
    assert.equal(about.body, "<h1>about</h1>");
    assert.equal(about.body_b64, b64("<h1>about</h1>"));
    assert.equal(about.headers.etag, `"${aboutHash}"`);
    assert.equal(about.headers["content-type"], "text/html; charset=utf-8");
    assert.equal(about.headers["content-length"], String("<h1>about</h1>".length));
    assert.equal(about.headers["x-tenant"], "acme");
    assert.equal(about.headers["x-frame-options"], "SAMEORIGIN");

    assert.equal(notModified.status, 304);
    assert.equal(notModified.body, "");

    assert.equal(png.status, 200);
    assert.equal(png.body, null, "PNG bytes are not UTF-8");
    assert.deepEqual(new Uint8Array(Buffer.from(png.body_b64, "base64")), PNG_BYTES);

    assert.equal(head.status, 200);
    assert.equal(head.body, "");
    assert.equal(head.headers["content-length"], String("<h1>home</h1>".length));

    assert.equal(unknown.status, 404);
    assert.equal(unknown.body, "site not found");

    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, "GET, HEAD");
  });

  test("json and plain_text bindings reach the Worker; its console output stays off stdout", async () => {
    const echo = `export default { async fetch(req, env) {
      console.log("noise from the worker");
      return Response.json({ cfg: env.CFG, name: env.NAME, secret: env.IGNORED ?? null,
                             helper: (await import("./lib/helper.js")).default });
    } };`;
    const dump = {
      script: {
        main_module: "main.js",
        compatibility_date: "2025-01-01",
        modules: [
          { name: "lib/helper.js", content_type: "application/javascript+module", body_b64: b64("export default 42;") },
          { name: "main.js", content_type: "application/javascript+module", body_b64: b64(echo) },
        ],
        bindings: [
          { type: "json", name: "CFG", json: { a: [1, 2] } },
          { type: "plain_text", name: "NAME", text: "n" },
          { type: "secret_text", name: "IGNORED", text: "s3cret" },
        ],
      },
      buckets: {},
      requests: [{ url: "https://x.example/" }],
    };
    const { code, stdout, stderr } = await runRunner(dump, "echo.json");
    assert.equal(code, 0, stderr);
    assert.doesNotMatch(stdout, /noise/);
    const [res] = JSON.parse(stdout);
    assert.deepEqual(JSON.parse(res.body), { cfg: { a: [1, 2] }, name: "n", secret: null, helper: 42 });
  });

  test("reads the dump from stdin with -", async () => {
    const dump = JSON.stringify({
      script: routerScript(),
      buckets: {},
      requests: [{ url: "https://acme.getai.page/_health" }],
    });
    const result = await new Promise((resolve) => {
      const env = { ...process.env };
      delete env.NODE_TEST_CONTEXT;
      const child = execFile(process.execPath, [RUNNER, "-"], { env, timeout: 60_000 }, (err, stdout, stderr) =>
        resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr }),
      );
      child.stdin.end(dump);
    });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(JSON.parse(result.stdout)[0].body, "ok");
  });

  test("fails with a message on stderr and a non-zero status", async () => {
    const cases = [
      ["not json", "{"],
      ["unknown binding type", { script: routerScript([{ type: "kv_namespace", name: "KV", namespace_id: "x" }]), requests: [] }],
      ["main module missing", { script: { ...routerScript(), main_module: "nope.js" }, requests: [] }],
      ["bad module type", {
        script: { ...routerScript(), modules: [{ name: "router.js", content_type: "text/x-python", body_b64: "" }] },
        requests: [],
      }],
      ["syntax error in the script", {
        script: { ...routerScript(), modules: [{ name: "router.js", content_type: "application/javascript+module", body_b64: b64("export default {") }] },
        requests: [],
      }],
      ["request without url", { script: routerScript(), requests: [{}] }],
    ];
    // Each case is a separate process; run them side by side.
    const results = await Promise.all(cases.map(([, dump], i) => runRunner(dump, `bad-${i}.json`)));
    for (const [i, { code, stdout, stderr }] of results.entries()) {
      const label = cases[i][0];
      assert.equal(code, 1, label);
      assert.equal(stdout, "", label);
      assert.match(stderr, /e2e-runner: /, label);
    }
    const [missing, usage] = await Promise.all([
      runArgs([join(dir, "does-not-exist.json")]),
      runArgs([]),
    ]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /does-not-exist/);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /usage/);
  });
});
