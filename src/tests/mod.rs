//! In-backend tests (`cargo pgrx test`): what is best checked from inside
//! PostgreSQL, where Rust can look at backend state directly.  The
//! pg_regress suite under tests/pg_regress covers the SQL surface.

#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn run(sql: &str) {
        Spi::run(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn one<T: IntoDatum + FromDatum>(sql: &str) -> Option<T> {
        Spi::get_one::<T>(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// SQLSTATE of the error `sql` raises, caught in a subtransaction.
    fn sqlstate_of(sql: &str) -> String {
        let quoted = pgrx::spi::quote_literal(sql);
        one::<String>(&format!(
            "DO $$ BEGIN EXECUTE {quoted}; RAISE EXCEPTION 'no error' USING ERRCODE = 'ZZ000';
               EXCEPTION WHEN OTHERS THEN PERFORM set_config('tenancy_test.state', SQLSTATE, true); END $$;
             SELECT current_setting('tenancy_test.state')"
        ))
        .unwrap_or_default()
    }

    #[pg_test]
    fn uuid_v7_ids_are_time_ordered() {
        let a: pgrx::Uuid = one("SELECT (tenancy.create_tenant('first-one', 'First')).id").unwrap();
        let b: pgrx::Uuid =
            one("SELECT (tenancy.create_tenant('second-one', 'Second')).id").unwrap();
        assert_eq!(a.as_bytes()[6] >> 4, 7, "version nibble");
        assert!(
            a.as_bytes() < b.as_bytes(),
            "later tenant sorts after earlier"
        );
    }

    /// as_owner must hand back the caller's identity and settings, also when
    /// the work inside it fails and the error is caught by the caller.
    #[pg_test]
    fn context_calls_restore_user_and_search_path() {
        run("CREATE ROLE tenancy_probe NOLOGIN");
        run("GRANT USAGE ON SCHEMA public TO tenancy_probe");
        run("SET search_path = public");
        run("SET ROLE tenancy_probe");
        // An unknown tenant raises P0002 from inside as_owner.
        assert_eq!(
            sqlstate_of("SELECT tenancy.set_tenant('no-such-tenant')"),
            "P0002"
        );
        assert_eq!(
            one::<String>("SELECT current_user::text").unwrap(),
            "tenancy_probe"
        );
        assert_eq!(one::<String>("SHOW search_path").unwrap(), "public");
        run("RESET ROLE");
    }

    /// current_tenant_id() is checked once per statement even when a query
    /// calls it once per row (the memo); the answer never outlives the
    /// transaction or a change of the GUC.
    #[pg_test]
    fn current_tenant_id_is_cheap_per_row() {
        run("SELECT tenancy.create_tenant('memo-one', 'Memo one')");
        run("SELECT tenancy.create_tenant('memo-two', 'Memo two')");
        run("SELECT tenancy.set_tenant('memo-one')");
        let n: i64 = one(
            "SELECT count(DISTINCT tenancy.current_tenant_id()) FROM generate_series(1, 100000)",
        )
        .unwrap();
        assert_eq!(n, 1);
        run("SELECT tenancy.set_tenant('memo-two')");
        let ident: String =
            one("SELECT identifier FROM tenancy.tenants WHERE id = tenancy.current_tenant_id()")
                .unwrap();
        assert_eq!(ident, "memo-two");
        // A suspension is seen by the next statement.
        run("SELECT tenancy.suspend_tenant(id) FROM tenancy.tenants WHERE identifier = 'memo-two'");
        assert_eq!(sqlstate_of("SELECT tenancy.current_tenant_id()"), "55000");
        run("SELECT tenancy.clear_tenant()");
    }

    /// The rate limit and migrate's claim hold a lock of the lock manager's
    /// userlock kind, which no SQL function takes, and no advisory lock
    /// (whose keys anyone could compute and hold).
    #[pg_test]
    fn per_tenant_locks_are_not_advisory() {
        run("SELECT tenancy.create_tenant('lock-one', 'Lock one')");
        run("SELECT tenancy.check_rate_limit((tenancy.tenant_by_identifier('lock-one')).id)");
        let advisory: i64 = one(
            "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'advisory'",
        )
        .unwrap();
        let own: i64 = one(
            "SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'userlock'",
        )
        .unwrap();
        assert_eq!((advisory, own), (0, 1));
    }

    /// Every API function given NULL for each argument raises 22023 (never an
    /// internal error).
    #[pg_test]
    fn null_arguments_are_refused_cleanly() {
        let id = "'00000000-0000-7000-8000-000000000000'::uuid";
        let calls = [
            "tenancy.create_tenant(NULL, 'x')".to_string(),
            "tenancy.create_tenant('abc', NULL)".to_string(),
            "tenancy.create_tenant('abc', 'x', NULL)".to_string(),
            "tenancy.tenant(NULL)".to_string(),
            "tenancy.tenant_by_identifier(NULL)".to_string(),
            "tenancy.list_tenants(NULL)".to_string(),
            "tenancy.list_tenants(0, NULL)".to_string(),
            "tenancy.tenant_exists(NULL)".to_string(),
            "tenancy.search_tenants(NULL)".to_string(),
            "tenancy.search_tenants('a', NULL)".to_string(),
            "tenancy.tenants_by_ids(NULL)".to_string(),
            "tenancy.update_tenant(NULL)".to_string(),
            format!("tenancy.set_status({id}, NULL)"),
            "tenancy.set_status(NULL, 'active')".to_string(),
            "tenancy.suspend_tenant(NULL)".to_string(),
            "tenancy.activate_tenant(NULL)".to_string(),
            "tenancy.bulk_set_status(NULL, 'active')".to_string(),
            "tenancy.bulk_set_status('{}', NULL)".to_string(),
            format!("tenancy.merge_metadata({id}, NULL)"),
            "tenancy.merge_metadata(NULL, '{}')".to_string(),
            format!("tenancy.remove_metadata_keys({id}, NULL)"),
            "tenancy.delete_tenant(NULL)".to_string(),
            format!("tenancy.delete_tenant({id}, NULL)"),
            "tenancy.set_tenant(NULL)".to_string(),
            "tenancy.set_tenant('abc', NULL)".to_string(),
            "tenancy.clear_tenant(NULL)".to_string(),
            "tenancy.grant_tenant(NULL, NULL)".to_string(),
            "tenancy.grant_all_tenants(NULL)".to_string(),
            "tenancy.revoke_all_tenants(NULL)".to_string(),
            "tenancy.enable_rls(NULL)".to_string(),
            "tenancy.disable_rls(NULL)".to_string(),
            "tenancy.add_migration(NULL, 'select 1')".to_string(),
            "tenancy.add_migration('m', NULL)".to_string(),
        ];
        for call in calls {
            assert_eq!(sqlstate_of(&format!("SELECT {call}")), "22023", "{call}");
        }
    }

    /// The plans behind the lookups at 100,000 tenants use indexes: the exact
    /// statements the functions run, explained with the same parameters.
    #[pg_test]
    fn lookups_use_indexes_at_100k_tenants() {
        run(
            "INSERT INTO tenancy.tenants (identifier, name, isolation, status)
             SELECT 'tenant-' || i, 'Tenant number ' || i, 'rls',
                    (CASE WHEN i % 10 = 0 THEN 'suspended' ELSE 'active' END)::tenancy.tenant_status
               FROM generate_series(1, 100000) AS i",
        );
        run("ANALYZE tenancy.tenants");
        let plan = |sql: &str| -> String {
            Spi::connect(|c| {
                c.select(&format!("EXPLAIN (COSTS OFF) {sql}"), None, &[])
                    .unwrap()
                    .map(|r| r.get::<String>(1).unwrap().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        };
        let by_identifier = plan("SELECT * FROM tenancy.tenants t WHERE t.identifier OPERATOR(pg_catalog.=) 'tenant-4242'");
        assert!(
            by_identifier.contains("Index Scan using tenants_identifier_key"),
            "{by_identifier}"
        );
        let list = plan("SELECT * FROM tenancy.tenants t WHERE t.status = 'active' ORDER BY t.created_at DESC, t.id DESC OFFSET 0 LIMIT 100");
        assert!(
            list.contains("Index Scan") && !list.contains("Sort"),
            "{list}"
        );
        let rare = plan("SELECT * FROM tenancy.tenants t WHERE t.status = 'suspended' ORDER BY t.created_at DESC, t.id DESC OFFSET 0 LIMIT 100");
        assert!(
            rare.contains("tenants_status_created_idx") && !rare.contains("Sort"),
            "{rare}"
        );
        let list_all = plan("SELECT * FROM tenancy.tenants t ORDER BY t.created_at DESC, t.id DESC OFFSET 49900 LIMIT 100");
        assert!(
            list_all.contains("tenants_created_idx") && !list_all.contains("Sort"),
            "{list_all}"
        );
        let search = plan(
            "SELECT * FROM tenancy.tenants t
              WHERE tenancy.search_keys(t.identifier) @> ARRAY['-42', '424', '242']
                AND strpos(t.identifier, 'tenant-4242') > 0",
        );
        assert!(
            search.contains("tenants_search_identifier_idx") && !search.contains("Seq Scan"),
            "{search}"
        );
        let prefix = plan(
            "SELECT * FROM tenancy.tenants t WHERE t.identifier COLLATE \"C\" >= 'tenant-42' AND t.identifier COLLATE \"C\" < 'tenant-42~'
              ORDER BY t.identifier COLLATE \"C\" LIMIT 10",
        );
        assert!(
            prefix.contains("tenants_identifier_prefix_idx") && !prefix.contains("Sort"),
            "{prefix}"
        );
        // Selective and unselective queries alike answer like index lookups
        // (the bench measures the release build; this is the debug one).
        for q in [
            "tenant-4242",
            "a",
            "t",
            "tenant",
            "number",
            "ber 9",
            "zzzz",
            "q",
            "-",
        ] {
            let started = std::time::Instant::now();
            let found: i64 = one(&format!(
                "SELECT count(*) FROM tenancy.search_tenants('{q}')"
            ))
            .unwrap();
            assert!(found >= 1 || q == "zzzz" || q == "q", "{q}: {found}");
            assert!(
                started.elapsed().as_millis() < 100,
                "search for {q} took {:?}",
                started.elapsed()
            );
        }
    }
}
