//! Versioned migrations of schema tenants (SPEC §4 "Schema"): registering
//! them, applying them to one tenant, and the pieces `CALL tenancy.migrate()`
//! (sql/migrate.sql) is made of.
//!
//! Migration SQL runs with the rights of the tenant schema's owner (the
//! extension owner, unless create_tenant adopted an existing schema), in the
//! tenant's schema, as a security-restricted operation with `search_path` set to
//! the tenant schema, `pg_catalog`, `pg_temp` (temporary objects last, so a
//! caller's temporary table can never stand in for a tenant's).
//! Registering one is therefore as powerful as being that owner, and
//! `add_migration` checks that the session's role has the owner's privileges.

use pgrx::pg_sys;
use pgrx::prelude::*;
use serde_json::json;

use crate::base::db::{self, Mode};
use crate::base::errors::{self, required};
use crate::base::settings;
use crate::catalog::tenants::{self, Tenant};

const MAX_NAME_CHARS: usize = 63;

fn quote(ident: &str) -> String {
    pgrx::spi::quote_identifier(ident)
}

/// Register a migration; it runs in every schema tenant, new ones at
/// creation and existing ones at the next `CALL tenancy.migrate()`.
/// SECURITY INVOKER in SQL: it runs as the catalog's owner through
/// `access::definer`, which tells it who called (see check_owner_rights).
#[pg_extern(name = "add_migration", volatile, requires = ["isolation_catalog"])]
#[search_path(pg_catalog, pg_temp)]
fn add_migration_as_caller(
    name: Option<&str>,
    sql: Option<&str>,
) -> pgrx::composite_type!('static, "migrations") {
    crate::base::security::definer(|caller| register_migration(caller, name, sql))
}

/// 0.1.0 to 0.3.0's entry point, SECURITY DEFINER in their SQL, for a
/// database not yet updated: there the calling role is unknown (the
/// session's role is not it when a lower role's trigger runs inside a
/// superuser's session), so it registers nothing until ALTER EXTENSION
/// tenancy UPDATE moves add_migration to the entry point above.
#[pg_extern(volatile, security_definer, sql = false)]
#[search_path(pg_catalog, pg_temp)]
fn add_migration(
    _name: Option<&str>,
    _sql: Option<&str>,
) -> pgrx::composite_type!('static, "migrations") {
    errors::wrong_state("this database's tenancy extension is older than its library: add_migration waits for the update")
        .detail("Before 0.4.0, add_migration could not tell which role called it.")
        .hint("Run ALTER EXTENSION tenancy UPDATE; then register the migration.")
        .raise()
}

fn register_migration(
    caller: crate::base::security::Caller,
    name: Option<&str>,
    sql: Option<&str>,
) -> pgrx::composite_type!('static, "migrations") {
    let name = required(name, "name");
    let sql = required(sql, "sql");
    let n = name.chars().count();
    if n == 0 || n > MAX_NAME_CHARS || name.trim().is_empty() || name.chars().any(char::is_control)
    {
        errors::invalid(format!(
            "invalid migration name \"{}\": 1 to 63 characters, not blank, no control characters",
            errors::shown(name)
        ))
        .raise();
    }
    if sql
        .trim_matches(|c: char| c.is_whitespace() || c == ';')
        .is_empty()
    {
        errors::invalid(format!("migration \"{}\" has no SQL", errors::shown(name))).raise();
    }
    check_owner_rights(caller);
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

/// Migration SQL runs as the extension owner in the schemas tenancy creates:
/// only a role with the owner's privileges may register it, checked on the
/// role that called add_migration (not the session's: code that runs as
/// another role inside a superuser's session, a trigger or an index
/// expression, must not borrow the superuser's rights), and never from
/// inside a security-restricted operation.
fn check_owner_rights(caller: crate::base::security::Caller) {
    if !caller.has_privs_of(crate::base::security::catalog_owner()) {
        errors::forbidden("only a role with the privileges of the tenancy extension's owner may register migrations")
            .detail("Migration SQL runs with the extension owner's rights in every schema tenant.")
            .raise();
    }
}

/// Runs one migration in the tenant's schema.  The ledger row is written by
/// `record_outcome`, once per tenant, in the same transaction.
fn apply(schema: &str, migration: &str) {
    let sql = db::query_one(
        "SELECT m.sql FROM tenancy.migrations m WHERE m.name OPERATOR(pg_catalog.=) $1",
        Mode::Write,
        &[migration.into()],
        |r| r.must::<String>(1),
    )
    .unwrap_or_else(|| {
        errors::invalid(format!("migration \"{migration}\" does not exist")).raise()
    });
    // pg_temp named last: otherwise PostgreSQL searches the session's
    // temporary schema first for relations, and a caller's temporary table
    // (with its triggers) would stand in for the tenant's.  A
    // security-restricted operation: migration SQL cannot SET ROLE or leave
    // temporary objects, cursors or listeners behind for the caller.
    // As the schema's owner: the extension owner for the schemas tenancy
    // creates, the adopted schema's own owner otherwise, so that code its
    // owner planted there (a trigger, a function the SQL resolves to) never
    // runs with the extension owner's rights.
    let path = format!("{}, pg_catalog, pg_temp", quote(schema));
    let owner = crate::base::security::schema_owner(schema);
    // In a schema Citus shards by schema, the statements that create tables
    // reach Citus as top-level statements, so that it makes the tables
    // single-shard tables of the schema (citus::schemas); anywhere else the
    // migration runs as one SPI call, as it always has.
    let distributed = crate::base::security::namespace(schema)
        .is_some_and(|(nsp, _)| crate::citus::schemas::is_distributed(nsp));
    crate::base::settings::scoped(&[(c"search_path", &path)], || {
        crate::base::security::restricted_as(owner, || {
            if distributed {
                crate::citus::schemas::run_migration(migration, schema, &sql)
            } else {
                db::execute_dynamic(&sql)
            }
        })
    });
}

/// The migrations not yet applied to the tenant, in registration order.
macro_rules! pending_sql {
    () => {
        "ARRAY(SELECT m.name FROM tenancy.migrations m
          WHERE NOT EXISTS (SELECT FROM tenancy.migration_ledger l
                             WHERE l.tenant_id OPERATOR(pg_catalog.=) $1
                               AND l.migration OPERATOR(pg_catalog.=) m.name
                               AND l.status OPERATOR(pg_catalog.=) 'applied')
          ORDER BY m.position)"
    };
}

fn pending(tenant: pgrx::Uuid) -> Vec<String> {
    db::query_one(
        concat!("SELECT ", pending_sql!()),
        Mode::Write,
        &[tenant.into()],
        |r| r.must::<Vec<String>>(1),
    )
    .unwrap_or_default()
}

/// The ledger rows of one tenant's run, as a CTE named `ledger`: $1 the
/// tenant, $2 the applied migrations, $3 the failed one (or NULL), $4 its error.
macro_rules! ledger_cte {
    () => {
        "ledger AS (
             INSERT INTO tenancy.migration_ledger AS l (tenant_id, migration, applied_at, status, error)
             SELECT $1, o.migration, pg_catalog.now(), o.status, o.error
               FROM (SELECT a.migration, 'applied'::text AS status, NULL::text AS error
                       FROM pg_catalog.unnest($2::text[]) AS a(migration)
                     UNION ALL
                     SELECT $3::text, 'failed', COALESCE($4::text, 'unknown error') WHERE $3 IS NOT NULL) o
             ON CONFLICT (tenant_id, migration) DO UPDATE
                SET applied_at = EXCLUDED.applied_at, status = EXCLUDED.status, error = EXCLUDED.error
             RETURNING 1)"
    };
}

/// The ledger rows (the applied migrations, and the failed one) and, when
/// anything ran, the `migrate` audit row: one statement for the tenant.
fn record_outcome(t: &Tenant, applied: &[String], failed: Option<&str>, error: Option<&str>) {
    if applied.is_empty() && failed.is_none() {
        return;
    }
    crate::catalog::changed();
    let details = json!({"applied": applied, "failed": failed, "error": error});
    let args = [
        t.id.into(),
        applied.to_vec().into(),
        failed.into(),
        error.into(),
        t.identifier.as_str().into(),
        pgrx::JsonB(details).into(),
    ];
    macro_rules! outcome {
        ($unskipped:literal) => {
            concat!(
                "WITH ",
                ledger_cte!(),
                ", ",
                $unskipped,
                crate::audit_rows!(from: "(VALUES (1)) one", tenant: "$1::uuid", action: "'migrate'::text", details: "$6::jsonb"),
                " SELECT ",
                crate::notify_event!(tenant: "$1::uuid", action: "'migrate'::text", identifier: "$5::text", audit_id: crate::written_id!())
            )
        };
    }
    // A clean run clears the tenant's last skip (the table exists from 0.3.0 on).
    if crate::catalog::direct::has_relation(c"migration_skips") {
        db::query(
            outcome!("unskipped AS (DELETE FROM tenancy.migration_skips s WHERE s.tenant_id OPERATOR(pg_catalog.=) $1 AND $3 IS NULL), "),
            Mode::Write,
            &args,
            |_| (),
        );
    } else {
        db::query(outcome!(""), Mode::Write, &args, |_| ());
    }
}

/// Applies every pending migration to a new schema tenant, inside its
/// creating transaction (an error aborts the creation).  Returns their names.
/// The caller audits the provisioning, so only the ledger rows here.
pub fn apply_all(t: &Tenant, schema: &str) -> Vec<String> {
    let names = pending(t.id);
    for m in &names {
        apply(schema, m);
    }
    record_applied(t, &names);
    names
}

/// Ledger rows for migrations applied to a tenant in its creating transaction.
fn record_applied(t: &Tenant, names: &[String]) {
    if !names.is_empty() {
        db::query(
            concat!(
                "WITH ",
                ledger_cte!(),
                " SELECT pg_catalog.count(*) FROM ledger"
            ),
            Mode::Write,
            &[
                t.id.into(),
                names.to_vec().into(),
                Option::<&str>::None.into(),
                Option::<&str>::None.into(),
            ],
            |_| (),
        );
    }
}

/// Records every registered migration as applied to a schema tenant whose
/// schema was adopted with its tables (create_tenant's schema_name): they
/// describe what the schema holds already.  Returns their names.
pub fn record_baseline(t: &Tenant) -> Vec<String> {
    let names = pending(t.id);
    record_applied(t, &names);
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
    // A tenant has nothing pending when it has as many applied ledger rows as
    // there are migrations: ledger rows reference migrations (foreign key),
    // one per pair (primary key), and migrations are never deleted.  One
    // index probe per tenant; the NOT EXISTS form was costed so high on an
    // unanalyzed catalog that PostgreSQL JIT-compiled it (200 ms for 1,000
    // tenants).  JIT is off for it anyway: it never pays for a catalog query.
    let ids = crate::base::settings::scoped(&[(c"jit", "off")], || {
        db::query(
            "SELECT t.id FROM tenancy.tenants t
              WHERE t.isolation OPERATOR(pg_catalog.=) 'schema' AND t.status OPERATOR(pg_catalog.<>) 'deleted'
                AND (SELECT pg_catalog.count(*) FROM tenancy.migration_ledger l
                      WHERE l.tenant_id OPERATOR(pg_catalog.=) t.id AND l.status OPERATOR(pg_catalog.=) 'applied')
                    OPERATOR(pg_catalog.<) (SELECT pg_catalog.count(*) FROM tenancy.migrations)
              ORDER BY t.created_at, t.id",
            Mode::Read,
            &[],
            |r| r.must::<pgrx::Uuid>(1),
        )
    });
    SetOfIterator::new(ids)
}

/// What claiming a tenant for migration found.
enum Claim {
    /// This session migrates it: the pending migrations (maybe none).
    Claimed(Vec<String>),
    /// Another session holds the claim: it is migrating the tenant now.
    Busy,
    /// Gone, deleted, or not a schema tenant (since the run listed it).
    Gone,
}

/// Claims a tenant for migration in this transaction.  The claim is
/// tenancy's own transaction-level lock on the tenant (`db::lock_tenant`:
/// no other session can take it by SQL, so none can make a run skip a
/// tenant) plus a key-share lock on the tenant row (so it cannot be removed
/// mid-way); both end with the transaction.
fn claim(tenant: pgrx::Uuid) -> Claim {
    if !db::lock_tenant(crate::base::validate::LockPurpose::Migrate, tenant, false) {
        return Claim::Busy;
    }
    // Read after the lock is held (a new snapshot), so a tenant another
    // session has just migrated shows nothing pending.
    let pending = db::query_one(
        concat!(
            "SELECT CASE WHEN t.schema_name IS NOT NULL AND t.status OPERATOR(pg_catalog.<>) 'deleted' THEN ",
            pending_sql!(),
            " END FROM tenancy.tenants t WHERE t.id OPERATOR(pg_catalog.=) $1 FOR KEY SHARE"
        ),
        Mode::Write,
        &[tenant.into()],
        |r| r.get::<Vec<String>>(1),
    )
    .flatten();
    match pending {
        Some(todo) => Claim::Claimed(todo),
        None => Claim::Gone,
    }
}

/// Why `migrate_tenant` skipped a tenant another session holds.
const BUSY: &str = "another session is migrating it";

/// Records in `tenancy.migration_skips` (shown by `migration_status`) that
/// this run skipped the tenant, and describes the skip.
fn skipped(tenant: pgrx::Uuid, reason: &str, record: bool) -> pgrx::JsonB {
    let identifier = tenants::find_by_id(tenant, Mode::Latest).map(|t| t.identifier);
    if record && identifier.is_some() && crate::catalog::direct::has_relation(c"migration_skips") {
        db::execute(
            "INSERT INTO tenancy.migration_skips AS s (tenant_id, skipped_at, reason) VALUES ($1, pg_catalog.now(), $2)
             ON CONFLICT (tenant_id) DO UPDATE SET skipped_at = EXCLUDED.skipped_at, reason = EXCLUDED.reason",
            &[tenant.into(), reason.into()],
        );
    }
    pgrx::JsonB(
        json!({"tenant_id": tenant.to_string(), "identifier": identifier, "skipped": true, "reason": reason}),
    )
}

/// What `CALL tenancy.migrate()` does for each tenant, in the caller's
/// transaction: claims the tenant, applies its pending migrations in order,
/// each in a subtransaction, until the first failure (which is rolled back
/// and recorded, like PL/pgSQL's EXCEPTION WHEN OTHERS: a cancel is not
/// caught), then writes the ledger rows and the audit row in one statement.
/// A tenant another session is migrating is skipped, and the skip recorded.
#[pg_extern(volatile, security_definer, requires = ["isolation_catalog"])]
#[search_path(pg_catalog, pg_temp)]
fn migrate_tenant(tenant: Option<pgrx::Uuid>) -> pgrx::JsonB {
    let tenant = required(tenant, "tenant");
    let todo = match claim(tenant) {
        Claim::Claimed(todo) => todo,
        Claim::Busy => return skipped(tenant, BUSY, true),
        Claim::Gone => return skipped(tenant, "it was deleted since the run listed it", false),
    };
    // Never wait forever for a lock on the tenant's tables (a grantee's open
    // transaction would stall every tenant after it): at most lock_timeout,
    // or LOCK_WAIT when it is 0; a tenant whose lock does not come is
    // skipped, and the next run tries again.
    let session = settings::get(c"lock_timeout");
    let wait = if session == "0" {
        LOCK_WAIT.to_string()
    } else {
        format!("{session}ms")
    };
    let run = settings::scoped(&[(c"lock_timeout", &wait)], || run_pending(tenant, &todo));
    match run {
        Run::Done(applied, failed, error) => {
            finish(tenant, &applied, failed.as_deref(), error.as_deref())
        }
        Run::LockWait(applied) => {
            finish(tenant, &applied, None, None);
            skipped(
                tenant,
                &format!("a lock on its tables was not granted within lock_timeout ({wait})"),
                true,
            )
        }
    }
}

/// How long `migrate` waits for a lock on a tenant's tables when the
/// session's lock_timeout is 0 (wait forever).
const LOCK_WAIT: &str = "5s";

/// How applying a tenant's pending migrations ended.
enum Run {
    /// Applied these; then the failed one and its error, if any.
    Done(Vec<String>, Option<String>, Option<String>),
    /// Applied these; then a lock was not granted in time.
    LockWait(Vec<String>),
}

/// Records one tenant's run (see `record_outcome`) and describes it.
fn finish(
    tenant: pgrx::Uuid,
    applied: &[String],
    failed: Option<&str>,
    error: Option<&str>,
) -> pgrx::JsonB {
    if let Some(t) = tenants::find_by_id(tenant, Mode::Latest) {
        record_outcome(&t, applied, failed, error);
    }
    pgrx::JsonB(
        json!({"tenant_id": tenant.to_string(), "applied": applied, "failed": failed, "error": error}),
    )
}

/// Applies `todo` to a claimed tenant until the first failure: the names
/// applied, and the failed one with its message.
fn run_pending(tenant: pgrx::Uuid, todo: &[String]) -> Run {
    let mut applied = Vec::with_capacity(todo.len());
    for m in todo {
        match db::subtransaction(|| apply_to(tenant, m)) {
            Ok(()) => applied.push(m.clone()),
            Err((pgrx::PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE, _)) => {
                return Run::LockWait(applied)
            }
            Err((_, message)) => return Run::Done(applied, Some(m.clone()), Some(message)),
        }
    }
    Run::Done(applied, None, None)
}

/// Applies one migration to a claimed tenant.
fn apply_to(tenant: pgrx::Uuid, migration: &str) {
    // By index, no SQL: the claim locked the row, and nothing here changed it yet.
    let t = tenants::find_by_id(tenant, Mode::Latest)
        .unwrap_or_else(|| errors::tenant_not_found(tenant).raise());
    let schema = t.schema_name.clone().unwrap_or_else(|| {
        errors::wrong_state(format!(
            "tenant \"{}\" is not a schema tenant",
            t.identifier
        ))
        .raise()
    });
    apply(&schema, migration);
}

// The pieces 0.1.0's PL/pgSQL migrate_tenant called.  A database still at
// 0.1.0 runs that function until ALTER EXTENSION tenancy UPDATE (which drops
// these from SQL), so the library keeps their entry points.

#[pg_extern(volatile, security_definer, sql = false)]
#[search_path(pg_catalog, pg_temp)]
fn migration_claim(tenant: Option<pgrx::Uuid>) -> Option<Vec<String>> {
    match claim(required(tenant, "tenant")) {
        Claim::Claimed(todo) => Some(todo),
        Claim::Busy | Claim::Gone => None,
    }
}

#[pg_extern(volatile, security_definer, sql = false)]
#[search_path(pg_catalog, pg_temp)]
fn migration_apply(tenant: Option<pgrx::Uuid>, migration: Option<&str>) {
    apply_to(required(tenant, "tenant"), required(migration, "migration"));
}

#[pg_extern(volatile, security_definer, sql = false)]
#[search_path(pg_catalog, pg_temp)]
fn migration_finish(
    tenant: Option<pgrx::Uuid>,
    applied: Option<Vec<Option<String>>>,
    failed: Option<&str>,
    error: Option<&str>,
) -> pgrx::JsonB {
    let applied: Vec<String> = applied.unwrap_or_default().into_iter().flatten().collect();
    finish(required(tenant, "tenant"), &applied, failed, error)
}
