#!/usr/bin/env bash
# A throwaway Citus cluster for tenancy's tests: a coordinator and two
# workers, PostgreSQL 15 run as the user postgres on loopback ports PORT,
# PORT+1, PORT+2, data under DIR/{coordinator,worker1,worker2} (each socket in
# its data directory), the database DB created on every node with the citus
# extension, the workers added to the coordinator.
#   scripts/citus-cluster.sh start DIR PORT DB
#   scripts/citus-cluster.sh stop  DIR
# Needs Citus installed (../shared/vendor/citus/build.sh, which
# scripts/install-deps.sh runs when that folder exists).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cmd=${1:?start|stop}
dir=${2:-/tmp/tenancy-citus}
port=${3:-28870}
db=${4:-tenancy_citus}
nodes=(coordinator worker1 worker2)

case "$cmd" in
  start)
    # Citus commits writes to reference tables in two phases, and a
    # coordinator with workers needs a few more connections than one node.
    export PG_CONF_EXTRA="shared_preload_libraries = 'citus'
max_prepared_transactions = 50
citus.log_remote_commands = off
max_worker_processes = 32"
    for i in 0 1 2; do
      "$here/pg-cluster.sh" start "$dir/${nodes[$i]}" $((port + i)) >/dev/null
    done
    for i in 0 1 2; do
      node="$dir/${nodes[$i]}"
      if ! psql -h "$node" -p $((port + i)) -U postgres -X -At -d postgres \
           -c "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
        psql -h "$node" -p $((port + i)) -U postgres -X -q -d postgres -c "CREATE DATABASE \"$db\""
      fi
      psql -h "$node" -p $((port + i)) -U postgres -X -q -d "$db" -c "CREATE EXTENSION IF NOT EXISTS citus"
    done
    coordinator="$dir/coordinator"
    psql -h "$coordinator" -p "$port" -U postgres -X -q -d "$db" \
      -c "SELECT citus_set_coordinator_host('127.0.0.1', $port)" \
      -c "SELECT citus_add_node('127.0.0.1', $((port + 1)))" \
      -c "SELECT citus_add_node('127.0.0.1', $((port + 2)))" >/dev/null
    echo "citus running: psql -h $coordinator -p $port -U postgres -d $db (workers on $((port + 1)), $((port + 2)))"
    ;;
  stop)
    for n in "${nodes[@]}"; do "$here/pg-cluster.sh" stop "$dir/$n"; done
    ;;
  *) echo "usage: $0 start|stop [DIR] [PORT] [DB]" >&2; exit 2 ;;
esac
