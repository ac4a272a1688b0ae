#!/usr/bin/env node
// Serves an uploaded router Worker locally, in workerd (miniflare), over a copy of its bucket:
// what `cfsetup demo --serve` runs.
//
//   node worker/serve.mjs <dir> [--port 8787] [--tenant demo]
//
// <dir>/serve.json (written by cfsetup):
//   { "main_module": "router.js", "compatibility_date": "…", "compatibility_flags": [],
//     "bindings": [ {type: "r2_bucket"|"plain_text"|"json", name, …} ],
//     "modules":  [ { "name", "content_type", "file" } ],
//     "buckets":  { "<bucket_name>": [ { "key", "content_type", "file" } ] } }
// Files are relative to <dir>. PLATFORM_DOMAIN is replaced by "localhost", so
// `http://<tenant>.localhost:<port>/` is the tenant (browsers resolve *.localhost to loopback).
// Serves until SIGINT/SIGTERM; then exits 0.
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Miniflare } from "miniflare";
import { Failure, seedBuckets, workerOptions } from "./upload-options.mjs";

function usage(msg) {
  console.error(`serve.mjs: ${msg}\nusage: node worker/serve.mjs <dir> [--port 8787] [--tenant demo]`);
  process.exit(2);
}

const args = process.argv.slice(2);
let dir = null;
let port = 8787;
let tenant = "demo";
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--port") port = Number(args[++i]);
  else if (args[i] === "--tenant") tenant = args[++i];
  else if (dir === null) dir = resolve(args[i]);
  else usage(`unexpected argument ${args[i]}`);
}
if (dir === null) usage("missing <dir>");
if (!Number.isInteger(port) || port < 0 || port > 65535) usage("bad --port");

const spec = JSON.parse(readFileSync(join(dir, "serve.json"), "utf8"));
// Files as their own ArrayBuffer (miniflare's proxy rejects pooled Buffers).
const file = (f) => new Uint8Array(readFileSync(join(dir, f)));
let options;
try {
  options = workerOptions(spec, (m) => file(m.file));
} catch (err) {
  if (err instanceof Failure) usage(err.message);
  throw err;
}
options.bindings.PLATFORM_DOMAIN = "localhost";

const mf = new Miniflare({ ...options, host: "127.0.0.1", port });
try {
  await mf.ready;
  await seedBuckets(mf, options.r2Buckets, spec.buckets, (o) => file(o.file), "serve.mjs");
} catch (err) {
  console.error(`serve.mjs: ${err.message}`);
  await mf.dispose().catch(() => {});
  process.exit(1);
}
console.log(`open http://${tenant}.localhost:${port}/`);
console.log("(serving through the router in workerd; Ctrl-C to stop)");

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  await mf.dispose().catch(() => {});
  process.exit(0);
}
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
