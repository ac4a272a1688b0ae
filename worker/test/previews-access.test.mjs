// Private and expiring previews (issue 19): a protected preview answers 401 with
// WWW-Authenticate: Basic until the request carries its password (any user name), checked against
// the PBKDF2 hash in the head; an expired preview answers 404; a router that only knows `previews`
// never sees `protected_previews`. Previews keep X-Robots-Tag: noindex.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { pbkdf2Sync, randomBytes } from "node:crypto";

import { buildDeploy, fetchText, startRouter } from "./helpers.mjs";
import { parseHead } from "../src/heads.js";
import { basicPassword, routeFor } from "../src/previews.js";

const PASSWORD = "correct horse battery";
const h = (s) => ({ body: `<h1>${s}</h1>`, type: "text/html; charset=utf-8" });

function protect(password, iterations = 100_000) {
  const salt = randomBytes(16);
  const hash = pbkdf2Sync(password, salt, iterations, 32, "sha256");
  return { kdf: "pbkdf2-sha256", iterations, salt: salt.toString("hex"), hash: hash.toString("hex") };
}

const basic = (user, password) => "Basic " + Buffer.from(`${user}:${password}`).toString("base64");

let mf;
before(async () => {
  const live = buildDeploy("acme", { "/index.html": h("live home") });
  const secret = buildDeploy("acme", { "/index.html": h("secret preview") }, { deployId: "20261201T000000Z-aaaaaaaa" });
  const old = buildDeploy("acme", { "/index.html": h("old preview") }, { deployId: "20261201T000000Z-bbbbbbbb" });
  const soon = buildDeploy("acme", { "/index.html": h("open preview") }, { deployId: "20261201T000000Z-cccccccc" });
  const head = {
    format: 2,
    tenant: "acme",
    live: live.route,
    kept: [live.route.deploy_id],
    previews: {
      old: { ...old.route, expires_at: "2020-01-01T00:00:00Z" },
      open: { ...soon.route, expires_at: "2999-01-01T00:00:00Z" },
    },
    protected_previews: { secret: { ...secret.route, protect: protect(PASSWORD) } },
    updated_at: "2026-12-01T00:00:00Z",
    updated_by: "test",
  };
  const objects = [
    ...live.objects,
    ...secret.objects,
    ...old.objects,
    ...soon.objects,
    { key: "sites/acme/manifest.json", body: Buffer.from(JSON.stringify(head)), contentType: "application/json" },
  ];
  ({ mf } = await startRouter({ objects }));
}, { timeout: 60_000 });

after(async () => {
  await mf?.dispose();
});

describe("protected previews", () => {
  test("without the password: 401 with WWW-Authenticate: Basic, and noindex", async () => {
    for (const auth of [undefined, basic("anyone", "wrong password"), "Bearer x", "Basic !!!"]) {
      const res = await fetchText(mf, "https://secret--acme.getai.page/", auth ? { headers: { authorization: auth } } : {});
      assert.equal(res.status, 401, String(auth));
      assert.match(res.headers.get("www-authenticate"), /^Basic realm="preview"/);
      assert.equal(res.headers.get("x-robots-tag"), "noindex");
      assert.equal(res.headers.get("cache-control"), "no-store");
      assert.ok(!res.text.includes("secret preview"));
    }
  });

  test("with the password and any user name: served, and again from the verified cache", async () => {
    for (const user of ["", "client", "someone else"]) {
      const res = await fetchText(mf, "https://secret--acme.getai.page/", { headers: { authorization: basic(user, PASSWORD) } });
      assert.equal(res.status, 200, user);
      assert.equal(res.text, "<h1>secret preview</h1>");
      assert.equal(res.headers.get("x-robots-tag"), "noindex");
      // Never kept by a shared cache for the next visitor.
      assert.equal(res.headers.get("cache-control"), "private, no-cache");
    }
  });

  test("the live site needs no password", async () => {
    const res = await fetchText(mf, "https://acme.getai.page/");
    assert.equal(res.status, 200);
    assert.equal(res.text, "<h1>live home</h1>");
  });
});

describe("expiring previews", () => {
  test("after expires_at: 404, as if removed; before it: served", async () => {
    const gone = await fetchText(mf, "https://old--acme.getai.page/");
    assert.equal(gone.status, 404);
    assert.equal(gone.text, "site not found");
    const open = await fetchText(mf, "https://open--acme.getai.page/");
    assert.equal(open.status, 200);
    assert.equal(open.text, "<h1>open preview</h1>");
    assert.equal(open.headers.get("x-robots-tag"), "noindex");
  });
});

describe("parsing", () => {
  const route = {
    deploy_id: "20261201T000000Z-aaaaaaaa",
    created_at: "2026-12-01T00:00:00Z",
    digest: "d",
    files: 1,
    bytes: 1,
    shards: 1,
  };
  test("a protected preview without a valid protect is a configuration error, never served open", () => {
    const bad = (p) => JSON.stringify({ format: 2, tenant: "acme", live: route, protected_previews: { s: p } });
    assert.throws(() => parseHead(bad(route), "acme"));
    assert.throws(() => parseHead(bad({ ...route, protect: { ...protect("x", 10), iterations: 200_000 } }), "acme"));
    assert.throws(() => parseHead(bad({ ...route, protect: { ...protect("x", 10), kdf: "sha256" } }), "acme"));
    const ok = parseHead(bad({ ...route, protect: protect("x", 10) }), "acme");
    assert.equal(ok.previews.get("s").protect.iterations, 10);
  });

  test("expires_at: a bad time is refused; a past one hides the preview", () => {
    const head = (e) => JSON.stringify({ format: 2, tenant: "acme", live: route, previews: { p: { ...route, expires_at: e } } });
    assert.throws(() => parseHead(head("tomorrow"), "acme"));
    assert.equal(routeFor(parseHead(head("2020-01-01T00:00:00Z"), "acme"), "p"), null);
    assert.notEqual(routeFor(parseHead(head("2999-01-01T00:00:00Z"), "acme"), "p"), null);
  });

  test("basic auth: any user name, the password after the first colon", () => {
    assert.equal(basicPassword(basic("u", "a:b")), "a:b");
    assert.equal(basicPassword(basic("", "p")), "p");
    assert.equal(basicPassword("Basic " + Buffer.from("nocolon").toString("base64")), null);
    assert.equal(basicPassword(null), null);
  });
});
