#!/bin/sh
# Start or stop a throw-away PostgreSQL and Redis for the tests, on loopback
# ports of their own, with data in a temporary directory.
#
#   eval "$(scripts/services.sh start)"   # exports EHUB_TEST_PG_URL, EHUB_TEST_REDIS_URL, EHUB_SERVICES_DIR
#   scripts/services.sh stop "$EHUB_SERVICES_DIR"
#
# PostgreSQL refuses to run as root, so as root the cluster is owned by the
# `postgres` system user that Debian's package creates.
set -eu

PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  [ -n "$PGBIN" ] || { echo "services: PostgreSQL binaries not found (run scripts/deps.sh)" >&2; exit 1; }
  dir=$(mktemp -d /tmp/ehub-services.XXXXXX)
  chmod 755 "$dir"
  mkdir -p "$dir/pg" "$dir/redis"
  [ "$(id -u)" -eq 0 ] && chown postgres "$dir/pg"
  pgport=$(free_port)
  as_pg "$PGBIN/initdb" -D "$dir/pg/data" -U ehub --auth=trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  as_pg "$PGBIN/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/server.log" -w -t 60 \
    -o "-p $pgport -k $dir/pg -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null \
    || { cat "$dir/pg/server.log" >&2; exit 1; }
  as_pg "$PGBIN/createdb" -h 127.0.0.1 -p "$pgport" -U ehub ehub_test
  redisport=$(free_port)
  redis-server --port "$redisport" --bind 127.0.0.1 --dir "$dir/redis" --daemonize yes \
    --pidfile "$dir/redis/redis.pid" --logfile "$dir/redis/redis.log" --save "" --appendonly no >/dev/null
  i=0
  until redis-cli -p "$redisport" ping >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -gt 100 ] && { echo "services: redis did not start" >&2; exit 1; }
    sleep 0.1
  done
  echo "export EHUB_SERVICES_DIR='$dir'"
  echo "export EHUB_TEST_PG_URL='postgres://ehub@127.0.0.1:$pgport/ehub_test'"
  echo "export EHUB_TEST_PG_PORT='$pgport'"
  echo "export EHUB_TEST_REDIS_URL='redis://127.0.0.1:$redisport'"
  echo "export EHUB_TEST_REDIS_PORT='$redisport'"
}

stop() {
  dir=${1:-${EHUB_SERVICES_DIR:-}}
  [ -n "$dir" ] && [ -d "$dir" ] || return 0
  [ -d "$dir/pg/data" ] && as_pg "$PGBIN/pg_ctl" -D "$dir/pg/data" -m fast -w stop >/dev/null 2>&1 || true
  [ -f "$dir/redis/redis.pid" ] && kill "$(cat "$dir/redis/redis.pid")" 2>/dev/null || true
  rm -rf "$dir"
}

case "${1:-}" in
  start) start ;;
  stop) stop "${2:-}" ;;
  *) echo "usage: $0 start | stop DIR" >&2; exit 2 ;;
esac
