//! Index lookups of `tenancy.tenants` and `tenancy.tenant_grants` without
//! SPI: the hot paths (`current_tenant_id()` once per statement, `set_tenant`
//! once per request, `tenant_by_identifier`, `tenant`) cost an index probe
//! instead of an executor start-up.
//!
//! This reads the tables the way PostgreSQL reads its own catalogs
//! (`systable_beginscan` over a unique index, with an MVCC snapshot), and
//! like a catalog read it checks no table privileges: callers are either
//! SECURITY DEFINER functions or the context checks, which decide access
//! themselves.  Everything else goes through SQL (`db`).

use std::ffi::CStr;

use pgrx::heap_tuple::PgHeapTuple;
use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::catalog::tenants::Tenant;

/// Which snapshot a lookup reads with.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Snapshot {
    /// The calling statement's snapshot (STABLE functions).
    Statement,
    /// The latest committed state (what a security check should see), or the
    /// statement's inside a parallel operation.
    Latest,
}

pub enum Key<'a> {
    Id(pgrx::Uuid),
    Identifier(&'a str),
    SchemaName(&'a str),
    /// A key already in PostgreSQL's form (a function's argument).
    Datum(pg_sys::Datum, Column),
}

/// The unique columns a [`Key::Datum`] can name.
pub enum Column {
    Id,
    Identifier,
}

thread_local! {
    /// OIDs of tenancy's own tables and indexes, looked up once per backend
    /// and forgotten whenever PostgreSQL invalidates any of them (or all
    /// relations), as happens when the extension is dropped or altered.
    static OIDS: std::cell::RefCell<Vec<(&'static CStr, pg_sys::Oid)>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[pg_guard]
unsafe extern "C-unwind" fn forget_oids(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    crate::citus::nodes::forget(relid);
    OIDS.with(|o| {
        let mut o = o.borrow_mut();
        if relid == pg_sys::InvalidOid || o.iter().any(|(_, oid)| *oid == relid) {
            o.clear();
        }
    });
    SHARD_OIDS.with(|o| {
        let mut o = o.borrow_mut();
        if relid == pg_sys::InvalidOid || o.iter().any(|(_, oid)| *oid == relid) {
            o.clear();
        }
    });
}

pub fn init() {
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(Some(forget_oids), pg_sys::Datum::from(0usize))
    };
}

fn relation_oid(name: &'static CStr) -> pg_sys::Oid {
    if let Some(oid) = OIDS.with(|o| {
        o.borrow()
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, oid)| *oid)
    }) {
        return oid;
    }
    let oid = unsafe {
        let nsp = pg_sys::get_namespace_oid(c"tenancy".as_ptr(), false);
        pg_sys::get_relname_relid(name.as_ptr(), nsp)
    };
    if oid == pg_sys::InvalidOid {
        crate::base::errors::internal(format!(
            "relation tenancy.{} is missing",
            name.to_string_lossy()
        ));
    }
    OIDS.with(|o| o.borrow_mut().push((name, oid)));
    oid
}

/// Where a Citus worker reads each of the catalog relations the checks
/// scan: the cluster copy's table (sql/citus.sql) and the relation of it.
const CLUSTER_COPY: &[(&CStr, &str, &str)] = &[
    (c"tenants", "cluster_tenants", "cluster_tenants"),
    (c"tenants_pkey", "cluster_tenants", "cluster_tenants_pkey"),
    (
        c"tenants_identifier_key",
        "cluster_tenants",
        "cluster_tenants_identifier_idx",
    ),
    (
        c"tenants_schema_name_key",
        "cluster_tenants",
        "cluster_tenants_schema_name_idx",
    ),
    (c"tenant_grants", "cluster_grants", "cluster_grants"),
    (
        c"tenant_grants_tenant_idx",
        "cluster_grants",
        "cluster_grants_tenant_idx",
    ),
];

thread_local! {
    /// The local shard relations a worker reads, by catalog relation name;
    /// forgotten with [`OIDS`].
    static SHARD_OIDS: std::cell::RefCell<Vec<(&'static CStr, pg_sys::Oid)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Whether this node reads the cluster copy (a Citus worker).
fn reads_cluster_copy() -> bool {
    crate::citus::nodes::is_worker()
}

/// The relation a check scans for catalog relation `name`: the catalog's
/// own on one node and on a coordinator, the local shard of the cluster
/// copy on a worker.  A worker without that shard (tenancy's catalog not
/// yet on the cluster) finds no tenant: a context is refused there, never
/// let through.
fn scanned_oid(name: &'static CStr) -> Option<pg_sys::Oid> {
    if !reads_cluster_copy() {
        return Some(relation_oid(name));
    }
    if let Some(oid) = SHARD_OIDS.with(|o| {
        o.borrow()
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, oid)| *oid)
    }) {
        return Some(oid);
    }
    let (_, table, shard_of) = CLUSTER_COPY.iter().find(|(n, _, _)| *n == name)?;
    let shard = crate::citus::nodes::shard_name(table, shard_of)?;
    let oid = relation(&shard)?;
    SHARD_OIDS.with(|o| o.borrow_mut().push((name, oid)));
    Some(oid)
}

/// Whether tenancy's relation `name` exists: objects added by an upgrade
/// are missing in a database whose `ALTER EXTENSION tenancy UPDATE` has not
/// run yet, which the new library keeps serving meanwhile.
pub fn has_relation(name: &CStr) -> bool {
    relation(name).is_some()
}

/// The OID of tenancy's relation `name`, if it exists (a system cache read).
pub fn relation(name: &CStr) -> Option<pg_sys::Oid> {
    let nsp = tenancy_namespace()?;
    let oid = unsafe { pg_sys::get_relname_relid(name.as_ptr(), nsp) };
    (oid != pg_sys::InvalidOid).then_some(oid)
}

/// The OID of the schema `tenancy`, if the extension is there.
fn tenancy_namespace() -> Option<pg_sys::Oid> {
    let nsp = unsafe { pg_sys::get_namespace_oid(c"tenancy".as_ptr(), true) };
    (nsp != pg_sys::InvalidOid).then_some(nsp)
}

/// The frequencies ANALYZE found for those of `keys` that are among the most
/// common elements of the first column of tenancy's index `index` (an array
/// expression index), read from the statistics cache; None without
/// statistics.
pub fn common_elements(index: &CStr, keys: &[String]) -> Option<Vec<(String, f32)>> {
    let mut found = Vec::new();
    let relid = relation(index)?;
    unsafe {
        let tuple = pg_sys::SearchSysCache3(
            pg_sys::SysCacheIdentifier::STATRELATTINH as i32,
            pg_sys::Datum::from(relid),
            pg_sys::Datum::from(1usize),
            pg_sys::Datum::from(0usize),
        );
        if tuple.is_null() {
            return None;
        }
        let mut slot: pg_sys::AttStatsSlot = std::mem::zeroed();
        let flags = (pg_sys::ATTSTATSSLOT_VALUES | pg_sys::ATTSTATSSLOT_NUMBERS) as i32;
        let have = pg_sys::get_attstatsslot(
            &mut slot,
            tuple,
            pg_sys::STATISTIC_KIND_MCELEM as i32,
            pg_sys::InvalidOid,
            flags,
        );
        if have {
            for i in 0..slot.nvalues.min(slot.nnumbers).max(0) as usize {
                if let Some(value) = String::from_datum(*slot.values.add(i), false) {
                    if keys.contains(&value) {
                        found.push((value, *slot.numbers.add(i)));
                    }
                }
            }
            pg_sys::free_attstatsslot(&mut slot);
        }
        pg_sys::ReleaseSysCache(tuple);
        have.then_some(found)
    }
}

/// The snapshot a scan of `table` reads with.  `Latest` is a snapshot taken
/// now, in every isolation level and also in parallel mode, where
/// PostgreSQL refuses `GetLatestSnapshot` and the active snapshot of a
/// REPEATABLE READ or SERIALIZABLE transaction is its first one (which
/// would still show a revoked grant or an active tenant).  There it is a
/// catalog snapshot: PostgreSQL takes one anew for every scan of a table
/// without a system cache, in the leader and in parallel workers alike.
unsafe fn snapshot(which: Snapshot, table: pg_sys::Oid) -> pg_sys::Snapshot {
    match which {
        Snapshot::Statement => pg_sys::GetActiveSnapshot(),
        Snapshot::Latest if pg_sys::IsInParallelMode() => {
            pg_sys::GetNonHistoricCatalogSnapshot(table)
        }
        Snapshot::Latest => pg_sys::GetLatestSnapshot(),
    }
}

/// The attribute of `column` in `desc`, and its number (1-based).
unsafe fn attribute(desc: pg_sys::TupleDesc, column: &str) -> (i16, pg_sys::Oid) {
    // pgrx's PgTupleDesc reads the attribute array the way each PostgreSQL
    // version lays it out (PostgreSQL 18 moved it).
    let tupdesc = pgrx::PgTupleDesc::from_pg_unchecked(desc);
    for (i, a) in tupdesc.iter().enumerate() {
        if !a.attisdropped
            && CStr::from_ptr(a.attname.data.as_ptr()).to_bytes() == column.as_bytes()
        {
            return ((i + 1) as i16, a.attcollation);
        }
    }
    crate::base::errors::internal(format!("column {column} is missing"))
}

unsafe fn attno(desc: pg_sys::TupleDesc, column: &str) -> i16 {
    attribute(desc, column).0
}

/// Scans `table` through `index` for rows whose `column` equals `value`
/// (compared with `eq_proc`, in the index column's collation) or, with
/// `value` None, is NULL; calls `each` on every visible row.
unsafe fn scan(
    table: &'static CStr,
    index: &'static CStr,
    column: &str,
    eq_proc: u32,
    value: Option<pg_sys::Datum>,
    which: Snapshot,
    mut each: impl FnMut(pg_sys::HeapTuple, pg_sys::TupleDesc),
) {
    let (Some(table_oid), Some(index_oid)) = (scanned_oid(table), scanned_oid(index)) else {
        return;
    };
    let rel = pg_sys::table_open(table_oid, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
    let desc = (*rel).rd_att;
    let collation = attribute(desc, column).1;
    let mut key: pg_sys::ScanKeyData = std::mem::zeroed();
    match value {
        Some(v) => pg_sys::ScanKeyEntryInitialize(
            &mut key,
            0,
            attno(desc, column),
            pg_sys::BTEqualStrategyNumber as u16,
            pg_sys::InvalidOid,
            collation,
            pg_sys::Oid::from(eq_proc),
            v,
        ),
        None => pg_sys::ScanKeyEntryInitialize(
            &mut key,
            (pg_sys::SK_ISNULL | pg_sys::SK_SEARCHNULL) as i32,
            attno(desc, column),
            0, /* InvalidStrategy */
            pg_sys::InvalidOid,
            pg_sys::InvalidOid,
            pg_sys::InvalidOid,
            pg_sys::Datum::from(0usize),
        ),
    }
    let sysscan = pg_sys::systable_beginscan(
        rel,
        index_oid,
        true,
        snapshot(which, table_oid),
        1,
        &mut key,
    );
    loop {
        let tuple = pg_sys::systable_getnext(sysscan);
        if tuple.is_null() {
            break;
        }
        each(tuple, desc);
    }
    pg_sys::systable_endscan(sysscan);
    // Keep the lock until the end of the transaction, as a query would.
    pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
}

unsafe fn text_field(
    tuple: pg_sys::HeapTuple,
    desc: pg_sys::TupleDesc,
    column: &str,
) -> Option<String> {
    let mut is_null = false;
    let d = pg_sys::heap_getattr(tuple, attno(desc, column) as i32, desc, &mut is_null);
    if is_null {
        None
    } else {
        String::from_datum(d, false)
    }
}

unsafe fn name_field(
    tuple: pg_sys::HeapTuple,
    desc: pg_sys::TupleDesc,
    column: &str,
) -> Option<String> {
    let mut is_null = false;
    let d = pg_sys::heap_getattr(tuple, attno(desc, column) as i32, desc, &mut is_null);
    if is_null {
        None
    } else {
        Some(
            CStr::from_ptr(d.cast_mut_ptr::<std::ffi::c_char>())
                .to_string_lossy()
                .into_owned(),
        )
    }
}

unsafe fn enum_field(tuple: pg_sys::HeapTuple, desc: pg_sys::TupleDesc, column: &str) -> String {
    let mut is_null = false;
    let d = pg_sys::heap_getattr(tuple, attno(desc, column) as i32, desc, &mut is_null);
    if is_null {
        return String::new();
    }
    pgrx::enum_helper::lookup_enum_by_oid(pg_sys::Oid::from(d.value() as u32)).0
}

/// The unique index, column, equality function and key datum of a lookup.
unsafe fn key_scan(key: Key) -> (&'static CStr, &'static str, u32, pg_sys::Datum) {
    let none = pg_sys::Datum::from(0usize);
    match key {
        Key::Id(id) => (
            c"tenants_pkey",
            "id",
            pg_sys::F_UUID_EQ,
            id.into_datum().unwrap_or(none),
        ),
        Key::Identifier(s) => (
            c"tenants_identifier_key",
            "identifier",
            pg_sys::F_TEXTEQ,
            s.into_datum().unwrap_or(none),
        ),
        Key::SchemaName(s) => (
            c"tenants_schema_name_key",
            "schema_name",
            pg_sys::F_NAMEEQ,
            crate::base::sqltypes::Name(s.to_string())
                .into_datum()
                .unwrap_or(none),
        ),
        Key::Datum(d, Column::Id) => (c"tenants_pkey", "id", pg_sys::F_UUID_EQ, d),
        Key::Datum(d, Column::Identifier) => {
            (c"tenants_identifier_key", "identifier", pg_sys::F_TEXTEQ, d)
        }
    }
}

/// One tenant by id, identifier or schema name.
pub fn tenant(key: Key, which: Snapshot) -> Option<Tenant> {
    let mut found = None;
    unsafe {
        let (index, column, eq, value) = key_scan(key);
        scan(
            c"tenants",
            index,
            column,
            eq,
            Some(value),
            which,
            |tuple, desc| {
                if found.is_some() {
                    return;
                }
                let datum = tenant_row(tuple, desc);
                let Some(row) = PgHeapTuple::from_datum(datum, false) else {
                    return;
                };
                found = Some(Tenant {
                    row,
                    id: pgrx::Uuid::from_datum(
                        pg_sys::heap_getattr(tuple, attno(desc, "id") as i32, desc, &mut false),
                        false,
                    )
                    .unwrap_or_else(|| pgrx::Uuid::from_bytes([0; 16])),
                    identifier: text_field(tuple, desc, "identifier").unwrap_or_default(),
                    status: enum_field(tuple, desc, "status"),
                    isolation: enum_field(tuple, desc, "isolation"),
                    schema_name: name_field(tuple, desc, "schema_name"),
                    database_name: name_field(tuple, desc, "database_name"),
                });
            },
        );
    }
    found
}

/// A found row as a `tenancy.tenants` composite datum.  A worker's row
/// comes from the cluster copy, a table of its own type with the same
/// columns: its values are put in a `tenancy.tenants` row by column name.
unsafe fn tenant_row(tuple: pg_sys::HeapTuple, desc: pg_sys::TupleDesc) -> pg_sys::Datum {
    if !reads_cluster_copy() {
        return pg_sys::heap_copy_tuple_as_datum(tuple, desc);
    }
    let rel = pg_sys::table_open(
        relation_oid(c"tenants"),
        pg_sys::AccessShareLock as pg_sys::LOCKMODE,
    );
    let target = (*rel).rd_att;
    let columns = pgrx::PgTupleDesc::from_pg_unchecked(target);
    let mut values = Vec::with_capacity(columns.len());
    let mut nulls = Vec::with_capacity(columns.len());
    for a in columns.iter() {
        let name = CStr::from_ptr(a.attname.data.as_ptr()).to_string_lossy();
        let source = pgrx::PgTupleDesc::from_pg_unchecked(desc)
            .iter()
            .position(|b| {
                !b.attisdropped && CStr::from_ptr(b.attname.data.as_ptr()).to_string_lossy() == name
            });
        let mut is_null = true;
        let value = match source {
            Some(i) if !a.attisdropped => {
                pg_sys::heap_getattr(tuple, (i + 1) as i32, desc, &mut is_null)
            }
            _ => pg_sys::Datum::from(0usize),
        };
        values.push(value);
        nulls.push(is_null);
    }
    let formed = pg_sys::heap_form_tuple(target, values.as_mut_ptr(), nulls.as_mut_ptr());
    let datum = pg_sys::heap_copy_tuple_as_datum(formed, target);
    pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
    datum
}

/// One tenant's row as a `tenancy.tenants` composite datum (allocated in
/// the current memory context), or None: what the read functions return,
/// without decoding any field.
pub fn tenant_datum(key: Key, which: Snapshot) -> Option<pg_sys::Datum> {
    let mut found = None;
    unsafe {
        let (index, column, eq, value) = key_scan(key);
        scan(
            c"tenants",
            index,
            column,
            eq,
            Some(value),
            which,
            |tuple, desc| {
                if found.is_none() {
                    found = Some(tenant_row(tuple, desc));
                }
            },
        );
    }
    found
}

/// The roles granted this tenant, directly or through an all-tenants grant.
/// On a Citus worker, the roles of the names the cluster copy lists (role
/// OIDs differ from node to node).
pub fn grantees(tenant: pgrx::Uuid, which: Snapshot) -> Vec<pg_sys::Oid> {
    let mut roles = Vec::new();
    let by_name = reads_cluster_copy();
    unsafe {
        let id = tenant.into_datum().unwrap_or(pg_sys::Datum::from(0usize));
        for value in [Some(id), None] {
            scan(
                c"tenant_grants",
                c"tenant_grants_tenant_idx",
                "tenant_id",
                pg_sys::F_UUID_EQ,
                value,
                which,
                |tuple, desc| {
                    if by_name {
                        // This node's role of that name, if there is one.
                        if let Some(name) = name_field(tuple, desc, "role_name")
                            .and_then(|n| std::ffi::CString::new(n).ok())
                        {
                            let role = pg_sys::get_role_oid(name.as_ptr(), true);
                            if role != pg_sys::InvalidOid {
                                roles.push(role);
                            }
                        }
                        return;
                    }
                    let mut is_null = false;
                    let d =
                        pg_sys::heap_getattr(tuple, attno(desc, "role") as i32, desc, &mut is_null);
                    if !is_null {
                        roles.push(pg_sys::Oid::from(d.value() as u32));
                    }
                },
            );
        }
    }
    roles
}

/// The roles named in the privileges of `tenancy.tenant_grantee`: every
/// role tenancy has granted a tenant holds USAGE on it (and its owner is
/// named as grantor).  None in a database whose extension predates 0.3.0,
/// where the type does not exist yet.  Read from the system cache, which
/// always reflects the latest committed catalog.
pub fn marked_roles() -> Option<Vec<pg_sys::Oid>> {
    // On a Citus worker nobody holds the marker (Citus does not send
    // privileges on an extension's type): there the cluster copy has the
    // grants by role name, kept in step with the coordinator's, where the
    // marker counts (see sql/citus.sql).
    if reads_cluster_copy() {
        return None;
    }
    let typoid = marker_type()?;
    unsafe {
        let tuple = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::TYPEOID as i32,
            pg_sys::Datum::from(typoid),
        );
        if tuple.is_null() {
            return None;
        }
        let mut is_null = false;
        let acl = pg_sys::SysCacheGetAttr(
            pg_sys::SysCacheIdentifier::TYPEOID as i32,
            tuple,
            pg_sys::Anum_pg_type_typacl as pg_sys::AttrNumber,
            &mut is_null,
        );
        let mut roles = Vec::new();
        if !is_null {
            let acl = pg_sys::pg_detoast_datum(acl.cast_mut_ptr()) as *const pg_sys::Acl;
            let mut members: *mut pg_sys::Oid = std::ptr::null_mut();
            let n = pg_sys::aclmembers(acl, &mut members);
            for i in 0..n.max(0) as usize {
                roles.push(*members.add(i));
            }
        }
        pg_sys::ReleaseSysCache(tuple);
        Some(roles)
    }
}

/// The OID of the type `tenancy.tenant_grantee`, if it exists (0.3.0 on).
pub fn marker_type() -> Option<pg_sys::Oid> {
    let nsp = tenancy_namespace()?;
    unsafe {
        let typname = crate::base::sqltypes::Name("tenant_grantee".to_string()).into_datum()?;
        let typoid = pg_sys::GetSysCacheOid(
            pg_sys::SysCacheIdentifier::TYPENAMENSP as i32,
            pg_sys::Anum_pg_type_oid as pg_sys::AttrNumber,
            typname,
            pg_sys::Datum::from(nsp),
            pg_sys::Datum::from(0usize),
            pg_sys::Datum::from(0usize),
        );
        (typoid != pg_sys::InvalidOid).then_some(typoid)
    }
}

/// A page of tenants, newest first, ties by id descending: an ordered walk
/// of `tenants_created_idx` (or `tenants_status_created_idx` for one
/// status, given as the enum value's datum), skipping `skip` rows, as the
/// hand-written `ORDER BY created_at DESC, id DESC OFFSET .. LIMIT ..` would.
/// Calls `each` with every row of the page and the table's descriptor.
pub fn page(
    skip: i64,
    limit: i64,
    status: Option<pg_sys::Datum>,
    mut each: impl FnMut(pg_sys::HeapTuple, pg_sys::TupleDesc),
) {
    if limit <= 0 {
        return;
    }
    unsafe {
        let rel = pg_sys::table_open(
            relation_oid(c"tenants"),
            pg_sys::AccessShareLock as pg_sys::LOCKMODE,
        );
        let desc = (*rel).rd_att;
        let index_name: &'static CStr = if status.is_some() {
            c"tenants_status_created_idx"
        } else {
            c"tenants_created_idx"
        };
        let index = pg_sys::index_open(
            relation_oid(index_name),
            pg_sys::AccessShareLock as pg_sys::LOCKMODE,
        );
        let mut key: pg_sys::ScanKeyData = std::mem::zeroed();
        let nkeys = match status {
            Some(value) => {
                pg_sys::ScanKeyEntryInitialize(
                    &mut key,
                    0,
                    attno(desc, "status"),
                    pg_sys::BTEqualStrategyNumber as u16,
                    pg_sys::InvalidOid,
                    pg_sys::InvalidOid,
                    pg_sys::Oid::from(pg_sys::F_ENUM_EQ),
                    value,
                );
                1
            }
            None => 0,
        };
        let scan = pg_sys::systable_beginscan_ordered(
            rel,
            index,
            pg_sys::GetActiveSnapshot(),
            nkeys,
            &mut key,
        );
        let mut seen: i64 = 0;
        loop {
            let tuple =
                pg_sys::systable_getnext_ordered(scan, pg_sys::ScanDirection::ForwardScanDirection);
            if tuple.is_null() {
                break;
            }
            seen += 1;
            if seen <= skip {
                continue;
            }
            each(tuple, desc);
            if seen - skip >= limit {
                break;
            }
        }
        pg_sys::systable_endscan_ordered(scan);
        pg_sys::index_close(index, pg_sys::NoLock as pg_sys::LOCKMODE);
        pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
    }
}

/// A tenant's settings (`tenancy.tenant_settings`), (setting, value) in
/// setting order; none in a database whose extension predates them.  On a
/// Citus worker none either: set_tenant applies them on the coordinator.
pub fn tenant_settings(tenant: pgrx::Uuid, which: Snapshot) -> Vec<(String, String)> {
    let mut found = Vec::new();
    if !has_relation(c"tenant_settings") {
        return found;
    }
    unsafe {
        let id = tenant.into_datum().unwrap_or(pg_sys::Datum::from(0usize));
        scan(
            c"tenant_settings",
            c"tenant_settings_pkey",
            "tenant_id",
            pg_sys::F_UUID_EQ,
            Some(id),
            which,
            |tuple, desc| {
                if let (Some(setting), Some(value)) = (
                    text_field(tuple, desc, "setting"),
                    text_field(tuple, desc, "value"),
                ) {
                    found.push((setting, value));
                }
            },
        );
    }
    found
}
