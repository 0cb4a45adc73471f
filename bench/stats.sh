#!/usr/bin/env bash
# The cost of the live statistics (SPEC §10): pgbench against one cluster,
# restarted in turn with and without shared_preload_libraries = 'tenancy'
# (off on, on off, off on, …: drift and warm-up fall on both sides alike).
#   bench/stats.sh [ROUNDS] [SECONDS]     default 5 rounds of 15 s per run
#   bench/stats.sh --smoke                1 round of 2 s (checks it runs)
# Environment: PG_BIN (default the system PostgreSQL 15, with tenancy
# installed: bench/run.sh or cargo pgrx install --release), BENCH_DIR
# (default /tmp/tenancy-bench-stats), BENCH_PORT (default 28914),
# CLIENTS (default 2: this machine's cores).
# Prints the runs, then a Markdown section; a full run (not --smoke)
# replaces the "Live statistics" section of bench/RESULTS.md with it.
#
# Workloads, every run after a 3 s warm-up on a freshly started server:
#   select-only   pgbench -S (built in): no tenant context, the hooks' floor
#   select-ctx    the same SELECT under a checked session context: every
#                 statement is counted
#   write-mix     per transaction, as a role granted every tenant:
#                 set_tenant(one of 1,000 tenants, true), INSERT, UPDATE,
#                 SELECT on an RLS table, COMMIT: every statement counted,
#                 one flush per transaction
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bin=${PG_BIN:-/usr/lib/postgresql/15/bin}
dir=${BENCH_DIR:-/tmp/tenancy-bench-stats}
port=${BENCH_PORT:-28914}
clients=${CLIENTS:-2}
rounds=5
seconds=15
smoke=false
if [ "${1:-}" = --smoke ]; then
  smoke=true; rounds=1; seconds=2
else
  rounds=${1:-5}; seconds=${2:-15}
fi
warm=$([ $smoke = true ] && echo 1 || echo 3)
scale=10
export PG_BIN=$bin

as_pg() { if [ "$(id -un)" = postgres ]; then "$@"; else sudo -u postgres -H -- "$@"; fi; }
q() { "$bin/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d bench "$@"; }

scripts/pg-cluster.sh stop "$dir" >/dev/null 2>&1 || true
rm -rf "$dir"
scripts/pg-cluster.sh start "$dir" "$port" >/dev/null
trap 'scripts/pg-cluster.sh stop "$dir" >/dev/null 2>&1' EXIT
"$bin/psql" -X -q -h "$dir" -p "$port" -U postgres -d postgres -c "CREATE DATABASE bench"
"$bin/pgbench" -i -q -s $scale -h "$dir" -p "$port" -U postgres bench >/dev/null 2>&1
q <<'SQL' >/dev/null
SET client_min_messages = error;
CREATE EXTENSION tenancy;
SELECT count(tenancy.create_tenant('tnt-' || g, 'Tenant ' || g)) FROM generate_series(1, 1000) g;
CREATE TABLE items (tenant_id uuid NOT NULL, id bigserial, v int NOT NULL, PRIMARY KEY (tenant_id, id));
SELECT tenancy.enable_rls('items');
INSERT INTO items (tenant_id, v) SELECT t.id, g FROM tenancy.tenants t, generate_series(1, 100) g;
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'bench_app') THEN CREATE ROLE bench_app LOGIN; END IF;
END $$;
GRANT SELECT, INSERT, UPDATE ON items TO bench_app;
GRANT USAGE ON SEQUENCE items_id_seq TO bench_app;
SELECT tenancy.grant_all_tenants('bench_app');
VACUUM ANALYZE;
SQL
tenant1=$(q -c "SELECT id FROM tenancy.tenants WHERE identifier = 'tnt-1'")
# The server runs as postgres: scripts go where it can read them.
scripts=$dir/scripts
as_pg mkdir -p "$scripts" 2>/dev/null || mkdir -p "$scripts"
cat >"$scripts/select-ctx.sql" <<SQL
\set aid random(1, $((100000 * scale)))
\set check random(1, 100)
\if :check = 1
SELECT tenancy.current_tenant_id();
\endif
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
SQL
cat >"$scripts/write-mix.sql" <<'SQL'
\set n random(1, 1000)
\set id random(1, 100000)
\set v random(1, 1000000)
BEGIN;
SELECT 1 FROM tenancy.set_tenant('tnt-' || :n, true);
INSERT INTO items (v) VALUES (:v);
UPDATE items SET v = v + 1 WHERE id = :id;
SELECT v FROM items WHERE id = :id;
COMMIT;
SQL

# restart on|off: the server with or without the preload.
restart() {
  if [ "$1" = on ]; then
    q -c "ALTER SYSTEM SET shared_preload_libraries = 'tenancy'"
  else
    q -c "ALTER SYSTEM RESET shared_preload_libraries"
  fi
  as_pg "$bin/pg_ctl" -D "$dir" -m fast -w restart -l "$dir/server.log" >/dev/null
}

# tps WORKLOAD SECONDS
tps() {
  local args
  case $1 in
    select-only) args=(-S) ;;
    select-ctx) args=(-f "$scripts/select-ctx.sql") ;;
    write-mix) args=(-f "$scripts/write-mix.sql") ;;
  esac
  # The write mix as a role RLS applies to (the superuser bypasses it).
  local user=$([ "$1" = write-mix ] && echo bench_app || echo postgres)
  PGOPTIONS=$([ "$1" = select-ctx ] && echo "-c tenancy.tenant_id=$tenant1" || true) \
    "$bin/pgbench" -n -M prepared -c "$clients" -j "$clients" -T "$2" "${args[@]}" \
      -h "$dir" -p "$port" -U "$user" bench 2>&1 |
    awk '/^tps = / { print $3 }'
}

workloads="select-only select-ctx write-mix"
results=$dir/results.txt
: >"$results"
shm=""
counted=""
for r in $(seq 1 "$rounds"); do
  order=$([ $((r % 2)) = 1 ] && echo "off on" || echo "on off")
  for mode in $order; do
    restart "$mode"
    for w in $workloads; do
      tps "$w" "$warm" >/dev/null
      [ "$mode" = on ] && q -c "SELECT tenancy.reset_tenant_stats()" >/dev/null
      t=$(tps "$w" "$seconds")
      echo "round $r $mode $w $t" | tee -a "$results"
      if [ "$mode" = on ] && [ "$w" = write-mix ]; then
        # Every statement of the run counted: 4 per transaction, one entry per tenant.
        counted=$(q -c "SELECT count(*) || ' tenants, ' || sum(statements) || ' statements' FROM tenancy.tenant_stats")
      fi
    done
    if [ "$mode" = on ]; then
      shm=$(q -c "SELECT size FROM pg_shmem_allocations WHERE name = 'tenancy live statistics'")
    fi
  done
done

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
section=$dir/section.md
{
  echo "## Live statistics: overhead of \`shared_preload_libraries = 'tenancy'\`"
  echo
  echo "Run on $(date -u +%F) by \`bench/stats.sh $([ $smoke = true ] && echo --smoke || echo "$rounds $seconds")\`: $(nproc) cores shared with other work, $("$bin/postgres" --version)."
  echo "One cluster (fsync off, pgbench scale $scale, $clients clients, -M prepared), restarted with and without the preload in turn, $rounds rounds of $seconds s per run after a ${warm} s warm-up; median tps."
  echo
  echo "| workload | without preload | with preload | ratio | target |"
  echo "|---|---|---|---|---|"
  for w in $workloads; do
    off=$(awk -v w="$w" '$3 == "off" && $4 == w { print $5 }' "$results" | median)
    on=$(awk -v w="$w" '$3 == "on" && $4 == w { print $5 }' "$results" | median)
    ratio=$(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.3f", a / b }')
    case $w in
      select-only) label="pgbench -S, no tenant context" ;;
      select-ctx) label="pgbench -S's SELECT under a checked session context (every statement counted)" ;;
      write-mix) label="set_tenant(…, true) + INSERT + UPDATE + SELECT per transaction, 1,000 tenants (every statement counted)" ;;
    esac
    printf '| %s | %.0f tps | %.0f tps | %s | ≥ 0.98 |\n' "$label" "$off" "$on" "$ratio"
  done
  echo
  echo "- Every run: $(awk '{ printf "%s%s %s %s %.0f", sep, $3, $4, "r" $2, $5; sep = "; " }' "$results")."
  echo "- Counted in the last write-mix run with the preload: ${counted:-?}."
  echo "- Shared memory at the default tenancy.stats_max_tenants = 10,000 (pg_shmem_allocations): ${shm:-?} bytes, fixed at start."
  echo "- Citus's citus_stat_tenants for comparison (its published figures, not measured here): 13k → 10k inserts/s (-23 %) and -17 % on select-only before its rework (citus issue 6850), 5 % on average after it (issue 6996)."
} >"$section"
echo
cat "$section"
if [ $smoke = false ]; then
  python3 - "$root/bench/RESULTS.md" "$section" <<'PY'
import re, sys
path, section = sys.argv[1], open(sys.argv[2]).read().rstrip("\n")
text = open(path).read()
begin, end = "<!-- bench/stats.sh: begin -->", "<!-- bench/stats.sh: end -->"
block = f"{begin}\n{section}\n{end}"
if begin in text:
    text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda m: block, text, flags=re.S)
else:
    text = text.rstrip("\n") + "\n\n" + block + "\n"
open(path, "w").write(text)
PY
fi
