#!/usr/bin/env bash
# tenant_usage at 100,000 tenants (SPEC §10): two shared tables of 1,000,000
# and 500,000 rows (10 and 5 per tenant); the time of tenant_usage() for
# every tenant and for one, against the hand-written GROUP BY of the same
# tables (which gives rows, not bytes), median of 5 runs each, interleaved.
# Writes bench/RESULTS-usage.md.
#   bench/usage.sh [PORT]    (a throwaway cluster under /tmp/tenancy-bench-usage)
set -euo pipefail
cd "$(dirname "$0")/.."
port=${1:-28834}
dir=/tmp/tenancy-bench-usage
scripts/pg-cluster.sh stop "$dir" >/dev/null 2>&1 || true
rm -rf "$dir"
scripts/pg-cluster.sh start "$dir" "$port" >/dev/null
trap 'scripts/pg-cluster.sh stop "$dir" >/dev/null 2>&1' EXIT
q() { psql -X -q -At -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }
q <<'SQL'
CREATE EXTENSION tenancy;
INSERT INTO tenancy.tenants (identifier, name, isolation) SELECT 'usage-' || g, 'Usage ' || g, 'rls' FROM generate_series(1, 100000) g;
CREATE TABLE orders (tenant_id uuid NOT NULL, id bigint, total numeric, note text);
CREATE TABLE events (tenant_id uuid NOT NULL, at timestamptz, payload jsonb);
SELECT tenancy.enable_rls('orders'); SELECT tenancy.enable_rls('events');
INSERT INTO orders SELECT t.id, g, g * 1.5, 'note' FROM tenancy.tenants t, generate_series(1, 10) g;
INSERT INTO events SELECT t.id, now(), '{"k": 1}' FROM tenancy.tenants t, generate_series(1, 5) g;
VACUUM ANALYZE;
SQL
one=$(q -c "SELECT id FROM tenancy.tenants WHERE identifier = 'usage-77777'")
ms() { # SQL -> milliseconds of one run
  q -c '\timing on' -c "$1" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1
}
declare -A t
for round in 1 2 3 4 5; do
  t[all]+="$(ms 'SELECT count(*) FROM tenancy.tenant_usage()') "
  t[all_hand]+="$(ms 'SELECT count(*) FROM (SELECT tenant_id, count(*) FROM orders GROUP BY 1 UNION ALL SELECT tenant_id, count(*) FROM events GROUP BY 1) x') "
  t[one]+="$(ms "SELECT count(*) FROM tenancy.tenant_usage('$one')") "
  t[one_hand]+="$(ms "SELECT (SELECT count(*) FROM orders WHERE tenant_id = '$one'), (SELECT count(*) FROM events WHERE tenant_id = '$one')") "
done
median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | sed -n 3p; }
{
  echo "# tenant_usage at 100,000 tenants"
  echo
  echo "Run on $(date -u +%F), $(nproc) cores, $(psql -X -At -h "$dir" -p "$port" -U postgres -d postgres -c 'SHOW server_version'); \`bench/usage.sh\`. Two shared tables, 1,000,000 and 500,000 rows (10 and 5 per tenant); median of 5 interleaved runs."
  echo
  echo "| call | tenancy | hand-written (rows only, no bytes) | ratio (by hand / tenancy) |"
  echo "|---|---|---|---|"
  a=$(median "${t[all]}"); ah=$(median "${t[all_hand]}"); o=$(median "${t[one]}"); oh=$(median "${t[one_hand]}")
  echo "| \`tenant_usage()\`: every tenant, 200,000 rows out | $a ms | $ah ms | $(awk -v x="$ah" -v y="$a" 'BEGIN { printf "%.2f", x / y }') |"
  echo "| \`tenant_usage(id)\`: one tenant | $o ms | $oh ms | $(awk -v x="$oh" -v y="$o" 'BEGIN { printf "%.2f", x / y }') |"
} > bench/RESULTS-usage.md
cat bench/RESULTS-usage.md
