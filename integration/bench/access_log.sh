#!/usr/bin/env bash
# What the access log costs, and what a sink that does not keep up costs: the same sluice binary
# in front of the same backend, in one run, with the access log
#   off      access_log: { path: "off" }
#   file     a file on disk (the default json format)
#   stalled  stdout, a pipe (FIFO) that this script holds open and never reads: a stalled log
#            collector. The pipe fills within the first second; from then on lines are dropped
#            and counted (sluice_access_log_dropped_total) and requests must go on as before.
# The backend is one nginx answering `return 200` (sluice_test_backend when nginx is missing).
# wrk, HTTP/1.1 keep-alive, 1 thread, 50 connections. One sluice worker each, default settings.
#
#   integration/bench/access_log.sh              install packages, build the release preset, run
#   integration/bench/access_log.sh --no-build   use what is already built
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
TARGETS=(off file stalled)

[[ -x $SLUICE_BIN ]] || die "missing $SLUICE_BIN (run without --no-build)"
command -v wrk >/dev/null || die "missing wrk (run scripts/install-deps.sh --bench)"
start_one_backend
run_header "backend: $BACKEND_KIND"

# Held open read-write by this shell, so sluice's open of the FIFO does not wait for a reader,
# and never read: what a log collector that stopped reading looks like to sluice.
mkfifo "$WORK/stalled.fifo"
exec {stall_fd}<>"$WORK/stalled.fifo"

declare -A PORT PID ADMIN
start_off() { start_bench_sluice off "$SLUICE_BIN"; }
start_file() { start_bench_sluice file "$SLUICE_BIN" --access-log "$WORK/access.log"; }
start_stalled() {
  start_bench_sluice stalled "$SLUICE_BIN" --access-log stdout --stdout "$WORK/stalled.fifo"
}
with_retries start_off || die "sluice (off) did not start"
with_retries start_file || die "sluice (file) did not start"
with_retries start_stalled || die "sluice (stalled) did not start"

run() { # run TARGET SECONDS OUT
  timeout $(($2 + 30)) wrk -t1 -c"$CONNECTIONS" -d"$2s" --latency \
    "http://$BENCH_HOST:${PORT[$1]}/api/v1/users/42?page=2" >"$3" 2>&1
}
compare_rounds off "access log"

dropped=$(curl -s "http://$BENCH_HOST:${ADMIN[stalled]}/metrics" |
  awk '$1 == "sluice_access_log_dropped_total" { print $2 }')
echo "stalled: sluice_access_log_dropped_total = ${dropped:-?}" \
  "(lines in the file target: $(wc -l <"$WORK/access.log"))"
