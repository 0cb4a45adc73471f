//! Reading the catalog: the lookups of SPEC §2, and the `Tenant` value the
//! rest of the crate passes around.
//!
//! The API functions are SECURITY DEFINER with a pinned search_path: PUBLIC
//! cannot read `tenancy.tenants`, and a role given EXECUTE on a function needs
//! no privilege on the table behind it.

pub use super::{Tenant, TenantRow};
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::base::db::{self, Mode};
use crate::base::errors::{self, required};
use crate::base::fmgr;
use crate::catalog::direct;
use crate::catalog::tenant_status;

/// Which snapshot a lookup in `mode` reads with, when it can skip SPI.
fn direct_snapshot(mode: Mode) -> Option<direct::Snapshot> {
    match mode {
        Mode::Read => Some(direct::Snapshot::Statement),
        Mode::Latest => Some(direct::Snapshot::Latest),
        // A writer must see its own earlier changes: that takes SPI's command counter.
        Mode::Write => None,
    }
}

pub fn find_by_id(id: pgrx::Uuid, mode: Mode) -> Option<Tenant> {
    if let Some(snapshot) = direct_snapshot(mode) {
        return direct::tenant(direct::Key::Id(id), snapshot);
    }
    db::query_one(
        concat!(
            "SELECT ",
            tenant_cols!(),
            " FROM tenancy.tenants t WHERE t.id OPERATOR(pg_catalog.=) $1"
        ),
        mode,
        &[id.into()],
        Tenant::from_row,
    )
}

pub fn find_by_identifier(identifier: &str, mode: Mode) -> Option<Tenant> {
    if let Some(snapshot) = direct_snapshot(mode) {
        return direct::tenant(direct::Key::Identifier(identifier), snapshot);
    }
    db::query_one(
        concat!(
            "SELECT ",
            tenant_cols!(),
            " FROM tenancy.tenants t WHERE t.identifier OPERATOR(pg_catalog.=) $1"
        ),
        mode,
        &[identifier.into()],
        Tenant::from_row,
    )
}

/// Locks the tenant's row for the rest of the transaction and returns it.
pub fn lock(id: pgrx::Uuid) -> Tenant {
    db::query_one(
        concat!(
            "SELECT ",
            tenant_cols!(),
            " FROM tenancy.tenants t WHERE t.id OPERATOR(pg_catalog.=) $1 FOR UPDATE"
        ),
        Mode::Write,
        &[id.into()],
        Tenant::from_row,
    )
    .unwrap_or_else(|| errors::tenant_not_found(id).raise())
}

pub fn rows(
    tenants: Vec<Tenant>,
) -> SetOfIterator<'static, pgrx::composite_type!('static, "tenants")> {
    SetOfIterator::new(tenants.into_iter().map(|t| t.row))
}

pub fn check_limit(value: Option<i32>, arg: &str) -> i64 {
    let v = required(value, arg);
    if v < 0 {
        errors::invalid(format!("\"{arg}\" must not be negative, got {v}")).raise();
    }
    v as i64
}

// `tenant`, `tenant_by_identifier` and `tenant_exists` run no SQL (an index
// probe through `direct`), so they need neither SECURITY DEFINER nor a pinned
// search_path: EXECUTE, revoked from PUBLIC, is what guards them.

// The three read functions below are hand-written C entry points (see
// `fmgr`); their SQL definitions are the ones pgrx generated for 0.1.0.
extension_sql!(
    r#"
CREATE FUNCTION tenancy."tenant"("id" uuid) RETURNS tenancy.tenants
STABLE LANGUAGE c AS 'MODULE_PATHNAME', 'tenant_wrapper';
CREATE FUNCTION tenancy."tenant_by_identifier"("identifier" text) RETURNS tenancy.tenants
STABLE LANGUAGE c AS 'MODULE_PATHNAME', 'tenant_by_identifier_wrapper';
CREATE FUNCTION tenancy."list_tenants"("skip" integer DEFAULT 0, "limit" integer DEFAULT 100,
                                        "status" tenancy.tenant_status DEFAULT NULL)
RETURNS SETOF tenancy.tenants
STABLE LANGUAGE c AS 'MODULE_PATHNAME', 'list_tenants_wrapper';
"#,
    name = "read_functions",
    requires = ["catalog"]
);

crate::fmgr_v1!(pg_finfo_tenant_wrapper);
crate::fmgr_v1!(pg_finfo_tenant_by_identifier_wrapper);
crate::fmgr_v1!(pg_finfo_list_tenants_wrapper);

/// `tenant(id)`: one tenant by id, or P0002.
#[no_mangle]
#[pg_guard]
pub unsafe extern "C-unwind" fn tenant_wrapper(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    let id = required(fmgr::arg(fcinfo, 0), "id");
    direct::tenant_datum(
        direct::Key::Datum(id, direct::Column::Id),
        direct::Snapshot::Statement,
    )
    .unwrap_or_else(|| {
        errors::tenant_not_found(
            pgrx::Uuid::from_datum(id, false).unwrap_or_else(|| pgrx::Uuid::from_bytes([0; 16])),
        )
        .raise()
    })
}

/// `tenant_by_identifier(identifier)`: one tenant by identifier, or P0002;
/// a malformed identifier is 22023, not "not found".
#[no_mangle]
#[pg_guard]
pub unsafe extern "C-unwind" fn tenant_by_identifier_wrapper(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let datum = required(fmgr::arg(fcinfo, 0), "identifier");
    let identifier: &str = <&str>::from_datum(datum, false).unwrap_or_default();
    crate::catalog::tenants::check_identifier(identifier);
    direct::tenant_datum(
        direct::Key::Datum(datum, direct::Column::Identifier),
        direct::Snapshot::Statement,
    )
    .unwrap_or_else(|| {
        errors::tenant_not_found(format!("\"{}\"", errors::shown(identifier))).raise()
    })
}

/// `list_tenants(skip, limit, status)`: a page of tenants, newest first,
/// ties by id descending (stable pages); an ordered index walk, no SQL.
#[no_mangle]
#[pg_guard]
pub unsafe extern "C-unwind" fn list_tenants_wrapper(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let skip = check_limit(fmgr::arg(fcinfo, 0).map(|d| d.value() as i32), "skip");
    let limit = check_limit(fmgr::arg(fcinfo, 1).map(|d| d.value() as i32), "limit");
    let status = fmgr::arg(fcinfo, 2);
    fmgr::return_set(fcinfo, |put| direct::page(skip, limit, status, put))
}

/// How many tenants there are (with the given status).
#[pg_extern(stable, security_definer, requires = ["catalog"])]
#[search_path(pg_catalog, pg_temp)]
fn count_tenants(status: default!(Option<tenant_status>, "NULL")) -> i64 {
    let n = match status {
        None => db::query_one(
            "SELECT pg_catalog.count(*) FROM tenancy.tenants",
            Mode::Read,
            &[],
            |r| r.must::<i64>(1),
        ),
        Some(s) => db::query_one(
            "SELECT pg_catalog.count(*) FROM tenancy.tenants t
              WHERE t.status OPERATOR(pg_catalog.=) $1::tenancy.tenant_status",
            Mode::Read,
            &[s.as_str().into()],
            |r| r.must::<i64>(1),
        ),
    };
    n.unwrap_or(0)
}

/// Whether a tenant with this id exists (in any status).
#[pg_extern(stable, requires = ["catalog"])]
fn tenant_exists(id: Option<pgrx::Uuid>) -> bool {
    find_by_id(required(id, "id"), Mode::Read).is_some()
}

/// The tenants with these ids, in the order given; unknown ids are skipped
/// and a repeated id comes back once, at its first position.
#[pg_extern(stable, security_definer, requires = ["catalog"])]
#[search_path(pg_catalog, pg_temp)]
fn tenants_by_ids(
    ids: Option<Vec<Option<pgrx::Uuid>>>,
) -> SetOfIterator<'static, pgrx::composite_type!('static, "tenants")> {
    let ids = required(ids, "ids");
    rows(by_ids(ids, Mode::Read))
}

pub fn by_ids(ids: Vec<Option<pgrx::Uuid>>, mode: Mode) -> Vec<Tenant> {
    db::query(
        concat!(
            "SELECT ",
            tenant_cols!(),
            "
               FROM (SELECT u.id, pg_catalog.min(u.n) AS n
                       FROM pg_catalog.unnest($1::uuid[]) WITH ORDINALITY AS u(id, n)
                      GROUP BY u.id) AS u
               JOIN tenancy.tenants t ON t.id OPERATOR(pg_catalog.=) u.id
              ORDER BY u.n"
        ),
        mode,
        &[ids.into()],
        Tenant::from_row,
    )
}

const IDENTIFIER_HINT: &str =
    "An identifier is 3 to 63 characters: lowercase letters, digits and single hyphens, starting with a letter and not ending with a hyphen.";

/// Raises 22023 unless `identifier` is a well-formed tenant identifier.
pub fn check_identifier(identifier: &str) {
    if let Err(why) = crate::base::validate::check_identifier(identifier) {
        errors::invalid(format!(
            "invalid tenant identifier \"{}\": {why}",
            errors::shown(identifier)
        ))
        .hint(IDENTIFIER_HINT)
        .raise();
    }
}
