#!/usr/bin/env bash
# A real PgBouncer in transaction mode with ONE server connection, and 4
# clients alternating tenants with set_tenant(…, true), 100 transactions
# each: inside its transaction every client sees exactly its tenant's rows,
# and between transactions (no tenant) it sees none: no context crosses from
# one client to another through the shared server connection.  Nor a
# tenant's settings (SPEC §10): pool-1's statement_timeout is in force in
# pool-1's transactions only, never in the next client's on that connection.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
command -v pgbouncer >/dev/null || { echo "pgbouncer is not installed"; exit 1; }

q <<'SQL' >/dev/null
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pool_app') THEN CREATE ROLE pool_app LOGIN; END IF;
END $$;
CREATE EXTENSION tenancy;
SELECT count(tenancy.create_tenant('pool-' || i, 'Pool ' || i, id => ('00000000-0000-7000-8000-00000000000' || i)::uuid))
  FROM generate_series(1, 4) i;
CREATE TABLE items (id serial PRIMARY KEY, tenant_id uuid NOT NULL, n int);
INSERT INTO items (tenant_id, n)
SELECT ('00000000-0000-7000-8000-00000000000' || i)::uuid, g FROM generate_series(1, 4) i, generate_series(1, 10 * i) g;
SELECT tenancy.enable_rls('items');
GRANT SELECT ON items TO pool_app;
SELECT tenancy.grant_all_tenants('pool_app');
SELECT count(*) FROM tenancy.set_tenant_setting('00000000-0000-7000-8000-000000000001', 'statement_timeout', '1234ms');
SQL

dir=$(mktemp -d /tmp/tenancy-pgbouncer.XXXXXX)
port=${TENANCY_PGBOUNCER_PORT:-28819}
cat > "$dir/pgbouncer.ini" <<INI
[databases]
$PGDATABASE = host=$PGHOST port=$PGPORT dbname=$PGDATABASE
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir = $dir
auth_type = trust
auth_file = $dir/userlist.txt
pool_mode = transaction
default_pool_size = 1
max_client_conn = 20
ignore_startup_parameters = extra_float_digits,options
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
printf '"pool_app" ""\n"postgres" ""\n' > "$dir/userlist.txt"
chown -R postgres:postgres "$dir"
sudo -u postgres pgbouncer -d "$dir/pgbouncer.ini"
trap 'kill "$(cat "$dir/pgbouncer.pid" 2>/dev/null)" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 50); do [ -f "$dir/pgbouncer.pid" ] && break; sleep 0.1; done

pids=()
for k in 1 2 3 4; do
  script="$dir/client$k.sql"
  for round in $(seq 1 100); do
    cat >> "$script" <<SQL
BEGIN;
SELECT 'set', (tenancy.set_tenant('pool-$k', true)).identifier;
SELECT 'in', count(*) FILTER (WHERE tenant_id <> '00000000-0000-7000-8000-00000000000$k'), count(*) FROM items;
SELECT 'timeout_in', current_setting('statement_timeout');
COMMIT;
SELECT 'out', count(*) FROM items;
SELECT 'timeout_out', current_setting('statement_timeout');
SQL
  done
  psql -X -q -At -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U pool_app -d "$PGDATABASE" -f "$script" > "$dir/client$k.out" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done

bad=0
for k in 1 2 3 4; do
  expected="in|0|$((10 * k))"
  ins=$(grep -c '^in|' "$dir/client$k.out" || true)
  good_ins=$(grep -cx "$expected" "$dir/client$k.out" || true)
  outs=$(grep -c '^out|' "$dir/client$k.out" || true)
  good_outs=$(grep -cx 'out|0' "$dir/client$k.out" || true)
  echo "client $k: $good_ins/$ins transactions saw exactly its $((10 * k)) rows; $good_outs/$outs reads outside a transaction saw none"
  want_timeout=0; [ "$k" = 1 ] && want_timeout=1234ms
  good_tin=$(grep -cx "timeout_in|$want_timeout" "$dir/client$k.out" || true)
  good_tout=$(grep -cx 'timeout_out|0' "$dir/client$k.out" || true)
  echo "client $k: statement_timeout $want_timeout in $good_tin/100 transactions, 0 in $good_tout/100 statements after them"
  if [ "$ins" -ne 100 ] || [ "$good_ins" -ne 100 ] || [ "$outs" -ne 100 ] || [ "$good_outs" -ne 100 ] \
     || [ "$good_tin" -ne 100 ] || [ "$good_tout" -ne 100 ]; then
    bad=1; grep -v -x -e "$expected" -e 'out|0' -e "set|pool-$k" -e "timeout_in|$want_timeout" -e 'timeout_out|0' "$dir/client$k.out" | head -5
  fi
done
servers=$(grep -c "new connection to server" "$dir/pgbouncer.log" || true)
echo "server connections opened by pgbouncer: $servers"
[ "$bad" -eq 0 ]
