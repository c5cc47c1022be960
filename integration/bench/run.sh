#!/usr/bin/env bash
# Throughput and tail latency of sluice against the bare backend, nginx and HAProxy, all on
# loopback in one run: wrk, HTTP/1.1 keep-alive, 1 thread, 50 connections, GET / (small body).
# Each proxy runs 1 worker with upstream keep-alive and no access log, as lib.sh's start_peer
# sets them up for every script (peers.sh compares the same proxies over HTTP/1.1 and HTTP/2).
#
#   integration/bench/run.sh              install packages, build the release preset, run
#   integration/bench/run.sh --no-build   use what is already built
#
# Environment: DURATION (seconds per measured run, default 10), WARMUP (seconds per target,
# default 3), ROUNDS (interleaved rounds, default 2), CONNECTIONS (default 50), KEEP_WORK=1
# keeps configs and logs, SLUICE_BIN / SLUICE_BACKEND_BIN override the binaries.
#
# Rounds are interleaved (backend, sluice, nginx, haproxy, then again) so slow drift on a
# shared machine hits every target alike. Each reported figure is the best over the rounds
# (highest requests/s, lowest p99, taken independently): interference from other work on the
# machine only makes a run worse, so the best run is the closest to what the target can do.
# Every round is printed too. Nothing is pinned to a CPU.
set -euo pipefail

# shellcheck source=integration/bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_setup "$@"

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
ROUNDS=${ROUNDS:-2}
CONNECTIONS=${CONNECTIONS:-50}
TARGETS=(backend sluice nginx haproxy)

for bin in "$SLUICE_BIN" "$BACKEND_BIN"; do
  [[ -x $bin ]] || die "missing $bin (run without --no-build)"
done
for tool in wrk nginx haproxy curl; do
  command -v "$tool" >/dev/null || die "missing $tool (run scripts/install-deps.sh --bench)"
done

log "work dir $WORK"
echo "sluice $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)," \
  "$(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | sort -u | paste -sd ';' -))," \
  "kernel $(uname -r), $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "wrk $(wrk -v 2>&1 | awk 'NR == 1 { print $2 }'), $(nginx -v 2>&1 | sed 's/.*: //')," \
  "HAProxy $(haproxy -v | awk 'NR == 1 { print $3 }')"
start_backend
with_retries start_sluice_once || die "sluice did not start"
with_retries start_nginx_once || die "nginx did not start"
with_retries start_haproxy_once || die "haproxy did not start"
log "ports: backend $BACKEND_PORT, sluice ${PEER_PORT[sluice]}, nginx ${PEER_PORT[nginx]}, haproxy ${PEER_PORT[haproxy]}"

# Every target must serve the backend's own answer before it is measured.
for t in "${TARGETS[@]}"; do
  body=$(curl -s --max-time 5 "http://$BENCH_HOST:$(target_port "$t")/") || true
  [[ $body == "hello from bench" ]] || die "$t answered GET / with '$body', not the backend's body"
done

log "warm-up: ${WARMUP}s per target"
for t in "${TARGETS[@]}"; do
  wrk_run "http://$BENCH_HOST:$(target_port "$t")/" "$WARMUP" "$WORK/warmup-$t.txt" ||
    die "wrk failed against $t: $(cat "$WORK/warmup-$t.txt")"
done

declare -A best_rps best_p99 problems
sluice_died=0
# cpu us/req: CPU time (user + system, all threads) of the target's own processes per request.
# backend conns: connections the backend accepted during the run; a proxy that keeps its
# upstream connections alive opens none once warm.
printf '\n%-8s %5s %12s %10s %10s %10s %8s  %s\n' target round "requests/s" "p99 ms" requests \
  "cpu us/req" "backend" "errors"
printf '%-8s %5s %12s %10s %10s %10s %8s\n' "" "" "" "" "" "" "conns"
for ((r = 1; r <= ROUNDS; r++)); do
  for t in "${TARGETS[@]}"; do
    out=$WORK/round$r-$t.txt
    read -ra pids <<<"$(target_pids "$t")"
    conns_before=$(backend_accepted)
    before=$(cpu_ticks "${pids[@]}")
    wrk_run "http://$BENCH_HOST:$(target_port "$t")/" "$DURATION" "$out" ||
      die "wrk failed against $t: $(cat "$out")"
    after=$(cpu_ticks "${pids[@]}")
    conns=$(($(backend_accepted) - conns_before - 1))
    rps=$(wrk_rps "$out")
    p99=$(wrk_p99_ms "$out")
    n=$(wrk_requests "$out")
    [[ -n $rps && -n $p99 && -n $n ]] || die "cannot parse wrk output for $t:"$'\n'"$(cat "$out")"
    cpu_us=$(per_request_us $((after - before)) "$n")
    prob=$(wrk_problems "$out")
    if [[ $t == sluice ]] && ! kill -0 "${PEER_PID[sluice]}" 2>/dev/null; then
      prob+="${prob:+; }sluice exited"
      sluice_died=1
    fi
    [[ -n $prob ]] && problems[$t]+="round $r: $prob. "
    printf '%-8s %5d %12.1f %10.3f %10d %10s %8d  %s\n' "$t" "$r" "$rps" "$p99" "$n" "$cpu_us" \
      "$conns" "${prob:-none}"
    if [[ -z ${best_rps[$t]:-} ]] || awk -v a="$rps" -v b="${best_rps[$t]}" 'BEGIN { exit !(a > b) }'; then
      best_rps[$t]=$rps
    fi
    if [[ -z ${best_p99[$t]:-} ]] || awk -v a="$p99" -v b="${best_p99[$t]}" 'BEGIN { exit !(a < b) }'; then
      best_p99[$t]=$p99
    fi
    ((sluice_died)) && break 2
  done
done

if ((sluice_died)); then
  log "sluice exited during the run; its stderr:"
  tail -n 40 "$WORK/sluice.err" >&2
  exit 1
fi

printf '\nBest of %d rounds, wrk -t1 -c%d -d%ss, GET / keep-alive. Ratios are sluice / target:\n' \
  "$ROUNDS" "$CONNECTIONS" "$DURATION"
printf '\n| target | requests/s | p99 (ms) | sluice req/s ratio | sluice p99 ratio |\n'
printf '|---|---:|---:|---:|---:|\n'
for t in "${TARGETS[@]}"; do
  awk -v t="$t" -v rps="${best_rps[$t]}" -v p="${best_p99[$t]}" \
    -v srps="${best_rps[sluice]}" -v sp="${best_p99[sluice]}" 'BEGIN {
      printf "| %s | %.0f | %.2f | %.2f | %.2f |\n", t, rps, p, srps / rps, sp / p }'
done
echo
any=0
for t in "${TARGETS[@]}"; do
  if [[ -n ${problems[$t]:-} ]]; then
    echo "wrk reported problems for $t: ${problems[$t]}"
    any=1
  fi
done
((any)) || echo "wrk reported no socket errors and no non-2xx/3xx responses for any target."
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
