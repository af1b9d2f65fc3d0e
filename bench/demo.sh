#!/usr/bin/env bash
# Times `migrate demo` (the README's first command) after the build: RUNS runs (default 3) of
# the release binary, each printing its wall time, the demo's own elapsed time, and the
# proxies' figures from the JSON summary. Usage: bench/demo.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"
cargo build --release -q
for i in $(seq 1 "$runs"); do
  start=$(date +%s.%N)
  ./target/release/migrate demo --format json 2>/dev/null > /tmp/tailshift-demo-bench.json
  end=$(date +%s.%N)
  python3 - "$start" "$end" <<'PY'
import json, sys
s = json.load(open("/tmp/tailshift-demo-bench.json"))
wall = float(sys.argv[2]) - float(sys.argv[1])
p = {x["host"]: x for x in s["proxies"]["proxies"]}
print(f"wall {wall:.1f} s (demo {s['elapsed_s']:.1f} s), ok={s['ok']}, waves {len(s['waves'])}, "
      f"requests {s['requests']['total']} / failed {s['requests']['failed']}, "
      f"proxy storage {p['storage']['routes']} routes RSS {p['storage']['rss_kib']/1024:.1f} MB CPU {p['storage']['cpu_ms']} ms, "
      f"proxy cloud {p['cloud']['routes']} routes RSS {p['cloud']['rss_kib']/1024:.1f} MB CPU {p['cloud']['cpu_ms']} ms")
PY
done
rm -f /tmp/tailshift-demo-bench.json
