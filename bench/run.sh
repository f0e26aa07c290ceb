#!/usr/bin/env bash
# Runs the stompbus benchmarks and their peers in one go, on loopback.
#
#   bench/run.sh [quick|full] [target ...]
#
# quick: under 3 minutes; full: about 25 (three rounds). Targets (default all): stompbus,
# ceiling, centrifugo, rabbitmq, spring, stompbus-tcp, gostomp. Writes
# bench/results/<mode>/{results.jsonl,summary.csv,table.md,*.svg,machine.txt,
# pprof-top.txt} and, for full (or BENCH_MD=path), BENCHMARKS.md.
# Needs: Go; for rabbitmq Debian's rabbitmq-server; for spring a JDK 17 and
# Maven (the app is built from Maven Central on first use); for centrifugo
# the Go module proxy (built here, in its own module bench/peers/centrifugo,
# at the version its go.mod pins). A peer that cannot be started is
# recorded as an error, not skipped silently.
set -uo pipefail
mode=${1:-quick}
shift || true
case $mode in quick|full) ;; *) echo "usage: $0 [quick|full] [target...]" >&2; exit 2 ;; esac
targets=${*:-stompbus ceiling centrifugo rabbitmq spring stompbus-tcp gostomp}
# the ceiling runs first in each round: its fanout saturation sets the
# common offered rate of the fixed-load runs of every broker
if [[ " $targets " == *" ceiling "* ]]; then
  targets="ceiling $(echo " $targets " | sed 's/ ceiling / /g' | xargs)"
fi
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
FIXED_N=${FANOUT##* }   # the fixed-load runs' fan-out: the largest of FANOUT
FIXED_REF=""
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
if [[ " $targets " == *" centrifugo "* ]]; then
  # its own module, so the project's go.mod never depends on it; the first
  # build takes minutes, later ones come from the Go build cache
  log "building centrifugo ($(awk '$1 == "github.com/centrifugal/centrifugo/v6" {print $2}' bench/peers/centrifugo/go.mod))"
  (cd bench/peers/centrifugo && go build -o "$root/$raw/bin/centrifugo" github.com/centrifugal/centrifugo/v6) > "$raw/centrifugo-build.log" 2>&1 \
    || log "centrifugo did not build; see $raw/centrifugo-build.log"
fi

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
  echo "centrifugo: $(awk '$1 == "github.com/centrifugal/centrifugo/v6" {print $2}' bench/peers/centrifugo/go.mod) (bench/peers/centrifugo/config.json: insecure client, memory engine, no history; JSON client protocol, client-side publish)"
  echo "mode:     $mode (sizes: fanout subscribers $FANOUT $FANOUT_BIG, pairs $PAIRS, queue $Q_MSGS messages, idle $IDLE connections, slow $SLOW_SUBS subscribers)"
} > "$out/machine.txt"

URL=""; URL2=""; PID=0; PROTO=stomp
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
  URL=""; URL2=""; PID=0; PROTO=stomp
  case $t in
  stompbus|stompbus-tcp)
    p=$(port); p2=$(port)
    # HISTORY=1: the bench topics keep history (the default rule keeps only
    # /topic/chat.#)
    "$raw/bin/broker" -http 127.0.0.1:$p -stomp 127.0.0.1:$p2 -node bench -data "$raw/data" -max-connections 200000 -log-level warn \
      ${HISTORY:+-topic-history '/topic/bench.#=1000/5m'} > "$raw/$t.log" 2>&1 &
    PID=$!; STARTED_PIDS+=("$PID")
    wait_port $p 10 && owns $PID $p || return 1
    if [ "$t" = stompbus ]; then URL=ws://127.0.0.1:$p/ws; else wait_port $p2 10; URL=tcp://127.0.0.1:$p2; fi ;;
  ceiling)
    p=$(port)
    "$SB" -serve-ceiling 127.0.0.1:$p > "$raw/ceiling.log" 2>&1 &
    PID=$!; STARTED_PIDS+=("$PID")
    wait_port $p 10 && owns $PID $p || return 1
    URL=ws://127.0.0.1:$p/ws ;;
  centrifugo)
    [ -x "$raw/bin/centrifugo" ] || return 1
    p=$(port)
    CENTRIFUGO_HTTP_SERVER_PORT=$p "$raw/bin/centrifugo" --config "bench/peers/centrifugo/config${HISTORY:+-history}.json" > "$raw/centrifugo.log" 2>&1 &
    PID=$!; STARTED_PIDS+=("$PID")
    wait_port $p 10 && owns $PID $p || return 1
    URL=ws://127.0.0.1:$p/connection/websocket; PROTO=centrifugo ;;
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
  "$SB" -q -mode "$mode" -target "$t" -protocol "$PROTO" -url "$URL" -pid "$PID" -scenario "$s" -out "$results" "$@" 2>> "$raw/stompbench.log" || true
  tail -n1 "$raw/stompbench.log" >&2
}
record_error() { # target scenario message [extra json fields]
  printf '{"scenario":"%s","target":"%s","mode":"%s","error":"%s"%s}\n' "$2" "$1" "$mode" "$3" "${4:+,$4}" >> "$results"
}

# crossnode: two nodes of an embedded-NATS cluster, publisher on one,
# subscribers on the other. It runs in every round, right after stompbus's
# own turn, so that it is compared with the same-node fanout under the same
# load and as the best of as many rounds (a single crossnode run against the
# best of three same-node rounds measured the machine's noise as much as the
# bus).
crossnode() { # round
  if grep -q -- -cluster-listen <<<"$("$raw/bin/broker" -h 2>&1)"; then
    # (the help text is read whole first: grep -q stops at the first match
    # and, under pipefail, the broker's SIGPIPE would fail the test)
    log "== crossnode (round $1 of $ROUNDS)"
    local h1 h2 c1 c2 P1 P2 n
    h1=$(port); h2=$(port); c1=$(port); c2=$(port)
    rm -rf "$raw/n1" "$raw/n2"
    "$raw/bin/broker" -http 127.0.0.1:$h1 -stomp off -node n1 -data "$raw/n1" -cluster-listen 127.0.0.1:$c1 -cluster-routes nats-route://127.0.0.1:$c2 -max-connections 200000 -log-level warn > "$raw/n1.log" 2>&1 &
    P1=$!; STARTED_PIDS+=("$P1")
    "$raw/bin/broker" -http 127.0.0.1:$h2 -stomp off -node n2 -data "$raw/n2" -cluster-listen 127.0.0.1:$c2 -cluster-routes nats-route://127.0.0.1:$c1 -max-connections 200000 -log-level warn > "$raw/n2.log" 2>&1 &
    P2=$!; STARTED_PIDS+=("$P2")
    wait_port $h1 10; wait_port $h2 10
    for _ in $(seq 1 300); do curl -fs http://127.0.0.1:$h1/readyz >/dev/null 2>&1 && curl -fs http://127.0.0.1:$h2/readyz >/dev/null 2>&1 && break; sleep 0.1; done
    URL=ws://127.0.0.1:$h1/ws; PID=$P2; PROTO=stomp
    if owns $P1 $h1 && owns $P2 $h2; then
      for n in $FANOUT; do bench stompbus crossnode -url2 ws://127.0.0.1:$h2/ws -subs "$n" "${SEARCH[@]}" -max-p50 "$(p50_bound "$n")"; done
    else
      record_error stompbus crossnode "the two nodes did not start; see $raw/n1.log, n2.log"
    fi
    kill "$P1" "$P2" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$P1" 2>/dev/null || kill -0 "$P2" 2>/dev/null || break; sleep 0.1; done
  elif [ "$1" = 1 ]; then
    for n in $FANOUT; do
      record_error stompbus crossnode "blocked: cmd/broker has no -cluster-listen/-cluster-routes yet" "\"subscribers\":$n"
    done
  fi
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
  "$SB" -q -target "$t" -protocol "$PROTO" -url "$URL" -scenario fanout -subs 50 -start 2000 -factor 2 -max-steps 4 -step 0.5s -hold 0.5s -out /dev/null 2>/dev/null
  # idle first, on the fresh process, so its RSS baseline is clean
  [ "$round" = 1 ] && bench "$t" idle -conns "$IDLE"
  for n in $FANOUT; do bench "$t" fanout -subs "$n" "${SEARCH[@]}" -max-p50 "$(p50_bound "$n")"; done
  # latency at fixed load: the same offered rates for every broker, 25% and
  # 50% of the ceiling's fanout saturation (round 1), for brokers whose own
  # saturation in this round is at least half the rate (far past it a run
  # measures nothing but a growing backlog)
  if [ "$t" = ceiling ] && [ -z "$FIXED_REF" ]; then
    FIXED_REF=$("$raw/bin/benchreport" -dir "$out" -saturation ceiling -subs "$FIXED_N" 2>/dev/null)
  fi
  if [ -n "$FIXED_REF" ]; then
    own=$("$raw/bin/benchreport" -dir "$out" -saturation "$t" -subs "$FIXED_N" 2>/dev/null || echo 0)
    for frac in 0.25 0.5; do
      rate=$(awk -v r="$FIXED_REF" -v f="$frac" 'BEGIN { printf "%.0f", r * f }')
      if awk -v o="$own" -v r="$rate" 'BEGIN { exit !(2 * o >= r) }'; then
        bench "$t" fixed -subs "$FIXED_N" -reference ceiling -reference-rate "$FIXED_REF" -fraction "$frac" -hold "$HOLD" -max-p50 "$(p50_bound "$FIXED_N")"
      elif [ "$round" = 1 ]; then
        record_error "$t" fixed "not run: its fanout saturation in this round (${own}/s) is under half the offered $rate/s" "\"subscribers\":$FIXED_N,\"fraction\":$frac,\"reference\":\"ceiling\",\"reference_per_s\":$FIXED_REF"
      fi
    done
  fi
  # the largest fan-out only for stompbus, the ceiling and centrifugo
  # (setting up 10,000 connections to the slower peers alone would take
  # minutes)
  if [ -n "$FANOUT_BIG" ] && [ "$round" = 1 ] && { [ "$t" = stompbus ] || [ "$t" = ceiling ] || [ "$t" = centrifugo ]; }; then
    bench "$t" fanout -subs "$FANOUT_BIG" "${SEARCH[@]}" -start 10000 -max-p50 "$(p50_bound "$FANOUT_BIG")" -timeout 120s
  fi
  bench "$t" pairs -pairs "$PAIRS" "${SEARCH[@]}"
  if [ "$t" = spring ]; then
    [ "$round" = 1 ] && record_error spring queue "not run: the simple broker has no point-to-point queues (a /queue destination goes to every subscriber) and ignores acks" '"producers":4,"consumers":4'
  elif [ "$t" = centrifugo ]; then
    [ "$round" = 1 ] && record_error centrifugo queue "not run: Centrifugo has no point-to-point queues (every subscriber of a channel gets every publication) and no acks" '"producers":4,"consumers":4'
  elif [ "$t" = gostomp ]; then
    [ "$round" = 1 ] && record_error gostomp queue "not run: go-stomp's server stops delivering to an ack:client-individual subscription after its first message, ACK or not" '"producers":4,"consumers":4'
  elif [ "$t" != ceiling ]; then
    bench "$t" queue -producers 4 -consumers 4 -messages "$Q_MSGS"
  fi
  [ "$round" = 1 ] && bench "$t" slow -subs "$SLOW_SUBS" -rate-from "$results" -hold "$HOLD" -step "$STEP"
  stop_target "$t"
  [ "$t" = stompbus ] && crossnode "$round"
done
done

# fanout with history kept on both sides that have it: stompbus
# (-topic-history, JetStream) and Centrifugo (history_size/history_ttl,
# memory engine); one round, each broker restarted with history on
HISTORY_N=${FANOUT##* }
for t in stompbus centrifugo; do
  [[ " $targets " == *" $t "* ]] || continue
  log "== $t with history"
  if ! HISTORY=1 start_target "$t"; then
    record_error "$t" fanout-history "did not start with history" "\"subscribers\":$HISTORY_N"
    stop_target "$t"
    continue
  fi
  "$SB" -q -target "$t" -protocol "$PROTO" -url "$URL" -scenario fanout -subs 50 -start 2000 -factor 2 -max-steps 4 -step 0.5s -hold 0.5s -out /dev/null 2>/dev/null
  bench "$t" fanout-history -subs "$HISTORY_N" "${SEARCH[@]}" -max-p50 "$(p50_bound "$HISTORY_N")"
  stop_target "$t"
done

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
readme=${BENCH_README:-}
if [ "$mode" = full ] && [ -z "$md" ]; then md=BENCHMARKS.md; readme=${readme:-README.md}; fi
[ -n "$md" ] || readme=""
"$raw/bin/benchreport" -dir "$out" ${md:+-md "$md"} ${readme:+-readme "$readme"} -command "bench/run.sh $mode" > /dev/null || exit 1
cat "$out/table.md"
log "done: $out"
