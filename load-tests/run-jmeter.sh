#!/usr/bin/env bash
# Runs the JMeter open-run plan (load-tests/jmeter/open-run.jmx) non-GUI against a running
# Jupang in one command: mints the token CSV and an admin token with `jupang token`, runs
# JMeter, then summarises and judges the result file (exit 1 on any failed sample, on a wrong
# server count, or on a p95 above P95_MS; JMeter alone exits 0 whatever happened).
#
#   load-tests/run-jmeter.sh [jmeter options...]     # e.g. -Jthreads=100
#
#   BASE_URL              the server (default http://127.0.0.1:8080)
#   USERS                 N: tokens for users 1..USERS (default 1000); they must exist on the
#                         server (`jupang seed --users USERS`)
#   COUPONS               M (default 100)
#   THREADS               JMeter threads = connections (default 50)
#   DOUBLE_CLICK_PERCENT  percent of people who press twice (default 10)
#   P95_MS                threshold on p95 of the issue requests (default 500)
#   OUT                   result directory (default load-tests/results/jmeter-<date>)
#   REPORT=1              also write JMeter's HTML dashboard to $OUT/report (JMeter 3+)
#   JUPANG_JWT_SECRET     the server's token key (default: .data/jwt_secret)
#   JUPANG, JMETER        the binaries (default: target/release|debug/jupang; `jmeter` on PATH)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
die() { echo "run-jmeter: error: $*" >&2; exit 2; }

jmeter="${JMETER:-jmeter}"
command -v "$jmeter" >/dev/null || die "jmeter not found: install Apache JMeter 5 (https://jmeter.apache.org/download_jmeter.cgi) or set JMETER"
command -v python3 >/dev/null || die "python3 is needed to summarise the results"

. "$ROOT/load-tests/common.sh"

base_url="${BASE_URL:-http://127.0.0.1:8080}"
protocol="${base_url%%://*}"
hostport="${base_url#*://}"
hostport="${hostport%%/*}"
host="${hostport%:*}"
port="${hostport##*:}"
[ "$host" != "$hostport" ] || port=$([ "$protocol" = https ] && echo 443 || echo 80)

out="${OUT:-$ROOT/load-tests/results/jmeter-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$out"
secrets="$(mktemp -d)"
trap 'rm -rf "$secrets"' EXIT
users="${USERS:-1000}"
"$jupang" token --users "1..$users" --ttl-secs 14400 --out "$secrets/tokens.csv"
# The admin token goes in a property file (-q), not on the command line, where ps would show it.
(umask 077 && printf 'admin_token=%s\n' "$("$jupang" token --user 1 --role ops_admin --ttl-secs 14400)" >"$secrets/secret.properties")

report=()
[ "${REPORT:-0}" = 1 ] && report=(-e -o "$out/report")
echo "run-jmeter: open run against $base_url, $users people, ${COUPONS:-100} coupons; results in $out" >&2
"$jmeter" -n -t "$ROOT/load-tests/jmeter/open-run.jmx" -q "$secrets/secret.properties" \
  -Jhost="$host" -Jport="$port" -Jprotocol="$protocol" -Jtokens="$secrets/tokens.csv" \
  -Jcoupons="${COUPONS:-100}" -Jthreads="${THREADS:-50}" -Jdouble_click_percent="${DOUBLE_CLICK_PERCENT:-10}" \
  -Jsample_variables=outcome \
  -Jjmeter.save.saveservice.print_field_names=true \
  -Jjmeter.save.saveservice.assertion_results_failure_message=true \
  -l "$out/results.jtl" -j "$out/jmeter.log" "${report[@]}" "$@"
python3 "$ROOT/load-tests/jmeter/summarize-jtl.py" "$out/results.jtl" --p95-ms "${P95_MS:-500}"
