//! Live statistics (SPEC §10): `tenancy.tenant_stats` and
//! `tenancy.tenant_activity`, in shared memory, when the library is in
//! `shared_preload_libraries`.
//!
//! What is counted.  Every top-level statement (a client's statement, not
//! the ones functions, triggers or procedures run inside it) that ends
//! under a tenant context: the executor's statements and the utility
//! statements but transaction control (BEGIN, COMMIT, SAVEPOINT, …).  Its
//! rows (what the executor processed, or the command's count: COPY, FETCH,
//! CREATE TABLE AS) and its time from executor start to end, read from the
//! clock twice per counted statement.  A statement that fails counts
//! nothing: PostgreSQL calls no ExecutorEnd for it.
//!
//! For which tenant.  The context is a uuid anyone may SET by hand; it is
//! checked when used (`current_tenant_id()`, which RLS policies call) and
//! by `set_tenant`.  A statement counts for the context only once a check
//! passed for that value in this backend: the context's memo says so at no
//! cost (`context::checked_tenant`), and the backend remembers the last
//! value that passed.  So nobody can create entries for uuids they type:
//! only for tenants their role was found able to act for.
//!
//! Cost on the hot path.  A statement adds to a backend-local sum; the sums
//! reach shared memory at the end of the transaction (one acquisition of
//! the table's lock in shared mode, then atomic adds on the tenant's slot).
//! Only a tenant not yet in the table takes the lock exclusively: once, or
//! once per eviction.  A statement that starts without a context reads no
//! clock at the start (it uses the statement's start timestamp PostgreSQL
//! already took), and one that ends without a context none at the end.
//!
//! `tenant_activity`: each backend publishes its checked context (uuid and
//! since when) in its own slot of an array of MaxBackends slots, written
//! only by that backend under a sequence counter, read without a lock.
//! The context's GUC tells of every change of the value (an assign hook),
//! including the ones PostgreSQL makes at the end of a transaction, so a
//! `set_tenant(…, true)` is gone from the view when its transaction ends.

// On PostgreSQL 13 and 14 only the SQL functions remain (see `imp`).
#![cfg_attr(
    any(feature = "pg13", feature = "pg14"),
    allow(dead_code, unused_imports)
)]

use std::cell::{Cell, RefCell};
use std::ffi::CStr;

use pgrx::prelude::*;

use crate::base::errors;

extension_sql_file!(
    "../../sql/observability.sql",
    name = "observability",
    requires = [
        "catalog",
        tenant_stats_rows,
        tenant_activity_rows,
        reset_tenant_stats
    ]
);

/// The error both views and `reset_tenant_stats` raise without the preload.
fn not_preloaded() -> ! {
    errors::unsupported("tenancy's live statistics are not enabled on this server")
        .hint("Add tenancy to shared_preload_libraries in postgresql.conf (shared_preload_libraries = 'tenancy') and restart the server.")
        .raise()
}

/// One row of `tenant_stats`, as read from shared memory.
struct StatRow {
    id: [u8; 16],
    statements: u64,
    rows: u64,
    time_us: u64,
    last_at: i64,
}

/// One row of `tenant_activity`.
struct ActivityRow {
    pid: i32,
    id: [u8; 16],
    since: i64,
}

/// The rows of `tenancy.tenant_stats` (the view adds the identifier).
/// EXECUTE is not PUBLIC (sql/privileges.sql): it shows every tenant.
#[pg_extern(volatile, requires = ["catalog"])]
fn tenant_stats_rows() -> TableIterator<
    'static,
    (
        name!(tenant_id, pgrx::Uuid),
        name!(statements, i64),
        name!(rows, i64),
        name!(total_time_ms, f64),
        name!(last_statement_at, Option<TimestampWithTimeZone>),
    ),
> {
    let rows = imp::stats_rows().unwrap_or_else(|| not_preloaded());
    TableIterator::new(rows.into_iter().map(|r| {
        (
            pgrx::Uuid::from_bytes(r.id),
            r.statements.min(i64::MAX as u64) as i64,
            r.rows.min(i64::MAX as u64) as i64,
            r.time_us as f64 / 1000.0,
            TimestampWithTimeZone::try_from(r.last_at).ok(),
        )
    }))
}

/// The rows of `tenancy.tenant_activity` (the view adds the identifier and
/// the backend's state from pg_stat_get_activity).
#[pg_extern(volatile, requires = ["catalog"])]
fn tenant_activity_rows() -> TableIterator<
    'static,
    (
        name!(pid, i32),
        name!(tenant_id, pgrx::Uuid),
        name!(since, Option<TimestampWithTimeZone>),
    ),
> {
    let rows = imp::activity_rows().unwrap_or_else(|| not_preloaded());
    TableIterator::new(rows.into_iter().map(|r| {
        (
            r.pid,
            pgrx::Uuid::from_bytes(r.id),
            TimestampWithTimeZone::try_from(r.since).ok(),
        )
    }))
}

/// Forgets every tenant's counts (SPEC §10).  For admins: EXECUTE is not
/// PUBLIC.
#[pg_extern(volatile, requires = ["catalog"])]
fn reset_tenant_stats() {
    if !imp::reset() {
        not_preloaded()
    }
}

pub fn init() {
    imp::init();
}

/// The shared memory's name in pg_shmem_allocations.
const SHMEM_NAME: &CStr = c"tenancy live statistics";

/// Where each part of the shared memory starts, from its sizes (every
/// process computes the same from the header).  Parts start on a cache
/// line.
#[derive(Clone, Copy)]
struct Layout {
    buckets: usize,
    slots: usize,
    last: usize,
    procs: usize,
    size: usize,
}

/// A tenant's slot: its uuid and the next slot of its hash chain (both
/// written under the exclusive lock only), and its counters (atomic adds
/// under the shared lock).
#[repr(C)]
struct Slot {
    id: [u8; 16],
    next: u32,
    _pad: u32,
    statements: std::sync::atomic::AtomicU64,
    rows: std::sync::atomic::AtomicU64,
    time_us: std::sync::atomic::AtomicU64,
}

/// A backend's published context, written by that backend only: `seq` is
/// odd while it writes.  Padded to a cache line, so that backends setting
/// their context do not write the same lines (shared memory is only
/// promised 8-byte alignment, so no `align(64)`).
#[repr(C)]
struct ProcSlot {
    seq: std::sync::atomic::AtomicU32,
    pid: std::sync::atomic::AtomicI32,
    hi: std::sync::atomic::AtomicU64,
    lo: std::sync::atomic::AtomicU64,
    since: std::sync::atomic::AtomicI64,
    _pad: [u64; 4],
}

#[repr(C)]
struct Header {
    capacity: u32,
    nbuckets: u32,
    backends: u32,
    /// Slots in use (under the lock); slots are taken in order and only
    /// given back all at once, by a reset.
    used: u32,
    evictions: std::sync::atomic::AtomicU64,
}

const fn line(x: usize) -> usize {
    (x + 63) & !63
}

fn layout(capacity: usize, nbuckets: usize, backends: usize) -> Layout {
    let buckets = line(std::mem::size_of::<Header>());
    let slots = line(buckets + nbuckets * std::mem::size_of::<u32>());
    let last = line(slots + capacity * std::mem::size_of::<Slot>());
    let procs = line(last + capacity * std::mem::size_of::<i64>());
    let size = procs + backends * std::mem::size_of::<ProcSlot>();
    Layout {
        buckets,
        slots,
        last,
        procs,
        size,
    }
}

/// The hash table's bucket of a uuid: the two halves mixed, so that v7
/// uuids (time first, random last) spread.
fn bucket_of(id: &[u8; 16], nbuckets: u32) -> u32 {
    let a = u64::from_le_bytes(id[0..8].try_into().unwrap_or_default());
    let b = u64::from_le_bytes(id[8..16].try_into().unwrap_or_default());
    let h = (a ^ b.rotate_left(29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((h >> 32) as u32) & (nbuckets - 1)
}

/// A tenant's counts in one backend, not yet in shared memory.
#[derive(Clone, Copy)]
struct Pending {
    id: [u8; 16],
    statements: u64,
    rows: u64,
    time_us: u64,
    last_at: i64,
}

/// Flushed at the end of the transaction, or when a transaction has touched
/// this many tenants (a bound on the backend's memory).
const MAX_PENDING: usize = 32;

/// What the backend is timing: the top-level statement it is in.
#[derive(Clone, Copy, PartialEq)]
enum Active {
    None,
    /// An executor statement: its QueryDesc (to know its own ExecutorEnd
    /// from a nested one's), the subtransaction it started in (an abort of
    /// that one or of a later one ends it without ExecutorEnd), and its
    /// start.
    Exec {
        query: usize,
        subxact: u32,
        start: i64,
    },
    /// A utility statement: its ProcessUtility is on the stack.
    Utility {
        token: u64,
        start: i64,
    },
}

thread_local! {
    static ACTIVE: Cell<Active> = const { Cell::new(Active::None) };
    static UTILITY_TOKEN: Cell<u64> = const { Cell::new(0) };
    /// The context as the GUC holds it, parsed (None: no tenant).
    static CURRENT: Cell<Option<[u8; 16]>> = const { Cell::new(None) };
    /// When CURRENT took its value.
    static SINCE: Cell<i64> = const { Cell::new(0) };
    /// The last value of the context a check passed for in this backend.
    static VERIFIED: Cell<Option<[u8; 16]>> = const { Cell::new(None) };
    /// What this backend's ProcSlot says now (None: no tenant).
    static PUBLISHED: Cell<Option<([u8; 16], i64)>> = const { Cell::new(None) };
    static EXIT_HOOKED: Cell<bool> = const { Cell::new(false) };
    static PENDING: RefCell<Vec<Pending>> = const { RefCell::new(Vec::new()) };
}

#[cfg(any(feature = "pg13", feature = "pg14"))]
mod imp {
    //! PostgreSQL 13 and 14 have no shmem_request_hook (the size of the
    //! per-backend array is not known when _PG_init runs): the live
    //! statistics need 15 or later, and everything else works.
    use super::{ActivityRow, StatRow};

    pub fn init() {}
    pub fn stats_rows() -> Option<Vec<StatRow>> {
        None
    }
    pub fn activity_rows() -> Option<Vec<ActivityRow>> {
        None
    }
    pub fn reset() -> bool {
        false
    }
}

#[cfg(any(feature = "pg15", feature = "pg16", feature = "pg17", feature = "pg18"))]
mod imp {
    use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
    use std::sync::atomic::{fence, AtomicPtr};

    use pgrx::pg_sys;
    use pgrx::pg_sys::submodules::ffi::pg_guard_ffi_boundary;
    use pgrx::prelude::*;

    use super::*;
    use crate::base::settings;
    use crate::base::validate;
    use crate::context;

    /// The shared memory (null: not preloaded) and its lock, set by the
    /// startup hook in the postmaster and inherited by every backend.
    static HEADER: AtomicPtr<Header> = AtomicPtr::new(std::ptr::null_mut());
    static LOCK: AtomicPtr<pg_sys::LWLock> = AtomicPtr::new(std::ptr::null_mut());

    static mut PREV_SHMEM_REQUEST: pg_sys::shmem_request_hook_type = None;
    static mut PREV_SHMEM_STARTUP: pg_sys::shmem_startup_hook_type = None;
    static mut PREV_EXECUTOR_START: pg_sys::ExecutorStart_hook_type = None;
    static mut PREV_EXECUTOR_END: pg_sys::ExecutorEnd_hook_type = None;
    static mut PREV_PROCESS_UTILITY: pg_sys::ProcessUtility_hook_type = None;

    /// The shared table, seen through its layout.
    #[derive(Clone, Copy)]
    struct Table {
        header: *mut Header,
        lock: *mut pg_sys::LWLock,
        layout: Layout,
        capacity: u32,
        nbuckets: u32,
        backends: u32,
    }

    impl Table {
        fn get() -> Option<Table> {
            let header = HEADER.load(Relaxed);
            if header.is_null() {
                return None;
            }
            // SAFETY: the header was written before HEADER was set and its
            // sizes never change.
            let (capacity, nbuckets, backends) =
                unsafe { ((*header).capacity, (*header).nbuckets, (*header).backends) };
            Some(Table {
                header,
                lock: LOCK.load(Relaxed),
                layout: layout(capacity as usize, nbuckets as usize, backends as usize),
                capacity,
                nbuckets,
                backends,
            })
        }
        fn base(&self) -> *mut u8 {
            self.header.cast()
        }
        /// SAFETY (all four): the index is checked against the part's size.
        fn bucket(&self, i: u32) -> *mut u32 {
            assert!(i < self.nbuckets);
            unsafe {
                self.base()
                    .add(self.layout.buckets)
                    .cast::<u32>()
                    .add(i as usize)
            }
        }
        fn slot(&self, i: u32) -> *mut Slot {
            assert!(i < self.capacity);
            unsafe {
                self.base()
                    .add(self.layout.slots)
                    .cast::<Slot>()
                    .add(i as usize)
            }
        }
        fn last(&self, i: u32) -> &std::sync::atomic::AtomicI64 {
            assert!(i < self.capacity);
            unsafe {
                &*self
                    .base()
                    .add(self.layout.last)
                    .cast::<std::sync::atomic::AtomicI64>()
                    .add(i as usize)
            }
        }
        fn proc(&self, i: usize) -> Option<&ProcSlot> {
            (i < self.backends as usize)
                .then(|| unsafe { &*self.base().add(self.layout.procs).cast::<ProcSlot>().add(i) })
        }
        fn lock(&self, exclusive: bool) -> Guard {
            let mode = if exclusive {
                pg_sys::LWLockMode::LW_EXCLUSIVE
            } else {
                pg_sys::LWLockMode::LW_SHARED
            };
            unsafe { pg_sys::LWLockAcquire(self.lock, mode) };
            Guard(self.lock)
        }
        /// The slot holding `id`, under the lock (either mode).
        fn find(&self, id: &[u8; 16]) -> Option<u32> {
            let mut i = unsafe { *self.bucket(bucket_of(id, self.nbuckets)) };
            while i != u32::MAX {
                let s = self.slot(i);
                if unsafe { (*s).id } == *id {
                    return Some(i);
                }
                i = unsafe { (*s).next };
            }
            None
        }
        /// A slot for `id`, under the exclusive lock: a free one, or the
        /// least recently active one's, whose counts are lost.
        fn insert(&self, id: &[u8; 16]) -> u32 {
            let header = self.header;
            let i = unsafe {
                if (*header).used < self.capacity {
                    (*header).used += 1;
                    (*header).used - 1
                } else {
                    let victim = (0..self.capacity)
                        .min_by_key(|&i| self.last(i).load(Relaxed))
                        .unwrap_or(0);
                    self.unlink(victim);
                    (*header).evictions.fetch_add(1, Relaxed);
                    victim
                }
            };
            let s = self.slot(i);
            let b = self.bucket(bucket_of(id, self.nbuckets));
            unsafe {
                (*s).id = *id;
                (*s).statements.store(0, Relaxed);
                (*s).rows.store(0, Relaxed);
                (*s).time_us.store(0, Relaxed);
                (*s).next = *b;
                *b = i;
            }
            self.last(i).store(i64::MIN, Relaxed);
            i
        }
        /// Takes slot `i` out of its hash chain (exclusive lock).
        fn unlink(&self, i: u32) {
            let id = unsafe { (*self.slot(i)).id };
            let mut link = self.bucket(bucket_of(&id, self.nbuckets));
            unsafe {
                while *link != u32::MAX {
                    if *link == i {
                        *link = (*self.slot(i)).next;
                        return;
                    }
                    link = &raw mut (*self.slot(*link)).next;
                }
            }
        }
        fn add(&self, i: u32, p: &Pending) {
            let s = self.slot(i);
            unsafe {
                (*s).statements.fetch_add(p.statements, Relaxed);
                (*s).rows.fetch_add(p.rows, Relaxed);
                (*s).time_us.fetch_add(p.time_us, Relaxed);
            }
            self.last(i).fetch_max(p.last_at, Relaxed);
        }
    }

    /// Releases the table's lock when dropped, on error too.
    struct Guard(*mut pg_sys::LWLock);
    impl Drop for Guard {
        fn drop(&mut self) {
            unsafe { pg_sys::LWLockRelease(self.0) };
        }
    }

    pub fn init() {
        // SAFETY: reads of the postmaster's flag; hooks are installed once,
        // in the postmaster, before any backend exists.
        unsafe {
            if !pg_sys::process_shared_preload_libraries_in_progress {
                return;
            }
            PREV_SHMEM_REQUEST = pg_sys::shmem_request_hook;
            pg_sys::shmem_request_hook = Some(shmem_request);
            PREV_SHMEM_STARTUP = pg_sys::shmem_startup_hook;
            pg_sys::shmem_startup_hook = Some(shmem_startup);
            PREV_EXECUTOR_START = pg_sys::ExecutorStart_hook;
            pg_sys::ExecutorStart_hook = Some(executor_start);
            PREV_EXECUTOR_END = pg_sys::ExecutorEnd_hook;
            pg_sys::ExecutorEnd_hook = Some(executor_end);
            PREV_PROCESS_UTILITY = pg_sys::ProcessUtility_hook;
            pg_sys::ProcessUtility_hook = Some(process_utility);
            pg_sys::RegisterXactCallback(Some(xact_end), std::ptr::null_mut());
            pg_sys::RegisterSubXactCallback(Some(subxact_end), std::ptr::null_mut());
        }
        settings::observe_tenant_id(on_tenant_id);
    }

    /// The sizes shared memory is made with: the setting (postmaster only)
    /// and MaxBackends, both fixed once shmem_request_hook runs.
    fn sizes() -> (u32, u32, u32) {
        let capacity = settings::stats_max_tenants().max(1) as u32;
        let nbuckets = capacity.next_power_of_two().max(16);
        let backends = unsafe { pg_sys::MaxBackends }.max(1) as u32;
        (capacity, nbuckets, backends)
    }

    #[pg_guard]
    unsafe extern "C-unwind" fn shmem_request() {
        if let Some(prev) = PREV_SHMEM_REQUEST {
            pg_guard_ffi_boundary(|| prev());
        }
        let (c, n, b) = sizes();
        pg_sys::RequestAddinShmemSpace(layout(c as usize, n as usize, b as usize).size);
        pg_sys::RequestNamedLWLockTranche(SHMEM_NAME.as_ptr(), 1);
    }

    #[pg_guard]
    unsafe extern "C-unwind" fn shmem_startup() {
        if let Some(prev) = PREV_SHMEM_STARTUP {
            pg_guard_ffi_boundary(|| prev());
        }
        let (capacity, nbuckets, backends) = sizes();
        let l = layout(capacity as usize, nbuckets as usize, backends as usize);
        // AddinShmemInitLock, as PostgreSQL's own extensions take it.
        let init_lock = &raw mut (*pg_sys::MainLWLockArray.add(21)).lock;
        pg_sys::LWLockAcquire(init_lock, pg_sys::LWLockMode::LW_EXCLUSIVE);
        let mut found = false;
        let base = pg_sys::ShmemInitStruct(SHMEM_NAME.as_ptr(), l.size, &mut found).cast::<u8>();
        if !found {
            std::ptr::write_bytes(base, 0, l.size);
            let header = base.cast::<Header>();
            (*header).capacity = capacity;
            (*header).nbuckets = nbuckets;
            (*header).backends = backends;
            let buckets = base.add(l.buckets).cast::<u32>();
            for i in 0..nbuckets as usize {
                *buckets.add(i) = u32::MAX;
            }
        }
        LOCK.store(
            &raw mut (*pg_sys::GetNamedLWLockTranche(SHMEM_NAME.as_ptr())).lock,
            Relaxed,
        );
        HEADER.store(base.cast(), Release);
        pg_sys::LWLockRelease(init_lock);
    }

    fn in_parallel_worker() -> bool {
        unsafe { pg_sys::ParallelWorkerNumber >= 0 }
    }

    fn now() -> i64 {
        unsafe { pg_sys::GetCurrentTimestamp() }
    }

    #[pg_guard]
    unsafe extern "C-unwind" fn executor_start(query: *mut pg_sys::QueryDesc, eflags: i32) {
        if ACTIVE.get() == Active::None && !in_parallel_worker() {
            // Without a context now, the statement is unlikely to count
            // (only if it sets one): no clock read, PostgreSQL's own
            // statement start serves.
            let start = if CURRENT.get().is_some() {
                now()
            } else {
                pg_sys::GetCurrentStatementStartTimestamp()
            };
            ACTIVE.set(Active::Exec {
                query: query as usize,
                subxact: pg_sys::GetCurrentSubTransactionId(),
                start,
            });
        }
        match PREV_EXECUTOR_START {
            Some(prev) => pg_guard_ffi_boundary(|| prev(query, eflags)),
            None => pg_sys::standard_ExecutorStart(query, eflags),
        }
    }

    #[pg_guard]
    unsafe extern "C-unwind" fn executor_end(query: *mut pg_sys::QueryDesc) {
        let mine = match ACTIVE.get() {
            Active::Exec {
                query: q, start, ..
            } if q == query as usize => Some(start),
            _ => None,
        };
        // The count is read before ExecutorEnd frees the executor's state.
        let rows = match mine {
            Some(_) if !(*query).estate.is_null() => (*(*query).estate).es_processed,
            _ => 0,
        };
        match PREV_EXECUTOR_END {
            Some(prev) => pg_guard_ffi_boundary(|| prev(query)),
            None => pg_sys::standard_ExecutorEnd(query),
        }
        if let Some(start) = mine {
            ACTIVE.set(Active::None);
            count(rows, start);
        }
    }

    /// Clears the utility statement's mark when its ProcessUtility is left,
    /// by an error too (a procedure's own ROLLBACK aborts a transaction
    /// while the CALL goes on, so a transaction's end cannot tell).
    struct UtilityMark(u64);
    impl Drop for UtilityMark {
        fn drop(&mut self) {
            if matches!(ACTIVE.get(), Active::Utility { token, .. } if token == self.0) {
                ACTIVE.set(Active::None);
            }
        }
    }

    #[pg_guard]
    #[allow(clippy::too_many_arguments)]
    unsafe extern "C-unwind" fn process_utility(
        pstmt: *mut pg_sys::PlannedStmt,
        query_string: *const std::ffi::c_char,
        read_only_tree: bool,
        context: pg_sys::ProcessUtilityContext::Type,
        params: pg_sys::ParamListInfo,
        query_env: *mut pg_sys::QueryEnvironment,
        dest: *mut pg_sys::DestReceiver,
        qc: *mut pg_sys::QueryCompletion,
    ) {
        let call = || match PREV_PROCESS_UTILITY {
            Some(prev) => pg_guard_ffi_boundary(|| {
                prev(
                    pstmt,
                    query_string,
                    read_only_tree,
                    context,
                    params,
                    query_env,
                    dest,
                    qc,
                )
            }),
            None => pg_sys::standard_ProcessUtility(
                pstmt,
                query_string,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
        };
        // A client's own statement, never a nested one; transaction control
        // is not work done for a tenant.
        let top = context == pg_sys::ProcessUtilityContext::PROCESS_UTILITY_TOPLEVEL
            && !in_parallel_worker()
            && !pstmt.is_null()
            && !pgrx::is_a((*pstmt).utilityStmt, pg_sys::NodeTag::T_TransactionStmt);
        if !top {
            return call();
        }
        let token = UTILITY_TOKEN.get().wrapping_add(1);
        UTILITY_TOKEN.set(token);
        let start = if CURRENT.get().is_some() {
            now()
        } else {
            pg_sys::GetCurrentStatementStartTimestamp()
        };
        // A top-level statement starts with nothing above it: whatever
        // ACTIVE held was left by a statement that failed.
        ACTIVE.set(Active::Utility { token, start });
        let mark = UtilityMark(token);
        call();
        drop(mark);
        let rows = if qc.is_null() { 0 } else { (*qc).nprocessed };
        count(rows, start);
    }

    /// A top-level statement ended: adds it to the backend's sums, for the
    /// context if a check passed for it (see the module's comment).
    fn count(rows: u64, start: i64) {
        let Some(id) = CURRENT.get() else { return };
        if VERIFIED.get() != Some(id) {
            match context::checked_tenant() {
                Some(t) if *t.as_bytes() == id => {
                    VERIFIED.set(Some(id));
                    publish();
                }
                _ => return,
            }
        }
        let end = now();
        let time_us = (end - start).max(0) as u64;
        let full = PENDING.with(|p| {
            let mut p = p.borrow_mut();
            match p.iter_mut().find(|e| e.id == id) {
                Some(e) => {
                    e.statements += 1;
                    e.rows = e.rows.saturating_add(rows);
                    e.time_us = e.time_us.saturating_add(time_us);
                    e.last_at = e.last_at.max(end);
                }
                None => p.push(Pending {
                    id,
                    statements: 1,
                    rows,
                    time_us,
                    last_at: end,
                }),
            }
            p.len() >= MAX_PENDING
        });
        if full {
            flush();
        }
    }

    /// Moves the backend's sums into shared memory.  Never raises: it runs
    /// at commit and abort.
    fn flush() {
        let pending = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
        if pending.is_empty() {
            return;
        }
        let Some(t) = Table::get() else { return };
        let mut missing = Vec::new();
        {
            let _g = t.lock(false);
            for p in &pending {
                match t.find(&p.id) {
                    Some(i) => t.add(i, p),
                    None => missing.push(*p),
                }
            }
        }
        if !missing.is_empty() {
            let _g = t.lock(true);
            for p in &missing {
                let i = t.find(&p.id).unwrap_or_else(|| t.insert(&p.id));
                t.add(i, p);
            }
        }
        // Keep the allocation for the next transaction.
        PENDING.with(|p| {
            let mut p = p.borrow_mut();
            if p.is_empty() {
                let mut v = pending;
                v.clear();
                *p = v;
            }
        });
    }

    #[pg_guard]
    unsafe extern "C-unwind" fn xact_end(
        event: pg_sys::XactEvent::Type,
        _arg: *mut std::ffi::c_void,
    ) {
        use pg_sys::XactEvent::*;
        match event {
            XACT_EVENT_COMMIT | XACT_EVENT_PREPARE => flush(),
            XACT_EVENT_ABORT => {
                // An executor statement cannot outlive its transaction's
                // abort (a utility one can: a procedure's ROLLBACK).
                if matches!(ACTIVE.get(), Active::Exec { .. }) {
                    ACTIVE.set(Active::None);
                }
                flush();
            }
            _ => {}
        }
    }

    #[pg_guard]
    unsafe extern "C-unwind" fn subxact_end(
        event: pg_sys::SubXactEvent::Type,
        my_subid: pg_sys::SubTransactionId,
        _parent: pg_sys::SubTransactionId,
        _arg: *mut std::ffi::c_void,
    ) {
        if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
            // The statement started in the aborted subtransaction or in one
            // of its children: it failed (ROLLBACK TO SAVEPOINT after it).
            // One that started before (a function's EXCEPTION block caught
            // an error of a nested statement) goes on.
            if matches!(ACTIVE.get(), Active::Exec { subxact, .. } if subxact >= my_subid) {
                ACTIVE.set(Active::None);
            }
        }
    }

    /// tenancy.tenant_id took a new value (settings' assign hook).  Must
    /// not raise.
    fn on_tenant_id(value: &str) {
        CURRENT.set(if value.is_empty() {
            None
        } else {
            validate::parse_pg_uuid(value)
        });
        SINCE.set(now());
        publish();
    }

    /// This backend's index among the MaxBackends regular backends.
    fn my_proc() -> Option<usize> {
        #[cfg(any(feature = "pg15", feature = "pg16"))]
        let n = unsafe {
            if pg_sys::MyProc.is_null() {
                -1
            } else {
                (*pg_sys::MyProc).pgprocno
            }
        };
        #[cfg(any(feature = "pg17", feature = "pg18"))]
        let n = unsafe { pg_sys::MyProcNumber };
        usize::try_from(n).ok()
    }

    /// Publishes the backend's checked context in its slot, or that it has
    /// none.
    fn publish() {
        if in_parallel_worker() {
            return;
        }
        let want = match (CURRENT.get(), VERIFIED.get()) {
            (Some(c), Some(v)) if c == v => Some((c, SINCE.get())),
            _ => None,
        };
        if want == PUBLISHED.get() {
            return;
        }
        let Some(t) = Table::get() else { return };
        let Some(slot) = my_proc().and_then(|i| t.proc(i)) else {
            return;
        };
        if want.is_some() && !EXIT_HOOKED.get() {
            unsafe { pg_sys::before_shmem_exit(Some(clear_at_exit), pg_sys::Datum::from(0)) };
            EXIT_HOOKED.set(true);
        }
        write_slot(slot, want);
        PUBLISHED.set(want);
    }

    fn write_slot(slot: &ProcSlot, value: Option<([u8; 16], i64)>) {
        let seq = slot.seq.load(Relaxed);
        slot.seq.store(seq.wrapping_add(1), Relaxed);
        fence(Release);
        match value {
            Some((id, since)) => {
                slot.hi.store(
                    u64::from_be_bytes(id[0..8].try_into().unwrap_or_default()),
                    Relaxed,
                );
                slot.lo.store(
                    u64::from_be_bytes(id[8..16].try_into().unwrap_or_default()),
                    Relaxed,
                );
                slot.since.store(since, Relaxed);
                slot.pid.store(unsafe { pg_sys::MyProcPid }, Relaxed);
            }
            None => slot.pid.store(0, Relaxed),
        }
        slot.seq.store(seq.wrapping_add(2), Release);
    }

    #[pg_guard]
    unsafe extern "C-unwind" fn clear_at_exit(_code: i32, _arg: pg_sys::Datum) {
        if let (Some(t), Some(i)) = (Table::get(), my_proc()) {
            if let Some(slot) = t.proc(i) {
                write_slot(slot, None);
            }
        }
        PUBLISHED.set(None);
    }

    pub fn stats_rows() -> Option<Vec<StatRow>> {
        let t = Table::get()?;
        // What this backend counted so far in its transaction shows too.
        flush();
        let _g = t.lock(false);
        let used = unsafe { (*t.header).used }.min(t.capacity);
        Some(
            (0..used)
                .map(|i| {
                    let s = t.slot(i);
                    unsafe {
                        StatRow {
                            id: (*s).id,
                            statements: (*s).statements.load(Relaxed),
                            rows: (*s).rows.load(Relaxed),
                            time_us: (*s).time_us.load(Relaxed),
                            last_at: t.last(i).load(Relaxed),
                        }
                    }
                })
                .collect(),
        )
    }

    pub fn activity_rows() -> Option<Vec<ActivityRow>> {
        let t = Table::get()?;
        let mut out = Vec::new();
        for i in 0..t.backends as usize {
            let Some(slot) = t.proc(i) else { break };
            // A consistent read of a slot its backend may be writing.
            let read = (0..100).find_map(|_| {
                let before = slot.seq.load(Acquire);
                if before % 2 == 1 {
                    std::hint::spin_loop();
                    return None;
                }
                let pid = slot.pid.load(Relaxed);
                let hi = slot.hi.load(Relaxed);
                let lo = slot.lo.load(Relaxed);
                let since = slot.since.load(Relaxed);
                fence(Acquire);
                (slot.seq.load(Relaxed) == before).then_some((pid, hi, lo, since))
            });
            let Some((pid, hi, lo, since)) = read else {
                continue;
            };
            // A slot left by a backend that is gone shows nothing: the
            // process now in that place must be the one that wrote it.
            if pid == 0 || proc_pid(i) != pid {
                continue;
            }
            let mut id = [0u8; 16];
            id[0..8].copy_from_slice(&hi.to_be_bytes());
            id[8..16].copy_from_slice(&lo.to_be_bytes());
            out.push(ActivityRow { pid, id, since });
        }
        Some(out)
    }

    /// The pid of the process in PGPROC slot `i` (below MaxBackends).
    fn proc_pid(i: usize) -> i32 {
        unsafe {
            let global = pg_sys::ProcGlobal;
            if global.is_null() || i >= (*global).allProcCount as usize {
                return 0;
            }
            std::ptr::read_volatile(&raw const (*(*global).allProcs.add(i)).pid)
        }
    }

    pub fn reset() -> bool {
        let Some(t) = Table::get() else { return false };
        PENDING.with(|p| p.borrow_mut().clear());
        let _g = t.lock(true);
        unsafe { (*t.header).used = 0 };
        for b in 0..t.nbuckets {
            unsafe { *t.bucket(b) = u32::MAX };
        }
        unsafe { (*t.header).evictions.store(0, Relaxed) };
        true
    }
}
