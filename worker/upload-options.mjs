// Turns a Worker as it was uploaded (the `metadata` and module parts of
// PUT …/workers/scripts/{name}) into Miniflare options, and copies a bucket's objects into the
// bound R2 buckets. Shared by worker/test/e2e-runner.mjs (the Rust end-to-end test) and
// worker/serve.mjs (`cfsetup demo --serve`), so both run the upload the same way.

export class Failure extends Error {}

export function fail(message) {
  throw new Failure(message);
}

// Module content types of the upload (wrangler `moduleTypeMimeType`) → Miniflare module types.
const MODULE_TYPES = {
  "application/javascript+module": "ESModule",
  "text/javascript+module": "ESModule",
  "application/javascript": "CommonJS",
  "text/javascript": "CommonJS",
  "text/plain": "Text",
  "application/octet-stream": "Data",
  "application/wasm": "CompiledWasm",
};

/**
 * Miniflare options for `script` ({main_module, compatibility_date, compatibility_flags?,
 * modules: [{name, content_type, …}], bindings: [{type, name, …}]}), offline (`cf: false`).
 * `contents(module, index)` gives each module's bytes. The main module goes first (Miniflare takes
 * the first as the entry point); r2_bucket, plain_text and json bindings are kept, secret_text is
 * dropped, any other type fails.
 */
export function workerOptions(script, contents) {
  if (!script || typeof script !== "object") fail("the script is missing");
  const modules = Array.isArray(script.modules) ? script.modules : fail("script.modules is missing");
  const main = script.main_module || fail("script.main_module is missing");
  const converted = modules.map((m, i) => {
    if (!m || typeof m.name !== "string" || !m.name) fail(`script.modules[${i}]: no name`);
    const ct = String(m.content_type || "").split(";")[0].trim().toLowerCase();
    const type = MODULE_TYPES[ct] || fail(`module ${m.name}: unsupported content_type ${m.content_type}`);
    // Module paths are resolved under modulesRoot: give them absolute paths there.
    return { type, path: "/" + m.name.replace(/^\/+/, ""), contents: contents(m, i) };
  });
  const mainIndex = converted.findIndex((m) => m.path === "/" + main.replace(/^\/+/, ""));
  if (mainIndex < 0) fail(`main_module ${main} is not among script.modules`);
  converted.unshift(...converted.splice(mainIndex, 1));

  const r2Buckets = {};
  const bindings = {};
  for (const [i, b] of (script.bindings || []).entries()) {
    if (!b || typeof b.name !== "string" || !b.name) fail(`script.bindings[${i}]: no name`);
    switch (b.type) {
      case "r2_bucket":
        if (typeof b.bucket_name !== "string" || !b.bucket_name) fail(`binding ${b.name}: no bucket_name`);
        r2Buckets[b.name] = b.bucket_name;
        break;
      case "plain_text":
        if (typeof b.text !== "string") fail(`binding ${b.name}: plain_text without text`);
        bindings[b.name] = b.text;
        break;
      case "json":
        bindings[b.name] = b.json;
        break;
      case "secret_text":
        break;
      default:
        fail(`binding ${b.name}: unsupported type ${b.type}`);
    }
  }

  return {
    modules: converted,
    modulesRoot: "/",
    compatibilityDate: script.compatibility_date || "2025-01-01",
    compatibilityFlags: Array.isArray(script.compatibility_flags) ? script.compatibility_flags : [],
    r2Buckets,
    bindings,
    cf: false, // stay offline: no fetch of workers.cloudflare.com/cf.json
  };
}

/**
 * Puts `buckets` ({"<bucket_name>": [{key, content_type?, …}]}) into the R2 buckets that
 * `r2Buckets` (binding → bucket name) binds; `body(object)` gives each object's bytes. A bucket no
 * binding names is skipped with a note on stderr, prefixed with `who`.
 */
export async function seedBuckets(mf, r2Buckets, buckets, body, who) {
  const bindingFor = Object.fromEntries(
    Object.entries(r2Buckets).map(([binding, bucket]) => [bucket, binding]),
  );
  for (const [bucketName, objects] of Object.entries(buckets || {})) {
    const binding = bindingFor[bucketName];
    if (!binding) {
      process.stderr.write(`${who}: bucket ${bucketName} is not bound; skipping its objects\n`);
      continue;
    }
    const bucket = await mf.getR2Bucket(binding);
    for (const [i, o] of (objects || []).entries()) {
      if (!o || typeof o.key !== "string" || !o.key) fail(`buckets.${bucketName}[${i}]: no key`);
      const httpMetadata = o.content_type ? { contentType: o.content_type } : undefined;
      await bucket.put(o.key, body(o), { httpMetadata });
    }
  }
}
