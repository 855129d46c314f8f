#!/usr/bin/env python3
"""The layer rules of the server library (CONTRIBUTING.md, "Layout"), checked on the source.

Imports point downward only:

    http -> services -> admission -> store -> domain      workers -> services / admission / store
    app (the composition root) may import everything; config, metrics, telemetry and auth are
    leaves anyone may import; a leaf imports only leaves and domain.

plus: store/redis never imports store/pg; no library module imports the binary's CLI (cli.rs,
and the former in-library tools loadgen and seed, now crates under tools/); the environment
(std::env) is read only in config, the CLI included. The CLI's own imports are not
layer-checked: like app, it sits on top.

Every `crate::`, `super::` and `self::` path is resolved to the module it names, in `use` trees
(multi-line groups included) and in inline paths alike; comments and string literals are
ignored. Prints `file:line: rule` for each violation and exits 1 if there is any.

Usage: check_layers.py [SRC_DIR]   (default: src next to this script's parent directory)
"""

import os
import re
import sys

LEAVES = {"config", "metrics", "telemetry", "auth"}
TOOLS = {"cli", "loadgen", "seed"}  # the binary's CLI, and the tools that were library modules
ORDER = "http -> services -> admission -> store -> domain; workers -> services/admission/store"
ALLOWED = {
    "domain": {"domain"},
    "leaf": LEAVES | {"domain"},
    "store": {"store", "domain"} | LEAVES,
    "admission": {"admission", "store", "domain"} | LEAVES,
    "services": {"services", "admission", "store", "domain"} | LEAVES,
    "workers": {"workers", "services", "admission", "store", "domain"} | LEAVES,
    "http": {"http", "services", "domain"} | LEAVES,
}
# Items re-exported at the crate root, by the module that defines them.
ROOT_ITEMS = {"Application": "app", "run": "app", "Config": "config"}


def strip_code(text):
    """The text with comments and string/char literals blanked out (newlines kept)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:]):
            hashes = re.match(r"r(#*)\"", text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            j = n if end < 0 else end + 1 + len(hashes)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(re.sub(r"[^\n]", " ", text[i : j + 1]))
            i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:]):
            m = re.match(r"'(\\.|[^\\'])'", text[i:])
            out.append(" " * len(m.group(0)))
            i += len(m.group(0))
        else:
            out.append(c)
            i += 1
    return "".join(out)


def expand_use(tree, offset=0):
    """The paths of a `use` tree, each with the position of its last item in the file:
    `a::{b, c::{d, e}}` -> ([a,b], pos of b), ([a,c,d], pos of d), ([a,c,e], pos of e)."""
    tokens = [(m.group(0), offset + m.start()) for m in re.finditer(r"[A-Za-z_][A-Za-z0-9_]*|::|[{},*]", tree)]
    paths = []

    def parse(i, prefix):
        """Parses one tree at tokens[i]; returns the index after it."""
        segs, pos = list(prefix), None
        while i < len(tokens):
            tok, at = tokens[i]
            if tok == "{":
                i += 1
                while i < len(tokens) and tokens[i][0] != "}":
                    i = parse(i, segs)
                    if i < len(tokens) and tokens[i][0] == ",":
                        i += 1
                return i + 1
            if tok in (",", "}"):
                break
            if tok == "as":
                i += 2
                continue
            if tok not in ("::", "*"):
                segs.append(tok)
                pos = at
            i += 1
        if pos is not None:
            paths.append((segs, pos))
        return i

    i = 0
    while i < len(tokens):
        i = parse(i, [])
        i += 1
    return paths


def module_path(src, path):
    """`src/a/b/c.rs` -> [a, b, c]; `src/a/b/mod.rs` -> [a, b]."""
    rel = os.path.relpath(path, src)[: -len(".rs")].split(os.sep)
    return rel[:-1] if rel[-1] == "mod" else rel


def resolve(segments, here):
    """The absolute module path a `crate::`/`super::`/`self::` path names, or None."""
    if not segments or segments[0] not in ("crate", "super", "self"):
        return None
    current = list(here)
    if segments[0] == "crate":
        current, rest = [], segments[1:]
    else:
        rest = segments
        while rest and rest[0] in ("super", "self"):
            if rest[0] == "super":
                current = current[:-1]
            rest = rest[1:]
    return current + [s for s in rest if s != "self"]


def layer(mod):
    if not mod:
        return "root"
    top = mod[0]
    if top in LEAVES:
        return "leaf"
    if top in ("lib", "main"):
        return "root"
    return top


def target_top(target):
    if not target:
        return None
    top = target[0]
    return ROOT_ITEMS.get(top, top)


def check(src):
    problems = []
    for dirpath, _, files in os.walk(src):
        for f in sorted(files):
            if not f.endswith(".rs"):
                continue
            path = os.path.join(dirpath, f)
            here = module_path(src, path)
            own = layer(here)
            text = open(path, encoding="utf-8").read()
            code = strip_code(text)
            line_of = lambda pos: code.count("\n", 0, pos) + 1
            rel = os.path.relpath(path, os.path.dirname(src))
            if here[:1] != ["config"]:
                for m in re.finditer(r"\bstd\s*::\s*env\b(?!!)|\benv\s*::\s*(var|vars|var_os|set_var)\b", code):
                    problems.append(f"{rel}:{line_of(m.start())}: the environment is read only in config (config::ToolEnv, config::log_filter)")
            if own in ("root", "app") or (here and here[0] in TOOLS):
                continue
            found = []  # (pos, absolute target)
            for m in re.finditer(r"\buse\s+([^;]*);", code):
                for segs, pos in expand_use(m.group(1), m.start(1)):
                    target = resolve(segs, here)
                    if target is not None:
                        found.append((pos, target))
            uses = [(m.start(), m.end()) for m in re.finditer(r"\buse\s+[^;]*;", code)]
            for m in re.finditer(r"(?<![A-Za-z0-9_:$])(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)", code):
                if any(a <= m.start() < b for a, b in uses):
                    continue
                target = resolve([m.group(1)] + m.group(2).split("::")[1:], here)
                found.append((m.start(), target))
            for pos, target in found:
                top = target_top(target)
                if top is None or top in ("lib", "main"):
                    continue
                where = f"{rel}:{line_of(pos)}"
                name = "::".join(target[:2])
                if top in TOOLS:
                    problems.append(f"{where}: {own} imports the tool module `{name}` (tools are not part of the library)")
                elif top not in ALLOWED.get(own, set()) and top in ALLOWED.keys() | LEAVES | {"app"}:
                    problems.append(f"{where}: {own} may not import `{name}` (imports point downward: {ORDER})")
                elif here[:2] == ["store", "redis"] and target[:2] == ["store", "pg"]:
                    problems.append(f"{where}: store/redis may not import `{name}` (store/pg uses redis types, not the other way round)")
    return problems


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    src = os.path.normpath(src)
    problems = check(src)
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} layer violation(s)", file=sys.stderr)
        return 1
    print("layers: every import points downward")
    return 0


if __name__ == "__main__":
    sys.exit(main())
