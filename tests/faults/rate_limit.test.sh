#!/usr/bin/env bash
# check_rate_limit is exact under concurrent callers: 8 pgbench clients make
# 160 requests at once for one tenant whose limit is 50 per window; exactly
# 50 are admitted and the other 110 get SQLSTATE 54000.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
q <<'SQL' >/dev/null
CREATE EXTENSION tenancy;
SELECT tenancy.create_tenant('busy', 'Busy', '{"rate_limit_per_minute": 50}', id => '00000000-0000-7000-8000-0000000000b5');
CREATE TABLE outcomes (admitted boolean NOT NULL);
SQL
script=$(mktemp)
cat > "$script" <<'SQL'
DO $$
BEGIN
  PERFORM tenancy.check_rate_limit('00000000-0000-7000-8000-0000000000b5');
  INSERT INTO outcomes VALUES (true);
EXCEPTION WHEN SQLSTATE '54000' THEN
  INSERT INTO outcomes VALUES (false);
END $$;
SQL
pgbench -n -c 8 -j 2 -t 20 -f "$script" "$PGDATABASE" > /dev/null
rm -f "$script"
read -r admitted refused < <(q -F ' ' -c "SELECT count(*) FILTER (WHERE admitted), count(*) FILTER (WHERE NOT admitted) FROM outcomes")
hits=$(q -c "SELECT count(*) FROM tenancy.rate_limit_hits")
echo "admitted $admitted, refused $refused, recorded hits $hits"
[ "$admitted" -eq 50 ] && [ "$refused" -eq 110 ] && [ "$hits" -eq 50 ]
