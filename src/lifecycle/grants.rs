//! The grant functions (SPEC §4 "Access"): who may act for which tenant,
//! and the marker that keeps a grant from outliving its role.

use pgrx::pg_sys;
use pgrx::prelude::*;
use serde_json::json;

use crate::base::db::{self, Mode};
use crate::base::errors::{self, required};
use crate::base::sqltypes::RegRole;
use crate::catalog::audit::{self, Event};
use crate::catalog::tenants::{self, Tenant};
use crate::context::access::{Marked, MARKER};
use crate::isolation::privileges::set_data_access;

fn quote(ident: &str) -> String {
    pgrx::spi::quote_identifier(ident)
}

/// Gives `role` the marker.  A privilege is a shared dependency that
/// PostgreSQL records: DROP ROLE refuses while the role holds it ("privileges
/// for type tenancy.tenant_grantee"), so a role cannot vanish from under its
/// grants and leave its OID to a newcomer.  DROP OWNED BY the role takes the
/// marker away like every other privilege, and its tenant grants stop
/// counting.  USAGE on this type allows nothing else.
fn mark(role: pg_sys::Oid, name: &str) {
    if Marked::now().counts(role) || !lock_marker() || Marked::now().counts(role) {
        return;
    }
    // Rows of an unmarked role never counted (its marker went with DROP
    // OWNED, or it is a newcomer with a dropped role's OID): a new grant
    // must not bring them back.
    db::execute(
        "DELETE FROM tenancy.tenant_grants g WHERE g.role::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
        &[role.into()],
    );
    db::execute_dynamic(&format!("GRANT USAGE ON TYPE {MARKER} TO {}", quote(name)));
}

/// Locks the marker until the end of the transaction, before its
/// privileges change: GRANT and REVOKE do not lock the object they change,
/// so two transactions changing the marker at once would fail with "tuple
/// concurrently updated"; this makes the second wait for the first.  Taking
/// the lock processes pending invalidations, so a caller that reads the
/// marker again afterwards sees what the first committed, and decides
/// again.  False in a database not yet updated to 0.3.0 (no marker).
fn lock_marker() -> bool {
    let Some(typoid) = crate::catalog::direct::marker_type() else {
        return false;
    };
    unsafe {
        pg_sys::LockDatabaseObject(
            pg_sys::TypeRelationId,
            typoid,
            0,
            pg_sys::ShareUpdateExclusiveLock as pg_sys::LOCKMODE,
        )
    };
    true
}

/// Takes the marker from every role left without a grant that can still
/// count: an all-tenants grant, or a grant of a tenant that is not deleted
/// (a deleted tenant can never be the context again).  Called after a
/// revoke, and after a tenant is deleted (its row and grants removed, or
/// its status made final), so that the role can then be dropped.
pub fn unmark_ungranted() {
    if crate::catalog::direct::marker_type().is_none()
        || ungranted_marked_roles().is_empty()
        || !lock_marker()
    {
        return;
    }
    // Decided again under the lock, on what other changes committed.
    for role in ungranted_marked_roles() {
        db::execute_dynamic(&format!(
            "REVOKE USAGE ON TYPE {MARKER} FROM {}",
            quote(&role)
        ));
    }
}

/// Names of the roles holding the marker without a grant that can count.
fn ungranted_marked_roles() -> Vec<String> {
    db::query(
        "SELECT r.rolname::text
           FROM pg_catalog.pg_type t, pg_catalog.aclexplode(t.typacl) a, pg_catalog.pg_roles r
          WHERE t.oid OPERATOR(pg_catalog.=) 'tenancy.tenant_grantee'::pg_catalog.regtype
            AND r.oid OPERATOR(pg_catalog.=) a.grantee AND a.grantee OPERATOR(pg_catalog.<>) t.typowner
            AND NOT EXISTS (SELECT FROM tenancy.tenant_grants g
                              LEFT JOIN tenancy.tenants tt ON tt.id OPERATOR(pg_catalog.=) g.tenant_id
                             WHERE g.role::pg_catalog.oid OPERATOR(pg_catalog.=) a.grantee
                               AND (g.tenant_id IS NULL OR tt.status OPERATOR(pg_catalog.<>) 'deleted'))
          ORDER BY 1",
        Mode::Write,
        &[],
        |r| r.must::<String>(1),
    )
}

/// On PostgreSQL 15 and older, CREATEROLE lets a role grant itself
/// membership in any role that is not a superuser (or reset its password),
/// so it can become a grantee of every tenant: no check of tenancy's can
/// hold it to its own grants.  Say so when granting it a tenant.
fn warn_if_createrole(role: pg_sys::Oid, name: &str) {
    if !cfg!(any(feature = "pg13", feature = "pg14", feature = "pg15")) {
        return;
    }
    let createrole = db::query_one(
        "SELECT r.rolcreaterole AND NOT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid OPERATOR(pg_catalog.=) $1",
        Mode::Write,
        &[role.into()],
        |r| r.must::<bool>(1),
    )
    .unwrap_or(false);
    if createrole {
        errors::warning(format!("role \"{}\" has CREATEROLE, and so can act for every tenant", errors::shown(name)))
            .detail(
                "On PostgreSQL 15 and older, a role with CREATEROLE can make itself a member of any role that is not a \
                 superuser, including the grantees of other tenants.",
            )
            .hint("Grant tenants to roles without CREATEROLE (PostgreSQL 16 limits CREATEROLE to the roles it administers).")
            .warn();
    }
}

/// Whether `role` is still granted the tenant, directly or through an
/// all-tenants grant.
fn still_granted(role: pg_sys::Oid, tenant_id: pgrx::Uuid) -> bool {
    Marked::now().counts(role)
        && db::query_one(
            "SELECT EXISTS (SELECT FROM tenancy.tenant_grants g
                         WHERE g.role::oid OPERATOR(pg_catalog.=) $1
                           AND (g.tenant_id OPERATOR(pg_catalog.=) $2 OR g.tenant_id IS NULL))",
            Mode::Write,
            &[role.into(), tenant_id.into()],
            |r| r.must::<bool>(1),
        )
        .unwrap_or(false)
}

/// Tenants with a schema or database of their own, not deleted.
fn tenants_with_a_home() -> Vec<Tenant> {
    db::query(
        concat!(
            "SELECT ",
            crate::tenant_cols!(),
            " FROM tenancy.tenants t
              WHERE (t.schema_name IS NOT NULL OR t.database_name IS NOT NULL)
                AND t.status OPERATOR(pg_catalog.<>) 'deleted'
              ORDER BY t.id"
        ),
        Mode::Write,
        &[],
        Tenant::from_row,
    )
}

fn role_of(role: Option<RegRole>) -> (pg_sys::Oid, String) {
    let role = required(role, "role").0;
    let name = unsafe { pg_sys::GetUserNameFromId(role, true) };
    if name.is_null() {
        errors::invalid(format!("role with OID {} does not exist", role.to_u32())).raise();
    }
    (
        role,
        unsafe { std::ffi::CStr::from_ptr(name) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// Allow `role` (and its members) to act for one tenant.
#[pg_extern(volatile, security_definer, requires = ["isolation_catalog"])]
#[search_path(pg_catalog, pg_temp)]
fn grant_tenant(role: Option<RegRole>, tenant: Option<pgrx::Uuid>) {
    let (role, name) = role_of(role);
    let t = tenants::lock(required(tenant, "tenant"));
    mark(role, &name);
    let inserted = db::query(
        "INSERT INTO tenancy.tenant_grants (role, tenant_id) VALUES ($1::oid::regrole, $2)
         ON CONFLICT DO NOTHING RETURNING 1",
        Mode::Write,
        &[role.into(), t.id.into()],
        |_| (),
    );
    warn_if_createrole(role, &name);
    set_data_access(&t, &name, t.status == "active");
    if !inserted.is_empty() {
        audit::record_one(Event::new(
            t.id,
            &t.identifier,
            "grant",
            json!({"role": name}),
        ));
    }
}

/// Withdraw a `grant_tenant`.
#[pg_extern(volatile, security_definer, requires = ["isolation_catalog"])]
#[search_path(pg_catalog, pg_temp)]
fn revoke_tenant(role: Option<RegRole>, tenant: Option<pgrx::Uuid>) {
    let (role, name) = role_of(role);
    let t = tenants::lock(required(tenant, "tenant"));
    let deleted = db::query(
        "DELETE FROM tenancy.tenant_grants g
          WHERE g.role::oid OPERATOR(pg_catalog.=) $1 AND g.tenant_id OPERATOR(pg_catalog.=) $2 RETURNING 1",
        Mode::Write,
        &[role.into(), t.id.into()],
        |_| (),
    );
    if !still_granted(role, t.id) {
        set_data_access(&t, &name, false);
    }
    unmark_ungranted();
    if !deleted.is_empty() {
        audit::record_one(Event::new(
            t.id,
            &t.identifier,
            "revoke",
            json!({"role": name}),
        ));
    }
}

/// Allow `role` (and its members) to act for every tenant, present and future.
#[pg_extern(volatile, security_definer, requires = ["isolation_catalog"])]
#[search_path(pg_catalog, pg_temp)]
fn grant_all_tenants(role: Option<RegRole>) {
    let (role, name) = role_of(role);
    mark(role, &name);
    let inserted = db::query(
        "INSERT INTO tenancy.tenant_grants (role, tenant_id) VALUES ($1::oid::regrole, NULL)
         ON CONFLICT DO NOTHING RETURNING 1",
        Mode::Write,
        &[role.into()],
        |_| (),
    );
    for t in tenants_with_a_home() {
        set_data_access(&t, &name, t.status == "active");
    }
    if !inserted.is_empty() {
        audit::record_one(Event::all_tenants(
            "grant",
            json!({"role": name, "all_tenants": true}),
        ));
    }
}

/// Withdraw a `grant_all_tenants` (grants of single tenants stay).
#[pg_extern(volatile, security_definer, requires = ["isolation_catalog"])]
#[search_path(pg_catalog, pg_temp)]
fn revoke_all_tenants(role: Option<RegRole>) {
    let (role, name) = role_of(role);
    let deleted = db::query(
        "DELETE FROM tenancy.tenant_grants g
          WHERE g.role::oid OPERATOR(pg_catalog.=) $1 AND g.tenant_id IS NULL RETURNING 1",
        Mode::Write,
        &[role.into()],
        |_| (),
    );
    // Tenants still granted one by one keep their access.
    for t in tenants_with_a_home() {
        if !still_granted(role, t.id) {
            set_data_access(&t, &name, false);
        }
    }
    unmark_ungranted();
    if !deleted.is_empty() {
        audit::record_one(Event::all_tenants(
            "revoke",
            json!({"role": name, "all_tenants": true}),
        ));
    }
}
