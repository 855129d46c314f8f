#!/usr/bin/env bash
# Proves the container build has every file it needs, without Docker: reads the COPY lines of
# the Dockerfile's builder stage, assembles exactly the files they copy (minus what
# .dockerignore leaves out of the build context) into a temporary directory laid out as the
# builder's WORKDIR, and runs `cargo check --locked --bin jupang` there (a check expands every
# include_str! and sqlx::migrate!, so it finds a missing file as a build would, at a fraction
# of the disk). Fails when a file the
# build reaches (a source, a Lua script behind include_str!, a migration behind
# sqlx::migrate!, a workspace member) is not copied.
#
#   scripts/check-docker-context.sh [Dockerfile]
#
# CARGO_TARGET_DIR defaults to the repository's target/, so registry dependencies are reused
# (their metadata from the clippy step) and the check costs the workspace's own crates only. The directory is
# target/docker-context (emptied first; inside target/, which the build context excludes): a
# fixed path keeps cargo's fingerprints of the copy stable from run to run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dockerfile="${1:-$ROOT/Dockerfile}"
[ -f "$dockerfile" ] || { echo "check-docker-context: no $dockerfile" >&2; exit 2; }

work="$ROOT/target/docker-context"
rm -rf "$work"
mkdir -p "$work"

# Parse the Dockerfile and copy; python3 because Docker's COPY and .dockerignore rules (line
# continuations, several sources, directory contents, wildcards, ignore patterns with `!`)
# are more than a few lines of shell.
python3 - "$ROOT" "$dockerfile" "$work" <<'PY'
import fnmatch, glob, os, re, shutil, sys

root, dockerfile, work = sys.argv[1:4]

def fail(msg):
    print(f"check-docker-context: {msg}", file=sys.stderr)
    sys.exit(1)

# Instructions, with continuation lines joined and comments dropped.
lines, buf = [], ""
for raw in open(dockerfile, encoding="utf-8"):
    line = raw.rstrip("\n")
    if not buf and line.lstrip().startswith("#"):
        continue
    if line.rstrip().endswith("\\"):
        buf += line.rstrip()[:-1] + " "
        continue
    buf += line
    if buf.strip():
        lines.append(buf.strip())
    buf = ""

# The builder stage: from `FROM ... AS builder` to the next FROM.
stage, copies, workdir = None, [], "/"
for ins in lines:
    word, _, rest = ins.partition(" ")
    word = word.upper()
    if word == "FROM":
        m = re.search(r"\bAS\s+(\S+)\s*$", rest, re.I)
        stage = m.group(1).lower() if m else None
        continue
    if stage != "builder":
        continue
    if word == "WORKDIR":
        workdir = os.path.normpath(os.path.join(workdir, rest.strip()))
    elif word in ("COPY", "ADD"):
        args = rest.split()
        if rest.lstrip().startswith("["):
            fail(f"JSON-form {word} is not supported: {ins}")
        if any(a.startswith("--from") for a in args):
            continue
        args = [a for a in args if not a.startswith("--")]
        if len(args) < 2:
            fail(f"cannot read: {ins}")
        copies.append((args[:-1], args[-1], workdir))
if not copies:
    fail(f"no COPY in a builder stage (`FROM ... AS builder`) of {dockerfile}")

# .dockerignore: Go filepath.Match patterns relative to the context root; a match excludes a
# path and everything under it; `!` re-includes; the last matching pattern wins.
patterns = []
ignore_file = os.path.join(root, ".dockerignore")
if os.path.exists(ignore_file):
    for p in open(ignore_file, encoding="utf-8"):
        p = p.strip()
        if p and not p.startswith("#"):
            neg = p.startswith("!")
            p = os.path.normpath(p.lstrip("!").strip("/"))
            patterns.append((neg, p))

def matches(pattern, rel):
    parts = rel.split("/")
    for i in range(1, len(parts) + 1):
        prefix = "/".join(parts[:i])
        if "**" in pattern:
            rx = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
            rx = rx.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
            if re.fullmatch(rx, prefix):
                return True
        elif prefix.count("/") == pattern.count("/") and fnmatch.fnmatchcase(prefix, pattern):
            return True
    return False

def ignored(rel):
    verdict = False
    for neg, p in patterns:
        if matches(p, rel):
            verdict = not neg
    return verdict

def copy_file(src_rel, dest_abs):
    if ignored(src_rel):
        return 0
    os.makedirs(os.path.dirname(dest_abs), exist_ok=True)
    shutil.copy2(os.path.join(root, src_rel), dest_abs)
    return 1

def in_work(path_in_image):
    # The builder's WORKDIR is the root of the temporary directory.
    base = copies[0][2]
    rel = os.path.relpath(path_in_image, base)
    if rel.startswith(".."):
        fail(f"{path_in_image} is outside the builder's WORKDIR {base}")
    return os.path.normpath(os.path.join(work, rel))

count = 0
for sources, dest, wd in copies:
    dest_abs = in_work(os.path.join(wd, dest))
    into_dir = dest.endswith("/") or dest in (".", "./") or len(sources) > 1
    for src in sources:
        found = sorted(glob.glob(os.path.join(root, src)))
        found = [f for f in found if not ignored(os.path.relpath(f, root))]
        if not found:
            fail(f"COPY source `{src}` is not in the build context")
        for f in found:
            if os.path.isdir(f):
                # A directory's contents go into the destination.
                for dirpath, _, files in os.walk(f):
                    for name in files:
                        frel = os.path.relpath(os.path.join(dirpath, name), root)
                        inner = os.path.relpath(os.path.join(dirpath, name), f)
                        count += copy_file(frel, os.path.join(dest_abs, inner))
            else:
                target = os.path.join(dest_abs, os.path.basename(f)) if into_dir else dest_abs
                count += copy_file(os.path.relpath(f, root), target)
print(f"check-docker-context: {count} files from {len(copies)} COPY line(s) of {os.path.relpath(dockerfile, root)}",
      file=sys.stderr)
PY

echo "check-docker-context: cargo check --locked --bin jupang in $work" >&2
cd "$work"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
if ! cargo check --locked --bin jupang; then
  echo "check-docker-context: FAILED: the Dockerfile's builder stage does not copy everything the build needs" >&2
  exit 1
fi
echo "check-docker-context: OK, the builder stage's files build the jupang binary" >&2
