//! Where a tenant's data lives: creating and destroying a schema tenant's
//! schema or a database tenant's database (SPEC §4).  RLS tenants need
//! nothing created; their rows are destroyed table by table.

use pgrx::heap_tuple::PgHeapTuple;
use pgrx::prelude::*;
use pgrx::AllocatedByRust;
use serde_json::{json, Value};

use crate::base::db::{self, Mode};
use crate::base::errors;
use crate::base::settings;
use crate::catalog::isolation;
use crate::catalog::tenants::Tenant;
use crate::isolation::migrations;
use crate::isolation::rls;

fn quote(ident: &str) -> String {
    pgrx::spi::quote_identifier(ident)
}

/// Refuses, before anything is written, a tenant whose schema or database
/// name is taken or whose isolation this server cannot provide.
pub fn check_available(iso: isolation, schema: Option<&str>, database: Option<&str>) {
    match iso {
        isolation::rls => {}
        isolation::schema => {
            let schema = schema.unwrap_or_default();
            if schema_exists(schema) {
                errors::duplicate(format!("schema \"{schema}\" already exists"))
                    .hint("Another tenant or object already uses this schema name; choose another identifier or tenancy.schema_prefix.")
                    .raise();
            }
        }
        isolation::database => {
            let database = database.unwrap_or_default();
            if dblink_schema().is_none() {
                // Without dblink the database is made by hand, then adopted.
                if !database_exists(database) {
                    errors::unsupported("database isolation needs the dblink extension, which is not installed in this database")
                        .detail(format!(
                            "To create this tenant's database by hand, run as a superuser: CREATE DATABASE {};",
                            quote(database)
                        ))
                        .hint("Run that, then call create_tenant again; or CREATE EXTENSION dblink and tenancy creates it.")
                        .raise();
                }
                return;
            }
            if database_exists(database) {
                errors::duplicate(format!("database \"{database}\" already exists"))
                    .hint("Drop the stale database or choose another identifier.")
                    .raise();
            }
        }
    }
}

/// Whether create_tenant's `schema_name` names a schema to adopt (SPEC §12):
/// false when no such schema exists (it is created as usual).  An existing
/// one is refused unless it is no tenant's, belongs to no extension, and the
/// caller has the privileges of the owner of the schema and of every
/// relation in it: adopting opens those tables to the tenant's grantees, so
/// only someone who could grant them may adopt them.  Migrations run in an
/// adopted schema as its owner (migrations::apply), never with more rights.
/// The schema is locked against DROP until the caller's transaction ends.
pub fn check_adoptable(schema: &str, caller: crate::base::security::Caller) -> bool {
    let Some((oid, _)) = crate::base::security::namespace(schema) else {
        return false;
    };
    unsafe {
        pg_sys::LockDatabaseObject(
            pg_sys::NamespaceRelationId,
            oid,
            0,
            pg_sys::AccessShareLock as pg_sys::LOCKMODE,
        )
    };
    // Taking the lock processed pending invalidations: read it again.
    // Dropped while we waited for the lock: nothing to adopt.
    let Some((oid_now, owner_oid)) = crate::base::security::namespace(schema) else {
        return false;
    };
    if oid_now != oid {
        return false;
    }
    if caller.restricted {
        errors::forbidden(format!("schema \"{schema}\" cannot be adopted from inside a security-restricted operation"))
            .detail("Code that runs as another role for maintenance (an index expression, a trigger tenancy runs as a table's owner) may not adopt schemas.")
            .raise();
    }
    let (tenant, extension, foreign) = db::query_one(
        "SELECT (SELECT t.identifier FROM tenancy.tenants t WHERE t.schema_name OPERATOR(pg_catalog.=) n.nspname),
                (SELECT e.extname::text FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_extension e ON e.oid OPERATOR(pg_catalog.=) d.refobjid
                  WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_namespace'::pg_catalog.regclass AND d.objid OPERATOR(pg_catalog.=) n.oid
                    AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.deptype OPERATOR(pg_catalog.=) 'e'
                  LIMIT 1),
                (SELECT pg_catalog.format('%s (owned by %s)', c.oid::pg_catalog.regclass, c.relowner::pg_catalog.regrole)
                   FROM pg_catalog.pg_class c
                  WHERE c.relnamespace OPERATOR(pg_catalog.=) n.oid AND NOT pg_catalog.pg_has_role($2, c.relowner, 'USAGE')
                  ORDER BY c.relname LIMIT 1)
           FROM pg_catalog.pg_namespace n WHERE n.oid OPERATOR(pg_catalog.=) $1",
        Mode::Latest,
        &[oid.into(), caller.role.into()],
        |r| (r.get::<String>(1), r.get::<String>(2), r.get::<String>(3)),
    )
    .unwrap_or_else(|| errors::internal(format!("schema \"{schema}\" vanished while locked")));
    if let Some(tenant) = tenant {
        errors::duplicate(format!(
            "schema name \"{schema}\" is already used by another tenant"
        ))
        .detail(format!("It is the schema of tenant \"{tenant}\"."))
        .raise();
    }
    if let Some(extension) = extension {
        errors::unsupported(format!(
            "schema \"{schema}\" belongs to the extension \"{extension}\" and cannot be a tenant's"
        ))
        .raise();
    }
    let owner = crate::base::security::role_name(owner_oid);
    if !unsafe { pg_sys::has_privs_of_role(caller.role, owner_oid) } {
        errors::forbidden(format!(
            "permission denied to adopt schema \"{schema}\": it is owned by role {}",
            quote(&owner)
        ))
        .hint(
            "Only a role with the privileges of the schema's owner may make it a tenant's schema.",
        )
        .raise();
    }
    if let Some(relation) = foreign {
        errors::forbidden(format!("permission denied to adopt schema \"{schema}\": it holds {relation}"))
            .detail("Adopting a schema opens its tables to the tenant's grantees.")
            .hint("Only a role with the privileges of the owner of every table in the schema may adopt it.")
            .raise();
    }
    // The name may have been taken on purpose by whoever could create a
    // schema: whoever owns it keeps an owner's rights over the tenant.
    // (A member of the owner role is the owner here; a superuser is not, since
    // it has every role's privileges without being anyone.)
    let callers_own = owner_oid == caller.role
        || unsafe { pg_sys::is_member_of_role_nosuper(caller.role, owner_oid) };
    if !callers_own {
        errors::warning(format!("schema \"{schema}\" is owned by role {}, which keeps an owner's rights on the tenant's data", quote(&owner)))
            .detail("The owner reads and changes its tables whatever the tenant's status, later migrations run as the owner, and its triggers run for the tenant's grantees.")
            .hint(format!("If that is not expected, roll back; give the schema and its tables to another role first (ALTER SCHEMA {} OWNER TO …).", quote(schema)))
            .warn();
    }
    true
}

pub fn schema_exists(schema: &str) -> bool {
    crate::base::security::namespace(schema).is_some()
}

pub fn database_exists(database: &str) -> bool {
    db::query_one(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_database WHERE datname OPERATOR(pg_catalog.=) $1)",
        Mode::Write,
        &[database.into()],
        |r| r.must::<bool>(1),
    )
    .unwrap_or(false)
}

/// The schema dblink is installed in, if it is.
fn dblink_schema() -> Option<String> {
    db::query_one(
        "SELECT n.nspname::text FROM pg_catalog.pg_extension e
           JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) e.extnamespace
          WHERE e.extname OPERATOR(pg_catalog.=) 'dblink'",
        Mode::Write,
        &[],
        |r| r.must::<String>(1),
    )
}

/// Runs one statement on a new loopback connection to this server: CREATE
/// and DROP DATABASE cannot run inside the caller's transaction.
fn on_loopback(statement: &str) {
    let Some(schema) = dblink_schema() else {
        errors::unsupported(
            "database isolation needs the dblink extension, which is not installed",
        )
        .detail(format!("Run by hand as a superuser: {statement};"))
        .raise();
    };
    // lock_timeout: never wait forever.  If this transaction holds a lock the
    // statement needs (it changed the database's privileges, say), the
    // loopback connection would wait for us while we wait for it.
    let sql = format!(
        "SELECT {}.dblink_exec(
             pg_catalog.format('dbname=%s user=%s port=%s host=%s options=''-c lock_timeout=10s''',
                 pg_catalog.quote_literal(pg_catalog.current_database()),
                 pg_catalog.quote_literal(current_user),
                 pg_catalog.current_setting('port'),
                 pg_catalog.quote_literal(COALESCE(NULLIF(pg_catalog.split_part(pg_catalog.current_setting('unix_socket_directories'), ',', 1), ''), 'localhost'))),
             $1)",
        quote(&schema)
    );
    db::query_text(&sql, Mode::Write, &[statement.into()], |_| ());
}

/// Creates what a new tenant needs; returns the audit details of the
/// `provision` event, or None when there was nothing to create.
/// `adopt`: the schema exists already (check_adoptable): its tables are
/// kept and every registered migration is recorded as applied, a baseline.
pub fn provision(t: &Tenant, adopt: bool) -> Option<Value> {
    if let Some(schema) = &t.schema_name {
        if adopt {
            let revoked = crate::isolation::privileges::take_over_schema(schema);
            crate::isolation::privileges::sync_data_access(t);
            let baseline = migrations::record_baseline(t);
            let mut said = errors::notice(format!(
                "schema \"{schema}\" adopted with its tables; migrations recorded as applied without running: {}",
                if baseline.is_empty() { "none".to_string() } else { baseline.join(", ") }
            ));
            if !revoked.is_empty() {
                said = said
                    .detail(format!("Privileges on the schema and its tables were revoked from {}.", revoked.join(", ")))
                    .hint("The tenant's grantees have them while the tenant is active; grant_tenant gives them to a role.");
            }
            said.tell();
            return Some(
                json!({"schema_name": schema, "adopted": true, "baseline": baseline, "revoked_from": revoked}),
            );
        }
        db::execute_dynamic(&format!("CREATE SCHEMA {}", quote(schema)));
        // Roles granted all tenants get the schema before its tables exist,
        // so default privileges cover what the migrations create.
        crate::isolation::privileges::sync_data_access(t);
        let applied = migrations::apply_all(t, schema);
        return Some(json!({"schema_name": schema, "migrations": applied}));
    }
    if let Some(database) = &t.database_name {
        if dblink_schema().is_none() {
            // Made by hand (check_available saw it): adopt it as it is.
            crate::isolation::privileges::sync_data_access(t);
            return Some(json!({"database_name": database, "adopted": true}));
        }
        at_commit(t.id, "create", database);
        return Some(json!({"database_name": database, "at": "commit"}));
    }
    None
}

/// Queues CREATE or DROP DATABASE for the commit of the caller's transaction.
/// Neither can run inside a transaction, so they go over a loopback
/// connection, and they are deferred to COMMIT (by a deferred constraint
/// trigger on `tenancy.database_ops`) so that a transaction that rolls back
/// creates no database and, above all, drops none.
fn at_commit(tenant: pgrx::Uuid, op: &str, database: &str) {
    // Created and dropped in the same transaction: nothing to do at all.
    // (Queued rows are this transaction's own; no one else sees them.)
    if op == "drop" {
        let cancelled = db::query(
            "DELETE FROM tenancy.database_ops o
              WHERE o.op OPERATOR(pg_catalog.=) 'create' AND o.database_name OPERATOR(pg_catalog.=) $1 RETURNING 1",
            Mode::Write,
            &[database.into()],
            |_| (),
        );
        if !cancelled.is_empty() {
            return;
        }
    }
    db::execute(
        "INSERT INTO tenancy.database_ops (tenant_id, op, database_name) VALUES ($1, $2, $3)",
        &[tenant.into(), op.into(), database.into()],
    );
}

/// The deferred trigger behind `at_commit`: runs the queued statement as the
/// extension owner (dblink needs a superuser to connect without a password),
/// then forgets it.  An error here aborts the COMMIT.
#[pg_trigger]
fn database_ops_at_commit<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByRust>>, pgrx::datum::TryFromDatumError> {
    let Some(row) = trigger.new() else {
        return Ok(None);
    };
    let id: i64 = row.get_by_name("id")?.unwrap_or_default();
    crate::base::security::as_owner(|| {
        // Take the queued row; if it is gone, `at_commit` cancelled it (a
        // database created and dropped in the same transaction).
        let queued = db::query_one(
            "DELETE FROM tenancy.database_ops o WHERE o.id OPERATOR(pg_catalog.=) $1
             RETURNING o.op, o.database_name, o.tenant_id",
            Mode::Write,
            &[id.into()],
            |r| {
                (
                    r.must::<String>(1),
                    r.must::<String>(2),
                    r.get::<pgrx::Uuid>(3),
                )
            },
        );
        let Some((op, database, tenant)) = queued else {
            return;
        };
        if op == "create" {
            on_loopback(&format!("CREATE DATABASE {}", quote(&database)));
            // A new database is closed to PUBLIC and open to the tenant's grantees.
            if let Some(t) =
                tenant.and_then(|id| crate::catalog::tenants::find_by_id(id, Mode::Write))
            {
                crate::isolation::privileges::sync_data_access(&t);
            }
        } else {
            on_loopback(&format!("DROP DATABASE IF EXISTS {}", quote(&database)));
        }
    });
    Ok(None)
}

extension_sql!(
    r#"
CREATE CONSTRAINT TRIGGER database_ops_at_commit
    AFTER INSERT ON tenancy.database_ops
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION tenancy.database_ops_at_commit();
"#,
    name = "database_ops_trigger",
    requires = ["isolation_catalog", database_ops_at_commit]
);

/// Drops a schema tenant's schema, and nothing else (move_tenant, once its
/// rows are back in the shared tables); returns `{"schema_name"}`.
pub fn drop_schema(t: &Tenant) -> Value {
    let schema = t.schema_name.clone().unwrap_or_default();
    // The audit row lists what went; a NOTICE per dropped table would only be noise.
    settings::scoped(&[(c"client_min_messages", "warning")], || {
        db::execute_dynamic(&format!("DROP SCHEMA IF EXISTS {} CASCADE", quote(&schema)))
    });
    json!({"schema_name": schema})
}

/// Drops the tenant's schema or database, or deletes its rows from every
/// table in `tenancy.rls_tables`; returns the audit details of `destroy`.
pub fn destroy(t: &Tenant) -> Value {
    match t.isolation.as_str() {
        "schema" => {
            let mut details = drop_schema(t);
            // Its rows in shared tables are its data too (a hybrid tenant).
            details["rows_deleted"] = json!(rls::delete_tenant_rows(t.id));
            details
        }
        "database" => {
            let database = t.database_name.clone().unwrap_or_default();
            if dblink_schema().is_none() {
                errors::unsupported("dropping a tenant's database needs the dblink extension, which is not installed in this database")
                    .detail(format!("To drop it by hand, run as a superuser: DROP DATABASE {};", quote(&database)))
                    .hint("Or CREATE EXTENSION dblink; then call delete_tenant again.")
                    .raise();
            }
            at_commit(t.id, "drop", &database);
            json!({"database_name": database, "at": "commit"})
        }
        _ => json!({"rows_deleted": rls::delete_tenant_rows(t.id)}),
    }
}
