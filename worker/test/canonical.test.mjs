// Canonical URLs as Pages does them, and a property test: no redirect chains or loops, whatever
// the files, and every file reachable in at most one redirect.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { buildSite, buildSite2, fetchText, startRouter } from "./helpers.mjs";

const HTML = "text/html; charset=utf-8";
const SEED = Number(process.env.PROPERTY_SEED || 20261201);
const TREES = 30;
let mf;
const trees = [];

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEGMENTS = ["a", "b", "docs", "index.html", "a.html", "b.html", "docs.html", "404.html", "x.js", ".html", "é.html", "a b"];
const DIRS = ["a", "b", "docs", "a.html", "é"];

function randomTree(rnd) {
  const pick = (xs) => xs[Math.floor(rnd() * xs.length)];
  const files = {};
  const n = 1 + Math.floor(rnd() * 12);
  for (let i = 0; i < n; i++) {
    const depth = Math.floor(rnd() * 3);
    const segs = [];
    for (let d = 0; d < depth; d++) segs.push(pick(DIRS));
    segs.push(pick(SEGMENTS));
    const path = "/" + segs.join("/");
    files[path] = { body: `file ${path}`, type: path.endsWith(".html") ? HTML : "text/plain" };
  }
  return files;
}

function variants(path) {
  const out = new Set([path, path + "/"]);
  if (path.endsWith("/index.html")) out.add(path.slice(0, -"index.html".length)).add(path.slice(0, -"/index.html".length) || "/");
  if (path.endsWith(".html")) out.add(path.slice(0, -5)).add(path.slice(0, -5) + "/");
  const parent = path.slice(0, path.lastIndexOf("/")) || "/";
  out.add(parent).add(parent.endsWith("/") ? parent : parent + "/");
  return [...out];
}

before(async () => {
  const rnd = mulberry32(SEED);
  const objects = [];
  for (let i = 0; i < TREES; i++) {
    const files = randomTree(rnd);
    const tenant = `t${i}`;
    const format = i % 3;
    if (format === 0) objects.push(...buildSite(tenant, files).objects);
    else objects.push(...buildSite2(tenant, files, { shards: 1 << Math.floor(rnd() * 4), stem: format === 2, notFound: "none" }).objects);
    trees.push({ tenant, files });
  }
  objects.push(
    ...buildSite2("acme", {
      "/index.html": { body: "home", type: HTML },
      "/about.html": { body: "about", type: HTML },
      "/docs/index.html": { body: "docs", type: HTML },
      "/blog.html": { body: "blog.html", type: HTML },
      "/blog/index.html": { body: "blog dir", type: HTML },
      "/plain": { body: "plain", type: "text/plain" },
      "/plain.html": { body: "plain.html", type: HTML },
      "/café.html": { body: "café", type: HTML },
    }, { stem: true, shards: 4 }).objects,
  );
  ({ mf } = await startRouter({ objects }));
}, { timeout: 120_000 });

after(async () => {
  await mf?.dispose();
});

describe("canonical URLs (Pages)", () => {
  const cases = [
    ["/about.html", "/about"],
    ["/about.html?x=1&y=2", "/about?x=1&y=2"],
    ["/about/", "/about"],
    ["/docs", "/docs/"],
    ["/docs?tab=2", "/docs/?tab=2"],
    ["/docs/index.html", "/docs/"],
    ["/index.html", "/"],
    ["/index.html?q", "/?q"],
    ["/blog/index.html", "/blog/"],
    ["/blog.html", "/blog"],
    ["/caf%C3%A9.html", "/caf%C3%A9"],
  ];
  for (const [from, to] of cases) {
    test(`${from} → 308 ${to}`, async () => {
      const res = await fetchText(mf, "https://acme.getai.page" + from);
      assert.equal(res.status, 308);
      assert.equal(res.headers.get("location"), to);
      assert.equal(res.body.length, 0);
      const next = await fetchText(mf, "https://acme.getai.page" + to);
      assert.equal(next.status, 200);
    });
  }
  test("canonical URLs are served without a redirect", async () => {
    for (const [path, body] of [["/", "home"], ["/about", "about"], ["/docs/", "docs"], ["/blog", "blog.html"], ["/blog/", "blog dir"], ["/plain", "plain"], ["/plain.html", "plain.html"], ["/café", "café"]]) {
      const res = await fetchText(mf, "https://acme.getai.page" + encodeURI(path));
      assert.equal(res.status, 200, path);
      assert.equal(res.text, body, path);
    }
  });
});

describe(`property: random trees (seed ${SEED}, PROPERTY_SEED to change)`, () => {
  test("at most one redirect, never to another redirect; every file reachable", async () => {
    for (const { tenant, files } of trees) {
      const base = `https://${tenant}.getai.page`;
      const label = `seed ${SEED} ${tenant} ${JSON.stringify(Object.keys(files))}`;
      const paths = new Set();
      for (const p of Object.keys(files)) for (const v of variants(p)) paths.add(v);
      for (const p of ["/", "/a", "/a/", "/docs", "/nope.html", "/index.html/"]) paths.add(p);
      for (const p of paths) {
        const url = base + encodeURI(p) + "?k=v";
        const res = await fetchText(mf, url);
        assert.ok([200, 308, 404].includes(res.status), `${label}: ${p} → ${res.status}`);
        if (res.status !== 308) continue;
        const loc = res.headers.get("location");
        assert.ok(loc.endsWith("?k=v"), `${label}: ${p} → ${loc} lost the query`);
        const next = await fetchText(mf, new URL(loc, base).href);
        assert.equal(next.status, 200, `${label}: ${p} → ${loc} → ${next.status}`);
      }
      for (const [p, { body }] of Object.entries(files)) {
        let res = await fetchText(mf, base + encodeURI(p));
        if (res.status === 308) res = await fetchText(mf, new URL(res.headers.get("location"), base).href);
        assert.equal(res.status, 200, `${label}: ${p} unreachable`);
        assert.equal(res.text, body, `${label}: ${p} reaches another file`);
      }
    }
  });
});
