#!/usr/bin/env bash
# REST API v1 under load: wrk keeps connections alive and POSTs /api/v1/sms/send (one
# recipient, JSON, Bearer key) into the full pipeline (fsync journal, billing on SQLite,
# the SMSC simulator as the operator), once without and once with an Idempotency-Key
# per request. Release build, loopback only, stops by itself. DURATION, CONNECTIONS and
# THREADS can be overridden.
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
# The example config (fsync, billing on) with a wider uplink window, as bench.sh; the
# SQLite store in the work directory.
sed -e "s/^window = 64/window = 512/" deploy/smsgw.example.toml > "$work/smsgw.toml"
RUST_LOG=warn "$bin/smsgw" serve --config "$work/smsgw.toml" >"$work/log" 2>&1 &
gw=$!
wait_port 1401
wait_port 2775
sleep 0.5
uid=$(grep -m1 '^uid' "$work/smsgw.toml" | sed -e 's/.*"\(.*\)".*/\1/')
key=$("$bin/smsgw" apikey create --config "$work/smsgw.toml" --user "$uid" \
  --scopes sms:send --rate 1000000 | sed -n 's/^secret (shown once): //p')
body='{"to":"255700000001","text":"benchmark"}'
curl -fsS -H "authorization: Bearer $key" -H 'content-type: application/json' \
  -d "$body" http://127.0.0.1:1401/api/v1/sms/send && echo
cat > "$work/send.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer $key"
LUA
cat > "$work/idem.lua" <<LUA
wrk.method = "POST"
wrk.body = '$body'
wrk.headers["content-type"] = "application/json"
wrk.headers["authorization"] = "Bearer $key"
counter = 0
request = function()
  counter = counter + 1
  wrk.headers["idempotency-key"] = tostring(math.random(1, 1e12)) .. "-" .. counter
  return wrk.format(nil)
end
LUA
echo "POST /api/v1/sms/send (fsync, billing)"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$work/send.lua" http://127.0.0.1:1401/api/v1/sms/send
echo "POST /api/v1/sms/send with Idempotency-Key (fsync, billing)"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s "$work/idem.lua" http://127.0.0.1:1401/api/v1/sms/send
kill -TERM $gw; wait $gw || true
