#!/usr/bin/env bash
# What response compression costs: the same sluice binary in front of the same nginx origin
# serving a 10 KB HTML page, in one run, alternating rounds:
#   off       no compression config (the filter is not in the chain)
#   noaccept  `compression: {}` on the listener, client sends no Accept-Encoding: the response
#             is compressible, so it only gets Vary (must cost about nothing next to off)
#   gzip br zstd  the same listener, client sends Accept-Encoding: <algorithm>
# wrk, HTTP/1.1 keep-alive, 1 thread, 50 connections; one sluice worker each. After the table,
# the compressed size of the page with each algorithm.
#
#   integration/bench/compression.sh              install packages, build the release preset, run
#   integration/bench/compression.sh --no-build   use what is already built
#
# Environment: DURATION (seconds per run, default 10), WARMUP (default 3), ROUNDS (interleaved,
# default 3), CONNECTIONS (default 50), PAGE_BYTES (default 10240), KEEP_WORK=1 keeps configs
# and logs, SLUICE_BIN overrides the binary.
set -euo pipefail

# shellcheck source=integration/bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_setup "$@"

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-50}
PAGE_BYTES=${PAGE_BYTES:-10240}
TARGETS=(off noaccept gzip br zstd)

[[ -x $SLUICE_BIN ]] || die "missing $SLUICE_BIN (run without --no-build)"
command -v wrk >/dev/null || die "missing wrk (run scripts/install-deps.sh --bench)"
command -v nginx >/dev/null || die "missing nginx (run scripts/install-deps.sh --bench)"

# A page that compresses like a real one: markup repeated with varying text, not one byte.
mkdir -p "$WORK/site"
/usr/bin/python3 - "$PAGE_BYTES" >"$WORK/site/index.html" <<'PY'
import sys
n = int(sys.argv[1])
out, i = "<!doctype html><html><head><title>bench</title></head><body><ul>\n", 0
while len(out) < n:
    out += (f'<li class="row-{i % 13}"><a href="/item/{i * 7919 % 100003}">item {i}</a> '
            f'{["alpha", "beta", "gamma", "delta"][i % 4]} {i * i % 977}</li>\n')
    i += 1
sys.stdout.write(out[:n])
PY
# nginx's workers drop root for nobody: the page must be readable by anyone.
chmod a+rx "$WORK" "$WORK/site"
chmod a+r "$WORK/site/index.html"

start_origin() {
  local dir=$WORK/nginx
  mkdir -p "$dir/logs"
  BACKEND_PORT=$(free_port)
  cat >"$dir/nginx.conf" <<NGINX
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  types { text/html html; }
  keepalive_requests 100000000;
  gzip off;
$(nginx_temp_paths "$dir")
  server { listen $BENCH_HOST:$BACKEND_PORT; root $WORK/site; index index.html; }
}
NGINX
  start origin nginx -p "$dir" -e "$dir/logs/error.log" -c "$dir/nginx.conf" -g 'daemon off;'
  wait_ready origin "$LAST_PID" "$BACKEND_PORT"
}
with_retries start_origin || die "the nginx origin did not start"
run_header "origin: nginx, a ${PAGE_BYTES}-byte text/html page"

declare -A PORT PID ADMIN
start_off() { start_bench_sluice off "$SLUICE_BIN"; }
start_on() { start_bench_sluice on "$SLUICE_BIN" --listener "    compression: {}"; }
with_retries start_off || die "sluice (off) did not start"
with_retries start_on || die "sluice (compression) did not start"
for t in noaccept gzip br zstd; do
  PID[$t]=${PID[on]}
  PORT[$t]=${PORT[on]}
done

run() { # run TARGET SECONDS OUT
  local accept=()
  case $1 in gzip | br | zstd) accept=(-H "Accept-Encoding: $1") ;; esac
  timeout $(($2 + 30)) wrk -t1 -c"$CONNECTIONS" -d"$2s" --latency "${accept[@]}" \
    "http://$BENCH_HOST:${PORT[$1]}/index.html" >"$3" 2>&1
}
compare_rounds off "compression"

echo
echo "| algorithm | bytes | ratio |"
echo "|---|---:|---:|"
for a in gzip br zstd; do
  bytes=$(curl -s -H "Accept-Encoding: $a" "http://$BENCH_HOST:${PORT[on]}/index.html" | wc -c)
  awk -v a="$a" -v b="$bytes" -v n="$PAGE_BYTES" 'BEGIN { printf "| %s | %d | %.3f |\n", a, b, b / n }'
done
