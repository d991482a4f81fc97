# Helpers of the benchmark scripts: scratch state with clean-up, process control, a
# distributed hub (gateway + identity + ingestion on PostgreSQL + Redis), measurements.
# Source after scripts/lib/services.sh; needs $ETXHUB and $PG_ADMIN_URL set by the caller.

# The benchmarks drive one source from one address far beyond the default rate limits (R-SEC-2):
# lift them, unless the caller set them.
export ETX__RATE_LIMITS__PER_KEY__RATE=${ETX__RATE_LIMITS__PER_KEY__RATE:-1000000}
export ETX__RATE_LIMITS__PER_KEY__BURST=${ETX__RATE_LIMITS__PER_KEY__BURST:-1000000}
export ETX__RATE_LIMITS__PER_ORG__RATE=${ETX__RATE_LIMITS__PER_ORG__RATE:-1000000}
export ETX__RATE_LIMITS__PER_ORG__BURST=${ETX__RATE_LIMITS__PER_ORG__BURST:-1000000}
export ETX__RATE_LIMITS__PER_IP__RATE=${ETX__RATE_LIMITS__PER_IP__RATE:-1000000}
export ETX__RATE_LIMITS__PER_IP__BURST=${ETX__RATE_LIMITS__PER_IP__BURST:-1000000}

# Milliseconds since the epoch.
now_ms() { date +%s%3N; }

# Peak resident set (VmHWM, kB) of a live process.
peak_rss_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# CPU seconds (user + system) used so far by a live process.
cpu_secs() { awk '{ printf "%.1f", ($14 + $15) / 100 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

b64key() { head -c 32 /dev/urandom | base64 | tr -d '\n'; }

psql_admin() { psql "$PG_ADMIN_URL" -v ON_ERROR_STOP=1 -qAt "$@"; }

stop_pid() { # pid — SIGTERM, then SIGKILL after 10 s
  local pid=$1
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

# Sets RUN_ID, WORK, PG_BASE_URL, REDIS_PREFIX and a trap that stops every process in PIDS,
# drops every database in DBS and deletes the Redis keys (and WORK, unless BENCH_KEEP=1 or the
# run failed).
bench_scratch() { # label
  RUN_ID="$(date +%s)_$$"
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/etx-bench-$1.XXXXXX")
  PG_BASE_URL=${PG_ADMIN_URL%/*}
  REDIS_PREFIX="etxbench:$RUN_ID:"
  PIDS=()
  DBS=()
  OK=0
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
  echo "==> work directory $WORK" >&2
}

bench_cleanup() {
  local rc=$?
  set +e
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  for db in "${DBS[@]}"; do
    psql_admin -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1
  done
  redis-cli -u "$REDIS_URL" --scan --pattern "${REDIS_PREFIX}*" 2>/dev/null \
    | xargs -r -n 500 redis-cli -u "$REDIS_URL" DEL >/dev/null 2>&1
  if [ "$OK" = 1 ] && [ "${BENCH_KEEP:-0}" != 1 ]; then
    rm -rf "$WORK"
  else
    echo "logs kept in $WORK" >&2
  fi
  exit "$rc"
}

bench_create_db() { # name
  DBS+=("$1")
  psql_admin -c "CREATE DATABASE \"$1\"" >/dev/null
  psql_admin -c "ALTER DATABASE \"$1\" SET synchronous_commit = on" >/dev/null
}

# Waits for "listening on <scheme>://<addr>" in a process log; prints the address.
wait_listen() { # log pid
  local addr=""
  for _ in $(seq 1 300); do
    addr=$(sed -n 's/.*listening on [a-z]*:\/\/\([^ ]*\).*/\1/p' "$1" | head -n1)
    [ -n "$addr" ] && { echo "$addr"; return 0; }
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  echo "---- $1" >&2; tail -n 30 "$1" >&2
  die "etxhub did not start (log above)"
}

wait_ready() { # url [curl args...]
  local url=$1; shift
  for _ in $(seq 1 200); do
    curl -fsS -o /dev/null "$@" "$url" 2>/dev/null && return 0
    sleep 0.1
  done
  die "$url never became ready"
}

# Starts identity, ingestion and gateway processes on the database URL and Redis — and a
# masking process too when the third argument is `masking` (the gateway then routes the
# pipeline operations and masking policy APIs to it), masking and reconciliation when it is
# `pipeline` (reconciliation's API routed too); sets HUB_ENV, ID_PID, ING_PID, GW_PID, GW_ADDR
# and GW_CERT (and MASK_PID, REC_PID). Logs and data dirs under $WORK/dist.
bench_start_distributed() { # database-url redis-url [masking|pipeline]
  HUB_ENV=(
    "ETX__DATABASE__URL=$1"
    "ETX__QUEUE__KIND=redis"
    "ETX__QUEUE__REDIS_URL=$2"
    "ETX__QUEUE__KEY_PREFIX=$REDIS_PREFIX"
    "ETX__SECURITY__MASTER_KEY=$(b64key)"
    "ETX__SECURITY__MASTER_KEY_ID=mk-bench"
    "ETX__SECURITY__HMAC_KEY=$(b64key)"
    "ETX__SECURITY__INTERNAL_SECRET=$(b64key)"
  )
  mkdir -p "$WORK/dist/gateway" "$WORK/dist/identity" "$WORK/dist/ingestion"
  env "${HUB_ENV[@]}" "$ETXHUB" --data-dir "$WORK/dist/identity" migrate >"$WORK/dist/migrate.log" 2>&1 \
    || { cat "$WORK/dist/migrate.log" >&2; die "etxhub migrate failed"; }
  env "${HUB_ENV[@]}" "$ETXHUB" --data-dir "$WORK/dist/identity" serve --target identity --listen 127.0.0.1:0 \
    >"$WORK/dist/identity.log" 2>&1 &
  ID_PID=$!; PIDS+=("$ID_PID")
  env "${HUB_ENV[@]}" "$ETXHUB" --data-dir "$WORK/dist/ingestion" serve --target ingestion --listen 127.0.0.1:0 \
    >"$WORK/dist/ingestion.log" 2>&1 &
  ING_PID=$!; PIDS+=("$ING_PID")
  local id_addr ing_addr
  id_addr=$(wait_listen "$WORK/dist/identity.log" "$ID_PID")
  ing_addr=$(wait_listen "$WORK/dist/ingestion.log" "$ING_PID")
  local mask_env=()
  if [ "${3:-}" = masking ] || [ "${3:-}" = pipeline ]; then
    mkdir -p "$WORK/dist/masking"
    env "${HUB_ENV[@]}" "$ETXHUB" --data-dir "$WORK/dist/masking" serve --target masking --listen 127.0.0.1:0 \
      >"$WORK/dist/masking.log" 2>&1 &
    MASK_PID=$!; PIDS+=("$MASK_PID")
    local mask_addr
    mask_addr=$(wait_listen "$WORK/dist/masking.log" "$MASK_PID")
    wait_ready "http://$mask_addr/readyz"
    mask_env=("ETX__UPSTREAMS__MASKING=http://$mask_addr")
  fi
  if [ "${3:-}" = pipeline ]; then
    mkdir -p "$WORK/dist/reconciliation"
    env "${HUB_ENV[@]}" "$ETXHUB" --data-dir "$WORK/dist/reconciliation" serve --target reconciliation \
      --listen 127.0.0.1:0 >"$WORK/dist/reconciliation.log" 2>&1 &
    REC_PID=$!; PIDS+=("$REC_PID")
    local rec_addr
    rec_addr=$(wait_listen "$WORK/dist/reconciliation.log" "$REC_PID")
    wait_ready "http://$rec_addr/readyz"
    mask_env+=("ETX__UPSTREAMS__RECONCILIATION=http://$rec_addr")
  fi
  env "${HUB_ENV[@]}" "ETX__UPSTREAMS__IDENTITY=http://$id_addr" "ETX__UPSTREAMS__INGESTION=http://$ing_addr" \
    "${mask_env[@]}" "$ETXHUB" --data-dir "$WORK/dist/gateway" serve --target gateway --listen 127.0.0.1:0 \
    >"$WORK/dist/gateway.log" 2>&1 &
  GW_PID=$!; PIDS+=("$GW_PID")
  GW_ADDR=$(wait_listen "$WORK/dist/gateway.log" "$GW_PID")
  GW_CERT="$WORK/dist/gateway/tls/cert.pem"
  wait_ready "http://$id_addr/readyz"
  wait_ready "http://$ing_addr/readyz"
  wait_ready "https://$GW_ADDR/readyz" --cacert "$GW_CERT"
  echo "    gateway https://$GW_ADDR → identity http://$id_addr, ingestion http://$ing_addr" >&2
}

bench_stop_all() {
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
}

# Onboards a source with the hub's environment; prints its API key.
bench_onboard() { # etxhub global flags (e.g. --data-dir DIR)
  env "${HUB_ENV[@]}" "$ETXHUB" sources add "$@" --org-code "BENCH-$RUN_ID" \
    --org-name "Sở Khoa học và Công nghệ (benchmark)" --org-kind province \
    --system-name "Cổng dữ liệu (benchmark)" --output json 2>>"$WORK/onboard.log" | jq -r .api_key
}
