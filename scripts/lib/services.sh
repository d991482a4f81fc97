# Shared by scripts/test and scripts/bench: make sure PostgreSQL and Redis answer on their
# standard local ports, starting them when they are installed but stopped. Fails loudly —
# never skips — when they cannot be had.

PG_HOST=${ETX_PG_HOST:-127.0.0.1}
PG_PORT=${ETX_PG_PORT:-5432}
REDIS_HOST=${ETX_REDIS_HOST:-127.0.0.1}
REDIS_PORT=${ETX_REDIS_PORT:-6379}

die() { echo "ERROR: $*" >&2; exit 1; }

pg_up() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h "$PG_HOST" -p "$PG_PORT"
  else
    (exec 3<>"/dev/tcp/$PG_HOST/$PG_PORT") 2>/dev/null
  fi
}

redis_up() {
  if command -v redis-cli >/dev/null 2>&1; then
    [ "$(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]
  else
    (exec 3<>"/dev/tcp/$REDIS_HOST/$REDIS_PORT") 2>/dev/null
  fi
}

wait_for() { # name check-function
  for _ in $(seq 1 60); do "$2" && return 0; sleep 0.5; done
  return 1
}

ensure_postgres() {
  pg_up && return 0
  echo "PostgreSQL is not answering on $PG_HOST:$PG_PORT; trying to start it" >&2
  if command -v pg_ctlcluster >/dev/null 2>&1 && ls /etc/postgresql >/dev/null 2>&1; then
    for v in $(ls /etc/postgresql); do
      pg_ctlcluster --skip-systemctl-redirect "$v" main start 2>/dev/null || pg_ctlcluster "$v" main start || true
    done
  elif command -v systemctl >/dev/null 2>&1; then
    systemctl start postgresql || true
  elif command -v brew >/dev/null 2>&1; then
    brew services start postgresql || true
  fi
  wait_for postgres pg_up || die "PostgreSQL is required (tests run against it) and could not be started.
Install it (Debian/Ubuntu: apt-get install postgresql) with trust (or password-less) access for user postgres on $PG_HOST:$PG_PORT,
or point ETX_TEST_PG_URL at a server you have."
}

ensure_redis() {
  redis_up && return 0
  echo "Redis is not answering on $REDIS_HOST:$REDIS_PORT; trying to start it" >&2
  if command -v redis-server >/dev/null 2>&1; then
    mkdir -p /tmp/etx-redis
    redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no \
      --dir /tmp/etx-redis --logfile /tmp/etx-redis/redis.log || true
  fi
  wait_for redis redis_up || die "Redis is required (tests run against it) and could not be started.
Install it (Debian/Ubuntu: apt-get install redis-server) or point ETX_TEST_REDIS_URL at a server you have."
}
