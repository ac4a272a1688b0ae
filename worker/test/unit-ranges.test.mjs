// Unit tests (node:test, no miniflare) of Range and If-None-Match parsing (src/files.js) and
// Cache-Control by file (src/responses.js).
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { UNSATISFIABLE, ifNoneMatchMatches, parseRange } from "../src/files.js";
import { CC_ASSET, CC_HTML, CC_IMMUTABLE, cacheControlFor, isContentHashed } from "../src/responses.js";

describe("parseRange", () => {
  const size = 100;
  const cases = [
    [null, null],
    ["bytes=0-9", { offset: 0, length: 10 }],
    ["bytes=90-", { offset: 90, length: 10 }],
    ["bytes=90-1000", { offset: 90, length: 10 }],
    ["bytes=-10", { offset: 90, length: 10 }],
    ["bytes=-1000", { offset: 0, length: 100 }],
    [" Bytes = 5 - 5 ", { offset: 5, length: 1 }],
    ["bytes=100-", UNSATISFIABLE],
    ["bytes=-0", UNSATISFIABLE],
    ["bytes=9-0", null], // end before start: malformed, whole file
    ["bytes=-", null],
    ["bytes=0-1,5-6", null], // several ranges: whole file with 200
    ["items=0-1", null],
  ];
  for (const [header, want] of cases) {
    test(`${JSON.stringify(header)} of ${size} bytes`, () => {
      assert.deepEqual(parseRange(header, size), want);
    });
  }
  test("any range of an empty file is unsatisfiable", () => {
    assert.equal(parseRange("bytes=0-", 0), UNSATISFIABLE);
    assert.equal(parseRange("bytes=-5", 0), UNSATISFIABLE);
  });
});

describe("ifNoneMatchMatches", () => {
  const etag = '"abc"';
  test("strong, weak, list and star", () => {
    assert.equal(ifNoneMatchMatches('"abc"', etag), true);
    assert.equal(ifNoneMatchMatches('W/"abc"', etag), true);
    assert.equal(ifNoneMatchMatches('"x", W/"abc"', etag), true);
    assert.equal(ifNoneMatchMatches("*", etag), true);
    assert.equal(ifNoneMatchMatches('"abcd"', etag), false);
    assert.equal(ifNoneMatchMatches("abc", etag), false);
    assert.equal(ifNoneMatchMatches(null, etag), false);
  });
});

describe("cacheControlFor", () => {
  test("HTML always revalidates, even with a hashed name", () => {
    assert.equal(cacheControlFor("/index.html", "text/html; charset=utf-8"), CC_HTML);
    assert.equal(cacheControlFor("/page.3f2a9c1b.html", "TEXT/HTML"), CC_HTML);
  });
  test("content-hashed names are immutable, other assets an hour", () => {
    assert.equal(cacheControlFor("/js/app.3f2a9c1b.js", "text/javascript"), CC_IMMUTABLE);
    assert.equal(cacheControlFor("/css/main-8d7e6f5a4b.css", "text/css"), CC_IMMUTABLE);
    assert.equal(cacheControlFor("/js/3f2a9c1b.js", "text/javascript"), CC_IMMUTABLE);
    assert.equal(cacheControlFor("/css/site.css", "text/css"), CC_ASSET);
  });
  test("isContentHashed: ≥ 8 hex in a segment before the extension", () => {
    assert.equal(isContentHashed("/js/app.3f2a9c1.js"), false); // 7 hex
    assert.equal(isContentHashed("/js/app.3f2a9c1bxx.js"), false);
    assert.equal(isContentHashed("/js/app-3f2a9c1b"), false); // no extension
    assert.equal(isContentHashed("/.3f2a9c1b"), false); // dot file, no extension
    assert.equal(isContentHashed("/a.B16F00D5.png"), true);
  });
});
