-- CALL tenancy.migrate(): pending migrations to every schema tenant, one
-- transaction per tenant.  Written in PL/pgSQL because it needs what only a
-- procedure and an exception block give: COMMIT between tenants, and a
-- subtransaction per migration so that a failure is recorded, not lost.
--
-- Several sessions may run it at once: migration_claim takes a
-- transaction-level advisory lock per tenant, so each tenant is migrated by
-- exactly one of them, and re-reads what is pending once it holds the lock.
-- A session killed mid-way loses only its current tenant's transaction; the
-- ledger still says what is pending, and the next run completes it.

CREATE FUNCTION tenancy.migrate_tenant(tenant uuid) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    todo    text[];
    m       text;
    applied text[] := '{}';
    failed  text;
    err     text;
BEGIN
    todo := tenancy.migration_claim(tenant);
    IF todo IS NULL THEN
        RETURN jsonb_build_object('tenant_id', tenant, 'skipped', true);
    END IF;
    FOREACH m IN ARRAY todo LOOP
        BEGIN
            PERFORM tenancy.migration_apply(tenant, m);
            applied := applied || m;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS err = MESSAGE_TEXT;
            failed := m;
            EXIT;
        END;
    END LOOP;
    RETURN tenancy.migration_finish(tenant, applied, failed, err);
END
$$;

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
        IF result->>'failed' IS NOT NULL THEN
            RAISE WARNING 'tenancy.migrate: tenant % failed at migration %: %',
                tenant, result->>'failed', result->>'error';
        END IF;
        COMMIT;
    END LOOP;
END
$$;

COMMENT ON PROCEDURE tenancy.migrate() IS
    'Applies pending migrations to every schema tenant that is not deleted, one transaction per tenant. CALL it outside a transaction block.';
