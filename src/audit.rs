//! The one place that writes audit rows and `tenancy_events` notifications.
//! Both happen in the caller's transaction: the audit row commits or rolls
//! back with the change, and PostgreSQL delivers NOTIFY only at commit.

use pgrx::JsonB;
use serde_json::{json, Value};

use crate::db;

/// One change to one tenant.
pub struct Event {
    /// None for a change that concerns every tenant (an all-tenants grant).
    pub tenant_id: Option<pgrx::Uuid>,
    pub identifier: Option<String>,
    pub action: &'static str,
    pub details: Value,
}

impl Event {
    pub fn new(tenant_id: pgrx::Uuid, identifier: &str, action: &'static str, details: Value) -> Self {
        Event { tenant_id: Some(tenant_id), identifier: Some(identifier.to_string()), action, details }
    }

    pub fn all_tenants(action: &'static str, details: Value) -> Self {
        Event { tenant_id: None, identifier: None, action, details }
    }
}

/// The SQL that writes audit rows and notifications, shared by every
/// statement that records events.  It follows a CTE named `events` with
/// columns `(n, tenant_id uuid, action text, identifier text, details jsonb)`
/// and defines `recorded(n)`, which the statement must select from (a CTE
/// that is never read is never run):
/// `WITH events AS (...), ` + audit_ctes!() + ` SELECT ... (SELECT n FROM recorded)`.
/// The payload is `{"action", "tenant_id", "identifier"}` as jsonb text.
#[macro_export]
macro_rules! audit_ctes {
    () => {
        "written AS (
             INSERT INTO tenancy.audit_log (tenant_id, action, details)
             SELECT e.tenant_id, e.action, e.details FROM events e ORDER BY e.n),
         recorded AS (
             SELECT pg_catalog.count(pg_catalog.pg_notify('tenancy_events',
                        pg_catalog.jsonb_build_object('action', e.action, 'tenant_id', e.tenant_id,
                                                      'identifier', e.identifier)::text)) AS n
               FROM (SELECT * FROM events ORDER BY n) e)"
    };
}

/// For a statement that records one event per row of its row source `FROM`
/// (a CTE, or `(VALUES (1)) one`): the CTE `written` that writes the audit
/// row (a data-modifying CTE always runs, read or not).  Pair it with
/// [`notify_one!`] in the select list of the same statement, over the same
/// rows.  Cheaper for PostgreSQL to start than [`audit_ctes!`]'s events CTE,
/// sort and count: create_tenant gains about 10 % from it.
#[macro_export]
macro_rules! audit_one {
    (from: $from:literal, tenant: $tenant:literal, action: $action:literal, details: $details:literal) => {
        concat!(
            "written AS (INSERT INTO tenancy.audit_log (tenant_id, action, details) SELECT ",
            $tenant, ", ", $action, ", ", $details, " FROM ", $from, ")"
        )
    };
}

/// The select-list expression that announces one event on `tenancy_events`
/// (the payload of [`audit_ctes!`]); evaluated once per row selected.
#[macro_export]
macro_rules! notify_one {
    (tenant: $tenant:literal, action: $action:literal, identifier: $identifier:literal) => {
        concat!(
            "pg_catalog.pg_notify('tenancy_events', pg_catalog.jsonb_build_object('action', ",
            $action, ", 'tenant_id', ", $tenant, ", 'identifier', ", $identifier, ")::text)"
        )
    };
}

/// Records every event (in order) and announces each on `tenancy_events`,
/// in one statement.
pub fn record(events: Vec<Event>) {
    if events.is_empty() {
        return;
    }
    crate::context::forget();
    let mut ids = Vec::with_capacity(events.len());
    let mut actions = Vec::with_capacity(events.len());
    let mut identifiers = Vec::with_capacity(events.len());
    let mut details = Vec::with_capacity(events.len());
    for e in events {
        ids.push(e.tenant_id);
        actions.push(e.action.to_string());
        identifiers.push(e.identifier);
        details.push(JsonB(e.details));
    }
    db::query(
        concat!(
            "WITH events AS (
                 SELECT e.n, e.tenant_id, e.action, e.identifier, e.details
                   FROM ROWS FROM (pg_catalog.unnest($1::uuid[]), pg_catalog.unnest($2::text[]),
                                   pg_catalog.unnest($3::text[]), pg_catalog.unnest($4::jsonb[]))
                        WITH ORDINALITY AS e(tenant_id, action, identifier, details, n)), ",
            audit_ctes!(),
            " SELECT n FROM recorded"
        ),
        db::Mode::Write,
        &[ids.into(), actions.into(), identifiers.into(), details.into()],
        |_| (),
    );
}

pub fn record_one(e: Event) {
    record(vec![e]);
}

/// `{"field": {"old": .., "new": ..}}` for audit details.
pub fn change(old: impl Into<Value>, new: impl Into<Value>) -> Value {
    json!({"old": old.into(), "new": new.into()})
}
