-- Integrations (SPEC §7): set_tenant_from_claims for PostgREST, and the
-- per-tenant rate limit.
\set VERBOSITY verbose
CREATE EXTENSION tenancy;
\set a '''00000000-0000-7000-8000-00000000000a'''
SELECT identifier FROM tenancy.create_tenant('acme', 'Acme', '{"rate_limit_per_minute": 3}', id => :a);
SELECT identifier FROM tenancy.create_tenant('globex', 'Globex', id => '00000000-0000-7000-8000-00000000000b');

-- set_tenant_from_claims reads request.jwt.claims (as PostgREST sets it).
SELECT tenancy.set_tenant_from_claims();
BEGIN;
SELECT set_config('request.jwt.claims', '{"sub": "u1", "tenant_id": "acme"}', true) IS NOT NULL AS claims_set;
SELECT identifier FROM tenancy.set_tenant_from_claims();
SELECT tenancy.current_tenant_id();
COMMIT;
SELECT tenancy.current_tenant_id() IS NULL AS local_by_default;
BEGIN;
SELECT set_config('request.jwt.claims', '{"org": "00000000-0000-7000-8000-00000000000b"}', true) IS NOT NULL AS claims_set;
SELECT identifier FROM tenancy.set_tenant_from_claims('org', false);
COMMIT;
SELECT tenancy.current_tenant_id();
SELECT tenancy.clear_tenant();
BEGIN;
SELECT set_config('request.jwt.claims', '{"sub": "u1"}', true) IS NOT NULL AS claims_set;
SELECT tenancy.set_tenant_from_claims();
ROLLBACK;
BEGIN;
SELECT set_config('request.jwt.claims', '{"tenant_id": 42}', true) IS NOT NULL AS claims_set;
SELECT tenancy.set_tenant_from_claims();
ROLLBACK;
BEGIN;
SELECT set_config('request.jwt.claims', 'not json', true) IS NOT NULL AS claims_set;
SELECT tenancy.set_tenant_from_claims();
ROLLBACK;
BEGIN;
SELECT set_config('request.jwt.claims', '{"tenant_id": "nobody"}', true) IS NOT NULL AS claims_set;
SELECT tenancy.set_tenant_from_claims();
ROLLBACK;
SELECT status FROM tenancy.suspend_tenant('00000000-0000-7000-8000-00000000000b');
BEGIN;
SELECT set_config('request.jwt.claims', '{"tenant_id": "globex"}', true) IS NOT NULL AS claims_set;
SELECT tenancy.set_tenant_from_claims();
ROLLBACK;
SELECT status FROM tenancy.activate_tenant('00000000-0000-7000-8000-00000000000b');

-- check_rate_limit: the tenant's metadata limit (3 here) per window.
SELECT tenancy.check_rate_limit(:a);
SELECT tenancy.check_rate_limit(:a);
SELECT tenancy.check_rate_limit(:a);
CREATE FUNCTION pg_temp.limited(t uuid) RETURNS text LANGUAGE plpgsql AS $$
DECLARE state text; detail text;
BEGIN
  PERFORM tenancy.check_rate_limit(t);
  RETURN 'admitted';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, detail = PG_EXCEPTION_DETAIL;
  RETURN state || ', detail ' || CASE WHEN detail ~ '^Retry after [0-9]+ seconds\.$' THEN 'says when to retry' ELSE detail END;
END $$;
SELECT pg_temp.limited(:a);
\set VERBOSITY terse
SELECT tenancy.check_rate_limit(:a);
\set VERBOSITY verbose
-- The current tenant when no id is given; the GUC default when metadata has none.
SET tenancy.rate_limit_per_minute = 2;
SELECT identifier FROM tenancy.set_tenant('globex');
SELECT tenancy.check_rate_limit();
SELECT tenancy.check_rate_limit();
SELECT pg_temp.limited(NULL);
SELECT tenancy.clear_tenant();
SELECT tenancy.check_rate_limit();
-- The window slides.
SET tenancy.rate_limit_window = '1s';
SELECT pg_sleep(1.1);
SELECT pg_temp.limited(:a);
SHOW tenancy.rate_limit_window;
-- Bad input.
SELECT tenancy.check_rate_limit('00000000-0000-7000-8000-0000000000ff');
\set VERBOSITY sqlstate
SET tenancy.rate_limit_per_minute = 0;
SET tenancy.rate_limit_window = -1;
\set VERBOSITY verbose
-- A role may only count requests of tenants it may act for.
CREATE ROLE tenancy_limited NOLOGIN;
SET ROLE tenancy_limited;
SELECT tenancy.check_rate_limit(:a);
-- ... nor raise the limit or shrink the window for itself (superuser settings).
\set VERBOSITY sqlstate
SET tenancy.rate_limit_per_minute = 1000000;
SET tenancy.rate_limit_window = 1;
\set VERBOSITY verbose
RESET ROLE;
DROP ROLE tenancy_limited;
-- Only an active tenant's requests are counted (55000, as for set_tenant).
SELECT status FROM tenancy.suspend_tenant(:a);
SELECT tenancy.check_rate_limit(:a);

DROP EXTENSION tenancy;
