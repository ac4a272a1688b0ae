#!/usr/bin/env bash
# Checks that every citation of a reference document in the code points inside the repository
# (docs/) or upstream, and that every cited section exists. Exit 0 when clean; exit 1 listing each
# offending file:line.
#
# Scanned: src/ emulator/ worker/ tests/ benches/ (not node_modules/ or target/).
# Rules:
#  1. cloudflare-api.md, CLI.md, DESIGN.md, peers.md, STYLE.md and static-hosting.md (any case) may
#     only be cited as docs/<lowercase name> (e.g. docs/cloudflare-api.md, docs/cli.md), or inside an
#     upstream URL (https://…/STYLE.md). The team's notes outside the repository (../shared/…) are
#     not citable: a successor cannot read them.
#  2. The cited docs/ file exists.
#  3. docs/cloudflare-api.md §N and docs/peers.md §N name a section that exists (a "## N." heading
#     of that file). A "§N" at the start of the next line counts as part of a citation that the
#     line break split.
#  4. "open question N" names a question that docs/cloudflare-api.md "## Open questions" lists.
#
# Usage: scripts/check-citations.sh [--fix] [ROOT]   (ROOT defaults to the repository this script is in)
#
# --fix first applies the rewrite below, which made the code pass (issue 21), then checks. It is
# for redoing after a merge brings in old-style citations. It touches comments only in practice
# (the names occur nowhere else); review the result with `git diff` before committing. The same
# commands, to run by hand:
#
#   files=$(grep -rlE --exclude-dir=node_modules --exclude-dir=target \
#       '(cloudflare-api|CLI|DESIGN|peers|STYLE|static-hosting)\.md' src emulator worker tests benches)
#   B='(^|[^/[:alnum:]_.-])'
#   sed -E -i \
#     -e 's#\.\./\.\./\.\./shared/cloudflare-api\.md \(read-only\)#docs/cloudflare-api.md#g' \
#     -e "s#${B}cloudflare-api\.md#\1docs/cloudflare-api.md#g" \
#     -e "s#${B}peers\.md#\1docs/peers.md#g" \
#     -e "s#${B}static-hosting\.md#\1docs/static-hosting.md#g" \
#     -e "s#${B}CLI\.md \(beside DESIGN\.md\)#\1docs/cli.md#g" \
#     -e "s#${B}CLI\.md#\1docs/cli.md#g" \
#     -e "s#${B}DESIGN\.md: a create#\1docs/design.md \"The REST client\": a create#g" \
#     -e "s#${B}DESIGN\.md#\1docs/design.md#g" \
#     -e "s#${B}STYLE\.md §26#\1docs/design.md \"Two backends, one type\"#g" \
#     $files
#   scripts/check-citations.sh
#
# Where the old names' sections went: cloudflare-api.md §N and peers.md §N keep their numbers in
# docs/; DESIGN.md's headings ("Safety", "Two APIs, one bucket", "Data flow", "The emulator") are
# headings of docs/design.md; CLI.md is docs/cli.md; STYLE.md's advice is docs/design.md "How the
# code is written" (§26, the storage shape, is docs/design.md "Two backends, one type");
# static-hosting.md is docs/static-hosting.md. Another STYLE.md §N needs a hand edit: point it at
# docs/design.md "How the code is written" or at the upstream repository it names.

set -euo pipefail

fix=0
if [ "${1:-}" = "--fix" ]; then fix=1; shift; fi
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"

if [ "$fix" = 1 ]; then
    scan=()
    for d in src emulator worker tests benches; do [ -d "$d" ] && scan+=("$d"); done
    files=$(grep -rlE --exclude-dir=node_modules --exclude-dir=target \
        '(cloudflare-api|CLI|DESIGN|peers|STYLE|static-hosting)\.md' "${scan[@]}" || true)
    B='(^|[^/[:alnum:]_.-])'
    if [ -n "$files" ]; then
        # shellcheck disable=SC2086 # one file name per word
        sed -E -i \
          -e 's#\.\./\.\./\.\./shared/cloudflare-api\.md \(read-only\)#docs/cloudflare-api.md#g' \
          -e "s#${B}cloudflare-api\.md#\1docs/cloudflare-api.md#g" \
          -e "s#${B}peers\.md#\1docs/peers.md#g" \
          -e "s#${B}static-hosting\.md#\1docs/static-hosting.md#g" \
          -e "s#${B}CLI\.md \(beside DESIGN\.md\)#\1docs/cli.md#g" \
          -e "s#${B}CLI\.md#\1docs/cli.md#g" \
          -e "s#${B}DESIGN\.md: a create#\1docs/design.md \"The REST client\": a create#g" \
          -e "s#${B}DESIGN\.md#\1docs/design.md#g" \
          -e "s#${B}STYLE\.md §26#\1docs/design.md \"Two backends, one type\"#g" \
          $files
    fi
fi

dirs=()
for d in src emulator worker tests benches; do
    [ -d "$d" ] && dirs+=("$d")
done

# Section numbers of a docs file: its "## N. …" headings.
sections() {
    [ -f "$1" ] && sed -nE 's/^## ([0-9]+)\..*/\1/p' "$1" | tr '\n' ' '
}
# Open-question numbers: the "N." items under "## Open questions".
questions() {
    [ -f "$1" ] && awk '/^## Open questions/{on=1; next} /^## /{on=0} on && /^[0-9]+\. /{sub(/\..*/, ""); printf "%s ", $0}' "$1"
}

api_sections=$(sections docs/cloudflare-api.md || true)
peers_sections=$(sections docs/peers.md || true)
api_questions=$(questions docs/cloudflare-api.md || true)
existing_docs=$(cd docs 2>/dev/null && ls -1 ./*.md 2>/dev/null | sed 's#^\./##' | tr '\n' ' ' || true)

[ ${#dirs[@]} -gt 0 ] || { echo "check-citations: nothing to scan under $root" >&2; exit 1; }

problems=$(
    grep -rnIiE --exclude-dir=node_modules --exclude-dir=target --exclude-dir=.git -A1 \
        '(cloudflare-api|cli|design|peers|style|static-hosting)\.md|open questions? [0-9]' \
        "${dirs[@]}" 2>/dev/null |
    awk -v api="$api_sections" -v peers="$peers_sections" -v qs="$api_questions" \
        -v docs="$existing_docs" '
    function has(list, x,    n, a, i) { n = split(list, a, " "); for (i = 1; i <= n; i++) if (a[i] == x) return 1; return 0 }
    function flag(where, msg) { print where ": " msg }
    # Checks each "§N" of the run that starts at s (up to the end of its parenthesis, clause or quote).
    function check_sections(s, list, name, where,    run, m) {
        run = s
        sub(/[);:"].*$/, "", run)
        while (match(run, /§ ?[0-9]+/)) {
            m = substr(run, RSTART, RLENGTH); gsub(/[^0-9]/, "", m)
            if (!has(list, m)) flag(where, "docs/" name " §" m " does not exist")
            run = substr(run, RSTART + RLENGTH)
        }
    }
    # grep prints a match as "path:N:text" and the context line after it as "path-N-text".
    {
        if ($0 == "--") { next }
        if (have && index($0, path "-" (num + 1) "-") == 1) {
            check(path ":" num, text, substr($0, length(path "-" (num + 1) "-") + 1))
            have = 0; next
        }
        if (have) {
            # The next line is itself a match: it is still the continuation of this one.
            nt = (index($0, path ":" (num + 1) ":") == 1) ? substr($0, length(path ":" (num + 1) ":") + 1) : ""
            check(path ":" num, text, nt); have = 0
        }
        if (match($0, /:[0-9]+:/)) {
            path = substr($0, 1, RSTART - 1); num = substr($0, RSTART + 1, RLENGTH - 2) + 0
            text = substr($0, RSTART + RLENGTH); have = 1
        }
    }
    END { if (have) check(path ":" num, text, "") }
    function check(where, line, next_text,    want, lower, rest, lrest, tok, name, base, after, tail, list, q) {
        rest = line; lrest = tolower(line)
        # Rules 1 and 2: every mention of a reference name (matched in lower case, reported as written).
        while (match(lrest, /[^ \t`("\[<]*(cloudflare-api|cli|design|peers|style|static-hosting)\.md/)) {
            tok = substr(rest, RSTART, RLENGTH)
            after = substr(rest, RSTART + RLENGTH)
            rest = after; lrest = substr(lrest, RSTART + RLENGTH)
            sub(/^\x27/, "", tok)
            name = tok; sub(/^.*\//, "", name)
            base = tolower(name)
            if (base !~ /^(cloudflare-api|cli|design|peers|style|static-hosting)\.md$/) continue
            if (tok ~ /:\/\//) continue
            if (tok !~ /(^|\/)docs\/[a-z-]+\.md$/ || name != base) {
                want = (base == "style.md") ? "docs/design.md \"How the code is written\"" : "docs/" base
                flag(where, "cites " tok ": cite " want " (inside the repository) or an upstream URL")
                continue
            }
            if (!has(docs, base)) { flag(where, "cites " tok ", which does not exist"); continue }
            # Rule 3: sections. A citation that ends its line may continue on the next.
            if (base == "cloudflare-api.md" || base == "peers.md") {
                list = (base == "cloudflare-api.md") ? api : peers
                tail = after
                if (tail ~ /^[[:space:]`]*$/ && next_text != "") {
                    tail = next_text
                    sub(/^[[:space:]]*(\/\/[!\/]?|#|\*)?[[:space:]]*/, "", tail)
                    if (tail !~ /^§/) tail = ""
                } else if (tail !~ /^[^[:alnum:]]?[^[:alnum:]]?[^[:alnum:]]?§/) tail = ""
                if (tail != "") check_sections(tail, list, base, where)
            }
        }
        # Rule 4: open questions.
        rest = line
        while (match(rest, /open questions? [0-9]+/)) {
            q = substr(rest, RSTART, RLENGTH); gsub(/[^0-9]/, "", q)
            if (!has(qs, q)) flag(where, "open question " q " is not in docs/cloudflare-api.md \"Open questions\"")
            rest = substr(rest, RSTART + RLENGTH)
        }
    }'
)

if [ -n "$problems" ]; then
    printf '%s\n' "$problems"
    echo "check-citations: $(printf '%s\n' "$problems" | wc -l) problem(s); see the header of $0" >&2
    exit 1
fi
echo "check-citations: every citation points into docs/ or upstream, and every cited section exists"
