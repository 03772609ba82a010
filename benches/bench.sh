#!/usr/bin/env bash
# The project's benchmark: release build, loopback only, stops by itself.
#   1. the load generator straight against the simulator (the ceiling);
#   2. the SMPP engine alone (`smsgw serve --sink`);
#   3. the full pipeline SMPP → router → reservation → journal → uplink → simulator in the
#      configurations of issue 12's table: memory journal and fsync, billing off and on
#      (SQLite, the default; PostgreSQL when SMSGW_BENCH_POSTGRES_URL is set), each without
#      and with a receipt for every message;
#   4. resident memory per idle bound session (IDLE sessions, 10,000 by default);
#   5. cold start to the first accepted bind with a journal of JOURNAL_MB (1024) to replay;
#   6. open loop: OPEN_RATE msg/s (50,000) offered on a fixed schedule for OPEN_SECONDS
#      (10) to a fresh gateway in the default configuration, latency counted from when
#      each message was due; the p99 of every second, the first one included.
# Each run prints one JSON line; the table at the end gives msg/s, p99 and the ratio to
# the ceiling. COUNT, SESSIONS, WINDOW, IDLE, JOURNAL_MB and ONLY (a regex of run names)
# OPEN_RATE and OPEN_SECONDS can be overridden.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${COUNT:-300000}
SESSIONS=${SESSIONS:-4}
WINDOW=${WINDOW:-64}
IDLE=${IDLE:-10000}
JOURNAL_MB=${JOURNAL_MB:-1024}
ONLY=${ONLY:-.}
OPEN_RATE=${OPEN_RATE:-50000}
OPEN_SECONDS=${OPEN_SECONDS:-10}
source benches/lib.sh
bench_setup
results="$work/results.jsonl"

wanted() { [[ "$1" =~ $ONLY ]]; }
load() {
  local name=$1; shift
  local line
  line=$("$bin/smpp-load" --sessions "$SESSIONS" --window "$WINDOW" --count "$COUNT" "$@")
  echo "$name $line"
  echo "{\"run\":\"$name\",\"report\":$line}" >>"$results"
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# Each configuration gets a simulator of its own and a disk with nothing left to write
# back from the one before. With a simulator that had just answered 600,000 submits with
# receipts and the previous runs' journals still on disk, the runs that followed lost a
# third or more (memory journal: 91k msg/s after the ceiling runs, 250k without them;
# which of the two weighs more was not measured).
sim=
fresh_sim() {
  if [ -n "$sim" ]; then kill "$sim"; wait "$sim" 2>/dev/null || true; fi
  sync
  "$bin/smsc-sim" --listen 127.0.0.1:2776 >/dev/null 2>&1 &
  sim=$!
  wait_port 2776
}

# The gateway on "$1/smsgw.toml", logging to "$1/log"; its pid in $gw.
start_gateway() {
  RUST_LOG=warn,smsgw=info "$bin/smsgw" --log-json serve --config "$1/smsgw.toml" >"$1/log" 2>&1 &
  gw=$!
}
stop_gateway() { kill -TERM "$gw"; wait "$gw" || true; }

fresh_sim
if wanted ceiling; then
  load "ceiling(sim)" --target 127.0.0.1:2776
  load "ceiling(sim)+receipts" --target 127.0.0.1:2776 --registered-delivery
fi

if wanted engine; then
  RUST_LOG=warn "$bin/smsgw" serve --sink --config /dev/null >/dev/null 2>&1 &
  sink=$!
  wait_port 2775
  load "engine(sink)" --target 127.0.0.1:2775
  kill -INT $sink; wait $sink || true
fi

runs="memory/off fsync/off fsync/sqlite"
if [ -n "${SMSGW_BENCH_POSTGRES_URL:-}" ]; then runs="$runs fsync/postgres"; fi
for run in $runs; do
  mode=${run%/*}; billing=${run#*/}
  name="pipeline($mode,billing=$billing)"
  wanted "$name" || continue
  dir="$work/$mode-$billing"; mkdir -p "$dir"
  fresh_sim
  store=$billing
  if [ "$billing" = postgres ]; then
    store=$SMSGW_BENCH_POSTGRES_URL
    psql "$store" -qc 'DROP SCHEMA public CASCADE; CREATE SCHEMA public;' >/dev/null
  fi
  gateway_config "$dir" "$mode" "$store"
  start_gateway "$dir"
  wait_port 2775
  sleep 0.5
  load "$name" --target 127.0.0.1:2775 --system-id demo --password demo
  load "$name+receipts" --target 127.0.0.1:2775 --system-id demo --password demo --registered-delivery
  stop_gateway
  if [ "$billing" != off ]; then "$bin/smsgw" billing reconcile --config "$dir/smsgw.toml" 2>/dev/null | tail -2; fi
  rm -rf "$dir"
done

if wanted open-loop; then
  # The tool's own floor first: the same schedule straight to the simulator.
  line=$("$bin/smpp-load" --sessions "$SESSIONS" --window "$WINDOW" --target 127.0.0.1:2776 \
    --rate "$OPEN_RATE" --open-loop --duration "$OPEN_SECONDS")
  echo "open-loop(sim) $line"
  echo "{\"run\":\"open-loop(sim)\",\"report\":$line}" >>"$results"
  fresh_sim
  dir="$work/open-loop"; mkdir -p "$dir"
  gateway_config "$dir" fsync sqlite
  start_gateway "$dir"
  wait_port 2775
  sleep 0.5
  line=$("$bin/smpp-load" --sessions "$SESSIONS" --window "$WINDOW" --target 127.0.0.1:2775 \
    --system-id demo --password demo --rate "$OPEN_RATE" --open-loop --duration "$OPEN_SECONDS")
  echo "open-loop(fsync,billing=sqlite) $line"
  echo "{\"run\":\"open-loop(fsync,billing=sqlite)\",\"report\":$line}" >>"$results"
  stop_gateway
  rm -rf "$dir"
fi

if wanted idle; then
  dir="$work/idle"; mkdir -p "$dir"
  gateway_config "$dir" fsync sqlite
  sed -i "s/^listen = \"127.0.0.1:2775\"/listen = \"127.0.0.1:2775\"\nmax_sessions = $((IDLE + 100))\nmax_sessions_per_system_id = $((IDLE + 100))\nmax_connections_per_ip = $((IDLE + 100))/" "$dir/smsgw.toml"
  start_gateway "$dir"
  wait_port 2775
  sleep 1
  before=$(rss_kib $gw)
  "$bin/smpp-idle" --target 127.0.0.1:2775 --system-id demo --password demo --sessions "$IDLE" --hold 6 >"$dir/idle.json" &
  idle=$!
  sleep 4
  for _ in $(seq 1 60); do [ -s "$dir/idle.json" ] && break; sleep 0.5; done
  sleep 1
  after=$(rss_kib $gw)
  wait $idle || true
  line="{\"idle\":$(cat "$dir/idle.json"),\"rss_before_kib\":$before,\"rss_after_kib\":$after}"
  echo "idle-sessions $line"
  echo "{\"run\":\"idle-sessions\",\"report\":$line}" >>"$results"
  stop_gateway
fi

if wanted cold; then
  dir="$work/cold"; mkdir -p "$dir"
  gateway_config "$dir" fsync sqlite
  fill=$("$bin/journal-fill" --dir "$dir/journal" --megabytes "$JOURNAL_MB" --connector sim --username demo)
  started=$(date +%s.%N)
  start_gateway "$dir"
  "$bin/smpp-idle" --target 127.0.0.1:2775 --system-id demo --password demo --sessions 1 --hold 0 \
    --parallel 1 >/dev/null 2>&1 || true
  until "$bin/smpp-idle" --target 127.0.0.1:2775 --system-id demo --password demo --sessions 1 \
    --hold 0 --parallel 1 2>/dev/null | grep -q '"bound":1'; do sleep 0.02; done
  ended=$(date +%s.%N)
  # The replay is restored in the background, after binds are accepted: how long it took.
  for _ in $(seq 1 1200); do grep -q "journal restored" "$dir/log" && break; sleep 0.1; done
  restore_ms=$(grep "journal restored" "$dir/log" | grep -o '"elapsed_ms":[0-9]*' | cut -d: -f2 || true)
  line=$(printf '{"journal":%s,"seconds_to_first_bind":%.3f,"restore_ms":%s}' "$fill" \
    "$(echo "$ended - $started" | bc)" "${restore_ms:-null}")
  echo "cold-start $line"
  echo "{\"run\":\"cold-start\",\"report\":$line}" >>"$results"
  stop_gateway
fi

# The table: each pipeline run against the ceiling with the same receipts setting.
python3 - "$results" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ceiling = {}
for r in rows:
    if r["run"].startswith("ceiling"):
        ceiling["+receipts" in r["run"]] = r["report"]["throughput_per_s"]
print("\n| run | msg/s | p99 submit→resp (ms) | of the ceiling |")
print("|---|---|---|---|")
for r in rows:
    rep = r["report"]
    if r["run"] == "idle-sessions":
        bound = rep["idle"]["bound"]
        per = (rep["rss_after_kib"] - rep["rss_before_kib"]) / max(bound, 1)
        print(f"| {bound} idle bound sessions | | | {per:.1f} KiB resident each |")
        continue
    if r["run"] == "cold-start":
        mb = rep["journal"]["bytes"] / 1048576
        print(f"| cold start, {mb:.0f} MB journal ({rep['journal']['records']} receipt waits) | | | {rep['seconds_to_first_bind']:.2f} s to the first bind, {rep['restore_ms']} ms to restore the replay |")
        continue
    rate = rep["throughput_per_s"]
    p99 = f'{rep["latency_us"]["p99"] / 1000:.1f}'
    if rep.get("open_loop"):
        by_second = rep["open_loop"]["p99_us_by_second"]
        first = by_second[0] / 1000 if by_second else 0
        worst = max(by_second, default=0) / 1000
        offered = rep["open_loop"]["offered_per_s"]
        print(f"| {r['run']}, {offered:,.0f} offered | {rate:,.0f} | {p99} | p99 of the first second {first:.1f} ms, of the worst {worst:.1f} ms |")
        continue
    if rep.get("rejected"):
        p99 += f' ({rep["rejected"]} refused)'
    base = ceiling.get("+receipts" in r["run"])
    ratio = f"{100 * rate / base:.1f}%" if base else ""
    print(f"| {r['run']} | {rate:,.0f} | {p99} | {ratio} |")
EOF
