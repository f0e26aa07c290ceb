#!/usr/bin/env bash
# Runs the stompbus benchmarks and their peers in one go, on loopback.
#
#   bench/run.sh [quick|full] [target ...]
#
# quick: under 3 minutes; full: about 19 (three rounds). Targets (default all): stompbus,
# ceiling, rabbitmq, spring, stompbus-tcp, gostomp. Writes
# bench/results/<mode>/{results.jsonl,summary.csv,table.md,*.svg,machine.txt,
# pprof-top.txt} and, for full (or BENCH_MD=path), BENCHMARKS.md.
# Needs: Go; for rabbitmq Debian's rabbitmq-server; for spring a JDK 17 and
# Maven (the app is built from Maven Central on first use). A peer that
# cannot be started is recorded as an error, not skipped silently.
set -uo pipefail
mode=${1:-quick}
shift || true
case $mode in quick|full) ;; *) echo "usage: $0 [quick|full] [target...]" >&2; exit 2 ;; esac
targets=${*:-stompbus ceiling rabbitmq spring stompbus-tcp gostomp}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=bench/results/$mode
raw=$out/_raw   # "_": the go tool ignores it (it may hold a source copy)
rm -rf "$raw"; mkdir -p "$raw/bin"
results=$out/results.jsonl
: > "$results"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# sizes, scaled to a 2-core machine
if [ "$mode" = quick ]; then
  FANOUT="100"; FANOUT_BIG=""; SLOW_SUBS=100; PAIRS=20; Q_MSGS=10000; IDLE=500
  STEP=0.3s; HOLD=0.6s; MAXSTEPS=11; PROFILE_SECS=3; ROUNDS=1
else
  FANOUT="100 1000"; FANOUT_BIG=10000; SLOW_SUBS=1000; PAIRS=50; Q_MSGS=50000; IDLE=10000
  STEP=1s; HOLD=2s; MAXSTEPS=12; PROFILE_SECS=8; ROUNDS=3
fi
SEARCH=(-start 2000 -factor 2 -max-steps "$MAXSTEPS" -step "$STEP" -hold "$HOLD")
# The machine is shared: ask the scheduler to favour the benchmark (and the
# brokers it starts, which inherit this) over other work. Harmless if refused.
renice -n -19 $$ >/dev/null 2>&1 || true

# The p50 bound of the search grows with the fan-out: handing one message to
# 1,000 or 10,000 connections takes a while even on an idle broker, and that
# floor is not saturation.
p50_bound() { if [ "$1" -ge 10000 ]; then echo 100ms; elif [ "$1" -ge 1000 ]; then echo 50ms; else echo 25ms; fi; }

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# BENCH_REF=<commit> builds the broker (and its profiling variant) from that
# commit instead of the working tree, e.g. while the tree is mid-edit.
log "building"
src=.
if [ -n "${BENCH_REF:-}" ]; then
  src=$raw/src; mkdir -p "$src"
  git archive "$BENCH_REF" | tar -x -C "$src" || exit 1
fi
(cd "$src" && go build -o "$root/$raw/bin/broker" ./cmd/broker && go build -o "$root/$raw/bin/stompbus-pprof" ./bench/cmd/stompbus-pprof) || exit 1
go build -o "$raw/bin/stompbench" ./bench/cmd/stompbench || exit 1
go build -o "$raw/bin/gostomp-server" ./bench/cmd/gostomp-server || exit 1
go build -o "$raw/bin/benchreport" ./bench/cmd/benchreport || exit 1
SB=$raw/bin/stompbench

# the machine, for BENCHMARKS.md
{
  echo "date:     $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "cpu:      $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) x $(nproc)"
  echo "memory:   $(free -g | awk '/Mem:/{print $2}') GiB"
  echo "kernel:   $(uname -r)"
  echo "go:       $(go version | cut -d' ' -f3-)"
  if [ -n "${BENCH_REF:-}" ]; then
    echo "stompbus: $(git rev-parse --short "$BENCH_REF")"
  else
    echo "stompbus: $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- cmd router session server outbox frame config 2>/dev/null || echo ' + uncommitted broker changes in the working tree')"
  fi
  dpkg-query -W -f='rabbitmq: ${Version} (Debian rabbitmq-server, Web-STOMP plugin)\n' rabbitmq-server 2>/dev/null
  echo "java:     $(java -version 2>&1 | head -n1)"
  echo "spring:   Spring Boot $(sed -n 's:.*<version>\(4[^<]*\)</version>.*:\1:p' bench/peers/spring-simple/pom.xml | head -n1) simple broker"
  echo "mode:     $mode (sizes: fanout subscribers $FANOUT $FANOUT_BIG, pairs $PAIRS, queue $Q_MSGS messages, idle $IDLE connections, slow $SLOW_SUBS subscribers)"
} > "$out/machine.txt"

URL=""; URL2=""; PID=0
STARTED_PIDS=()

wait_log() { # file pattern seconds
  local i
  for i in $(seq 1 $(( $3 * 10 ))); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
wait_port() { # port seconds
  local i
  for i in $(seq 1 $(( $2 * 10 ))); do
    (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

port() { "$SB" -free-port; }
# owns PID PORT: the listener on PORT belongs to PID (not to some other
# process that happened to hold the port)
owns() { ss -ltnpH "sport = :$2" 2>/dev/null | grep -q "pid=$1,"; }

start_target() {
  local t=$1 p p2
  URL=""; URL2=""; PID=0
  case $t in
  stompbus|stompbus-tcp)
    p=$(port); p2=$(port)
    "$raw/bin/broker" -http 127.0.0.1:$p -stomp 127.0.0.1:$p2 -node bench -data "$raw/data" -max-connections 200000 -log-level warn > "$raw/$t.log" 2>&1 &
    PID=$!; STARTED_PIDS+=("$PID")
    wait_port $p 10 && owns $PID $p || return 1
    if [ "$t" = stompbus ]; then URL=ws://127.0.0.1:$p/ws; else wait_port $p2 10; URL=tcp://127.0.0.1:$p2; fi ;;
  ceiling)
    p=$(port)
    "$SB" -serve-ceiling 127.0.0.1:$p > "$raw/ceiling.log" 2>&1 &
    PID=$!; STARTED_PIDS+=("$PID")
    wait_port $p 10 && owns $PID $p || return 1
    URL=ws://127.0.0.1:$p/ws ;;
  gostomp)
    p=$(port)
    "$raw/bin/gostomp-server" -addr 127.0.0.1:$p > "$raw/gostomp.log" 2>&1 &
    PID=$!; STARTED_PIDS+=("$PID")
    wait_port $p 10 && owns $PID $p || return 1
    URL=tcp://127.0.0.1:$p ;;
  rabbitmq)
    if ! [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
      log "installing rabbitmq-server (apt)"
      { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends rabbitmq-server; } > "$raw/apt.log" 2>&1 || return 1
    fi
    # two tries: Erlang's distribution now and then fails to bind at boot
    for try in 1 2; do
      p=$(port)
      PID=$(RMQ_WS_PORT=$p RMQ_STOMP_PORT=$(port) RMQ_AMQP_PORT=$(port) RMQ_DIST_PORT=$(port) RMQ_EPMD_PORT=$(port) \
        bench/peers/rabbitmq.sh start "$raw/rabbitmq" 2>> "$raw/rabbitmq.log") && owns "$PID" $p && break
      bench/peers/rabbitmq.sh stop "$raw/rabbitmq" >/dev/null 2>&1
      PID=0
      [ "$try" = 2 ] && return 1
    done
    URL=ws://127.0.0.1:$p/ws ;;
  spring)
    local jar=bench/peers/spring-simple/target/spring-simple.jar
    if ! [ -f "$jar" ]; then
      log "building the Spring peer (maven)"
      (cd bench/peers/spring-simple && mvn -q -B -DskipTests package) > "$raw/mvn.log" 2>&1 || return 1
    fi
    p=$(port)
    java -jar "$jar" --server.port=$p > "$raw/spring.log" 2>&1 &
    PID=$!; STARTED_PIDS+=("$PID")
    wait_port $p 60 && owns $PID $p || return 1
    URL=ws://127.0.0.1:$p/ws ;;
  *) return 1 ;;
  esac
}

stop_target() {
  local t=$1
  if [ "$t" = rabbitmq ]; then
    bench/peers/rabbitmq.sh stop "$raw/rabbitmq" >/dev/null 2>&1
    return
  fi
  if [ "$PID" != 0 ]; then
    kill "$PID" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$PID" 2>/dev/null
  fi
}
cleanup() {
  for p in "${STARTED_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  bench/peers/rabbitmq.sh stop "$raw/rabbitmq" >/dev/null 2>&1
}
trap cleanup EXIT

bench() { # target scenario args...
  local t=$1 s=$2; shift 2
  "$SB" -q -mode "$mode" -target "$t" -url "$URL" -pid "$PID" -scenario "$s" -out "$results" "$@" 2>> "$raw/stompbench.log" || true
  tail -n1 "$raw/stompbench.log" >&2
}
record_error() { # target scenario message [extra json fields]
  printf '{"scenario":"%s","target":"%s","mode":"%s","error":"%s"%s}\n' "$2" "$1" "$mode" "$3" "${4:+,$4}" >> "$results"
}

for round in $(seq 1 "$ROUNDS"); do
for t in $targets; do
  log "== $t (round $round of $ROUNDS)"
  if ! start_target "$t"; then
    log "$t did not start; see $raw"
    record_error "$t" fanout "did not start"
    stop_target "$t"
    continue
  fi
  # warm-up (JIT, caches), not recorded
  "$SB" -q -target "$t" -url "$URL" -scenario fanout -subs 50 -start 2000 -factor 2 -max-steps 4 -step 0.5s -hold 0.5s -out /dev/null 2>/dev/null
  # idle first, on the fresh process, so its RSS baseline is clean
  [ "$round" = 1 ] && bench "$t" idle -conns "$IDLE"
  for n in $FANOUT; do bench "$t" fanout -subs "$n" "${SEARCH[@]}" -max-p50 "$(p50_bound "$n")"; done
  # the largest fan-out only for stompbus and the ceiling (setting up 10,000
  # connections to the slower peers alone would take minutes)
  if [ -n "$FANOUT_BIG" ] && [ "$round" = 1 ] && { [ "$t" = stompbus ] || [ "$t" = ceiling ]; }; then
    bench "$t" fanout -subs "$FANOUT_BIG" "${SEARCH[@]}" -start 10000 -max-p50 "$(p50_bound "$FANOUT_BIG")"
  fi
  bench "$t" pairs -pairs "$PAIRS" "${SEARCH[@]}"
  if [ "$t" = spring ]; then
    [ "$round" = 1 ] && record_error spring queue "not run: the simple broker has no point-to-point queues (a /queue destination goes to every subscriber) and ignores acks" '"producers":4,"consumers":4'
  elif [ "$t" = gostomp ]; then
    [ "$round" = 1 ] && record_error gostomp queue "not run: go-stomp's server stops delivering to an ack:client-individual subscription after its first message, ACK or not" '"producers":4,"consumers":4'
  elif [ "$t" != ceiling ]; then
    bench "$t" queue -producers 4 -consumers 4 -messages "$Q_MSGS"
  fi
  [ "$round" = 1 ] && bench "$t" slow -subs "$SLOW_SUBS" -rate-from "$results" -hold "$HOLD" -step "$STEP"
  stop_target "$t"
done
done

# crossnode: needs the cluster flags
if [[ " $targets " == *" stompbus "* ]]; then
  if "$raw/bin/broker" -h 2>&1 | grep -q -- -cluster-listen; then
    log "== crossnode"
    h1=$(port); h2=$(port); c1=$(port); c2=$(port)
    "$raw/bin/broker" -http 127.0.0.1:$h1 -stomp off -node n1 -data "$raw/n1" -cluster-listen 127.0.0.1:$c1 -cluster-routes nats-route://127.0.0.1:$c2 -max-connections 200000 -log-level warn > "$raw/n1.log" 2>&1 &
    P1=$!; STARTED_PIDS+=("$P1")
    "$raw/bin/broker" -http 127.0.0.1:$h2 -stomp off -node n2 -data "$raw/n2" -cluster-listen 127.0.0.1:$c2 -cluster-routes nats-route://127.0.0.1:$c1 -max-connections 200000 -log-level warn > "$raw/n2.log" 2>&1 &
    P2=$!; STARTED_PIDS+=("$P2")
    wait_port $h1 10; wait_port $h2 10
    for _ in $(seq 1 300); do curl -fs http://127.0.0.1:$h1/readyz >/dev/null 2>&1 && curl -fs http://127.0.0.1:$h2/readyz >/dev/null 2>&1 && break; sleep 0.1; done
    URL=ws://127.0.0.1:$h1/ws; PID=$P2
    if owns $P1 $h1 && owns $P2 $h2; then
      for n in $FANOUT; do bench stompbus crossnode -url2 ws://127.0.0.1:$h2/ws -subs "$n" "${SEARCH[@]}" -max-p50 "$(p50_bound "$n")"; done
    else
      record_error stompbus crossnode "the two nodes did not start; see $raw/n1.log, n2.log"
    fi
    kill "$P1" "$P2" 2>/dev/null
  else
    for n in $FANOUT; do
      record_error stompbus crossnode "blocked: cmd/broker has no -cluster-listen/-cluster-routes yet" "\"subscribers\":$n"
    done
  fi
fi

# profile stompbus during fanout (the pprof variant: same broker packages)
if [[ " $targets " == *" stompbus "* ]]; then
  log "== profile"
  hp=$(port)
  "$raw/bin/stompbus-pprof" -http 127.0.0.1:$hp -stomp off > "$raw/pprof-broker.log" 2>&1 &
  PP=$!; STARTED_PIDS+=("$PP")
  if wait_port $hp 10 && owns $PP $hp; then
    n=${FANOUT##* }
    rate=$("$raw/bin/benchreport" -dir "$out" -saturation stompbus -subs "$n" 2>/dev/null || echo 200000)
    : > "$out/pprof-run.jsonl"
    (sleep 1.5; curl -fs -o "$raw/cpu.pprof" "http://127.0.0.1:$hp/debug/pprof/profile?seconds=$PROFILE_SECS") &
    CP=$!
    "$SB" -q -target stompbus-pprof -url ws://127.0.0.1:$hp/ws -pid "$PP" -scenario fanout -subs "$n" -rate "$rate" -hold "$((PROFILE_SECS + 2))"s -out "$out/pprof-run.jsonl" 2>> "$raw/stompbench.log"
    wait "$CP"
    go tool pprof -top -nodecount=30 "$raw/bin/stompbus-pprof" "$raw/cpu.pprof" > "$out/pprof-top.txt" 2>/dev/null
    go tool pprof -top -cum -nodecount=30 "$raw/bin/stompbus-pprof" "$raw/cpu.pprof" > "$out/pprof-top-cum.txt" 2>/dev/null
    { echo "fanout, $n subscribers, offered $rate deliveries/s (stompbus's saturation rate), ${PROFILE_SECS}s CPU profile, flat:"; cat "$out/pprof-top.txt"; } > "$out/pprof-top.txt.tmp" && mv "$out/pprof-top.txt.tmp" "$out/pprof-top.txt"
  fi
  kill "$PP" 2>/dev/null
fi

md=${BENCH_MD:-}
if [ "$mode" = full ] && [ -z "$md" ]; then md=BENCHMARKS.md; fi
"$raw/bin/benchreport" -dir "$out" ${md:+-md "$md"} -command "bench/run.sh $mode" > /dev/null || exit 1
cat "$out/table.md"
log "done: $out"
