#!/usr/bin/env bash
# Two stompbus builds against each other and RabbitMQ Web-STOMP with
# persistent:true, alternating, every SEND with a receipt (the queue
# scenario of bench/queue-sync.sh, window 1): on a shared machine only
# ratios within one round mean something.
#
#   bench/queue-sync-ab.sh BEFORE_BINARY AFTER_BINARY [messages] [rounds]
#
# A fresh node (-queue-sync always) per run; one RabbitMQ for all rounds.
set -uo pipefail
before=${1:?before binary}; after=${2:?after binary}
msgs=${3:-6000}; rounds=${4:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
raw=bench/results/queue-sync-ab/_raw
rm -rf "$raw"; mkdir -p "$raw"
go build -o "$raw/stompbench" ./bench/cmd/stompbench || exit 1
SB=$raw/stompbench
fp() { "$SB" -free-port; }
wp=$(fp)
RPID=$(RMQ_WS_PORT=$wp RMQ_STOMP_PORT=$(fp) RMQ_AMQP_PORT=$(fp) RMQ_DIST_PORT=$(fp) RMQ_EPMD_PORT=$(fp) \
  bench/peers/rabbitmq.sh start "$raw/rabbitmq" 2>> "$raw/rabbitmq.log") || { echo "rabbitmq did not start" >&2; exit 1; }
trap 'RMQ_WS_PORT=$wp bench/peers/rabbitmq.sh stop "$raw/rabbitmq" >/dev/null 2>&1' EXIT
run() { # label url pid [extra]
  local label=$1 url=$2 pid=$3; shift 3
  echo "$label $(uptime | sed 's/.*load/load/')"
  "$SB" -q -mode queue-sync -target "$label" -url "$url" -pid "$pid" -scenario queue -producers 4 -consumers 4 \
    -messages "$msgs" -window 1 -out "$raw/results.jsonl" "$@" 2>&1 | tail -1
}
for round in $(seq 1 "$rounds"); do
  for v in before after; do
    bin=$before; [ "$v" = after ] && bin=$after
    p=$(fp); rm -rf "$raw/data"
    "$bin" -http 127.0.0.1:$p -stomp off -node bench -data "$raw/data" -log-level warn -queue-sync always > "$raw/$v.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 200); do (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && break; sleep 0.1; done
    run "$v" "ws://127.0.0.1:$p/ws" "$pid"
    kill "$pid"; wait "$pid" 2>/dev/null
  done
  run rabbitmq "ws://127.0.0.1:$wp/ws" "$RPID" -persistent
done
