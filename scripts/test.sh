#!/usr/bin/env bash
# Runs every test of cfsetup: the Rust tests (unit, client, CLI, end-to-end) and the router
# Worker's tests in miniflare. This is the README's test command, and what CI runs (.ci/run).
# It installs the Worker's npm dependencies itself, from worker/package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f worker/node_modules/.package-lock.json ] \
   || [ worker/package-lock.json -nt worker/node_modules/.package-lock.json ]; then
  echo "==> npm ci --prefix worker"
  npm ci --prefix worker --no-audit --no-fund
fi

echo "==> citations point into docs/ (scripts/check-citations.sh and its own test)"
scripts/check-citations-test.sh

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "==> cargo test"
# The miniflare end-to-end test skips without worker/node_modules on a plain `cargo test`; here the
# modules were installed above, so it must run.
CFSETUP_E2E=required cargo test --workspace --locked

echo "==> worker tests (miniflare)"
npm test --prefix worker

echo "==> SDK tests (official Cloudflare Python SDK and boto3 against the emulator)"
scripts/sdk-tests.sh
