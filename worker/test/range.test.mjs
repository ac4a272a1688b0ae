// Range requests (206, 416, If-Range, several ranges), Accept-Ranges, the Cache API for blobs.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { buildSite2, fetchText, sha256, startCountingRouter, takeOps } from "./helpers.mjs";

const BIG = Buffer.alloc(100_000);
for (let i = 0; i < BIG.length; i++) BIG[i] = (i * 7) % 251;
const ETAG = `"${sha256(BIG)}"`;
let mf;

before(async () => {
  const files = {
    "/index.html": { body: "<h1>home</h1>", type: "text/html; charset=utf-8" },
    "/video.mp4": { body: BIG, type: "video/mp4" },
    "/empty.txt": { body: "", type: "text/plain" },
    "/404.html": { body: "<h1>nf</h1>", type: "text/html; charset=utf-8" },
  };
  ({ mf } = await startCountingRouter({
    objects: [
      ...buildSite2("media", files).objects,
      ...buildSite2("cached", files).objects,
    ],
    bindings: { BLOB_CACHE: "off" },
  }));
}, { timeout: 30_000 });

after(async () => {
  await mf?.dispose();
});

const URL_ = "https://media.getai.page/video.mp4";
const get = (range, extra = {}) =>
  fetchText(mf, URL_, { headers: { ...(range === null ? {} : { range }), ...extra } });

describe("Range", () => {
  test("bytes=a-b is 206 with Content-Range and only those bytes, from a ranged R2 get", async () => {
    await takeOps(mf);
    const res = await get("bytes=0-99");
    assert.equal(res.status, 206);
    assert.equal(res.headers.get("content-range"), `bytes 0-99/${BIG.length}`);
    assert.equal(res.headers.get("content-length"), "100");
    assert.equal(res.headers.get("accept-ranges"), "bytes");
    assert.equal(res.headers.get("etag"), ETAG);
    assert.deepEqual(res.body, BIG.subarray(0, 100));
    const blobOps = (await takeOps(mf)).filter((o) => o.key.startsWith("blobs/"));
    assert.deepEqual(blobOps.map((o) => o.range), [true]);
  });

  test("bytes=a- and bytes=-n", async () => {
    const tail = await get("bytes=99990-");
    assert.equal(tail.status, 206);
    assert.equal(tail.headers.get("content-range"), `bytes 99990-99999/${BIG.length}`);
    assert.deepEqual(tail.body, BIG.subarray(99990));
    const suffix = await get("bytes=-5");
    assert.equal(suffix.status, 206);
    assert.equal(suffix.headers.get("content-range"), `bytes 99995-99999/${BIG.length}`);
    assert.deepEqual(suffix.body, BIG.subarray(99995));
    const clipped = await get("bytes=99998-200000");
    assert.equal(clipped.headers.get("content-range"), `bytes 99998-99999/${BIG.length}`);
    const whole = await get("bytes=-200000");
    assert.equal(whole.status, 206);
    assert.equal(whole.body.length, BIG.length);
  });

  test("an unsatisfiable range is 416 with Content-Range: bytes */size", async () => {
    for (const r of ["bytes=100000-", "bytes=200000-300000", "bytes=-0"]) {
      const res = await get(r);
      assert.equal(res.status, 416, r);
      assert.equal(res.headers.get("content-range"), `bytes */${BIG.length}`, r);
      assert.equal(res.body.length, 0);
    }
    const empty = await fetchText(mf, "https://media.getai.page/empty.txt", { headers: { range: "bytes=0-" } });
    assert.equal(empty.status, 416);
    assert.equal(empty.headers.get("content-range"), "bytes */0");
  });

  test("several ranges, or a malformed one, get the whole file with 200", async () => {
    for (const r of ["bytes=0-1,5-9", "bytes=5-1", "items=0-1", "bytes=abc", "bytes=-"]) {
      const res = await get(r);
      assert.equal(res.status, 200, r);
      assert.equal(res.body.length, BIG.length, r);
      assert.equal(res.headers.get("accept-ranges"), "bytes");
    }
  });

  test("If-Range: the current ETag gets 206, another ETag or a date gets 200 whole", async () => {
    assert.equal((await get("bytes=0-9", { "if-range": ETAG })).status, 206);
    for (const ir of [`"${"0".repeat(64)}"`, "Wed, 21 Oct 2015 07:28:00 GMT", `W/${ETAG}`]) {
      const res = await get("bytes=0-9", { "if-range": ir });
      assert.equal(res.status, 200, ir);
      assert.equal(res.body.length, BIG.length);
    }
  });

  test("If-None-Match wins over Range; HEAD with a range has the 206 headers, no body", async () => {
    assert.equal((await get("bytes=0-9", { "if-none-match": ETAG })).status, 304);
    const head = await fetchText(mf, URL_, { method: "HEAD", headers: { range: "bytes=0-9" } });
    assert.equal(head.status, 206);
    assert.equal(head.headers.get("content-length"), "10");
    assert.equal(head.body.length, 0);
  });

  test("every file response has Accept-Ranges: bytes; a 404 page ignores Range", async () => {
    const home = await fetchText(mf, "https://media.getai.page/");
    assert.equal(home.headers.get("accept-ranges"), "bytes");
    const nf = await fetchText(mf, "https://media.getai.page/nope", { headers: { range: "bytes=0-1" } });
    assert.equal(nf.status, 404);
    assert.equal(nf.text, "<h1>nf</h1>");
  });
});
