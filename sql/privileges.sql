-- Who may call what (SPEC §4 "Privileges").  Runs last in CREATE EXTENSION.
--
-- PUBLIC may use the schema (RLS policies call tenancy.current_tenant_id()
-- as the querying role) and the context functions, which check access
-- themselves.  Everything else is for the roles a DBA chooses:
--   GRANT EXECUTE ON ALL ROUTINES IN SCHEMA tenancy TO tenant_admin;
--   GRANT SELECT ON ALL TABLES IN SCHEMA tenancy TO tenant_auditor;

GRANT USAGE ON SCHEMA tenancy TO PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA tenancy FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA tenancy FROM PUBLIC;
REVOKE EXECUTE ON ALL ROUTINES IN SCHEMA tenancy FROM PUBLIC;
-- Held only by the roles granted a tenant (see sql/isolation.sql).
REVOKE USAGE ON TYPE tenancy.tenant_grantee FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
    tenancy.set_tenant(text, boolean),
    tenancy.clear_tenant(boolean),
    tenancy.current_tenant_id(),
    tenancy.current_tenant(),
    -- integrations (SPEC §7), which check access like set_tenant
    tenancy.set_tenant_from_claims(text, boolean),
    tenancy.check_rate_limit(uuid),
    -- pure helpers the catalog's CHECKs and index call
    tenancy.identifier_is_valid(text),
    tenancy.name_is_valid(text),
    tenancy.search_grams(text, text),
    tenancy.search_keys(text),
    tenancy.search_query_grams(text),
    tenancy.search_fold(text),
    tenancy.uuid_generate_v7()
TO PUBLIC;
