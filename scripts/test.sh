#!/usr/bin/env bash
# Runs the whole test suite against real Postgres and Redis (private instances unless
# DATABASE_URL / REDIS_URL answer) and a real Prometheus binary (installed as root if missing).
# Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/services.sh up
scripts/services.sh prometheus
eval "$(scripts/services.sh env)"
# Tests wait on I/O far more than on CPU: more threads than cores keeps both servers busy.
cargo test --locked "$@" -- --test-threads="${JUPANG_TEST_THREADS:-8}"
