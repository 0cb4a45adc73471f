//! The one place that writes audit rows and `tenancy_events` notifications.
//! Both happen in the caller's transaction: the audit row commits or rolls
//! back with the change, and PostgreSQL delivers NOTIFY only at commit.

use pgrx::JsonB;
use serde_json::{json, Value};

use crate::base::db;

/// One change to one tenant.
pub struct Event {
    /// None for a change that concerns every tenant (an all-tenants grant).
    pub tenant_id: Option<pgrx::Uuid>,
    pub identifier: Option<String>,
    pub action: &'static str,
    pub details: Value,
}

impl Event {
    pub fn new(
        tenant_id: pgrx::Uuid,
        identifier: &str,
        action: &'static str,
        details: Value,
    ) -> Self {
        Event {
            tenant_id: Some(tenant_id),
            identifier: Some(identifier.to_string()),
            action,
            details,
        }
    }

    pub fn all_tenants(action: &'static str, details: Value) -> Self {
        Event {
            tenant_id: None,
            identifier: None,
            action,
            details,
        }
    }
}

/// The SQL that writes audit rows, shared by every statement that records
/// events: the CTE `written`, one audit row per row of `from` (a CTE, or
/// `(VALUES (1)) one`), in that order, returning each row's `id`.  A
/// data-modifying CTE always runs, read or not.  Pair it with
/// [`notify_event!`] over the same rows.  With `id:`, the audit row takes
/// that id (drawn beforehand from the log's sequence, so that a statement
/// writing several events can hand each its own in the notification).
#[macro_export]
macro_rules! audit_rows {
    (from: $from:literal, tenant: $tenant:literal, action: $action:literal, details: $details:literal) => {
        concat!(
            "written AS (INSERT INTO tenancy.audit_log (tenant_id, action, details) SELECT ",
            $tenant, ", ", $action, ", ", $details, " FROM ", $from, " RETURNING id)"
        )
    };
    (from: $from:literal, id: $id:literal, tenant: $tenant:literal, action: $action:literal, details: $details:literal) => {
        concat!(
            "written AS (INSERT INTO tenancy.audit_log (id, tenant_id, action, details) OVERRIDING SYSTEM VALUE SELECT ",
            $id, ", ", $tenant, ", ", $action, ", ", $details, " FROM ", $from, " RETURNING id)"
        )
    };
}

/// The id of the one audit row a statement's `written` CTE wrote.
#[macro_export]
macro_rules! written_id {
    () => {
        "(SELECT w.id FROM written w)"
    };
}

/// The expression that announces one event on `tenancy_events` with the
/// payload `{"action", "tenant_id", "identifier", "audit_id"}` (jsonb text);
/// a statement selects it once per event.  `audit_id` is the id of the
/// event's row in `tenancy.audit_log`: anyone can NOTIFY on any channel, so
/// a listener that acts on an event re-reads that row (same action and
/// tenant) instead of trusting the payload.
#[macro_export]
macro_rules! notify_event {
    (tenant: $tenant:literal, action: $action:literal, identifier: $identifier:literal, audit_id: $audit_id:expr) => {
        concat!(
            "pg_catalog.pg_notify('tenancy_events', pg_catalog.jsonb_build_object('action', ",
            $action,
            ", 'tenant_id', ",
            $tenant,
            ", 'identifier', ",
            $identifier,
            ", 'audit_id', ",
            $audit_id,
            ")::text)"
        )
    };
}

/// Records every event (in order) and announces each on `tenancy_events`,
/// in one statement.
pub fn record(events: Vec<Event>) {
    if events.is_empty() {
        return;
    }
    crate::catalog::changed();
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
            "WITH events AS MATERIALIZED (
                 SELECT e.n, e.tenant_id, e.action, e.identifier, e.details,
                        pg_catalog.nextval('tenancy.audit_log_id_seq'::pg_catalog.regclass) AS audit_id
                   FROM ROWS FROM (pg_catalog.unnest($1::uuid[]), pg_catalog.unnest($2::text[]),
                                   pg_catalog.unnest($3::text[]), pg_catalog.unnest($4::jsonb[]))
                        WITH ORDINALITY AS e(tenant_id, action, identifier, details, n)), ",
            crate::audit_rows!(from: "events e ORDER BY e.n", id: "e.audit_id", tenant: "e.tenant_id", action: "e.action", details: "e.details"),
            " SELECT ",
            crate::notify_event!(tenant: "e.tenant_id", action: "e.action", identifier: "e.identifier", audit_id: "e.audit_id"),
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
