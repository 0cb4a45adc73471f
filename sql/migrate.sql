-- CALL tenancy.migrate(): pending migrations to every schema tenant, one
-- transaction per tenant.  A procedure, because only a procedure can COMMIT
-- between tenants; each tenant's work is tenancy.migrate_tenant (in Rust,
-- src/isolation/migrations.rs), which runs each migration in a subtransaction so that
-- a failure is recorded, not lost.
--
-- Several sessions may run it at once: migrate_tenant takes a
-- transaction-level lock per tenant that only tenancy can take (see
-- db::lock_tenant), so each tenant is migrated by exactly one of them, and
-- re-reads what is pending once it holds the lock.  A tenant another session
-- is migrating is skipped with a NOTICE, and the skip is shown by
-- tenancy.migration_status.
-- A session killed mid-way loses only its current tenant's transaction; the
-- ledger still says what is pending, and the next run completes it.

COMMENT ON FUNCTION tenancy.migrate_tenant(uuid) IS
    'Applies the pending migrations of one schema tenant in the current transaction; stops at the first failure, which it records.';

CREATE PROCEDURE tenancy.migrate()
LANGUAGE plpgsql AS $$
DECLARE
    tenant uuid;
    result jsonb;
BEGIN
    PERFORM tenancy.migration_check_outside_block();
    FOR tenant IN SELECT tenancy.migration_targets() LOOP
        result := tenancy.migrate_tenant(tenant);
        IF (result->>'skipped')::boolean THEN
            RAISE NOTICE 'tenancy.migrate: tenant % skipped: %',
                COALESCE(result->>'identifier', tenant::text), result->>'reason';
        ELSIF result->>'failed' IS NOT NULL THEN
            RAISE WARNING 'tenancy.migrate: tenant % failed at migration %: %',
                tenant, result->>'failed', result->>'error';
        END IF;
        COMMIT;
    END LOOP;
END
$$;

COMMENT ON PROCEDURE tenancy.migrate() IS
    'Applies pending migrations to every schema tenant that is not deleted, one transaction per tenant. CALL it outside a transaction block.';
