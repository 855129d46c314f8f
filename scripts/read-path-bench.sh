#!/usr/bin/env bash
# The read path during a sale (issue 12), ROUNDS times, each round on a fresh database with the
# demo catalog (`jupang seed --users 1000`) and a fresh `jupang serve`:
#   1. `browse`: GET /health, the listing mix and product pages, one after the other (SECS each,
#      64 connections, steady state after the default warm-up);
#   2. `mixed` (SECS, 32 connections): 60% list, 20% page, 10% cart add, 6% order, 4% payment;
#   3. `browse --with-open-run`: the same reads while a coupon open run of 100,000 people sends
#      OPEN_RATE presses/s at the same process (the ceiling is measured under it too);
#   4. `mixed` while a separate `open-run` sends OPEN_RATE presses/s at the same process.
# One Markdown table per measure on stdout, a row per round and the median. Postgres, Redis,
# the load generator and `serve` share this machine: compare ratios within a round.
#
# Usage: scripts/read-path-bench.sh   (ROUNDS=3 SECS=8 OPEN_RATE=5000; BIN=path to measure a
#                                      binary built before, else a release build)
# Postgres and Redis as for the tests (scripts/services.sh up).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-8}
OPEN_RATE=${OPEN_RATE:-5000}
scripts/services.sh up >&2
eval "$(scripts/services.sh env)"
export JUPANG_JWT_SECRET=${JUPANG_JWT_SECRET:-benchmark-secret-benchmark-secret} RUST_LOG=warn
unset JUPANG_WORKERS JUPANG_ISSUE_STRATEGY JUPANG_ORDER_STRATEGY JUPANG_REDIS_PREFIX JUPANG_TEST_REDIS_CLUSTER_URL
if [ -n "${BIN:-}" ]; then
  J=$BIN
else
  cargo build --release --locked --bin jupang >&2
  J=target/release/jupang
fi
ADMIN_URL=${DATABASE_URL%/*}/postgres
TMP=$(mktemp -d)
PID=
DB=
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  [ -n "$DB" ] && psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1
  rm -rf "$TMP"
}
trap cleanup EXIT
PORT=18631
T=http://127.0.0.1:$PORT

for round in $(seq "$ROUNDS"); do
  echo "read-path-bench: round $round" >&2
  DB=readbench_$$_$round
  psql -q "$ADMIN_URL" -c "CREATE DATABASE $DB" >/dev/null
  export DATABASE_URL=${ADMIN_URL%/*}/$DB JUPANG_REDIS_PREFIX=rb$$r$round
  $J migrate >&2
  $J seed --users 1000 >&2
  JUPANG_LISTEN=127.0.0.1:$PORT $J serve 2>>"$TMP/serve.log" &
  PID=$!
  for _ in $(seq 300); do curl -fs "$T/ready" >/dev/null && break; sleep 0.1; done
  # A failed verdict is part of the table; it must not stop the other measures.
  $J loadgen browse --target $T --duration-secs "$SECS" --connections 64 --json >"$TMP/browse$round.json" || true
  $J loadgen mixed --target $T --users 1000 --duration-secs "$SECS" --connections 32 --json >"$TMP/mixed$round.json" || true
  $J loadgen browse --target $T --duration-secs "$SECS" --connections 64 --with-open-run \
    --open-people 100000 --open-rate "$OPEN_RATE" --json >"$TMP/browse-open$round.json" || true
  # Arrivals for the whole mixed run and its setup.
  $J loadgen open-run --target $T --people $((OPEN_RATE * (SECS + 6))) --coupons 1000 --rate "$OPEN_RATE" \
    --json >"$TMP/open$round.json" 2>/dev/null &
  OPEN=$!
  sleep 2
  $J loadgen mixed --target $T --users 1000 --duration-secs "$SECS" --connections 32 --json >"$TMP/mixed-open$round.json" || true
  wait $OPEN || true
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
  psql -q "$ADMIN_URL" -c "DROP DATABASE $DB" >/dev/null; DB=
done

browse_table() { # title, file prefix
  echo; echo "### $1"; echo
  echo "| round | GET /health req/s | list req/s | list × ceiling | list p99 ms | page req/s | page × ceiling | page p99 ms | verdict |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
  for round in $(seq "$ROUNDS"); do
    jq -r --arg r "$round" '[$r, (.rows[0].throughput_rps | floor), (.rows[1].throughput_rps | floor),
        (.rows[1].ratio_to_ceiling * 100 | round / 100), (.rows[1].p99_ms * 10 | round / 10),
        (.rows[2].throughput_rps | floor), (.rows[2].ratio_to_ceiling * 100 | round / 100),
        (.rows[2].p99_ms * 10 | round / 10), (if .passed then "pass" else "FAIL" end)]
      | "| " + (map(tostring) | join(" | ")) + " |"' "$TMP/$2$round.json"
  done
  jq -rs '[(map(.rows[1].ratio_to_ceiling) | sort | .[length / 2 | floor]),
           (map(.rows[1].p99_ms) | sort | .[length / 2 | floor]),
           (map(.rows[2].ratio_to_ceiling) | sort | .[length / 2 | floor]),
           (map(.rows[2].p99_ms) | sort | .[length / 2 | floor])] | map(. * 100 | round / 100)
      | "| median | | | \(.[0]) | \(.[1]) | | \(.[2]) | \(.[3]) | |"' "$TMP"/"$2"[0-9]*.json
}
mixed_table() { # title, file prefix
  echo; echo "### $1"; echo
  echo "| round | req/s | × 1,652 | list p99 | page p99 | cart add p99 | order p99 | payment p99 | 5xx | verdict |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
  for round in $(seq "$ROUNDS"); do
    jq -r --arg r "$round" 'def p99($name): (.load.routes[] | select(.route | test($name)) | .latency.p99_ms * 10 | round / 10) // "-";
      [$r, (.load.throughput_rps | floor), (.load.throughput_rps / 1652 * 100 | round / 100),
       p99("GET /api/products$"), p99("GET /api/products/"), p99("cart"), p99("POST /api/orders$"), p99("payment"),
       ([.load.outcomes[] | select(.status >= 500) | .count] | add // 0),
       (if .verdict.passed then "pass" else "FAIL" end)]
      | "| " + (map(tostring) | join(" | ")) + " |"' "$TMP/$2$round.json"
  done
  jq -rs 'map(.load.throughput_rps) | sort | .[length / 2 | floor] | "| median | \(floor) | \(. / 1652 * 100 | round / 100) | | | | | | | |"' \
    "$TMP"/"$2"[0-9]*.json
}
echo "Read path, $ROUNDS rounds of $SECS s per phase, open runs at $OPEN_RATE presses/s ($(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end)"
browse_table "browse (64 connections)" browse
mixed_table "mixed (32 connections)" mixed
browse_table "browse while a coupon open run hammers the same process" browse-open
mixed_table "mixed while a coupon open run hammers the same process" mixed-open
