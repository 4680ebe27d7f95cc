#!/usr/bin/env bash
# The benchmarks of issue #12, in one session on this machine: one pubsubd on the in-memory engine
# against three pubsubd sharing a throwaway redis-server.
#
#   cmd/pubsub-bench/replicas.sh [PUBSUBD [PUBSUB_BENCH]]
#
# PUBSUBD and PUBSUB_BENCH are built binaries (default ./pubsubd and ./pubsub-bench; as variables
# too). It runs, each for DURATION seconds (default 10), with -check:
#   1. acked publishes/s, one publisher, window 64, one subscriber: memory vs Redis (through one
#      replica, the other two running);
#   2. deliveries/s and server CPU per delivery, one publisher to SUBS subscribers (default 1000) at
#      FANOUT_RATE msgs/s (default 0: as fast as acks allow): all on one memory replica vs spread
#      over the three Redis replicas (their CPU summed; Redis's own CPU is shown beside it);
#   3. p99 publish-to-delivery at 100 msgs/s to SUBS subscribers: memory vs across replicas (the
#      deliveries to the two replicas the publisher is not on).
# and prints a table with the ratios. Set OUT=dir to keep each run's JSON line there. Exit status:
# 0 when every run kept every invariant, 1 when one broke one or failed, 2 for bad arguments, 3 when the Redis
# half could not run.
#
# Everything listens on 127.0.0.1 only and is stopped on exit. Every step is bounded: servers get
# 10 s to start, each run DURATION + 90 s. Redis runs without persistence (--save '',
# --appendonly no) and with noeviction, as a bench should. When redis-server is missing, or the
# pubsubd does not share topics through Redis (PUBSUB_BROKER=redis refused or not built in), the
# memory half still runs and the Redis half says why it did not.
set -euo pipefail

pubsubd=${1:-${PUBSUBD:-./pubsubd}}
bench=${2:-${PUBSUB_BENCH:-./pubsub-bench}}
duration=${DURATION:-10}
subs=${SUBS:-1000}
fanout_rate=${FANOUT_RATE:-0}
out=${OUT:-}

die() { echo "replicas.sh: $*" >&2; exit 2; }
[[ -x $pubsubd ]] || die "no pubsubd at $pubsubd (go build -o pubsubd ./cmd/pubsubd, or pass its path)"
[[ -x $bench ]] || die "no pubsub-bench at $bench (go build -o pubsub-bench ./cmd/pubsub-bench, or pass its path)"
[[ $duration =~ ^[1-9][0-9]*$ ]] || die "DURATION is whole seconds, got '$duration'"
[[ $subs =~ ^[1-9][0-9]*$ ]] || die "SUBS is a positive count, got '$subs'"
[[ $fanout_rate =~ ^[0-9]+$ ]] || die "FANOUT_RATE is msgs/s (0: as fast as acks allow), got '$fanout_rate'"
for tool in jq curl timeout; do command -v "$tool" >/dev/null || die "$tool is required (apt-get install $tool)"; done
if [[ -n $out ]]; then mkdir -p "$out"; fi

work=$(mktemp -d -t pubsub-replicas.XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  # pubsubd drains within its PUBSUB_DRAIN_TIMEOUT (2 s here); then nothing may be left behind.
  for _ in $(seq 50); do
    local alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [[ $alive == 0 ]] && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The servers start from a clean environment: a PUBSUB_* or OTEL_* setting of this shell (an API
# key, a broker, a tracing endpoint) would change what is measured.
clean_env=()
while IFS= read -r name; do clean_env+=(-u "$name"); done < <(env | sed -n 's/^\(\(PUBSUB\|OTEL\)_[A-Za-z0-9_]*\)=.*/\1/p')

# free_port: a port of 127.0.0.1 nothing answers on. Another process may take it before the
# server binds it; the server then exits at start and the caller tries another.
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

# start_pubsubd NAME VAR=VALUE...: starts a pubsubd on free ports of 127.0.0.1 and sets pid, addr
# (host:port of REST and /ws) and admin (host:port of /metrics). Returns 1 with its log on stderr
# when it keeps failing to start (5 tries of 10 s at most).
start_pubsubd() {
  local name=$1 log=$work/$1.log try
  shift
  for try in 1 2 3 4 5; do
    addr=127.0.0.1:$(free_port) admin=127.0.0.1:$(free_port)
    # WARN: the bench measures the server, not its logging (the start lines are INFO).
    env "${clean_env[@]}" PUBSUB_HOST=127.0.0.1 PUBSUB_PORT="${addr#*:}" PUBSUB_ADMIN_ADDR="$admin" \
      PUBSUB_LOG_LEVEL=WARN PUBSUB_DRAIN_TIMEOUT=2s PUBSUB_PUBLISH_RATE=0 PUBSUB_MAX_CONNECTIONS=0 \
      "$@" "$pubsubd" >"$log" 2>&1 &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      if curl -fsS -m 1 "http://$addr/readyz" >/dev/null 2>&1 && curl -fsS -m 1 -o /dev/null "http://$admin/metrics"; then
        return 0
      fi
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      stop "$pid"
      echo "$name did not become ready within 10 s:" >&2; tail -n 5 "$log" >&2; return 1
    fi
    # Exit status 2 is a setting it refuses: no other port will help.
    if wait "$pid"; then :; elif [[ $? == 2 ]] || ! grep -q 'address already in use' "$log"; then
      echo "$name exited at start:" >&2; tail -n 5 "$log" >&2; return 1
    fi
  done
  echo "$name found no free port in 5 tries" >&2; return 1
}

stop() {
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
}

failed=() # runs that produced no result
# run NAME FLAGS...: one bench run, its JSON line in $work/NAME.json (and $OUT). A run that breaks
# an invariant is reported, not fatal: the table says which.
run() {
  local name=$1
  shift
  echo "== $name: pubsub-bench $*" >&2
  local rc=0
  env -u PUBSUB_API_KEY timeout -k 10 $((duration + 90)) "$bench" -json -check -duration "${duration}s" "$@" \
    >"$work/$name.json" 2>"$work/$name.err" || rc=$?
  if [[ ! -s $work/$name.json ]]; then
    echo "   failed (exit $rc): $(tail -n 3 "$work/$name.err")" >&2
    failed+=("$name")
    echo '{}' >"$work/$name.json"
  elif [[ $rc != 0 ]]; then
    echo "   exit $rc, violations: $(jq -c '.violations' "$work/$name.json")" >&2
  fi
  if [[ -n $out ]]; then cp "$work/$name.json" "$out/$name.json"; fi
}

# get NAME JQ: a number from a run's JSON ('' when absent).
get() { jq -r "($2) // empty | if type == \"number\" then . else empty end" "$work/$1.json"; }

fanout_flags=(-scenario fanout -pubs 1 -subs "$subs")
if [[ $fanout_rate != 0 ]]; then fanout_flags+=(-rate "$fanout_rate"); fi

echo "== memory: one pubsubd" >&2
start_pubsubd memory || die "the memory pubsubd did not start"
m_pid=$pid m_url=http://$addr m_metrics=http://$admin/metrics
run mem-acked -url "$m_url" -metrics-url "$m_metrics" -server-pid "$m_pid" -scenario fanout -pubs 1 -subs 1 -window 64
run mem-fanout -url "$m_url" -metrics-url "$m_metrics" -server-pid "$m_pid" "${fanout_flags[@]}"
run mem-p99 -url "$m_url" -metrics-url "$m_metrics" -server-pid "$m_pid" -scenario fanout -pubs 1 -subs "$subs" -rate 100
stop "$m_pid"

redis_why=''
start_redis() {
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null ||
    { redis_why='redis-server or redis-cli not installed (apt-get install redis-server)'; return 1; }
  local try
  for try in 1 2 3 4 5; do
    redis_port=$((20000 + RANDOM % 40000))
    # A port something answers on is taken; one that binds between this probe and redis-server's
    # start makes it exit, and the next try picks another.
    if (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null; then continue; fi
    redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no \
      --maxmemory-policy noeviction --dir "$work" --logfile "$work/redis.log" --daemonize no &
    redis_pid=$!
    pids+=("$redis_pid")
    for _ in $(seq 50); do
      kill -0 "$redis_pid" 2>/dev/null || break
      [[ $(redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null) == PONG ]] && return 0
      sleep 0.1
    done
    stop "$redis_pid"
  done
  redis_why="redis-server did not start (log: $(tail -n 2 "$work/redis.log" 2>/dev/null))"
  return 1
}

# shares_topics URL...: a topic created through the first server is listed by every other within
# 5 s. Without it, three pubsubd that ignored PUBSUB_BROKER would be measured as if they shared one.
shares_topics() {
  local first=$1 topic=replicas-probe-$RANDOM$RANDOM u ok
  shift
  curl -fsS -m 2 -X POST -H 'Content-Type: application/json' -d "{\"name\":\"$topic\"}" "$first/topics" >/dev/null || return 1
  for u in "$@"; do
    ok=0
    for _ in $(seq 50); do
      if curl -fsS -m 1 "$u/topics?after=replicas-probe-&limit=1000" 2>/dev/null |
        jq -e --arg t "$topic" 'any(.topics[]; .name == $t)' >/dev/null 2>&1; then ok=1; break; fi
      sleep 0.1
    done
    [[ $ok == 1 ]] || { curl -fsS -m 2 -X DELETE "$first/topics/$topic" >/dev/null 2>&1 || true; return 1; }
  done
  curl -fsS -m 2 -X DELETE "$first/topics/$topic" >/dev/null 2>&1 || true
}

redis_ok=0
echo "== redis: one redis-server, three pubsubd" >&2
if start_redis; then
  r_pids=() r_urls=() r_metrics=()
  for i in 1 2 3; do
    if ! start_pubsubd "replica-$i" PUBSUB_BROKER=redis PUBSUB_REDIS_URL="redis://127.0.0.1:$redis_port" \
      PUBSUB_REPLICA_ID="bench-$i"; then
      redis_why="pubsubd with PUBSUB_BROKER=redis did not start: $(tail -n 1 "$work/replica-$i.log")"
      break
    fi
    r_pids+=("$pid") r_urls+=("http://$addr") r_metrics+=("http://$admin/metrics")
  done
  if [[ -z $redis_why ]]; then
    if shares_topics "${r_urls[@]}"; then
      redis_ok=1
    else
      redis_why="the three pubsubd do not share topics (this pubsubd has no Redis engine, or ignored PUBSUB_BROKER)"
    fi
  fi
fi
if [[ $redis_ok == 1 ]]; then
  join() { local IFS=,; echo "$*"; }
  all_urls=$(join "${r_urls[@]}") all_metrics=$(join "${r_metrics[@]}")
  # Redis's pid goes last: the bench sums it into the server CPU, and its own share is read back.
  all_pids=$(join "${r_pids[@]}" "$redis_pid")
  run redis-acked -url "${r_urls[0]}" -metrics-url "${r_metrics[0]}" -server-pid "$all_pids" -scenario fanout -pubs 1 -subs 1 -window 64
  run redis-fanout -url "$all_urls" -metrics-url "$all_metrics" -server-pid "$all_pids" "${fanout_flags[@]}"
  run redis-p99 -url "$all_urls" -metrics-url "$all_metrics" -server-pid "$all_pids" -scenario fanout -pubs 1 -subs "$subs" -rate 100
else
  echo "   skipped: $redis_why" >&2
  for n in redis-acked redis-fanout redis-p99; do echo '{}' >"$work/$n.json"; done
fi

# The table. CPU per delivery is µs (the bench's seconds per million deliveries); the Redis column is
# the three pubsubd, with Redis's own CPU per delivery in brackets.
redis_pid_name="pid ${redis_pid:-none}"
ratio() { [[ -n $1 && -n $2 ]] && awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }' || echo -; }
fmt() { [[ -n $1 ]] && awk -v v="$1" -v s="${2:-1}" -v d="${3:-0}" 'BEGIN { printf "%.*f", d, v * s }' || echo -; }
# per_delivery NAME pubsubd|redis: CPU µs per delivery of the pubsubd processes, or of redis-server,
# from a run's per-process CPU.
per_delivery() {
  jq -r --arg r "$redis_pid_name" --arg which "$2" '
    (.deliveries // 0) as $d
    | [.server.processes[]? | select((.name == $r) == ($which == "redis")) | .cpu_sec]
    | if $d > 0 and length > 0 then add / $d * 1e6 else empty end' "$work/$1.json"
}
m_cpu=$(get mem-fanout .server.cpu_sec_per_million_deliveries)
r_cpu=$(per_delivery redis-fanout pubsubd) r_rcpu=$(per_delivery redis-fanout redis)
m_ack=$(get mem-acked .publish.acked_per_sec) r_ack=$(get redis-acked .publish.acked_per_sec)
m_del=$(get mem-fanout .deliveries_per_sec) r_del=$(get redis-fanout .deliveries_per_sec)
m_p99=$(get mem-p99 '.groups[0].e2e_latency.p99_us') r_p99=$(get redis-p99 '.cross_server_e2e_latency.p99_us')
r_p99all=$(get redis-p99 '.groups[0].e2e_latency.p99_us')
violations() { jq -r '(.violations // []) | length' "$work/$1.json"; }

echo
rate_name=$fanout_rate
if [[ $fanout_rate == 0 ]]; then rate_name=max; fi
tabulate() { if command -v column >/dev/null; then column -t -s $'\t'; else cat; fi; }
echo "pubsub on one memory replica vs three replicas on Redis: $(date -u +%Y-%m-%dT%H:%MZ), ${duration}s per run, $subs subscribers, fan-out rate $rate_name"
{
  printf 'measure\tmemory\tredis\tredis / memory\ttarget\n'
  printf 'acked publishes/s (1 publisher, window 64)\t%s\t%s\t%s\t>= 20000/s on redis\n' "$(fmt "$m_ack")" "$(fmt "$r_ack")" "$(ratio "$r_ack" "$m_ack")"
  printf 'deliveries/s (%s subscribers)\t%s\t%s\t%s\t\n' "$subs" "$(fmt "$m_del")" "$(fmt "$r_del")" "$(ratio "$r_del" "$m_del")"
  printf 'server CPU per delivery, µs (redis-server'"'"'s own)\t%s\t%s (%s)\t%s\t<= 1.3\n' "$(fmt "$m_cpu" 1 3)" "$(fmt "$r_cpu" 1 3)" "$(fmt "$r_rcpu" 1 3)" "$(ratio "$r_cpu" "$m_cpu")"
  printf 'p99 publish->delivery at 100 msg/s, ms (redis: across replicas; all)\t%s\t%s (%s)\t%s\t\n' "$(fmt "$m_p99" 0.001 2)" "$(fmt "$r_p99" 0.001 2)" "$(fmt "$r_p99all" 0.001 2)" "$(ratio "$r_p99" "$m_p99")"
} | tabulate
bad=0
for n in mem-acked mem-fanout mem-p99 redis-acked redis-fanout redis-p99; do
  v=$(violations "$n")
  if [[ $v != 0 ]]; then echo "$n: $v invariants broken: $(jq -c .violations "$work/$n.json")"; bad=1; fi
done
if [[ ${#failed[@]} != 0 ]]; then echo "runs without a result: ${failed[*]} (their errors are above)"; bad=1; fi
if [[ $bad != 0 ]]; then exit 1; fi
if [[ $redis_ok != 1 ]]; then echo "redis half not run: $redis_why"; exit 3; fi
