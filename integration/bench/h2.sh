#!/usr/bin/env bash
# HTTP/2 over TLS: h2load (10 connections x 20 concurrent streams, GET /) against sluice, nginx,
# HAProxy and nghttpx, each with 1 worker, TLS on the frontend and HTTP/1.1 keep-alive to the
# same test backend, all on loopback in one run. The proxies' settings are lib.sh's (start_peer
# ... tls), shared with run.sh and peers.sh; peers.sh runs this and HTTP/1.1 in one table.
#
#   integration/bench/h2.sh              install packages, build the release preset, run
#   integration/bench/h2.sh --no-build   use what is already built
#
# Environment: DURATION (seconds per measured run, default 10), WARMUP (default 2), ROUNDS
# (interleaved rounds, default 2), KEEP_WORK=1 keeps configs and logs.
# Reported: the best requests/s over the rounds and that run's mean time per request.
set -euo pipefail

# shellcheck source=integration/bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_setup "$@"

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-2}
TARGETS=(sluice nginx haproxy nghttpx)

for tool in h2load nginx haproxy nghttpx openssl curl; do
  command -v "$tool" >/dev/null || die "missing $tool (run scripts/install-deps.sh --bench)"
done

port_of() { echo "${PEER_PORT[$1]}"; }

# h2load_run PORT SECONDS OUT
h2load_run() {
  h2load -D "$2" -c 10 -m 20 "https://$BENCH_HOST:$1/" >"$3" 2>&1
}

log "work dir $WORK"
echo "sluice $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)," \
  "$(nproc) CPUs, kernel $(uname -r), $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$(h2load --version | head -1), $(nginx -v 2>&1 | sed 's/.*: //'), HAProxy" \
  "$(haproxy -v | awk 'NR == 1 { print $3 }'), $(nghttpx --version | head -1)"
start_backend
for t in "${TARGETS[@]}"; do
  with_retries start_peer "$t" tls || die "$t did not start"
done

for t in "${TARGETS[@]}"; do
  body=$(bench_get "$t") || true
  [[ $body == "hello from bench" ]] || die "$t answered '$body', not the backend's body"
  h2load_run "$(port_of "$t")" "$WARMUP" "$WORK/warmup-$t.txt" || die "h2load failed: $t"
done

declare -A best_rps best_mean
printf '\n%-8s %5s %12s %12s %10s  %s\n' target round "requests/s" "mean ms" requests failed
for ((r = 1; r <= ROUNDS; r++)); do
  for t in "${TARGETS[@]}"; do
    out=$WORK/round$r-$t.txt
    h2load_run "$(port_of "$t")" "$DURATION" "$out" || die "h2load failed against $t"
    rps=$(h2load_rps "$out")
    mean=$(h2load_mean_ms "$out")
    done_n=$(h2load_done "$out")
    failed=$(sed -n 's/^requests: .* \([0-9]*\) failed.*/\1/p' "$out")
    [[ -n $rps && -n $mean ]] || die "cannot parse h2load output for $t:"$'\n'"$(cat "$out")"
    printf '%-8s %5d %12.1f %12s %10s  %s\n' "$t" "$r" "$rps" "$mean" "$done_n" "$failed"
    if [[ -z ${best_rps[$t]:-} ]] || awk -v a="$rps" -v b="${best_rps[$t]}" 'BEGIN { exit !(a > b) }'; then
      best_rps[$t]=$rps
      best_mean[$t]=$mean
    fi
  done
done

printf '\nBest of %d rounds, h2load -D %s -c 10 -m 20, GET / over TLS. Ratios are sluice / target:\n' \
  "$ROUNDS" "$DURATION"
printf '\n| target | requests/s | mean ms | sluice req/s ratio |\n|---|---:|---:|---:|\n'
for t in "${TARGETS[@]}"; do
  awk -v t="$t" -v rps="${best_rps[$t]}" -v m="${best_mean[$t]}" -v s="${best_rps[sluice]}" \
    'BEGIN { printf "| %s | %.0f | %s | %.2f |\n", t, rps, m, s / rps }'
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
