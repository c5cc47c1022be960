# shellcheck shell=bash
# Shared by the scripts in integration/bench: start a backend (ours or an nginx), sluice and
# its peers (nginx, HAProxy, nghttpx; every peer's settings are here, in start_peer) on
# ephemeral loopback ports, run wrk, parse its output, and stop everything on exit. Every wait
# is bounded. Source it; it defines functions and a trap.

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

# The arguments the benchmark scripts share: --no-build, --help (prints the calling script's header
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
  # shellcheck disable=SC2004,SC2034  # the caller's associative arrays
  PID[$name]=$LAST_PID
  # shellcheck disable=SC2004,SC2034
  PORT[$name]=$port
  # shellcheck disable=SC2004,SC2034
  ADMIN[$name]=$admin
  wait_ready "$name" "$LAST_PID" "$port"
}

# wait_ready NAME PID PORT [SCHEME]: until GET / on PORT answers 200 (over HTTP/2 when SCHEME is
# https), PID dies, or READY_TIMEOUT passes.
wait_ready() {
  local name=$1 pid=$2 port=$3 scheme=${4:-http} want="200 1.1" got="" deadline=$((SECONDS + READY_TIMEOUT))
  local -a opts=()
  [[ $scheme == https ]] && opts=(-k --http2) && want="200 2"
  while ((SECONDS < deadline)); do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$name exited during startup; stderr:"
      tail -n 20 "$WORK/$name.err" >&2
      return 1
    fi
    got=$(curl -s "${opts[@]}" -o /dev/null -w '%{http_code} %{http_version}' --max-time 1 \
      "$scheme://$BENCH_HOST:$port/" || true)
    [[ $got == "$want" ]] && return 0
    sleep 0.1
  done
  log "$name did not answer '$want' (status, HTTP version) on port $port within ${READY_TIMEOUT}s (last: '$got')"
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

# ---------------------------------------------------------------------------------------------
# Backends that are not ours: nginx answering `return 200`.

# nginx_origin_conf DIR SERVERS: the nginx.conf of an nginx backend: 1 worker, access log off,
# keep-alive with no practical limit of requests per connection, SERVERS (server blocks).
nginx_origin_conf() {
  cat <<EOF
worker_processes 1;
pid $1/nginx.pid;
error_log $1/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  default_type text/plain;
  keepalive_requests 100000000;
$(nginx_temp_paths "$1")
$2}
EOF
}

# start_nginx_backend: the backend of the comparison with the peers: one nginx (1 worker,
# keep-alive, access log off) answering every request with 200 "hello from bench\n", the same
# 17 bytes as `sluice_test_backend --name bench`. Sets BACKEND_PORT and BACKEND_PID like
# start_backend, and BACKEND_STATUS_PORT (nginx's stub_status, for backend_accepted).
start_nginx_backend() {
  local dir=$WORK/nginx-backend
  mkdir -p "$dir/logs"
  BACKEND_PORT=$(free_port)
  BACKEND_STATUS_PORT=$(free_port)
  nginx_origin_conf "$dir" "  server { listen $BENCH_HOST:$BACKEND_PORT; location / { return 200 \"hello from bench\\n\"; } }
  server { listen $BENCH_HOST:$BACKEND_STATUS_PORT; location / { stub_status; } }
" >"$dir/nginx.conf"
  start nginx-backend nginx -p "$dir" -e "$dir/logs/error.log" -c "$dir/nginx.conf" -g 'daemon off;'
  BACKEND_PID=$LAST_PID
  wait_ready nginx-backend "$BACKEND_PID" "$BACKEND_PORT" || return 1
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
    # shellcheck disable=SC2034  # for the caller
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
  nginx_origin_conf "$dir" "$servers" >"$dir/nginx.conf"
  start nginx-backends nginx -p "$dir" -e "$dir/logs/error.log" -c "$dir/nginx.conf" \
    -g 'daemon off;'
  for port in "${BACKEND_PORTS[@]}"; do
    wait_ready nginx-backends "$LAST_PID" "$port" || return 1
  done
}

# Connections the backend has accepted so far, counting the one asking: nginx's stub_status
# after start_nginx_backend, sluice_test_backend's /stats after start_backend.
backend_accepted() {
  if [[ -n ${BACKEND_STATUS_PORT:-} ]]; then
    curl -s --max-time 5 "http://$BENCH_HOST:$BACKEND_STATUS_PORT/" | awk 'NR == 3 { print $1 }'
  else
    curl -s --max-time 5 "http://$BENCH_HOST:$BACKEND_PORT/stats" |
      sed -n 's/.*"connections_accepted":\([0-9]*\).*/\1/p'
  fi
}

# ---------------------------------------------------------------------------------------------
# The peers: sluice and the proxies it is compared with. Their settings live here and only here;
# run.sh, h2.sh, peers.sh and profile.sh start them through start_peer. Each peer runs
#   - $WORKERS workers (processes or threads; default 1), access log off, errors to a file in
#     $WORK;
#   - in MODE "http" a plain HTTP/1.1 listener; in MODE "tls" TLS 1.2/1.3 with ALPN h2 and
#     http/1.1, one self-signed ECDSA P-256 certificate for everyone (bench_cert);
#   - HTTP/1.1 keep-alive to the one backend at $BENCH_HOST:$BACKEND_PORT, idle upstream
#     connections kept 60 s (sluice's default idle_timeout), no limit of requests per
#     connection on either side (sluice has none);
#   - the backend gets Host as the client sent it plus X-Forwarded-For, X-Forwarded-Proto and
#     X-Forwarded-Host, as from sluice. sluice's defaults also add X-Real-IP, x-request-id and
#     traceparent, which no peer is asked to do.
# sluice's config says workers: 1 and access log off and nothing else beyond its listener, one
# route and one cluster: never a pool size or a timeout. The other peers are set only where
# their defaults would differ from the list above.

WORKERS=${WORKERS:-1}

# Wrappers (arrays, e.g. valgrind and its options) run in front of each server's binary.
SLUICE_WRAPPER=()
NGINX_WRAPPER=()
HAPROXY_WRAPPER=()
# nginx's -g directives; a profiler sets 'daemon off; master_process off;' to get one process.
NGINX_GLOBALS='daemon off;'

declare -A PEER_PORT=() PEER_PID=() PEER_SCHEME=()

# bench_cert: the self-signed ECDSA P-256 certificate every TLS peer serves (made once):
# $WORK/bench.crt, bench.key, and bench.pem (both, for HAProxy).
bench_cert() {
  [[ -s $WORK/bench.pem ]] && return 0
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost \
    -keyout "$WORK/bench.key" -out "$WORK/bench.crt" 2>"$WORK/openssl.err" ||
    die "openssl could not make the certificate: $(cat "$WORK/openssl.err")"
  cat "$WORK/bench.crt" "$WORK/bench.key" >"$WORK/bench.pem"
}

# start_peer PEER MODE [NAME]: starts PEER (sluice, nginx, haproxy or nghttpx) in MODE (http or
# tls) under NAME (default PEER; logs and configs in $WORK/NAME*), on a fresh port, and waits
# until it answers GET / with 200 (over HTTP/2 in MODE tls). Sets PEER_PORT[NAME],
# PEER_PID[NAME] and PEER_SCHEME[NAME] (http or https). Call it through with_retries.
start_peer() {
  local peer=$1 mode=$2 name=${3:-$1} port scheme=http
  case $mode in
    http) ;;
    tls) scheme=https && bench_cert ;;
    *) die "start_peer: mode must be http or tls, not '$mode'" ;;
  esac
  port=$(free_port)
  case $peer in
    sluice) peer_sluice "$name" "$mode" "$port" ;;
    nginx) peer_nginx "$name" "$mode" "$port" ;;
    haproxy) peer_haproxy "$name" "$mode" "$port" ;;
    nghttpx) peer_nghttpx "$name" "$mode" "$port" ;;
    *) die "start_peer: unknown peer '$peer'" ;;
  esac || return 1
  PEER_PORT[$name]=$port
  PEER_PID[$name]=$LAST_PID
  PEER_SCHEME[$name]=$scheme
  wait_ready "$name" "$LAST_PID" "$port" "$scheme"
}

# peer_sluice NAME MODE PORT: workers: $WORKERS, access log off, one listener, one prefix / route to a
# one-endpoint cluster; every other key at its default. $SLUICE_EXTRA, if set, is appended as
# top-level YAML (e.g. a tracing section, to profile what it costs).
peer_sluice() {
  local name=$1 mode=$2 port=$3 admin tls=""
  admin=$(free_port)
  [[ $mode == tls ]] &&
    tls="    tls: { certificates: [{ cert_file: \"$WORK/bench.crt\", key_file: \"$WORK/bench.key\" }] }"
  cat >"$WORK/$name.yaml" <<EOF
workers: $WORKERS
admin: { address: "$BENCH_HOST:$admin" }
access_log: { path: "off" }
listeners:
  - name: bench
    address: "$BENCH_HOST:$port"
$tls
routes:
  - name: all
    match: { path: { prefix: / } }
    cluster: backend
clusters:
  - name: backend
    endpoints: ["$BENCH_HOST:$BACKEND_PORT"]
${SLUICE_EXTRA:-}
EOF
  start "$name" "${SLUICE_WRAPPER[@]}" "$SLUICE_BIN" -c "$WORK/$name.yaml"
}

# peer_nginx NAME MODE PORT: worker_processes $WORKERS, access_log off, upstream keepalive (1024 idle
# connections per worker, sluice's default max_idle_connections; 60 s), proxy_http_version
# 1.1 with Connection cleared, keepalive_requests raised on both sides (nginx's default closes
# a connection after 1000 requests; sluice has no such limit). TLS 1.2 and 1.3 (nginx 1.22's
# default list lacks 1.3), HTTP/2 on the TLS listener.
peer_nginx() {
  local name=$1 mode=$2 port=$3 dir=$WORK/$1 listen tls=""
  mkdir -p "$dir/logs"
  listen="$BENCH_HOST:$port"
  if [[ $mode == tls ]]; then
    listen+=" ssl http2"
    tls="    ssl_certificate $WORK/bench.crt;
    ssl_certificate_key $WORK/bench.key;
    ssl_protocols TLSv1.2 TLSv1.3;"
  fi
  cat >"$dir/nginx.conf" <<EOF
worker_processes $WORKERS;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
$(nginx_temp_paths "$dir")
  upstream backend {
    server $BENCH_HOST:$BACKEND_PORT;
    keepalive 1024;
    keepalive_timeout 60s;
    keepalive_requests 100000000;
  }
  server {
    listen $listen;
$tls
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
  start "$name" "${NGINX_WRAPPER[@]}" nginx -p "$dir" -e "$dir/logs/error.log" -c "$dir/nginx.conf" \
    -g "$NGINX_GLOBALS"
}

# peer_haproxy NAME MODE PORT: nbthread $WORKERS, mode http, keep-alive on both sides, `http-reuse
# always`, idle server connections purged after 60 s instead of 5 s, no logging, option
# forwardfor and the same X-Forwarded-Proto/-Host. TLS with ALPN h2,http/1.1 and the client's
# cipher preference, as the others (HAProxy's own order picks AES-256-GCM where they use
# h2load's first choice, AES-128-GCM).
peer_haproxy() {
  local name=$1 mode=$2 port=$3 bind proto=http
  bind="$BENCH_HOST:$port"
  [[ $mode == tls ]] && bind+=" ssl crt $WORK/bench.pem alpn h2,http/1.1 prefer-client-ciphers" && proto=https
  cat >"$WORK/$name.cfg" <<EOF
global
  nbthread $WORKERS
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
  bind $bind
  option forwardfor
  http-request set-header X-Forwarded-Proto $proto
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  default_backend backend
backend backend
  server s1 $BENCH_HOST:$BACKEND_PORT pool-purge-delay 60s
EOF
  haproxy -c -q -f "$WORK/$name.cfg" || die "haproxy rejected $WORK/$name.cfg"
  start "$name" "${HAPROXY_WRAPPER[@]}" haproxy -f "$WORK/$name.cfg"
}

# peer_nghttpx NAME MODE PORT: --workers=$WORKERS, no access log (no --accesslog-file: a file, even
# /dev/null, turns it on), backend keep-alive 60 s instead of 2 s, no Via, X-Forwarded-For
# added (X-Forwarded-Proto is its default). It has no X-Forwarded-Host option: a fixed
# X-Forwarded-Host with the value every client here sends in Host adds the same bytes. Plain
# mode is `--frontend='HOST,PORT;no-tls'` (HTTP/1.1, and h2c).
peer_nghttpx() {
  local name=$1 mode=$2 port=$3 frontend
  local -a certs=()
  frontend="$BENCH_HOST,$port"
  if [[ $mode == tls ]]; then
    certs=("$WORK/bench.key" "$WORK/bench.crt")
  else
    frontend+=";no-tls"
  fi
  start "$name" nghttpx --conf=/dev/null --frontend="$frontend" \
    --backend="$BENCH_HOST,$BACKEND_PORT" --workers="$WORKERS" --no-ocsp --log-level=WARN \
    --errorlog-file="$WORK/$name.log" --backend-keep-alive-timeout=60s --no-via \
    --add-x-forwarded-for --add-request-header="X-Forwarded-Host: $BENCH_HOST:$port" \
    "${certs[@]}"
}

# One of each, for the scripts that start them so (run.sh, profile.sh): NAME is the peer's.
start_sluice_once() { start_peer sluice http; }
start_nginx_once() { start_peer nginx http; }
start_haproxy_once() { start_peer haproxy http; }

# bench_get NAME: the body of GET / from the backend (NAME "backend") or a peer started as
# NAME, over HTTP/2 when the peer speaks TLS.
bench_get() {
  if [[ $1 == backend ]]; then
    curl -s --max-time 5 "http://$BENCH_HOST:$BACKEND_PORT/"
  elif [[ ${PEER_SCHEME[$1]} == https ]]; then
    curl -sk --http2 --max-time 5 "https://$BENCH_HOST:${PEER_PORT[$1]}/"
  else
    curl -s --max-time 5 "http://$BENCH_HOST:${PEER_PORT[$1]}/"
  fi
}

# target_pids NAME: the pids whose CPU time counts for the backend or a peer: its process and
# its children (nginx's worker, nghttpx's worker process).
target_pids() {
  local pid
  if [[ $1 == backend ]]; then pid=$BACKEND_PID; else pid=${PEER_PID[$1]}; fi
  echo "$pid $(pgrep -P "$pid" | xargs || true)"
}

target_port() {
  if [[ $1 == backend ]]; then echo "$BACKEND_PORT"; else echo "${PEER_PORT[$1]}"; fi
}

# User and system CPU time of the given pids (all threads), in clock ticks: "USER SYSTEM".
cpu_times() {
  local pid user=0 system=0 f
  for pid in "$@"; do
    # Fields after the ")" that closes the command name: utime is the 12th, stime the 13th.
    f=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
    # shellcheck disable=SC2086  # split the fields on purpose
    set -- $f
    user=$((user + ${12})) system=$((system + ${13}))
  done
  echo "$user $system"
}

# User + system CPU time of the given pids (all threads), in clock ticks.
cpu_ticks() {
  local user system
  read -r user system <<<"$(cpu_times "$@")"
  echo $((user + system))
}

# per_request_us TICKS REQUESTS [DECIMALS]: TICKS clock ticks of CPU time per request, in
# microseconds, with DECIMALS decimals (default 1); 0 when no request was made.
per_request_us() {
  awk -v t="$1" -v hz="$(getconf CLK_TCK)" -v n="$2" -v d="${3:-1}" \
    'BEGIN { printf "%." d "f", n ? t / hz * 1e6 / n : 0 }'
}

# CPU time the whole machine spent busy (all CPUs: user, nice, system, irq, softirq; not idle,
# I/O wait or time stolen by the hypervisor), in clock ticks.
machine_busy_ticks() {
  awk '/^cpu / { print $2 + $3 + $4 + $7 + $8; exit }' /proc/stat
}

# HEADERS=browser: the load generators send the fields of a browser's GET for a script (about
# 800 bytes of head, as Chrome 131 sends them; names in lower case, as HTTP/2 needs) instead of
# their bare GET (wrk: Host alone). HEADER_ARGS holds them as -H arguments for wrk and h2load.
BROWSER_FIELDS=(
  'sec-ch-ua: "Chromium";v="131", "Not_A Brand";v="24"'
  'sec-ch-ua-mobile: ?0'
  'sec-ch-ua-platform: "Linux"'
  'user-agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36'
  'accept: */*'
  'sec-fetch-site: same-origin'
  'sec-fetch-mode: no-cors'
  'sec-fetch-dest: script'
  'referer: https://www.example.com/account/orders?page=2'
  'accept-encoding: gzip, deflate, br, zstd'
  'accept-language: en-GB,en-US;q=0.9,en;q=0.8'
  'cookie: session=8f14e45fceea167a5a36dedd4bea2543; theme=dark; _ga=GA1.2.1234567890.1701600000; consent=analytics%3Dno'
)
HEADER_ARGS=()
case ${HEADERS:-bare} in
  bare) ;;
  browser) for f in "${BROWSER_FIELDS[@]}"; do HEADER_ARGS+=(-H "$f"); done ;;
  *) die "HEADERS must be bare or browser, not '$HEADERS'" ;;
esac

# wrk_run URL DURATION OUTFILE: one wrk run with the benchmark's shape.
wrk_run() {
  timeout $(($2 + 30)) wrk -t1 -c"${CONNECTIONS:-50}" -d"$2s" --latency "${HEADER_ARGS[@]}" "$1" \
    >"$3" 2>&1
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

# Parsers for h2load's output: requests/s, requests done, and the mean "time for request" in
# milliseconds (the line reads min, max, mean, sd: the mean is the sixth field).
h2load_rps() { sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' "$1"; }
h2load_done() { sed -n 's/^requests: .* \([0-9]*\) done,.*/\1/p' "$1"; }
h2load_mean_ms() {
  awk '/^time for request:/ { v = $6; u = v; sub(/[a-z]+$/, "", v); sub(/^[0-9.]+/, "", u)
       printf "%.3f\n", u == "us" ? v / 1000 : (u == "s" ? v * 1000 : v) }' "$1"
}

# compare_rounds BASE LABEL: ROUNDS interleaved rounds of DURATION seconds over every target in
# TARGETS, each run by the caller's `run TARGET SECONDS OUTFILE` (after a WARMUP-second run),
# with CPU time from the pid in PID[TARGET]. Prints a line per run, then a markdown table of
# each target's best requests/s, best p99 and median CPU microseconds per request (a shared
# machine disturbs CPU time less than requests/s), with their ratios to BASE's. LABEL heads
# the table's first column.
compare_rounds() {
  local base=$1 label=$2 t r out before after n rps p99 cpu_us prob
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
      cpu_us=$(per_request_us $((after - before)) "$n" 2)
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
