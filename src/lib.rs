//! tenancy: multi-tenancy inside PostgreSQL.
//!
//! The tree is the architecture, in layers; a module imports only from its
//! own layer and the layers above it in this list, never from those below:
//!
//! - `base`: errors and SQLSTATEs, pure validation rules, settings (GUCs),
//!   running SQL (`db`), SQL types, and whose rights code runs with
//!   (`security`).
//! - `catalog`: the tenant catalog's types and tables, its reads without
//!   SQL (`direct`), lookups (`tenants`) and the audit log.
//! - `context`: the tenant context (`set_tenant`, `current_tenant_id`) and
//!   the rule of who may act for a tenant (`access`).
//! - `observability`: what tenants do (SPEC §10): the live statistics in
//!   shared memory (`stats`), counted for the tenant the context checked.
//! - `isolation`: row-level security (`rls`), a tenant's schema or database
//!   (`provision`), the privileges they rest on, and migrations.
//! - `lifecycle`: creating, changing and deleting tenants, the grant
//!   functions, and search.
//! - `operations`: a tenant's data as a whole (SPEC §9): moving, exporting,
//!   importing, cloning, and where it is.
//! - `integrations`: JWT claims, rate limits.
//! - `guard`: the guard rails (SPEC §11): `doctor()`, which checks what the
//!   layers below left in a database, and `auto_rls`, which isolates new
//!   tables through `isolation::rls`.
//! - `citus`: what each layer does differently on a Citus cluster; each of
//!   its modules sits with the layer that uses it (`nodes` under `catalog`,
//!   the context's propagation under `context`, `schemas` under
//!   `isolation`, `setup` and `routing` on top).

use pgrx::prelude::*;

::pgrx::pg_module_magic!(name, version);

mod base;
mod catalog;
mod citus;
mod context;
mod guard;
mod integrations;
mod isolation;
mod lifecycle;
mod observability;
mod operations;

/// The pure rules, public for the unit tests and benches.
pub use base::validate;

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
        isolation::migrations::migration_targets,
        isolation::migrations::migrate_tenant,
        isolation::migrations::migration_check_outside_block
    ]
);
extension_sql_file!("../sql/privileges.sql", name = "privileges", finalize);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    citus::routing::init();
    base::settings::init();
    context::init();
    observability::init();
    catalog::direct::init();
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
