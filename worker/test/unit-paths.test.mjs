// Unit tests (node:test, no miniflare) of the pure path helpers in src/files.js.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { decodeAndNormalise, encodePath, withQuery } from "../src/files.js";

describe("decodeAndNormalise", () => {
  const cases = [
    ["/", "/"],
    ["", "/"],
    ["/a", "/a"],
    ["/a/", "/a/"],
    ["//a//b", "/a/b"],
    ["/a/./b", "/a/b"],
    ["/a/../b", "/b"],
    ["/../../etc/passwd", "/etc/passwd"],
    ["/a/..", "/"],
    ["/a/b/..", "/a/"],
    ["/a/.", "/a/"],
    ["/hello%20world.html", "/hello world.html"],
    ["/caf%C3%A9", "/café"],
    ["/a%2Fb", "/a/b"],
    ["/a%2F..%2F..%2Fb", "/b"],
    ["/a\\b.txt", "/a\\b.txt"],
    ["/a%5Cb.txt", "/a\\b.txt"],
  ];
  for (const [input, want] of cases) {
    test(`${JSON.stringify(input)} → ${JSON.stringify(want)}`, () => {
      assert.equal(decodeAndNormalise(input), want);
    });
  }
  test("a malformed escape or a NUL is null (400)", () => {
    assert.equal(decodeAndNormalise("/%E0%A4%A"), null);
    assert.equal(decodeAndNormalise("/%zz"), null);
    assert.equal(decodeAndNormalise("/a%00b"), null);
  });
});

describe("encodePath and withQuery", () => {
  test("encodePath encodes each segment, keeps the slashes", () => {
    assert.equal(encodePath("/hello world/café"), "/hello%20world/caf%C3%A9");
    assert.equal(encodePath("/a?b#c"), "/a%3Fb%23c");
  });
  test("withQuery keeps the request's query unless the target has its own", () => {
    assert.equal(withQuery("/new", "?a=1"), "/new?a=1");
    assert.equal(withQuery("/new?b=2", "?a=1"), "/new?b=2");
    assert.equal(withQuery("/new", ""), "/new");
  });
});
