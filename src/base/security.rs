//! Whose rights code runs with: the switches of user tenancy makes (as the
//! extension owner, as a table's or schema's owner, as SECURITY DEFINER
//! would, in security-restricted operations), and who the caller is.  The
//! lowest layer of access: it decides nothing about tenants.

use pgrx::pg_sys;

use crate::base::db::{self, Mode};
use crate::base::errors;

/// Runs `f` as the extension's owner with `search_path` pinned to
/// `pg_catalog, pg_temp`, then restores both: what a SECURITY DEFINER
/// function does, for the context functions that must also change the
/// caller's own settings (which a function-level SET clause would undo).
/// An error inside `f` aborts the (sub)transaction, and PostgreSQL's abort
/// processing restores the user and the settings.
pub fn as_owner<R>(f: impl FnOnce() -> R) -> R {
    as_role(extension_owner(), Restrict::Operation, f)
}

/// How far a switch of user goes beyond the user itself.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Restrict {
    /// A security-restricted operation: code that runs inside (a trigger, an
    /// index expression) cannot SET ROLE, create temporary objects, LISTEN
    /// or change the session's state for the caller to find later.
    Operation,
    /// The same, and row-level security is not forced on the role: what
    /// PostgreSQL does for a table owner's maintenance commands, for
    /// tenancy's own deletes of a tenant's rows as the table's owner.
    OperationNoForceRls,
}

/// Runs `f` as `role`, as a security-restricted operation, with
/// `search_path` pinned to `pg_catalog, pg_temp` (so nothing a caller
/// creates, temporary tables included, can capture a name), then restores
/// the user, its security context and every setting, also those that code
/// run inside changed (`settings::isolated`).  This is how PostgreSQL itself
/// runs user code on someone's behalf (VACUUM's index expressions, RI
/// checks as the table owner).
pub fn as_role<R>(role: pg_sys::Oid, restrict: Restrict, f: impl FnOnce() -> R) -> R {
    let flags = pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
        | pg_sys::SECURITY_RESTRICTED_OPERATION as i32
        | if restrict == Restrict::OperationNoForceRls {
            pg_sys::SECURITY_NOFORCE_RLS as i32
        } else {
            0
        };
    crate::base::settings::isolated(&[(c"search_path", "pg_catalog, pg_temp")], || {
        switched(role, flags, f)
    })
}

/// Runs `f` as `role`, as a security-restricted operation (see
/// [`Restrict::Operation`]), with the caller's settings (its pinned
/// search_path) in force; whatever `f` sets is undone after it
/// (`settings::isolated`).
pub fn restricted_as<R>(role: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    crate::base::settings::isolated(&[], || {
        switched(role, pg_sys::SECURITY_RESTRICTED_OPERATION as i32, f)
    })
}

/// The owner of a schema (a tenant's: the extension owner, or the owner of
/// a schema create_tenant adopted).
pub fn schema_owner(schema: &str) -> pg_sys::Oid {
    crate::base::security::namespace(schema)
        .map(|(_, owner)| owner)
        .unwrap_or_else(|| errors::internal(format!("schema \"{schema}\" does not exist")))
}

/// `f` as `role` with `flags` added to the security context, both restored
/// after it.  An error inside aborts the (sub)transaction, whose abort
/// processing restores them.
fn switched<R>(role: pg_sys::Oid, flags: i32, f: impl FnOnce() -> R) -> R {
    unsafe {
        let mut saved_user = pg_sys::Oid::INVALID;
        let mut saved_context = 0;
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context);
        pg_sys::SetUserIdAndSecContext(role, saved_context | flags);
        let result = f();
        pg_sys::SetUserIdAndSecContext(saved_user, saved_context);
        result
    }
}

/// Runs `f` as the owner of tenancy's catalog, as SECURITY DEFINER would,
/// and tells it who called: the current user on entry.  For the functions
/// whose decision depends on the caller (add_migration, create_tenant's
/// adoption): inside a SECURITY DEFINER function PostgreSQL no longer shows
/// who called it, and the session's role (GetOuterUserId) is not the caller
/// when code runs as another role within that session (a trigger, an index
/// expression during a superuser's ANALYZE, a SECURITY DEFINER function).
/// Such functions are SECURITY INVOKER in SQL and call this first.
pub fn definer<R>(f: impl FnOnce(Caller) -> R) -> R {
    let caller = Caller {
        role: unsafe { pg_sys::GetUserId() },
        restricted: unsafe { pg_sys::InSecurityRestrictedOperation() },
    };
    switched(
        crate::base::security::catalog_owner(),
        pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32,
        || f(caller),
    )
}

/// Who called a [`definer`] function.
#[derive(Clone, Copy)]
pub struct Caller {
    pub role: pg_sys::Oid,
    /// Called from inside a security-restricted operation (maintenance
    /// code, or code tenancy runs as a table's or schema's owner): never
    /// where a decision that hands out rights is taken.
    pub restricted: bool,
}

impl Caller {
    /// Whether the caller has the privileges of `role` (and is not inside a
    /// security-restricted operation).
    pub fn has_privs_of(&self, role: pg_sys::Oid) -> bool {
        !self.restricted && unsafe { pg_sys::has_privs_of_role(self.role, role) }
    }
}

/// The role that owns the extension (and so its catalog and tenant schemas).
pub fn extension_owner() -> pg_sys::Oid {
    db::query_one(
        "SELECT e.extowner FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'tenancy'",
        Mode::Latest,
        &[],
        |r| r.must::<pg_sys::Oid>(1),
    )
    .unwrap_or_else(|| errors::internal("the tenancy extension is not installed in this database"))
}

/// The role whose rights are checked: the current user of the caller.
pub fn current_role() -> pg_sys::Oid {
    unsafe { pg_sys::GetUserId() }
}

pub fn role_name(role: pg_sys::Oid) -> String {
    unsafe {
        let p = pg_sys::GetUserNameFromId(role, true);
        if p.is_null() {
            format!("{}", role.to_u32())
        } else {
            std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

/// A schema's OID and owner, by name, from the system cache (no query).
pub fn namespace(name: &str) -> Option<(pg_sys::Oid, pg_sys::Oid)> {
    let name = std::ffi::CString::new(name).ok()?;
    unsafe {
        let nsp = pg_sys::get_namespace_oid(name.as_ptr(), true);
        if nsp == pg_sys::InvalidOid {
            return None;
        }
        let tuple = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::NAMESPACEOID as i32,
            pg_sys::Datum::from(nsp),
        );
        if tuple.is_null() {
            return None;
        }
        let owner = (*(pg_sys::GETSTRUCT(tuple) as *const pg_sys::FormData_pg_namespace)).nspowner;
        pg_sys::ReleaseSysCache(tuple);
        Some((nsp, owner))
    }
}

/// The owner of tenancy's catalog (`tenancy.tenants`), who owns the
/// extension's functions and tables: the role SECURITY DEFINER functions of
/// tenancy run as.  System cache reads, no query.
pub fn catalog_owner() -> pg_sys::Oid {
    unsafe {
        let nsp = pg_sys::get_namespace_oid(c"tenancy".as_ptr(), false);
        let table = pg_sys::get_relname_relid(c"tenants".as_ptr(), nsp);
        let tuple = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::RELOID as i32,
            pg_sys::Datum::from(table),
        );
        if tuple.is_null() {
            errors::internal("relation tenancy.tenants is missing");
        }
        let owner = (*(pg_sys::GETSTRUCT(tuple) as *const pg_sys::FormData_pg_class)).relowner;
        pg_sys::ReleaseSysCache(tuple);
        owner
    }
}
