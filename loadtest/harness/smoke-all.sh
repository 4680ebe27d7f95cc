#!/usr/bin/env bash
# Runs every k6 script in loadtest/ for a few seconds through the Node harness, so that none of
# them is dead code. Fails (non-zero) if any run fails a check or a threshold.
#
# With PUBSUBD_BIN set, it starts that pubsubd itself on a free loopback port, once per overflow
# policy (backpressure.js is run under drop_oldest and under disconnect), and stops it with
# SIGTERM afterwards (which must exit 0). Without it, it targets PUBSUB_URL (default
# http://127.0.0.1:8080) and runs backpressure.js for PUBSUB_OVERFLOW_POLICY (default drop_oldest).
#
#   PUBSUBD_BIN=/tmp/pubsubd loadtest/harness/smoke-all.sh
#   PUBSUB_URL=http://127.0.0.1:8080 DURATION=10s loadtest/harness/smoke-all.sh
set -euo pipefail

harness="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
scripts="$(dirname "$harness")"
export DURATION="${DURATION:-5s}"
[[ -d "$harness/node_modules/ws" ]] || { echo "smoke-all: run 'npm ci' in $harness first" >&2; exit 2; }

server_pid=""
server_log=""
failed=()

stop_server() {
  [[ -n "$server_pid" ]] || return 0
  local pid="$server_pid" rc=0
  server_pid=""
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" || rc=$?
  if [[ $rc -ne 0 ]]; then
    echo "smoke-all: pubsubd exited $rc after SIGTERM (want 0); its log:" >&2
    tail -n 20 "$server_log" >&2
    failed+=("pubsubd shutdown")
  fi
}
trap 'stop_server' EXIT

# start_server POLICY starts pubsubd on a free loopback port and exports PUBSUB_URL once /readyz
# answers 200. A port taken between choosing and binding it is retried.
start_server() {
  local policy="$1" port attempt
  for attempt in 1 2 3; do
    port="$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')"
    server_log="$(mktemp -t pubsubd-k6.XXXXXX)"
    PUBSUB_HOST=127.0.0.1 PUBSUB_PORT="$port" PUBSUB_ADMIN_ADDR=127.0.0.1:0 \
      PUBSUB_OVERFLOW_POLICY="$policy" PUBSUB_HEARTBEAT_INTERVAL=1s PUBSUB_LOG_LEVEL=WARN \
      "$PUBSUBD_BIN" >"$server_log" 2>&1 &
    server_pid=$!
    if node -e '
      const [url, pid] = process.argv.slice(1);
      const deadline = Date.now() + 15000;
      (async () => {
        while (Date.now() < deadline) {
          try { process.kill(Number(pid), 0); } catch { process.exit(1); }
          try { if ((await fetch(url)).status === 200) process.exit(0); } catch {}
          await new Promise((r) => setTimeout(r, 100));
        }
        process.exit(1);
      })();' "http://127.0.0.1:$port/readyz" "$server_pid"; then
      export PUBSUB_URL="http://127.0.0.1:$port"
      echo "smoke-all: pubsubd ($policy) ready at $PUBSUB_URL"
      return 0
    fi
    kill -KILL "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
    echo "smoke-all: pubsubd did not become ready (attempt $attempt); its log:" >&2
    tail -n 20 "$server_log" >&2
  done
  exit 1
}

# k6run NAME SCRIPT [-e KEY=VALUE]... runs one script and records a failure without stopping.
k6run() {
  local name="$1" script="$2" started rc=0
  shift 2
  started=$SECONDS
  echo "=== $name ($script $*)"
  node "$harness/k6.js" run "$@" "$scripts/$script" || rc=$?
  echo "=== $name: exit $rc in $((SECONDS - started))s"
  [[ $rc -eq 0 ]] || failed+=("$name")
}

fanout_env=(-e RAMP=2s -e SUBSCRIBERS=5 -e SOCKETS_PER_VU=4 -e PUBLISH_RATE=10 -e BATCH=5)
soak_env=(-e WINDOW=1s -e STEADY_VUS=2 -e CHURN_RATE=2)

if [[ -n "${PUBSUBD_BIN:-}" ]]; then
  start_server drop_oldest
  k6run smoke smoke.js -e EXPECT_HEARTBEAT_WITHIN=3s
  k6run fanout fanout.js "${fanout_env[@]}"
  k6run "backpressure (drop_oldest)" backpressure.js -e PUBSUB_OVERFLOW_POLICY=drop_oldest -e EXPECT_SLOW_CONSUMER=true
  k6run soak soak.js "${soak_env[@]}"
  stop_server
  start_server disconnect
  k6run "backpressure (disconnect)" backpressure.js -e PUBSUB_OVERFLOW_POLICY=disconnect -e EXPECT_SLOW_CONSUMER=true
  stop_server
else
  export PUBSUB_URL="${PUBSUB_URL:-http://127.0.0.1:8080}"
  k6run smoke smoke.js
  k6run fanout fanout.js "${fanout_env[@]}"
  k6run "backpressure (${PUBSUB_OVERFLOW_POLICY:-drop_oldest})" backpressure.js
  k6run soak soak.js "${soak_env[@]}"
fi

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "smoke-all: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "smoke-all: every k6 script passed"
