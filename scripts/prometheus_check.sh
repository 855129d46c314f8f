#!/usr/bin/env bash
# Points a temporary Prometheus at a running `jupang serve` and says which of the contract's
# metrics it sees (api.md, Metrics). Nothing of the system's Prometheus is used or touched: the
# binary runs on a free port with its data in a temporary directory, removed on exit.
#
#   scripts/prometheus_check.sh [SERVE_URL]     default http://127.0.0.1:8080
#
# Exits 0 when Prometheus scrapes the target (up == 1) and sees every metric, 1 otherwise;
# coupon_remaining{coupon_id} only exists once a coupon has been issued, so it is reported but
# not required. PROMETHEUS (default: prometheus on the PATH) and CHECK_TIMEOUT_SECS (default 30)
# adjust it.
set -euo pipefail

URL="${1:-http://127.0.0.1:8080}"
TARGET="${URL#*://}"; TARGET="${TARGET%%/*}"
PROMETHEUS="${PROMETHEUS:-$(command -v prometheus || true)}"
[ -x "$PROMETHEUS" ] || { echo "no prometheus binary: apt-get install prometheus (or set PROMETHEUS)" >&2; exit 1; }
curl -fsS "http://$TARGET/metrics" >/dev/null || { echo "nothing answers http://$TARGET/metrics" >&2; exit 1; }

METRICS=(http_requests_total http_request_duration_seconds_bucket coupon_issue_total coupon_remaining
  order_create_total payment_total stream_pending_entries stream_persist_lag_seconds
  outbox_pending_events outbox_delivery_total process_cpu_seconds_total process_resident_memory_bytes)

DIR="$(mktemp -d)"
PID=""
cleanup() { if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi; rm -rf "$DIR"; }
trap cleanup EXIT

# A free port: one nothing accepts connections on.
PORT=""
for _ in $(seq 1 50); do
  p=$((20000 + RANDOM % 20000))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then PORT=$p; break; fi
done
[ -n "$PORT" ] || { echo "no free port found" >&2; exit 1; }

cat >"$DIR/prometheus.yml" <<EOF
global: { scrape_interval: 1s, scrape_timeout: 1s }
scrape_configs:
  - job_name: jupang
    static_configs: [ { targets: ["$TARGET"] } ]
EOF
"$PROMETHEUS" --config.file="$DIR/prometheus.yml" --storage.tsdb.path="$DIR/data" \
  --web.listen-address="127.0.0.1:$PORT" >"$DIR/prometheus.log" 2>&1 &
PID=$!

# The first sample of an instant query, or nothing (also while Prometheus is starting).
value() {
  { curl -fsS --get "http://127.0.0.1:$PORT/api/v1/query" --data-urlencode "query=$1" 2>/dev/null || true; } |
    grep -o '"value":\[[^]]*\]' | head -1 | sed 's/.*,"\(.*\)"\]/\1/' || true
}

deadline=$((SECONDS + ${CHECK_TIMEOUT_SECS:-30}))
missing=("${METRICS[@]}")
up=""
while [ $SECONDS -lt $deadline ]; do
  kill -0 "$PID" 2>/dev/null || { echo "prometheus exited:" >&2; cat "$DIR/prometheus.log" >&2; exit 1; }
  up="$(value 'up{job="jupang"}')"
  still=()
  for m in "${missing[@]}"; do
    [ -n "$(value "count({__name__=\"$m\",job=\"jupang\"})")" ] || still+=("$m")
  done
  missing=("${still[@]+"${still[@]}"}")
  [ "$up" = 1 ] && [[ "${missing[*]-}" == "" || "${missing[*]}" == coupon_remaining ]] && break
  sleep 0.5
done

echo "Prometheus $("$PROMETHEUS" --version 2>&1 | head -1 | awk '{print $3}') scraping http://$TARGET/metrics: up=${up:-none}"
for m in "${METRICS[@]}"; do
  if [[ " ${missing[*]-} " != *" $m "* ]]; then printf '  seen     %s\n' "$m"
  elif [ "$m" = coupon_remaining ]; then printf '  not yet  %s (appears with the first coupon issued)\n' "$m"
  else printf '  MISSING  %s\n' "$m"; fi
done
[ "$up" = 1 ] && [[ "${missing[*]-}" == "" || "${missing[*]}" == coupon_remaining ]]
