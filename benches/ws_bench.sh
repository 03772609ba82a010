#!/usr/bin/env bash
# The REST API's WebSocket fan-out: CLIENTS connections of one account follow its
# receipts while REST v1 sends (BATCH recipients each) are paced to RATE messages a
# second into the full pipeline (fsync journal, billing on SQLite, the simulator
# answering every submit with a receipt). Prints ws-fanout's JSON line. Release build,
# loopback only, stops by itself. CLIENTS, RATE, BATCH and DURATION_S can be overridden.
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${CLIENTS:-100}
RATE=${RATE:-10000}
BATCH=${BATCH:-500}
DURATION_S=${DURATION_S:-10}
source benches/lib.sh
bench_setup

"$bin/smsc-sim" --listen 127.0.0.1:2776 >/dev/null 2>&1 &
wait_port 2776
gateway_config "$work" fsync sqlite
RUST_LOG=warn "$bin/smsgw" serve --config "$work/smsgw.toml" >"$work/log" 2>&1 &
gw=$!
wait_port 1401
wait_port 2775
sleep 0.5
uid=$(grep -m1 '^uid' "$work/smsgw.toml" | sed -e 's/.*"\(.*\)".*/\1/')
key=$("$bin/smsgw" apikey create --config "$work/smsgw.toml" --user "$uid" \
  --scopes sms:send,sms:read --rate 1000000 | sed -n 's/^secret (shown once): //p')
echo -n "ws-fanout(fsync, billing) "
"$bin/ws-fanout" --key "$key" --clients "$CLIENTS" --rate "$RATE" --batch "$BATCH" --seconds "$DURATION_S"
kill -TERM $gw; wait $gw || true
"$bin/smsgw" billing reconcile --config "$work/smsgw.toml" 2>/dev/null | tail -2
