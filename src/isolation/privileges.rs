//! What a tenant's grantees may use of its schema or database, and taking
//! an adopted schema over: the privileges isolation by schema and by
//! database rests on (SPEC §4).

use pgrx::pg_sys;

use crate::base::db::{self, Mode};
use crate::base::security::role_name;
use crate::catalog::Tenant;
use crate::context::access::Marked;

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
pub fn set_data_access(t: &Tenant, role: &str, open: bool) {
    if let Some(schema) = t.schema_name.as_deref() {
        if let Some(found) = crate::base::security::namespace(schema) {
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
        .filter(|d| crate::isolation::provision::database_exists(d))
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
        .filter(|d| crate::isolation::provision::database_exists(d))
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
