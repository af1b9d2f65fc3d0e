#!/usr/bin/env bash
# Runs the corpus oracle (the real module system, Nix 2.8, ../shared/nixpkgs-lib) on one
# configuration by hand, as tests/corpus.rs does:
#
#   tests/corpus/oracle.sh tests/corpus/<name> ['{"services.jellyfin.enable": true}']
#
# Prints, per target of _expect/<name>.json, { hostName, full, defined, errors } (see
# _oracle/lib.nix). Needs ../shared/nixpkgs-lib (and ../shared/flake-parts for flake-parts).
set -euo pipefail
dir=$(cd "$1" && pwd)
conditions=${2:-'{}'}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
shared=$(cd "$repo/../shared" && pwd)
flavour=$(jq -r '.flavour' "$here/_expect/$(basename "$dir").json")
kind=$(jq -r '.kind' "$here/_expect/$(basename "$dir").json")
export TAILSHIFT_ORACLE
TAILSHIFT_ORACLE=$(jq -cn --arg o "$here/_oracle" --arg l "$shared/nixpkgs-lib" --arg f "$flavour" \
  --argjson c "$conditions" '{oracleDir:$o, nixpkgsLib:$l, flavour:$f, conditions:$c}')
if [ "$kind" = flake ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  cp -r "$dir/." "$tmp/"
  (cd "$tmp" && git init -q . && git add -A)
  overrides=()
  while IFS=$'\t' read -r name src; do
    case "$src" in
      oracle:*) src="$here/_oracle/${src#oracle:}" ;;
      shared:*) src="$shared/${src#shared:}" ;;
    esac
    overrides+=(--override-input "$name" "path:$src")
  done < <(jq -r '.inputs | to_entries[] | "\(.key)\t\(.value)"' "$here/_expect/$(basename "$dir").json")
  for t in $(jq -r '.targets[]' "$here/_expect/$(basename "$dir").json"); do
    echo "== $t"
    nix --extra-experimental-features 'nix-command flakes' eval --json --impure \
      --no-write-lock-file "${overrides[@]}" "$tmp#$t.tailshiftOracle"
    echo
  done
else
  for t in $(jq -r '.targets[]' "$here/_expect/$(basename "$dir").json"); do
    echo "== $t"
    nix-instantiate --eval --strict --json -E "
      let o = import $here/_oracle/lib.nix (builtins.fromJSON (builtins.getEnv \"TAILSHIFT_ORACLE\"));
      in (o.nixosSystem { modules = [ $dir/$t ]; }).tailshiftOracle"
    echo
  done
fi
