//! Where a tenant's rows are (SPEC §9): `tenant_footprint`, and the proof
//! `delete_tenant(…, destroy_data => true)` records of what it removed and
//! what remains.
//!
//! A tenant's data is its rows in the tables `enable_rls` registered and in
//! the tables of its own schema (`registered`).  But rows of a tenant also
//! end up where nobody registered them: a table created by hand with a
//! `tenant_id` column, a reporting copy, another tenant's schema.  So the
//! footprint also counts, in every other table, the rows whose uuid column
//! named like a registered tenant column (or `tenant_id`) holds the id.
//!
//! Each count must see every row, in every table, whoever owns it (in an
//! adopted schema, a table's owner may not even have USAGE on the schema),
//! and must run no code of the table's owner: planning any query on a table
//! runs its owner's functions (an index predicate's, an index or statistics
//! expression's), and these functions run as the extension owner.  So rows
//! are counted by a heap scan of the table and its partitions, with the
//! latest snapshot of the transaction, comparing the uuid columns' bytes:
//! no query on the table, no planner, no operator of anyone's, no policy.

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::base::db::{self, Mode};
use crate::base::errors;
use crate::base::sqltypes::RegClass;
use crate::catalog::tenants::{self, Tenant};

/// One table holding rows of the tenant.
pub struct Holding {
    pub table: pg_sys::Oid,
    /// The table's name as `regclass` prints it (qualified when needed).
    pub name: String,
    pub rows: i64,
    pub registered: bool,
}

/// A table to count in, and the condition picking the tenant's
/// rows (`None`: every row, a table of the tenant's own schema).
struct Candidate {
    table: pg_sys::Oid,
    name: String,
    columns: Option<Vec<String>>,
    registered: bool,
}

fn candidates(t: &Tenant) -> Vec<Candidate> {
    // Tables: ordinary or partitioned, not a partition (its parent counts
    // it), not another session's temporary table, not an extension's own
    // (tenancy's catalog and audit log, Citus's metadata), not a system
    // schema's.
    db::query(
        "WITH tables AS (
             SELECT c.oid, c.relnamespace
               FROM pg_catalog.pg_class c
               JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
              WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::\"char\"[]) AND NOT c.relispartition
                AND c.relpersistence OPERATOR(pg_catalog.<>) 't'
                AND n.nspname OPERATOR(pg_catalog.<>) ALL ('{pg_catalog,information_schema,pg_toast}'::text[])
                AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
                                 WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                                   AND d.objid OPERATOR(pg_catalog.=) c.oid AND d.deptype OPERATOR(pg_catalog.=) 'e')),
         names AS (
             SELECT r.tenant_column::text AS name FROM tenancy.rls_tables r
             UNION SELECT 'tenant_id')
         SELECT t.oid, t.oid::pg_catalog.regclass::text, NULL::text[], true
           FROM tables t
          WHERE t.relnamespace OPERATOR(pg_catalog.=) (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.=) $2)
         UNION ALL
         SELECT t.oid, t.oid::pg_catalog.regclass::text, ARRAY[r.tenant_column::text], true
           FROM tenancy.rls_tables r JOIN tables t ON t.oid OPERATOR(pg_catalog.=) r.tbl::pg_catalog.oid
         UNION ALL
         SELECT t.oid, t.oid::pg_catalog.regclass::text,
                pg_catalog.array_agg(a.attname::text ORDER BY a.attnum), false
           FROM tables t
           JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) t.oid
          WHERE a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
            AND a.atttypid OPERATOR(pg_catalog.=) 'pg_catalog.uuid'::pg_catalog.regtype
            AND a.attname::text OPERATOR(pg_catalog.=) ANY (SELECT name FROM names)
            AND t.oid OPERATOR(pg_catalog.<>) ALL (SELECT r.tbl::pg_catalog.oid FROM tenancy.rls_tables r)
            AND t.relnamespace IS DISTINCT FROM (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.=) $2)
          GROUP BY t.oid
          ORDER BY 4 DESC, 2",
        Mode::Write,
        &[t.id.into(), t.schema_name.clone().into()],
        |r| Candidate {
            table: r.must::<pg_sys::Oid>(1),
            name: r.must::<String>(2),
            columns: r.get::<Vec<String>>(3),
            registered: r.must::<bool>(4),
        },
    )
}

fn count(c: &Candidate, tenant: pgrx::Uuid) -> i64 {
    let columns = c.columns.clone().unwrap_or_default();
    let mut n = 0;
    scan_rows(c.table, &columns, |values| {
        if c.columns.is_none() || values.iter().any(|v| v.as_ref() == Some(tenant.as_bytes())) {
            n += 1;
        }
    });
    n
}

/// Calls `each` with the values of `columns` (uuid columns, by name) of
/// every row of `table`, of its leaf partitions when it is partitioned
/// (foreign partitions left out: reading one would run its wrapper), read
/// by a heap scan: see the module's comment.
fn scan_rows(table: pg_sys::Oid, columns: &[String], mut each: impl FnMut(&[Option<[u8; 16]>])) {
    let leaves = db::query(
        "SELECT c.oid FROM pg_catalog.pg_class c
          WHERE c.relkind OPERATOR(pg_catalog.=) 'r'
            AND (c.oid OPERATOR(pg_catalog.=) $1::pg_catalog.oid
                 OR c.oid OPERATOR(pg_catalog.=) ANY (SELECT p.relid FROM pg_catalog.pg_partition_tree($1::pg_catalog.oid::pg_catalog.regclass) p WHERE p.isleaf))",
        Mode::Write,
        &[table.into()],
        |r| r.must::<pg_sys::Oid>(1),
    );
    unsafe {
        // What an SPI statement would see: the transaction's snapshot, with
        // its own earlier changes (destroy_data's deletes, just before).
        pg_sys::PushCopiedSnapshot(pg_sys::GetTransactionSnapshot());
        pg_sys::UpdateActiveSnapshotCommandId();
        for leaf in leaves {
            let rel = pg_sys::table_open(leaf, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
            let desc = (*rel).rd_att;
            let attnos: Vec<i32> = {
                let tupdesc = pgrx::PgTupleDesc::from_pg_unchecked(desc);
                columns
                    .iter()
                    .filter_map(|name| {
                        tupdesc.iter().position(|a| {
                            !a.attisdropped
                                && a.atttypid == pg_sys::UUIDOID
                                && std::ffi::CStr::from_ptr(a.attname.data.as_ptr()).to_bytes()
                                    == name.as_bytes()
                        })
                    })
                    .map(|i| i as i32 + 1)
                    .collect()
            };
            let scan = pg_sys::systable_beginscan(
                rel,
                pg_sys::InvalidOid,
                false,
                pg_sys::GetActiveSnapshot(),
                0,
                std::ptr::null_mut(),
            );
            let mut values: Vec<Option<[u8; 16]>> = Vec::with_capacity(attnos.len());
            loop {
                let tuple = pg_sys::systable_getnext(scan);
                if tuple.is_null() {
                    break;
                }
                values.clear();
                for &attno in &attnos {
                    let mut is_null = false;
                    let d = pg_sys::heap_getattr(tuple, attno, desc, &mut is_null);
                    values.push((!is_null).then(|| *(d.cast_mut_ptr::<[u8; 16]>())));
                }
                each(&values);
            }
            pg_sys::systable_endscan(scan);
            pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
        }
        pg_sys::PopActiveSnapshot();
    }
}

/// Every table holding rows of `t`, registered ones first.
pub fn footprint(t: &Tenant) -> Vec<Holding> {
    if t.isolation == "database" {
        errors::unsupported(format!(
            "tenant \"{}\" is a database tenant: its data is its own database",
            t.identifier
        ))
        .hint("The data operations of tenancy work on rls and schema tenants.")
        .raise();
    }
    candidates(t)
        .into_iter()
        .filter_map(|c| {
            let rows = count(&c, t.id);
            (rows > 0).then_some(Holding {
                table: c.table,
                name: c.name,
                rows,
                registered: c.registered,
            })
        })
        .collect()
}

/// A footprint as a JSON object `{table: rows}`.
fn as_json<'a>(holdings: impl Iterator<Item = &'a Holding>) -> serde_json::Value {
    serde_json::Value::Object(
        holdings
            .map(|h| (h.name.clone(), serde_json::json!(h.rows)))
            .collect(),
    )
}

/// Runs `destroy` (which removes the tenant's data and returns its audit
/// details) and adds the proof SPEC §9 asks of it: `removed`, the rows that
/// went from each of the tenant's tables, and `remaining`, the footprint
/// after the removal, with a WARNING when that is not empty.  A database
/// tenant's data is its database: no footprint, `destroy` alone.
pub fn certified(t: &Tenant, destroy: impl FnOnce() -> serde_json::Value) -> serde_json::Value {
    if t.isolation == "database" {
        return destroy();
    }
    let before = footprint(t);
    let mut details = destroy();
    let after = footprint(t);
    let left = |h: &Holding| {
        after
            .iter()
            .find(|a| a.table == h.table)
            .map_or(0, |a| a.rows)
    };
    let removed: serde_json::Map<String, serde_json::Value> = before
        .iter()
        .filter(|h| h.registered)
        .map(|h| (h.name.clone(), serde_json::json!(h.rows - left(h))))
        .collect();
    if let Some(obj) = details.as_object_mut() {
        obj.insert("removed".into(), serde_json::Value::Object(removed));
        obj.insert("remaining".into(), as_json(after.iter()));
    }
    if !after.is_empty() {
        let list: Vec<String> = after
            .iter()
            .map(|h| {
                format!(
                    "{} ({} {})",
                    h.name,
                    h.rows,
                    if h.rows == 1 { "row" } else { "rows" }
                )
            })
            .collect();
        errors::warning(format!("rows of tenant \"{}\" remain in {} table(s) after destroy_data", t.identifier, after.len()))
            .detail(format!("Remaining: {}.", list.join(", ")))
            .hint("destroy_data covers the tables of tenancy.rls_tables and the tenant's schema; delete the others' rows by hand, or register the tables with tenancy.enable_rls.")
            .warn();
    }
    details
}

/// Every table holding rows of the tenant: its data (`registered`: a table
/// `enable_rls` registered, or of the tenant's own schema) and any other
/// table whose uuid column named like a registered tenant column (or
/// `tenant_id`) holds its id.  0A000 for a database tenant.
#[pg_extern(volatile, security_definer, requires = ["isolation_catalog"])]
#[search_path(pg_catalog, pg_temp)]
fn tenant_footprint(
    id: Option<pgrx::Uuid>,
) -> TableIterator<
    'static,
    (
        name!(tbl, RegClass),
        name!(rows, i64),
        name!(registered, bool),
    ),
> {
    let id = errors::required(id, "id");
    let t = tenants::find_by_id(id, Mode::Write)
        .unwrap_or_else(|| errors::tenant_not_found(id).raise());
    let rows: Vec<_> = footprint(&t)
        .into_iter()
        .map(|h| (RegClass(h.table), h.rows, h.registered))
        .collect();
    TableIterator::new(rows)
}

/// The size of table `$2` with its indexes and TOAST, and of its partitions
/// when it is partitioned (whose own size is none).
const SIZE: &str = "(pg_catalog.pg_total_relation_size($2::pg_catalog.oid::pg_catalog.regclass)
    OPERATOR(pg_catalog.+) COALESCE((SELECT pg_catalog.sum(pg_catalog.pg_total_relation_size(p.relid))::bigint
                                       FROM pg_catalog.pg_partition_tree($2::pg_catalog.oid::pg_catalog.regclass) p
                                      WHERE p.relid OPERATOR(pg_catalog.<>) $2::pg_catalog.oid::pg_catalog.regclass), 0))";

/// One row of `tenant_usage`.
type Usage = (pgrx::Uuid, RegClass, i64, i64);

/// The usage of the tenants `only` names (every non-deleted one when None)
/// in the shared table `table` (tenant column `column`): one scan grouping
/// by tenant, or an index probe for one tenant.
fn shared_usage(table: pg_sys::Oid, column: &str, only: Option<pgrx::Uuid>) -> Vec<Usage> {
    // Rows per tenant, by one heap scan (see the module's comment).
    let mut per_tenant: std::collections::HashMap<[u8; 16], i64> = std::collections::HashMap::new();
    let mut total = 0i64;
    scan_rows(table, &[column.to_string()], |values| {
        if let Some(Some(v)) = values.first() {
            total += 1;
            if only.is_none_or(|id| id.as_bytes() == v) {
                *per_tenant.entry(*v).or_default() += 1;
            }
        }
    });
    if per_tenant.is_empty() {
        return Vec::new();
    }
    // The table's size, partitions included (catalogs and files only); a
    // tenant's share of it is by rows (an estimate: rows differ in size).
    let bytes = db::query_text(
        &format!("SELECT {}", SIZE.replace("$2", "$1")),
        Mode::Write,
        &[table.into()],
        |r| r.must::<i64>(1),
    )
    .into_iter()
    .next()
    .unwrap_or(0);
    let share = |n: i64| {
        if total > 0 {
            (bytes as i128 * n as i128 / total as i128) as i64
        } else {
            0
        }
    };
    let mut rows: Vec<Usage> = per_tenant
        .into_iter()
        .map(|(id, n)| (pgrx::Uuid::from_bytes(id), RegClass(table), n, share(n)))
        .collect();
    if only.is_none() {
        // Every tenant that is not deleted, nor a database tenant.
        let known: std::collections::HashSet<[u8; 16]> = db::query(
            "SELECT t.id FROM tenancy.tenants t
              WHERE t.status OPERATOR(pg_catalog.<>) 'deleted' AND t.isolation OPERATOR(pg_catalog.<>) 'database'",
            Mode::Write,
            &[],
            |r| *r.must::<pgrx::Uuid>(1).as_bytes(),
        )
        .into_iter()
        .collect();
        rows.retain(|u| known.contains(u.0.as_bytes()));
    }
    rows
}

/// Rows and bytes of every table of the schema tenants `only` names (every
/// non-deleted one when None): a table's own size.
fn schema_usage(only: Option<pgrx::Uuid>) -> Vec<Usage> {
    let tables = db::query(
        "SELECT t.id, c.oid
           FROM tenancy.tenants t
           JOIN pg_catalog.pg_namespace n ON n.nspname OPERATOR(pg_catalog.=) t.schema_name
           JOIN pg_catalog.pg_class c ON c.relnamespace OPERATOR(pg_catalog.=) n.oid
          WHERE t.isolation OPERATOR(pg_catalog.=) 'schema'
            AND ($1::pg_catalog.uuid IS NULL AND t.status OPERATOR(pg_catalog.<>) 'deleted' OR t.id OPERATOR(pg_catalog.=) $1)
            AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::\"char\"[]) AND NOT c.relispartition
          ORDER BY 1, 2",
        Mode::Write,
        &[only.into()],
        |r| (r.must::<pgrx::Uuid>(1), r.must::<pg_sys::Oid>(2)),
    );
    tables
        .into_iter()
        .map(|(tenant, table)| {
            let mut rows = 0i64;
            scan_rows(table, &[], |_| rows += 1);
            let bytes = db::query_text(
                &format!("SELECT {}", SIZE.replace("$2", "$1")),
                Mode::Write,
                &[table.into()],
                |r| r.must::<i64>(1),
            )
            .into_iter()
            .next()
            .unwrap_or(0);
            (tenant, RegClass(table), rows, bytes)
        })
        .collect()
}

/// Rows and bytes per table of a tenant's data (SPEC §10), of every
/// non-deleted tenant when `id` is NULL: a schema tenant's table its whole
/// size, a shared table the tenant's share of it by rows.  A database
/// tenant's data is its own database: none here.
#[pg_extern(volatile, security_definer, requires = ["isolation_catalog"])]
#[search_path(pg_catalog, pg_temp)]
fn tenant_usage(
    id: default!(Option<pgrx::Uuid>, "NULL"),
) -> TableIterator<
    'static,
    (
        name!(tenant_id, pgrx::Uuid),
        name!(tbl, RegClass),
        name!(rows, i64),
        name!(bytes, i64),
    ),
> {
    if let Some(id) = id {
        tenants::find_by_id(id, Mode::Write)
            .unwrap_or_else(|| errors::tenant_not_found(id).raise());
    }
    let shared = db::query(
        "SELECT r.tbl::pg_catalog.oid, r.tenant_column::text
           FROM tenancy.rls_tables r
           JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) r.tbl::pg_catalog.oid
          WHERE c.relpersistence OPERATOR(pg_catalog.<>) 't' ORDER BY 1",
        Mode::Write,
        &[],
        |r| (r.must::<pg_sys::Oid>(1), r.must::<String>(2)),
    );
    let mut rows: Vec<Usage> = shared
        .into_iter()
        .flat_map(|(table, column)| shared_usage(table, &column, id))
        .collect();
    rows.extend(schema_usage(id));
    rows.sort_by(|a, b| {
        a.0.as_bytes()
            .cmp(b.0.as_bytes())
            .then(a.1 .0.to_u32().cmp(&b.1 .0.to_u32()))
    });
    TableIterator::new(rows)
}
