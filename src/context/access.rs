//! Who may act for which tenant (SPEC §4 "Access"): the rule the context
//! checks.  The grant functions that change it are in lifecycle::grants.
//!
//! The one rule, in `may_act_for`: a role may act for a tenant when it is a
//! superuser, has BYPASSRLS, has the privileges of a role granted all
//! tenants, or has the privileges of a role granted that tenant.

use pgrx::pg_sys;

use crate::base::errors;
use crate::base::security::role_name;
use crate::catalog::Tenant;

/// True when `role` may act for the tenant (reads the grants directly, with
/// the latest snapshot, so a revoke counts at once).
pub fn may_act_for(role: pg_sys::Oid, tenant_id: pgrx::Uuid) -> bool {
    unsafe {
        if pg_sys::superuser_arg(role) || pg_sys::has_bypassrls_privilege(role) {
            return true;
        }
    }
    // A grant counts only while its role holds the marker (see `mark`): a
    // role dropped after DROP OWNED, and any later role that reuses its
    // OID, does not.
    let grantees =
        crate::catalog::direct::grantees(tenant_id, crate::catalog::direct::Snapshot::Latest);
    if grantees.is_empty() {
        return false;
    }
    let marked = Marked::now();
    grantees
        .into_iter()
        .filter(|g| marked.counts(*g))
        .any(|g| unsafe { pg_sys::has_privs_of_role(role, g) })
}

/// The type whose USAGE privilege marks the roles granted a tenant.
pub const MARKER: &str = "tenancy.tenant_grantee";

/// The roles holding the marker, read once for a decision about several.
pub struct Marked(Option<Vec<pg_sys::Oid>>);

impl Marked {
    pub fn now() -> Marked {
        Marked(crate::catalog::direct::marked_roles())
    }

    /// Whether `role`'s grant rows count: it holds the marker (or the
    /// database predates it).
    pub fn counts(&self, role: pg_sys::Oid) -> bool {
        self.0.as_ref().is_none_or(|m| m.contains(&role))
    }
}

/// Raises 42501 unless `role` may act for `t`.
pub fn check_may_act(role: pg_sys::Oid, t: &Tenant) {
    if !may_act_for(role, t.id) {
        errors::forbidden(format!(
            "role \"{}\" may not act for tenant \"{}\"",
            role_name(role),
            t.identifier
        ))
        .hint("An administrator can allow it with tenancy.grant_tenant(role, tenant).")
        .raise();
    }
}
