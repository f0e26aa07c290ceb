#!/usr/bin/env bash
# Starts a private RabbitMQ node with the Web-STOMP plugin on loopback for the
# benchmarks, or stops it.
#   bench/peers/rabbitmq.sh start DIR   -> prints the broker's OS pid
#   bench/peers/rabbitmq.sh stop DIR
# Ports (all on 127.0.0.1, each overridable by its variable): Web-STOMP
# $RMQ_WS_PORT (15674, path /ws), STOMP $RMQ_STOMP_PORT (61614), AMQP
# $RMQ_AMQP_PORT (5682), distribution $RMQ_DIST_PORT (25682), epmd
# $RMQ_EPMD_PORT (34369). Needs Debian's rabbitmq-server.
set -euo pipefail
cmd=${1:?start|stop}
dir=$(realpath -m "${2:?state dir}")
# stop uses the ports the node was started with
if [ "$cmd" = stop ] && [ -f "$dir/ports.env" ]; then . "$dir/ports.env"; fi
amqp=${RMQ_AMQP_PORT:-5682}
wsport=${RMQ_WS_PORT:-15674}
stompport=${RMQ_STOMP_PORT:-61614}
distport=${RMQ_DIST_PORT:-25682}
epmdport=${RMQ_EPMD_PORT:-34369}
export HOME="$dir/home"
export RABBITMQ_NODENAME=stompbench$wsport@localhost
export RABBITMQ_DIST_PORT=$distport
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
export ERL_EPMD_ADDRESS=127.0.0.1
export ERL_EPMD_PORT=$epmdport
export RABBITMQ_MNESIA_BASE="$dir/mnesia"
export RABBITMQ_LOG_BASE="$dir/log"
export RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf"
export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
export RABBITMQ_PID_FILE="$dir/rabbit.pid"
export RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf"
ctl=/usr/lib/rabbitmq/bin/rabbitmqctl
case $cmd in
start)
  command -v /usr/lib/rabbitmq/bin/rabbitmq-server >/dev/null || { echo "rabbitmq-server not installed (apt-get install rabbitmq-server)" >&2; exit 2; }
  rm -rf "$dir"; mkdir -p "$HOME" "$RABBITMQ_MNESIA_BASE" "$RABBITMQ_LOG_BASE"
  : > "$RABBITMQ_CONF_ENV_FILE"
  printf 'RMQ_WS_PORT=%s RMQ_STOMP_PORT=%s RMQ_AMQP_PORT=%s RMQ_DIST_PORT=%s RMQ_EPMD_PORT=%s\n' "$wsport" "$stompport" "$amqp" "$distport" "$epmdport" > "$dir/ports.env"
  echo '[rabbitmq_web_stomp].' > "$RABBITMQ_ENABLED_PLUGINS_FILE"
  cat > "$RABBITMQ_CONFIG_FILE" <<CONF
listeners.tcp.default = 127.0.0.1:$amqp
web_stomp.tcp.ip = 127.0.0.1
web_stomp.tcp.port = $wsport
web_stomp.max_connections = infinity
stomp.listeners.tcp.1 = 127.0.0.1:$stompport
loopback_users.guest = true
vm_memory_high_watermark.relative = 0.6
log.console = false
log.file.level = warning
CONF
  ulimit -n "$(ulimit -Hn)" || true
  setsid /usr/lib/rabbitmq/bin/rabbitmq-server > "$dir/server.out" 2>&1 < /dev/null &
  "$ctl" -q wait --timeout 60 "$RABBITMQ_PID_FILE" >/dev/null 2>&1 || { echo "rabbitmq did not start; see $dir" >&2; cat "$dir/server.out" >&2; exit 1; }
  # wait for the web-stomp listener
  for _ in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$wsport) 2>/dev/null && break
    sleep 0.2
  done
  echo "$(cat "$RABBITMQ_PID_FILE")"
  ;;
stop)
  [ -f "$RABBITMQ_PID_FILE" ] || exit 0
  "$ctl" -q stop "$RABBITMQ_PID_FILE" >/dev/null 2>&1 || kill "$(cat "$RABBITMQ_PID_FILE")" 2>/dev/null || true
  # the private epmd we started
  epmd_pid=$(ss -ltnpH "sport = :$ERL_EPMD_PORT" 2>/dev/null | grep -o 'epmd",pid=[0-9]*' | head -n1 | cut -d= -f2 || true)
  if [ -n "$epmd_pid" ]; then kill "$epmd_pid" 2>/dev/null || true; fi
  ;;
esac
