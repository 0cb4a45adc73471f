#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for tenancy, run as the user postgres,
# listening on loopback only.
#   scripts/pg-cluster.sh start [DIR] [PORT]   initdb (if needed) and start
#   scripts/pg-cluster.sh stop  [DIR]
#   scripts/pg-cluster.sh psql  [DIR] [PORT] -- psql args...
set -euo pipefail
cmd=${1:?start|stop|psql}
dir=${2:-/tmp/tenancy-pg}
port=${3:-28815}
# PG_BIN: another (relocated) copy of PostgreSQL 15, e.g. for a second build.
bin=${PG_BIN:-/usr/lib/postgresql/15/bin}

as_pg() {
  if [ "$(id -un)" = postgres ]; then "$@"; else sudo -u postgres -H -- "$@"; fi
}

case "$cmd" in
  start)
    if [ ! -f "$dir/PG_VERSION" ]; then
      mkdir -p "$dir"
      chown postgres:postgres "$dir" 2>/dev/null || true
      as_pg "$bin/initdb" -D "$dir" -U postgres --auth=trust --no-sync -E UTF8 --locale=C.UTF-8 >/dev/null
      cat >>"$dir/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
fsync = off
max_connections = 100
shared_buffers = 256MB
CONF
      # Extra settings for this cluster (scripts/citus-cluster.sh: citus preloaded).
      if [ -n "${PG_CONF_EXTRA:-}" ]; then printf '%s\n' "$PG_CONF_EXTRA" >>"$dir/postgresql.conf"; fi
    fi
    if ! as_pg "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
      as_pg "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w start >/dev/null
    fi
    echo "postgres running: psql -h $dir -p $port -U postgres"
    ;;
  stop)
    as_pg "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null 2>&1 || true
    ;;
  psql)
    shift 3 || true
    [ "${1:-}" = "--" ] && shift
    psql -h "$dir" -p "$port" -U postgres -X "$@"
    ;;
  *) echo "usage: $0 start|stop|psql [DIR] [PORT]" >&2; exit 2 ;;
esac
