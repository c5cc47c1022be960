#!/usr/bin/env bash
# What tracing costs: the same sluice binary in front of the same backend, in one run, with
#   off    no `tracing` section
#   rate0  tracing: { otlp_endpoint: …, sample_rate: 0 } (nothing recorded: the sampling
#          decision alone, which should cost nothing measurable)
#   rate1  tracing with sample_rate: 1 (every request: a server span and a client span, batched
#          and exported as OTLP/HTTP JSON to a collector)
# The backend is one nginx answering `return 200`; the collector is a second nginx origin that
# answers every export with 200 (a stand-in that costs sluice what a real collector's 200 costs).
# wrk, HTTP/1.1 keep-alive, 1 thread, 50 connections. One sluice worker each, default settings
# otherwise (batch_delay 1s, max_batch_spans 512, max_queue_spans 2048).
#
#   integration/bench/tracing.sh              install packages, build the release preset, run
#   integration/bench/tracing.sh --no-build   use what is already built
#
# Environment: DURATION (seconds per run, default 10), WARMUP (default 3), ROUNDS (interleaved,
# default 3), CONNECTIONS (default 50), KEEP_WORK=1 keeps configs and logs, SLUICE_BIN /
# SLUICE_BACKEND_BIN override the binaries.
set -euo pipefail

# shellcheck source=integration/bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_setup "$@"

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-50}
TARGETS=(off rate0 rate1)

[[ -x $SLUICE_BIN ]] || die "missing $SLUICE_BIN (run without --no-build)"
command -v wrk >/dev/null || die "missing wrk (run scripts/install-deps.sh --bench)"
command -v nginx >/dev/null || die "missing nginx (run scripts/install-deps.sh --bench)"
with_retries start_nginx_backends 2 || die "the nginx backend did not start"
BACKEND_PORT=${BACKEND_PORTS[0]}
COLLECTOR="http://$BENCH_HOST:${BACKEND_PORTS[1]}/v1/traces"
run_header "backend: nginx, collector: nginx return 200"

declare -A PORT PID ADMIN
start_off() { start_bench_sluice off "$SLUICE_BIN"; }
start_rate0() {
  start_bench_sluice rate0 "$SLUICE_BIN" --top "tracing: { otlp_endpoint: \"$COLLECTOR\", sample_rate: 0 }"
}
start_rate1() {
  start_bench_sluice rate1 "$SLUICE_BIN" --top "tracing: { otlp_endpoint: \"$COLLECTOR\", sample_rate: 1 }"
}
for t in "${TARGETS[@]}"; do
  with_retries "start_$t" || die "sluice ($t) did not start"
done

run() { # run TARGET SECONDS OUT
  timeout $(($2 + 30)) wrk -t1 -c"$CONNECTIONS" -d"$2s" --latency \
    "http://$BENCH_HOST:${PORT[$1]}/api/v1/users/42?page=2" >"$3" 2>&1
}
compare_rounds off "tracing"

sleep 2 # the last batch
for t in rate0 rate1; do
  metrics=$(curl -s "http://$BENCH_HOST:${ADMIN[$t]}/metrics")
  exported=$(awk '$1 == "sluice_tracing_spans_exported_total" { print $2 }' <<<"$metrics")
  dropped=$(awk '/^sluice_tracing_spans_dropped_total/ { s += $2 } END { print s + 0 }' <<<"$metrics")
  echo "$t: spans exported ${exported:-?}, dropped $dropped"
done
