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
    /// Per relation, what Citus makes of it, from `pg_dist_partition`;
    /// forgotten at the relation's relcache invalidation, which Citus sends
    /// whenever it changes a table's metadata.
    static DIST: std::cell::RefCell<std::collections::HashMap<pg_sys::Oid, Dist>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
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
    DIST.with(|m| {
        let mut m = m.borrow_mut();
        if relid == pg_sys::InvalidOid {
            m.clear();
        } else {
            m.remove(&relid);
        }
    });
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

/// A relation as Citus sees it.
#[derive(Clone, Copy, PartialEq)]
pub enum Dist {
    /// Not a Citus table: a local table, or a shard (on a worker).
    Local,
    /// A Citus table not hash-distributed by a column (reference, single
    /// shard, append or range).
    Other,
    /// Hash-distributed by this column.
    Hash(pg_sys::AttrNumber),
}

/// What Citus makes of `relid`, read from `pg_dist_partition` by index
/// (a catalog read, no SQL) and remembered.
pub fn dist(relid: pg_sys::Oid) -> Dist {
    if let Some(known) = DIST.with(|m| m.borrow().get(&relid).copied()) {
        return known;
    }
    let found = unsafe { read_dist(relid) };
    DIST.with(|m| m.borrow_mut().insert(relid, found));
    found
}

unsafe fn read_dist(relid: pg_sys::Oid) -> Dist {
    unsafe {
        let catalog = pg_sys::Oid::from(pg_sys::PG_CATALOG_NAMESPACE);
        let table = pg_sys::get_relname_relid(c"pg_dist_partition".as_ptr(), catalog);
        let index =
            pg_sys::get_relname_relid(c"pg_dist_partition_logical_relid_index".as_ptr(), catalog);
        if table == pg_sys::InvalidOid || index == pg_sys::InvalidOid {
            return Dist::Local;
        }
        let rel = pg_sys::table_open(table, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        let mut key: pg_sys::ScanKeyData = std::mem::zeroed();
        // logicalrelid, the first column of pg_dist_partition and its index.
        pg_sys::ScanKeyInit(
            &mut key,
            1,
            pg_sys::BTEqualStrategyNumber as u16,
            pg_sys::Oid::from(pg_sys::F_OIDEQ),
            pg_sys::Datum::from(relid),
        );
        let scan = pg_sys::systable_beginscan(rel, index, true, std::ptr::null_mut(), 1, &mut key);
        let tuple = pg_sys::systable_getnext(scan);
        let mut found = Dist::Local;
        if !tuple.is_null() {
            found = Dist::Other;
            let desc = (*rel).rd_att;
            let mut null = false;
            // partmethod "char" (2), partkey text (3): the Var of the
            // distribution column in node form, `{VAR :varno 1 :varattno N …`.
            let method = pg_sys::heap_getattr(tuple, 2, desc, &mut null);
            if !null && method.value() as u8 == b'h' {
                let key = pg_sys::heap_getattr(tuple, 3, desc, &mut null);
                if !null {
                    let text = pg_sys::text_to_cstring(key.cast_mut_ptr());
                    let column = std::ffi::CStr::from_ptr(text)
                        .to_str()
                        .ok()
                        .and_then(|t| t.split(":varattno ").nth(1))
                        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                        .and_then(|n| n.parse::<pg_sys::AttrNumber>().ok());
                    if let Some(c) = column {
                        found = Dist::Hash(c);
                    }
                }
            }
        }
        pg_sys::systable_endscan(scan);
        pg_sys::table_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        found
    }
}
