#!/usr/bin/env bash
# What rate limiting costs: the same sluice binary in front of the same backend, three ways, in
# one run: no rate limit; two local rules that never limit (one on client_ip, one on a header
# with 10,000 distinct values); one global rule that never limits, decided by a redis-server on
# loopback. wrk, HTTP/1.1 keep-alive, 1 thread, 50 connections, every request with an x-key
# header cycling through 10,000 values (the same wrk script against every target, so the load
# generator does the same work). One sluice worker each, default settings, no access log.
#
#   integration/bench/ratelimit.sh              install packages, build the release preset, run
#   integration/bench/ratelimit.sh --no-build   use what is already built
#
# Environment: DURATION (seconds per run, default 10), WARMUP (default 3), ROUNDS (interleaved,
# default 3), CONNECTIONS (default 50), KEEP_WORK=1 keeps configs and logs.
# Figures: best requests/s and best p99 of the rounds per target, and the ratio to "none";
# and sluice's own CPU time per request (user + system, median of the rounds), which a shared
# machine disturbs less than requests/s. Redis's CPU is not in it (global: see requests/s).
set -euo pipefail

# shellcheck source=integration/bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_setup "$@"

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-50}
TARGETS=(none local global)

for bin in "$SLUICE_BIN" "$BACKEND_BIN"; do
  [[ -x $bin ]] || die "missing $bin (run without --no-build)"
done
for tool in wrk redis-server curl; do
  command -v "$tool" >/dev/null || die "missing $tool (run scripts/install-deps.sh --bench)"
done

run_header "$(redis-server --version | awk '{ print $3 }')"

start_backend
REDIS_PORT=$(free_port)
start redis redis-server --port "$REDIS_PORT" --bind "$BENCH_HOST" --save '' --appendonly no
deadline=$((SECONDS + READY_TIMEOUT))
until redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; do
  ((SECONDS < deadline)) || die "redis-server did not answer PING"
  sleep 0.1
done

declare -A PORT PID ADMIN
# Never limiting: far above what one core can serve.
start_bench_sluice none "$SLUICE_BIN" || die "sluice (none) did not start"
start_bench_sluice local "$SLUICE_BIN" --listener "    rate_limits: [per_ip, per_key]" --top "rate_limits:
  - { name: per_ip, key: [client_ip], rate: 100000000/s }
  - { name: per_key, key: [\"header:x-key\"], rate: 100000000/s }" ||
  die "sluice (local) did not start"
start_bench_sluice global "$SLUICE_BIN" --listener "    rate_limits: [per_key]" --top "rate_limits:
  - { name: per_key, key: [\"header:x-key\"], rate: 100000000/s, scope: global }
redis: { address: \"$BENCH_HOST:$REDIS_PORT\" }" || die "sluice (global) did not start"

cat >"$WORK/keys.lua" <<'LUA'
local i = 0
request = function()
  i = (i + 1) % 10000
  return wrk.format("GET", "/", { ["x-key"] = "key-" .. i })
end
LUA

run() { # run TARGET SECONDS OUT
  timeout $(($2 + 30)) wrk -t1 -c"$CONNECTIONS" -d"$2s" --latency -s "$WORK/keys.lua" \
    "http://$BENCH_HOST:${PORT[$1]}/" >"$3" 2>&1
}
compare_rounds none "rate limits"
