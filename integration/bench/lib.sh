# shellcheck shell=bash
# Shared by integration/bench/run.sh, h2.sh and profile.sh: start the test backend, sluice,
# nginx and HAProxy on ephemeral loopback ports with equivalent settings, run wrk, parse its
# output, and stop everything on exit. Every wait is bounded. Source it; it defines functions
# and a trap.

BENCH_HOST=127.0.0.1
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SLUICE_BIN=${SLUICE_BIN:-$REPO/build/release/proxy/sluice}
BACKEND_BIN=${SLUICE_BACKEND_BIN:-$REPO/build/release/integration/backend/sluice_test_backend}
READY_TIMEOUT=${READY_TIMEOUT:-15} # seconds a server may take to answer its first request
STOP_TIMEOUT=${STOP_TIMEOUT:-20}   # seconds between SIGTERM and SIGKILL

WORK=$(mktemp -d /tmp/sluice-bench.XXXXXX)
BENCH_PIDS=()

log() { printf '[bench] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# Stops every process this script started: SIGTERM, bounded wait, then SIGKILL.
# shellcheck disable=SC2317  # invoked by the trap
bench_cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if ((${#BENCH_PIDS[@]})); then
    kill -TERM "${BENCH_PIDS[@]}" 2>/dev/null || true
    local deadline=$((SECONDS + STOP_TIMEOUT)) pid alive
    while ((SECONDS < deadline)); do
      alive=0
      for pid in "${BENCH_PIDS[@]}"; do
        kill -0 "$pid" 2>/dev/null && alive=1
      done
      ((alive)) || break
      sleep 0.1
    done
    for pid in "${BENCH_PIDS[@]}"; do
      if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid ignored SIGTERM for ${STOP_TIMEOUT}s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
      fi
    done
    wait "${BENCH_PIDS[@]}" 2>/dev/null || true
  fi
  if [[ -n ${KEEP_WORK:-} ]]; then
    log "logs and configs kept in $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap bench_cleanup EXIT
trap 'log "command failed (status $?) at ${BASH_SOURCE[0]}:$LINENO: $BASH_COMMAND"' ERR
trap 'exit 130' INT
trap 'exit 143' TERM

# The arguments run.sh and h2.sh share: --no-build, --help (prints the calling script's header
# comment). Unless --no-build: installs the packages and builds the release binaries. Leaves
# the working directory at the repository.
bench_setup() {
  local build=1 arg
  for arg in "$@"; do
    case $arg in
      --no-build) build=0 ;;
      -h | --help)
        awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"
        exit 0
        ;;
      *)
        echo "unknown argument: $arg (try --help)" >&2
        exit 2
        ;;
    esac
  done
  cd "$REPO" || die "cannot cd to $REPO"
  if ((build)); then
    ./scripts/install-deps.sh --bench
    cmake --preset release >"$WORK/cmake-configure.log" || die "cmake configure failed: see $WORK"
    cmake --build --preset release --parallel "${JOBS:-2}" --target sluice sluice_test_backend
  fi
}

# A port that was free a moment ago. Racy by nature: the starters below retry on failure.
free_port() {
  /usr/bin/python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# start NAME CMD...: runs CMD in the background with output in $WORK/NAME.{out,err} (stdout in
# $START_STDOUT instead when set); sets LAST_PID and records it for cleanup.
start() {
  local name=$1
  shift
  "$@" </dev/null >"${START_STDOUT:-$WORK/$name.out}" 2>"$WORK/$name.err" &
  LAST_PID=$!
  BENCH_PIDS+=("$LAST_PID")
}

# start_bench_sluice NAME BINARY [OPTION VALUE]...: the sluice a benchmark of one feature runs:
# 1 worker, access log off, listener "bench" on a fresh port, one route to cluster "backend"
# (the backend at $BACKEND_PORT), everything else the defaults. Options add to it:
#   --listener YAML    keys of the listener, as lines indented by 4 spaces
#   --cluster YAML     keys of the cluster, the same way
#   --endpoints LIST   the cluster's endpoints instead (a YAML flow list's items)
#   --top YAML         top-level sections
#   --access-log PATH  access_log.path instead of off
#   --stdout FILE      where sluice's stdout goes (default $WORK/NAME.out)
# Sets PID[NAME], PORT[NAME] and ADMIN[NAME] (the caller declares them: declare -A PID PORT ADMIN).
start_bench_sluice() {
  local name=$1 binary=$2 listener="" cluster="" top="" access_log=off stdout=""
  local endpoints="\"$BENCH_HOST:${BACKEND_PORT:-}\"" port admin
  shift 2
  while (($#)); do
    case $1 in
      --listener) listener=$2 ;;
      --cluster) cluster=$2 ;;
      --endpoints) endpoints=$2 ;;
      --top) top=$2 ;;
      --access-log) access_log=$2 ;;
      --stdout) stdout=$2 ;;
      *) die "start_bench_sluice: unknown option $1" ;;
    esac
    shift 2
  done
  port=$(free_port)
  admin=$(free_port)
  cat >"$WORK/$name.yaml" <<YAML
workers: 1
admin: { address: $BENCH_HOST:$admin }
access_log: { path: "$access_log" }
listeners:
  - name: bench
    address: "$BENCH_HOST:$port"
$listener
routes:
  - { name: all, match: { path: { prefix: / } }, cluster: backend }
clusters:
  - name: backend
    endpoints: [$endpoints]
$cluster
$top
YAML
  START_STDOUT=$stdout start "$name" "$binary" -c "$WORK/$name.yaml"
  PID[$name]=$LAST_PID
  PORT[$name]=$port
  ADMIN[$name]=$admin
  wait_ready "$name" "$LAST_PID" "$port"
}

# wait_ready NAME PID PORT: until GET / on PORT answers 200, PID dies, or READY_TIMEOUT passes.
wait_ready() {
  local name=$1 pid=$2 port=$3 code deadline=$((SECONDS + READY_TIMEOUT))
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$name exited during startup; stderr:"
      tail -n 20 "$WORK/$name.err" >&2
      return 1
    fi
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://$BENCH_HOST:$port/" || true)
    [[ $code == 200 ]] && return 0
    sleep 0.1
  done
  log "$name did not answer 200 on port $port within ${READY_TIMEOUT}s (last status: $code)"
  tail -n 20 "$WORK/$name.err" >&2
  return 1
}

# with_retries FN: calls FN (which picks its own free port) up to 3 times, because a port
# found free can be taken by someone else before the server binds it.
with_retries() {
  local attempt
  for attempt in 1 2 3; do
    "$@" && return 0
    log "$1: attempt $attempt failed"
  done
  return 1
}

# Sets BACKEND_PORT and BACKEND_PID. The backend binds port 0 itself and prints the port.
start_backend() {
  start backend "$BACKEND_BIN" --host "$BENCH_HOST" --port 0 --name bench
  BACKEND_PID=$LAST_PID
  local deadline=$((SECONDS + READY_TIMEOUT))
  BACKEND_PORT=
  while ((SECONDS < deadline)) && [[ -z $BACKEND_PORT ]]; do
    kill -0 "$BACKEND_PID" 2>/dev/null || die "backend exited: $(cat "$WORK/backend.err")"
    # The file appears when the child opens it, which may be after this first look.
    BACKEND_PORT=$(sed -n 's/^listening on \([0-9]*\)$/\1/p' "$WORK/backend.out" 2>/dev/null || true)
    [[ -n $BACKEND_PORT ]] || sleep 0.05
  done
  [[ -n $BACKEND_PORT ]] || die "backend did not report its port within ${READY_TIMEOUT}s"
  wait_ready backend "$BACKEND_PID" "$BACKEND_PORT" || die "backend not ready"
}

# Wrappers (arrays, e.g. valgrind and its options) run in front of each server's binary.
SLUICE_WRAPPER=()
NGINX_WRAPPER=()
HAPROXY_WRAPPER=()
# nginx's -g directives; a profiler sets 'daemon off; master_process off;' to get one process.
NGINX_GLOBALS='daemon off;'

# sluice: one worker, no access log, one listener, one route to one cluster of the backend.
start_sluice_once() {
  SLUICE_PORT=$(free_port)
  local admin_port
  admin_port=$(free_port)
  cat >"$WORK/sluice.yaml" <<EOF
workers: 1
admin: { address: $BENCH_HOST:$admin_port }
access_log: { path: "off" }
listeners:
  - name: bench
    address: $BENCH_HOST:$SLUICE_PORT
routes:
  - name: all
    match: { path: { prefix: / } }
    cluster: backend
clusters:
  - name: backend
    endpoints: [$BENCH_HOST:$BACKEND_PORT]
EOF
  start sluice "${SLUICE_WRAPPER[@]}" "$SLUICE_BIN" -c "$WORK/sluice.yaml"
  SLUICE_PID=$LAST_PID
  wait_ready sluice "$SLUICE_PID" "$SLUICE_PORT"
}

# nginx_temp_paths DIR: the *_temp_path directives that keep nginx's temp files inside DIR, so
# it touches nothing in /var; only for the modules compiled in.
nginx_temp_paths() {
  local m
  for m in client_body proxy fastcgi uwsgi scgi; do
    if [[ $m == client_body || $m == proxy ]] || ! nginx -V 2>&1 | grep -q -- "--without-http_${m}_module"; then
      echo "  ${m}_temp_path $1/${m}_temp;"
    fi
  done
}

# run_header DETAILS: the line that opens a benchmark's output: sluice's version, the machine,
# the time and load, then DETAILS (the backend, say).
run_header() {
  echo "sluice $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)," \
    "$(nproc) CPUs, kernel $(uname -r), $(date -u +%FT%TZ)," \
    "load average $(cut -d' ' -f1-3 /proc/loadavg), $*"
}

# start_one_backend: one nginx answering `return 200` (a backend that is not ours), or
# sluice_test_backend when nginx is missing. Sets BACKEND_PORT and BACKEND_KIND.
start_one_backend() {
  if command -v nginx >/dev/null; then
    with_retries start_nginx_backends 1 || die "the nginx backend did not start"
    BACKEND_PORT=${BACKEND_PORTS[0]}
    BACKEND_KIND=nginx
  else
    start_backend
    BACKEND_KIND=sluice_test_backend
  fi
}

# start_nginx_backends N: one nginx (1 worker) serving N origins "b1".."bN" on their own ports,
# each answering every request with 200 "hello from bI". Sets BACKEND_PORTS. A backend that is
# not ours, for benchmarks of sluice itself.
start_nginx_backends() {
  local dir=$WORK/nginx-backends servers="" i port
  mkdir -p "$dir/logs"
  BACKEND_PORTS=()
  for ((i = 1; i <= $1; i++)); do
    port=$(free_port)
    BACKEND_PORTS+=("$port")
    servers+="  server { listen $BENCH_HOST:$port; location / { return 200 \"hello from b$i\\n\"; } }"$'\n'
  done
  cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  default_type text/plain;
  keepalive_requests 100000000;
$(nginx_temp_paths "$dir")
$servers}
EOF
  start nginx-backends nginx -p "$dir" -e "$dir/logs/error.log" -c "$dir/nginx.conf" \
    -g 'daemon off;'
  for port in "${BACKEND_PORTS[@]}"; do
    wait_ready nginx-backends "$LAST_PID" "$port" || return 1
  done
}

# nginx: 1 worker, no access log, upstream keep-alive. It forwards Host and the X-Forwarded-*
# headers sluice adds, so both send the backend the same request. keepalive_requests is raised
# on both sides because sluice never closes a keep-alive connection after N requests.
start_nginx_once() {
  NGINX_PORT=$(free_port)
  local dir=$WORK/nginx temps
  mkdir -p "$dir/logs"
  temps=$(nginx_temp_paths "$dir")
  cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
$temps
  upstream backend {
    server $BENCH_HOST:$BACKEND_PORT;
    keepalive 64;
    keepalive_requests 100000000;
  }
  server {
    listen $BENCH_HOST:$NGINX_PORT;
    keepalive_requests 100000000;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$http_host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$http_host;
    }
  }
}
EOF
  start nginx "${NGINX_WRAPPER[@]}" nginx -p "$dir" -e "$dir/logs/error.log" -c "$dir/nginx.conf" \
    -g "$NGINX_GLOBALS"
  NGINX_PID=$LAST_PID
  wait_ready nginx "$NGINX_PID" "$NGINX_PORT"
}

# HAProxy: 1 thread, HTTP mode, keep-alive both sides, always reuse idle server connections,
# no logging, the same X-Forwarded-* headers.
start_haproxy_once() {
  HAPROXY_PORT=$(free_port)
  cat >"$WORK/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 2s
  timeout client 60s
  timeout server 15s
  timeout http-keep-alive 60s
frontend bench
  bind $BENCH_HOST:$HAPROXY_PORT
  option forwardfor
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  default_backend backend
backend backend
  server s1 $BENCH_HOST:$BACKEND_PORT
EOF
  haproxy -c -q -f "$WORK/haproxy.cfg" || die "haproxy rejected its config"
  start haproxy "${HAPROXY_WRAPPER[@]}" haproxy -f "$WORK/haproxy.cfg"
  HAPROXY_PID=$LAST_PID
  wait_ready haproxy "$HAPROXY_PID" "$HAPROXY_PORT"
}

# Pids whose CPU time counts for a target (nginx: master and its worker).
target_pids() {
  case $1 in
    backend) echo "$BACKEND_PID" ;;
    sluice) echo "$SLUICE_PID" ;;
    haproxy) echo "$HAPROXY_PID" ;;
    nginx) echo "$NGINX_PID" "$(pgrep -P "$NGINX_PID" | tr '\n' ' ')" ;;
  esac
}

target_port() {
  case $1 in
    backend) echo "$BACKEND_PORT" ;;
    sluice) echo "$SLUICE_PORT" ;;
    nginx) echo "$NGINX_PORT" ;;
    haproxy) echo "$HAPROXY_PORT" ;;
  esac
}

# Connections the backend has accepted so far, counting the one asking.
backend_accepted() {
  curl -s --max-time 5 "http://$BENCH_HOST:$BACKEND_PORT/stats" |
    sed -n 's/.*"connections_accepted":\([0-9]*\).*/\1/p'
}

# User + system CPU time of the given pids (all threads), in clock ticks.
cpu_ticks() {
  local pid total=0 f
  for pid in "$@"; do
    # Fields after the ")" that closes the command name: utime is the 12th, stime the 13th.
    f=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
    # shellcheck disable=SC2086  # split the fields on purpose
    set -- $f
    total=$((total + ${12} + ${13}))
  done
  echo "$total"
}

# wrk_run URL DURATION OUTFILE: one wrk run with the benchmark's shape.
wrk_run() {
  timeout $(($2 + 30)) wrk -t1 -c"${CONNECTIONS:-50}" -d"$2s" --latency "$1" >"$3" 2>&1
}

# Parsers for wrk's text output. Latencies are converted to milliseconds.
wrk_rps() { awk '/^Requests\/sec:/ { print $2 }' "$1"; }
wrk_requests() { awk '/ requests in / { print $1 }' "$1"; }
wrk_p99_ms() {
  awk '$1 == "99%" {
    v = $2
    if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v) }
    else if (v ~ /m$/) { sub(/m$/, "", v); v *= 60000 }
    else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }
    printf "%.3f\n", v
  }' "$1"
}
# Problems wrk saw: socket errors and non-2xx/3xx responses, as one line ("" when none).
wrk_problems() {
  { grep -E '^ *(Socket errors|Non-2xx or 3xx responses):' "$1" || true; } |
    sed 's/^ *//' | paste -sd ';' -
}

# compare_rounds BASE LABEL: ROUNDS interleaved rounds of DURATION seconds over every target in
# TARGETS, each run by the caller's `run TARGET SECONDS OUTFILE` (after a WARMUP-second run),
# with CPU time from the pid in PID[TARGET]. Prints a line per run, then a markdown table of
# each target's best requests/s, best p99 and median CPU microseconds per request (a shared
# machine disturbs CPU time less than requests/s), with their ratios to BASE's. LABEL heads
# the table's first column.
compare_rounds() {
  local base=$1 label=$2 t r out before after n rps p99 cpu_us prob hz
  hz=$(getconf CLK_TCK)
  log "warm-up: ${WARMUP}s per target"
  for t in "${TARGETS[@]}"; do run "$t" "$WARMUP" "$WORK/warmup-$t.txt" || die "wrk failed: $t"; done
  local -A best_rps=() best_p99=() problems=() cpu_rounds=()
  printf '\n%-14s %5s %12s %10s %10s  %s\n' target round "requests/s" "p99 ms" "cpu us/req" errors
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
      cpu_us=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$n" \
        'BEGIN { printf "%.2f", n ? t / hz * 1e6 / n : 0 }')
      cpu_rounds[$t]+="$cpu_us "
      prob=$(wrk_problems "$out")
      kill -0 "${PID[$t]}" 2>/dev/null || die "$t exited: $(tail -n 20 "$WORK/$t.err")"
      [[ -n $prob ]] && problems[$t]+="round $r: $prob. "
      printf '%-14s %5d %12.1f %10.3f %10s  %s\n' "$t" "$r" "$rps" "$p99" "$cpu_us" "${prob:-none}"
      if [[ -z ${best_rps[$t]:-} ]] || awk -v a="$rps" -v b="${best_rps[$t]}" 'BEGIN { exit !(a > b) }'; then
        best_rps[$t]=$rps
      fi
      if [[ -z ${best_p99[$t]:-} ]] || awk -v a="$p99" -v b="${best_p99[$t]}" 'BEGIN { exit !(a < b) }'; then
        best_p99[$t]=$p99
      fi
    done
  done
  printf '\nBest of %d rounds, wrk -t1 -c%d -d%ss. Ratios are target / %s:\n' \
    "$ROUNDS" "$CONNECTIONS" "$DURATION" "$base"
  median() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
  printf '\n| %s | requests/s | p99 (ms) | cpu us/req (median) | req/s ratio | p99 ratio | cpu ratio |\n' "$label"
  printf '|---|---:|---:|---:|---:|---:|---:|\n'
  for t in "${TARGETS[@]}"; do
    awk -v t="$t" -v rps="${best_rps[$t]}" -v p="${best_p99[$t]}" -v c="$(median "${cpu_rounds[$t]}")" \
      -v brps="${best_rps[$base]}" -v bp="${best_p99[$base]}" \
      -v bc="$(median "${cpu_rounds[$base]}")" 'BEGIN {
        printf "| %s | %.0f | %.2f | %.2f | %.3f | %.2f | %.3f |\n", t, rps, p, c, rps / brps, p / bp, c / bc }'
  done
  for t in "${TARGETS[@]}"; do
    [[ -n ${problems[$t]:-} ]] && echo "wrk reported problems for $t: ${problems[$t]}"
  done
  echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
}
