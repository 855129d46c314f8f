# Sourced by run-k6.sh and run-jmeter.sh (after they define ROOT and die): finds the `jupang`
# binary that mints tokens ($JUPANG, else a local build, else PATH) and exports the server's
# JWT secret ($JUPANG_JWT_SECRET, else the one scripts/run.sh generated into .data/).
jupang="${JUPANG:-}"
if [ -z "$jupang" ]; then
  for candidate in "$ROOT/target/release/jupang" "$ROOT/target/debug/jupang" "$(command -v jupang || true)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then jupang="$candidate"; break; fi
  done
fi
[ -n "$jupang" ] || die "no jupang binary: cargo build --release, or set JUPANG"

if [ -z "${JUPANG_JWT_SECRET:-}" ]; then
  secret_file="${JUPANG_DATA_DIR:-$ROOT/.data}/jwt_secret"
  [ -s "$secret_file" ] || die "JUPANG_JWT_SECRET is not set and $secret_file does not exist: give the server's secret"
  JUPANG_JWT_SECRET="$(cat "$secret_file")"
fi
export JUPANG_JWT_SECRET
