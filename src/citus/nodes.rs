//! Which node of a Citus cluster this is, and where the catalog's state is
//! read from on it: the lowest layer of the Citus support (no SQL of
//! tenancy's, only Citus's metadata), so that `direct` can use it.
//!
//! On a worker, tenancy.tenants and tenancy.tenant_grants are empty: the
//! lifecycle functions run on the coordinator.  What a worker checks a
//! context against is its copy of the reference tables
//! `tenancy.cluster_tenants` and `tenancy.cluster_grants` (sql/citus.sql),
//! whose rows live in the local shard `tenancy.<table>_<shardid>` (the
//! table itself is a shell, like every Citus table on a worker).

use std::cell::Cell;
use std::ffi::{CStr, CString};

use pgrx::pg_sys;
use pgrx::prelude::*;

thread_local! {
    /// Whether this node is a worker, as last read; forgotten when Citus
    /// invalidates its local group (its trigger on pg_dist_local_group
    /// sends a relation cache invalidation) or all relations.
    static WORKER: Cell<Option<(bool, pg_sys::Oid)>> = const { Cell::new(None) };
}

/// Whether this backend runs with Citus loaded (its settings exist).
pub fn loaded() -> bool {
    unsafe {
        !pg_sys::GetConfigOption(c"citus.propagate_set_commands".as_ptr(), true, false).is_null()
    }
}

/// Whether Citus is loaded and its extension created in this database (a
/// server may preload Citus for some databases only).
pub fn in_database() -> bool {
    loaded() && unsafe { pg_sys::get_extension_oid(c"citus".as_ptr(), true) } != pg_sys::InvalidOid
}

fn catalog_relation(name: &CStr) -> pg_sys::Oid {
    unsafe {
        pg_sys::get_relname_relid(
            name.as_ptr(),
            pg_sys::Oid::from(pg_sys::PG_CATALOG_NAMESPACE),
        )
    }
}

/// Called for every relation cache invalidation (see `direct::init`): no
/// catalog access here, only a comparison with what was read.
pub fn forget(relid: pg_sys::Oid) {
    WORKER.with(|w| {
        if w.get()
            .is_some_and(|(_, group_table)| relid == pg_sys::InvalidOid || relid == group_table)
        {
            w.set(None);
        }
    });
}

/// Whether this node is a Citus worker (its group is not the coordinator's,
/// 0): a node whose tenancy catalog is the cluster copy.  False without
/// Citus, and on a node Citus has not made a worker yet.
pub fn is_worker() -> bool {
    if !loaded() {
        return false;
    }
    if let Some((known, _)) = WORKER.with(|w| w.get()) {
        return known;
    }
    let relid = catalog_relation(c"pg_dist_local_group");
    if relid == pg_sys::InvalidOid {
        return false; // Citus loaded in a database without the extension
    }
    let mut group: i32 = 0;
    unsafe {
        // One row: (groupid integer, ...).  A scan with the catalog snapshot,
        // as Citus reads it.
        let rel = pg_sys::table_open(relid, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let scan = pg_sys::systable_beginscan(
            rel,
            pg_sys::InvalidOid,
            false,
            std::ptr::null_mut(),
            0,
            std::ptr::null_mut(),
        );
        let tuple = pg_sys::systable_getnext(scan);
        if !tuple.is_null() {
            let mut is_null = false;
            let d = pg_sys::heap_getattr(tuple, 1, (*rel).rd_att, &mut is_null);
            if !is_null {
                group = d.value() as i32;
            }
        }
        pg_sys::systable_endscan(scan);
        pg_sys::table_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
    }
    let worker = group > 0;
    WORKER.with(|w| w.set(Some((worker, relid))));
    worker
}

/// The name of the local shard of the Citus table `tenancy.<table>` with
/// `suffix` (empty for the table, an index's name otherwise, as Citus names
/// a shard's indexes `<index>_<shardid>`), or None when the table has no
/// shard (not a Citus table yet).
pub fn shard_name(table: &str, relation: &str) -> Option<CString> {
    let shard = Spi::get_one_with_args::<i64>(
        "SELECT s.shardid FROM pg_catalog.pg_dist_shard s
          WHERE s.logicalrelid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1)",
        &[format!("tenancy.{table}").into()],
    )
    .ok()
    .flatten()?;
    CString::new(format!("{relation}_{shard}")).ok()
}
