//! Changing tenants (SPEC §2): create, update, status, metadata, delete.
//!
//! Every function validates all of its input before it writes anything,
//! makes its change, then records the audit row and the notification in the
//! same transaction.  An error anywhere aborts the statement, so a failing
//! call leaves no trace.

pub mod grants;
pub mod search;

use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Map, Value};

use crate::base::db::{self, Mode};
use crate::base::errors::{self, required};
use crate::base::settings;
use crate::base::sqltypes::Name;
use crate::base::validate;
use crate::catalog::audit::{self, change, Event};
use crate::catalog::tenants::{self, Tenant};
use crate::catalog::{isolation, tenant_status};
use crate::isolation::provision;
use crate::tenant_cols;

pub use crate::catalog::tenants::check_identifier;

fn check_name(name: &str) {
    if let Err(why) = validate::check_name(name) {
        errors::invalid(format!(
            "invalid tenant name \"{}\": {why}",
            errors::shown(name)
        ))
        .raise();
    }
}

fn check_object(value: &Value, arg: &str) -> Map<String, Value> {
    match value {
        Value::Object(m) => m.clone(),
        other => {
            let kind = match other {
                Value::Null => "null",
                Value::Bool(_) => "a boolean",
                Value::Number(_) => "a number",
                Value::String(_) => "a string",
                Value::Array(_) => "an array",
                Value::Object(_) => "an object",
            };
            errors::invalid(format!("\"{arg}\" must be a JSON object, got {kind}"))
                .hint("Pass a jsonb object such as '{\"plan\": \"pro\"}'.")
                .raise()
        }
    }
}

/// The isolation a new tenant gets: the argument, else `tenancy.default_isolation`;
/// under `hybrid`, schema for a tier listed in `tenancy.premium_tiers`, else rls.
fn resolve_isolation(arg: Option<isolation>, metadata: &Map<String, Value>) -> isolation {
    if let Some(i) = arg {
        return i;
    }
    match settings::default_isolation().as_str() {
        "schema" => isolation::schema,
        "database" => isolation::database,
        "hybrid" => {
            let tier = metadata.get("tier").and_then(Value::as_str);
            if tier.is_some_and(|t| settings::premium_tiers().iter().any(|p| p == t)) {
                isolation::schema
            } else {
                isolation::rls
            }
        }
        _ => isolation::rls,
    }
}

fn object_name(prefix: &str, identifier: &str, what: &str) -> String {
    validate::tenant_object_name(prefix, identifier).unwrap_or_else(|| {
        let err = errors::invalid(format!(
            "tenant identifier \"{identifier}\" is too long for a {what} name: \"{prefix}\" plus the identifier exceeds 63 bytes"
        ));
        // Only schema names take their prefix from a setting.
        if what == "schema" {
            err.hint("Choose a shorter identifier, a shorter tenancy.schema_prefix, or pass schema_name.")
        } else {
            err.hint("Choose a shorter identifier.")
        }
        .raise()
    })
}

/// `schema_name` of create_tenant (SPEC §12): valid, and only for a schema tenant.
fn check_schema_name(given: String, iso: isolation) -> String {
    if let Err(why) = validate::check_schema_name(&given) {
        errors::invalid(format!("invalid schema name \"{}\": {why}", errors::shown(&given)))
            .hint("A tenant's schema name is 1 to 63 bytes of lowercase letters, digits and _, starting with a letter; not public, tenancy, information_schema or pg_*.")
            .raise();
    }
    if iso != isolation::schema {
        errors::invalid(format!(
            "schema_name is only for schema tenants; this tenant's isolation is {}",
            iso.as_str()
        ))
        .hint("Pass isolation => 'schema' with schema_name.")
        .raise();
    }
    given
}

/// Create a tenant: validate, insert, provision its schema or database,
/// audit and notify, all or nothing in the caller's transaction.  The C
/// symbol is new in 0.4.0 (schema_name); `create_tenant` below keeps 0.3.0's.
/// SECURITY INVOKER in SQL: it runs as the catalog's owner through
/// `crate::base::security::definer`, which tells it who called, for the adoption's check.
#[pg_extern(name = "create_tenant", volatile, requires = ["catalog"])]
#[search_path(pg_catalog, pg_temp)]
fn create_tenant_with_schema_name(
    identifier: Option<&str>,
    name: Option<&str>,
    metadata: default!(Option<JsonB>, "'{}'"),
    isolation: default!(Option<isolation>, "NULL"),
    id: default!(Option<pgrx::Uuid>, "NULL"),
    schema_name: default!(Option<Name>, "NULL"),
) -> pgrx::composite_type!('static, "tenants") {
    crate::base::security::definer(|caller| {
        create(
            caller,
            identifier,
            name,
            metadata,
            isolation,
            id,
            schema_name,
        )
    })
}

/// Also the creation of import_tenant's and clone_tenant's new tenant
/// (operations::export).
pub(crate) fn create(
    caller: crate::base::security::Caller,
    identifier: Option<&str>,
    name: Option<&str>,
    metadata: Option<JsonB>,
    isolation: Option<isolation>,
    id: Option<pgrx::Uuid>,
    schema_name: Option<Name>,
) -> pgrx::composite_type!('static, "tenants") {
    let identifier = required(identifier, "identifier");
    let name = required(name, "name");
    let metadata = required(metadata, "metadata").0;
    check_identifier(identifier);
    check_name(name);
    let meta = check_object(&metadata, "metadata");
    let iso = resolve_isolation(isolation, &meta);
    let given = schema_name.map(|n| check_schema_name(n.0, iso));
    let (schema_name, database_name) =
        match iso {
            isolation::schema => (
                Some(given.clone().unwrap_or_else(|| {
                    object_name(&settings::schema_prefix(), identifier, "schema")
                })),
                None,
            ),
            isolation::database => (None, Some(object_name("tenant_", identifier, "database"))),
            isolation::rls => (None, None),
        };
    // A schema named by the caller may exist already: it is adopted (after
    // the checks of provision::check_adoptable).  A derived name never is.
    let adopt = given.is_some_and(|s| provision::check_adoptable(&s, caller));
    if !adopt {
        provision::check_available(iso, schema_name.as_deref(), database_name.as_deref());
    }

    // Insert, audit and notify in one statement; ON CONFLICT DO NOTHING waits
    // for a concurrent creator of the same identifier and then yields no row
    // (so no audit row and no notification either).
    crate::catalog::changed();
    let inserted = db::query_one(
        concat!(
            "WITH i AS (
                 INSERT INTO tenancy.tenants AS t (id, identifier, name, isolation, schema_name, database_name, metadata)
                 VALUES (COALESCE($1, tenancy.uuid_generate_v7()), $2, $3, $4::tenancy.isolation, $5, $6, $7)
                 ON CONFLICT DO NOTHING
                 RETURNING ", tenant_cols!(), "), ",
            crate::audit_rows!(
                from: "i",
                tenant: "i.id",
                action: "'create'::text",
                details: "pg_catalog.jsonb_build_object('identifier', i.identifier, 'name', $3::text, 'isolation', $4::text,
                              'status', 'active'::text, 'metadata', $7::jsonb, 'schema_name', $5::text, 'database_name', $6::text)"
            ),
            " SELECT i.t, i.id, i.identifier, i.status, i.isolation, i.schema_name, i.database_name, ",
            crate::notify_event!(tenant: "i.id", action: "'create'::text", identifier: "i.identifier", audit_id: crate::written_id!()),
            " FROM i"
        ),
        Mode::Write,
        &[
            id.into(),
            identifier.into(),
            name.into(),
            iso.as_str().into(),
            schema_name.clone().into(),
            database_name.clone().into(),
            JsonB(metadata).into(),
        ],
        Tenant::from_row,
    );
    let tenant = inserted.unwrap_or_else(|| {
        raise_conflict(
            id,
            identifier,
            schema_name.as_deref(),
            database_name.as_deref(),
        )
    });
    if let Some(details) = provision::provision(&tenant, adopt) {
        audit::record_one(Event::new(tenant.id, identifier, "provision", details));
    }
    tenant.row
}

// The create_tenant of 0.1.0 to 0.3.0, without schema_name: a database not
// yet updated (ALTER EXTENSION tenancy UPDATE) calls this entry point.
#[pg_extern(volatile, security_definer, sql = false)]
#[search_path(pg_catalog, pg_temp)]
fn create_tenant(
    identifier: Option<&str>,
    name: Option<&str>,
    metadata: Option<JsonB>,
    isolation: Option<isolation>,
    id: Option<pgrx::Uuid>,
) -> pgrx::composite_type!('static, "tenants") {
    create_tenant_with_schema_name(identifier, name, metadata, isolation, id, None)
}

/// The insert hit a unique index: say which value is taken.
fn raise_conflict(
    id: Option<pgrx::Uuid>,
    identifier: &str,
    schema: Option<&str>,
    database: Option<&str>,
) -> ! {
    let clash = db::query_one(
        "SELECT t.id OPERATOR(pg_catalog.=) $1, t.identifier OPERATOR(pg_catalog.=) $2,
                t.schema_name::text OPERATOR(pg_catalog.=) $3, t.database_name::text OPERATOR(pg_catalog.=) $4
           FROM tenancy.tenants t
          WHERE t.id OPERATOR(pg_catalog.=) $1 OR t.identifier OPERATOR(pg_catalog.=) $2
             OR t.schema_name::text OPERATOR(pg_catalog.=) $3 OR t.database_name::text OPERATOR(pg_catalog.=) $4
          LIMIT 1",
        Mode::Write,
        &[id.into(), identifier.into(), schema.into(), database.into()],
        |r| (r.get::<bool>(1) == Some(true), r.get::<bool>(2) == Some(true), r.get::<bool>(3) == Some(true)),
    );
    let err = match clash {
        Some((_, true, _)) => {
            errors::duplicate(format!("tenant identifier \"{identifier}\" already exists"))
        }
        Some((true, _, _)) => errors::duplicate(format!(
            "tenant id {} already exists",
            id.map(|u| u.to_string()).unwrap_or_default()
        )),
        Some((_, _, true)) => errors::duplicate(format!(
            "schema name \"{}\" is already used by another tenant",
            schema.unwrap_or("")
        )),
        Some(_) => errors::duplicate(format!(
            "database name \"{}\" is already used by another tenant",
            database.unwrap_or("")
        )),
        None => errors::duplicate(format!(
            "tenant \"{identifier}\" conflicts with a concurrent change"
        )),
    };
    err.hint("Identifiers, ids, schema and database names are unique across all tenants, deleted ones included.").raise()
}

/// Replace the given fields; NULL leaves a field as it is.  Metadata is
/// replaced, not merged.  A rename keeps the tenant's schema name.
#[pg_extern(volatile, security_definer, requires = ["catalog"])]
#[search_path(pg_catalog, pg_temp)]
fn update_tenant(
    id: Option<pgrx::Uuid>,
    identifier: default!(Option<&str>, "NULL"),
    name: default!(Option<&str>, "NULL"),
    metadata: default!(Option<JsonB>, "NULL"),
) -> pgrx::composite_type!('static, "tenants") {
    let id = required(id, "id");
    if let Some(i) = identifier {
        check_identifier(i);
    }
    if let Some(n) = name {
        check_name(n);
    }
    if let Some(m) = &metadata {
        check_object(&m.0, "metadata");
    }
    let old = tenants::lock(id);
    let current = db::query_one(
        "SELECT t.name, t.metadata FROM tenancy.tenants t WHERE t.id OPERATOR(pg_catalog.=) $1",
        Mode::Write,
        &[id.into()],
        |r| (r.must::<String>(1), r.must::<JsonB>(2).0),
    )
    .unwrap_or_else(|| errors::tenant_not_found(id).raise());

    let mut details = Map::new();
    if let Some(i) = identifier.filter(|i| *i != old.identifier) {
        if tenants::find_by_identifier(i, Mode::Write).is_some() {
            errors::duplicate(format!("tenant identifier \"{i}\" already exists")).raise();
        }
        details.insert("identifier".into(), change(old.identifier.as_str(), i));
    }
    if let Some(n) = name.filter(|n| *n != current.0) {
        details.insert("name".into(), change(current.0.as_str(), n));
    }
    if let Some(m) = metadata.as_ref().filter(|m| m.0 != current.1) {
        details.insert("metadata".into(), change(current.1.clone(), m.0.clone()));
    }
    if details.is_empty() {
        return old.row;
    }
    let updated = db::query_one(
        concat!(
            "UPDATE tenancy.tenants AS t
                SET identifier = COALESCE($2, t.identifier),
                    name = COALESCE($3, t.name),
                    metadata = COALESCE($4, t.metadata),
                    updated_at = GREATEST(pg_catalog.now(), t.created_at)
              WHERE t.id OPERATOR(pg_catalog.=) $1
          RETURNING ",
            tenant_cols!()
        ),
        Mode::Write,
        &[id.into(), identifier.into(), name.into(), metadata.into()],
        Tenant::from_row,
    )
    .unwrap_or_else(|| errors::tenant_not_found(id).raise());
    audit::record_one(Event::new(
        id,
        &updated.identifier,
        "update",
        Value::Object(details),
    ));
    updated.row
}

fn illegal_transition(t: &Tenant, to: &str) -> ! {
    let hint = match (t.status.as_str(), to) {
        ("deleted", _) => "A deleted tenant stays deleted.",
        ("provisioning", _) => "A provisioning tenant can only become active.",
        (_, "provisioning") => "No tenant goes back to provisioning.",
        _ => "Allowed: provisioning to active, active to and from suspended, active or suspended to deleted.",
    };
    errors::wrong_state(format!(
        "tenant \"{}\" cannot go from {} to {}",
        t.identifier, t.status, to
    ))
    .hint(hint)
    .raise()
}

/// Moves one locked tenant to `status`; None when it already had it.
fn change_status(t: &Tenant, status: &str) -> Option<Tenant> {
    change_status_and_access(t, status, true)
}

/// `change_status`, optionally leaving the privileges on the tenant's schema
/// or database alone (when they are about to be dropped anyway).
fn change_status_and_access(t: &Tenant, status: &str, sync_access: bool) -> Option<Tenant> {
    if t.status == status {
        return None;
    }
    if !validate::transition_allowed(&t.status, status) {
        illegal_transition(t, status);
    }
    let updated = db::query_one(
        concat!(
            "UPDATE tenancy.tenants AS t
                SET status = $2::tenancy.tenant_status,
                    updated_at = GREATEST(pg_catalog.now(), t.created_at)
              WHERE t.id OPERATOR(pg_catalog.=) $1
          RETURNING ",
            tenant_cols!()
        ),
        Mode::Write,
        &[t.id.into(), status.into()],
        Tenant::from_row,
    )
    .unwrap_or_else(|| errors::tenant_not_found(t.id).raise());
    if sync_access {
        crate::isolation::privileges::sync_data_access(&updated);
    }
    if status == "deleted" {
        crate::lifecycle::grants::unmark_ungranted();
    }
    Some(updated)
}

pub fn set_status_of(id: pgrx::Uuid, status: &str) -> Tenant {
    let old = tenants::lock(id);
    match change_status(&old, status) {
        None => old,
        Some(t) => {
            audit::record_one(Event::new(
                t.id,
                &t.identifier,
                "status",
                json!({"status": change(old.status, status)}),
            ));
            t
        }
    }
}

/// Change a tenant's status, following the transition rules (else 55000).
#[pg_extern(volatile, security_definer, requires = ["catalog"])]
#[search_path(pg_catalog, pg_temp)]
fn set_status(
    id: Option<pgrx::Uuid>,
    status: Option<tenant_status>,
) -> pgrx::composite_type!('static, "tenants") {
    let id = required(id, "id");
    let status = required(status, "status");
    set_status_of(id, status.as_str()).row
}

/// Shorthand for `set_status(id, 'suspended')`.
#[pg_extern(volatile, security_definer, requires = ["catalog"])]
#[search_path(pg_catalog, pg_temp)]
fn suspend_tenant(id: Option<pgrx::Uuid>) -> pgrx::composite_type!('static, "tenants") {
    set_status_of(required(id, "id"), "suspended").row
}

/// Shorthand for `set_status(id, 'active')`.
#[pg_extern(volatile, security_definer, requires = ["catalog"])]
#[search_path(pg_catalog, pg_temp)]
fn activate_tenant(id: Option<pgrx::Uuid>) -> pgrx::composite_type!('static, "tenants") {
    set_status_of(required(id, "id"), "active").row
}

/// Set the status of many tenants: every transition is checked first, and if
/// any is illegal nothing changes.  Unknown ids are skipped; rows come back
/// in the order of `ids`.
#[pg_extern(volatile, security_definer, requires = ["catalog"])]
#[search_path(pg_catalog, pg_temp)]
fn bulk_set_status(
    ids: Option<Vec<Option<pgrx::Uuid>>>,
    status: Option<tenant_status>,
) -> SetOfIterator<'static, pgrx::composite_type!('static, "tenants")> {
    let ids = required(ids, "ids");
    let status = required(status, "status").as_str();
    // Lock in id order so concurrent bulk calls cannot deadlock each other.
    let locked = db::query(
        concat!(
            "SELECT ",
            tenant_cols!(),
            " FROM tenancy.tenants t
              WHERE t.id OPERATOR(pg_catalog.=) ANY ($1::uuid[])
              ORDER BY t.id FOR UPDATE"
        ),
        Mode::Write,
        &[ids.clone().into()],
        Tenant::from_row,
    );
    if let Some(bad) = locked
        .iter()
        .find(|t| !validate::transition_allowed(&t.status, status))
    {
        illegal_transition(bad, status);
    }
    let changing: Vec<&Tenant> = locked.iter().filter(|t| t.status != status).collect();
    if !changing.is_empty() {
        let changing_ids: Vec<pgrx::Uuid> = changing.iter().map(|t| t.id).collect();
        db::execute(
            "UPDATE tenancy.tenants AS t
                SET status = $2::tenancy.tenant_status,
                    updated_at = GREATEST(pg_catalog.now(), t.created_at)
              WHERE t.id OPERATOR(pg_catalog.=) ANY ($1::uuid[])",
            &[changing_ids.clone().into(), status.into()],
        );
        for t in tenants::by_ids(
            changing_ids.iter().map(|id| Some(*id)).collect(),
            Mode::Write,
        ) {
            crate::isolation::privileges::sync_data_access(&t);
        }
        if status == "deleted" {
            crate::lifecycle::grants::unmark_ungranted();
        }
        audit::record(
            changing
                .iter()
                .map(|t| {
                    Event::new(
                        t.id,
                        &t.identifier,
                        "status",
                        json!({"status": change(t.status.as_str(), status)}),
                    )
                })
                .collect(),
        );
    }
    SetOfIterator::new(tenants::by_ids(ids, Mode::Write).into_iter().map(|t| t.row))
}

/// The merge statement: `metadata || PATCH` on tenant $1, with `OLD` as
/// `u.old` in RETURNING, the audit row with `DETAILS`, and the notification.
macro_rules! merge_statement {
    ($patch:literal, $old:literal, $details:literal) => {
        concat!(
            "WITH u AS (UPDATE tenancy.tenants AS t
                           SET metadata = t.metadata OPERATOR(pg_catalog.||) ", $patch, ",
                               updated_at = GREATEST(pg_catalog.now(), t.created_at)
                         WHERE t.id OPERATOR(pg_catalog.=) $1
                     RETURNING t, t.id, t.identifier, ", $old, " AS old), ",
            crate::audit_rows!(from: "u", tenant: "u.id", action: "'metadata'::text", details: $details),
            " SELECT u.t, ",
            crate::notify_event!(tenant: "u.id", action: "'metadata'::text", identifier: "u.identifier", audit_id: crate::written_id!()),
            " FROM u"
        )
    };
}

/// Shallow-merge `patch` into the tenant's metadata in one UPDATE
/// (`metadata || patch`): concurrent merges never lose a key, and a key set
/// to JSON null is kept as null.
#[pg_extern(volatile, security_definer, requires = ["catalog"])]
#[search_path(pg_catalog, pg_temp)]
fn merge_metadata(
    id: Option<pgrx::Uuid>,
    patch: Option<JsonB>,
) -> pgrx::composite_type!('static, "tenants") {
    let id = required(id, "id");
    let patch = required(patch, "patch").0;
    if check_object(&patch, "patch").is_empty() {
        return tenants::find_by_id(id, Mode::Write)
            .unwrap_or_else(|| errors::tenant_not_found(id).raise())
            .row;
    }
    // One statement: the UPDATE, its audit row and its notification.  The
    // audit wants the old values of the patched keys, which RETURNING cannot
    // see before PostgreSQL 18; so the SET expression hands them to
    // merge_capture() (evaluated on the very version being replaced, again
    // after a concurrent update made PostgreSQL re-check the row) and
    // RETURNING takes them back with merge_captured().  `metadata || patch`
    // is computed from the row being updated, so concurrent merges never
    // lose a key, and the row stays locked only for this statement and the
    // commit (locking it first in a separate statement halved throughput
    // under 8 concurrent merges).
    crate::catalog::changed();
    if !capture_installed() {
        return merge_with_lock_first(id, patch);
    }
    db::query_one(
        merge_statement!(
            "tenancy.merge_capture((SELECT pg_catalog.jsonb_object_agg(k.key, k.value)
                                      FROM pg_catalog.jsonb_each(t.metadata) AS k
                                     WHERE $2 OPERATOR(pg_catalog.?) k.key), $2)",
            "tenancy.merge_captured()",
            "pg_catalog.jsonb_build_object('merge', $2, 'old', u.old)"
        ),
        Mode::Write,
        &[id.into(), JsonB(patch).into()],
        |r| r.must::<tenants::TenantRow>(1),
    )
    .unwrap_or_else(|| errors::tenant_not_found(id).raise())
}

/// Whether this database has the 0.2.0 SQL objects merge_metadata uses.  A
/// database still at 0.1.0 (new library installed, ALTER EXTENSION UPDATE not
/// yet run) keeps the 0.1.0 way.  Found once per backend: functions of an
/// installed version are not dropped under a running session (DROP
/// EXTENSION and CREATE EXTENSION VERSION '0.1.0' in one session is the
/// exception, and gets "function does not exist" until it reconnects).
fn capture_installed() -> bool {
    thread_local! {
        static FOUND: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if FOUND.with(|f| f.get()) {
        return true;
    }
    // SAFETY: to_regprocedure(text) returns a regprocedure or NULL; it reads
    // the catalog caches, no SQL.
    let found = unsafe {
        pgrx::direct_function_call::<pg_sys::Oid>(
            pg_sys::to_regprocedure,
            &["tenancy.merge_captured()".into_datum()],
        )
    }
    .is_some();
    FOUND.with(|f| f.set(found));
    found
}

/// merge_metadata as 0.1.0 did it: lock the row and read the patched keys'
/// old values, then UPDATE, audit and notify in a second statement.
fn merge_with_lock_first(
    id: pgrx::Uuid,
    patch: Value,
) -> pgrx::composite_type!('static, "tenants") {
    let old_values = db::query_one(
        "SELECT COALESCE((SELECT pg_catalog.jsonb_object_agg(k.key, k.value)
                            FROM pg_catalog.jsonb_each(t.metadata) AS k
                           WHERE $2 OPERATOR(pg_catalog.?) k.key), '{}')
           FROM tenancy.tenants t WHERE t.id OPERATOR(pg_catalog.=) $1 FOR UPDATE",
        Mode::Write,
        &[id.into(), JsonB(patch.clone()).into()],
        |r| r.must::<JsonB>(1).0,
    )
    .unwrap_or_else(|| errors::tenant_not_found(id).raise());
    let details = json!({"merge": patch, "old": old_values});
    db::query_one(
        merge_statement!("$2", "NULL::jsonb", "$3::jsonb"),
        Mode::Write,
        &[id.into(), JsonB(patch).into(), JsonB(details).into()],
        |r| r.must::<tenants::TenantRow>(1),
    )
    .unwrap_or_else(|| errors::tenant_not_found(id).raise())
}

thread_local! {
    /// The old values merge_capture() saw, until merge_captured() takes them.
    static CAPTURED: std::cell::RefCell<Option<Value>> = const { std::cell::RefCell::new(None) };
}

/// Internal to merge_metadata: remembers `old` (the patched keys' values in
/// the row being updated) and returns `patch`.
#[pg_extern(volatile, parallel_unsafe, requires = ["catalog"])]
fn merge_capture(old: Option<JsonB>, patch: Option<JsonB>) -> Option<JsonB> {
    CAPTURED.with(|c| *c.borrow_mut() = Some(old.map(|j| j.0).unwrap_or_else(|| json!({}))));
    patch
}

/// Internal to merge_metadata: the old values merge_capture() remembered for
/// the row just updated (`{}` when none).
#[pg_extern(volatile, parallel_unsafe, requires = ["catalog"])]
fn merge_captured() -> JsonB {
    JsonB(
        CAPTURED
            .with(|c| c.borrow_mut().take())
            .unwrap_or_else(|| json!({})),
    )
}

/// Remove keys from the tenant's metadata in one UPDATE.
#[pg_extern(volatile, security_definer, requires = ["catalog"])]
#[search_path(pg_catalog, pg_temp)]
fn remove_metadata_keys(
    id: Option<pgrx::Uuid>,
    keys: Option<Vec<Option<String>>>,
) -> pgrx::composite_type!('static, "tenants") {
    let id = required(id, "id");
    let keys: Vec<String> = required(keys, "keys").into_iter().flatten().collect();
    let (t, removed) = db::query_one(
        concat!(
            "WITH o AS (SELECT t.id, t.metadata FROM tenancy.tenants t
                         WHERE t.id OPERATOR(pg_catalog.=) $1 FOR UPDATE)
             UPDATE tenancy.tenants AS t
                SET metadata = t.metadata OPERATOR(pg_catalog.-) $2::text[],
                    updated_at = CASE WHEN t.metadata OPERATOR(pg_catalog.?|) $2::text[]
                                      THEN GREATEST(pg_catalog.now(), t.created_at)
                                      ELSE t.updated_at END
               FROM o
              WHERE t.id OPERATOR(pg_catalog.=) o.id
          RETURNING ",
            tenant_cols!(),
            ",
                    (SELECT pg_catalog.jsonb_object_agg(k.key, k.value)
                       FROM pg_catalog.jsonb_each(o.metadata) AS k
                      WHERE k.key OPERATOR(pg_catalog.=) ANY ($2::text[]))"
        ),
        Mode::Write,
        &[id.into(), keys.clone().into()],
        |r| (Tenant::from_row(r), r.get::<JsonB>(8).map(|j| j.0)),
    )
    .unwrap_or_else(|| errors::tenant_not_found(id).raise());
    if let Some(removed) = removed {
        audit::record_one(Event::new(
            t.id,
            &t.identifier,
            "metadata",
            json!({"remove": keys, "old": removed}),
        ));
    }
    t.row
}

/// Delete a tenant: mark it deleted when `tenancy.soft_delete` is on (the
/// default), else remove its row.  `destroy_data` also drops its schema,
/// deletes its rows from every RLS table, or drops its database.
#[pg_extern(volatile, security_definer, requires = ["catalog"])]
#[search_path(pg_catalog, pg_temp)]
fn delete_tenant(id: Option<pgrx::Uuid>, destroy_data: default!(Option<bool>, false)) {
    let id = required(id, "id");
    let destroy_data = required(destroy_data, "destroy_data");
    let t = tenants::lock(id);
    let mut events = Vec::new();
    // A database about to be dropped over the loopback connection must not
    // have its pg_database row changed by this transaction first (the DROP
    // would wait for this transaction, which waits for the DROP).
    let keep_privileges = destroy_data && t.database_name.is_some();
    if settings::soft_delete() {
        let old_status = t.status.clone();
        if old_status != "deleted" && !validate::transition_allowed(&old_status, "deleted") {
            illegal_transition(&t, "deleted");
        }
        if old_status != "deleted" {
            change_status_and_access(&t, "deleted", !keep_privileges);
            events.push(Event::new(
                id,
                &t.identifier,
                "delete",
                json!({"soft": true, "status": change(old_status, "deleted")}),
            ));
        }
    } else {
        if !keep_privileges {
            crate::isolation::privileges::close_data_access(&t);
        }
        let row = db::query_one(
            "DELETE FROM tenancy.tenants AS t WHERE t.id OPERATOR(pg_catalog.=) $1 RETURNING pg_catalog.to_jsonb(t)",
            Mode::Write,
            &[id.into()],
            |r| r.must::<JsonB>(1).0,
        );
        events.push(Event::new(
            id,
            &t.identifier,
            "delete",
            json!({"soft": false, "tenant": row}),
        ));
        // The tenant's grants went with its row.
        crate::lifecycle::grants::unmark_ungranted();
    }
    if destroy_data {
        events.push(Event::new(
            id,
            &t.identifier,
            "destroy",
            crate::isolation::footprint::certified(&t, || provision::destroy(&t)),
        ));
    }
    audit::record(events);
}
