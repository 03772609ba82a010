# Shared by the benchmark scripts (sourced, from the repository's root): the release
# build, a work directory removed on exit with every background job, and helpers.

# Builds smsgw and the bench tools; sets $bin and $work.
bench_setup() {
  cargo build --release -p smsgw -p benches --bins
  bin=${CARGO_TARGET_DIR:-target}/release
  work=$(mktemp -d)
  trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
}

# Waits (up to 10 s) until something listens on 127.0.0.1:$1.
wait_port() {
  for _ in $(seq 1 200); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
  return 1
}

# The example config with a wider uplink window (the simulator answers in microseconds, so
# 64 in flight on one uplink would cap the pipeline, not the gateway); $2 = journal mode,
# $3 = billing store ("sqlite", "off" or a postgres:// URL).
gateway_config() {
  local dir=$1 mode=$2 billing=$3
  sed -e "s/^mode = .*/mode = \"$mode\"/" -e "s/^window = 64/window = 512/" \
      -e "s#^dir = .*#dir = \"$dir/journal\"#" \
      -e "s/^smpp = { max_bindings = 8 }/smpp = { max_bindings = 20000 }/" \
      deploy/smsgw.example.toml >"$dir/smsgw.toml"
  case $billing in
    off) printf '\n[storage]\nbilling = false\n' >>"$dir/smsgw.toml" ;;
    sqlite) printf '\n[storage]\nurl = "sqlite://%s/billing.db"\n' "$dir" >>"$dir/smsgw.toml" ;;
    *) printf '\n[storage]\nurl = "%s"\n' "$billing" >>"$dir/smsgw.toml" ;;
  esac
  printf '\n[admin]\nenabled = false\n' >>"$dir/smsgw.toml"
}
