#!/usr/bin/env bash
# Order-creation benchmark of one strategy against a release build (not a test).
# Usage: scripts/bench_orders.sh <redis-lua|db-pessimistic> <stock> [requests] [concurrency]
# Needs DATABASE_URL (a scratch database: products are added to it), REDIS_URL, JUPANG_JWT_SECRET,
# psql, and once: `jupang migrate && jupang seed --users 5000 && jupang token --users 1..5000 --out
# tokens.csv` (TOKENS names the file; default tokens.csv). Each run adds a fresh option with
# <stock> units, serves on JUPANG_BENCH_LISTEN (default 127.0.0.1:18431) with the consumer and
# expiry workers, sends <requests> single-unit orders from the buyers over <concurrency>
# connections, then checks Postgres against the stock once the consumer has caught up.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
STRATEGY=$1; STOCK=$2; N=${3:-5000}; C=${4:-64}
LISTEN=${JUPANG_BENCH_LISTEN:-127.0.0.1:18431}
TOKENS=${TOKENS:-tokens.csv}
cargo build --release --locked --bin jupang --example order_bench >/dev/null 2>&1
OPT=$(psql -qtA "$DATABASE_URL" -c "WITH p AS (INSERT INTO products (category, name_ko, name_en) VALUES ('bench', '벤치', 'Bench') RETURNING id),
  o AS (INSERT INTO product_options (product_id, name, stock) SELECT id, 'one', $STOCK FROM p RETURNING id)
  INSERT INTO option_prices (option_id, currency, amount) SELECT id, 'KRW', 1000 FROM o RETURNING option_id")
JUPANG_LISTEN=$LISTEN JUPANG_ORDER_STRATEGY=$STRATEGY JUPANG_WORKERS=consumer,expiry RUST_LOG=warn \
  target/release/jupang serve 2>target/bench_serve.log &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -fs "http://$LISTEN/ready" >/dev/null && break; sleep 0.1; done
echo "strategy=$STRATEGY option=$OPT stock=$STOCK requests=$N concurrency=$C"
target/release/examples/order_bench "http://$LISTEN" "$TOKENS" "$OPT" "$N" "$C"
for _ in $(seq 1 200); do
  R=$(psql -qtA "$DATABASE_URL" -F ' ' -c "SELECT stock, reserved, (SELECT count(*) FROM order_items WHERE option_id = $OPT) FROM product_options WHERE id = $OPT")
  set -- $R
  [ "$3" -ge "$(( N < STOCK ? N : STOCK ))" ] && break
  sleep 0.1
done
echo "postgres stock, reserved, orders: $R"
