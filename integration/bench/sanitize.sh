#!/usr/bin/env bash
# What the sanitize filter costs: the same sluice binary in front of the same backend, twice in
# one run: sanitize on (the default: canonical path, escape checks, underscore headers dropped)
# and off (`sanitize: { enabled: false }`). The backend is one nginx answering `return 200`
# (sluice_test_backend when nginx is missing). wrk, HTTP/1.1 keep-alive, 1 thread, 50
# connections, GET of a typical API path with a query and a few headers, the same script
# against both. One sluice worker each, default settings otherwise, no access log.
#
#   integration/bench/sanitize.sh              install packages, build the release preset, run
#   integration/bench/sanitize.sh --no-build   use what is already built
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
TARGETS=(on off)

[[ -x $SLUICE_BIN ]] || die "missing $SLUICE_BIN (run without --no-build)"
command -v wrk >/dev/null || die "missing wrk (run scripts/install-deps.sh --bench)"
start_one_backend
run_header "backend: $BACKEND_KIND"

declare -A PORT PID ADMIN
start_on() { start_bench_sluice on "$SLUICE_BIN"; }
start_off() { start_bench_sluice off "$SLUICE_BIN" --top "sanitize: { enabled: false }"; }
with_retries start_on || die "sluice (on) did not start"
with_retries start_off || die "sluice (off) did not start"

# The filter is really on in one and off in the other: only "on" refuses an encoded slash.
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 --path-as-is "$1"; }
[[ $(code "http://$BENCH_HOST:${PORT[on]}/a%2Fb") == 400 ]] || die "sanitize is not on in 'on'"
[[ $(code "http://$BENCH_HOST:${PORT[off]}/a%2Fb") == 200 ]] || die "sanitize is not off in 'off'"

cat >"$WORK/api.lua" <<'LUA'
local i = 0
request = function()
  i = (i + 1) % 10000
  return wrk.format("GET", "/api/v1/users/" .. i .. "/orders?page=2&sort=desc",
    { ["accept"] = "application/json", ["user-agent"] = "bench/1.0",
      ["x-request-id"] = "req-" .. i })
end
LUA

run() { # run TARGET SECONDS OUT
  timeout $(($2 + 30)) wrk -t1 -c"$CONNECTIONS" -d"$2s" --latency -s "$WORK/api.lua" \
    "http://$BENCH_HOST:${PORT[$1]}/" >"$3" 2>&1
}
compare_rounds off sanitize
