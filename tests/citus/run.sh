#!/usr/bin/env bash
# tenancy on a Citus cluster (SPEC §8): a coordinator and two workers on
# loopback (scripts/citus-cluster.sh), each tests/citus/*.test.sh run against
# a fresh database of the cluster, printing "test NAME ... ok|FAILED" like
# pg_regress.  Skipped, with a line saying so, where Citus is neither
# installed nor buildable from ../shared/vendor/citus.
#   tests/citus/run.sh DIR PORT
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
dir=${1:-/tmp/tenancy-test/citus}
port=${2:-28880}
pkglib=$("${PG_BIN:-/usr/lib/postgresql/15/bin}/pg_config" --pkglibdir)
if [ ! -f "$pkglib/citus.so" ]; then
  echo "citus: skipped (Citus is not installed, and ../shared/vendor/citus/build.sh was not found to build it)"
  exit 0
fi
"$root/scripts/citus-cluster.sh" stop "$dir" >/dev/null 2>&1
rm -rf "$dir"
status=0
for t in "$here"/*.test.sh; do
  name=$(basename "$t" .test.sh)
  db="citus_$name"
  if ! "$root/scripts/citus-cluster.sh" start "$dir" "$port" "$db" > "/tmp/tenancy-citus-$name.log" 2>&1; then
    echo "test $name ... FAILED"; tail -20 "/tmp/tenancy-citus-$name.log"; status=1; continue
  fi
  if PGHOST="$dir/coordinator" PGPORT=$port PGUSER=postgres PGDATABASE=$db CITUS_DIR=$dir CITUS_PORT=$port \
       bash "$t" >> "/tmp/tenancy-citus-$name.log" 2>&1; then
    echo "test $name ... ok"
  else
    echo "test $name ... FAILED"; tail -30 "/tmp/tenancy-citus-$name.log"; status=1
  fi
done
"$root/scripts/citus-cluster.sh" stop "$dir" >/dev/null 2>&1
exit $status
