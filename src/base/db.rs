//! The one way tenancy runs SQL: statements written out in full (schema
//! qualified, values as parameters), planned once per backend and kept in
//! PostgreSQL's plan cache, which replans them when the catalog changes.
//!
//! pgrx's `SpiClient` decides read-only mode from whether the transaction has
//! written; `current_tenant_id()` is PARALLEL SAFE and may run in a parallel
//! worker, where a non-read-only SPI call fails, so the mode is ours to choose.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CString;

use pgrx::datum::DatumWithOid;
use pgrx::memcxt::PgMemoryContexts;
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::base::errors;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Sees the calling statement's snapshot; allowed in STABLE and parallel code.
    Read,
    /// May write; sees the transaction's own earlier changes.
    Write,
    /// Reads with a new snapshot (the latest committed state, in READ
    /// COMMITTED), even from a STABLE function that runs while its caller is
    /// still being planned; read-only inside a parallel operation, where a
    /// new command cannot start.
    Latest,
}

thread_local! {
    static PLANS: RefCell<HashMap<&'static str, pg_sys::SPIPlanPtr>> = RefCell::new(HashMap::new());
}

/// One result row; valid only inside the closure given to [`query`].
pub struct Row {
    tuple: pg_sys::HeapTuple,
    desc: pg_sys::TupleDesc,
    outer: pg_sys::MemoryContext,
}

impl Row {
    /// Column `n` (1-based), copied into the calling function's memory context.
    pub fn get<T: FromDatum + IntoDatum>(&self, n: i32) -> Option<T> {
        unsafe {
            let mut is_null = false;
            let datum = pg_sys::SPI_getbinval(self.tuple, self.desc, n, &mut is_null);
            let oid = pg_sys::SPI_gettypeid(self.desc, n);
            T::from_datum_in_memory_context(PgMemoryContexts::For(self.outer), datum, is_null, oid)
        }
    }

    /// Column `n`, which the statement guarantees is not NULL.
    pub fn must<T: FromDatum + IntoDatum>(&self, n: i32) -> T {
        match self.get(n) {
            Some(v) => v,
            None => errors::internal(format!("column {n} was unexpectedly NULL")),
        }
    }
}

/// Plans `sql`.  Kept statements use a generic plan from the first call:
/// their shapes are fixed and keyed on unique columns, and re-planning a
/// multi-CTE statement on every call (PostgreSQL's default while it compares
/// custom and generic plans) costs more than running it.
fn prepare(sql: &str, args: &[DatumWithOid], generic: bool) -> pg_sys::SPIPlanPtr {
    let text = CString::new(sql)
        .unwrap_or_else(|_| errors::invalid("SQL text must not contain NUL bytes").raise());
    let mut types: Vec<pg_sys::Oid> = args.iter().map(|a| a.oid()).collect();
    let options = if generic {
        pg_sys::CURSOR_OPT_GENERIC_PLAN as i32
    } else {
        0
    };
    let plan = unsafe {
        pg_sys::SPI_prepare_cursor(
            text.as_ptr(),
            types.len() as i32,
            types.as_mut_ptr(),
            options,
        )
    };
    if plan.is_null() {
        errors::internal(format!("SPI_prepare failed ({}) for: {sql}", unsafe {
            pg_sys::SPI_result
        }));
    }
    plan
}

/// The kept plan of a fixed statement, prepared on first use in this backend.
fn plan_for(sql: &'static str, args: &[DatumWithOid]) -> pg_sys::SPIPlanPtr {
    if let Some(p) = PLANS.with(|p| p.borrow().get(sql).copied()) {
        return p;
    }
    let plan = prepare(sql, args, true);
    unsafe { pg_sys::SPI_keepplan(plan) };
    PLANS.with(|p| p.borrow_mut().insert(sql, plan));
    plan
}

/// Runs `sql` with `args` and maps every row through `each`.
pub fn query<R>(
    sql: &'static str,
    mode: Mode,
    args: &[DatumWithOid],
    each: impl FnMut(&Row) -> R,
) -> Vec<R> {
    run(Some(sql), sql, mode, args, each)
}

/// Like [`query`] for SQL text built at run time (with quoted identifiers):
/// planned for this call only.
pub fn query_text<R>(
    sql: &str,
    mode: Mode,
    args: &[DatumWithOid],
    each: impl FnMut(&Row) -> R,
) -> Vec<R> {
    run(None, sql, mode, args, each)
}

fn run<R>(
    cached: Option<&'static str>,
    sql: &str,
    mode: Mode,
    args: &[DatumWithOid],
    mut each: impl FnMut(&Row) -> R,
) -> Vec<R> {
    let outer = unsafe { pg_sys::CurrentMemoryContext };
    Spi::connect(|_client| unsafe {
        let plan = match cached {
            Some(key) => plan_for(key, args),
            None => prepare(sql, args, false),
        };
        let (mut values, nulls) = spi_args(args);
        let read_only = match mode {
            Mode::Read => true,
            Mode::Write => false,
            Mode::Latest => pg_sys::IsInParallelMode(),
        };
        let rc = pg_sys::SPI_execute_plan(plan, values.as_mut_ptr(), nulls.as_ptr(), read_only, 0);
        if rc < 0 {
            errors::internal(format!("SPI_execute_plan failed ({rc}) for: {sql}"));
        }
        let table = pg_sys::SPI_tuptable;
        let rows = if table.is_null() {
            Vec::new()
        } else {
            let n = pg_sys::SPI_processed as usize;
            let desc = (*table).tupdesc;
            (0..n)
                .map(|i| {
                    each(&Row {
                        tuple: *(*table).vals.add(i),
                        desc,
                        outer,
                    })
                })
                .collect()
        };
        if cached.is_none() {
            pg_sys::SPI_freeplan(plan);
        }
        rows
    })
}

/// Runs `sql` and returns its first row mapped through `each`, if any.
pub fn query_one<R>(
    sql: &'static str,
    mode: Mode,
    args: &[DatumWithOid],
    each: impl FnMut(&Row) -> R,
) -> Option<R> {
    query(sql, mode, args, each).into_iter().next()
}

/// Runs a statement whose rows are not needed.
pub fn execute(sql: &'static str, args: &[DatumWithOid]) {
    query(sql, Mode::Write, args, |_| ());
}

/// Runs SQL text that is not known in advance (DDL built with quoted
/// identifiers, migration scripts).  Never cached, never given user values
/// other than through quoting.
pub fn execute_dynamic(sql: &str) {
    let text = CString::new(sql)
        .unwrap_or_else(|_| errors::invalid("SQL text must not contain NUL bytes").raise());
    Spi::connect(|_client| unsafe {
        let rc = pg_sys::SPI_execute(text.as_ptr(), false, 0);
        match rc {
            pg_sys::SPI_ERROR_TRANSACTION => errors::TenancyError::new(
                pgrx::PgSqlErrorCode::ERRCODE_INVALID_TRANSACTION_TERMINATION,
                "transaction control statements are not allowed in tenancy's SQL (a migration runs inside the tenant's transaction)",
            )
            .hint("Remove BEGIN, COMMIT, ROLLBACK and SAVEPOINT from the migration.")
            .raise(),
            pg_sys::SPI_ERROR_COPY => errors::unsupported("COPY to or from the client is not allowed in a migration").raise(),
            rc if rc < 0 => errors::internal(format!("SPI_execute failed ({rc})")),
            _ => {}
        }
    })
}

/// Takes the transaction-level lock on (purpose, tenant), waiting for it
/// (`wait`) or not; true when held.  A direct call: no statement, so the
/// next statement's snapshot is taken after the lock is held.
///
/// Not an advisory lock: any session can compute an advisory key and hold
/// it, and so block the rate limit of a tenant it may not act for, or make
/// `migrate()` skip one.  This is a heavyweight lock of the lock manager's
/// "userlock" kind (reserved for extensions; `pg_locks` shows it as
/// `userlock`), which no SQL function takes: only tenancy's own calls can
/// hold it.  Deadlocks, `lock_timeout` and cancels apply as to any lock.
pub fn lock_tenant(
    purpose: crate::base::validate::LockPurpose,
    tenant: pgrx::Uuid,
    wait: bool,
) -> bool {
    let tag = userlock_tag(
        purpose,
        crate::base::validate::tenant_lock_key(purpose, tenant.as_bytes()),
    );
    // SAFETY: a filled-in tag; a transaction-level lock, released at the
    // end of the (sub)transaction as an advisory xact lock would be.
    let got = unsafe {
        pg_sys::LockAcquire(
            &tag,
            pg_sys::ExclusiveLock as pg_sys::LOCKMODE,
            false,
            !wait,
        )
    };
    got != pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL
}

/// Runs `f` in a subtransaction, as a PL/pgSQL block with
/// `EXCEPTION WHEN OTHERS` does: kept when `f` returns; rolled back when it
/// raises, with the error's message returned.  A cancel (57014) or an
/// assertion failure is not caught: it is raised again after the rollback,
/// so a cancelled `CALL tenancy.migrate()` stops instead of recording it.
pub fn subtransaction(f: impl FnOnce()) -> Result<(), (pgrx::PgSqlErrorCode, String)> {
    use pgrx::pg_sys::panic::CaughtError;
    use pgrx::PgTryBuilder;
    unsafe {
        let context = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(context);
        let outcome = PgTryBuilder::new(std::panic::AssertUnwindSafe(|| {
            f();
            Ok(())
        }))
        .catch_others(|e| Err(e))
        .execute();
        match outcome {
            Ok(()) => {
                pg_sys::ReleaseCurrentSubTransaction();
                pg_sys::MemoryContextSwitchTo(context);
                pg_sys::CurrentResourceOwner = owner;
                Ok(())
            }
            Err(e) => {
                pg_sys::MemoryContextSwitchTo(context);
                pg_sys::RollbackAndReleaseCurrentSubTransaction();
                pg_sys::MemoryContextSwitchTo(context);
                pg_sys::CurrentResourceOwner = owner;
                let report = match &e {
                    CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => r,
                    CaughtError::RustPanic { ereport, .. } => ereport,
                };
                match report.sql_error_code() {
                    pgrx::PgSqlErrorCode::ERRCODE_QUERY_CANCELED
                    | pgrx::PgSqlErrorCode::ERRCODE_ASSERT_FAILURE => e.rethrow(),
                    code => Err((code, report.message().to_string())),
                }
            }
        }
    }
}

/// Takes one of a tenant's `slots` request slots for the rest of the
/// transaction (max_concurrent_requests), without waiting; true when this
/// transaction holds one (already, or now).  The same kind of lock as
/// [`lock_tenant`]: no SQL function can take or hold one.
pub fn take_request_slot(tenant: pgrx::Uuid, slots: u32) -> bool {
    let tag = |slot: u32| {
        userlock_tag(
            crate::base::validate::LockPurpose::Request,
            crate::base::validate::tenant_slot_key(tenant.as_bytes(), slot),
        )
    };
    let mode = pg_sys::ExclusiveLock as pg_sys::LOCKMODE;
    // SAFETY: filled-in tags; transaction-level locks, released at the end
    // of the (sub)transaction that took them.
    unsafe {
        #[cfg(not(any(feature = "pg17", feature = "pg18")))]
        let held = |t: &pg_sys::LOCKTAG| pg_sys::LockHeldByMe(t, mode);
        #[cfg(any(feature = "pg17", feature = "pg18"))]
        let held = |t: &pg_sys::LOCKTAG| pg_sys::LockHeldByMe(t, mode, false);
        if (0..slots).any(|i| held(&tag(i))) {
            return true;
        }
        (0..slots).any(|i| {
            pg_sys::LockAcquire(&tag(i), mode, false, true)
                != pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL
        })
    }
}

/// Arguments as SPI takes them: their values, and ' ' or 'n' for each.
pub fn spi_args(args: &[DatumWithOid]) -> (Vec<pg_sys::Datum>, Vec<std::ffi::c_char>) {
    args.iter()
        .map(|a| match a.datum() {
            Some(d) => (d.sans_lifetime(), b' ' as std::ffi::c_char),
            None => (pg_sys::Datum::from(0usize), b'n' as std::ffi::c_char),
        })
        .unzip()
}

/// The tag of tenancy's lock `key` of `purpose` in this database: a lock of
/// the lock manager's "userlock" kind, which no SQL function takes (see
/// [`lock_tenant`]).
pub fn userlock_tag(purpose: crate::base::validate::LockPurpose, key: i64) -> pg_sys::LOCKTAG {
    let key = key as u64;
    pg_sys::LOCKTAG {
        locktag_field1: unsafe { pg_sys::MyDatabaseId }.to_u32(),
        locktag_field2: (key >> 32) as u32,
        locktag_field3: key as u32,
        locktag_field4: purpose as u32 as u16,
        locktag_type: pg_sys::LockTagType::LOCKTAG_USERLOCK as u8,
        locktag_lockmethodid: pg_sys::DEFAULT_LOCKMETHOD as u8,
    }
}
