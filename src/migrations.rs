//! Versioned migrations of schema tenants (SPEC §4 "Schema"): registering
//! them, applying them to one tenant, and the pieces `CALL tenancy.migrate()`
//! (sql/migrate.sql) is made of.
//!
//! Migration SQL runs with the extension owner's rights, in the tenant's
//! schema.  Registering one is therefore as powerful as being that owner, and
//! `add_migration` checks that the session's role has the owner's privileges.

use pgrx::pg_sys;
use pgrx::prelude::*;
use serde_json::json;

use crate::audit::{self, Event};
use crate::db::{self, Mode};
use crate::errors::{self, required};
use crate::tenants::{self, Tenant};

const MAX_NAME_CHARS: usize = 63;

fn quote(ident: &str) -> String {
    pgrx::spi::quote_identifier(ident)
}

/// Register a migration; it runs in every schema tenant, new ones at
/// creation and existing ones at the next `CALL tenancy.migrate()`.
#[pg_extern(volatile, security_definer, requires = ["isolation_catalog"])]
#[search_path(pg_catalog, pg_temp)]
fn add_migration(name: Option<&str>, sql: Option<&str>) -> pgrx::composite_type!('static, "migrations") {
    let name = required(name, "name");
    let sql = required(sql, "sql");
    let n = name.chars().count();
    if n == 0 || n > MAX_NAME_CHARS || name.trim().is_empty() || name.chars().any(char::is_control) {
        errors::invalid(format!(
            "invalid migration name \"{}\": 1 to 63 characters, not blank, no control characters",
            errors::shown(name)
        ))
            .raise();
    }
    if sql.trim_matches(|c: char| c.is_whitespace() || c == ';').is_empty() {
        errors::invalid(format!("migration \"{}\" has no SQL", errors::shown(name))).raise();
    }
    check_owner_rights();
    let row = db::query_one(
        "INSERT INTO tenancy.migrations AS m (name, sql) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING m",
        Mode::Write,
        &[name.into(), sql.into()],
        |r| r.must::<pgrx::composite_type!('static, "migrations")>(1),
    );
    row.unwrap_or_else(|| {
        errors::duplicate(format!("migration \"{name}\" already exists"))
            .hint("Registered migrations are immutable; register the change under a new name.")
            .raise()
    })
}

/// Migration SQL runs as the extension owner: only a role with the owner's
/// privileges may register it.
fn check_owner_rights() {
    let session_role = unsafe { pg_sys::GetOuterUserId() };
    let owner = crate::access::extension_owner();
    let allowed = unsafe { pg_sys::has_privs_of_role(session_role, owner) };
    if !allowed {
        errors::forbidden("only a role with the privileges of the tenancy extension's owner may register migrations")
            .detail("Migration SQL runs with the extension owner's rights in every schema tenant.")
            .raise();
    }
}

/// Runs one migration in the tenant's schema and records it as applied.
fn apply(t: &Tenant, schema: &str, migration: &str) {
    let sql = db::query_one(
        "SELECT m.sql FROM tenancy.migrations m WHERE m.name OPERATOR(pg_catalog.=) $1",
        Mode::Write,
        &[migration.into()],
        |r| r.must::<String>(1),
    )
    .unwrap_or_else(|| errors::invalid(format!("migration \"{migration}\" does not exist")).raise());
    crate::settings::scoped(&[(c"search_path", &quote(schema))], || db::execute_dynamic(&sql));
    db::execute(
        "INSERT INTO tenancy.migration_ledger (tenant_id, migration, applied_at, status, error)
         VALUES ($1, $2, pg_catalog.now(), 'applied', NULL)
         ON CONFLICT (tenant_id, migration) DO UPDATE
            SET applied_at = EXCLUDED.applied_at, status = 'applied', error = NULL",
        &[t.id.into(), migration.into()],
    );
}

/// The migrations not yet applied to the tenant, in registration order.
fn pending(tenant: pgrx::Uuid) -> Vec<String> {
    db::query(
        "SELECT m.name FROM tenancy.migrations m
          WHERE NOT EXISTS (SELECT FROM tenancy.migration_ledger l
                             WHERE l.tenant_id OPERATOR(pg_catalog.=) $1
                               AND l.migration OPERATOR(pg_catalog.=) m.name
                               AND l.status OPERATOR(pg_catalog.=) 'applied')
          ORDER BY m.position",
        Mode::Write,
        &[tenant.into()],
        |r| r.must::<String>(1),
    )
}

/// Applies every pending migration to a new schema tenant, inside its
/// creating transaction (an error aborts the creation).  Returns their names.
pub fn apply_all(t: &Tenant, schema: &str) -> Vec<String> {
    let names = pending(t.id);
    for m in &names {
        apply(t, schema, m);
    }
    names
}

/// Refuses to start `CALL tenancy.migrate()` inside a transaction block: it
/// commits once per tenant, which only a CALL in its own transaction can do.
#[pg_extern(volatile, requires = ["isolation_catalog"])]
fn migration_check_outside_block() {
    if unsafe { pg_sys::IsTransactionBlock() } {
        errors::TenancyError::new(
            pgrx::PgSqlErrorCode::ERRCODE_ACTIVE_SQL_TRANSACTION,
            "CALL tenancy.migrate() cannot run inside a transaction block",
        )
        .hint("It commits once per tenant; CALL it on its own, or use SELECT tenancy.migrate_tenant(id) inside a transaction.")
        .raise();
    }
}

/// Schema tenants that are not deleted and have a migration pending, oldest first.
#[pg_extern(stable, security_definer, requires = ["isolation_catalog"])]
#[search_path(pg_catalog, pg_temp)]
fn migration_targets() -> SetOfIterator<'static, pgrx::Uuid> {
    let ids = db::query(
        "SELECT t.id FROM tenancy.tenants t
          WHERE t.isolation OPERATOR(pg_catalog.=) 'schema' AND t.status OPERATOR(pg_catalog.<>) 'deleted'
            AND EXISTS (SELECT FROM tenancy.migrations m
                         WHERE NOT EXISTS (SELECT FROM tenancy.migration_ledger l
                                            WHERE l.tenant_id OPERATOR(pg_catalog.=) t.id
                                              AND l.migration OPERATOR(pg_catalog.=) m.name
                                              AND l.status OPERATOR(pg_catalog.=) 'applied'))
          ORDER BY t.created_at, t.id",
        Mode::Read,
        &[],
        |r| r.must::<pgrx::Uuid>(1),
    );
    SetOfIterator::new(ids)
}

/// Claims a tenant for migration in this transaction: None when another
/// session holds it (it is migrating it now) or it is gone, deleted, or not
/// a schema tenant; else the pending migrations.  The claim is a
/// transaction-level advisory lock plus a key-share lock on the tenant row
/// (so it cannot be removed mid-way); both end with the transaction.
#[pg_extern(volatile, security_definer, requires = ["isolation_catalog"])]
#[search_path(pg_catalog, pg_temp)]
fn migration_claim(tenant: Option<pgrx::Uuid>) -> Option<Vec<String>> {
    let tenant = required(tenant, "tenant");
    let claimed = db::query_one(
        "SELECT pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtextextended('tenancy.migrate:' OPERATOR(pg_catalog.||) $1::text, 0))",
        Mode::Write,
        &[tenant.into()],
        |r| r.must::<bool>(1),
    )
    .unwrap_or(false);
    if !claimed {
        return None;
    }
    let usable = db::query_one(
        "SELECT t.schema_name IS NOT NULL AND t.status OPERATOR(pg_catalog.<>) 'deleted'
           FROM tenancy.tenants t WHERE t.id OPERATOR(pg_catalog.=) $1 FOR KEY SHARE",
        Mode::Write,
        &[tenant.into()],
        |r| r.must::<bool>(1),
    )
    .unwrap_or(false);
    usable.then(|| pending(tenant))
}

/// Applies one migration to a claimed tenant (called by migrate_tenant inside
/// a subtransaction, so a failure rolls back this migration alone).
#[pg_extern(volatile, security_definer, requires = ["isolation_catalog"])]
#[search_path(pg_catalog, pg_temp)]
fn migration_apply(tenant: Option<pgrx::Uuid>, migration: Option<&str>) {
    let t = tenants::find_by_id(required(tenant, "tenant"), Mode::Write)
        .unwrap_or_else(|| errors::tenant_not_found(tenant.map(|u| u.to_string()).unwrap_or_default()).raise());
    let schema = t.schema_name.clone().unwrap_or_else(|| {
        errors::wrong_state(format!("tenant \"{}\" is not a schema tenant", t.identifier)).raise()
    });
    apply(&t, &schema, required(migration, "migration"));
}

/// Records the outcome of one tenant's migration run: the failure in the
/// ledger (the migration's own changes were rolled back), and the audit row.
#[pg_extern(volatile, security_definer, requires = ["isolation_catalog"])]
#[search_path(pg_catalog, pg_temp)]
fn migration_finish(
    tenant: Option<pgrx::Uuid>,
    applied: Option<Vec<Option<String>>>,
    failed: Option<&str>,
    error: Option<&str>,
) -> pgrx::JsonB {
    let tenant = required(tenant, "tenant");
    let applied: Vec<String> = applied.unwrap_or_default().into_iter().flatten().collect();
    if let Some(m) = failed {
        db::execute(
            "INSERT INTO tenancy.migration_ledger (tenant_id, migration, applied_at, status, error)
             VALUES ($1, $2, pg_catalog.now(), 'failed', $3)
             ON CONFLICT (tenant_id, migration) DO UPDATE
                SET applied_at = EXCLUDED.applied_at, status = 'failed', error = EXCLUDED.error",
            &[tenant.into(), m.into(), error.unwrap_or("unknown error").into()],
        );
    }
    let details = json!({"applied": applied, "failed": failed, "error": error});
    if !applied.is_empty() || failed.is_some() {
        if let Some(t) = tenants::find_by_id(tenant, Mode::Write) {
            audit::record_one(Event::new(t.id, &t.identifier, "migrate", details.clone()));
        }
    }
    pgrx::JsonB(json!({"tenant_id": tenant.to_string(), "applied": applied, "failed": failed, "error": error}))
}
