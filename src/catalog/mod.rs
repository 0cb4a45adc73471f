//! The catalog's types and the SQL-callable validators its CHECK constraints
//! use; `sql/catalog.sql` creates the tables after these exist.

#![allow(non_camel_case_types)]

use pgrx::prelude::*;

use pgrx::heap_tuple::PgHeapTuple;

use crate::base::db;
use crate::base::validate;

pub type TenantRow = PgHeapTuple<'static, AllocatedByRust>;

/// A catalog row plus the fields Rust code decides on.
pub struct Tenant {
    pub row: TenantRow,
    pub id: pgrx::Uuid,
    pub identifier: String,
    pub status: String,
    pub isolation: String,
    pub schema_name: Option<String>,
    pub database_name: Option<String>,
}

/// The select list every statement returning tenants uses; `Tenant::from_row`
/// reads it back.  `t` is the alias of `tenancy.tenants`.
#[macro_export]
macro_rules! tenant_cols {
    () => {
        "t, t.id, t.identifier, t.status::text, t.isolation::text, t.schema_name::text, t.database_name::text"
    };
}

impl Tenant {
    pub fn from_row(r: &db::Row) -> Tenant {
        Tenant {
            row: r.must(1),
            id: r.must(2),
            identifier: r.must(3),
            status: r.must(4),
            isolation: r.must(5),
            schema_name: r.get(6),
            database_name: r.get(7),
        }
    }
}

pub mod audit;
pub mod direct;
pub mod tenants;

thread_local! {
    static CHANGES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts a change tenancy made to the catalog in this backend (every
/// audited change, a migration recorded).  What the context's memos of a
/// check key on (context::Epoch), so that none outlives a change, even
/// within one statement.
pub fn changed() {
    CHANGES.with(|c| c.set(c.get().wrapping_add(1)));
}

/// The count [`changed`] moves.
pub fn changes() -> u64 {
    CHANGES.with(|c| c.get())
}

/// `tenancy.tenant_status`, in lifecycle order.
#[derive(PostgresEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum tenant_status {
    provisioning,
    active,
    suspended,
    deleted,
}

impl tenant_status {
    pub fn as_str(self) -> &'static str {
        match self {
            tenant_status::provisioning => "provisioning",
            tenant_status::active => "active",
            tenant_status::suspended => "suspended",
            tenant_status::deleted => "deleted",
        }
    }
}

/// `tenancy.isolation`: how a tenant's data is kept apart.
#[derive(PostgresEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum isolation {
    schema,
    rls,
    database,
}

impl isolation {
    pub fn as_str(self) -> &'static str {
        match self {
            isolation::schema => "schema",
            isolation::rls => "rls",
            isolation::database => "database",
        }
    }
}

/// True when `identifier` is a valid tenant slug (used by the catalog's CHECK).
#[pg_extern(immutable, strict, parallel_safe)]
fn identifier_is_valid(identifier: &str) -> bool {
    validate::check_identifier(identifier).is_ok()
}

/// True when `name` is a valid tenant name (used by the catalog's CHECK).
#[pg_extern(immutable, strict, parallel_safe)]
fn name_is_valid(name: &str) -> bool {
    validate::check_name(name).is_ok()
}

/// Index keys of `search_tenants` in 0.1.0 and 0.2.0 (see `validate::search_grams`).
#[pg_extern(immutable, strict, parallel_safe)]
fn search_grams(identifier: &str, name: &str) -> Vec<String> {
    validate::search_grams(identifier, name)
}

/// Index keys of `search_tenants` from 0.3.0 on (see `validate::search_keys`).
#[pg_extern(immutable, strict, parallel_safe)]
fn search_keys(value: &str) -> Vec<String> {
    validate::search_keys(value)
}

/// The keys a search query must find (see `validate::query_grams`).
#[pg_extern(immutable, strict, parallel_safe)]
fn search_query_grams(query: &str) -> Vec<String> {
    validate::query_grams(query)
}

/// Case folding used by `search_tenants`.
#[pg_extern(immutable, strict, parallel_safe)]
fn search_fold(value: &str) -> String {
    validate::search_fold(value)
}

/// A new time-ordered (version 7) uuid: tenant ids sort by creation, which
/// keeps the primary key's inserts at the right edge of the index.
#[pg_extern(volatile, parallel_safe)]
fn uuid_generate_v7() -> pgrx::Uuid {
    pgrx::Uuid::from_bytes(*uuid::Uuid::now_v7().as_bytes())
}

extension_sql_file!(
    "../../sql/catalog.sql",
    name = "catalog",
    requires = [
        tenant_status,
        isolation,
        identifier_is_valid,
        name_is_valid,
        search_grams,
        search_keys,
        uuid_generate_v7
    ]
);
