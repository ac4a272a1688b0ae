#!/usr/bin/env bash
# The SDK-driven tests: the official Cloudflare Python SDK and boto3 (clients no one here wrote)
# against `cfsetup emulator`. Installs the pinned packages (tests/sdk/requirements.txt) into a
# throwaway virtualenv under target/, then runs pytest. Python 3 is required: without it this fails,
# it never skips.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v python3 >/dev/null 2>&1; then
  echo "error: python3 is not installed; the SDK tests need Python 3.9 or newer with the venv module" >&2
  exit 1
fi
target="${CARGO_TARGET_DIR:-target}"
venv="$target/sdk-venv"
stamp="$venv/.requirements"
if [ ! -x "$venv/bin/python" ] || ! cmp -s tests/sdk/requirements.txt "$stamp"; then
  echo "==> python3 -m venv $venv (pinned: tests/sdk/requirements.txt)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
  cp tests/sdk/requirements.txt "$stamp"
fi
cargo build --locked --quiet --bin cfsetup
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/sdk "$@"
