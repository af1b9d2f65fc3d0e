#!/usr/bin/env python3
"""The code's shape, as issue 16 sets it: no function over 150 lines, no non-test source file over
700 lines (tables of data excepted, listed below), and no `use` cycle between the modules of the
proxy, of apply and of the Nix evaluator. Prints every violation; exit 1 if any.

Lines are counted on rustfmt-formatted code: a function runs from its `fn` line to the closing
brace at the same indentation; a file's `#[cfg(test)]` module does not count toward its size.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
MAX_FN = 150
MAX_FILE = 700
# Tables of data: the evaluator's builtin table may stay whole.
TABLES = {"parsers/src/nix/builtins.rs"}
# Module trees that must have no `use` cycle (directory, crate path of its modules).
ACYCLIC = [("proxy/src", "crate"), ("src/apply", "crate::apply"), ("parsers/src/nix", "crate::nix")]
SOURCES = ["src", "util/src", "parsers/src", "routes/src", "plans/src", "tailscale/src",
           "shims/src", "proxy/src", "checks/src", "demo/src"]

FN = re.compile(r"^(\s*)(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)")


def non_test_lines(lines):
    """The lines before a trailing `#[cfg(test)]` module."""
    for i, l in enumerate(lines):
        if l.startswith("#[cfg(test)]"):
            return lines[:i]
    return lines


def long_functions(path, lines):
    out = []
    for i, l in enumerate(lines):
        m = FN.match(l)
        if not m or l.rstrip().endswith(";"):
            continue
        indent = m.group(1)
        # The body ends at the first `}` line at the fn's own indentation.
        for j in range(i + 1, len(lines)):
            if lines[j].rstrip() == indent + "}":
                n = j - i + 1
                if n > MAX_FN:
                    out.append(f"{path}:{i + 1}: fn {m.group(7)} is {n} lines (at most {MAX_FN})")
                break
    return out


def module_of(base: pathlib.Path, prefix: str, f: pathlib.Path) -> str:
    rel = f.relative_to(base).with_suffix("")
    parts = [p for p in rel.parts if p not in ("mod", "lib", "main")]
    return "::".join([prefix] + parts) if parts else prefix


USE = re.compile(r"\b(crate|super)((?:::\w+)+)")


def cycles(base_rel, prefix):
    base = ROOT / base_rel
    if not base.is_dir():
        return []
    mods = {}
    for f in sorted(base.rglob("*.rs")):
        mods[module_of(base, prefix, f)] = f
    edges = {m: set() for m in mods}
    for m, f in mods.items():
        text = "\n".join(non_test_lines(f.read_text().splitlines()))
        parent = m.rsplit("::", 1)[0] if f.name not in ("mod.rs", "lib.rs") else m
        for root, rest in USE.findall(text):
            path = (prefix.split("::")[0] if root == "crate" else parent) + rest
            # The longest known module the path names.
            parts = path.split("::")
            while parts and "::".join(parts) not in mods:
                parts.pop()
            target = "::".join(parts)
            if target and target != m and target != prefix:
                edges[m].add(target)
    # Tarjan's strongly connected components.
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
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
                out.append(f"{base_rel}: use cycle between " + ", ".join(sorted(comp)))

    sys.setrecursionlimit(10000)
    for v in mods:
        if v not in index:
            visit(v)
    return out


def main() -> int:
    problems = []
    for d in SOURCES:
        base = ROOT / d
        if not base.is_dir():
            continue
        for f in sorted(base.rglob("*.rs")):
            rel = str(f.relative_to(ROOT))
            lines = f.read_text().splitlines()
            body = non_test_lines(lines)
            if rel not in TABLES and len(body) > MAX_FILE:
                problems.append(f"{rel}: {len(body)} lines outside tests (at most {MAX_FILE})")
            if rel not in TABLES:
                problems.extend(long_functions(rel, body))
    for base, prefix in ACYCLIC:
        problems.extend(cycles(base, prefix))
    for p in problems:
        print(f"shape: {p}", file=sys.stderr)
    if not problems:
        print("shape: every function and file within bounds, no use cycle")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
