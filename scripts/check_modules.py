#!/usr/bin/env python3
"""Checks the crate's module graph: the layering of the top-level modules and no import cycle
between sibling modules at any depth (the rules of issue 9, "The house").

    python3 scripts/check_modules.py [--graph]

An edge A -> B is any path A's code names that resolves into B: `use` trees (braces expanded)
and inline paths, with `crate::`, `super::` and `self::`. Test code is left out (files named
`tests.rs`, `*_tests.rs`, `testing.rs`, files under a `tests/` folder, and an inline
`#[cfg(test)] mod tests` at the end of a file), as are comments. Exits 1 with the offending
edges or cycles, 0 when the graph is clean. Run by `.ci/run`.
"""

import re
import sys
from pathlib import Path

# Each top-level module may name only modules listed before it.
LAYERS = ["text", "policy", "engine", "wire", "layer", "playground", "proxy", "eval", "cli"]
ROOT = Path(__file__).resolve().parent.parent / "src"


def module_of(path: Path) -> tuple:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return tuple(parts)


def is_test_file(path: Path) -> bool:
    rel = path.relative_to(ROOT)
    return (
        path.name in ("tests.rs", "testing.rs")
        or path.name.endswith("_tests.rs")
        or "tests" in rel.parts[:-1]
    )


def strip(src: str) -> str:
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    src = re.sub(r"//[^\n]*", "", src)
    src = re.sub(r'"(?:\\.|[^"\\])*"', '""', src)
    cut = re.search(r"#\[cfg\(test\)\]\s*mod tests\s*\{", src)
    return src[: cut.start()] if cut else src


def expand(tree: str) -> list:
    """`a::{b, c::{d, e}}` -> ['a::b', 'a::c::d', 'a::c::e']."""
    tree = re.sub(r"\s+", "", tree)
    brace = tree.find("{")
    if brace < 0:
        return [re.sub(r"as\w+$", "", tree)]
    prefix, inner = tree[:brace], tree[brace + 1 : tree.rindex("}")]
    items, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    items.append(cur)
    return [p for it in items if it for p in expand(prefix + it)]


def references(path: Path, module: tuple) -> set:
    src = strip(path.read_text())
    paths = []
    for m in re.finditer(r"\buse\s+([^;]+);", src):
        paths += expand(m.group(1))
    paths += re.findall(r"\b(?:crate|super|self)(?:::\w+)+", src)
    # `super` of a file module is its parent; a mod.rs file is the folder's module itself.
    refs = set()
    for p in paths:
        segs = [s for s in p.split("::") if s]
        if not segs:
            continue
        if segs[0] == "crate":
            refs.add(tuple(segs[1:]))
        elif segs[0] in ("super", "self"):
            base = list(module)
            while segs and segs[0] in ("super", "self"):
                if segs.pop(0) == "super":
                    base = base[:-1]
            refs.add(tuple(base + segs))
    return refs


def main() -> int:
    files = [p for p in ROOT.rglob("*.rs") if not is_test_file(p)]
    refs = {module_of(p): references(p, module_of(p)) for p in files}
    modules = set(refs)

    def resolve(ref):
        for k in range(len(ref), 0, -1):
            if ref[:k] in modules:
                return ref[:k]
        return None

    edges = set()
    for a, rs in refs.items():
        for r in rs:
            b = resolve(r)
            if not b or not a:
                continue
            # The edge between the two siblings under their deepest common parent.
            k = 0
            while k < min(len(a), len(b)) and a[k] == b[k]:
                k += 1
            if k < len(a) and k < len(b):
                edges.add((a[: k + 1], b[: k + 1]))

    problems = []
    for a, b in sorted(edges):
        if len(a) == 1 and a[0] in LAYERS and b[0] in LAYERS:
            if LAYERS.index(b[0]) > LAYERS.index(a[0]):
                problems.append(f"layering: {a[0]} names {b[0]}, which sits above it")
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    for comp in sccs(graph):
        names = sorted("::".join(m) for m in comp)
        problems.append("cycle: " + " <-> ".join(names))
    if "--graph" in sys.argv:
        for a in sorted(graph):
            print("::".join(a), "->", ", ".join(sorted("::".join(b) for b in graph[a])))
    for p in problems:
        print(p)
    print(f"{len(modules)} modules, {len(edges)} sibling edges, {len(problems)} problems")
    return 1 if problems else 0


def sccs(graph: dict) -> list:
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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
                out.append(comp)

    sys.setrecursionlimit(10000)
    for v in list(graph):
        if v not in index:
            visit(v)
    return out


if __name__ == "__main__":
    sys.exit(main())
