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

/// The SQL that writes audit rows, shared by every statement that records
/// events: the CTE `written`, one audit row per row of `from` (a CTE, or
/// `(VALUES (1)) one`), in that order.  A data-modifying CTE always runs,
/// read or not.  Pair it with [`notify_event!`] over the same rows.
#[macro_export]
macro_rules! audit_rows {
    (from: $from:literal, tenant: $tenant:literal, action: $action:literal, details: $details:literal) => {
        concat!(
            "written AS (INSERT INTO tenancy.audit_log (tenant_id, action, details) SELECT ",
            $tenant, ", ", $action, ", ", $details, " FROM ", $from, ")"
        )
    };
}

/// The expression that announces one event on `tenancy_events` with the
/// payload `{"action", "tenant_id", "identifier"}` (jsonb text); a
/// statement selects it once per event.
#[macro_export]
macro_rules! notify_event {
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
            crate::audit_rows!(from: "events e ORDER BY e.n", tenant: "e.tenant_id", action: "e.action", details: "e.details"),
            " SELECT ",
            crate::notify_event!(tenant: "e.tenant_id", action: "e.action", identifier: "e.identifier"),
            " FROM events e ORDER BY e.n"
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
