#!/usr/bin/env bash
# What header rules cost: sluice in front of the same backend, in one run, with
#   none   no request_headers / response_headers anywhere: the header_rules filter is not in
#          the chain at all
#   rules  three typical rules on the listener: HSTS set on every response, Server and
#          X-Powered-By removed from responses, X-Client: %{client_ip} set on requests
#   prev   (only with PREV_SLUICE_BIN) an older sluice binary with the `none` config: the
#          build before header rules, to show that `none` costs what it did
# The backend is one nginx answering `return 200` (sluice_test_backend when nginx is missing).
# wrk, HTTP/1.1 keep-alive, 1 thread, 50 connections. One sluice worker each, access log off.
# Rounds alternate between the targets, so a change in the machine's load hits them alike;
# `cpu us/req` (sluice's own CPU time per request) is the steadier figure on a busy machine.
#
#   integration/bench/header_rules.sh              install packages, build the release preset, run
#   integration/bench/header_rules.sh --no-build   use what is already built
#
# Environment: DURATION (seconds per run, default 10), WARMUP (default 3), ROUNDS (interleaved,
# default 3), CONNECTIONS (default 50), PREV_SLUICE_BIN (adds the `prev` target), KEEP_WORK=1
# keeps configs and logs, SLUICE_BIN / SLUICE_BACKEND_BIN override the binaries.
set -euo pipefail

# shellcheck source=integration/bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_setup "$@"

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-50}
TARGETS=(none rules)
[[ -n ${PREV_SLUICE_BIN:-} ]] && TARGETS=(none rules prev)

[[ -x $SLUICE_BIN ]] || die "missing $SLUICE_BIN (run without --no-build)"
[[ -z ${PREV_SLUICE_BIN:-} || -x $PREV_SLUICE_BIN ]] || die "missing $PREV_SLUICE_BIN"
command -v wrk >/dev/null || die "missing wrk (run scripts/install-deps.sh --bench)"
start_one_backend
run_header "backend: $BACKEND_KIND${PREV_SLUICE_BIN:+, prev: $PREV_SLUICE_BIN}"

declare -A PORT PID ADMIN
RULES='    request_headers: { set: { x-client: "%{client_ip}" } }
    response_headers:
      set: { strict-transport-security: "max-age=63072000; includeSubDomains" }
      remove: [server, x-powered-by]'
start_none() { start_bench_sluice none "$SLUICE_BIN"; }
start_rules() { start_bench_sluice rules "$SLUICE_BIN" --listener "$RULES"; }
start_prev() { start_bench_sluice prev "$PREV_SLUICE_BIN"; }
for t in "${TARGETS[@]}"; do
  with_retries "start_$t" || die "sluice ($t) did not start"
done
# The rules really apply (and only there).
curl -sS -D - -o /dev/null "http://$BENCH_HOST:${PORT[rules]}/" | grep -qi '^strict-transport-security:' ||
  die "rules target: no strict-transport-security in the response"
curl -sS -D - -o /dev/null "http://$BENCH_HOST:${PORT[rules]}/" | grep -qi '^server:' &&
  die "rules target: the backend's Server header is still there"

run() { # run TARGET SECONDS OUT
  timeout $(($2 + 30)) wrk -t1 -c"$CONNECTIONS" -d"$2s" --latency \
    "http://$BENCH_HOST:${PORT[$1]}/api/v1/users/42?page=2" >"$3" 2>&1
}
compare_rounds none "header rules"
