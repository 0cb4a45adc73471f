#!/usr/bin/env bash
# A database with rls and schema tenants, migrations, ledger, grants, RLS
# tables and audit rows survives pg_dump -Fc / pg_restore and a plain-SQL
# dump / psql restore into fresh databases: every row back, the extension
# working, set_tenant reaching the same data.
set -euo pipefail
q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
src=$PGDATABASE
export PGOPTIONS="-c client_min_messages=warning"

q -d "$src" <<'SQL' >/dev/null
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dump_app') THEN CREATE ROLE dump_app; END IF;
END $$;
CREATE EXTENSION tenancy;
SELECT tenancy.add_migration('001_notes', 'CREATE TABLE notes (id serial PRIMARY KEY, body text)');
SELECT tenancy.create_tenant('rls-one', 'RLS one', '{"plan": "pro"}', id => '00000000-0000-7000-8000-000000000001');
SELECT tenancy.create_tenant('rls-two', 'RLS two', id => '00000000-0000-7000-8000-000000000002');
SELECT tenancy.create_tenant('schema-one', 'Schema one', isolation => 'schema', id => '00000000-0000-7000-8000-000000000003');
SELECT tenancy.add_migration('002_tags', 'ALTER TABLE notes ADD COLUMN tags text[]');
CALL tenancy.migrate();
SELECT tenancy.suspend_tenant('00000000-0000-7000-8000-000000000002');
SELECT tenancy.grant_tenant('dump_app', '00000000-0000-7000-8000-000000000001');
SELECT tenancy.grant_tenant('dump_app', '00000000-0000-7000-8000-000000000003');
CREATE TABLE orders (id serial PRIMARY KEY, tenant_id uuid NOT NULL, item text);
SELECT tenancy.enable_rls('orders');
INSERT INTO orders (tenant_id, item) VALUES ('00000000-0000-7000-8000-000000000001', 'anvil'),
                                            ('00000000-0000-7000-8000-000000000002', 'rocket');
GRANT SELECT ON orders TO dump_app;
INSERT INTO tenant_schema_one.notes (body) VALUES ('kept');
SQL

fingerprint() { # everything that must come back, as one text
  q -d "$1" <<'SQL'
SELECT string_agg(format('%s|%s|%s|%s|%s|%s', id, identifier, status, isolation, schema_name, metadata), ';' ORDER BY id) FROM tenancy.tenants;
SELECT count(*), string_agg(action, ',' ORDER BY id) FROM tenancy.audit_log;
SELECT string_agg(format('%s|%s', role, tenant_id), ';' ORDER BY tenant_id) FROM tenancy.tenant_grants;
SELECT string_agg(name, ',' ORDER BY position) FROM tenancy.migrations;
SELECT string_agg(format('%s|%s|%s', tenant_id, migration, status), ';' ORDER BY tenant_id, migration) FROM tenancy.migration_ledger;
SELECT string_agg(format('%s|%s', tbl, tenant_column), ';') FROM tenancy.rls_tables;
SELECT count(*) FROM orders;
SELECT string_agg(body, ',') FROM tenant_schema_one.notes;
SQL
}
before=$(fingerprint "$src")

check_restored() { # db
  local db=$1
  after=$(fingerprint "$db")
  if [ "$before" != "$after" ]; then
    echo "restored $db differs:"; diff <(echo "$before") <(echo "$after") || true; return 1
  fi
  # The extension works on the restored catalog: context, RLS, lifecycle, audit.
  q -d "$db" <<'SQL'
SET ROLE dump_app;
SELECT identifier FROM tenancy.set_tenant('rls-one');
DO $$ BEGIN
  IF (SELECT count(*) FROM orders) <> 1 THEN RAISE EXCEPTION 'RLS does not filter after restore'; END IF;
END $$;
SELECT identifier FROM tenancy.set_tenant('schema-one');
DO $$ BEGIN
  IF (SELECT string_agg(body, ',') FROM notes) <> 'kept' THEN RAISE EXCEPTION 'schema tenant data missing'; END IF;
END $$;
RESET ROLE;
SELECT identifier FROM tenancy.create_tenant('after-restore', 'After');
SELECT tenancy.add_migration('003_more', 'CREATE TABLE more (id int)');
CALL tenancy.migrate();
DO $$ BEGIN
  IF (SELECT sum(pending) FROM tenancy.migration_status) <> 0 THEN RAISE EXCEPTION 'migrate after restore incomplete'; END IF;
  IF (SELECT max(id) FROM tenancy.audit_log) <= (SELECT count(*) FROM tenancy.audit_log) - 3 THEN RAISE EXCEPTION 'audit ids reused'; END IF;
END $$;
SQL
  echo "restored $db: same rows, extension working"
}

dump=$(mktemp -d)
chmod 777 "$dump"
pg_dump -Fc -d "$src" -f "$dump/db.dump"
q -d postgres -c "DROP DATABASE IF EXISTS ${src}_fc" -c "CREATE DATABASE ${src}_fc"
pg_restore --exit-on-error -d "${src}_fc" "$dump/db.dump"
check_restored "${src}_fc"

pg_dump -Fp -d "$src" -f "$dump/db.sql"
q -d postgres -c "DROP DATABASE IF EXISTS ${src}_sql" -c "CREATE DATABASE ${src}_sql"
psql -X -q -v ON_ERROR_STOP=1 -d "${src}_sql" -f "$dump/db.sql" >/dev/null
check_restored "${src}_sql"

rm -rf "$dump"
q -d postgres -c "DROP DATABASE ${src}_fc" -c "DROP DATABASE ${src}_sql"
