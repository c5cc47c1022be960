#!/usr/bin/env bash
# Builds sluice and runs the quickstart: two demo backends (a on :9001, b on :9002) and sluice
# on :8080 in front of them (config/examples/quickstart.yaml). Ctrl-C or SIGTERM stops it all.
#
#   ./run.sh              install missing packages, build the release preset, run
#   ./run.sh --no-build   run what is already built
# SLUICE_BIN and SLUICE_BACKEND_BIN override the binaries' paths.
set -euo pipefail
cd "$(dirname "$0")"

build=1
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    -h | --help)
      sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "unknown argument: $arg (try --help)" >&2
      exit 2
      ;;
  esac
done

if ((build)); then
  ./scripts/install-deps.sh
  cmake --preset release
  # Only what the quickstart runs: the tests are built by ./test.sh.
  cmake --build --preset release --target sluice sluice_test_backend
fi

sluice=${SLUICE_BIN:-build/release/proxy/sluice}
backend=${SLUICE_BACKEND_BIN:-build/release/integration/backend/sluice_test_backend}
config=config/examples/quickstart.yaml
for bin in "$sluice" "$backend"; do
  if [[ ! -x $bin ]]; then
    echo "missing $bin: run ./run.sh without --no-build" >&2
    exit 1
  fi
done

pids=()
# shellcheck disable=SC2317  # invoked by the traps
cleanup() {
  trap - EXIT INT TERM
  ((${#pids[@]})) || return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  # sluice drains in-flight requests on SIGTERM; give everyone 20 s, then force.
  local pid alive
  for _ in $(seq 200); do
    alive=0
    for pid in "${pids[@]}"; do
      kill -0 "$pid" 2>/dev/null && alive=1
    done
    ((alive)) || break
    sleep 0.1
  done
  kill -KILL "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  echo "stopped" >&2
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Polls `curl URL` until it succeeds; fails if process $2 exits first or 10 s pass.
wait_http() {
  local url=$1 pid=$2 what=$3
  for _ in $(seq 100); do
    if curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$what exited; see its output above" >&2
      return 1
    fi
    sleep 0.1
  done
  echo "$what did not answer $url within 10 s" >&2
  return 1
}

"$backend" --port 9001 --name a &
pids+=($!)
wait_http http://127.0.0.1:9001/ "$!" "backend a"
"$backend" --port 9002 --name b &
pids+=($!)
wait_http http://127.0.0.1:9002/ "$!" "backend b"

"$sluice" -c "$config" &
pids+=($!)
wait_http http://127.0.0.1:9901/ready "$!" "sluice"

cat <<'EOF'

sluice is running on http://127.0.0.1:8080 (admin on 127.0.0.1:9901). Try:

  curl -i http://127.0.0.1:8080/            # repeat it: x-backend alternates between a and b
  curl -i http://127.0.0.1:8080/api/echo    # /api/ is rewritten to / before reaching a backend;
                                            # 5 a minute per client, then 429 with Retry-After
  curl http://127.0.0.1:9901/ratelimits     # rate-limit rules and their key counts
  curl http://127.0.0.1:9901/clusters       # hosts: health, ejection, requests in flight
  curl -i http://127.0.0.1:8080/hello       # answered by sluice itself
  curl -i --path-as-is http://127.0.0.1:8080/x/../hello   # canonical path: routed as /hello
  curl -i http://127.0.0.1:8080/a%2Fb       # 400: an encoded slash is refused by default
  curl -i http://127.0.0.1:8080/.git/config # 404 from the quickstart's deny rule
  curl -i --http2-prior-knowledge http://127.0.0.1:8080/   # GET / over HTTP/2 (h2c)
  curl -i http://127.0.0.1:8080/old/page    # 301 redirect
  curl -i http://127.0.0.1:8080/delay/500   # a slow backend response
  curl http://127.0.0.1:9901/metrics        # Prometheus metrics
  curl http://127.0.0.1:9901/ready          # readiness
  curl http://127.0.0.1:9901/config         # the active configuration

Open http://127.0.0.1:9901/ in a browser for the live dashboard. Ctrl-C stops everything.
EOF

# Run until interrupted or until any of the three exits on its own.
set +e
wait -n "${pids[@]}"
status=$?
echo "a child process exited with status $status; stopping the rest" >&2
exit "$status"
