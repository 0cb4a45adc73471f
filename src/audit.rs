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

/// Records every event (in order) and announces each on `tenancy_events`
/// with a JSON payload `{"action", "tenant_id", "identifier"}`, in one statement.
pub fn record(events: Vec<Event>) {
    if events.is_empty() {
        return;
    }
    crate::context::forget();
    let mut ids = Vec::with_capacity(events.len());
    let mut actions = Vec::with_capacity(events.len());
    let mut details = Vec::with_capacity(events.len());
    let mut payloads = Vec::with_capacity(events.len());
    for e in events {
        payloads.push(
            json!({"action": e.action, "tenant_id": e.tenant_id.map(|u| u.to_string()), "identifier": e.identifier}).to_string(),
        );
        ids.push(e.tenant_id);
        actions.push(e.action.to_string());
        details.push(JsonB(e.details));
    }
    db::execute(
        "WITH written AS (
             INSERT INTO tenancy.audit_log (tenant_id, action, details)
             SELECT e.tenant_id, e.action, e.details
               FROM ROWS FROM (pg_catalog.unnest($1::uuid[]), pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::jsonb[]))
                    WITH ORDINALITY AS e(tenant_id, action, details, n)
               ORDER BY e.n)
         SELECT pg_catalog.pg_notify('tenancy_events', p) FROM pg_catalog.unnest($4::text[]) AS q(p)",
        &[ids.into(), actions.into(), details.into(), payloads.into()],
    );
}

pub fn record_one(e: Event) {
    record(vec![e]);
}

/// `{"field": {"old": .., "new": ..}}` for audit details.
pub fn change(old: impl Into<Value>, new: impl Into<Value>) -> Value {
    json!({"old": old.into(), "new": new.into()})
}
