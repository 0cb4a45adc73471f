//! Where a tenant's data lives, guarded (SPEC §9, `move_tenant`): the
//! placement lock every request of a tenant holds shared from its first
//! `set_tenant` or `current_tenant_id()` to the end of its transaction, and
//! `operations::moving` takes exclusively; and the checks that refuse a
//! request still aimed at the tenant's old place.  See src/operations/moving.rs
//! for the whole concurrency story.

use pgrx::pg_sys;

use crate::base::db::Mode;
use crate::base::errors::{self, TenancyError};
use crate::base::validate;
use crate::catalog::tenants::{self, Tenant};

fn placement_tag(tenant: pgrx::Uuid) -> pg_sys::LOCKTAG {
    let purpose = validate::LockPurpose::Placement;
    crate::base::db::userlock_tag(
        purpose,
        validate::tenant_lock_key(purpose, tenant.as_bytes()),
    )
}

/// What a request learned when it took its share of the placement lock.
#[derive(Clone, Copy)]
pub struct Hold {
    /// First taken by this transaction now: a move may have committed since
    /// the caller's snapshot or its last `set_tenant`.
    pub first: bool,
    /// It had to wait (for a move under way).
    pub waited: bool,
}

/// A request's share of the tenant's placement lock, held to the end of
/// the transaction.  Not taken in parallel mode: a parallel statement only
/// reads, with a snapshot of its own, and a lock a worker took would go
/// with the worker.
pub fn hold(tenant: pgrx::Uuid) -> Hold {
    if unsafe { pg_sys::IsInParallelMode() } {
        return Hold {
            first: false,
            waited: false,
        };
    }
    let tag = placement_tag(tenant);
    let mode = pg_sys::AccessShareLock as pg_sys::LOCKMODE;
    // SAFETY: a filled-in tag; a transaction-level lock, released at the
    // end of the (sub)transaction like every lock of the transaction.
    let got = unsafe { pg_sys::LockAcquire(&tag, mode, false, true) };
    match got {
        pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL => {
            unsafe { pg_sys::LockAcquire(&tag, mode, false, false) };
            Hold {
                first: true,
                waited: true,
            }
        }
        pg_sys::LockAcquireResult::LOCKACQUIRE_OK => Hold {
            first: true,
            waited: false,
        },
        _ => Hold {
            first: false,
            waited: false,
        },
    }
}

/// The mover's exclusive lock: waits for the tenant's transactions under
/// way (lock_timeout and deadlock detection apply), and makes its new ones
/// wait until the move's transaction ends.
pub fn take_exclusive(tenant: pgrx::Uuid) {
    let tag = placement_tag(tenant);
    unsafe {
        pg_sys::LockAcquire(
            &tag,
            pg_sys::AccessExclusiveLock as pg_sys::LOCKMODE,
            false,
            false,
        )
    };
}

thread_local! {
    /// The placement `set_tenant` last saw in this session: (tenant,
    /// isolation, schema).  search_path was set from it.
    static PLACED: std::cell::RefCell<Option<(pgrx::Uuid, String, Option<String>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Called by `set_tenant` once it has set search_path for `t`.
pub fn placed(t: &Tenant) {
    PLACED.with(|p| *p.borrow_mut() = Some((t.id, t.isolation.clone(), t.schema_name.clone())));
}

/// Called by `clear_tenant`.
pub fn unplaced() {
    PLACED.with(|p| p.borrow_mut().take());
}

fn same_place(a: &Tenant, b: &Tenant) -> bool {
    a.isolation == b.isolation && a.schema_name == b.schema_name
}

/// Raises 40001 when the calling statement's snapshot still shows the
/// tenant where it was before a move that has committed since: what the
/// statement reads and writes is the old placement.  Called once per
/// transaction, when the request first holds the placement lock.
pub fn check_statement_snapshot(t: &Tenant) {
    if !unsafe { pg_sys::ActiveSnapshotSet() } {
        return;
    }
    let Some(seen) = tenants::find_by_id(t.id, Mode::Read) else {
        return;
    };
    if !same_place(&seen, t) {
        TenancyError::new(
            pgrx::PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE,
            format!(
                "tenant \"{}\" was moved from {} to {} isolation after this statement's snapshot was taken",
                t.identifier, seen.isolation, t.isolation
            ),
        )
        .detail("Its rows are no longer where this statement would read or write them.")
        .hint("Retry the transaction, starting with tenancy.set_tenant.")
        .raise();
    }
}

/// What a request's first hold of the placement lock in its transaction
/// checks (`current_tenant_id()`): that `set_tenant` set search_path for
/// where the tenant lives now, and that the statement's snapshot sees it
/// there too.
pub fn check_unmoved(t: &Tenant) {
    let stale = PLACED.with(|p| {
        p.borrow()
            .as_ref()
            .filter(|(id, iso, schema)| {
                *id == t.id && (*iso != t.isolation || *schema != t.schema_name)
            })
            .map(|(_, iso, _)| iso.clone())
    });
    if let Some(was) = stale {
        errors::wrong_state(format!(
            "tenant \"{}\" was moved from {was} to {} isolation since tenancy.set_tenant was called",
            t.identifier, t.isolation
        ))
        .detail("search_path still names the tenant's old place.")
        .hint("Call tenancy.set_tenant again.")
        .raise();
    }
    check_statement_snapshot(t);
}
