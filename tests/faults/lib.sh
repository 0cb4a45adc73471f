# Shared by the fault tests: quiet psql that stops at the first error, and a
# fingerprint of every row tenancy keeps, for "nothing lost" comparisons.
q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }

# wait_for SQL: polls (up to 5 s) until SQL returns true.
wait_for() {
  for _ in $(seq 1 100); do
    [ "$(q -c "$1")" = t ] && return 0
    sleep 0.05
  done
  echo "timed out waiting for: $1"; return 1
}

# check_migrated_whole ROWS: every schema tenant has the migration's table
# `things`, with its ROWS rows, exactly where the ledger says the migration
# was applied: no half-migrated tenant.
check_migrated_whole() {
  q -v rows="$1" <<'SQL'
SELECT set_config('fault.rows', :'rows', false);
DO $$
DECLARE t record; has_table boolean; in_ledger boolean; n int;
BEGIN
  FOR t IN SELECT id, schema_name FROM tenancy.tenants WHERE isolation = 'schema' LOOP
    has_table := to_regclass(format('%I.things', t.schema_name)) IS NOT NULL;
    in_ledger := EXISTS (SELECT FROM tenancy.migration_ledger l WHERE l.tenant_id = t.id AND l.status = 'applied');
    IF has_table IS DISTINCT FROM in_ledger THEN
      RAISE EXCEPTION 'tenant % half-migrated: table %, ledger %', t.schema_name, has_table, in_ledger;
    END IF;
    IF has_table THEN
      EXECUTE format('SELECT count(*) FROM %I.things', t.schema_name) INTO n;
      IF n <> current_setting('fault.rows')::int THEN RAISE EXCEPTION 'tenant % has % rows', t.schema_name, n; END IF;
    END IF;
  END LOOP;
END $$;
SQL
}

# The extension's rows and the data behind them, as one text (database $1).
# Expects the fixture that populate_fixture makes.
fingerprint() {
  q -d "$1" <<'SQL'
SELECT string_agg(format('%s|%s|%s|%s|%s|%s|%s', id, identifier, name, status, isolation, schema_name, metadata), ';' ORDER BY id) FROM tenancy.tenants;
SELECT count(*), string_agg(format('%s|%s|%s', action, tenant_id, details), ',' ORDER BY id) FROM tenancy.audit_log;
SELECT string_agg(format('%s|%s', role, tenant_id), ';' ORDER BY tenant_id) FROM tenancy.tenant_grants;
SELECT string_agg(name || '|' || sql, ',' ORDER BY position) FROM tenancy.migrations;
SELECT string_agg(format('%s|%s|%s', tenant_id, migration, status), ';' ORDER BY tenant_id, migration) FROM tenancy.migration_ledger;
SELECT string_agg(format('%s|%s', tbl, tenant_column), ';') FROM tenancy.rls_tables;
SELECT string_agg(format('%s|%s', tenant_id, item), ';' ORDER BY id) FROM orders;
SELECT string_agg(body, ',') FROM tenant_schema_one.notes;
-- A DBA's grants on the lifecycle API (0.4.0 replaces create_tenant).
SELECT string_agg(format('%s|%s|%s', p.proname, a.grantee::regrole, a.is_grantable), ';' ORDER BY p.proname, a.grantee::regrole::text)
  FROM pg_proc p, aclexplode(p.proacl) a
 WHERE p.pronamespace = 'tenancy'::regnamespace AND p.proname IN ('create_tenant', 'update_tenant') AND a.grantee <> p.proowner;
SQL
}

# Two rls tenants (one suspended), a schema tenant with two migrations and a
# row, grants to the role dump_app, an RLS table with a row per tenant.
populate_fixture() {
  q -d "$1" <<'SQL' >/dev/null
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dump_app') THEN CREATE ROLE dump_app; END IF;
END $$;
-- At 0.3.0 and older, add_migration on this library waits for the update
-- (it cannot tell who calls it): the superuser registers them by hand there.
CREATE FUNCTION pg_temp.register(n text, s text) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
  PERFORM tenancy.add_migration(n, s);
EXCEPTION WHEN object_not_in_prerequisite_state THEN
  INSERT INTO tenancy.migrations (name, sql) VALUES (n, s);
END $f$;
SELECT pg_temp.register('001_notes', 'CREATE TABLE notes (id serial PRIMARY KEY, body text)');
SELECT tenancy.create_tenant('rls-one', 'RLS one', '{"plan": "pro"}', id => '00000000-0000-7000-8000-000000000001');
SELECT tenancy.create_tenant('rls-two', 'RLS two', id => '00000000-0000-7000-8000-000000000002');
SELECT tenancy.create_tenant('schema-one', 'Schema one', isolation => 'schema', id => '00000000-0000-7000-8000-000000000003');
SELECT pg_temp.register('002_tags', 'ALTER TABLE notes ADD COLUMN tags text[]');
CALL tenancy.migrate();
SELECT tenancy.merge_metadata('00000000-0000-7000-8000-000000000001', '{"seats": 5}');
SELECT tenancy.suspend_tenant('00000000-0000-7000-8000-000000000002');
SELECT tenancy.grant_tenant('dump_app', '00000000-0000-7000-8000-000000000001');
SELECT tenancy.grant_tenant('dump_app', '00000000-0000-7000-8000-000000000003');
CREATE TABLE orders (id serial PRIMARY KEY, tenant_id uuid NOT NULL, item text);
SELECT tenancy.enable_rls('orders');
INSERT INTO orders (tenant_id, item) VALUES ('00000000-0000-7000-8000-000000000001', 'anvil'),
                                            ('00000000-0000-7000-8000-000000000002', 'rocket');
GRANT SELECT, INSERT ON orders TO dump_app;
GRANT USAGE ON SEQUENCE orders_id_seq TO dump_app;
GRANT EXECUTE ON FUNCTION tenancy.create_tenant TO dump_app WITH GRANT OPTION;
GRANT EXECUTE ON FUNCTION tenancy.update_tenant TO dump_app;
INSERT INTO tenant_schema_one.notes (body) VALUES ('kept');
SQL
}

# The extension works on database $1 holding that fixture: context reaches the
# same rows as dump_app, lifecycle and migrations go on, audit ids continue.
check_fixture_works() {
  q -d "$1" <<'SQL'
SET ROLE dump_app;
SELECT identifier FROM tenancy.set_tenant('rls-one');
DO $$ BEGIN
  IF (SELECT string_agg(item, ',') FROM orders) IS DISTINCT FROM 'anvil' THEN RAISE EXCEPTION 'RLS does not filter'; END IF;
END $$;
INSERT INTO orders (item) VALUES ('added');
SELECT identifier FROM tenancy.set_tenant('schema-one');
DO $$ BEGIN
  IF (SELECT string_agg(body, ',') FROM notes) IS DISTINCT FROM 'kept' THEN RAISE EXCEPTION 'schema tenant data missing'; END IF;
END $$;
DO $$ BEGIN
  PERFORM tenancy.set_tenant('rls-two');
  RAISE EXCEPTION 'suspended tenant accepted';
EXCEPTION WHEN object_not_in_prerequisite_state THEN NULL;
END $$;
RESET ROLE;
SELECT tenancy.clear_tenant();
SELECT identifier FROM tenancy.create_tenant('after', 'After', isolation => 'schema');
SELECT tenancy.add_migration('003_more', 'CREATE TABLE more (id int)');
CALL tenancy.migrate();
DO $$ BEGIN
  IF (SELECT sum(pending) FROM tenancy.migration_status) <> 0 THEN RAISE EXCEPTION 'migrate incomplete'; END IF;
  IF (SELECT count(*) FROM orders WHERE item = 'added' AND tenant_id = '00000000-0000-7000-8000-000000000001') <> 1 THEN
    RAISE EXCEPTION 'insert under RLS did not take the tenant';
  END IF;
  IF (SELECT count(DISTINCT id) <> count(*) FROM tenancy.audit_log) THEN RAISE EXCEPTION 'audit ids reused'; END IF;
END $$;
SQL
}
