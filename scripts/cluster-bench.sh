#!/usr/bin/env bash
# cluster-bench.sh: the two cluster figures in one run, with the
# repository's load program (bench/cmd/stompbench): a two-node embedded-NATS
# cluster of cmd/broker on 127.0.0.1, then
#   1. fan-out saturation with the publisher on n1 and the subscribers on n2
#      (scenario crossnode), and on n1 alone (scenario fanout), and
#   2. latency at one fixed offered rate, same node vs cross node
#      (p50/p99 of SEND-intended-time to MESSAGE-read, coordinated-omission
#      corrected), alternating twice.
# Results: one JSON line per run in $OUT (default data/cluster-bench.jsonl),
# and a summary on stdout. Bounded: about 2-3 minutes.
#   SUBS=100 RATE=20000 scripts/cluster-bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SUBS=${SUBS:-100}
RATE=${RATE:-20000}
HOLD=${HOLD:-5s}
DIR=$(mktemp -d)
OUT=${OUT:-data/cluster-bench.jsonl}
mkdir -p "$(dirname "$OUT")"
: >"$OUT"
go build -o "$DIR/broker" ./cmd/broker
go build -o "$DIR/stompbench" ./bench/cmd/stompbench
port() { "$DIR/stompbench" -free-port; }
h1=$(port); h2=$(port); c1=$(port); c2=$(port)
pids=()
trap 'for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait; rm -rf "$DIR"' EXIT
"$DIR/broker" -http 127.0.0.1:$h1 -stomp off -node n1 -data "$DIR/n1" -cluster-listen 127.0.0.1:$c1 \
    -cluster-routes nats-route://127.0.0.1:$c2 -log-level warn >"$DIR/n1.log" 2>&1 &
pids+=($!)
"$DIR/broker" -http 127.0.0.1:$h2 -stomp off -node n2 -data "$DIR/n2" -cluster-listen 127.0.0.1:$c2 \
    -cluster-routes nats-route://127.0.0.1:$c1 -log-level warn >"$DIR/n2.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do
    curl -fs "http://127.0.0.1:$h1/readyz" >/dev/null 2>&1 && curl -fs "http://127.0.0.1:$h2/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
bench() { "$DIR/stompbench" -q -target stompbus -url "ws://127.0.0.1:$h1/ws" -subs "$SUBS" -out "$OUT" "$@"; }
bench -scenario fanout -start 5000 -factor 2 -max-steps 10 -step 1s -hold 3s
bench -scenario crossnode -url2 "ws://127.0.0.1:$h2/ws" -start 5000 -factor 2 -max-steps 10 -step 1s -hold 3s
for _ in 1 2; do
    bench -scenario fanout -rate "$RATE" -hold "$HOLD"
    bench -scenario crossnode -url2 "ws://127.0.0.1:$h2/ws" -rate "$RATE" -hold "$HOLD"
done
python3 - "$OUT" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    keep = {k: r[k] for k in r if any(s in k for s in ("scenario", "saturation", "rate", "p50", "p99", "lost", "dup", "subscribers", "error"))}
    print(json.dumps(keep))
PY
