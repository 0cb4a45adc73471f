#!/usr/bin/env bash
# Live statistics (SPEC §10) on two servers of their own, since
# shared_preload_libraries is set at server start:
#   PORT      tenancy preloaded, tenancy.stats_max_tenants = 4
#   PORT + 1  tenancy not preloaded
#   tests/observability/run.sh [WORKDIR] [PORT]
# WORKDIR defaults to /tmp/tenancy-test/observability, PORT to 28912
# (scripts/test.sh passes its own port + 96).  PG_BIN: PostgreSQL's bin
# directory (default the system PostgreSQL 15), with tenancy installed.
# Prints "test NAME ... ok|FAILED" lines like pg_regress; exits 1 on a failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
work=${1:-/tmp/tenancy-test/observability}
port=${2:-28912}
export PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
pre=$work/pre
plain=$work/plain

mkdir -p "$work"
chmod 755 "$work"
for d in "$pre" "$plain"; do scripts/pg-cluster.sh stop "$d" >/dev/null 2>&1; rm -rf "$d"; done
PG_CONF_EXTRA="shared_preload_libraries = 'tenancy'
tenancy.stats_max_tenants = 4" scripts/pg-cluster.sh start "$pre" "$port" >/dev/null || exit 1
scripts/pg-cluster.sh start "$plain" $((port + 1)) >/dev/null || exit 1
trap 'scripts/pg-cluster.sh stop "$pre"; scripts/pg-cluster.sh stop "$plain"' EXIT

# q [psql args...]: the preloaded server's database obs as the superuser,
# stopping at the first error.  Q: the same on the server without preload.
q() { "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$pre" -p "$port" -U postgres -d obs "$@"; }
Q() { "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$plain" -p $((port + 1)) -U postgres -d obs "$@"; }

# expect_error SQLSTATE SQL [psql args]: SQL fails with that SQLSTATE.
expect_error() {
  local state=$1 sql=$2; shift 2
  local out
  out=$(q "$@" -v VERBOSITY=verbose -c "$sql" 2>&1) && { echo "no error from: $sql"; return 1; }
  grep -q "ERROR:  $state:" <<<"$out" || { echo "expected $state from: $sql; got: $out"; return 1; }
}

# eq WHAT GOT WANT
eq() {
  [ "$2" = "$3" ] && return 0
  echo "$1: got '$2', want '$3'"; return 1
}

wait_for() {
  for _ in $(seq 1 100); do
    [ "$(q -c "$1")" = t ] && return 0
    sleep 0.05
  done
  echo "timed out waiting for: $1"; return 1
}

A=00000000-0000-7000-8000-00000000000a
B=00000000-0000-7000-8000-00000000000b
C=00000000-0000-7000-8000-00000000000c

setup() {
  for f in q Q; do
    "$PG_BIN/psql" -X -q -h "$([ $f = q ] && echo "$pre" || echo "$plain")" \
      -p "$([ $f = q ] && echo "$port" || echo $((port + 1)))" -U postgres -d postgres -c "CREATE DATABASE obs" || return 1
    $f <<SQL >/dev/null || return 1
SET client_min_messages = error;
CREATE EXTENSION tenancy;
SELECT tenancy.create_tenant('acme', 'Acme', id => '$A');
SELECT tenancy.create_tenant('bolt', 'Bolt', id => '$B');
SELECT tenancy.create_tenant('cafe', 'Cafe', id => '$C');
CREATE TABLE items (tenant_id uuid NOT NULL, id serial, v int, PRIMARY KEY (tenant_id, id));
SELECT tenancy.enable_rls('items');
DO \$\$ BEGIN
  CREATE ROLE obs_app LOGIN; CREATE ROLE obs_mon LOGIN IN ROLE pg_read_all_stats; CREATE ROLE obs_admin LOGIN;
EXCEPTION WHEN duplicate_object THEN NULL; END \$\$;
GRANT SELECT, INSERT ON items TO obs_app;
GRANT USAGE ON SEQUENCE items_id_seq TO obs_app;
SELECT tenancy.grant_tenant('obs_app', '$A');
GRANT EXECUTE ON ALL ROUTINES IN SCHEMA tenancy TO obs_admin;
GRANT SELECT ON ALL TABLES IN SCHEMA tenancy TO obs_admin;
-- Three nested statements and an error caught inside: one top-level statement.
CREATE FUNCTION obs_nested() RETURNS int LANGUAGE plpgsql AS \$\$
BEGIN
  INSERT INTO items (v) VALUES (1);
  INSERT INTO items (v) VALUES (2);
  BEGIN PERFORM 1 / 0; EXCEPTION WHEN division_by_zero THEN NULL; END;
  INSERT INTO items (v) VALUES (3);
  RETURN 3;
END \$\$;
SQL
  done
}

# The counts as one line: identifier:statements:rows, by identifier.
stats() { q -c "SELECT coalesce(string_agg(identifier || ':' || statements || ':' || rows, ',' ORDER BY identifier), '') FROM tenancy.tenant_stats"; }

test_without_preload() {
  local sql
  for sql in "SELECT * FROM tenancy.tenant_stats" "SELECT * FROM tenancy.tenant_activity" "SELECT tenancy.reset_tenant_stats()"; do
    Q <<SQL || return 1
DO \$\$ DECLARE hint text; BEGIN
  PERFORM * FROM ($sql) s;
  RAISE EXCEPTION 'no error from: $sql';
EXCEPTION WHEN feature_not_supported THEN
  GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
  IF hint NOT LIKE '%shared_preload_libraries%' THEN RAISE EXCEPTION 'hint without shared_preload_libraries: %', hint; END IF;
END \$\$;
SQL
  done
  # Everything else works as before.
  eq "context without preload" "$(Q -c "SELECT identifier FROM tenancy.set_tenant('acme')" -c "INSERT INTO items (v) VALUES (1)" \
        -c "SELECT count(*) FROM items" -c "SELECT tenancy.current_tenant_id()")" "acme
1
$A"
}

test_exact_counts() {
  q -c "SELECT tenancy.reset_tenant_stats()" >/dev/null || return 1
  eq "after reset" "$(stats)" "" || return 1
  # acme, a session-level context: 6 statements, 9 rows.  A statement
  # failing in the executor (not at plan time: 1 / 0 would), transaction control, clear_tenant's statement and what
  # follows it do not count; nested statements count as their top-level one.
  "$PG_BIN/psql" -X -q -At -h "$pre" -p "$port" -U postgres -d obs <<'SQL' >/dev/null 2>&1
SELECT tenancy.set_tenant('acme');
INSERT INTO items (v) SELECT generate_series(1, 5);
SELECT count(*) FROM items;
SELECT obs_nested();
DO $$ BEGIN PERFORM 1; PERFORM 2; END $$;
SELECT 1 / (count(*) - count(*)) FROM items;
BEGIN;
SAVEPOINT s;
SELECT 1 / (count(*) - count(*)) FROM items;
ROLLBACK TO s;
\! sleep 1
SELECT 2;
COMMIT;
SELECT tenancy.clear_tenant();
SELECT 3;
SQL
  # bolt, set_tenant(…, true) per transaction from 2 clients, over the
  # simple and the extended protocol: 2 statements and 2 rows each.
  local script=$work/bolt.sql
  printf '%s\n' "BEGIN;" "SELECT tenancy.set_tenant('bolt', true);" "SELECT count(*) FROM items;" "COMMIT;" >"$script"
  for mode in simple prepared; do
    "$PG_BIN/pgbench" -n -h "$pre" -p "$port" -U postgres -c 2 -t 25 -M $mode -f "$script" obs >/dev/null 2>&1 || { echo "pgbench failed"; return 1; }
  done
  # cafe, set by hand: counted from the statement that checks it on.  A
  # uuid set by hand that nothing checked creates no entry.
  q <<SQL >/dev/null || return 1
SET tenancy.tenant_id = '6f1d0c3e-9a43-4c1b-8d7e-2b9e5d1a7c40';
SELECT 1;
SELECT 2;
SET tenancy.tenant_id = '$C';
SELECT 1;
SELECT tenancy.current_tenant_id();
SELECT 2;
SQL
  eq "counts" "$(stats)" "acme:6:9,bolt:200:200,cafe:2:2" || return 1
  # Each statement's own time: not the second between the failed one and
  # the next (a statement that failed is timed no further).
  eq "acme's time under a second" "$(q -c "SELECT total_time_ms < 900 FROM tenancy.tenant_stats WHERE identifier = 'acme'")" t || return 1
  eq "time and last statement" "$(q -c "SELECT bool_and(total_time_ms > 0 AND last_statement_at BETWEEN now() - interval '1 minute' AND now()) FROM tenancy.tenant_stats")" t
}

test_activity() {
  # One session goes through: acme (session), cleared, bolt (transaction),
  # committed; another watches tenant_activity.
  "$PG_BIN/psql" -X -q -At -h "$pre" -p "$port" -U postgres -d obs <<'SQL' >/dev/null 2>&1 &
SET application_name = 'obs_act';
SELECT tenancy.set_tenant('acme');
SELECT pg_sleep(1.5);
SELECT tenancy.clear_tenant();
SELECT pg_sleep(1.51);
BEGIN;
SELECT tenancy.set_tenant('bolt', true);
SELECT pg_sleep(1.52);
COMMIT;
SELECT pg_sleep(1.53);
SQL
  local bg=$!
  local who="FROM tenancy.tenant_activity a JOIN pg_stat_activity s USING (pid) WHERE s.application_name = 'obs_act'"
  wait_for "SELECT EXISTS (SELECT $who AND a.identifier = 'acme' AND a.tenant_id = '$A' AND a.state = 'active' AND a.since <= now())" || return 1
  wait_for "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'obs_act' AND query = 'SELECT pg_sleep(1.51);')" || return 1
  eq "after clear_tenant" "$(q -c "SELECT count(*) $who")" 0 || return 1
  wait_for "SELECT EXISTS (SELECT $who AND a.identifier = 'bolt' AND s.query = 'SELECT pg_sleep(1.52);')" || return 1
  wait_for "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'obs_act' AND query = 'SELECT pg_sleep(1.53);')" || return 1
  eq "after the transaction of set_tenant(…, true)" "$(q -c "SELECT count(*) $who")" 0 || return 1
  wait "$bg"
  # Gone with its backend.
  eq "after the session" "$(q -c "SELECT count(*) FROM tenancy.tenant_activity WHERE pid <> pg_backend_pid()")" 0
}

test_privileges() {
  # A role that may act for acme: its statements count, but it reads no
  # one's statistics and resets nothing.
  q -c "SELECT tenancy.reset_tenant_stats()" >/dev/null || return 1
  q -U obs_app -c "SELECT 1 FROM tenancy.set_tenant('acme')" -c "INSERT INTO items (v) VALUES (7)" >/dev/null || return 1
  expect_error 42501 "SELECT * FROM tenancy.tenant_stats" -U obs_app || return 1
  expect_error 42501 "SELECT * FROM tenancy.tenant_stats_rows()" -U obs_app || return 1
  expect_error 42501 "SELECT * FROM tenancy.tenant_activity" -U obs_app || return 1
  expect_error 42501 "SELECT * FROM tenancy.tenant_activity_rows()" -U obs_app || return 1
  expect_error 42501 "SELECT tenancy.reset_tenant_stats()" -U obs_app || return 1
  # pg_read_all_stats reads, and does not reset.
  eq "obs_mon reads" "$(q -U obs_mon -c "SELECT statements FROM tenancy.tenant_stats WHERE identifier = 'acme'")" 2 || return 1
  q -U obs_mon -c "SELECT count(*) FROM tenancy.tenant_activity" >/dev/null || return 1
  expect_error 42501 "SELECT tenancy.reset_tenant_stats()" -U obs_mon || return 1
  # An admin granted the routines resets.
  q -U obs_admin -c "SELECT tenancy.reset_tenant_stats()" >/dev/null || return 1
  eq "after the admin's reset" "$(stats)" ""
}

test_eviction_and_flood() {
  local shm_before shm_after i
  shm_before=$(q -c "SELECT size FROM pg_shmem_allocations WHERE name = 'tenancy live statistics'")
  q -c "SELECT tenancy.reset_tenant_stats()" >/dev/null || return 1
  q <<'SQL' >/dev/null || return 1
SELECT tenancy.create_tenant('t-1', 'T1'), tenancy.create_tenant('t-2', 'T2'), tenancy.create_tenant('t-3', 'T3'),
       tenancy.create_tenant('t-4', 'T4'), tenancy.create_tenant('t-5', 'T5');
SQL
  # At 4 tenants, t-5 evicts t-2, the least recently active (t-1 was again).
  for i in 1 2 3 4 1 5; do
    q -c "SELECT 1 FROM tenancy.set_tenant('t-$i')" >/dev/null || return 1
  done
  eq "after eviction" "$(stats)" "t-1:2:2,t-3:1:1,t-4:1:1,t-5:1:1" || return 1
  # 300 uuids set by hand, each with statements after it: nothing counted,
  # nobody evicted.
  { for i in $(seq 1 300); do
      printf "SET tenancy.tenant_id = '%s';\nSELECT 1;\nSELECT 2;\n" "$(cat /proc/sys/kernel/random/uuid)"
    done; } | q >/dev/null || return 1
  eq "after a flood of uuids set by hand" "$(stats)" "t-1:2:2,t-3:1:1,t-4:1:1,t-5:1:1" || return 1
  shm_after=$(q -c "SELECT size FROM pg_shmem_allocations WHERE name = 'tenancy live statistics'")
  [ -n "$shm_before" ] && eq "shared memory" "$shm_after" "$shm_before" || return 1
  echo "shared memory at stats_max_tenants = 4: $shm_after bytes"
}

status=0
run() {
  local name=$1
  if "test_$name" >"$work/$name.log" 2>&1; then
    echo "test $name ... ok"
  else
    echo "test $name ... FAILED"; tail -20 "$work/$name.log"; status=1
  fi
}
if ! setup >"$work/setup.log" 2>&1; then
  echo "test setup ... FAILED"; tail -20 "$work/setup.log"; exit 1
fi
run without_preload
run exact_counts
run activity
run privileges
run eviction_and_flood
exit $status
