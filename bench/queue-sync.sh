#!/usr/bin/env bash
# Queue throughput with durable receipts (-queue-sync always, the default)
# against the relaxed setting (-queue-sync interval) and RabbitMQ Web-STOMP
# with persistent:true, in one run, plus the fsyncs stompbus makes per
# message (strace, seccomp-filtered so only fsync/fdatasync stop the broker).
#
#   bench/queue-sync.sh [messages] [rounds]     (defaults 20000, 3)
#
# The scenario is bench/run.sh's queue: 4 producers, 4 client-individual
# consumers, a receipt every -window messages per producer. Two windows:
# 500 (run.sh's) and 1 (every SEND waits for its RECEIPT). Writes
# bench/results/queue-sync/results.jsonl (one line per run); the best of the rounds
# is quoted. Needs Go, strace, and Debian's rabbitmq-server for the peer
# (a peer that cannot start is reported, not skipped silently).
set -uo pipefail
msgs=${1:-20000}
rounds=${2:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=bench/results/queue-sync
raw=$out/_raw
rm -rf "$raw"; mkdir -p "$raw/bin"
results=$out/results.jsonl
: > "$results"
log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
go build -o "$raw/bin/broker" ./cmd/broker && go build -o "$raw/bin/stompbench" ./bench/cmd/stompbench || exit 1
SB=$raw/bin/stompbench
port() { "$SB" -free-port; }
wait_port() { for _ in $(seq 1 $((${2:-10} * 10))); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; return 1; }
PID=0
stop() {
  [ "$PID" = 0 ] && return
  # under strace the broker is strace's child: end the broker, and strace
  # writes its summary and exits with it
  local target=$PID kids
  kids=$(cat "/proc/$PID/task/$PID/children" 2>/dev/null)
  [ -n "$kids" ] && target=$kids
  kill $target 2>/dev/null
  for _ in $(seq 1 150); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 $target "$PID" 2>/dev/null
  wait "$PID" 2>/dev/null
  PID=0
}
trap 'stop; bench/peers/rabbitmq.sh stop "$raw/rabbitmq" >/dev/null 2>&1' EXIT

# stompbus MODE [strace]: start a fresh single node
start_stompbus() {
  local p; p=$(port)
  rm -rf "$raw/data"
  local cmd=("$raw/bin/broker" -http 127.0.0.1:$p -stomp off -node bench -data "$raw/data" -log-level warn -queue-sync "$1")
  if [ "${2:-}" = strace ]; then
    strace -f --seccomp-bpf -c -e trace=fsync,fdatasync -o "$raw/strace-$1.txt" "${cmd[@]}" > "$raw/stompbus-$1.log" 2>&1 &
  else
    "${cmd[@]}" > "$raw/stompbus-$1.log" 2>&1 &
  fi
  PID=$!
  wait_port "$p" 20 || return 1
  URL=ws://127.0.0.1:$p/ws
}

run_queue() { # target label window [extra]
  local t=$1 label=$2 w=$3; shift 3
  "$SB" -q -mode queue-sync -target "$label" -url "$URL" -pid "$PID" -scenario queue -producers 4 -consumers 4 \
    -messages "$msgs" -window "$w" -out "$results" "$@" 2>> "$raw/stompbench.log" || true
  tail -n1 "$raw/stompbench.log" >&2
}

for round in $(seq 1 "$rounds"); do
  [ "${STRACE_ONLY:-}" = 1 ] && break
  for mode in always interval; do
    log "stompbus -queue-sync $mode (round $round)"
    start_stompbus "$mode" || { log "stompbus did not start"; stop; continue; }
    for w in 500 1; do run_queue stompbus "stompbus-sync-$mode-w$w" "$w"; done
    stop
  done
  log "rabbitmq persistent:true (round $round)"
  p=$(port)
  if PID=$(RMQ_WS_PORT=$p RMQ_STOMP_PORT=$(port) RMQ_AMQP_PORT=$(port) RMQ_DIST_PORT=$(port) RMQ_EPMD_PORT=$(port) \
      bench/peers/rabbitmq.sh start "$raw/rabbitmq" 2>> "$raw/rabbitmq.log"); then
    URL=ws://127.0.0.1:$p/ws
    for w in 500 1; do run_queue rabbitmq "rabbitmq-persistent-w$w" "$w" -persistent; done
  else
    printf '{"scenario":"queue","target":"rabbitmq-persistent","error":"did not start"}\n' >> "$results"
  fi
  bench/peers/rabbitmq.sh stop "$raw/rabbitmq" >/dev/null 2>&1; PID=0
done

# fsyncs per message: one more run of each mode under strace
[ "${STRACE_ONLY:-}" = 1 ] && : > "$results"
for mode in always interval; do
  for w in 500 1; do
    log "fsync count, -queue-sync $mode, window $w"
    start_stompbus "$mode" strace || { stop; continue; }
    run_queue stompbus "stompbus-sync-$mode-strace-w$w" "$w"
    stop
    calls=$(awk '$NF=="fsync"||$NF=="fdatasync"{s+=$4} END{print s+0}' "$raw/strace-$mode.txt")
    receipted=$(( w == 1 ? msgs : 4 * ((msgs / 4 + w - 1) / w) ))
    printf '{"scenario":"fsync","target":"stompbus-sync-%s","window":%s,"messages":%s,"receipts":%s,"fsync_calls":%s}\n' "$mode" "$w" "$msgs" "$receipted" "$calls" >> "$results"
    log "-queue-sync $mode, window $w: $calls fsync/fdatasync calls for $msgs messages, $receipted of them with a receipt"
  done
done
log "results in $results"
