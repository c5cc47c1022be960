#!/usr/bin/env bash
# HTTP/2 over TLS: h2load (10 connections x 20 concurrent streams, GET /) against sluice, nginx,
# HAProxy and nghttpx, each with 1 worker, TLS on the frontend and HTTP/1.1 keep-alive to the
# same test backend, all on loopback in one run.
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

# One self-signed ECDSA certificate for everyone.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost \
  -keyout "$WORK/h2.key" -out "$WORK/h2.crt" 2>/dev/null
cat "$WORK/h2.crt" "$WORK/h2.key" >"$WORK/h2.pem"

# wait_tls NAME PID PORT: until an HTTPS GET / answers 200 (or the bounded wait ends).
wait_tls() {
  local name=$1 pid=$2 port=$3 code deadline=$((SECONDS + READY_TIMEOUT))
  while ((SECONDS < deadline)); do
    kill -0 "$pid" 2>/dev/null || {
      tail -n 20 "$WORK/$name.err" >&2
      return 1
    }
    code=$(curl -sk --http2 -o /dev/null -w '%{http_code}' --max-time 1 \
      "https://$BENCH_HOST:$port/" || true)
    [[ $code == 200 ]] && return 0
    sleep 0.1
  done
  tail -n 20 "$WORK/$name.err" >&2
  return 1
}

start_sluice_h2() {
  SLUICE_PORT=$(free_port)
  cat >"$WORK/sluice-h2.yaml" <<EOF
workers: 1
admin: { address: $BENCH_HOST:$(free_port) }
access_log: { path: "off" }
listeners:
  - name: bench
    address: $BENCH_HOST:$SLUICE_PORT
    tls: { certificates: [{ cert_file: $WORK/h2.crt, key_file: $WORK/h2.key }] }
routes: [{ name: all, cluster: backend }]
clusters: [{ name: backend, endpoints: [$BENCH_HOST:$BACKEND_PORT] }]
EOF
  start sluice "$SLUICE_BIN" -c "$WORK/sluice-h2.yaml"
  SLUICE_PID=$LAST_PID
  wait_tls sluice "$SLUICE_PID" "$SLUICE_PORT"
}

start_nginx_h2() {
  NGINX_PORT=$(free_port)
  mkdir -p "$WORK/nginx-h2"
  cat >"$WORK/nginx-h2.conf" <<EOF
worker_processes 1;
pid $WORK/nginx-h2/nginx.pid;
error_log $WORK/nginx-h2/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx-h2;
  proxy_temp_path $WORK/nginx-h2;
  fastcgi_temp_path $WORK/nginx-h2;
  uwsgi_temp_path $WORK/nginx-h2;
  scgi_temp_path $WORK/nginx-h2;
  upstream backend { server $BENCH_HOST:$BACKEND_PORT; keepalive 256; keepalive_requests 1000000; }
  server {
    listen $BENCH_HOST:$NGINX_PORT ssl http2;
    ssl_certificate $WORK/h2.crt;
    ssl_certificate_key $WORK/h2.key;
    keepalive_requests 1000000;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
  start nginx nginx -p "$WORK/nginx-h2" -c "$WORK/nginx-h2.conf" -g 'daemon off;'
  NGINX_PID=$LAST_PID
  wait_tls nginx "$NGINX_PID" "$NGINX_PORT"
}

start_haproxy_h2() {
  HAPROXY_PORT=$(free_port)
  cat >"$WORK/haproxy-h2.cfg" <<EOF
global
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend bench
  bind $BENCH_HOST:$HAPROXY_PORT ssl crt $WORK/h2.pem alpn h2,http/1.1
  default_backend backend
backend backend
  http-reuse always
  server b $BENCH_HOST:$BACKEND_PORT
EOF
  start haproxy haproxy -db -f "$WORK/haproxy-h2.cfg"
  HAPROXY_PID=$LAST_PID
  wait_tls haproxy "$HAPROXY_PID" "$HAPROXY_PORT"
}

start_nghttpx() {
  NGHTTPX_PORT=$(free_port)
  start nghttpx nghttpx --frontend="$BENCH_HOST,$NGHTTPX_PORT" \
    --backend="$BENCH_HOST,$BACKEND_PORT" --workers=1 --no-ocsp --log-level=WARN \
    --accesslog-file=/dev/null --errorlog-file="$WORK/nghttpx.log" --conf=/dev/null \
    "$WORK/h2.key" "$WORK/h2.crt"
  NGHTTPX_PID=$LAST_PID
  wait_tls nghttpx "$NGHTTPX_PID" "$NGHTTPX_PORT"
}

port_of() {
  case $1 in
    sluice) echo "$SLUICE_PORT" ;;
    nginx) echo "$NGINX_PORT" ;;
    haproxy) echo "$HAPROXY_PORT" ;;
    nghttpx) echo "$NGHTTPX_PORT" ;;
  esac
}

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
with_retries start_sluice_h2 || die "sluice did not start"
with_retries start_nginx_h2 || die "nginx did not start"
with_retries start_haproxy_h2 || die "haproxy did not start"
with_retries start_nghttpx || die "nghttpx did not start"

for t in "${TARGETS[@]}"; do
  body=$(curl -sk --http2 --max-time 5 "https://$BENCH_HOST:$(port_of "$t")/") || true
  [[ $body == "hello from bench" ]] || die "$t answered '$body', not the backend's body"
  h2load_run "$(port_of "$t")" "$WARMUP" "$WORK/warmup-$t.txt" || die "h2load failed: $t"
done

declare -A best_rps best_mean
printf '\n%-8s %5s %12s %12s %10s  %s\n' target round "requests/s" "mean ms" requests failed
for ((r = 1; r <= ROUNDS; r++)); do
  for t in "${TARGETS[@]}"; do
    out=$WORK/round$r-$t.txt
    h2load_run "$(port_of "$t")" "$DURATION" "$out" || die "h2load failed against $t"
    rps=$(sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' "$out")
    mean=$(awk '/^time for request:/ { v = $5; u = v; sub(/[a-z]+$/, "", v); sub(/^[0-9.]+/, "", u);
                 printf "%.3f", u == "us" ? v / 1000 : (u == "s" ? v * 1000 : v) }' "$out")
    done_n=$(sed -n 's/^requests: .* \([0-9]*\) done.*/\1/p' "$out")
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
