//! Per-tenant settings and the concurrent-request limit (SPEC §10): the
//! noisy-neighbour controls a DBA gives a tenant, applied by `set_tenant`.
//!
//! A tenant's settings (`tenancy.tenant_settings`) are set by `set_tenant`
//! in its own scope: with `is_local`, for the transaction (PostgreSQL undoes
//! them at its end, as any SET LOCAL: a pooled connection never carries
//! them on); else for the session, until `clear_tenant` or the next
//! `set_tenant`, which put back what was there before.  Only the names of
//! `tenancy.tenant_settings_allowed` (superuser-only) are accepted, and a
//! value is checked as PostgreSQL checks a SET of it, with the rights of an
//! ordinary role: a setting can only be one any role could make itself.
//!
//! `max_concurrent_requests` = N: at most N transactions at once hold
//! `set_tenant(t, true)`; each holds one of N lock slots until it ends
//! (src/base/db.rs `take_request_slot`), so the count is exact.

use std::cell::{Cell, RefCell};
use std::ffi::CString;

use pgrx::pg_sys;
use pgrx::prelude::*;
use serde_json::json;

use crate::base::db::{self, Mode};
use crate::base::errors::{self, required};
use crate::base::settings;
use crate::catalog::audit::{self, change, Event};
use crate::catalog::direct;
use crate::catalog::tenants::{self, Tenant};

pub const MAX_REQUESTS: &str = "max_concurrent_requests";

/// A setting `apply` changed: what to put back.
struct Applied {
    name: CString,
    previous: String,
    ours: String,
    local: bool,
    /// The transaction it was made in (see [`TRANSACTIONS`]).
    transaction: u64,
}

thread_local! {
    static APPLIED: RefCell<Vec<Applied>> = const { RefCell::new(Vec::new()) };
    /// Counts the backend's transactions, so that what a transaction
    /// applied can be told apart when it ends.
    static TRANSACTIONS: Cell<u64> = const { Cell::new(0) };
}

#[pg_guard]
unsafe extern "C-unwind" fn at_xact_end(
    event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    let aborted = event == pg_sys::XactEvent::XACT_EVENT_ABORT
        || event == pg_sys::XactEvent::XACT_EVENT_PARALLEL_ABORT;
    let ended = aborted
        || event == pg_sys::XactEvent::XACT_EVENT_COMMIT
        || event == pg_sys::XactEvent::XACT_EVENT_PARALLEL_COMMIT;
    if !ended {
        return;
    }
    let now = TRANSACTIONS.with(|t| t.get());
    // PostgreSQL has undone the transaction's local settings, and on abort
    // its session settings too.
    APPLIED.with(|a| {
        a.borrow_mut()
            .retain(|s| s.transaction != now || (!s.local && !aborted))
    });
    TRANSACTIONS.with(|t| t.set(now.wrapping_add(1)));
}

pub fn init() {
    unsafe { pg_sys::RegisterXactCallback(Some(at_xact_end), std::ptr::null_mut()) };
}

/// Puts back what the last `apply` changed, where it is still what apply
/// set (a RESET or DISCARD since then is left alone).
pub fn undo() {
    let applied: Vec<Applied> = APPLIED.with(|a| a.borrow_mut().drain(..).collect());
    for s in applied.into_iter().rev() {
        if settings::get(&s.name) == s.ours {
            settings::set(&s.name, &s.previous, s.local);
        }
    }
}

/// Applies tenant `t`'s settings for the scope of its `set_tenant`, after
/// taking a request slot when it has a limit (54000 when all are taken).
/// Called once the tenant is checked and before the context is set.
pub fn apply(t: &Tenant, is_local: bool) {
    undo();
    let stored = direct::tenant_settings(t.id, direct::Snapshot::Latest);
    if stored.is_empty() {
        return;
    }
    if let Some((_, n)) = stored.iter().find(|(name, _)| name == MAX_REQUESTS) {
        let slots: u32 = n.parse().unwrap_or(0);
        if is_local && !db::take_request_slot(t.id, slots) {
            errors::TenancyError::new(
                pgrx::PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
                format!("tenant \"{}\" is at its limit of {slots} concurrent requests", t.identifier),
            )
            .detail(format!("{slots} transactions hold tenancy.set_tenant(…, true) for it now; each holds it until it ends."))
            .hint("Retry when one ends, or raise the limit: tenancy.set_tenant_setting(id, 'max_concurrent_requests', n).")
            .raise();
        }
    }
    let allowed = settings::tenant_settings_allowed();
    let transaction = TRANSACTIONS.with(|t| t.get());
    for (name, value) in stored {
        // A name taken off the allowed list since it was stored stops applying.
        if name == MAX_REQUESTS || !allowed.contains(&name) {
            continue;
        }
        let Ok(cname) = CString::new(name) else {
            continue;
        };
        let previous = settings::get(&cname);
        settings::set(&cname, &value, is_local);
        let ours = settings::get(&cname);
        APPLIED.with(|a| {
            a.borrow_mut().push(Applied {
                name: cname,
                previous,
                ours,
                local: is_local,
                transaction,
            })
        });
    }
}

/// Raises 22023 unless `setting` = `value` may be stored for a tenant.
fn check(setting: &str, value: &str) {
    if setting == MAX_REQUESTS {
        if !matches!(value.parse::<u32>(), Ok(1..=10_000)) {
            errors::invalid(format!(
                "invalid value for {MAX_REQUESTS}: \"{}\"",
                errors::shown(value)
            ))
            .hint("A whole number from 1 to 10000.")
            .raise();
        }
        return;
    }
    let allowed = settings::tenant_settings_allowed();
    // Never the context itself nor who the session is, whatever the list says.
    let forbidden =
        setting.starts_with("tenancy.") || matches!(setting, "role" | "session_authorization");
    if forbidden || !allowed.iter().any(|a| a == setting) {
        errors::invalid(format!(
            "\"{}\" is not a setting a tenant can be given",
            errors::shown(setting)
        ))
        .hint(format!(
            "The allowed ones are {MAX_REQUESTS} and tenancy.tenant_settings_allowed: {}.",
            allowed.join(", ")
        ))
        .raise();
    }
    // PostgreSQL's own check of `SET setting = value` by an ordinary role,
    // without changing anything; its complaint becomes 22023.
    let (Ok(name), Ok(text)) = (CString::new(setting), CString::new(value)) else {
        errors::invalid("a setting's name and value must not contain NUL bytes").raise()
    };
    PgTryBuilder::new(|| unsafe {
        pg_sys::set_config_option(
            name.as_ptr(),
            text.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SET,
            false,
            pgrx::PgLogLevel::ERROR as i32,
            false,
        );
    })
    .catch_others(|e| {
        let message = match &e {
            pg_sys::panic::CaughtError::PostgresError(r)
            | pg_sys::panic::CaughtError::ErrorReport(r) => r.message().to_string(),
            _ => "invalid value".to_string(),
        };
        errors::invalid(format!(
            "invalid value for setting \"{setting}\" of a tenant: {message}"
        ))
        .raise()
    })
    .execute();
}

/// The normalized name of a setting as given.
fn setting_name(setting: &str) -> String {
    setting.trim().to_ascii_lowercase()
}

/// Stores `setting` = `value` for tenant `id`: `set_tenant` applies it from
/// the next call on.  Settings of `tenancy.tenant_settings_allowed`, or
/// `max_concurrent_requests`; anything else, or an invalid value: 22023.
#[pg_extern(volatile, security_definer, requires = ["tenant_settings"])]
#[search_path(pg_catalog, pg_temp)]
fn set_tenant_setting(
    id: Option<pgrx::Uuid>,
    setting: Option<&str>,
    value: Option<&str>,
) -> pgrx::composite_type!('static, "tenants") {
    let id = required(id, "id");
    let setting = setting_name(required(setting, "setting"));
    let value = required(value, "value").trim().to_string();
    check(&setting, &value);
    let t = tenants::lock(id);
    let old = db::query_one(
        "SELECT s.value FROM tenancy.tenant_settings s WHERE s.tenant_id OPERATOR(pg_catalog.=) $1 AND s.setting OPERATOR(pg_catalog.=) $2",
        Mode::Write,
        &[id.into(), setting.as_str().into()],
        |r| r.must::<String>(1),
    );
    db::execute(
        "INSERT INTO tenancy.tenant_settings (tenant_id, setting, value) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, setting) DO UPDATE SET value = EXCLUDED.value, set_at = pg_catalog.now(), set_by = session_user",
        &[id.into(), setting.as_str().into(), value.as_str().into()],
    );
    audit::record_one(Event::new(
        id,
        &t.identifier,
        "setting",
        json!({"setting": setting, "value": change(old, value)}),
    ));
    t.row
}

/// Removes a tenant's setting; a no-op when it has none of that name.
#[pg_extern(volatile, security_definer, requires = ["tenant_settings"])]
#[search_path(pg_catalog, pg_temp)]
fn reset_tenant_setting(
    id: Option<pgrx::Uuid>,
    setting: Option<&str>,
) -> pgrx::composite_type!('static, "tenants") {
    let id = required(id, "id");
    let setting = setting_name(required(setting, "setting"));
    let t = tenants::lock(id);
    let old = db::query_one(
        "DELETE FROM tenancy.tenant_settings s WHERE s.tenant_id OPERATOR(pg_catalog.=) $1 AND s.setting OPERATOR(pg_catalog.=) $2 RETURNING s.value",
        Mode::Write,
        &[id.into(), setting.as_str().into()],
        |r| r.must::<String>(1),
    );
    if old.is_some() {
        audit::record_one(Event::new(
            id,
            &t.identifier,
            "setting",
            json!({"setting": setting, "value": change(old, None::<String>)}),
        ));
    }
    t.row
}

extension_sql_file!(
    "../../sql/limits.sql",
    name = "tenant_settings",
    requires = ["isolation_catalog"]
);
