//! Hand-written C entry points for the read functions on every request's
//! path (`tenant`, `tenant_by_identifier`, `list_tenants`).
//!
//! pgrx's generated wrappers decode the returned row into a `PgHeapTuple`
//! (a row-type lookup and a copy per row) and return sets one row per call.
//! These entry points hand PostgreSQL the catalog row as it was read, and
//! return a set in materialize mode (every row put straight into the
//! tuplestore the executor reads), the way PostgreSQL's own set-returning
//! functions do.  Their SQL definitions sit next to them (`extension_sql!`)
//! and are the same as the generated ones of 0.1.0, symbols included.

use pgrx::pg_sys;

/// Declares `$symbol` as a version-1 function, as PG_FUNCTION_INFO_V1 does.
#[macro_export]
macro_rules! fmgr_v1 {
    ($finfo:ident) => {
        #[no_mangle]
        #[doc(hidden)]
        pub extern "C" fn $finfo() -> &'static pgrx::pg_sys::Pg_finfo_record {
            const V1: pgrx::pg_sys::Pg_finfo_record =
                pgrx::pg_sys::Pg_finfo_record { api_version: 1 };
            &V1
        }
    };
}

/// Argument `n`, or None when it is NULL.
pub unsafe fn arg(fcinfo: pg_sys::FunctionCallInfo, n: usize) -> Option<pg_sys::Datum> {
    let a = *(*fcinfo).args.as_slice(n + 1).get_unchecked(n);
    if a.isnull {
        None
    } else {
        Some(a.value)
    }
}

/// Returns a set in materialize mode: `fill` puts heap tuples of `desc`'s
/// row type into the tuplestore, which lives as long as the calling query.
pub unsafe fn return_set(
    fcinfo: pg_sys::FunctionCallInfo,
    fill: impl FnOnce(&mut dyn FnMut(pg_sys::HeapTuple, pg_sys::TupleDesc)),
) -> pg_sys::Datum {
    let rsinfo = (*fcinfo).resultinfo as *mut pg_sys::ReturnSetInfo;
    if rsinfo.is_null()
        || (*rsinfo).type_ != pg_sys::NodeTag::T_ReturnSetInfo
        || ((*rsinfo).allowedModes & pg_sys::SetFunctionReturnMode::SFRM_Materialize as i32) == 0
    {
        crate::base::errors::unsupported(
            "set-valued function called in context that cannot accept a set",
        )
        .raise();
    }
    let random = ((*rsinfo).allowedModes
        & pg_sys::SetFunctionReturnMode::SFRM_Materialize_Random as i32)
        != 0;
    let per_query = (*(*rsinfo).econtext).ecxt_per_query_memory;
    let caller = pg_sys::MemoryContextSwitchTo(per_query);
    let store = pg_sys::tuplestore_begin_heap(random, false, pg_sys::work_mem);
    pg_sys::MemoryContextSwitchTo(caller);
    let mut result_desc: pg_sys::TupleDesc = std::ptr::null_mut();
    fill(&mut |tuple, desc| {
        if result_desc.is_null() {
            let caller = pg_sys::MemoryContextSwitchTo(per_query);
            result_desc = pg_sys::CreateTupleDescCopy(desc);
            pg_sys::MemoryContextSwitchTo(caller);
        }
        pg_sys::tuplestore_puttuple(store, tuple);
    });
    (*rsinfo).returnMode = pg_sys::SetFunctionReturnMode::SFRM_Materialize;
    (*rsinfo).setResult = store;
    // No row: PostgreSQL reads the (empty) store with the type it expects.
    (*rsinfo).setDesc = result_desc;
    (*fcinfo).isnull = true;
    pg_sys::Datum::from(0usize)
}
