#!/usr/bin/env bash
# Runs Jupang from a fresh checkout, unattended: Postgres and Redis (private instances unless
# DATABASE_URL / REDIS_URL answer), a JWT secret, a release build, migrations, demo data, then
# the server in the foreground (Ctrl-C stops it).
#
#   JUPANG_LISTEN       where to serve (default 127.0.0.1:8080)
#   JUPANG_JWT_SECRET   token key; when unset one is generated once into .data/jwt_secret
#   JUPANG_SEED_USERS   users 1..N the seed makes sure exist (default 1000)
# Every other JUPANG_* variable is passed to `jupang serve` (see README, Configuration).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DATA="${JUPANG_DATA_DIR:-$ROOT/.data}"

log() { echo "run: $*" >&2; }
die() { echo "run: error: $*" >&2; exit 1; }

command -v cargo >/dev/null ||
  die "cargo not found: install Rust (https://rustup.rs: curl --proto '=https' -sSf https://sh.rustup.rs | sh)"
if ! command -v cc >/dev/null; then
  # Rust links through the system C compiler; a fresh Debian may not have one.
  [ "$(id -u)" -eq 0 ] || die "no C compiler (cc): install build-essential"
  log "installing build-essential (the linker Rust needs)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends build-essential >&2 ||
    { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends build-essential >&2; }
fi

scripts/services.sh up
eval "$(scripts/services.sh env)"

if [ -z "${JUPANG_JWT_SECRET:-}" ]; then
  secret_file="$DATA/jwt_secret"
  if [ ! -s "$secret_file" ]; then
    log "generating a JWT secret into $secret_file"
    mkdir -p "$DATA"
    (umask 077 && head -c 32 /dev/urandom | od -An -tx1 -v | tr -d ' \n' >"$secret_file")
  fi
  JUPANG_JWT_SECRET="$(cat "$secret_file")"
fi
export JUPANG_JWT_SECRET
export JUPANG_LISTEN="${JUPANG_LISTEN:-127.0.0.1:8080}"

log "building (cargo build --release --locked; the first build takes a few minutes)"
cargo build --release --locked
bin="$ROOT/target/release/jupang"

"$bin" migrate
"$bin" seed --users "${JUPANG_SEED_USERS:-1000}"

# A wildcard listen address is reachable on loopback; print the address a browser can open.
host="${JUPANG_LISTEN%:*}"
port="${JUPANG_LISTEN##*:}"
case "$host" in 0.0.0.0 | "[::]" | "") host=127.0.0.1 ;; esac
base="http://$host:$port"
token="$("$bin" token --user 1)"

cat <<EOF

Jupang is starting on $base
  API          $base/api/products
  API docs     $base/api-docs
  Metrics      $base/metrics
  Health       $base/health   Ready: $base/ready

Try it (user 1, token valid for 24 h):
  curl -H 'Authorization: Bearer $token' $base/api/users/1/balance

EOF

exec "$bin" serve
