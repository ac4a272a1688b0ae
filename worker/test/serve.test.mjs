// worker/serve.mjs (what `cfsetup demo --serve` runs): serves a bucket through the router over
// real HTTP at http://<tenant>.localhost:<port>/. With Debian's `chromium` installed, a headless
// browser also checks that the page renders and its CSS and image load; without it that test is
// skipped (and says so).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ROUTER_SOURCE, buildSite2 } from "./helpers.mjs";

const SITE = fileURLToPath(new URL("../../examples/site/", import.meta.url));
const SERVE = fileURLToPath(new URL("../serve.mjs", import.meta.url));
const TYPES = { html: "text/html; charset=utf-8", css: "text/css; charset=utf-8", svg: "image/svg+xml" };
// Appended to the home page: reports, in the DOM, whether the stylesheet and the logo loaded.
const PROBE = `<script>addEventListener("load", () => {
  const css = [...document.styleSheets].some((s) => { try { return s.cssRules.length > 0; } catch { return false; } });
  const img = document.querySelector("img");
  document.body.insertAdjacentHTML("beforeend",
    '<p id="probe">css=' + css + ' img=' + (img.complete && img.naturalWidth > 0) + '</p>');
});</script>`;

let dir;
let child;
let port;

function walk(root, rel = "") {
  const out = {};
  for (const name of readdirSync(join(root, rel))) {
    const r = rel ? `${rel}/${name}` : name;
    if (statSync(join(root, r)).isDirectory()) Object.assign(out, walk(root, r));
    else {
      let body = readFileSync(join(root, r));
      if (r === "index.html") body = Buffer.from(body.toString("utf8").replace("</body>", PROBE + "</body>"));
      out["/" + r] = { body, type: TYPES[r.split(".").pop()] || "application/octet-stream" };
    }
  }
  return out;
}

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

function get(path, host) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, path, headers: { host } }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(chunks).toString() }));
    });
    req.on("error", reject);
    req.end();
  });
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "cfsetup-serve-test-"));
  mkdirSync(join(dir, "modules"));
  mkdirSync(join(dir, "objects"));
  writeFileSync(join(dir, "modules/0"), ROUTER_SOURCE);
  const objects = buildSite2("demo", walk(SITE)).objects.map((o, i) => {
    writeFileSync(join(dir, `objects/${i}`), o.body);
    return { key: o.key, content_type: o.contentType, file: `objects/${i}` };
  });
  writeFileSync(join(dir, "serve.json"), JSON.stringify({
    main_module: "router.js",
    compatibility_date: "2025-01-01",
    bindings: [
      { type: "r2_bucket", name: "SITES", bucket_name: "sites" },
      { type: "plain_text", name: "PLATFORM_DOMAIN", text: "getai.page" },
    ],
    modules: [{ name: "router.js", content_type: "application/javascript+module", file: "modules/0" }],
    buckets: { sites: objects },
  }));
  port = await freePort();
  child = spawn(process.execPath, [SERVE, dir, "--port", String(port)], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (c) => {
      out += c;
      if (out.includes("open http://")) resolve();
    });
    child.on("exit", (code) => reject(new Error(`serve.mjs exited ${code}: ${out}`)));
  });
}, { timeout: 60_000 });

after(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child.on("exit", r));
    child.kill("SIGINT");
    await exited;
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("serve.mjs", () => {
  test("serves the tenant at <tenant>.localhost over HTTP through the router", async () => {
    const home = await get("/", `demo.localhost:${port}`);
    assert.equal(home.status, 200);
    assert.match(home.text, /Acme Gardens/);
    assert.equal(home.headers["x-tenant"], "demo");
    assert.equal((await get("/css/site.css", `demo.localhost:${port}`)).status, 200);
    assert.equal((await get("/about.html", `demo.localhost:${port}`)).status, 308);
    assert.equal((await get("/", `other.localhost:${port}`)).status, 404);
  });

  const chromium = spawnSync("chromium", ["--version"], { encoding: "utf8" });
  const skip = chromium.status === 0 ? false : "chromium is not installed (apt-get install chromium)";
  test("headless Chromium: the page renders, its CSS and image load", { skip, timeout: 120_000 }, () => {
    const profile = mkdtempSync(join(tmpdir(), "cfsetup-chromium-"));
    try {
      const r = spawnSync("chromium", [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", `--user-data-dir=${profile}`,
        "--virtual-time-budget=5000", "--dump-dom", `http://demo.localhost:${port}/`,
      ], { encoding: "utf8", timeout: 90_000 });
      assert.match(r.stdout, /<h1>Plants that thrive where you live<\/h1>/);
      assert.match(r.stdout, /<p id="probe">css=true img=true<\/p>/, r.stdout.slice(-500));
    } finally {
      rmSync(profile, { recursive: true, force: true });
    }
  });
});
