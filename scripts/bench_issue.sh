#!/usr/bin/env bash
# Coupon-issue benchmark of one strategy against a release build (not a test), plus the
# consumer's drain rate for redis-lua.
# Usage: scripts/bench_issue.sh <redis-lua|db-pessimistic|db-optimistic|redis-lock> [users] [connections]
# Needs DATABASE_URL (a scratch database), REDIS_URL, JUPANG_JWT_SECRET and psql. Makes sure
# users 1..N exist and writes their tokens to target/bench_tokens.csv, then for the strategy:
#   1. an open run: N requests, every 5th a double click, for N/10 coupons;
#   2. N requests of distinct users for N coupons (every one a success);
#   3. redis-lua only: N issued with no consumer, then a consumer starts; the time until
#      Postgres holds all N is the drain rate.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
STRATEGY=$1; USERS=${2:-20000}; CONNS=${3:-64}
LISTEN=${JUPANG_BENCH_LISTEN:-127.0.0.1:18432}
export JUPANG_REDIS_PREFIX=${JUPANG_REDIS_PREFIX:-bench-issue} RUST_LOG=warn
cargo build --release --locked --bin jupang --example issue_bench >/dev/null 2>&1
J=target/release/jupang
B=target/release/examples/issue_bench
TOKENS=target/bench_tokens.csv
$J migrate 2>/dev/null
$J seed --users "$USERS" --users-only >/dev/null 2>&1
[ -f "$TOKENS" ] && [ "$(wc -l <"$TOKENS")" -gt "$USERS" ] || $J token --users "1..$USERS" --out "$TOKENS"
PID=
serve() { # workers
  JUPANG_LISTEN=$LISTEN JUPANG_ISSUE_STRATEGY=$STRATEGY JUPANG_WORKERS=$1 $J serve 2>target/bench_serve.log &
  PID=$!
  for _ in $(seq 1 100); do curl -fs "http://$LISTEN/ready" >/dev/null && return; sleep 0.1; done
  echo "serve did not become ready; see target/bench_serve.log" >&2; exit 1
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; }
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null || true' EXIT
coupon() { # total
  curl -fs -H "authorization: Bearer $($J token --user 1 --role marketing_manager)" -H 'content-type: application/json' \
    "http://$LISTEN/api/admin/coupons" -d "{\"name\":\"bench\",\"discount_type\":\"FIXED\",\"discount_value\":1000,\
\"market\":\"KR\",\"total_quantity\":$1,\"issue_starts_at\":\"2020-01-01T00:00:00Z\",\
\"issue_ends_at\":\"2099-01-01T00:00:00Z\",\"valid_days\":7}" | sed 's/.*"id":\([0-9]*\).*/\1/'
}
persisted() { psql -qtA "$DATABASE_URL" -c "SELECT count(*) FROM user_coupons WHERE coupon_id = $1"; }
WORKERS=none; [ "$STRATEGY" = redis-lua ] && WORKERS=consumer
serve $WORKERS
C=$(coupon $((USERS / 10)))
echo "== $STRATEGY open run: $USERS requests (every 5th a double click) for $((USERS / 10)) coupons, $CONNS connections"
$B "http://$LISTEN" "$C" "$TOKENS" "$USERS" "$CONNS" 5
C=$(coupon "$USERS")
echo "== $STRATEGY all successes: $USERS requests for $USERS coupons, $CONNS connections"
$B "http://$LISTEN" "$C" "$TOKENS" "$USERS" "$CONNS"
stop
if [ "$STRATEGY" = redis-lua ]; then
  serve none
  C=$(coupon "$USERS")
  $B "http://$LISTEN" "$C" "$TOKENS" "$USERS" "$CONNS" >/dev/null
  stop
  START=$(date +%s.%N)
  serve consumer
  until [ "$(persisted "$C")" = "$USERS" ]; do sleep 0.05; done
  END=$(date +%s.%N)
  stop
  echo "== drain: $USERS admissions persisted in $(awk "BEGIN { printf \"%.2f\", $END - $START }") s (process start included)"
fi
