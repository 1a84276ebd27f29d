#!/usr/bin/env python3
"""No import circles between the top-level modules of a crate (issue 18).

For each crate source root given, every top-level module (`foo.rs` with
`foo/`) lists the other top-level modules its code names as `crate::x`
(test modules and comments aside); a strongly connected group of more
than one module is a circle, printed with the names that tie it, and the
check fails.

Usage: check-circles.py SRC_DIR[=MODULE]...
  e.g. msrp-engine/src, or src/kamailio=kamailio for a module directory of
  a crate (its files name each other as `crate::kamailio::x` or, from its
  top level, `super::x`).
"""
import os
import re
import sys

TEST_FILES = {"tests.rs", "flows.rs"}


def code_of(path):
    text = open(path, encoding="utf-8").read()
    text = text.split("#[cfg(test)]")[0]
    return "\n".join(l for l in text.split("\n") if not l.strip().startswith("//"))


def module_refs(root, module=None):
    prefix = f"crate::{module}::" if module else "crate::"
    refs = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            if not f.endswith(".rs") or f in TEST_FILES:
                continue
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, root)
            top = rel.split(os.sep)[0].removesuffix(".rs")
            if top in ("lib", "main", "mod"):
                continue
            code = code_of(path)
            names = set(re.findall(re.escape(prefix) + r"(\w+)", code))
            if module and os.sep not in rel:
                names |= set(re.findall(r"\bsuper::(\w+)", code))
            for group in re.findall(re.escape(prefix) + r"\{([^}]*)\}", code):
                names |= {m.group(1) for m in re.finditer(r"(?:^|,)\s*(\w+)", group)}
            refs.setdefault(top, {})
            for n in names - {top}:
                refs[top].setdefault(n, set()).add(rel)
    return {m: {n: w for n, w in r.items() if n in refs} for m, r in refs.items()}


def circles(graph):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main(roots):
    failed = False
    for arg in roots:
        root, _, module = arg.partition("=")
        graph = module_refs(root, module or None)
        for comp in circles(graph):
            failed = True
            print(f"import circle in {root}: {' <-> '.join(comp)}", file=sys.stderr)
            for m in comp:
                for n in sorted(set(graph[m]) & set(comp)):
                    files = ", ".join(sorted(graph[m][n]))
                    print(f"  {m} -> {n} (in {files})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
