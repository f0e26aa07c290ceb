#!/usr/bin/env bash
# cluster-demo.sh: the docker-compose topology as local processes, for
# machines without Docker. Three stompbus nodes with embedded NATS servers
# routed to each other on 127.0.0.1 (JetStream store under each node's data
# directory) and, when nginx is installed, an nginx WebSocket load balancer
# in front of them.
#
#   scripts/cluster-demo.sh              # start, Ctrl-C stops everything
#   NGINX=off scripts/cluster-demo.sh    # without the balancer
#   DEMO_DIR=/tmp/demo BASE_PORT=18080 STOMP_BASE=17613 ROUTE_BASE=17221 scripts/cluster-demo.sh
#   DEMO_ONCE=1 scripts/cluster-demo.sh  # start, wait until ready, stop (a check)
#
# Ports: nginx BASE_PORT (default 8080); node i (1..3) HTTP BASE_PORT+i,
# STOMP STOMP_BASE+i (default 61613), NATS routes ROUTE_BASE+i (default
# 6221). A port that is taken is replaced by a free one the kernel picks,
# and the lines below say which ports each node got.
set -euo pipefail

cd "$(dirname "$0")/.."
DEMO_DIR=${DEMO_DIR:-./data/cluster-demo}
BASE_PORT=${BASE_PORT:-8080}
STOMP_BASE=${STOMP_BASE:-61613}
ROUTE_BASE=${ROUTE_BASE:-6221}
NGINX=${NGINX:-auto}
DEMO_ONCE=${DEMO_ONCE:-}
mkdir -p "$DEMO_DIR"
DEMO_DIR=$(cd "$DEMO_DIR" && pwd)

# The broker binary: cmd/broker once it wires the cluster package, until
# then the test node that wires it the same way.
if grep -q 'cluster.Start' cmd/broker/*.go 2>/dev/null; then
    pkg=./cmd/broker
else
    pkg=./cluster/internal/testnode
fi
echo "building $pkg"
go build -o "$DEMO_DIR/broker" "$pkg"

pids=()
cleanup() {
    trap - INT TERM EXIT
    echo "stopping"
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup INT TERM EXIT

# pick WANT sets REPLY to WANT when nothing listens on 127.0.0.1:WANT and
# no earlier call handed it out, else to a free port the kernel picks.
taken=" "
pick() {
    REPLY=$1
    if [[ $taken == *" $REPLY "* ]] || (exec 3<>"/dev/tcp/127.0.0.1/$REPLY") 2>/dev/null; then
        REPLY=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        echo "port $1 is taken: using $REPLY"
    fi
    taken+="$REPLY "
}
pick "$BASE_PORT"
lb_port=$REPLY
declare -a http_port stomp_port route_port
for i in 1 2 3; do
    pick $((BASE_PORT + i)); http_port[i]=$REPLY
    pick $((STOMP_BASE + i)); stomp_port[i]=$REPLY
    pick $((ROUTE_BASE + i)); route_port[i]=$REPLY
done
for i in 1 2 3; do
    routes=""
    for j in 1 2 3; do
        [ "$j" = "$i" ] && continue
        routes+="${routes:+,}nats-route://127.0.0.1:${route_port[j]}"
    done
    mkdir -p "$DEMO_DIR/n$i"
    "$DEMO_DIR/broker" -node "n$i" -data "$DEMO_DIR/n$i" \
        -http "127.0.0.1:${http_port[i]}" -stomp "127.0.0.1:${stomp_port[i]}" \
        -cluster-listen "127.0.0.1:${route_port[i]}" -cluster-routes "$routes" \
        >"$DEMO_DIR/n$i.log" 2>&1 &
    pids+=($!)
    echo "node n$i: http://127.0.0.1:${http_port[i]}  stomp 127.0.0.1:${stomp_port[i]}  routes 127.0.0.1:${route_port[i]}  log $DEMO_DIR/n$i.log"
done

echo -n "waiting for the cluster to be ready"
for i in 1 2 3; do
    for _ in $(seq 1 300); do
        if curl -fsS "http://127.0.0.1:${http_port[i]}/readyz" >/dev/null 2>&1; then break; fi
        if ! kill -0 "${pids[$((i - 1))]}" 2>/dev/null; then
            echo; echo "node n$i exited:"; tail -20 "$DEMO_DIR/n$i.log"; exit 1
        fi
        echo -n .
        sleep 0.2
    done
done
echo " ready"
if [ -n "$DEMO_ONCE" ]; then
    exit 0 # DEMO_ONCE: the cluster came up; cleanup stops it
fi

if [ "$NGINX" != off ] && command -v nginx >/dev/null 2>&1; then
    conf="$DEMO_DIR/nginx.conf"
    cat >"$conf" <<CONF
worker_processes 1;
pid $DEMO_DIR/nginx.pid;
error_log $DEMO_DIR/nginx-error.log;
daemon off;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $DEMO_DIR/nginx-tmp;
    proxy_temp_path $DEMO_DIR/nginx-tmp;
    map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }
    upstream stompbus_http {
        least_conn;
        server 127.0.0.1:${http_port[1]};
        server 127.0.0.1:${http_port[2]};
        server 127.0.0.1:${http_port[3]};
    }
    server {
        listen 127.0.0.1:$lb_port;
        location /ws {
            proxy_pass http://stompbus_http;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection \$connection_upgrade;
            proxy_set_header Host \$http_host;
            proxy_read_timeout 1h;
            proxy_buffering off;
        }
        location / {
            proxy_pass http://stompbus_http;
            proxy_set_header Host \$http_host;
            proxy_next_upstream error timeout http_502 http_503;
        }
    }
}
CONF
    mkdir -p "$DEMO_DIR/nginx-tmp"
    nginx -e "$DEMO_DIR/nginx-error.log" -c "$conf" &
    pids+=($!)
    echo "nginx: http://127.0.0.1:$lb_port/ (WebSocket ws://127.0.0.1:$lb_port/ws) balances the three nodes"
elif [ "$NGINX" != off ]; then
    echo "nginx not installed: connect to the nodes directly (apt-get install nginx-light for the balancer)"
fi

echo "presence: curl http://127.0.0.1:${http_port[1]}/api/v1/presence"
echo "Ctrl-C stops the cluster"
wait -n "${pids[@]}" || true
echo "a process exited; see $DEMO_DIR/*.log"
