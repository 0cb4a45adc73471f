-- Live statistics (SPEC §10), from shared memory when tenancy is in
-- shared_preload_libraries; without it the functions below raise 0A000
-- with a hint naming shared_preload_libraries (the views exist either way).
--
-- Who may read: these show every tenant's activity, so not PUBLIC
-- (sql/privileges.sql revokes PUBLIC from every table and routine of the
-- schema).  A view runs the functions it calls with the reader's
-- rights, so a reader needs SELECT on the view and EXECUTE on its function.
-- Both go to pg_read_all_stats, PostgreSQL's role for "may read every
-- session's statistics" (pg_monitor is in it), which already sees every
-- session's queries, tenant uuids included; nobody else unless a DBA grants
-- it.  reset_tenant_stats() is for the admins a DBA grants routines to.

CREATE VIEW tenancy.tenant_stats AS
SELECT s.tenant_id, t.identifier, s.statements, s.rows, s.total_time_ms, s.last_statement_at
  FROM tenancy.tenant_stats_rows() s
  LEFT JOIN tenancy.tenants t ON t.id = s.tenant_id;

COMMENT ON VIEW tenancy.tenant_stats IS
  'Top-level statements run under each tenant''s context since the last reset_tenant_stats(), for up to tenancy.stats_max_tenants tenants (least recently active evicted). Needs tenancy in shared_preload_libraries.';

-- state and query_start come from pg_stat_get_activity as the reader sees
-- it: NULL for another role's session unless the reader has
-- pg_read_all_stats, as in pg_stat_activity.
CREATE VIEW tenancy.tenant_activity AS
SELECT a.pid, a.tenant_id, t.identifier, a.since, p.state, p.query_start
  FROM tenancy.tenant_activity_rows() a
  LEFT JOIN LATERAL pg_catalog.pg_stat_get_activity(a.pid) p ON true
  LEFT JOIN tenancy.tenants t ON t.id = a.tenant_id;

COMMENT ON VIEW tenancy.tenant_activity IS
  'Every backend with a (checked) tenant context now, since when, and its state. Needs tenancy in shared_preload_libraries.';

GRANT SELECT ON tenancy.tenant_stats, tenancy.tenant_activity TO pg_read_all_stats;
GRANT EXECUTE ON FUNCTION tenancy.tenant_stats_rows(), tenancy.tenant_activity_rows() TO pg_read_all_stats;
