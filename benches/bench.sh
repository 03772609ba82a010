#!/usr/bin/env bash
# The project's benchmark: release build, loopback only, stops by itself.
#   1. the load generator straight against the simulator (the ceiling),
#   2. the SMPP engine alone (`smsgw serve --sink`),
#   3. the full pipeline SMPP → router → reservation → journal → uplink → simulator,
#      with durability fsync and memory, without and with receipts.
# Each run prints one JSON line; COUNT and SESSIONS/WINDOW can be overridden.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-300000}
SESSIONS=${SESSIONS:-4}
WINDOW=${WINDOW:-64}
cargo build --release -p smsgw -p benches --bins
bin=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

wait_port() { for _ in $(seq 1 100); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
load() { echo -n "$1 "; "$bin/smpp-load" --sessions "$SESSIONS" --window "$WINDOW" --count "$COUNT" "${@:2}"; }

"$bin/smsc-sim" --listen 127.0.0.1:2776 >/dev/null 2>&1 &
wait_port 2776
load "ceiling(sim)" --target 127.0.0.1:2776
load "ceiling(sim)+receipts" --target 127.0.0.1:2776 --registered-delivery

RUST_LOG=warn "$bin/smsgw" serve --sink --config /dev/null >/dev/null 2>&1 &
sink=$!
wait_port 2775
load "engine(sink)" --target 127.0.0.1:2775
kill -INT $sink; wait $sink || true

# The example config, with a wider uplink window (the simulator answers in microseconds,
# so 64 in flight on one uplink would cap the pipeline, not the gateway).
for run in memory fsync fsync-nobilling; do
  mode=${run%-nobilling}
  dir="$work/$run"; mkdir -p "$dir"
  sed -e "s/^mode = .*/mode = \"$mode\"/" -e "s/^window = 64/window = 512/" \
      deploy/smsgw.example.toml > "$dir/smsgw.toml"
  if [ "$run" = fsync-nobilling ]; then printf '\n[storage]\nbilling = false\n' >> "$dir/smsgw.toml"; fi
  RUST_LOG=warn "$bin/smsgw" serve --config "$dir/smsgw.toml" >"$dir/log" 2>&1 &
  gw=$!
  wait_port 2775
  sleep 0.5
  load "pipeline($run)" --target 127.0.0.1:2775 --system-id demo --password demo
  load "pipeline($run)+receipts" --target 127.0.0.1:2775 --system-id demo --password demo --registered-delivery
  kill -TERM $gw; wait $gw || true
  if [ "$run" != fsync-nobilling ]; then "$bin/smsgw" billing reconcile --config "$dir/smsgw.toml" 2>/dev/null | tail -2; fi
done
