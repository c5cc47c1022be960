#!/usr/bin/env bash
# What the load-balancing policies cost: the same sluice binary in front of the same three
# backends, once per policy, in one run: lb round_robin (the default, no lb key), least_request,
# random, ring_hash and maglev (both hash_on "header:x-key"). With BASELINE_BIN set, that binary
# (an older build) runs the round_robin config too, as target "baseline". The backends are one
# nginx (1 worker) answering `return 200` on three ports (three sluice_test_backend processes
# when nginx is missing). wrk, HTTP/1.1 keep-alive, 1 thread, 50 connections, every request with
# an x-key header cycling through 10,000 values (the same wrk script against every target, so
# the load generator does the same work). One sluice worker each, default settings otherwise,
# no access log.
#
#   integration/bench/lb.sh              install packages, build the release preset, run
#   integration/bench/lb.sh --no-build   use what is already built
#
# Environment: DURATION (seconds per run, default 10), WARMUP (default 3), ROUNDS (interleaved,
# default 3), CONNECTIONS (default 50), KEEP_WORK=1 keeps configs and logs, SLUICE_BIN /
# SLUICE_BACKEND_BIN override the binaries, BASELINE_BIN adds the "baseline" target.
# Figures: best requests/s and best p99 of the rounds per target; sluice's own CPU time per
# request (user + system, median of the rounds), which a shared machine disturbs less than
# requests/s; and the ratios of each to round_robin's.
set -euo pipefail

# shellcheck source=integration/bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_setup "$@"

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-50}
BASELINE_BIN=${BASELINE_BIN:-}
TARGETS=(round_robin least_request random ring_hash maglev)
[[ -n $BASELINE_BIN ]] && TARGETS+=(baseline)

[[ -x $SLUICE_BIN ]] || die "missing $SLUICE_BIN (run without --no-build)"
[[ -z $BASELINE_BIN || -x $BASELINE_BIN ]] || die "BASELINE_BIN $BASELINE_BIN is not executable"
for tool in wrk curl; do
  command -v "$tool" >/dev/null || die "missing $tool (run scripts/install-deps.sh --bench)"
done
if command -v nginx >/dev/null; then
  BACKEND_KIND=nginx
else
  [[ -x $BACKEND_BIN ]] || die "neither nginx nor $BACKEND_BIN (run without --no-build)"
  BACKEND_KIND=sluice_test_backend
fi

run_header "backends: 3 x $BACKEND_KIND${BASELINE_BIN:+,}" "${BASELINE_BIN:+baseline $BASELINE_BIN}"

start_test_backends() {
  local i port deadline
  BACKEND_PORTS=()
  for i in 1 2 3; do
    start "backend-b$i" "$BACKEND_BIN" --host "$BENCH_HOST" --port 0 --name "b$i"
    deadline=$((SECONDS + READY_TIMEOUT))
    port=
    while ((SECONDS < deadline)) && [[ -z $port ]]; do
      kill -0 "$LAST_PID" 2>/dev/null || die "backend b$i exited: $(cat "$WORK/backend-b$i.err")"
      port=$(sed -n 's/^listening on \([0-9]*\)$/\1/p' "$WORK/backend-b$i.out" 2>/dev/null || true)
      [[ -n $port ]] || sleep 0.05
    done
    [[ -n $port ]] || die "backend b$i did not report its port within ${READY_TIMEOUT}s"
    wait_ready "backend-b$i" "$LAST_PID" "$port" || die "backend b$i not ready"
    BACKEND_PORTS+=("$port")
  done
}
if [[ $BACKEND_KIND == nginx ]]; then
  with_retries start_nginx_backends 3 || die "the nginx backends did not start"
else
  start_test_backends
fi
ENDPOINTS=""
for port in "${BACKEND_PORTS[@]}"; do ENDPOINTS+="${ENDPOINTS:+, }\"$BENCH_HOST:$port\""; done
log "backend ports: ${BACKEND_PORTS[*]}"

declare -A PORT PID ADMIN
# start_lb NAME CLUSTER_KEYS: one sluice with one route to the three backends.
start_lb() { start_bench_sluice "$1" "$SLUICE_BIN" --endpoints "$ENDPOINTS" --cluster "$(printf '%b' "$2")"; }
start_rr() { start_bench_sluice round_robin "$SLUICE_BIN" --endpoints "$ENDPOINTS"; }
start_lr() { start_lb least_request "    lb: least_request"; }
start_random() { start_lb random "    lb: random"; }
start_ring() { start_lb ring_hash "    lb: ring_hash\n    hash_on: \"header:x-key\""; }
start_maglev() { start_lb maglev "    lb: maglev\n    hash_on: \"header:x-key\""; }
start_baseline() { start_bench_sluice baseline "$BASELINE_BIN" --endpoints "$ENDPOINTS"; }
for f in start_rr start_lr start_random start_ring start_maglev; do
  with_retries "$f" || die "sluice did not start ($f)"
done
if [[ -n $BASELINE_BIN ]]; then with_retries start_baseline || die "baseline sluice did not start"; fi

# Every target must answer from the backends and use all three of them: 30 requests, each with
# its own x-key (so the hashing policies spread them too), must reach b1, b2 and b3.
for t in "${TARGETS[@]}"; do
  seen=""
  for i in $(seq 1 30); do
    body=$(curl -s --max-time 5 -H "x-key: check-$i" "http://$BENCH_HOST:${PORT[$t]}/") || true
    [[ $body =~ ^hello\ from\ b[123]$ ]] || die "$t answered GET / with '$body', not a backend's body"
    [[ $seen == *"$body"* ]] || seen+="$body;"
  done
  [[ $(tr ';' '\n' <<<"$seen" | sed '/^$/d' | wc -l) == 3 ]] || die "$t used only: $seen"
done

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
compare_rounds round_robin "lb"
