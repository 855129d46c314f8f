#!/usr/bin/env bash
# Coupon issue throughput on 1 Redis master vs Redis Cluster (3 masters), the same load in the
# same run: `jupang loadgen open-run --sales K` (K fresh coupons, whose keys carry one hash tag
# each and so spread over the cluster's slots; each person presses one of them) against a fresh
# `jupang serve` on the single Redis, then on the cluster, ROUNDS times alternating; one
# Markdown table on stdout. The loadgen, Postgres and both Redis topologies share this machine:
# on 2 cores the 3 masters compete for the same CPU as `serve`, so the table shows what the
# cluster costs per request here, not what 3 machines would add.
#
# Usage: scripts/cluster-bench.sh            (PEOPLE, SALES, COUPONS, CONNECTIONS, ROUNDS to scale;
#                                             PROFILE=dev to use the debug build, indicative only;
#                                             BIN=path to measure a binary built before)
# Postgres and the single Redis as for the tests (scripts/services.sh up); the cluster is
# JUPANG_TEST_REDIS_CLUSTER_URL if set, else the private one (`scripts/services.sh up --cluster`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PEOPLE=${PEOPLE:-40000}
SALES=${SALES:-64}
COUPONS=${COUPONS:-200}
CONNECTIONS=${CONNECTIONS:-64}
ROUNDS=${ROUNDS:-2}
PROFILE=${PROFILE:-release}
scripts/services.sh up >&2
eval "$(scripts/services.sh env)"
SINGLE_URL=$REDIS_URL
if [ -z "${JUPANG_TEST_REDIS_CLUSTER_URL:-}" ]; then
  scripts/services.sh up --cluster >&2
  JUPANG_TEST_REDIS_CLUSTER_URL="$(REDIS_URL='' scripts/services.sh env --cluster | sed -n 's/^export REDIS_URL=//p' | tr -d '\\')"
fi
CLUSTER_URL=$JUPANG_TEST_REDIS_CLUSTER_URL
export JUPANG_JWT_SECRET=${JUPANG_JWT_SECRET:-benchmark-secret-benchmark-secret} RUST_LOG=warn
unset JUPANG_WORKERS JUPANG_ISSUE_STRATEGY JUPANG_ORDER_STRATEGY JUPANG_REDIS_PREFIX JUPANG_TEST_REDIS_CLUSTER_URL
case "${BIN:+prebuilt}${BIN:-$PROFILE}" in
  prebuilt*) J=$BIN ;;
  release) cargo build --release --locked --bin jupang >&2; J=target/release/jupang ;;
  dev) cargo build --locked --bin jupang >&2; J=target/debug/jupang ;;
  *) echo "PROFILE must be release or dev" >&2; exit 2 ;;
esac
$J migrate >&2
TMP=$(mktemp -d)
PID=
PREFIXES=()
# Each run has a key prefix of its own; its keys are deleted at the end, node by node (on the
# cluster a key is deleted through the node that serves its slot: `redis-cli -c`).
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null
  for p in "${PREFIXES[@]}"; do
    for url in ${SINGLE_URL} ${CLUSTER_URL//,/ }; do
      redis-cli -u "$url" --scan --pattern "$p:*" 2>/dev/null | xargs -r -n 1 redis-cli -c -u "$url" DEL >/dev/null 2>&1 || true
    done
  done
  rm -rf "$TMP"
}
trap cleanup EXIT

serve() { # port, REDIS_URL, prefix
  REDIS_URL=$2 JUPANG_REDIS_PREFIX=$3 JUPANG_LISTEN=127.0.0.1:$1 $J serve 2>>"$TMP/serve.log" &
  PID=$!
  for _ in $(seq 300); do curl -fs "http://127.0.0.1:$1/ready" >/dev/null && return; sleep 0.1; done
  echo "serve did not become ready: $(tail -5 "$TMP/serve.log")" >&2
  exit 1
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=; }

row() { # topology, masters, report.json
  jq -r --arg t "$1" --arg m "$2" '[$t, $m, (.load.throughput_rps | floor), .load.latency.p50_ms, .load.latency.p99_ms,
      "\(.issued) / \(.expected_issued)", .people_issued_twice, (if .verdict.passed then "pass" else "FAIL" end)]
    | "| " + (map(tostring) | join(" | ")) + " |"' "$3"
}

echo "| Redis | masters | issue requests/s | p50 ms | p99 ms | issued / expected | issued twice | verdict |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
for round in $(seq "$ROUNDS"); do
  for topology in single cluster; do
    if [ "$topology" = single ]; then url=$SINGLE_URL masters=1; else url=$CLUSTER_URL masters=3; fi
    prefix="cbench$$r$round$topology"
    PREFIXES+=("$prefix")
    echo "cluster-bench: round $round, $topology" >&2
    serve 18611 "$url" "$prefix"
    # The verdict is part of the row; a failed one must not stop the other runs.
    $J loadgen open-run --target http://127.0.0.1:18611 --people "$PEOPLE" --coupons "$COUPONS" --sales "$SALES" \
      --connections "$CONNECTIONS" --json --quiet >"$TMP/$round-$topology.json" || true
    stop
    row "$topology" "$masters" "$TMP/$round-$topology.json"
  done
done
echo
echo "$PEOPLE people (20% double-clicking) over $SALES coupons of $COUPONS each, $CONNECTIONS connections," \
  "$PROFILE build, one \`jupang serve\` with every worker; $(nproc) cores; $(date -u +%Y-%m-%dT%H:%MZ)."
