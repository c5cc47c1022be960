#!/usr/bin/env bash
# sluice against its peers, nginx, HAProxy and nghttpx, over both protocols in one run, with one
# table at the end. Every proxy runs twice side by side, a plain HTTP/1.1 listener and a TLS
# one (HTTP/2 by ALPN), all with the settings in lib.sh (start_peer: 1 worker, access log off,
# HTTP/1.1 keep-alive upstream, the same forwarding headers; sluice at its defaults), in front
# of one backend that is not ours: an nginx (1 worker, keep-alive, access log off) answering
# every request with 200 "hello from bench".
#
#   HTTP/1.1    wrk -t1 -c50 -d DURATION --latency http://127.0.0.1:PORT/    (p99 latency)
#   HTTP/2      h2load -c10 -m20 -D DURATION https://127.0.0.1:PORT/          (mean latency)
#               (10 TLS connections x 20 concurrent streams)
#
#   integration/bench/peers.sh              install packages, build the release preset, run
#   integration/bench/peers.sh --no-build   use what is already built
#
# Environment: DURATION (seconds per measured run, default 10), WARMUP (seconds per target,
# default 3), ROUNDS (interleaved rounds, default 2), CONNECTIONS (wrk's, default 50),
# H2_CLIENTS and H2_STREAMS (h2load's -c and -m, default 10 and 20), WORKERS (every proxy's
# workers, processes or threads, default 1; the backend keeps 1), HEADERS=browser (every
# request carries a browser's fields, about 800 bytes of head, instead of a bare GET; see
# lib.sh), KEEP_WORK=1 keeps configs and logs, SLUICE_BIN overrides the binary.
#
# Each round runs every target once (both protocols), so slow drift on a shared machine hits
# all alike; the peers' order turns by one each round (round 1 starts with sluice, round 2 with
# nginx, ...), so that no target always runs first, when a rising load favours it. Reported: the best over the rounds of requests/s (highest) and
# latency (lowest), taken independently, since other work on the machine only ever makes a run
# worse; and the median CPU time of the target's processes per request, the kernel's part of
# it, and the CPU time the rest of the machine spent per request. Every round is printed.
# The table's ratios are sluice / target; a "best peer" row per protocol compares sluice with
# the peer of the highest requests/s. Last, per protocol, the CPU time per request sluice could
# spend and still serve 1.2x the fastest peer on this machine (all CPUs busy; see budget).
# Nothing is pinned to a CPU.
set -euo pipefail

# shellcheck source=integration/bench/lib.sh
source "$(dirname "$0")/lib.sh"
bench_setup "$@"

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
ROUNDS=${ROUNDS:-2}
CONNECTIONS=${CONNECTIONS:-50}
H2_CLIENTS=${H2_CLIENTS:-10}
H2_STREAMS=${H2_STREAMS:-20}
PEERS=(sluice nginx haproxy nghttpx)
PROTOCOLS=(h1 h2)
declare -A MODE=([h1]=http [h2]=tls)
declare -A PROTOCOL_NAME=([h1]="HTTP/1.1" [h2]="HTTP/2 over TLS")
declare -A LATENCY_NAME=([h1]="p99" [h2]="mean")
TARGETS=()
for proto in "${PROTOCOLS[@]}"; do
  for p in "${PEERS[@]}"; do TARGETS+=("$proto-$p"); done
done

[[ -x $SLUICE_BIN ]] || die "missing $SLUICE_BIN (run without --no-build)"
for tool in wrk h2load nginx haproxy nghttpx openssl curl; do
  command -v "$tool" >/dev/null || die "missing $tool (run scripts/install-deps.sh --bench)"
done

log "work dir $WORK"
run_header "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | sort -u | paste -sd ';' -)"
echo "wrk $(wrk -v 2>&1 | awk 'NR == 1 { print $2 }'), $(h2load --version | head -1)," \
  "$(nginx -v 2>&1 | sed 's/.*: //'), HAProxy $(haproxy -v | awk 'NR == 1 { print $3 }')," \
  "$(nghttpx --version | head -1)"

with_retries start_nginx_backend || die "the nginx backend did not start"
for proto in "${PROTOCOLS[@]}"; do
  for p in "${PEERS[@]}"; do
    with_retries start_peer "$p" "${MODE[$proto]}" "$proto-$p" || die "$p (${MODE[$proto]}) did not start"
  done
done
ports="backend $BACKEND_PORT"
for t in "${TARGETS[@]}"; do ports+=", $t ${PEER_PORT[$t]}"; done
log "ports: $ports"

# Every target must serve the backend's own answer before it is measured.
for t in backend "${TARGETS[@]}"; do
  body=$(bench_get "$t") || true
  [[ $body == "hello from bench" ]] || die "$t answered GET / with '$body', not the backend's body"
done

# measure TARGET SECONDS OUT: one run of the protocol's load generator against TARGET.
measure() {
  local url="${PEER_SCHEME[$1]}://$BENCH_HOST:${PEER_PORT[$1]}/"
  case $1 in
    h1-*) wrk_run "$url" "$2" "$3" ;;
    h2-*)
      timeout $(($2 + 30)) h2load -D "$2" -c "$H2_CLIENTS" -m "$H2_STREAMS" "${HEADER_ARGS[@]}" \
        "$url" >"$3" 2>&1
      ;;
  esac
}

# Requests that failed, errored or timed out, and answers other than 2xx, as one line.
h2load_problems() {
  awk '/^requests:/ { for (i = 2; i < NF; i++) if ($(i + 1) ~ /^(failed|errored|timeout)/ && $i > 0) p = p $i " " $(i + 1) " " }
       /^status codes:/ { for (i = 3; i < NF; i++) if ($(i + 1) ~ /^[345]xx/ && $i > 0) p = p $i " " $(i + 1) " " }
       END { sub(/[ ,]+$/, "", p); print p }' "$1"
}

# parse TARGET OUT: sets RPS, LAT (ms), N (requests done) and PROBLEMS ("" when none) of a run.
parse() {
  case $1 in
    h1-*) RPS=$(wrk_rps "$2") LAT=$(wrk_p99_ms "$2") N=$(wrk_requests "$2") PROBLEMS=$(wrk_problems "$2") ;;
    h2-*) RPS=$(h2load_rps "$2") LAT=$(h2load_mean_ms "$2") N=$(h2load_done "$2") PROBLEMS=$(h2load_problems "$2") ;;
  esac
  [[ -n $RPS && -n $LAT && -n $N ]] || die "cannot parse the output for $1:"$'\n'"$(cat "$2")"
}

log "warm-up: ${WARMUP}s per target"
for t in "${TARGETS[@]}"; do
  measure "$t" "$WARMUP" "$WORK/warmup-$t.txt" || die "warm-up failed against $t: $(cat "$WORK/warmup-$t.txt")"
done
# What each TLS peer negotiated with h2load (the same protocol and cipher for all, or the
# comparison is not even).
for t in "${TARGETS[@]}"; do
  [[ $t == h2-* ]] || continue
  echo "$t: $(awk -F': ' '/^(TLS Protocol|Cipher|Server Temp Key|Application protocol):/ { printf "%s%s", s, $2; s = ", " }' \
    "$WORK/warmup-$t.txt")"
done

declare -A best_rps=() best_lat=() cpu_rounds=() kernel_rounds=() rest_rounds=() problems=()
# cpu us/req: CPU time (user + system, all threads) of the target's own processes per request;
# kernel: the system part of it. rest: CPU time the rest of the machine was busy per request
# (the load generator, the backend, anything else). backend conns: connections the backend
# accepted during the run (nginx's stub_status); a proxy that keeps its upstream connections
# alive opens none once warm.
printf '\n%-17s %-8s %5s %12s %9s %10s %10s %7s %7s %8s  %s\n' protocol target round "requests/s" \
  "lat. ms" requests "cpu us/req" kernel rest "backend" errors
printf '%-17s %-8s %5s %12s %9s %10s %10s %7s %7s %8s\n' "" "" "" "" "" "" "" "" "" "conns"
# The targets of round $1, in its order: the peers turned by one per round, per protocol.
round_targets() {
  local r=$1 proto i n=${#PEERS[@]}
  for proto in "${PROTOCOLS[@]}"; do
    for ((i = 0; i < n; i++)); do printf '%s ' "$proto-${PEERS[$(((i + r - 1) % n))]}"; done
  done
}
for ((r = 1; r <= ROUNDS; r++)); do
  read -ra order <<<"$(round_targets "$r")"
  for t in "${order[@]}"; do
    out=$WORK/round$r-$t.txt
    read -ra pids <<<"$(target_pids "$t")"
    conns_before=$(backend_accepted)
    read -r user_before system_before <<<"$(cpu_times "${pids[@]}")"
    machine_before=$(machine_busy_ticks)
    measure "$t" "$DURATION" "$out" || die "the load generator failed against $t: $(cat "$out")"
    read -r user_after system_after <<<"$(cpu_times "${pids[@]}")"
    machine_after=$(machine_busy_ticks)
    conns=$(($(backend_accepted) - conns_before - 1))
    parse "$t" "$out"
    rps=$RPS lat=$LAT n=$N prob=$PROBLEMS
    kill -0 "${PEER_PID[$t]}" 2>/dev/null || die "$t exited during the run: $(tail -n 20 "$WORK/$t.err")"
    target_ticks=$((user_after + system_after - user_before - system_before))
    cpu_us=$(per_request_us "$target_ticks" "$n")
    kernel_us=$(per_request_us $((system_after - system_before)) "$n")
    rest_us=$(per_request_us $((machine_after - machine_before - target_ticks)) "$n")
    cpu_rounds[$t]+="$cpu_us " kernel_rounds[$t]+="$kernel_us " rest_rounds[$t]+="$rest_us "
    [[ -n $prob ]] && problems[$t]+="round $r: $prob. "
    printf '%-17s %-8s %5d %12.1f %9.3f %10d %10s %7s %7s %8d  %s\n' "${PROTOCOL_NAME[${t%%-*}]}" \
      "${t#*-}" "$r" "$rps" "$lat" "$n" "$cpu_us" "$kernel_us" "$rest_us" "$conns" "${prob:-none}"
    if [[ -z ${best_rps[$t]:-} ]] || awk -v a="$rps" -v b="${best_rps[$t]}" 'BEGIN { exit !(a > b) }'; then
      best_rps[$t]=$rps
    fi
    if [[ -z ${best_lat[$t]:-} ]] || awk -v a="$lat" -v b="${best_lat[$t]}" 'BEGIN { exit !(a < b) }'; then
      best_lat[$t]=$lat
    fi
  done
done

median() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# row PROTOCOL LABEL TARGET: one table row of TARGET's figures, ratios against sluice's.
row() {
  local s=$1-sluice
  awk -v proto="$(printf '%s (%s)' "${PROTOCOL_NAME[$1]}" "${LATENCY_NAME[$1]}")" -v label="$2" \
    -v rps="${best_rps[$3]}" -v lat="${best_lat[$3]}" -v cpu="$(median "${cpu_rounds[$3]}")" \
    -v kernel="$(median "${kernel_rounds[$3]}")" -v rest="$(median "${rest_rounds[$3]}")" \
    -v srps="${best_rps[$s]}" -v slat="${best_lat[$s]}" 'BEGIN {
      printf "| %s | %s | %.0f | %.2f | %s | %s | %s | %.2f | %.2f |\n", proto, label, rps, lat, cpu,
        kernel, rest, srps / rps, slat / lat }'
}

# budget PROTOCOL: what 1.2x the fastest peer would leave sluice. With every CPU busy, a
# target's requests/s is the CPUs over the machine's CPU time per request: its own plus the
# rest's. The fastest peer is the one with the least of that (medians, like the CPU columns:
# the best requests/s of a round and the median CPU of the rounds do not mix).
budget() {
  local p fastest="" total best_total=""
  for p in "${PEERS[@]}"; do
    [[ $p == sluice ]] && continue
    total=$(awk -v c="$(median "${cpu_rounds[$1-$p]}")" -v r="$(median "${rest_rounds[$1-$p]}")" \
      'BEGIN { print c + r }')
    if [[ -z $fastest ]] || awk -v a="$total" -v b="$best_total" 'BEGIN { exit !(a < b) }'; then
      fastest=$p best_total=$total
    fi
  done
  awk -v name="${PROTOCOL_NAME[$1]}" -v peer="$fastest" -v total="$best_total" \
    -v peer_user="$(awk -v c="$(median "${cpu_rounds[$1-$fastest]}")" \
      -v k="$(median "${kernel_rounds[$1-$fastest]}")" 'BEGIN { print c - k }')" \
    -v rest="$(median "${rest_rounds[$1-sluice]}")" -v kernel="$(median "${kernel_rounds[$1-sluice]}")" \
    -v cpu="$(median "${cpu_rounds[$1-sluice]}")" 'BEGIN {
      budget = total / 1.2 - rest
      printf "%s: with %s the machine spent %.1f us of CPU per request (itself and the rest, the least of the peers); 1.2x its requests/s allows %.1f. The rest took %.1f with sluice, leaving sluice %.1f: %.1f in user space after its %.1f in the kernel (it took %.1f; %s took %.1f in user space).", name, peer, total, total / 1.2, rest, budget, budget - kernel, kernel, cpu - kernel, peer, peer_user }'
}
budgets=""

printf '\nBest of %d rounds of %ss. HTTP/1.1: wrk -t1 -c%d, p99 latency. HTTP/2 over TLS:\n' \
  "$ROUNDS" "$DURATION" "$CONNECTIONS"
printf 'h2load -c%d -m%d, mean latency. Backend: nginx, return 200. Ratios are sluice / target:\n' \
  "$H2_CLIENTS" "$H2_STREAMS"
printf 'requests/s above 1, sluice is faster; latency below 1, sluice is quicker.\n'
printf '\n| protocol (latency) | target | requests/s | latency ms | cpu us/req (median) | of it kernel | rest of machine us/req | sluice/target req/s | sluice/target latency |\n'
printf '|---|---|---:|---:|---:|---:|---:|---:|---:|\n'
for proto in "${PROTOCOLS[@]}"; do
  best=""
  for p in "${PEERS[@]}"; do
    row "$proto" "$p" "$proto-$p"
    [[ $p == sluice ]] && continue
    if [[ -z $best ]] || awk -v a="${best_rps[$proto-$p]}" -v b="${best_rps[$proto-$best]}" 'BEGIN { exit !(a > b) }'; then
      best=$p
    fi
  done
  row "$proto" "**best peer: $best**" "$proto-$best"
  budgets+="$(budget "$proto")"$'\n'
done
printf '\n%s' "$budgets"
echo
any=0
for t in "${TARGETS[@]}"; do
  if [[ -n ${problems[$t]:-} ]]; then
    echo "problems reported for $t: ${problems[$t]}"
    any=1
  fi
done
((any)) || echo "No socket errors, failed requests or non-2xx answers for any target."
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
