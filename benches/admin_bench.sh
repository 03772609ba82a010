#!/usr/bin/env bash
# Route changes under load (issue 11's benchmark). The same rate-capped load (RATE msg/s
# for DURATION s, SESSIONS × WINDOW) goes through a fresh gateway twice: once untouched,
# once while an admin replaces the MT routing every INTERVAL s (a StaticMTRoute matching
# every number is added above the default route, then removed, over and over, through
# `smsgw admin`). For each run: what the load generator saw (accepted, refused, p99
# submit→resp), how many changes were applied, and what reached the operator, which
# must equal what was accepted. Release build, loopback only, stops by itself.
# MODE (memory|fsync) and BILLING (off|sqlite) pick the gateway's configuration.
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${RATE:-50000}
DURATION=${DURATION:-10}
INTERVAL=${INTERVAL:-0.5}
SESSIONS=${SESSIONS:-4}
WINDOW=${WINDOW:-64}
MODE=${MODE:-memory}
BILLING=${BILLING:-off}
cargo build --release -p smsgw -p benches --bins
bin=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
admin_addr=127.0.0.1:50061
token=bench-admin-token

wait_port() { for _ in $(seq 1 200); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
admin() { "$bin/smsgw" admin --server "http://$admin_addr" --token "$token" "$@" >/dev/null; }

config() {
  local dir=$1
  sed -e "s/^mode = .*/mode = \"$MODE\"/" -e "s/^window = 64/window = 512/" \
      -e "s#^dir = .*#dir = \"$dir/journal\"#" \
      deploy/smsgw.example.toml >"$dir/smsgw.toml"
  case $BILLING in
    off) printf '\n[storage]\nbilling = false\n' >>"$dir/smsgw.toml" ;;
    *) printf '\n[storage]\nurl = "sqlite://%s/billing.db"\n' "$dir" >>"$dir/smsgw.toml" ;;
  esac
  printf '\n[admin]\nlisten = "%s"\ntokens = [{ name = "bench", token = "%s" }]\n' \
    "$admin_addr" "$token" >>"$dir/smsgw.toml"
}

# Adds and removes the all-numbers route until told to stop; prints how many changes.
churn() {
  local stop=$1 changes=0
  admin filter add --fid every --type DestinationAddrFilter --value '.'
  until [ -e "$stop" ]; do
    admin route mt add --order 5 --type StaticMTRoute --connector sim --filter every --rate 0.02
    admin route mt remove --order 5
    changes=$((changes + 2))
    sleep "$INTERVAL"
  done
  echo "$changes"
}

run() {
  local name=$1 dir="$work/$1"
  mkdir -p "$dir"
  config "$dir"
  "$bin/smsc-sim" --listen 127.0.0.1:2776 >"$dir/sim.out" 2>&1 &
  local sim=$!
  wait_port 2776
  RUST_LOG=warn "$bin/smsgw" --log-json serve --config "$dir/smsgw.toml" >"$dir/log" 2>&1 &
  local gw=$!
  wait_port 2775
  wait_port "${admin_addr##*:}"
  sleep 0.5
  local churner=""
  if [ "$name" = changes ]; then
    churn "$dir/stop" >"$dir/changes" &
    churner=$!
  fi
  local line
  line=$("$bin/smpp-load" --target 127.0.0.1:2775 --system-id demo --password demo \
    --sessions "$SESSIONS" --window "$WINDOW" --rate "$RATE" --duration "$DURATION")
  local changes=0
  if [ -n "$churner" ]; then touch "$dir/stop"; wait "$churner"; changes=$(cat "$dir/changes"); fi
  # Let the uplink drain what it accepted, then ask the operator what it got.
  sleep 2
  kill -TERM $gw; wait $gw || true
  kill -INT $sim; wait $sim || true
  local received
  received=$(tail -1 "$dir/sim.out")
  echo "{\"run\":\"$name\",\"changes\":$changes,\"load\":$line,\"operator\":$received}" | tee -a "$work/results.jsonl"
}

run baseline
run changes
python3 - "$work/results.jsonl" "$RATE" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"\n| run (offered {int(sys.argv[2]):,} msg/s) | admin changes | accepted | refused | reached the operator | msg/s | p99 submit→resp (ms) |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    load = r["load"]
    print(f"| {r['run']} | {r['changes']} | {load['accepted']:,} | {load['rejected']:,} | "
          f"{r['operator']['accepted']:,} | {load['throughput_per_s']:,.0f} | {load['latency_us']['p99'] / 1000:.1f} |")
base, changed = rows[0]["load"]["latency_us"]["p99"], rows[1]["load"]["latency_us"]["p99"]
print(f"\np99 with changes / without: {changed / max(base, 1):.2f}")
for r in rows:
    lost = r["load"]["accepted"] - r["operator"]["accepted"]
    if lost:
        print(f"{r['run']}: {lost} accepted messages did not reach the operator")
EOF
