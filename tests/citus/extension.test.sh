#!/usr/bin/env bash
# SPEC §8.1, first part: CREATE EXTENSION tenancy on the coordinator installs
# it on every worker, at the same version, in the same statement.
set -euo pipefail
q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
q -c "CREATE EXTENSION tenancy"
want=$(q -c "SELECT extversion FROM pg_extension WHERE extname = 'tenancy'")
got=$(q -c "SELECT string_agg(result, ',' ORDER BY nodeport) FROM run_command_on_workers(\$\$SELECT extversion FROM pg_extension WHERE extname = 'tenancy'\$\$)")
[ "$got" = "$want,$want" ] || { echo "workers have tenancy $got, the coordinator $want"; exit 1; }
# And DROP EXTENSION removes it everywhere.
q -c "DROP EXTENSION tenancy"
got=$(q -c "SELECT string_agg(result, ',' ORDER BY nodeport) FROM run_command_on_workers(\$\$SELECT count(*) FROM pg_extension WHERE extname = 'tenancy'\$\$)")
[ "$got" = "0,0" ] || { echo "tenancy left on workers after DROP EXTENSION: $got"; exit 1; }
echo "tenancy $want on the coordinator and both workers"
