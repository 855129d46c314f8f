#!/usr/bin/env bash
# Runs the whole test suite against real Postgres and Redis (private instances unless
# DATABASE_URL / REDIS_URL answer) and a real Prometheus binary (installed as root if missing).
# Extra arguments go to `cargo test` (e.g. a test name filter); without any, the external clients
# (scripts/external-clients.sh: k6 and the schemathesis fuzzer against a live server) run after.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/services.sh up
scripts/services.sh prometheus
eval "$(scripts/services.sh env)"
# Tests wait on I/O far more than on CPU: more threads than cores keeps both servers busy.
cargo test --locked "$@" -- --test-threads="${JUPANG_TEST_THREADS:-8}"
# Then external clients (k6, schemathesis) against a live server built by the tests above; a
# run narrowed to some tests (arguments given) skips them.
if [ $# -eq 0 ]; then
  scripts/external-clients.sh
fi
