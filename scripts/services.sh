#!/usr/bin/env bash
# Gives Jupang a Postgres (>= 15) and a Redis (>= 7) without touching the system's own services.
#
#   scripts/services.sh up      reuse DATABASE_URL / REDIS_URL when they answer, otherwise install
#                               the Debian packages if missing (as root) and start private instances
#                               under .data/ on their own ports; prints nothing but progress on stderr
#   scripts/services.sh prometheus  installs the prometheus package if missing (as root), for the test
#                               that has a real Prometheus scrape `serve`; its system service is never
#                               started (only scripts/test.sh needs it, not scripts/run.sh)
#   scripts/services.sh env     prints `export DATABASE_URL=... REDIS_URL=...` for `eval`
#   scripts/services.sh down    stops the private instances (never a system service)
#   scripts/services.sh status  says what is running
#
# Ports: JUPANG_PG_PORT (default 55432), JUPANG_REDIS_PORT (default 56379).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="${JUPANG_DATA_DIR:-$ROOT/.data}"
PG_PORT="${JUPANG_PG_PORT:-55432}"
REDIS_PORT="${JUPANG_REDIS_PORT:-56379}"
PG_USER=jupang
PG_PASS=jupang
PG_DB=jupang
PRIVATE_DATABASE_URL="postgres://$PG_USER:$PG_PASS@127.0.0.1:$PG_PORT/$PG_DB"
PRIVATE_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/"

log() { echo "services: $*" >&2; }
die() { echo "services: error: $*" >&2; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

apt_install() {
  is_root || die "missing $* and not root: install the Debian packages ($*) or set the URL variables"
  log "installing Debian packages: $*"
  if [ ! -f "$DATA/.apt-updated" ]; then
    apt-get update -qq >&2
    mkdir -p "$DATA" && touch "$DATA/.apt-updated"
  fi
  # policy-rc.d keeps the package scripts from starting system-wide services as a side effect.
  local policy=/usr/sbin/policy-rc.d created=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; created=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2 || {
    [ "$created" = 1 ] && rm -f "$policy"; die "apt-get install $* failed"; }
  [ "$created" = 1 ] && rm -f "$policy"
  return 0
}

# ---------------------------------------------------------------- Postgres

pg_bin_dir() {
  local d best=""
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] || continue
    local v; v="$(basename "$(dirname "$d")")"
    [ "${v%%.*}" -ge 15 ] 2>/dev/null && best="$d"
  done
  echo "$best"
}

# The cluster's directory: .data/pg, unless the postgres user cannot reach the project (a clone
# under /root, say); then a directory it can reach, named after the project path, linked from .data.
pg_dir() {
  mkdir -p "$DATA"
  if ! is_root || runuser -u postgres -- test -x "$DATA"; then echo "$DATA/pg"; return; fi
  local alt; alt="/var/tmp/jupang-$(printf '%s' "$DATA" | sha1sum | cut -c1-12)"
  mkdir -p "$alt"; chmod 755 "$alt"
  [ -L "$DATA/pg" ] || ln -sfn "$alt/pg" "$DATA/pg"
  echo "$alt/pg"
}

# Runs a command as the user that owns the private cluster (postgres refuses to run as root).
as_pg() {
  # From / so a working directory the postgres user cannot read does not matter.
  if is_root; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

database_url_answers() {
  [ -n "${DATABASE_URL:-}" ] || return 1
  command -v psql >/dev/null || return 1
  psql "$DATABASE_URL" -qtAc 'select 1' >/dev/null 2>&1
}

pg_up() {
  if database_url_answers; then log "using the given DATABASE_URL"; return 0; fi
  [ -n "${DATABASE_URL:-}" ] && [ "${DATABASE_URL}" != "$PRIVATE_DATABASE_URL" ] &&
    log "DATABASE_URL does not answer; starting a private Postgres instead"
  local bin; bin="$(pg_bin_dir)"
  if [ -z "$bin" ]; then apt_install postgresql; bin="$(pg_bin_dir)"; fi
  [ -n "$bin" ] || die "no PostgreSQL >= 15 found under /usr/lib/postgresql"
  command -v psql >/dev/null || apt_install postgresql-client

  local dir; dir="$(pg_dir)"
  mkdir -p "$DATA"
  if [ ! -s "$dir/PG_VERSION" ]; then
    log "initialising a private Postgres in $dir"
    mkdir -p "$dir"
    is_root && chown postgres: "$dir"
    chmod 700 "$dir"
    local pw; pw="$(dirname "$dir")/.pgpass-init"
    echo "$PG_PASS" >"$pw"; is_root && chown postgres: "$pw"
    as_pg "$bin/initdb" -D "$dir" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
      --pwfile="$pw" -E UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$pw"
    cat >>"$dir/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$dir'
max_connections = 400
shared_buffers = 256MB
log_min_messages = warning
EOF
  fi
  if ! as_pg "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
    log "starting private Postgres on 127.0.0.1:$PG_PORT"
    as_pg "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 start >/dev/null ||
      die "Postgres did not start; see $dir/server.log"
  fi
  as_pg psql -h "$dir" -p "$PG_PORT" -U postgres -qtAc \
    "select 1 from pg_roles where rolname='$PG_USER'" | grep -q 1 ||
    as_pg psql -h "$dir" -p "$PG_PORT" -U postgres -qc \
      "create role $PG_USER login createdb password '$PG_PASS'" >/dev/null
  as_pg psql -h "$dir" -p "$PG_PORT" -U postgres -qtAc \
    "select 1 from pg_database where datname='$PG_DB'" | grep -q 1 ||
    as_pg psql -h "$dir" -p "$PG_PORT" -U postgres -qc "create database $PG_DB owner $PG_USER" >/dev/null
  echo "$PRIVATE_DATABASE_URL" >"$DATA/database_url"
}

pg_down() {
  local bin dir; bin="$(pg_bin_dir)"; dir="$(pg_dir)"
  [ -n "$bin" ] && [ -s "$dir/PG_VERSION" ] || return 0
  if as_pg "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
    log "stopping private Postgres"
    as_pg "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null
  fi
}

# ---------------------------------------------------------------- Redis

redis_url_answers() {
  [ -n "${REDIS_URL:-}" ] || return 1
  command -v redis-cli >/dev/null || return 1
  # A comma-separated list means Redis Cluster: the first node answering is enough here.
  redis-cli -u "${REDIS_URL%%,*}" ping 2>/dev/null | grep -q PONG
}

redis_up() {
  if redis_url_answers; then log "using the given REDIS_URL"; return 0; fi
  command -v redis-server >/dev/null || apt_install redis-server redis-tools
  command -v redis-cli >/dev/null || apt_install redis-tools
  local dir="$DATA/redis"
  mkdir -p "$dir"
  if redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then
    echo "$PRIVATE_REDIS_URL" >"$DATA/redis_url"; return 0
  fi
  log "starting private Redis on 127.0.0.1:$REDIS_PORT (AOF everysec)"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$dir" --daemonize yes \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
    --appendonly yes --appendfsync everysec --save "" >/dev/null
  local i
  for i in $(seq 1 100); do
    redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break
    sleep 0.1
  done
  redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG || die "Redis did not start; see $dir/redis.log"
  echo "$PRIVATE_REDIS_URL" >"$DATA/redis_url"
}

redis_down() {
  local pidfile="$DATA/redis/redis.pid"
  [ -f "$pidfile" ] || return 0
  if kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    log "stopping private Redis"
    redis-cli -p "$REDIS_PORT" shutdown >/dev/null 2>&1 || kill "$(cat "$pidfile")"
  fi
  rm -f "$pidfile"
}

# ---------------------------------------------------------------- Prometheus

# Only the binary is needed: tests and scripts/prometheus_check.sh run their own short-lived
# Prometheus on a free port. policy-rc.d (apt_install) keeps the package's service stopped.
prometheus_up() {
  command -v prometheus >/dev/null && return 0
  if is_root; then apt_install prometheus; return 0; fi
  log "prometheus is missing and this is not root: the Prometheus scrape test will fail until the Debian package (prometheus) is installed or JUPANG_PROMETHEUS names a binary"
}

# ---------------------------------------------------------------- commands

print_env() {
  local db="${DATABASE_URL:-}" rd="${REDIS_URL:-}"
  database_url_answers || db="$(cat "$DATA/database_url" 2>/dev/null || true)"
  redis_url_answers || rd="$(cat "$DATA/redis_url" 2>/dev/null || true)"
  [ -n "$db" ] && [ -n "$rd" ] || die "services are not up; run: scripts/services.sh up"
  printf 'export DATABASE_URL=%q\nexport REDIS_URL=%q\n' "$db" "$rd"
}

case "${1:-}" in
  up) pg_up; redis_up ;;
  prometheus) prometheus_up ;;
  env) print_env ;;
  down) redis_down; pg_down ;;
  status)
    if database_url_answers || { [ -f "$DATA/database_url" ] && psql "$(cat "$DATA/database_url")" -qtAc 'select 1' >/dev/null 2>&1; }; then
      echo "postgres: up"; else echo "postgres: down"; fi
    if redis_url_answers || redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then
      echo "redis: up"; else echo "redis: down"; fi
    if command -v prometheus >/dev/null; then echo "prometheus: installed"; else echo "prometheus: missing"; fi ;;
  *) echo "usage: $0 up|env|down|status|prometheus" >&2; exit 2 ;;
esac
