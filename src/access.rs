//! Who may act for which tenant (SPEC §4 "Access"), and the grant functions.
//!
//! The one rule, in `may_act_for`: a role may act for a tenant when it is a
//! superuser, has BYPASSRLS, has the privileges of a role granted all
//! tenants, or has the privileges of a role granted that tenant.

use pgrx::pg_sys;
use pgrx::prelude::*;
use serde_json::json;

use crate::audit::{self, Event};
use crate::db::{self, Mode};
use crate::errors::{self, required};
use crate::sqltypes::RegRole;
use crate::tenants::{self, Tenant};

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
    crate::settings::isolated(&[(c"search_path", "pg_catalog, pg_temp")], || {
        switched(role, flags, f)
    })
}

/// Runs `f` as `role`, as a security-restricted operation (see
/// [`Restrict::Operation`]), with the caller's settings (its pinned
/// search_path) in force; whatever `f` sets is undone after it
/// (`settings::isolated`).
pub fn restricted_as<R>(role: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    crate::settings::isolated(&[], || {
        switched(role, pg_sys::SECURITY_RESTRICTED_OPERATION as i32, f)
    })
}

/// The owner of a schema (a tenant's: the extension owner, or the owner of
/// a schema create_tenant adopted).
pub fn schema_owner(schema: &str) -> pg_sys::Oid {
    crate::direct::namespace(schema)
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
        crate::direct::catalog_owner(),
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
    let grantees = crate::direct::grantees(tenant_id, crate::direct::Snapshot::Latest);
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
const MARKER: &str = "tenancy.tenant_grantee";

/// The roles holding the marker, read once for a decision about several.
struct Marked(Option<Vec<pg_sys::Oid>>);

impl Marked {
    fn now() -> Marked {
        Marked(crate::direct::marked_roles())
    }

    /// Whether `role`'s grant rows count: it holds the marker (or the
    /// database predates it).
    fn counts(&self, role: pg_sys::Oid) -> bool {
        self.0.as_ref().is_none_or(|m| m.contains(&role))
    }
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
    let Some(typoid) = crate::direct::marker_type() else {
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
    if crate::direct::marker_type().is_none()
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

fn quote(ident: &str) -> String {
    pgrx::spi::quote_identifier(ident)
}

/// Lets `role` use a schema tenant's schema and its tables, now and for the
/// tables later migrations create (which run as the extension owner).
/// Makes an adopted schema tenancy's to open and close, like the schemas it
/// creates: every privilege on the schema, its tables and sequences, and
/// the owner's default privileges in it, held by PUBLIC or by any role but
/// the object's owner, is revoked (the tenant's grantees get theirs back
/// from `sync_data_access`, and lose them when the tenant is suspended).
/// Returns the roles that lost privileges, PUBLIC as "PUBLIC".
pub fn take_over_schema(schema: &str) -> Vec<String> {
    // One REVOKE per object and grantee, never from the object's owner: a
    // role that owns one table of the schema and was granted another keeps
    // its rights on its own.  Each row is the statement up to FROM.
    let revokes = db::query(
        "WITH acl AS (
             SELECT 'REVOKE ALL ON SCHEMA ' || pg_catalog.quote_ident(n.nspname) AS what, n.nspowner AS owner, n.nspacl AS acl
               FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.=) $1
             UNION ALL
             SELECT 'REVOKE ALL ON ' || CASE WHEN c.relkind OPERATOR(pg_catalog.=) 'S' THEN 'SEQUENCE ' ELSE 'TABLE ' END
                    || c.oid::pg_catalog.regclass::text, c.relowner, a.acl
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace,
                    LATERAL (SELECT c.relacl UNION ALL
                             SELECT t.attacl FROM pg_catalog.pg_attribute t
                              WHERE t.attrelid OPERATOR(pg_catalog.=) c.oid AND t.attacl IS NOT NULL) a(acl)
              WHERE n.nspname OPERATOR(pg_catalog.=) $1 AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,v,m,f,S}'::\"char\"[])
             UNION ALL
             SELECT pg_catalog.format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I REVOKE ALL ON %s', r.rolname, n.nspname,
                        CASE d.defaclobjtype WHEN 'S' THEN 'SEQUENCES' WHEN 'f' THEN 'FUNCTIONS' WHEN 'T' THEN 'TYPES' ELSE 'TABLES' END),
                    d.defaclrole, d.defaclacl
               FROM pg_catalog.pg_default_acl d
               JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) d.defaclnamespace
               JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) d.defaclrole
              WHERE n.nspname OPERATOR(pg_catalog.=) $1)
         SELECT DISTINCT acl.what,
                CASE WHEN e.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(r.rolname) END
           FROM acl, pg_catalog.aclexplode(acl.acl) e
           LEFT JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) e.grantee
          WHERE acl.acl IS NOT NULL AND e.grantee OPERATOR(pg_catalog.<>) acl.owner
            AND (e.grantee OPERATOR(pg_catalog.=) 0 OR r.oid IS NOT NULL)
          ORDER BY 1, 2",
        Mode::Write,
        &[schema.into()],
        |r| (r.must::<String>(1), r.must::<String>(2)),
    );
    // CASCADE: also what the grantees granted on with the grant option.
    let sql: String = revokes
        .iter()
        .map(|(what, grantee)| {
            let cascade = if what.starts_with("ALTER DEFAULT") {
                ""
            } else {
                " CASCADE"
            };
            format!("{what} FROM {grantee}{cascade};")
        })
        .collect();
    if !sql.is_empty() {
        db::execute_dynamic(&sql);
    }
    let mut roles: Vec<String> = revokes.into_iter().map(|(_, grantee)| grantee).collect();
    roles.sort();
    roles.dedup();
    roles
}

/// The tables (views, foreign tables…) and the sequences of schema `nsp`,
/// owned by `owner` or, with `owned: false`, by any other role, each as a
/// list for one GRANT or REVOKE (None when there are none).
fn relations(
    nsp: pg_sys::Oid,
    owner: pg_sys::Oid,
    owned: bool,
) -> (Option<String>, Option<String>) {
    db::query_one(
        "SELECT pg_catalog.string_agg(c.oid::pg_catalog.regclass::text, ', ') FILTER (WHERE c.relkind OPERATOR(pg_catalog.<>) 'S'),
                pg_catalog.string_agg(c.oid::pg_catalog.regclass::text, ', ') FILTER (WHERE c.relkind OPERATOR(pg_catalog.=) 'S')
           FROM pg_catalog.pg_class c
          WHERE c.relnamespace OPERATOR(pg_catalog.=) $1 AND (c.relowner OPERATOR(pg_catalog.=) $2) OPERATOR(pg_catalog.=) $3
            AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,v,m,f,S}'::\"char\"[])",
        Mode::Write,
        &[nsp.into(), owner.into(), owned.into()],
        |r| (r.get::<String>(1), r.get::<String>(2)),
    )
    .unwrap_or_default()
}

/// Only the relations the schema's owner owns are granted: in an adopted
/// schema another role may own a table (created in it later), which the
/// extension owner, a superuser, could grant but the tenant's adopter could
/// not (`check_adoptable` checks the relations there at adoption only).
fn grant_schema(schema: &str, (nsp, owner): (pg_sys::Oid, pg_sys::Oid), role: &str) {
    let (s, r, o) = (quote(schema), quote(role), quote(&role_name(owner)));
    let (tables, sequences) = relations(nsp, owner, true);
    let mut sql = format!("GRANT USAGE ON SCHEMA {s} TO {r};");
    if let Some(tables) = tables {
        sql.push_str(&format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {tables} TO {r};"
        ));
    }
    if let Some(sequences) = sequences {
        sql.push_str(&format!(
            "GRANT USAGE, SELECT ON SEQUENCE {sequences} TO {r};"
        ));
    }
    sql.push_str(&format!(
        "ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA {s} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {r};
         ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA {s} GRANT USAGE, SELECT ON SEQUENCES TO {r};"
    ));
    db::execute_dynamic(&sql);
}

/// Never from what `role` owns: the owner of an adopted schema may also be
/// granted its tenant, and closing the tenant must not take the owner's own
/// privileges on its schema and tables (which it would get back only in
/// part, as a grantee, when the tenant opens again).
fn revoke_schema(schema: &str, (nsp, owner): (pg_sys::Oid, pg_sys::Oid), role: &str) {
    let (s, r, o) = (quote(schema), quote(role), quote(&role_name(owner)));
    let role_oid = std::ffi::CString::new(role).map_or(pg_sys::InvalidOid, |c| unsafe {
        pg_sys::get_role_oid(c.as_ptr(), true)
    });
    let owns_schema = role_oid == owner;
    let (tables, sequences) = relations(nsp, role_oid, false);
    let mut sql = String::new();
    if !owns_schema {
        sql.push_str(&format!(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA {s} REVOKE ALL ON TABLES FROM {r};
             ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA {s} REVOKE ALL ON SEQUENCES FROM {r};"
        ));
    }
    if let Some(sequences) = sequences {
        sql.push_str(&format!("REVOKE ALL ON SEQUENCE {sequences} FROM {r};"));
    }
    if let Some(tables) = tables {
        sql.push_str(&format!("REVOKE ALL ON TABLE {tables} FROM {r};"));
    }
    if !owns_schema {
        sql.push_str(&format!("REVOKE USAGE ON SCHEMA {s} FROM {r};"));
    }
    if !sql.is_empty() {
        db::execute_dynamic(&sql);
    }
}

/// Opens or closes `role`'s way to the tenant's own schema or database.
/// RLS tenants have none: their rows are guarded by the policy, which checks
/// the grant and the status on every statement.
fn set_data_access(t: &Tenant, role: &str, open: bool) {
    if let Some(schema) = t.schema_name.as_deref() {
        if let Some(found) = crate::direct::namespace(schema) {
            if open {
                grant_schema(schema, found, role)
            } else {
                revoke_schema(schema, found, role)
            }
        }
    }
    if let Some(database) = t
        .database_name
        .as_deref()
        .filter(|d| crate::provision::database_exists(d))
    {
        let (d, r) = (quote(database), quote(role));
        if open {
            db::execute_dynamic(&format!("GRANT CONNECT, TEMPORARY ON DATABASE {d} TO {r}"));
        } else {
            db::execute_dynamic(&format!(
                "REVOKE CONNECT, TEMPORARY ON DATABASE {d} FROM {r}"
            ));
        }
    }
}

/// Makes the privileges on the tenant's schema or database match its grants
/// and its status: open to every grantee while the tenant is active, closed
/// to all of them otherwise (so a suspended or deleted schema tenant cannot
/// be read by naming its schema).  PUBLIC never has them.
pub fn sync_data_access(t: &Tenant) {
    set_all_data_access(t, t.status == "active");
}

/// Closes the tenant's schema or database to every grantee (for a tenant
/// whose row is about to go: its grants go with it).
pub fn close_data_access(t: &Tenant) {
    set_all_data_access(t, false);
}

fn set_all_data_access(t: &Tenant, open: bool) {
    if t.schema_name.is_none() && t.database_name.is_none() {
        return;
    }
    if let Some(database) = t
        .database_name
        .as_deref()
        .filter(|d| crate::provision::database_exists(d))
    {
        db::execute_dynamic(&format!(
            "REVOKE ALL ON DATABASE {} FROM PUBLIC",
            quote(database)
        ));
    }
    for role in grantees_of(t.id) {
        set_data_access(t, &role, open);
    }
}

/// Names of roles that may act for the tenant through a grant (directly or
/// through an all-tenants grant).
fn grantees_of(tenant_id: pgrx::Uuid) -> Vec<String> {
    let marked = Marked::now();
    db::query(
        "SELECT DISTINCT r.rolname::text, r.oid FROM tenancy.tenant_grants g
           JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) g.role::oid
          WHERE g.tenant_id OPERATOR(pg_catalog.=) $1 OR g.tenant_id IS NULL",
        Mode::Write,
        &[tenant_id.into()],
        |r| (r.must::<String>(1), r.must::<pg_sys::Oid>(2)),
    )
    .into_iter()
    .filter(|(_, oid)| marked.counts(*oid))
    .map(|(name, _)| name)
    .collect()
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
