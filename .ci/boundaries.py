#!/usr/bin/env python3
"""Fails when a crate of the workspace depends on a sibling outside its allow-list.

Reads `cargo metadata` (or a saved copy: --metadata FILE) and `.ci/crate-boundaries.toml`.
Normal and build dependencies count; dev-dependencies (tests, benches) may use any crate.
Exit 0: every arrow is allowed; 1: a forbidden arrow or an unlisted crate (each printed).
"""
import argparse
import json
import pathlib
import subprocess
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--metadata", help="a saved `cargo metadata --format-version 1` document")
    ap.add_argument("--rules", default=str(ROOT / ".ci" / "crate-boundaries.toml"))
    args = ap.parse_args()
    if args.metadata:
        meta = json.loads(pathlib.Path(args.metadata).read_text())
    else:
        out = subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--no-deps", "--offline"],
            cwd=ROOT, check=True, capture_output=True, text=True,
        ).stdout
        meta = json.loads(out)
    rules = tomllib.loads(pathlib.Path(args.rules).read_text())
    allow = rules["allow"]
    everyone = set(rules.get("everyone", {}).get("may_use", []))
    ours = {p["name"] for p in meta["packages"]}
    problems = []
    for p in sorted(meta["packages"], key=lambda p: p["name"]):
        name = p["name"]
        if name not in allow:
            problems.append(f"{name}: not listed in {args.rules}; say which crates it may use")
            continue
        allowed = set(allow[name]) | everyone
        for d in p["dependencies"]:
            if d["name"] not in ours or d.get("kind") == "dev":
                continue
            if "*" in allowed or d["name"] in allowed:
                continue
            kind = d.get("kind") or "normal"
            problems.append(
                f"{name} -> {d['name']} ({kind} dependency): not allowed; "
                f"{name} may use {sorted(allowed) or 'no crate of ours'}"
            )
    for line in problems:
        print(f"crate boundary: {line}", file=sys.stderr)
    if not problems:
        print(f"crate boundaries: {len(ours)} crates, every dependency allowed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
