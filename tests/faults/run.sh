#!/usr/bin/env bash
# Fault-injection tests: each tests/faults/*.test.sh gets a fresh database on
# the running test cluster (PGHOST/PGPORT/PGUSER) and exits 0 on success.
# Prints "test NAME ... ok|FAILED" lines like pg_regress.
set -uo pipefail
cd "$(dirname "$0")"
status=0
for t in *.test.sh; do
  name=${t%.test.sh}
  db="fault_$name"
  PGOPTIONS="-c client_min_messages=warning" psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
  if PGDATABASE=$db bash "$t" > "/tmp/tenancy-fault-$name.log" 2>&1; then
    echo "test $name ... ok"
  else
    echo "test $name ... FAILED"; tail -30 "/tmp/tenancy-fault-$name.log"; status=1
  fi
done
exit $status
