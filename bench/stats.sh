#!/usr/bin/env bash
# The cost of the live statistics (SPEC §10): pgbench against one cluster,
# restarted in turn with and without shared_preload_libraries = 'tenancy'
# (off on, on off, off on, …: drift and warm-up fall on both sides alike).
#   bench/stats.sh [ROUNDS] [LENGTH]   default 5 rounds, LENGTH 1 (a run:
#                                      100,000 × LENGTH transactions per
#                                      client of the selects, 8,000 × LENGTH
#                                      of the write mix)
#   bench/stats.sh --smoke             1 round, LENGTH 0.02 (checks it runs)
# Environment: PG_BIN (default the system PostgreSQL 15, with tenancy
# installed: bench/run.sh or cargo pgrx install --release), BENCH_DIR
# (default /tmp/tenancy-bench-stats), BENCH_PORT (default 28914),
# CLIENTS (default 2: this machine's cores).
# Prints the runs, then a Markdown section; a full run (not --smoke)
# replaces the "Live statistics" section of bench/RESULTS.md with it.
#
# Two measures per run: tps, and the server's CPU time per transaction (the
# backends' user + system time, which the postmaster collects as they exit:
# its cutime + cstime in /proc, in clock ticks).  On a machine shared with
# other work tps swings with the neighbours' load; CPU time per transaction
# much less, and it is what the hooks add.
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
length=1
smoke=false
if [ "${1:-}" = --smoke ]; then
  smoke=true; rounds=1; length=0.02
else
  rounds=${1:-5}; length=${2:-1}
fi
warm=$([ $smoke = true ] && echo 1 || echo 3)
scale=10
export PG_BIN=$bin

as_pg() { if [ "$(id -un)" = postgres ]; then "$@"; else sudo -u postgres -H -- "$@"; fi; }
q() { "$bin/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d bench "$@"; }

scripts/pg-cluster.sh stop "$dir" >/dev/null 2>&1 || true
rm -rf "$dir"
# No autovacuum: its workers' CPU time would land in the measure.
PG_CONF_EXTRA="autovacuum = off" scripts/pg-cluster.sh start "$dir" "$port" >/dev/null
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

# children_cpu: the CPU time (clock ticks) of the postmaster's exited children.
children_cpu() { awk '{ print $16 + $17 }' "/proc/$(head -1 "$dir/postmaster.pid")/stat"; }

# run WORKLOAD LENGTH: prints "tps cpu_us_per_transaction".
run() {
  local w=$1 per
  per=$(awk -v l="$2" -v w="$w" 'BEGIN { printf "%d", (w == "write-mix" ? 8000 : 100000) * l }')
  [ "$per" -lt 1 ] && per=1
  local before after t
  # Earlier backends reaped first.
  for _ in $(seq 1 100); do
    [ "$(q -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")" = 1 ] && break
    sleep 0.05
  done
  sleep 0.2
  before=$(children_cpu)
  t=$(pgbench_run "$w" -t "$per")
  for _ in $(seq 1 100); do
    [ "$(q -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")" = 1 ] && break
    sleep 0.05
  done
  sleep 0.3
  after=$(children_cpu)
  awk -v t="$t" -v d=$((after - before)) -v n=$((per * clients)) -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%s %.2f\n", t, d * 1e6 / hz / n }'
}

# pgbench_run WORKLOAD ARGS…: prints the tps.
pgbench_run() {
  local w=$1; shift
  local args
  case $w in
    select-only) args=(-S) ;;
    select-ctx) args=(-f "$scripts/select-ctx.sql") ;;
    write-mix) args=(-f "$scripts/write-mix.sql") ;;
  esac
  # The write mix as a role RLS applies to (the superuser bypasses it).
  local user=$([ "$w" = write-mix ] && echo bench_app || echo postgres)
  PGOPTIONS=$([ "$w" = select-ctx ] && echo "-c tenancy.tenant_id=$tenant1" || true) \
    "$bin/pgbench" -n -M prepared -c "$clients" -j "$clients" "$@" "${args[@]}" \
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
      pgbench_run "$w" -T "$warm" >/dev/null
      [ "$mode" = on ] && q -c "SELECT tenancy.reset_tenant_stats()" >/dev/null
      t=$(run "$w" "$length")
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

# Instructions per statement, counted by valgrind (callgrind) in a
# single-user backend (postgres --single) on the stopped cluster: exact
# where time is not, on a shared machine.  A workload's count minus the
# count of its preamble alone (start-up, shutdown), over its statements.
instructions=$dir/instructions.txt
: >"$instructions"
if command -v valgrind >/dev/null; then
  as_pg "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null
  n=$([ $smoke = true ] && echo 100 || echo 2000)
  python3 - "$scripts" "$n" <<'PY'
import os, random, sys
d, n = sys.argv[1], int(sys.argv[2])
random.seed(7)
sel = lambda: f"SELECT abalance FROM pgbench_accounts WHERE aid = {random.randint(1, 1000000)};\n"
def tx():
    t, i, v = random.randint(1, 1000), random.randint(1, 100000), random.randint(1, 10**6)
    return (f"BEGIN;\nSELECT 1 FROM tenancy.set_tenant('tnt-{t}', true);\nINSERT INTO items (v) VALUES ({v});\n"
            f"UPDATE items SET v = v + 1 WHERE id = {i};\nSELECT v FROM items WHERE id = {i};\nCOMMIT;\n")
pre = {"select-only": "", "select-ctx": "SELECT 1 FROM tenancy.set_tenant('tnt-1');\n", "write-mix": "SET ROLE bench_app;\n"}
body = {"select-only": sel, "select-ctx": sel, "write-mix": tx}
for w in pre:
    open(os.path.join(d, f"{w}.0.sql"), "w").write(pre[w])
    open(os.path.join(d, f"{w}.n.sql"), "w").write(pre[w] + "".join(body[w]() for _ in range(n)))
PY
  chmod 644 "$scripts"/*.sql
  ir() { # MODE FILE: instructions of a single-user backend running FILE
    local spl=$([ "$1" = on ] && echo tenancy || echo "")
    as_pg valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin/postgres" --single -D "$dir" \
      -c shared_preload_libraries="$spl" bench <"$2" 2>&1 >/dev/null | awk '/Collected :/ { print $NF }'
  }
  for w in $workloads; do
    for mode in off on; do
      zero=$(ir "$mode" "$scripts/$w.0.sql"); full=$(ir "$mode" "$scripts/$w.n.sql")
      echo "$mode $w $(awk -v a="$zero" -v b="$full" -v n="$n" 'BEGIN { printf "%.0f", (b - a) / n }')" | tee -a "$instructions"
    done
  done
fi

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
# col MODE WORKLOAD FIELD: the median of a field (5: tps, 6: CPU µs per transaction).
col() { awk -v m="$1" -v w="$2" -v f="$3" '$3 == m && $4 == w { print $f }' "$results" | median; }
section=$dir/section.md
{
  echo "## Live statistics: overhead of \`shared_preload_libraries = 'tenancy'\`"
  echo
  echo "Run on $(date -u +%F) by \`bench/stats.sh $([ $smoke = true ] && echo --smoke || echo "$rounds $length")\`: $(nproc) cores shared with other engineers' builds and tests (load average $(cut -d' ' -f1-3 /proc/loadavg) at the end), $("$bin/postgres" --version)."
  echo "One cluster (fsync off, autovacuum off, pgbench scale $scale, $clients clients, -M prepared), restarted with and without the preload in turn (off on, on off, …), $rounds rounds, each run after a ${warm} s warm-up; medians. CPU: the backends' user + system time per transaction (what the hooks add; tps on this shared machine swings with the neighbours' load)."
  echo
  echo "| workload | CPU µs/tx without | CPU µs/tx with | CPU ratio (without / with) | tps without | tps with | tps ratio | target |"
  echo "|---|---|---|---|---|---|---|---|"
  for w in $workloads; do
    case $w in
      select-only) label="pgbench -S, no tenant context" ;;
      select-ctx) label="pgbench -S's SELECT under a checked session context (every statement counted)" ;;
      write-mix) label="set_tenant(…, true) + INSERT + UPDATE + SELECT per transaction on an RLS table, 1,000 tenants (every statement counted)" ;;
    esac
    awk -v l="$label" -v c0="$(col off "$w" 6)" -v c1="$(col on "$w" 6)" -v t0="$(col off "$w" 5)" -v t1="$(col on "$w" 5)" \
      'BEGIN { printf "| %s | %.1f | %.1f | %.3f | %.0f | %.0f | %.3f | ≥ 0.98 |\n", l, c0, c1, c0 / c1, t0, t1, t1 / t0 }'
  done
  echo
  if [ -s "$instructions" ]; then
    echo "| workload | instructions per transaction without | with | ratio (without / with) | target |"
    echo "|---|---|---|---|---|"
    for w in $workloads; do
      awk -v w="$w" '$2 == w { v[$1] = $3 } END { printf "| %s (valgrind, single-user backend, %s) | %d | %d | %.4f | ≥ 0.98 |\n", w, "'"$n"' transactions", v["off"], v["on"], v["off"] / v["on"] }' "$instructions"
    done
    echo
  fi
  echo "- Every run (round, tps, CPU µs/tx): $(awk '{ printf "%s%s %s r%s %.0f %.1f", sep, $3, $4, $2, $5, $6; sep = "; " }' "$results")."
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
