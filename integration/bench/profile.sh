#!/usr/bin/env bash
# Profiles sluice (1 worker, no access log), and nginx and HAProxy for comparison, in front of
# the test backend under the benchmark's load (wrk, keep-alive, 1 thread, 50 connections, GET /).
# Run integration/bench/run.sh first (it builds the release preset); this uses what is built.
#
#   integration/bench/profile.sh callgrind [sluice|nginx|haproxy]
#                                            instructions and calls per request, top functions
#                                            (user space only; exact and repeatable)
#   integration/bench/profile.sh perf [sluice|nginx|haproxy]
#                                            perf record -e cpu-clock -g: where the time goes,
#                                            kernel included (sampled; noisy on a shared box)
#   integration/bench/profile.sh syscalls    syscalls and context switches per request for
#                                            sluice, nginx and HAProxy (perf stat tracepoints;
#                                            exact counts, cheap, comparable across proxies)
#   integration/bench/profile.sh strace      each syscall's count per request for sluice, nginx
#                                            and HAProxy (strace -c: exact counts; slows the
#                                            target, so its requests/s mean nothing). For
#                                            kernels without syscall tracepoints
#
# Environment: SECONDS_PROFILED (length of the profiled wrk run, default 10), TOP (rows to
# print, default 25), CONNECTIONS (default 50), KEEP_WORK=1 keeps the raw profile, SLUICE_EXTRA
# (top-level YAML added to sluice's config, e.g. 'tracing: { otlp_endpoint: …, sample_rate: 0 }'),
# PROTOCOL=h2 (callgrind only: HTTP/2 over TLS, h2load -c 10 -m 20 -n REQUESTS (default 20000)
# against a TLS listener, as h2.sh runs it, instead of wrk over HTTP/1.1), HEADERS=browser
# (requests carry a browser's fields; see lib.sh).
# Hardware counters (perf stat -e instructions) are often unavailable in VMs; callgrind counts
# instructions without them, and perf's cpu-clock is a software event.
set -euo pipefail

mode=${1:-callgrind}
case $mode in
  callgrind | perf | syscalls | strace) ;;
  -h | --help)
    sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "usage: $0 callgrind|perf [sluice|nginx|haproxy] | syscalls | strace" >&2
    exit 2
    ;;
esac

# shellcheck source=integration/bench/lib.sh
source "$(dirname "$0")/lib.sh"
cd "$REPO"
PROFILED=${SECONDS_PROFILED:-10}
TOP=${TOP:-25}
CONNECTIONS=${CONNECTIONS:-50}
PROTOCOL=${PROTOCOL:-http1}
H2_REQUESTS=${H2_REQUESTS:-20000}
case $PROTOCOL in
  http1) listener_mode=http ;;
  h2)
    [[ $mode == callgrind && ${2:-sluice} == sluice ]] || die "PROTOCOL=h2 is for callgrind of sluice"
    listener_mode=tls
    ;;
  *) die "PROTOCOL must be http1 or h2, not '$PROTOCOL'" ;;
esac
for bin in "$SLUICE_BIN" "$BACKEND_BIN"; do
  [[ -x $bin ]] || die "missing $bin (run integration/bench/run.sh first)"
done

# stop_pid PID NAME: SIGTERM and a bounded wait, so the profiler writes its output.
stop_pid() {
  kill -TERM "$1" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$1" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
  kill -0 "$1" 2>/dev/null && die "$2 did not exit within ${STOP_TIMEOUT}s of SIGTERM"
  return 0
}

report_wrk() {
  local n
  n=$(wrk_requests "$1")
  log "wrk: $n requests, $(wrk_rps "$1") req/s, p99 $(wrk_p99_ms "$1") ms${2:+ ($2)}"
  local prob
  prob=$(wrk_problems "$1")
  [[ -z $prob ]] || log "wrk reported: $prob"
}

# top_rows FILE: the first $TOP function rows of a callgrind_annotate report.
top_rows() {
  awk -v top="$TOP" '/^-+$/ { s++; next } s >= 3 && /%\)/ && !/PROGRAM TOTALS/ && n++ < top' "$1"
}

start_backend

if [[ $mode == callgrind ]]; then
  command -v valgrind >/dev/null || die "missing valgrind (scripts/install-deps.sh --bench)"
  target=${2:-sluice}
  # Instrumentation starts off so startup and warm-up are not counted; it is switched on for
  # the measured run only.
  wrapper=(valgrind --tool=callgrind --instr-atstart=no "--callgrind-out-file=$WORK/callgrind.out")
  READY_TIMEOUT=60
  case $target in
    sluice) SLUICE_WRAPPER=("${wrapper[@]}") && with_retries start_peer sluice "$listener_mode" ;;
    nginx)
      # One process serving requests (the worker's event loop), so one pid to instrument.
      NGINX_WRAPPER=("${wrapper[@]}") NGINX_GLOBALS='daemon off; master_process off;'
      with_retries start_nginx_once
      ;;
    haproxy) HAPROXY_WRAPPER=("${wrapper[@]}") && with_retries start_haproxy_once ;;
    *) die "callgrind target must be sluice, nginx or haproxy, not '$target'" ;;
  esac || die "$target did not start under valgrind"
  pid=$(target_pids "$target" | awk '{ print $1 }')
  if [[ $PROTOCOL == h2 ]]; then
    # h2load counts exactly: -n requests, all answered before it exits.
    url="https://$BENCH_HOST:$(target_port "$target")/"
    h2_run() { timeout 300 h2load -c 10 -m 20 -n "$1" "${HEADER_ARGS[@]}" "$url" >"$2" 2>&1; }
    h2_run 2000 "$WORK/warmup.txt" || die "warm-up failed: $(cat "$WORK/warmup.txt")"
    timeout 30 callgrind_control -i on "$pid" >/dev/null || die "callgrind_control -i on failed"
    h2_run "$H2_REQUESTS" "$WORK/h2load.txt" || die "h2load failed: $(cat "$WORK/h2load.txt")"
    timeout 30 callgrind_control -i off "$pid" >/dev/null || die "callgrind_control -i off failed"
    requests=$(awk '/^requests:/ { print $8; exit }' "$WORK/h2load.txt")
    [[ $requests == "$H2_REQUESTS" ]] || die "h2load: $requests of $H2_REQUESTS succeeded"
    log "h2load: $requests requests ($target under valgrind: slow by design)"
  else
    url="http://$BENCH_HOST:$(target_port "$target")/"
    wrk_run "$url" 3 "$WORK/warmup.txt" || die "warm-up failed: $(cat "$WORK/warmup.txt")"
    timeout 30 callgrind_control -i on "$pid" >/dev/null || die "callgrind_control -i on failed"
    wrk_run "$url" "$PROFILED" "$WORK/wrk.txt" || die "wrk failed: $(cat "$WORK/wrk.txt")"
    timeout 30 callgrind_control -i off "$pid" >/dev/null || die "callgrind_control -i off failed"
    report_wrk "$WORK/wrk.txt" "$target under valgrind: slow by design"
    # wrk's count is the requests served while instrumentation was on (the warm-up finished
    # before); requests in flight at either edge are noise of 50 in thousands.
    requests=$(wrk_requests "$WORK/wrk.txt")
  fi
  stop_pid "$pid" "$target"
  [[ -s $WORK/callgrind.out ]] || die "no callgrind output; stderr: $(tail -n 20 "$WORK/$target.err")"
  callgrind_annotate --inclusive=no "$WORK/callgrind.out" >"$WORK/self.txt" 2>/dev/null
  callgrind_annotate --inclusive=yes "$WORK/callgrind.out" >"$WORK/inclusive.txt" 2>/dev/null
  total=$(awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }' "$WORK/self.txt")
  echo
  awk -v t="$total" -v n="$requests" -v who="$target" 'BEGIN {
    printf "%s, instructions (user space) while profiled: %d over %d requests = %.0f per request\n",
      who, t, n, t / n }'
  echo
  echo "Calls per request (heap and syscall wrappers; operator new calls malloc):"
  /usr/bin/python3 "$(dirname "$0")/callgrind_calls.py" "$WORK/callgrind.out" "$requests"
  echo
  echo "Top $TOP functions by self instructions (share of all instructions):"
  top_rows "$WORK/self.txt"
  echo
  echo "Top $TOP functions by inclusive instructions:"
  top_rows "$WORK/inclusive.txt"
elif [[ $mode == syscalls ]]; then
  command -v perf >/dev/null || die "missing perf (scripts/install-deps.sh --bench)"
  with_retries start_sluice_once || die "sluice did not start"
  with_retries start_nginx_once || die "nginx did not start"
  with_retries start_haproxy_once || die "haproxy did not start"
  names=(read write readv writev recvfrom sendto recvmsg sendmsg epoll_wait epoll_pwait epoll_ctl
    timerfd_settime setsockopt ioctl futex)
  events=(-e raw_syscalls:sys_enter -e context-switches)
  for n in "${names[@]}"; do
    [[ -d /sys/kernel/tracing/events/syscalls/sys_enter_$n ]] && events+=(-e "syscalls:sys_enter_$n")
  done
  for t in sluice nginx haproxy; do
    url="http://$BENCH_HOST:$(target_port "$t")/"
    wrk_run "$url" 3 "$WORK/warmup-$t.txt" || die "warm-up failed: $(cat "$WORK/warmup-$t.txt")"
    pids=$(target_pids "$t" | xargs | tr ' ' ',')
    timeout $((PROFILED + 30)) perf stat -x, -o "$WORK/stat-$t.csv" "${events[@]}" -p "$pids" \
      -- sleep "$PROFILED" 2>"$WORK/perf-stat-$t.err" &
    stat_pid=$!
    wrk_run "$url" "$PROFILED" "$WORK/wrk-$t.txt" || die "wrk failed: $(cat "$WORK/wrk-$t.txt")"
    wait "$stat_pid" || die "perf stat failed: $(cat "$WORK/perf-stat-$t.err")"
    report_wrk "$WORK/wrk-$t.txt" "$t, under perf stat"
  done
  # perf stat runs as long as wrk (both start together for PROFILED seconds), so counts are
  # divided by the requests wrk completed. Rows: event; columns: sluice, nginx, haproxy.
  echo
  echo "Per request, during a ${PROFILED}s wrk run (-c$CONNECTIONS) against each proxy:"
  awk -F, -v sn="$(wrk_requests "$WORK/wrk-sluice.txt")" -v nn="$(wrk_requests "$WORK/wrk-nginx.txt")" \
    -v hn="$(wrk_requests "$WORK/wrk-haproxy.txt")" '
    FNR == 1 { file++ }
    /^#/ || NF < 3 { next }
    {
      ev = $3; sub(/^(raw_)?syscalls:sys_enter_?/, "", ev); if (ev == "") ev = "all syscalls"
      if (!(ev in seen)) { seen[ev] = 1; order[++k] = ev }
      v[ev, file] = $1
    }
    END {
      printf "  %-18s %10s %10s %10s\n", "event", "sluice", "nginx", "haproxy"
      for (i = 1; i <= k; i++) {
        ev = order[i]
        if (v[ev, 1] + v[ev, 2] + v[ev, 3] == 0) continue
        printf "  %-18s %10.2f %10.2f %10.2f\n", ev, v[ev, 1] / sn, v[ev, 2] / nn, v[ev, 3] / hn
      }
    }' "$WORK/stat-sluice.csv" "$WORK/stat-nginx.csv" "$WORK/stat-haproxy.csv"
elif [[ $mode == strace ]]; then
  command -v strace >/dev/null || die "missing strace (scripts/install-deps.sh --bench)"
  with_retries start_sluice_once || die "sluice did not start"
  with_retries start_nginx_once || die "nginx did not start"
  with_retries start_haproxy_once || die "haproxy did not start"
  for t in sluice nginx haproxy; do
    url="http://$BENCH_HOST:$(target_port "$t")/"
    wrk_run "$url" 3 "$WORK/warmup-$t.txt" || die "warm-up failed: $(cat "$WORK/warmup-$t.txt")"
    attach=()
    for pid in $(target_pids "$t"); do attach+=(-p "$pid"); done
    # strace stops at SIGINT after wrk is done and prints its table; -f follows every thread.
    timeout -s INT $((PROFILED + 5)) strace -c -f -o "$WORK/strace-$t.txt" "${attach[@]}" &
    strace_pid=$!
    sleep 1 # attached before the load starts
    wrk_run "$url" "$PROFILED" "$WORK/wrk-$t.txt" || die "wrk failed: $(cat "$WORK/wrk-$t.txt")"
    kill -INT "$strace_pid" 2>/dev/null || true
    wait "$strace_pid" || true
    [[ -s $WORK/strace-$t.txt ]] || die "strace wrote nothing for $t"
    report_wrk "$WORK/wrk-$t.txt" "$t, under strace"
  done
  echo
  echo "Syscalls per request (errors in brackets, e.g. EAGAIN), ${PROFILED}s of wrk -c$CONNECTIONS:"
  awk -v sn="$(wrk_requests "$WORK/wrk-sluice.txt")" -v nn="$(wrk_requests "$WORK/wrk-nginx.txt")" \
    -v hn="$(wrk_requests "$WORK/wrk-haproxy.txt")" '
    FNR == 1 { file++ }
    # strace -c rows: % time, seconds, usecs/call, calls, [errors,] syscall
    $1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" {
      name = $NF; calls[name, file] = $4; errs[name, file] = (NF == 6 ? $5 : 0)
      if (!(name in seen)) { seen[name] = 1; order[++k] = name }
    }
    END {
      n[1] = sn; n[2] = nn; n[3] = hn
      printf "  %-16s %14s %14s %14s\n", "syscall", "sluice", "nginx", "haproxy"
      for (i = 1; i <= k; i++) {
        s = order[i]; line = sprintf("  %-16s", s); keep = 0
        for (f = 1; f <= 3; f++) {
          c = calls[s, f] / n[f]; e = errs[s, f] / n[f]
          if (c >= 0.005) keep = 1
          cell = sprintf("%.2f", c); if (e >= 0.005) cell = cell sprintf(" (%.2f)", e)
          line = line sprintf(" %14s", cell)
        }
        for (f = 1; f <= 3; f++) total[f] += calls[s, f] / n[f]
        if (keep) print line
      }
      printf "  %-16s %14.2f %14.2f %14.2f\n", "all", total[1], total[2], total[3]
    }' "$WORK/strace-sluice.txt" "$WORK/strace-nginx.txt" "$WORK/strace-haproxy.txt"
else
  command -v perf >/dev/null || die "missing perf (scripts/install-deps.sh --bench)"
  target=${2:-sluice}
  case $target in
    sluice) with_retries start_sluice_once ;;
    nginx) with_retries start_nginx_once ;;
    haproxy) with_retries start_haproxy_once ;;
    *) die "perf target must be sluice, nginx or haproxy, not '$target'" ;;
  esac || die "$target did not start"
  url="http://$BENCH_HOST:$(target_port "$target")/"
  pids=$(target_pids "$target" | xargs | tr ' ' ',')
  wrk_run "$url" 3 "$WORK/warmup.txt" || die "warm-up failed: $(cat "$WORK/warmup.txt")"
  # cpu-clock is a software event, so this works where hardware counters do not.
  timeout $((PROFILED + 30)) perf record -q -e cpu-clock -F 999 -g -p "$pids" \
    -o "$WORK/perf.data" -- sleep "$PROFILED" 2>"$WORK/perf-record.err" &
  perf_pid=$!
  wrk_run "$url" "$PROFILED" "$WORK/wrk.txt" || die "wrk failed: $(cat "$WORK/wrk.txt")"
  wait "$perf_pid" || die "perf record failed: $(cat "$WORK/perf-record.err")"
  report_wrk "$WORK/wrk.txt" "$target under perf sampling"
  echo
  echo "Top $TOP symbols by self samples ($target, all threads, kernel included):"
  perf report -i "$WORK/perf.data" --no-children --sort dso,symbol --stdio -g none \
    --percent-limit 0.5 2>/dev/null | awk -v top="$TOP" '!/^#/ && NF && n++ < top'
  echo
  echo "Share of samples under each syscall (children included: for sendto on loopback this"
  echo "covers delivering the segment to the receiving socket and waking the receiver):"
  perf report -i "$WORK/perf.data" --children --sort symbol --stdio -g none 2>/dev/null |
    awk '$4 ~ /^__x64_sys_/ { printf "  %8s  %s\n", $1, substr($4, 11) }'
  echo
  echo "User space vs kernel:"
  perf report -i "$WORK/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null |
    awk '!/^#/ && NF && n++ < 8'
fi
