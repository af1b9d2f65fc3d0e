#!/usr/bin/env python3
"""Keeps ARCHITECTURE.md true: every name written as a path (`crate::module::item`, or
`module::item` for the binary's own modules) must still exist in that crate's sources, as an
item (`fn`, `struct`, `enum`, `trait`, `type`, `const`, `static`) or a module. Exit 1 naming
each missing one."""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
CRATES = {
    "tailshift_util": "util/src", "tailshift_parsers": "parsers/src",
    "tailshift_routes": "routes/src", "tailshift_plans": "plans/src",
    "tailshift_tailscale": "tailscale/src", "tailshift_shims": "shims/src",
    "tailshift_proxy": "proxy/src", "tailshift_checks": "checks/src",
    "tailshift_demo": "demo/src",
}
PATH = re.compile(r"`([a-z_][a-z0-9_]*(?:::[A-Za-z_][A-Za-z0-9_]*)+)`")


def exists(src: pathlib.Path, item: str) -> bool:
    item_re = re.compile(
        rf"\b(fn|struct|enum|trait|type|const|static|mod)\s+{re.escape(item)}\b"
        rf"|^\s*{re.escape(item)}\s*[({{,]", re.M)
    for f in src.rglob("*.rs"):
        if f.stem == item:
            return True
        if item_re.search(f.read_text()):
            return True
    return False


def main() -> int:
    text = (ROOT / "ARCHITECTURE.md").read_text()
    missing, checked = [], 0
    for path in sorted(set(PATH.findall(text))):
        parts = path.split("::")
        src = ROOT / CRATES.get(parts[0], "src")
        checked += 1
        if not src.is_dir() or not exists(src, parts[-1]):
            missing.append(path)
    for m in missing:
        print(f"ARCHITECTURE.md names `{m}`, which no longer exists", file=sys.stderr)
    if not missing:
        print(f"ARCHITECTURE.md: {checked} names, each exists")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
