#!/usr/bin/env bash
# What the number of routes costs: sluice with 10 routes against sluice with 10,000, the
# request hitting the last route, for three shapes of route table (issue 12):
#   host   every route matches one exact host (h0.example.com, h1…); the request's Host is the
#          last route's
#   path   every route matches one path prefix (/p0/, /p1/…); the request's path is under the
#          last route's prefix
#   half   the first half by host, the second half by path prefix; the request hits the last
#          (a path route) with a Host no host route has
# Each table is that and nothing else (no catch-all route). The backend is one nginx answering
# `return 200` (sluice_test_backend when nginx is missing). wrk, HTTP/1.1 keep-alive, 1 thread,
# 50 connections. One sluice worker each, access log off, every other setting the default.
# Rounds alternate between all targets, so a change in the machine's load hits them alike; the
# table gives each shape's best requests/s and median CPU microseconds per request (sluice's
# own CPU time, the steadier figure on a busy machine), and the ratios 10,000 routes / 10
# routes: of the best runs, and the median of the ratios within each round.
#
#   integration/bench/routes.sh              install packages, build the release preset, run
#   integration/bench/routes.sh --no-build   use what is already built
#
# Environment: DURATION (seconds per run, default 10), WARMUP (default 3), ROUNDS (interleaved,
# default 3), CONNECTIONS (default 50), SHAPES (default "host path half"), ROUTES (the large
# table, default 10000), KEEP_WORK=1 keeps configs and logs, SLUICE_BIN overrides the binary.
set -euo pipefail

# shellcheck source=integration/bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_setup "$@"

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-50}
ROUTES=${ROUTES:-10000}
read -r -a SHAPES <<<"${SHAPES:-host path half}"
SIZES=(10 "$ROUTES")

[[ -x $SLUICE_BIN ]] || die "missing $SLUICE_BIN (run without --no-build)"
command -v wrk >/dev/null || die "missing wrk (run scripts/install-deps.sh --bench)"
start_one_backend
run_header "backend: $BACKEND_KIND, $ROUTES routes"

declare -A PID PORT HOST_HEADER TARGET_PATH

# routes_yaml SHAPE N: the routes section's items.
routes_yaml() {
  awk -v shape="$1" -v n="$2" 'BEGIN {
    hosts = shape == "host" ? n : shape == "half" ? int(n / 2) : 0
    for (i = 0; i < n; i++) {
      if (i < hosts) {
        printf "  - { name: r%d, match: { hosts: [h%d.example.com] }, cluster: backend }\n", i, i
      } else {
        printf "  - { name: r%d, match: { path: { prefix: /p%d/ } }, cluster: backend }\n", i, i
      }
    }
  }'
}

# start_target SHAPE N: sluice as start_bench_sluice configures it, with this route table.
start_target() {
  local name=$1-$2 last=$(($2 - 1)) port admin code deadline
  port=$(free_port)
  admin=$(free_port)
  {
    cat <<YAML
workers: 1
admin: { address: $BENCH_HOST:$admin }
access_log: { path: "off" }
listeners:
  - name: bench
    address: "$BENCH_HOST:$port"
clusters:
  - name: backend
    endpoints: ["$BENCH_HOST:$BACKEND_PORT"]
routes:
YAML
    routes_yaml "$1" "$2"
  } >"$WORK/$name.yaml"
  if [[ $1 == host ]]; then
    HOST_HEADER[$name]=h$last.example.com
    TARGET_PATH[$name]=/index.html
  else
    HOST_HEADER[$name]=www.example.net
    TARGET_PATH[$name]="/p$last/users/42?page=2"
  fi
  start "$name" "$SLUICE_BIN" -c "$WORK/$name.yaml"
  PID[$name]=$LAST_PID
  PORT[$name]=$port
  # Ready when the benchmark's own request is answered by the backend.
  deadline=$((SECONDS + READY_TIMEOUT))
  while ((SECONDS < deadline)); do
    kill -0 "$LAST_PID" 2>/dev/null || {
      log "$name exited during startup: $(tail -n 20 "$WORK/$name.err")"
      return 1
    }
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 -H "Host: ${HOST_HEADER[$name]}" \
      "http://$BENCH_HOST:$port${TARGET_PATH[$name]}" || true)
    [[ $code == 200 ]] && break
    sleep 0.1
  done
  [[ $code == 200 ]] || {
    log "$name did not answer 200 within ${READY_TIMEOUT}s (last status: $code)"
    return 1
  }
  # Routing is in effect: one past the last route matches nothing.
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "Host: h$2.example.com" \
    "http://$BENCH_HOST:$port/p$2/")
  [[ $code == 404 ]] || die "$name: a request matching no route got $code, not 404"
}

TARGETS=()
for shape in "${SHAPES[@]}"; do
  for n in "${SIZES[@]}"; do
    with_retries start_target "$shape" "$n" || die "sluice ($shape, $n routes) did not start"
    TARGETS+=("$shape-$n")
  done
done

run() { # run TARGET SECONDS OUT
  timeout $(($2 + 30)) wrk -t1 -c"$CONNECTIONS" -d"$2s" --latency -H "Host: ${HOST_HEADER[$1]}" \
    "http://$BENCH_HOST:${PORT[$1]}${TARGET_PATH[$1]}" >"$3" 2>&1
}

log "warm-up: ${WARMUP}s per target"
for t in "${TARGETS[@]}"; do run "$t" "$WARMUP" "$WORK/warmup-$t.txt" || die "wrk failed: $t"; done
declare -A best_rps=() cpu_rounds=() problems=() per_round=()
printf '\n%-12s %5s %12s %10s %10s  %s\n' target round "requests/s" "p99 ms" "cpu us/req" errors
for ((r = 1; r <= ROUNDS; r++)); do
  for t in "${TARGETS[@]}"; do
    out=$WORK/round$r-$t.txt
    before=$(cpu_ticks "${PID[$t]}")
    run "$t" "$DURATION" "$out" || die "wrk failed against $t: $(cat "$out")"
    after=$(cpu_ticks "${PID[$t]}")
    n=$(wrk_requests "$out")
    rps=$(wrk_rps "$out")
    p99=$(wrk_p99_ms "$out")
    [[ -n $rps && -n $p99 && -n $n ]] || die "cannot parse wrk output for $t:"$'\n'"$(cat "$out")"
    cpu_us=$(per_request_us $((after - before)) "$n" 2)
    cpu_rounds[$t]+="$cpu_us "
    per_round[rps,$t,$r]=$rps
    per_round[cpu,$t,$r]=$cpu_us
    prob=$(wrk_problems "$out")
    kill -0 "${PID[$t]}" 2>/dev/null || die "$t exited: $(tail -n 20 "$WORK/$t.err")"
    [[ -n $prob ]] && problems[$t]+="round $r: $prob. "
    printf '%-12s %5d %12.1f %10.3f %10s  %s\n' "$t" "$r" "$rps" "$p99" "$cpu_us" "${prob:-none}"
    if [[ -z ${best_rps[$t]:-} ]] || awk -v a="$rps" -v b="${best_rps[$t]}" 'BEGIN { exit !(a > b) }'; then
      best_rps[$t]=$rps
    fi
  done
done

median() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# The two sizes of a shape run one after the other in each round, so the ratio within a round
# is the one least disturbed by the machine's load changing during the run.
round_ratios() { # round_ratios rps|cpu SMALL LARGE: "ratio ratio …", one per round
  local r
  for ((r = 1; r <= ROUNDS; r++)); do
    awk -v a="${per_round[$1,$2,$r]}" -v b="${per_round[$1,$3,$r]}" 'BEGIN { printf "%.4f ", b / a }'
  done
}
printf '\nwrk -t1 -c%d -d%ss, %d rounds; ratios are %d routes / 10 routes: of the best\n' \
  "$CONNECTIONS" "$DURATION" "$ROUNDS" "$ROUTES"
printf 'requests/s, and the median of the ratios within each round (requests/s, CPU per request):\n'
printf '\n| routes by | req/s, 10 (best) | req/s, %d (best) | ratio of best | ratio, median of rounds | cpu us/req, 10 (median) | cpu us/req, %d (median) | cpu ratio, median of rounds |\n' \
  "$ROUTES" "$ROUTES"
printf '|---|---:|---:|---:|---:|---:|---:|---:|\n'
for shape in "${SHAPES[@]}"; do
  small=$shape-10 large=$shape-$ROUTES
  awk -v s="$shape" -v a="${best_rps[$small]}" -v b="${best_rps[$large]}" \
    -v rr="$(median "$(round_ratios rps "$small" "$large")")" \
    -v ca="$(median "${cpu_rounds[$small]}")" -v cb="$(median "${cpu_rounds[$large]}")" \
    -v cr="$(median "$(round_ratios cpu "$small" "$large")")" 'BEGIN {
      printf "| %s | %.0f | %.0f | %.3f | %.3f | %.2f | %.2f | %.3f |\n", s, a, b, b / a, rr, ca, cb, cr }'
done
for t in "${TARGETS[@]}"; do
  [[ -n ${problems[$t]:-} ]] && echo "wrk reported problems for $t: ${problems[$t]}"
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
