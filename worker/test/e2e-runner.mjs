#!/usr/bin/env node
// Runs an uploaded Worker script in miniflare, offline, for the Rust end-to-end test.
//
//   node worker/test/e2e-runner.mjs <dump.json | ->
//
// dump.json:
//   { "script":   { "main_module": "router.js", "compatibility_date": "2025-01-01",
//                   "compatibility_flags": [...]?,
//                   "modules":  [ { "name", "content_type", "body_b64" } ],
//                   "bindings": [ { "type": "r2_bucket", "name", "bucket_name" },
//                                 { "type": "plain_text", "name", "text" },
//                                 { "type": "json", "name", "json" },
//                                 { "type": "secret_text", … } ] },          (secret_text is ignored)
//     "buckets":  { "<bucket_name>": [ { "key", "content_type"?, "body_b64" } ] },
//     "requests": [ { "url", "method"?, "headers"?: {…}, "body_b64"? } ] }
//
// Prints exactly one JSON line on stdout, one element per request, in order:
//   [{"status":200,"headers":{…lowercase names…},"body":"<utf-8 text or null>","body_b64":"…"}]
// "body" is null when the bytes are not valid UTF-8. Requests are sent with
// `accept-encoding: identity` unless they set accept-encoding themselves, because miniflare
// otherwise emulates the edge's gzip and drops Content-Length. Redirects are not followed.
// Objects of a bucket that no r2_bucket binding names are skipped (with a note on stderr).
// Any failure: a message on stderr and exit status 1 (2 for usage errors).
import { readFileSync } from "node:fs";
import { Failure, fail, seedBuckets, workerOptions } from "../upload-options.mjs";

function b64(value, what) {
  if (value === undefined || value === null) return new Uint8Array(0);
  if (typeof value !== "string") fail(`${what}: body_b64 must be a string`);
  const buf = Buffer.from(value, "base64");
  return new Uint8Array(buf); // own ArrayBuffer (miniflare's proxy rejects pooled Buffers)
}

function readDump(arg) {
  const text = arg === "-" ? readFileSync(0, "utf8") : readFileSync(arg, "utf8");
  try {
    return JSON.parse(text);
  } catch (err) {
    fail(`${arg}: not JSON: ${err.message}`);
  }
}

function buildOptions(script) {
  return {
    ...workerOptions(script, (m) => b64(m.body_b64, `module ${m.name}`)),
    // Keep stdout for our one JSON line: anything the runtime or the Worker prints goes to stderr.
    handleRuntimeStdio(stdout, stderr) {
      stdout.pipe(process.stderr);
      stderr.pipe(process.stderr);
    },
    handleStructuredLogs({ message }) {
      process.stderr.write(`${message}\n`);
    },
  };
}

async function run(dump) {
  const options = buildOptions(dump.script);
  // Imported only now (it takes ~0.4 s), so a bad dump fails fast.
  const { Miniflare } = await import("miniflare");
  const mf = new Miniflare(options);
  try {
    await mf.ready;
    await seedBuckets(mf, options.r2Buckets, dump.buckets, (o) => b64(o.body_b64, `object ${o.key}`), "e2e-runner");

    const results = [];
    for (const [i, r] of (dump.requests || []).entries()) {
      if (!r || typeof r.url !== "string") fail(`requests[${i}]: no url`);
      const headers = new Headers(r.headers || {});
      if (!headers.has("accept-encoding")) headers.set("accept-encoding", "identity");
      const method = (r.method || "GET").toUpperCase();
      const init = { method, headers, redirect: "manual" };
      if (r.body_b64 !== undefined && r.body_b64 !== null && method !== "GET" && method !== "HEAD") {
        init.body = b64(r.body_b64, `requests[${i}]`);
      }
      const res = await mf.dispatchFetch(r.url, init);
      const bytes = Buffer.from(await res.arrayBuffer());
      let body;
      try {
        body = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
      } catch {
        body = null;
      }
      const outHeaders = {};
      for (const [k, v] of res.headers) outHeaders[k.toLowerCase()] = v;
      results.push({ status: res.status, headers: outHeaders, body, body_b64: bytes.toString("base64") });
    }
    return results;
  } finally {
    await mf.dispose();
  }
}

async function main() {
  const arg = process.argv[2];
  if (!arg || process.argv.length > 3) {
    process.stderr.write("usage: node worker/test/e2e-runner.mjs <dump.json | ->\n");
    process.exit(2);
  }
  try {
    const results = await run(readDump(arg));
    process.stdout.write(JSON.stringify(results) + "\n");
  } catch (err) {
    const message = err instanceof Failure ? err.message : err && err.stack ? err.stack : String(err);
    process.stderr.write(`e2e-runner: ${message}\n`);
    process.exitCode = 1;
  }
}

await main();
