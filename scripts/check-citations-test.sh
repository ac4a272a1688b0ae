#!/usr/bin/env bash
# Tests scripts/check-citations.sh on small trees made here, against the repository's real docs/:
# every kind of bad citation is reported with its file:line and exit 1; --fix turns old-style
# citations into ones that pass; a clean tree passes with exit 0. Run by scripts/test.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
check="$here/check-citations.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "check-citations-test: $*" >&2; exit 1; }

tree() { rm -rf "$tmp/t"; mkdir -p "$tmp/t/src" "$tmp/t/tests"; cp -r "$repo/docs" "$tmp/t/docs"; }

# 1. Bad citations: each reported, at its line.
tree
cat > "$tmp/t/src/a.rs" <<'EOF'
//! fine (docs/cloudflare-api.md §7 "Limits"), (docs/cloudflare-api.md §2, §3 and §4), docs/peers.md §5.
//! a section that does not exist (docs/cloudflare-api.md §12).
//! a citation split by the line break, fine: docs/cloudflare-api.md
//! §11 "Does auth come first".
//! split, and wrong: (docs/cloudflare-api.md
//! §13).
//! docs/peers.md §3, §9
//! docs/CLI.md, a bare DESIGN.md "Safety", and STYLE.md §26
//! ../../../shared/cloudflare-api.md (read-only)
//! upstream is fine: https://github.com/casey/just/blob/master/STYLE.md
//! docs/static-hosting.md, docs/design.md "Safety" and docs/cli.md are fine
//! open question 8 is fine, open question 13 is not
//! docs/style.md does not exist
EOF
printf '%s\n' '"""Facts: cloudflare-api.md §1."""' > "$tmp/t/tests/b.py"
set +e
out=$("$check" "$tmp/t" 2>/dev/null)
status=$?
set -e
[ "$status" = 1 ] || fail "bad tree: exit $status, expected 1"
expected='src/a.rs:2: docs/cloudflare-api.md §12 does not exist
src/a.rs:5: docs/cloudflare-api.md §13 does not exist
src/a.rs:7: docs/peers.md §9 does not exist
src/a.rs:8: cites docs/CLI.md: cite docs/cli.md (inside the repository) or an upstream URL
src/a.rs:8: cites DESIGN.md: cite docs/design.md (inside the repository) or an upstream URL
src/a.rs:8: cites STYLE.md: cite docs/design.md "How the code is written" (inside the repository) or an upstream URL
src/a.rs:9: cites ../../../shared/cloudflare-api.md: cite docs/cloudflare-api.md (inside the repository) or an upstream URL
src/a.rs:12: open question 13 is not in docs/cloudflare-api.md "Open questions"
src/a.rs:13: cites docs/style.md, which does not exist
tests/b.py:1: cites cloudflare-api.md: cite docs/cloudflare-api.md (inside the repository) or an upstream URL'
[ "$out" = "$expected" ] || fail "bad tree: got
$out
expected
$expected"

# 2. --fix rewrites old-style citations (the forms the code used before docs/ existed).
tree
cat > "$tmp/t/src/c.rs" <<'EOF'
//! Facts (cloudflare-api.md §7 "Limits"; peers.md §3), CLI.md (beside DESIGN.md) is the contract.
//! - DESIGN.md: a create is never repeated blindly; DESIGN.md "Safety"; as STYLE.md §26 suggests.
//! Already fine: docs/cloudflare-api.md §1.
EOF
printf '%s\n' 'Facts: ../../../shared/cloudflare-api.md (read-only) and peers.md §5' > "$tmp/t/tests/d.py"
"$check" --fix "$tmp/t" >/dev/null || fail "--fix left problems: $("$check" "$tmp/t" 2>&1)"
want='//! Facts (docs/cloudflare-api.md §7 "Limits"; docs/peers.md §3), docs/cli.md is the contract.
//! - docs/design.md "The REST client": a create is never repeated blindly; docs/design.md "Safety"; as docs/design.md "Two backends, one type" suggests.
//! Already fine: docs/cloudflare-api.md §1.'
[ "$(cat "$tmp/t/src/c.rs")" = "$want" ] || fail "--fix wrote: $(cat "$tmp/t/src/c.rs")"
[ "$(cat "$tmp/t/tests/d.py")" = 'Facts: docs/cloudflare-api.md and docs/peers.md §5' ] \
    || fail "--fix wrote: $(cat "$tmp/t/tests/d.py")"
# Every heading --fix points at exists in docs/design.md.
for h in "The REST client" "Two backends, one type" "Safety" "Two APIs, one bucket"; do
    grep -qE "^#+ $h\$" "$repo/docs/design.md" || fail "docs/design.md has no heading \"$h\""
done

# 3. The repository itself is clean.
"$check" "$repo" >/dev/null || fail "the repository has citation problems: run scripts/check-citations.sh"
echo "check-citations-test: ok"
