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

echo "sluice $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)," \
  "$(nproc) CPUs, kernel $(uname -r), $(date -u +%FT%TZ)," \
  "load average $(cut -d' ' -f1-3 /proc/loadavg), $(redis-server --version | awk '{ print $3 }')"

start_backend
REDIS_PORT=$(free_port)
start redis redis-server --port "$REDIS_PORT" --bind "$BENCH_HOST" --save '' --appendonly no
deadline=$((SECONDS + READY_TIMEOUT))
until redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; do
  ((SECONDS < deadline)) || die "redis-server did not answer PING"
  sleep 0.1
done

declare -A PORT PID
# start_target NAME RULES_YAML LISTENER_RULES
start_target() {
  local name=$1 rules=$2 refs=$3 port admin
  port=$(free_port)
  admin=$(free_port)
  cat >"$WORK/$name.yaml" <<YAML
workers: 1
admin: { address: $BENCH_HOST:$admin }
access_log: { path: "off" }
listeners:
  - { name: bench, address: "$BENCH_HOST:$port", rate_limits: $refs }
routes:
  - { name: all, match: { path: { prefix: / } }, cluster: backend }
clusters:
  - { name: backend, endpoints: ["$BENCH_HOST:$BACKEND_PORT"] }
$rules
YAML
  start "$name" "$SLUICE_BIN" -c "$WORK/$name.yaml"
  PID[$name]=$LAST_PID
  PORT[$name]=$port
  wait_ready "$name" "$LAST_PID" "$port"
}
# Never limiting: far above what one core can serve.
start_target none "" "[]" || die "sluice (none) did not start"
start_target local "rate_limits:
  - { name: per_ip, key: [client_ip], rate: 100000000/s }
  - { name: per_key, key: [\"header:x-key\"], rate: 100000000/s }" "[per_ip, per_key]" ||
  die "sluice (local) did not start"
start_target global "rate_limits:
  - { name: per_key, key: [\"header:x-key\"], rate: 100000000/s, scope: global }
redis: { address: \"$BENCH_HOST:$REDIS_PORT\" }" "[per_key]" || die "sluice (global) did not start"

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
for t in "${TARGETS[@]}"; do run "$t" "$WARMUP" "$WORK/warmup-$t.txt" || die "wrk failed: $t"; done

hz=$(getconf CLK_TCK)
declare -A best_rps best_p99 problems cpu_rounds
printf '\n%-8s %5s %12s %10s %10s  %s\n' target round "requests/s" "p99 ms" "cpu us/req" errors
for ((r = 1; r <= ROUNDS; r++)); do
  for t in "${TARGETS[@]}"; do
    out=$WORK/round$r-$t.txt
    before=$(cpu_ticks "${PID[$t]}")
    run "$t" "$DURATION" "$out" || die "wrk failed against $t: $(cat "$out")"
    after=$(cpu_ticks "${PID[$t]}")
    cpu_us=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$(wrk_requests "$out")" \
      'BEGIN { printf "%.2f", n ? t / hz * 1e6 / n : 0 }')
    cpu_rounds[$t]+="$cpu_us "
    rps=$(wrk_rps "$out")
    p99=$(wrk_p99_ms "$out")
    prob=$(wrk_problems "$out")
    kill -0 "${PID[$t]}" 2>/dev/null || die "sluice ($t) exited: $(tail -n 20 "$WORK/$t.err")"
    [[ -n $prob ]] && problems[$t]+="round $r: $prob. "
    printf '%-8s %5d %12.1f %10.3f %10s  %s\n' "$t" "$r" "$rps" "$p99" "$cpu_us" "${prob:-none}"
    if [[ -z ${best_rps[$t]:-} ]] || awk -v a="$rps" -v b="${best_rps[$t]}" 'BEGIN { exit !(a > b) }'; then
      best_rps[$t]=$rps
    fi
    if [[ -z ${best_p99[$t]:-} ]] || awk -v a="$p99" -v b="${best_p99[$t]}" 'BEGIN { exit !(a < b) }'; then
      best_p99[$t]=$p99
    fi
  done
done

printf '\nBest of %d rounds, wrk -t1 -c%d -d%ss. Ratios are target / none:\n' \
  "$ROUNDS" "$CONNECTIONS" "$DURATION"
median() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
printf '\n| rate limits | requests/s | p99 (ms) | sluice cpu us/req (median) | req/s ratio | p99 ratio | cpu ratio |\n'
printf '|---|---:|---:|---:|---:|---:|---:|\n'
for t in "${TARGETS[@]}"; do
  awk -v t="$t" -v rps="${best_rps[$t]}" -v p="${best_p99[$t]}" -v c="$(median "${cpu_rounds[$t]}")" \
    -v nrps="${best_rps[none]}" -v np="${best_p99[none]}" -v nc="$(median "${cpu_rounds[none]}")" 'BEGIN {
      printf "| %s | %.0f | %.2f | %.2f | %.3f | %.2f | %.3f |\n", t, rps, p, c, rps / nrps, p / np, c / nc }'
done
for t in "${TARGETS[@]}"; do
  [[ -n ${problems[$t]:-} ]] && echo "wrk reported problems for $t: ${problems[$t]}"
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
