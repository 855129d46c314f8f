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
# Redis Cluster: `up --cluster` (or JUPANG_REDIS_MODE=cluster) starts a private cluster of 3
# masters and 3 replicas instead of the single Redis, and `env --cluster` prints REDIS_URL as the
# comma-separated list of its nodes (what the contract reads as Redis Cluster). `down` and
# `status` cover both.
#
# Ports: JUPANG_PG_PORT (default 55432), JUPANG_REDIS_PORT (default 56379),
# JUPANG_REDIS_CLUSTER_PORT (default 57000: nodes on 57000..57005, cluster bus on 57100..57105).
# JUPANG_REDIS_APPENDFSYNC (everysec, always or no) is the AOF fsync policy of every private Redis.
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
REDIS_MODE="${JUPANG_REDIS_MODE:-single}"
CLUSTER_PORT="${JUPANG_REDIS_CLUSTER_PORT:-57000}"
APPENDFSYNC="${JUPANG_REDIS_APPENDFSYNC:-everysec}"

log() { echo "services: $*" >&2; }
die() { echo "services: error: $*" >&2; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

check_settings() {
  case "$REDIS_MODE" in single | cluster) ;; *) die "JUPANG_REDIS_MODE must be single or cluster, not '$REDIS_MODE'" ;; esac
  case "$APPENDFSYNC" in always | everysec | no) ;; *) die "JUPANG_REDIS_APPENDFSYNC must be always, everysec or no, not '$APPENDFSYNC'" ;; esac
  if ! [[ "$CLUSTER_PORT" =~ ^[0-9]+$ ]] || [ "$CLUSTER_PORT" -lt 1024 ] || [ "$CLUSTER_PORT" -gt 65430 ]; then
    die "JUPANG_REDIS_CLUSTER_PORT must be a port from 1024 to 65430 (six nodes and their bus ports follow it)"
  fi
}

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

wait_for_pong() {
  for _ in $(seq 1 100); do
    redis-cli -p "$1" ping 2>/dev/null | grep -q PONG && return 0
    sleep 0.1
  done
  return 1
}

# A running private instance takes the asked fsync policy too, so JUPANG_REDIS_APPENDFSYNC=always
# on a second `up` switches it without a restart.
set_appendfsync() {
  [ "$(redis-cli -p "$1" config get appendfsync 2>/dev/null | tail -n 1)" = "$APPENDFSYNC" ] && return 0
  log "Redis on port $1: appendfsync $APPENDFSYNC"
  redis-cli -p "$1" config set appendfsync "$APPENDFSYNC" >/dev/null
}

redis_up() {
  if [ "${REDIS_URL:-}" != "$PRIVATE_REDIS_URL" ] && redis_url_answers; then
    log "using the given REDIS_URL"; return 0
  fi
  command -v redis-server >/dev/null || apt_install redis-server redis-tools
  command -v redis-cli >/dev/null || apt_install redis-tools
  local dir="$DATA/redis"
  mkdir -p "$dir"
  if redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then
    set_appendfsync "$REDIS_PORT"
    echo "$PRIVATE_REDIS_URL" >"$DATA/redis_url"; return 0
  fi
  log "starting private Redis on 127.0.0.1:$REDIS_PORT (AOF $APPENDFSYNC)"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$dir" --daemonize yes \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
    --appendonly yes --appendfsync "$APPENDFSYNC" --save "" >/dev/null
  wait_for_pong "$REDIS_PORT" || die "Redis did not start; see $dir/redis.log"
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

# ---------------------------------------------------------------- Redis Cluster

# Node i (0..5) listens on CLUSTER_PORT+i and speaks the cluster bus on CLUSTER_PORT+100+i: the
# bus port is set because Redis's default (port + 10000) is past 65535 for ports above 55535.
CLUSTER_DIR="$DATA/redis-cluster"
# A master is failed after 5 s of silence instead of Redis's 15 s (a replica took over 7.5 to 9 s
# after a kill -9 here), so fault tests do not idle.
CLUSTER_NODE_TIMEOUT_MS=5000

cluster_ports() { seq "$CLUSTER_PORT" $((CLUSTER_PORT + 5)); }

# Every node, not only the masters: roles swap on a failover, and a client finds the topology
# from any node that answers.
cluster_urls() {
  local p urls=()
  for p in $(cluster_ports); do urls+=("redis://127.0.0.1:$p/"); done
  (IFS=,; echo "${urls[*]}")
}

cluster_info() { redis-cli -p "$1" cluster info 2>/dev/null | tr -d '\r'; }

# A given REDIS_URL that lists nodes of a cluster in state ok (and is not our own list).
given_cluster_answers() {
  [[ "${REDIS_URL:-}" == *,* ]] && [ "$REDIS_URL" != "$(cluster_urls)" ] || return 1
  command -v redis-cli >/dev/null || return 1
  redis-cli -u "${REDIS_URL%%,*}" cluster info 2>/dev/null | tr -d '\r' | grep -qx 'cluster_state:ok'
}

# Healthy: every node sees six nodes and a cluster in state ok with all 16384 slots served, three
# masters hold the slots, and three replicas have their replication link up.
cluster_healthy() {
  local p info masters replicas
  for p in $(cluster_ports); do
    info="$(cluster_info "$p")"
    grep -qx 'cluster_state:ok' <<<"$info" && grep -qx 'cluster_slots_ok:16384' <<<"$info" &&
      grep -qx 'cluster_known_nodes:6' <<<"$info" || return 1
    if [ "$(redis-cli -p "$p" role 2>/dev/null | head -n 1)" = slave ]; then
      redis-cli -p "$p" info replication 2>/dev/null | tr -d '\r' | grep -qx 'master_link_status:up' || return 1
    fi
  done
  masters="$(redis-cli -p "$CLUSTER_PORT" cluster nodes 2>/dev/null |
    awk '$3 ~ /master/ && $3 !~ /fail/ && NF >= 9' | wc -l)"
  replicas="$(redis-cli -p "$CLUSTER_PORT" cluster nodes 2>/dev/null |
    awk '$3 ~ /slave/ && $3 !~ /fail/ && $8 == "connected"' | wc -l)"
  [ "$masters" -eq 3 ] && [ "$replicas" -eq 3 ]
}

# Nodes that have never met: each knows only itself and serves no slot.
cluster_fresh() {
  local p info
  for p in $(cluster_ports); do
    info="$(cluster_info "$p")"
    grep -qx 'cluster_known_nodes:1' <<<"$info" && grep -qx 'cluster_slots_assigned:0' <<<"$info" || return 1
  done
}

cluster_node_up() {
  local p="$1" dir="$CLUSTER_DIR/$1"
  mkdir -p "$dir"
  redis-server --port "$p" --bind 127.0.0.1 --dir "$dir" --daemonize yes \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" \
    --cluster-enabled yes --cluster-config-file nodes.conf --cluster-port $((p + 100)) \
    --cluster-node-timeout "$CLUSTER_NODE_TIMEOUT_MS" \
    --appendonly yes --appendfsync "$APPENDFSYNC" --save "" >/dev/null
}

redis_cluster_up() {
  if given_cluster_answers; then log "using the given REDIS_URL (Redis Cluster)"; return 0; fi
  [[ "${REDIS_URL:-}" == *,* ]] && [ "$REDIS_URL" != "$(cluster_urls)" ] &&
    log "REDIS_URL is not a Redis Cluster that answers; starting a private one instead"
  command -v redis-server >/dev/null || apt_install redis-server redis-tools
  command -v redis-cli >/dev/null || apt_install redis-tools
  mkdir -p "$CLUSTER_DIR"
  local p
  for p in $(cluster_ports); do
    if redis-cli -p "$p" ping 2>/dev/null | grep -q PONG; then set_appendfsync "$p"; continue; fi
    log "starting private Redis Cluster node on 127.0.0.1:$p (AOF $APPENDFSYNC)"
    cluster_node_up "$p"
  done
  for p in $(cluster_ports); do
    wait_for_pong "$p" || die "Redis Cluster node $p did not start; see $CLUSTER_DIR/$p/redis.log"
  done
  if cluster_fresh; then
    log "creating the Redis Cluster: 3 masters, 3 replicas"
    # shellcheck disable=SC2046 # one argument per node
    redis-cli --cluster create $(cluster_ports | sed 's/^/127.0.0.1:/') --cluster-replicas 1 \
      --cluster-yes >"$CLUSTER_DIR/create.log" 2>&1 ||
      die "redis-cli --cluster create failed; see $CLUSTER_DIR/create.log"
  fi
  for _ in $(seq 1 600); do cluster_healthy && break; sleep 0.1; done
  cluster_healthy || die "the Redis Cluster on ports $CLUSTER_PORT..$((CLUSTER_PORT + 5)) is not healthy after 60 s
$(redis-cli -p "$CLUSTER_PORT" cluster nodes 2>&1)
to start afresh (its data is lost): scripts/services.sh down && rm -rf $CLUSTER_DIR"
  cluster_urls >"$DATA/redis_cluster_url"
}

redis_cluster_down() {
  local p pid running=() role
  for p in $(cluster_ports); do
    pid="$(cat "$CLUSTER_DIR/$p/redis.pid" 2>/dev/null || true)"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && running+=("$p")
  done
  if [ "${#running[@]}" -gt 0 ]; then
    log "stopping private Redis Cluster (ports ${running[*]})"
    # Replicas first: a master stopped before its replica could be failed over to it.
    for role in slave master; do
      for p in "${running[@]}"; do
        [ "$(redis-cli -p "$p" role 2>/dev/null | head -n 1)" = "$role" ] || continue
        redis-cli -p "$p" shutdown >/dev/null 2>&1 || true
      done
    done
    for p in "${running[@]}"; do
      pid="$(cat "$CLUSTER_DIR/$p/redis.pid" 2>/dev/null || true)"
      [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && kill "$pid"
    done
  fi
  for p in $(cluster_ports); do rm -f "$CLUSTER_DIR/$p/redis.pid"; done
}

redis_cluster_status() {
  if given_cluster_answers; then echo "redis-cluster: up (the given REDIS_URL)"; return; fi
  local p n=0
  for p in $(cluster_ports); do redis-cli -p "$p" ping 2>/dev/null | grep -q PONG && n=$((n + 1)); done
  if [ "$n" -eq 0 ]; then echo "redis-cluster: down"
  elif cluster_healthy; then echo "redis-cluster: up (3 masters, 3 replicas, ports $CLUSTER_PORT..$((CLUSTER_PORT + 5)))"
  else echo "redis-cluster: not healthy ($n of 6 nodes answer; $(cluster_info "$CLUSTER_PORT" | grep '^cluster_state:' || echo 'no cluster state'))"
  fi
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
  local db="${DATABASE_URL:-}" rd="${REDIS_URL:-}" up="scripts/services.sh up"
  database_url_answers || db="$(cat "$DATA/database_url" 2>/dev/null || true)"
  if [ "$REDIS_MODE" = cluster ]; then
    up="$up --cluster"
    given_cluster_answers || rd="$(cat "$DATA/redis_cluster_url" 2>/dev/null || true)"
  else
    redis_url_answers || rd="$(cat "$DATA/redis_url" 2>/dev/null || true)"
  fi
  if [ -z "$db" ] || [ -z "$rd" ]; then die "services are not up; run: $up"; fi
  printf 'export DATABASE_URL=%q\nexport REDIS_URL=%q\n' "$db" "$rd"
}

usage() { echo "usage: $0 up|env|down|status|prometheus [--cluster]" >&2; exit 2; }

cmd="${1:-}"
[ "$#" -gt 0 ] && shift
for arg in "$@"; do
  case "$arg" in --cluster) REDIS_MODE=cluster ;; *) usage ;; esac
done
check_settings

case "$cmd" in
  up) pg_up; if [ "$REDIS_MODE" = cluster ]; then redis_cluster_up; else redis_up; fi ;;
  prometheus) prometheus_up ;;
  env) print_env ;;
  down) redis_cluster_down; redis_down; pg_down ;;
  status)
    if database_url_answers || { [ -f "$DATA/database_url" ] && psql "$(cat "$DATA/database_url")" -qtAc 'select 1' >/dev/null 2>&1; }; then
      echo "postgres: up"; else echo "postgres: down"; fi
    if redis_url_answers || redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then
      echo "redis: up"; else echo "redis: down"; fi
    redis_cluster_status
    if command -v prometheus >/dev/null; then echo "prometheus: installed"; else echo "prometheus: missing"; fi ;;
  *) usage ;;
esac
