#!/usr/bin/env node
// Shard size (run by hand: `node worker/bench/shard-size.mjs`): for paths per shard 32…512, what
// a one-file change writes (one shard, the copy and head with their `shard_hashes`, the intent)
// for 4,000 and 100,000 files, and what a cold page view parses (one shard: JSON.parse and the
// Map of its entries, median of 200 in Node's V8, as the router does).
import { createHash } from "node:crypto";

const HTML = "text/html; charset=utf-8";
const hash = (s) => createHash("sha256").update(s).digest("hex");
function entries(n) {
  const out = {};
  for (let i = 0; i < n; i++) out[`/section-${i % 100}/page-${i}.html`] = { hash: hash(String(i)), size: 700, content_type: HTML };
  return out;
}
function pow2(n) {
  let s = 1;
  while (s < n) s *= 2;
  return s;
}
function parseMs(text) {
  const t = [];
  for (let r = 0; r < 200; r++) {
    const a = process.hrtime.bigint();
    const m = new Map(Object.entries(JSON.parse(text).files));
    if (m.size < 0) throw new Error();
    t.push(Number(process.hrtime.bigint() - a) / 1e6);
  }
  t.sort((x, y) => x - y);
  return t[100];
}
console.log("| paths/shard | files | shards | shard bytes | route hashes | written by a 1-file change | cold parse (ms) |");
console.log("|---|---|---|---|---|---|---|");
for (const per of [32, 64, 128, 256, 512]) {
  for (const files of [4000, 100000]) {
    const shards = Math.min(256, pow2(Math.ceil(files / per)));
    const shard = JSON.stringify({ files: entries(Math.ceil(files / shards)) });
    const list = shards * 67;
    // The shard, the copy and the head (each a Route with the list, ~600 B besides), the
    // intent (the changed shard's blobs and every shard hash).
    const written = shard.length + 2 * (list + 600) + (Math.ceil(files / shards) * 67 + list + 300);
    console.log(`| ${per} | ${files} | ${shards} | ${shard.length} | ${list} | ${written} | ${parseMs(shard).toFixed(3)} |`);
  }
}
