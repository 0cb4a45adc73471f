//! The tenant context (SPEC §4 "Context"): `set_tenant`, `clear_tenant`,
//! `current_tenant_id`, `current_tenant`.
//!
//! The context *is* the `tenancy.tenant_id` GUC, nothing else: ROLLBACK, the
//! end of a SET LOCAL's transaction, RESET and DISCARD ALL undo it as for any
//! setting, so a pooled connection never carries a tenant it was not given.
//! Every read of it re-checks the tenant (exists, active, the role may act
//! for it), so a value set by hand never widens access.
//!
//! These functions are executable by PUBLIC and run as the caller, so they
//! can change the caller's settings; they read the catalog by index without
//! SPI (`direct`), which checks no table privileges.

pub mod access;
pub mod limits;
pub mod placement;

use std::cell::RefCell;

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::base::db::Mode;
use crate::base::errors;
use crate::base::settings;
use crate::base::validate;
use crate::catalog::direct;
use crate::catalog::tenants::{self, Tenant};

/// What the last check learned about the context, so that a policy or a
/// query calling `current_tenant_id()` once per row, and the statements of a
/// request after its `set_tenant`, check the catalog once.  Keyed by the
/// setting, the role and [`Epoch`]; forgotten at every change tenancy makes
/// (see `audit::record`) and at every transaction end.
#[derive(Clone, PartialEq)]
struct MemoKey {
    guc: String,
    role: pg_sys::Oid,
    epoch: Epoch,
}

/// What must not have moved for a check to still hold: PostgreSQL's count
/// of completed transactions that had an xid, i.e. that may have written
/// (the counter PostgreSQL itself compares to reuse a snapshot: equal
/// counts, identical committed state), and this transaction's command
/// counter (which moves after a statement of its own that wrote).  So a
/// suspension, a revoke, a dropped grant or role membership committed
/// anywhere takes effect at the next statement, as with a check per
/// statement.  PostgreSQL 13 has no such count: there the key is the
/// statement, and every statement checks.  And the count of tenancy's own
/// changes to the catalog in this backend (`catalog::changes`), which
/// moves within a statement too.
#[derive(Clone, Copy, PartialEq)]
struct Epoch {
    committed: u64,
    command: u32,
    changes: u64,
}

impl Epoch {
    fn now() -> Epoch {
        // SAFETY: reads of backend-local state and of one aligned 64-bit
        // counter in shared memory (read after a full fence; a stale read
        // can only make the key look older, which forces a check).
        unsafe {
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            #[cfg(feature = "pg13")]
            let committed = pg_sys::GetCurrentStatementStartTimestamp() as u64;
            #[cfg(any(feature = "pg14", feature = "pg15", feature = "pg16"))]
            let committed = std::ptr::read_volatile(std::ptr::addr_of!(
                (*pg_sys::ShmemVariableCache).xactCompletionCount
            ));
            #[cfg(any(feature = "pg17", feature = "pg18"))]
            let committed = std::ptr::read_volatile(std::ptr::addr_of!(
                (*pg_sys::TransamVariables).xactCompletionCount
            ));
            Epoch {
                committed,
                command: pg_sys::GetCurrentCommandId(false),
                changes: crate::catalog::changes(),
            }
        }
    }
}

thread_local! {
    static MEMO: RefCell<Option<(MemoKey, pgrx::Uuid)>> = const { RefCell::new(None) };
}

#[pg_guard]
unsafe extern "C-unwind" fn forget_at_xact_end(
    _event: pg_sys::XactEvent::Type,
    _arg: *mut std::ffi::c_void,
) {
    MEMO.with(|m| m.borrow_mut().take());
}

pub fn init() {
    unsafe { pg_sys::RegisterXactCallback(Some(forget_at_xact_end), std::ptr::null_mut()) };
    limits::init();
}

/// Parses a uuid in the GUC; a malformed value is refused with 22023 (the
/// check hook refuses it when set, but a value may predate the library load).
fn parse_guc(text: &str) -> pgrx::Uuid {
    match validate::parse_pg_uuid(text) {
        Some(bytes) => pgrx::Uuid::from_bytes(bytes),
        None => errors::invalid(format!(
            "invalid value for parameter \"tenancy.tenant_id\": \"{}\"",
            errors::shown(text)
        ))
        .hint("tenancy.tenant_id holds a tenant's uuid, or is empty for no tenant.")
        .raise(),
    }
}

/// Raises unless `t` may be the context of `role`: 55000 when not active,
/// 42501 when the role may not act for it.
pub(crate) fn check_usable(t: &Tenant, role: pg_sys::Oid) {
    if t.status != "active" {
        errors::wrong_state(format!(
            "tenant \"{}\" is {}, not active",
            t.identifier, t.status
        ))
        .hint("Only an active tenant can be set as the context.")
        .raise();
    }
    crate::context::access::check_may_act(role, t);
}

/// The checked tenant of the current context, or None when none is set.
pub fn current(role: pg_sys::Oid) -> Option<Tenant> {
    let text = settings::tenant_id_text();
    if text.is_empty() {
        return None;
    }
    let id = parse_guc(&text);
    // Held to the end of the transaction, so the tenant cannot be moved
    // under this request; taken before the read, which then sees where the
    // tenant lives now (operations::moving).
    let hold = placement::hold(id);
    let t = tenants::find_by_id(id, Mode::Latest).unwrap_or_else(|| {
        errors::tenant_not_found(id)
            .hint("tenancy.tenant_id names a tenant that does not exist.")
            .raise()
    });
    check_usable(&t, role);
    if hold.first {
        placement::check_unmoved(&t);
    }
    Some(t)
}

/// The current tenant's id, or NULL when no tenant is set.  Raises as
/// `set_tenant` would for a tenant that is unknown, not active, or that the
/// current role may not act for.  STABLE: a policy written as
/// `(SELECT tenancy.current_tenant_id())` evaluates it once per statement.
#[pg_extern(stable, parallel_safe, requires = ["isolation_catalog"])]
fn current_tenant_id() -> Option<pgrx::Uuid> {
    checked_tenant_id()
}

/// What `current_tenant_id()` returns right now, with the same checks,
/// errors and memo: the Citus router (`citus::routing`) plans with the
/// value the policy will compute.
pub fn checked_tenant_id() -> Option<pgrx::Uuid> {
    let text = settings::tenant_id_text();
    if text.is_empty() {
        return None;
    }
    // The epoch is read before the catalog, so that a change committed
    // while checking makes the memo look stale, never fresh.
    let key = MemoKey {
        guc: text,
        role: crate::base::security::current_role(),
        epoch: Epoch::now(),
    };
    if let Some(id) = MEMO.with(|m| {
        m.borrow()
            .as_ref()
            .filter(|(k, _)| *k == key)
            .map(|(_, id)| *id)
    }) {
        return Some(id);
    }
    let id = current(key.role).map(|t| t.id)?;
    // Every check reads with a snapshot taken after the epoch (see
    // `direct::snapshot`), so its answer may stand for that epoch.  The
    // leader of a parallel query keeps none anyway: what it learns there is
    // used once, and a request's later statements check for themselves.  A
    // parallel worker's memo ends with the worker.
    if !in_parallel_leader() {
        MEMO.with(|m| *m.borrow_mut() = Some((key, id)));
    }
    Some(id)
}

/// The tenant the memo holds: one that a check passed for in this
/// transaction (`set_tenant`, or a `current_tenant_id()` that went to the
/// catalog), whatever the key.  For the live statistics, which count a
/// statement for the context only once some check passed for it, so that a
/// uuid set by hand and never checked creates nothing; no catalog read.
pub fn checked_tenant() -> Option<pgrx::Uuid> {
    MEMO.with(|m| m.borrow().as_ref().map(|(_, id)| *id))
}

fn in_parallel_leader() -> bool {
    unsafe { pg_sys::IsInParallelMode() && pg_sys::ParallelWorkerNumber < 0 }
}

/// The current tenant's row, or NULL when no tenant is set.
#[pg_extern(stable, requires = ["isolation_catalog"])]
fn current_tenant() -> Option<pgrx::composite_type!('static, "tenants")> {
    current(crate::base::security::current_role()).map(|t| t.row)
}

fn join_path(items: &[String]) -> String {
    items
        .iter()
        .map(|s| pgrx::spi::quote_identifier(s))
        .collect::<Vec<_>>()
        .join(", ")
}

thread_local! {
    /// The last search_path `path_without_tenant_schemas` looked at, with
    /// its answer and the [`Epoch`] it holds for: a pooled connection sends
    /// the same path with every request, and which schemas are tenants'
    /// changes only when a writing transaction completes.  Not tied to a
    /// transaction: a transaction that wrote moves the epoch when it ends.
    static PATH_MEMO: RefCell<Option<(String, Epoch, Vec<String>, bool)>> = const { RefCell::new(None) };
}

/// The search_path with every tenant schema taken out (so switching tenants,
/// or clearing, never leaves another tenant's schema on the path).  `epoch`
/// was read before the caller's own catalog reads.
fn path_without_tenant_schemas(epoch: Epoch) -> (Vec<String>, bool) {
    let path = settings::get(c"search_path");
    let known = PATH_MEMO.with(|m| {
        m.borrow()
            .as_ref()
            .filter(|(p, e, _, _)| *p == path && *e == epoch)
            .map(|(_, _, kept, changed)| (kept.clone(), *changed))
    });
    if let Some(answer) = known {
        return answer;
    }
    let items = validate::split_search_path(&path);
    let is_tenant_schema = |s: &String| {
        validate::could_be_tenant_schema(s)
            && direct::tenant(direct::Key::SchemaName(s), direct::Snapshot::Latest).is_some()
    };
    let kept: Vec<String> = items
        .iter()
        .filter(|s| !is_tenant_schema(s))
        .cloned()
        .collect();
    let changed = kept.len() != items.len();
    PATH_MEMO.with(|m| *m.borrow_mut() = Some((path, epoch, kept.clone(), changed)));
    (kept, changed)
}

/// Make `tenant` (an identifier or a uuid) the session's tenant, or the
/// transaction's with `is_local` (the form to use under transaction pooling).
/// A schema tenant's schema goes first on search_path.
#[pg_extern(volatile, requires = ["isolation_catalog"])]
fn set_tenant(
    tenant: Option<&str>,
    is_local: default!(Option<bool>, false),
) -> pgrx::composite_type!('static, "tenants") {
    let tenant = errors::required(tenant, "tenant");
    let is_local = errors::required(is_local, "is_local");
    set_tenant_checked(tenant, is_local).row
}

/// What `set_tenant` does: find the tenant, check it may be the context of
/// the current role, set the GUC and the search_path.
pub fn set_tenant_checked(tenant: &str, is_local: bool) -> Tenant {
    let role = crate::base::security::current_role();
    let epoch = Epoch::now();
    let found = match validate::parse_pg_uuid(tenant) {
        Some(bytes) => tenants::find_by_id(pgrx::Uuid::from_bytes(bytes), Mode::Latest),
        None => {
            // Neither a uuid nor a well-formed identifier: bad input (22023), not "not found".
            crate::catalog::tenants::check_identifier(tenant);
            tenants::find_by_identifier(tenant, Mode::Latest)
        }
    };
    let t = found.unwrap_or_else(|| {
        errors::tenant_not_found(format!("\"{}\"", errors::shown(tenant))).raise()
    });
    // The request's share of the placement lock (operations::moving).  A
    // move that committed after the read above (it held the lock, or
    // released it between the read and here) moved the tenant: read again.
    let hold = placement::hold(t.id);
    let t = if hold.first
        && (hold.waited || cfg!(feature = "pg13") || Epoch::now().committed != epoch.committed)
    {
        tenants::find_by_id(t.id, Mode::Latest).unwrap_or_else(|| {
            errors::tenant_not_found(format!("\"{}\"", errors::shown(tenant))).raise()
        })
    } else {
        t
    };
    check_usable(&t, role);
    // A transaction reading with one snapshot throughout must not see the
    // tenant where a move has since taken it from.
    if hold.first && unsafe { pg_sys::XactIsoLevel } >= pg_sys::XACT_REPEATABLE_READ as i32 {
        placement::check_statement_snapshot(&t);
    }
    if !is_local && t.isolation == "rls" && crate::citus::nodes::in_database() {
        // Citus sends a worker the transaction's SET LOCALs, never session
        // state: the workers' policies would see no tenant (SPEC §8).
        errors::unsupported("a session-level tenant context does not reach the workers of a Citus cluster")
            .hint("Inside a transaction, use tenancy.set_tenant(tenant, is_local => true): Citus sends it to every node the transaction reaches.")
            .raise();
    }
    limits::apply(&t, is_local);
    set_context(&t.id.to_string(), is_local);
    let (mut path, changed) = path_without_tenant_schemas(epoch);
    if let Some(schema) = &t.schema_name {
        path.insert(0, schema.clone());
        settings::set(c"search_path", &join_path(&path), is_local);
    } else if changed {
        settings::set(c"search_path", &join_path(&path), is_local);
    }
    // What was just checked is what the request's next statement would check.
    let key = MemoKey {
        guc: settings::tenant_id_text(),
        role,
        epoch,
    };
    MEMO.with(|m| *m.borrow_mut() = Some((key, t.id)));
    placement::placed(&t);
    t
}

/// Sets the context GUC; a transaction-local one also reaches the workers
/// of a Citus cluster (see src/citus.rs).
fn set_context(value: &str, is_local: bool) {
    settings::set(settings::TENANT_ID_GUC, value, is_local);
    if is_local {
        crate::citus::propagate_local(settings::TENANT_ID_GUC, value);
    }
}

/// Clear the tenant context (and take any tenant schema off search_path).
#[pg_extern(volatile, requires = ["isolation_catalog"])]
fn clear_tenant(is_local: default!(Option<bool>, false)) {
    let is_local = errors::required(is_local, "is_local");
    limits::undo();
    set_context("", is_local);
    placement::unplaced();
    let (path, changed) = path_without_tenant_schemas(Epoch::now());
    if changed {
        settings::set(c"search_path", &join_path(&path), is_local);
    }
}
