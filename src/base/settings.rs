//! The extension's settings (SPEC §5), defined as real GUCs with check hooks,
//! and the `tenancy` prefix reserved so no ad-hoc placeholder can live under it.
//!
//! The tenant context is *only* the `tenancy.tenant_id` GUC: PostgreSQL's own
//! GUC machinery undoes it on ROLLBACK, at the end of a SET LOCAL's
//! transaction, on RESET and on DISCARD ALL.  Nothing here caches it.

use std::ffi::{CStr, CString};

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::base::validate;

pub static TENANT_ID: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c""));
pub static SOFT_DELETE: GucSetting<bool> = GucSetting::<bool>::new(true);
pub static DEFAULT_ISOLATION: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"rls"));
pub static PREMIUM_TIERS: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"premium,enterprise"));
pub static SCHEMA_PREFIX: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"tenant_"));
pub static TENANT_SETTINGS_ALLOWED: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(
        c"statement_timeout, lock_timeout, idle_in_transaction_session_timeout, work_mem",
    ));

/// Guard rails (SPEC §11): `tenancy.auto_rls` registers new tables that
/// have the tenant column; `tenancy.tenant_column` names that column for it
/// and for `doctor()`.
pub static AUTO_RLS: GucSetting<bool> = GucSetting::<bool>::new(false);
pub static TENANT_COLUMN: GucSetting<Option<CString>> =
    GucSetting::<Option<CString>>::new(Some(c"tenant_id"));

pub const TENANT_ID_GUC: &CStr = c"tenancy.tenant_id";

/// Live statistics (SPEC §10): how many tenants `tenancy.tenant_stats`
/// keeps.  Set at server start only: it sizes a table in shared memory.
pub static STATS_MAX_TENANTS: GucSetting<i32> = GucSetting::<i32>::new(10_000);

pub fn stats_max_tenants() -> i32 {
    STATS_MAX_TENANTS.get()
}

/// Who is told of every new value of `tenancy.tenant_id`, including the
/// ones PostgreSQL's GUC machinery puts back at the end of a transaction or
/// a function's SET clause (a layer above registers it: the live
/// statistics' `tenant_activity`).  Set once, in `_PG_init`, and only when
/// the library is preloaded; it must never raise (assign hooks cannot fail).
static TENANT_ID_OBSERVER: std::sync::OnceLock<fn(&str)> = std::sync::OnceLock::new();

pub fn observe_tenant_id(observer: fn(&str)) {
    let _ = TENANT_ID_OBSERVER.set(observer);
}

/// Isolation values accepted by `tenancy.default_isolation`.
pub const DEFAULT_ISOLATION_VALUES: [&str; 4] = ["rls", "schema", "database", "hybrid"];

fn guc_string(setting: &GucSetting<Option<CString>>) -> String {
    setting
        .get()
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The raw text of `tenancy.tenant_id` (empty when no tenant is set).
pub fn tenant_id_text() -> String {
    guc_string(&TENANT_ID)
}

/// Whether `tenancy.tenant_id` is non-empty, without copying it (the
/// Citus router's planner hook asks this of every statement).
pub fn tenant_id_is_set() -> bool {
    // SAFETY: the GUC machinery keeps the variable a valid C string (or
    // null) for as long as the setting exists, i.e. the whole backend.
    unsafe {
        let p = *TENANT_ID.as_ptr();
        !p.is_null() && *p != 0
    }
}

pub fn soft_delete() -> bool {
    SOFT_DELETE.get()
}

pub fn default_isolation() -> String {
    guc_string(&DEFAULT_ISOLATION)
}

pub fn premium_tiers() -> Vec<String> {
    validate::parse_tier_list(&guc_string(&PREMIUM_TIERS)).unwrap_or_default()
}

pub fn schema_prefix() -> String {
    guc_string(&SCHEMA_PREFIX)
}

/// The settings a tenant may be given (`tenancy.tenant_settings_allowed`),
/// lowercased, in their order.
pub fn tenant_settings_allowed() -> Vec<String> {
    guc_string(&TENANT_SETTINGS_ALLOWED)
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

pub fn auto_rls() -> bool {
    AUTO_RLS.get()
}

/// The column name `auto_rls` and `doctor()` take for a tenant column.
pub fn tenant_column() -> String {
    guc_string(&TENANT_COLUMN)
}

/// Sets a GUC exactly as `set_config(name, value, is_local)` would, at the
/// caller's nesting level, so the usual transactional rules apply.
pub fn set(name: &CStr, value: &str, is_local: bool) {
    let action = if is_local {
        pg_sys::GucAction::GUC_ACTION_LOCAL
    } else {
        pg_sys::GucAction::GUC_ACTION_SET
    };
    set_with(name, value, action);
}

/// Sets a GUC for the current GUC nesting level only (what a function's SET
/// clause does): `AtEOXact_GUC(true, level)` restores the previous value.
fn set_saved(name: &CStr, value: &str) {
    set_with(name, value, pg_sys::GucAction::GUC_ACTION_SAVE);
}

fn set_with(name: &CStr, value: &str, action: pg_sys::GucAction::Type) {
    let value = CString::new(value).unwrap_or_default();
    unsafe {
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            action,
            true,
            PgLogLevel::ERROR as i32,
            false,
        );
    }
}

/// Runs `f` with the given settings, then puts the previous values back (as
/// a function's SET clause would).  On error, PostgreSQL's abort processing
/// restores them.
pub fn scoped<R>(values: &[(&CStr, &str)], f: impl FnOnce() -> R) -> R {
    nested(values, true, f)
}

/// Runs `f` with the given settings, then puts back every setting as it was
/// before, including any that code inside `f` changed with a plain `SET` or
/// `set_config(…, false)` (which a function's SET clause, and [`scoped`],
/// let through, as PostgreSQL's rules for SET inside a function say).  For
/// code that someone else wrote (a table's triggers, migrations): what it
/// sets cannot reach the statements tenancy runs next, nor the caller's
/// session.  PostgreSQL ends its own security-restricted operations (ANALYZE,
/// REFRESH MATERIALIZED VIEW) the same way.
pub fn isolated<R>(values: &[(&CStr, &str)], f: impl FnOnce() -> R) -> R {
    nested(values, false, f)
}

/// `f` in a GUC nesting level of its own with `values` set; at its end the
/// level is closed as a commit (`keep`: plain SETs made inside stay) or as an
/// abort (everything set inside is undone).
fn nested<R>(values: &[(&CStr, &str)], keep: bool, f: impl FnOnce() -> R) -> R {
    let nest = unsafe { pg_sys::NewGUCNestLevel() };
    for (name, value) in values {
        set_saved(name, value);
    }
    let result = f();
    unsafe { pg_sys::AtEOXact_GUC(keep, nest) };
    result
}

/// Reads any GUC's current value (e.g. `search_path`).
pub fn get(name: &CStr) -> String {
    unsafe {
        let p = pg_sys::GetConfigOption(name.as_ptr(), true, false);
        if p.is_null() {
            String::new()
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

/// Defines a string GUC check hook from a rule on the proposed value; a
/// refusal becomes the error's DETAIL (the SQLSTATE is 22023,
/// invalid_parameter_value, PostgreSQL's code for failing check hooks).
/// The message shows the value as every tenancy message does (control
/// characters escaped, cut to 64 characters), not raw as PostgreSQL's
/// default message would, so a hostile value cannot forge log lines.
macro_rules! check_hook {
    ($name:ident, $guc:literal, $rule:expr) => {
        #[pg_guard]
        unsafe extern "C-unwind" fn $name(
            newval: *mut *mut std::ffi::c_char,
            _extra: *mut *mut std::ffi::c_void,
            _source: pg_sys::GucSource::Type,
        ) -> bool {
            let proposed = if newval.is_null() || (*newval).is_null() {
                ""
            } else {
                CStr::from_ptr(*newval).to_str().unwrap_or("\u{fffd}")
            };
            let rule: fn(&str) -> Result<(), String> = $rule;
            match rule(proposed) {
                Ok(()) => true,
                Err(detail) => {
                    let message = format!(
                        "invalid value for parameter \"{}\": \"{}\"",
                        $guc,
                        crate::base::errors::shown(proposed)
                    );
                    let m = CString::new(message).unwrap_or_default();
                    let c = CString::new(detail).unwrap_or_default();
                    pg_sys::GUC_check_errcode(
                        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE as i32,
                    );
                    pg_sys::GUC_check_errmsg_string = pg_sys::pstrdup(m.as_ptr());
                    pg_sys::GUC_check_errdetail_string = pg_sys::pstrdup(c.as_ptr());
                    false
                }
            }
        }
    };
}

check_hook!(check_tenant_id, "tenancy.tenant_id", |v| {
    if v.is_empty() || validate::parse_pg_uuid(v).is_some() {
        Ok(())
    } else {
        Err("tenancy.tenant_id holds a tenant's uuid, or is empty for no tenant.".into())
    }
});

check_hook!(check_default_isolation, "tenancy.default_isolation", |v| {
    if DEFAULT_ISOLATION_VALUES.contains(&v) {
        Ok(())
    } else {
        Err("Valid values are rls, schema, database and hybrid.".into())
    }
});

check_hook!(check_premium_tiers, "tenancy.premium_tiers", |v| {
    validate::parse_tier_list(v)
        .map(|_| ())
        .map_err(|why| format!("A comma-separated list of tiers is expected, but {why}."))
});

check_hook!(check_schema_prefix, "tenancy.schema_prefix", |v| {
    validate::check_schema_prefix(v).map_err(|why| format!("The schema prefix is invalid: {why}."))
});

check_hook!(check_tenant_column, "tenancy.tenant_column", |v| {
    if v.is_empty() || v.len() >= pg_sys::NAMEDATALEN as usize {
        Err("The tenant column is a column name: 1 to 63 bytes.".into())
    } else {
        Ok(())
    }
});

thread_local! {
    /// What runs at every change of the context: the Citus router's plan
    /// invalidation (src/citus/routing.rs), which registers it, since this
    /// layer calls none above it.
    static ON_CONTEXT_CHANGE: std::cell::Cell<Option<fn(&str)>> = const { std::cell::Cell::new(None) };
}

/// Registers what runs at every change of `tenancy.tenant_id`; it must not
/// raise (it runs during transaction abort too).
pub fn on_context_change(f: fn(&str)) {
    ON_CONTEXT_CHANGE.set(Some(f));
}

/// Every change of the context, however made (set_tenant, SET, RESET,
/// and the restores of COMMIT, ROLLBACK and ROLLBACK TO SAVEPOINT), comes
/// through here: plans the Citus router built for another tenant must be
/// re-planned, and the live statistics' activity slot follows it.  Runs during transaction abort too, so what it calls only
/// compares and flips plan validity flags.
#[pg_guard]
unsafe extern "C-unwind" fn assign_tenant_id(
    newval: *const std::ffi::c_char,
    _extra: *mut std::ffi::c_void,
) {
    let router = ON_CONTEXT_CHANGE.get();
    let observer = TENANT_ID_OBSERVER.get();
    if router.is_none() && observer.is_none() {
        return;
    }
    let value = if newval.is_null() {
        ""
    } else {
        unsafe { CStr::from_ptr(newval) }
            .to_str()
            .unwrap_or("\u{fffd}")
    };
    if let Some(f) = router {
        f(value);
    }
    if let Some(f) = observer {
        f(value);
    }
}

pub fn init() {
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            TENANT_ID_GUC,
            c"The current tenant's uuid; empty for no tenant.",
            c"Set it with tenancy.set_tenant(), which checks the tenant; a value set by hand is checked when used.",
            &TENANT_ID,
            GucContext::Userset,
            GucFlags::default(),
            Some(check_tenant_id),
            Some(assign_tenant_id),
            None,
        );
        GucRegistry::define_string_guc_with_hooks(
            c"tenancy.default_isolation",
            c"Isolation of new tenants when create_tenant is not given one: rls, schema, database or hybrid.",
            c"Under hybrid, tenants whose metadata tier is in tenancy.premium_tiers get schema, the rest rls.",
            &DEFAULT_ISOLATION,
            GucContext::Userset,
            GucFlags::default(),
            Some(check_default_isolation),
            None,
            None,
        );
        GucRegistry::define_string_guc_with_hooks(
            c"tenancy.premium_tiers",
            c"Comma-separated metadata tiers that get schema isolation under hybrid.",
            c"",
            &PREMIUM_TIERS,
            GucContext::Userset,
            GucFlags::default(),
            Some(check_premium_tiers),
            None,
            None,
        );
        GucRegistry::define_string_guc_with_hooks(
            c"tenancy.schema_prefix",
            c"Prefix of the schema of a schema tenant.",
            c"Matches ^[a-z][a-z0-9_]*$, at most 20 bytes.  A tenant's schema name is fixed at creation.",
            &SCHEMA_PREFIX,
            GucContext::Userset,
            GucFlags::default(),
            Some(check_schema_prefix),
            None,
            None,
        );
    }
    // Superuser-only: which settings a tenant may be given decides what an
    // administrator of tenants (set_tenant_setting) can change in every
    // session that sets the tenant.
    GucRegistry::define_string_guc(
        c"tenancy.tenant_settings_allowed",
        c"Comma-separated settings set_tenant_setting may give a tenant (besides max_concurrent_requests).",
        c"set_tenant applies a tenant's settings in its scope; only these names are accepted.",
        &TENANT_SETTINGS_ALLOWED,
        GucContext::Suset,
        GucFlags::default(),
    );
    // Superuser-only, both: they decide for every role which new tables get
    // row-level security, a guard rail a role must not turn off (or aim
    // elsewhere) for its own session.
    GucRegistry::define_bool_guc(
        c"tenancy.auto_rls",
        c"Registers every new table with a uuid tenant column with tenancy.enable_rls, in the same transaction.",
        c"Covers CREATE TABLE (also PARTITION OF), CREATE TABLE AS, SELECT INTO and ALTER TABLE outside schema tenancy, the tenant schemas and the system schemas.",
        &AUTO_RLS,
        GucContext::Suset,
        GucFlags::default(),
    );
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            c"tenancy.tenant_column",
            c"Name of the tenant column that tenancy.auto_rls registers and tenancy.doctor() looks for.",
            c"A table's column of this name and of type uuid is taken to hold tenancy.tenants.id.",
            &TENANT_COLUMN,
            GucContext::Suset,
            GucFlags::default(),
            Some(check_tenant_column),
            None,
            None,
        );
    }
    // Only while the postmaster preloads the library: PostgreSQL refuses a
    // PGC_POSTMASTER setting defined later (FATAL), and it means nothing
    // without the preload (as pg_stat_statements.max).
    if unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        GucRegistry::define_int_guc(
            c"tenancy.stats_max_tenants",
            c"Tenants tenancy.tenant_stats keeps counts for; the least recently active is evicted beyond it.",
            c"Sizes a table in shared memory (about 64 bytes per tenant); needs tenancy in shared_preload_libraries.",
            &STATS_MAX_TENANTS,
            1,
            1_000_000,
            GucContext::Postmaster,
            GucFlags::default(),
        );
    }
    GucRegistry::define_bool_guc(
        c"tenancy.soft_delete",
        c"delete_tenant marks tenants deleted instead of removing their row.",
        c"",
        &SOFT_DELETE,
        GucContext::Userset,
        GucFlags::default(),
    );
    reserve_prefix();
}

/// No `tenancy.*` placeholder may exist besides the settings defined above: a
/// typo such as `SET tenancy.tenantid = ...` is an error, not a silent no-op.
#[cfg(any(feature = "pg15", feature = "pg16", feature = "pg17", feature = "pg18"))]
fn reserve_prefix() {
    unsafe { pg_sys::MarkGUCPrefixReserved(c"tenancy".as_ptr()) }
}

#[cfg(any(feature = "pg13", feature = "pg14"))]
fn reserve_prefix() {
    unsafe { pg_sys::EmitWarningsOnPlaceholders(c"tenancy".as_ptr()) }
}
