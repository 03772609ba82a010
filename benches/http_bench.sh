#!/usr/bin/env bash
# Jasmin's HTTP API under load: wrk keeps connections alive and GETs /send into the full
# pipeline (fsync journal, billing on SQLite, the SMSC simulator as the operator), then
# the same messages over SMPP for comparison. Release build, loopback only, stops by
# itself. DURATION, CONNECTIONS and THREADS can be overridden.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
if ! command -v wrk >/dev/null; then
  apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
cargo build --release -p smsgw -p benches --bins
bin=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
wait_port() { for _ in $(seq 1 100); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

"$bin/smsc-sim" --listen 127.0.0.1:2776 >/dev/null 2>&1 &
wait_port 2776
# The example config (fsync, billing on) with a wider uplink window, as bench.sh.
sed -e "s/^window = 64/window = 512/" deploy/smsgw.example.toml > "$work/smsgw.toml"
RUST_LOG=warn "$bin/smsgw" serve --config "$work/smsgw.toml" >"$work/log" 2>&1 &
gw=$!
wait_port 1401
wait_port 2775
sleep 0.5
url='http://127.0.0.1:1401/send?username=demo&password=demo&to=255700000001&content=benchmark'
curl -fsS "$url" && echo
echo "http(/send, fsync, billing)"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$url"
echo -n "smpp(fsync, billing) "
"$bin/smpp-load" --sessions 4 --window 64 --count 300000 --target 127.0.0.1:2775 --system-id demo --password demo
kill -TERM $gw; wait $gw || true
"$bin/smsgw" billing reconcile --config "$work/smsgw.toml" 2>/dev/null | tail -2
