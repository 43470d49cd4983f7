#!/usr/bin/env python3
"""Checks the crate's module graph: the layering of the top-level modules and no import cycle
between sibling modules at any depth (the rules of issue 9, "The house").

    python3 scripts/check_modules.py [--graph] [--why]

Modules are found as rustc finds them: from `src/lib.rs` through `mod` declarations (with
`#[path]`); modules declared under `#[cfg(test)]` are left out, as are `#[cfg(test)]` items
inside a file (matched by braces). Sources are lexed first (comments, plain / raw / byte
strings and char literals removed, lifetimes kept apart from chars).

An edge A -> B is a path A's code names — in a `use` tree (braces expanded) or inline, with
`crate::`, `super::` or `self::` — that resolves into B. Resolution follows re-exports: a path
ending in a name some module imports (`pub use` or a private `use`, which children see) is
followed to where that name comes from, so `use super::Foo` through a parent's re-export counts
as an edge to the sibling that defines `Foo`. Method calls on a type (`policy.scan(..)`) are not
paths and are not seen; neither are macros' expansions.

`--graph` prints every sibling edge; `--why` prints, for each problem, the references behind
it. Exits 1 on a problem, 0 when the graph is clean. Run by `.ci/run`.
"""

import re
import sys
from pathlib import Path

# Each top-level module may name only modules listed before it.
LAYERS = ["text", "policy", "engine", "wire", "layer", "playground", "proxy", "eval", "cli"]
ROOT = Path(__file__).resolve().parent.parent / "src"


def lex(src: str) -> str:
    """Source with comments, strings and char literals blanked (lifetimes kept)."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        prev = src[i - 1] if i else " "
        if src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
            continue
        if src.startswith("/*", i):
            depth = 0
            while i < n:
                if src.startswith("/*", i):
                    depth += 1
                    i += 2
                elif src.startswith("*/", i):
                    depth -= 1
                    i += 2
                    if depth == 0:
                        break
                else:
                    i += 1
            out.append(" ")
            continue
        word_start = not (prev.isalnum() or prev == "_")
        raw = re.match(r'b?r(#*)"', src[i:]) if c in "br" and word_start else None
        if raw:
            close = '"' + raw.group(1)
            j = src.find(close, i + raw.end())
            i = n if j < 0 else j + len(close)
            out.append('""')
            continue
        if c == '"' or (c == "b" and word_start and src.startswith('b"', i)):
            i += 2 if c == "b" else 1
            while i < n and src[i] != '"':
                i += 2 if src[i] == "\\" else 1
            i += 1
            out.append('""')
            continue
        if c == "'" or (c == "b" and word_start and src.startswith("b'", i)):
            start = i + (1 if c == "b" else 0)
            ch = re.match(r"'(?:\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|.)|[^\\'])'", src[start:])
            if ch:
                i = start + ch.end()
                out.append("'x'")
                continue
        out.append(c)
        i += 1
    return "".join(out)


def strip_cfg_test(src: str) -> str:
    """Removes every `#[cfg(test)]` item: up to its `;` or its matching `}`."""
    while True:
        m = re.search(r"#\[cfg\(test\)\]", src)
        if not m:
            return src
        k = m.end()
        while k < len(src) and src[k] not in ";{":
            k += 1
        if k < len(src) and src[k] == "{":
            depth = 0
            while k < len(src):
                depth += src[k] == "{"
                depth -= src[k] == "}"
                if depth == 0 and src[k] == "}":
                    break
                k += 1
        src = src[: m.start()] + src[k + 1 :]


def expand(tree: str) -> list:
    """`a::{b, c::{d as e}}` -> [('a::b', None), ('a::c::d', 'e')]."""
    tree = re.sub(r"\s*::\s*", "::", re.sub(r"\s+", " ", tree).strip())
    brace = tree.find("{")
    if brace < 0:
        m = re.match(r"(.*?)(?:\s+as\s+(\w+))?$", tree)
        return [(m.group(1).strip(), m.group(2))]
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
    out = []
    for it in (x.strip() for x in items):
        if it == "self":
            out.append((prefix.rstrip(":"), None))
        elif it:
            out += expand(prefix + it)
    return out


def find_modules() -> dict:
    """Module path -> file, following `mod` declarations from lib.rs (test modules left out)."""
    mods = {}

    def walk(path: Path, module: tuple):
        mods[module] = path
        orig = path.read_text()
        code = lex(orig)
        decl = r"((?:#\[[^\]]*\]\s*)*)(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;"
        for m in re.finditer(decl, code):
            attrs, name = m.group(1), m.group(2)
            if "cfg(test)" in attrs:
                continue
            here = path.parent if path.name in ("mod.rs", "lib.rs", "main.rs") else path.parent / path.stem
            if "#[path" in attrs:
                at = re.search(r'#\[path\s*=\s*"([^"]+)"\][^;]*?mod\s+' + name + r"\s*;", orig, re.S)
                target = path.parent / at.group(1)
            else:
                target = here / f"{name}.rs"
                if not target.exists():
                    target = here / name / "mod.rs"
            walk(target, module + (name,))

    walk(ROOT / "lib.rs", ())
    return mods


def main() -> int:
    mods = find_modules()
    code = {m: strip_cfg_test(lex(p.read_text())) for m, p in mods.items()}
    modules = set(mods)
    children = {}
    for m in modules:
        if m:
            children.setdefault(m[:-1], set()).add(m[-1])

    def absolute(module: tuple, segs: list):
        if not segs:
            return None
        if segs[0] in ("crate", "$crate"):
            return tuple(segs[1:])
        if segs[0] in ("super", "self"):
            base = list(module)
            while segs and segs[0] in ("super", "self"):
                if segs.pop(0) == "super":
                    base = base[:-1]
            return tuple(base + segs)
        if segs[0] in children.get(module, ()):
            return module + tuple(segs)
        return None  # another crate, or a name of this module

    imports, refs = {}, {}
    for m, src in code.items():
        imported, found = {}, []
        for u in re.finditer(r"\buse\s+([^;]+);", src):
            for path, alias in expand(u.group(1)):
                segs = [s for s in path.split("::") if s]
                if not segs or segs[-1] == "*":
                    segs = segs[:-1]
                    target = absolute(m, segs)
                    if target:
                        found.append(target)
                    continue
                target = absolute(m, segs)
                if target:
                    imported[alias or segs[-1]] = target
                    found.append(target)
        inline = r"(?<![\w:])((?:\$?crate|super|self)(?:\s*::\s*\w+)+)"
        for p in re.finditer(inline, src):
            target = absolute(m, [s.strip() for s in p.group(1).split("::")])
            if target:
                found.append(target)
        imports[m], refs[m] = imported, found

    def resolve(path: tuple, depth: int = 0):
        """The module that defines what `path` names, through re-exports."""
        for k in range(len(path), -1, -1):
            if path[:k] in modules:
                module, rest = path[:k], path[k:]
                if rest and rest[0] in imports.get(module, {}) and depth < 20:
                    target = imports[module][rest[0]] + rest[1:]
                    if target != path:
                        found = resolve(target, depth + 1)
                        if found is not None:
                            return found
                return module
        return None

    edges = {}
    for a, found in refs.items():
        for r in found:
            b = resolve(r)
            if b is None:
                continue
            k = 0
            while k < min(len(a), len(b)) and a[k] == b[k]:
                k += 1
            if k < len(a) and k < len(b):
                edges.setdefault((a[: k + 1], b[: k + 1]), []).append((a, r))

    name = "::".join
    problems = []
    for a, b in sorted(edges):
        if len(a) == 1 and a[0] in LAYERS and b[0] in LAYERS and LAYERS.index(b[0]) > LAYERS.index(a[0]):
            problems.append((f"layering: {a[0]} names {b[0]}, which sits above it", [(a, b)]))
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    for comp in sccs(graph):
        inside = set(comp)
        pairs = [(a, b) for (a, b) in sorted(edges) if a in inside and b in inside]
        problems.append(("cycle: " + " <-> ".join(sorted(name(m) for m in comp)), pairs))
    if "--graph" in sys.argv:
        for a in sorted(graph):
            print(name(a), "->", ", ".join(sorted(name(b) for b in graph[a])))
    for text, pairs in problems:
        print(text)
        if "--why" in sys.argv:
            for a, b in pairs:
                shown = sorted({f"{mods[m].relative_to(ROOT)}: {name(r)}" for m, r in edges[(a, b)]})
                print(f"  {name(a)} -> {name(b)}: " + "; ".join(shown[:4]))
    print(f"{len(modules)} modules, {len(edges)} sibling edges, {len(problems)} problems")
    return 1 if problems else 0


def sccs(graph: dict) -> list:
    """Strongly connected components of more than one node (Tarjan)."""
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
