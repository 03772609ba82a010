#!/usr/bin/env bash
# What tracing costs: the pipeline with telemetry off, then exporting every trace's spans
# to an OTLP collector (otlp-sink, which only counts them) at 1% and at 100% sampling.
# Memory journal, billing off: the configuration where the gateway's own CPU is most of
# the work, so tracing's share shows most. The three runs alternate ROUNDS times (the
# machine's noise spreads over all three); the table gives each one's median msg/s and
# its ratio to "off". Release build, loopback only, stops by itself. COUNT, SESSIONS,
# WINDOW and ROUNDS can be overridden.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-300000}
SESSIONS=${SESSIONS:-4}
WINDOW=${WINDOW:-64}
ROUNDS=${ROUNDS:-3}
source benches/lib.sh
bench_setup
results="$work/results.jsonl"

"$bin/smsc-sim" --listen 127.0.0.1:2776 >/dev/null 2>&1 &
wait_port 2776
"$bin/otlp-sink" --listen 127.0.0.1:4317 >"$work/sink.json" &
sink=$!
wait_port 4317

for round in $(seq 1 "$ROUNDS"); do
  for sampling in off 0.01 1.0; do
    dir="$work/$round-$sampling"; mkdir -p "$dir"
    gateway_config "$dir" memory off
    if [ "$sampling" != off ]; then
      printf '\n[telemetry]\notlp_endpoint = "http://127.0.0.1:4317"\nsample_ratio = %s\n' "$sampling" >>"$dir/smsgw.toml"
    fi
    RUST_LOG=warn "$bin/smsgw" serve --config "$dir/smsgw.toml" >"$dir/log" 2>&1 &
    gw=$!
    wait_port 2775
    sleep 0.5
    line=$("$bin/smpp-load" --sessions "$SESSIONS" --window "$WINDOW" --count "$COUNT" \
      --target 127.0.0.1:2775 --system-id demo --password demo)
    echo "round $round sampling=$sampling $line"
    echo "{\"sampling\":\"$sampling\",\"report\":$line}" >>"$results"
    kill -TERM $gw; wait $gw || true
  done
done
kill -INT $sink; wait $sink || true
echo "collector: $(cat "$work/sink.json")"

python3 - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["sampling"], []).append(r["report"]["throughput_per_s"])
off = statistics.median(by["off"])
print("\n| tracing | median msg/s | runs | of off |")
print("|---|---|---|---|")
for sampling, label in [("off", "off"), ("0.01", "OTLP export, 1% sampled"), ("1.0", "OTLP export, every trace")]:
    runs = by.get(sampling, [])
    if not runs:
        continue
    m = statistics.median(runs)
    print(f"| {label} | {m:,.0f} | {', '.join(f'{x:,.0f}' for x in runs)} | {100 * m / off:.1f}% |")
PY
