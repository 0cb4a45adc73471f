#!/usr/bin/env bash
# Installs what is missing, builds and installs tenancy into PostgreSQL 15,
# starts a throwaway PostgreSQL on loopback (as the user postgres) and runs
# the walkthrough in examples/walkthrough.sql.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
TENANCY_NO_CITUS=1 bash scripts/install-deps.sh
cargo pgrx install --pg-config /usr/lib/postgresql/15/bin/pg_config
dir=${TENANCY_DEMO_DIR:-/tmp/tenancy-demo}
port=${TENANCY_DEMO_PORT:-28815}
scripts/pg-cluster.sh start "$dir" "$port"
psql -h "$dir" -p "$port" -U postgres -X -d postgres -c "SELECT 1" >/dev/null
psql -h "$dir" -p "$port" -U postgres -X -d postgres -c "DROP DATABASE IF EXISTS tenancy_demo" -c "CREATE DATABASE tenancy_demo" >/dev/null
psql -h "$dir" -p "$port" -U postgres -X -d tenancy_demo -e -f examples/walkthrough.sql
echo
echo "The server is still running: psql -h $dir -p $port -U postgres tenancy_demo"
echo "Stop it with: scripts/pg-cluster.sh stop $dir"
