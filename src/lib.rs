//! tenancy: multi-tenancy inside PostgreSQL.
//!
//! One module per concern: `settings` (GUCs), `errors`, `validate` (pure
//! rules), `catalog` (types and tables), `db` (how SQL is run), `audit`
//! (audit rows and notifications), `tenants` (lookups), `lifecycle`
//! (changes), `access` (who may act for a tenant, grants), `context` (the
//! tenant GUC), `rls`, `provision` (schemas and databases) and `migrations`.

use pgrx::prelude::*;

::pgrx::pg_module_magic!(name, version);

mod access;
mod audit;
mod catalog;
mod citus;
mod context;
mod db;
mod direct;
mod errors;
mod fmgr;
mod integrations;
mod lifecycle;
mod migrations;
mod operations;
mod provision;
mod rls;
mod search;
mod settings;
mod sqltypes;
mod tenants;
pub mod validate;

extension_sql_file!(
    "../sql/isolation.sql",
    name = "isolation_catalog",
    requires = ["catalog"]
);
extension_sql_file!(
    "../sql/migrate.sql",
    name = "migrate",
    requires = [
        "isolation_catalog",
        migrations::migration_targets,
        migrations::migrate_tenant,
        migrations::migration_check_outside_block
    ]
);
extension_sql_file!("../sql/privileges.sql", name = "privileges", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    settings::init();
    context::init();
    direct::init();
    integrations::init();
}

#[cfg(any(test, feature = "pg_test"))]
#[path = "tests/mod.rs"]
mod tests;

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
