//! Exporting, importing and cloning a tenant's data (SPEC §9).
//!
//! A tenant's data is its rows in every table of `tenancy.rls_tables` (the
//! tenant column holding its id) and every table of its own schema.  The
//! three functions share one view of it, `tenant_tables`: the tables, their
//! columns and their order (a table after every table it references).
//!
//! Who runs what:
//! - the catalog is *read* as the extension's owner; each tenant table as
//!   its own owner, in a security-restricted operation that row-level
//!   security does not filter: planning a query on a table runs code its
//!   owner wrote (the functions of its index predicates, index and
//!   statistics expressions), which must never run with the extension
//!   owner's rights;
//! - every *write* into a tenant table runs as that table's owner, as a
//!   security-restricted operation that row-level security does not
//!   filter (what `delete_tenant`'s destroy does, rls.rs): the table's
//!   triggers run with their owner's rights, never the extension owner's;
//! - import reads its `source` table as the caller, so it can import only
//!   what the caller may read.
//!
//! Snapshots: export reads every table with the snapshot of the statement
//! that calls it (read-only cursors opened together in the first call);
//! clone runs each INSERT … SELECT with a copy of the snapshot of the
//! statement that calls it (SPI_execute_snapshot), so both see one
//! consistent state however long they run, and neither blocks writers.
//!
//! Database tenants: 0A000 everywhere (their data is in another database).

use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString};

use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Map, Value};

use crate::base::db::{self, Mode};
use crate::base::errors::{self, required};
use crate::base::security::{self as access, Restrict};
use crate::base::sqltypes::RegClass;
use crate::catalog::audit::{self, Event};
use crate::catalog::isolation;
use crate::catalog::tenants::{self, Tenant};
use crate::isolation::references;

/// The `format` and `version` of the export's header line.
const FORMAT: &str = "tenancy-export";
const VERSION: i64 = 1;
/// Rows export fetches from a table's cursor at a time (its memory bound).
const EXPORT_BATCH: i64 = 1000;
/// Rows import and clone hand to one INSERT.
const IMPORT_BATCH: i64 = 5000;

fn quote(ident: &str) -> String {
    pgrx::spi::quote_identifier(ident)
}

fn literal(value: &str) -> String {
    pgrx::spi::quote_literal(value)
}

// ---------------------------------------------------------------- the tables

struct Column {
    name: String,
    /// The declared type, as format_type shows it.
    type_name: String,
    /// `json` or `jsonb` (or a domain over one), else empty.  A JSON null
    /// is a value of theirs, so their SQL NULL is written by leaving the key
    /// out; a json value is written as its text (a JSON string), which
    /// keeps it as json keeps it: key order, spaces, duplicate keys.
    json: String,
    /// Generated columns are neither exported nor written: PostgreSQL
    /// computes them.
    generated: bool,
    /// The sequence the column owns (serial or identity), schema-qualified,
    /// when it counts upwards: advanced past the values written.
    sequence: Option<String>,
}

struct Table {
    oid: pg_sys::Oid,
    /// How the export names it: schema-qualified for an RLS table, bare for
    /// a table of the tenant's schema (quoted as an SQL identifier).
    label: String,
    /// `schema.table`, quoted, for SQL text.
    qualified: String,
    owner: pg_sys::Oid,
    partitioned: bool,
    /// The tenant column of an RLS table.
    tenant_column: Option<String>,
    columns: Vec<Column>,
    /// A foreign key of the table references the table itself: its rows
    /// are written in one statement, at whose end PostgreSQL checks the key
    /// (rows may come before the rows they reference).
    self_referencing: bool,
}

impl Table {
    /// The columns an export carries: not generated, not the tenant column.
    fn data_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns
            .iter()
            .filter(move |c| !c.generated && Some(&c.name) != self.tenant_column.as_ref())
    }

    fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// FROM clause item, aliased `t`: a plain table without its inheritance
    /// children (they are tables of their own), a partitioned one with its
    /// partitions.
    fn from_item(&self) -> String {
        if self.partitioned {
            format!("{} AS t", self.qualified)
        } else {
            format!("ONLY {} AS t", self.qualified)
        }
    }

    /// The condition on the tenant's rows, with the tenant id as `$1`.
    fn tenant_filter(&self) -> String {
        match &self.tenant_column {
            Some(c) => format!(" WHERE t.{} OPERATOR(pg_catalog.=) $1", quote(c)),
            None => String::new(),
        }
    }
}

/// Every table holding the tenant's data, each after the tables it
/// references (foreign keys among them).  Tables of a cycle of foreign keys
/// come in name order after the rest; a reference of a table to itself is
/// no constraint on the order (PostgreSQL checks it at the end of the
/// statement that inserts the rows).
fn tenant_tables(t: &Tenant, mode: Mode) -> Vec<Table> {
    let mut tables = db::query(
        "SELECT c.oid, pg_catalog.format('%I.%I', n.nspname, c.relname), pg_catalog.format('%I.%I', n.nspname, c.relname),
                c.relowner, c.relkind OPERATOR(pg_catalog.=) 'p', r.tenant_column::text
           FROM tenancy.rls_tables r
           JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) r.tbl::pg_catalog.oid
           JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
          WHERE c.relpersistence OPERATOR(pg_catalog.<>) 't'
         UNION ALL
         SELECT c.oid, pg_catalog.quote_ident(c.relname), pg_catalog.format('%I.%I', n.nspname, c.relname),
                c.relowner, c.relkind OPERATOR(pg_catalog.=) 'p', NULL::text
           FROM pg_catalog.pg_class c
           JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
          WHERE n.nspname::text OPERATOR(pg_catalog.=) $1
            AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::\"char\"[]) AND NOT c.relispartition
            AND NOT EXISTS (SELECT FROM tenancy.rls_tables r WHERE r.tbl::pg_catalog.oid OPERATOR(pg_catalog.=) c.oid)
          ORDER BY 2",
        mode,
        &[t.schema_name.as_deref().into()],
        |r| Table {
            oid: r.must(1),
            label: r.must(2),
            qualified: r.must(3),
            owner: r.must(4),
            partitioned: r.must(5),
            tenant_column: r.get(6),
            columns: Vec::new(),
            self_referencing: false,
        },
    );
    if tables.is_empty() {
        return tables;
    }
    let oids: Vec<pg_sys::Oid> = tables.iter().map(|t| t.oid).collect();
    let mut columns: HashMap<pg_sys::Oid, Vec<Column>> = HashMap::new();
    for (rel, col) in db::query(
        "SELECT a.attrelid, a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod),
                CASE CASE WHEN ty.typtype OPERATOR(pg_catalog.=) 'd' THEN ty.typbasetype ELSE a.atttypid END
                     WHEN 'pg_catalog.json'::pg_catalog.regtype THEN 'json' WHEN 'pg_catalog.jsonb'::pg_catalog.regtype THEN 'jsonb'
                     ELSE '' END,
                a.attgenerated OPERATOR(pg_catalog.<>) '',
                (SELECT pg_catalog.format('%I.%I', sn.nspname, s.relname)
                   FROM pg_catalog.pg_depend d
                   JOIN pg_catalog.pg_class s ON s.oid OPERATOR(pg_catalog.=) d.objid AND s.relkind OPERATOR(pg_catalog.=) 'S'
                   JOIN pg_catalog.pg_namespace sn ON sn.oid OPERATOR(pg_catalog.=) s.relnamespace
                   JOIN pg_catalog.pg_sequence q ON q.seqrelid OPERATOR(pg_catalog.=) s.oid AND q.seqincrement OPERATOR(pg_catalog.>) 0
                  WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                    AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                    AND d.refobjid OPERATOR(pg_catalog.=) a.attrelid AND d.refobjsubid OPERATOR(pg_catalog.=) a.attnum
                    AND d.deptype OPERATOR(pg_catalog.=) ANY ('{a,i}'::\"char\"[])
                  LIMIT 1)
           FROM pg_catalog.pg_attribute a
           JOIN pg_catalog.pg_type ty ON ty.oid OPERATOR(pg_catalog.=) a.atttypid
          WHERE a.attrelid OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.oid[])
            AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
          ORDER BY a.attrelid, a.attnum",
        mode,
        &[oids.clone().into()],
        |r| {
            (
                r.must::<pg_sys::Oid>(1),
                Column {
                    name: r.must(2),
                    type_name: r.must(3),
                    json: r.must(4),
                    generated: r.must(5),
                    sequence: r.get(6),
                },
            )
        },
    ) {
        columns.entry(rel).or_default().push(col);
    }
    for t in &mut tables {
        t.columns = columns.remove(&t.oid).unwrap_or_default();
    }
    let edges = references::among(&oids, mode);
    for t in &mut tables {
        t.self_referencing = edges.iter().any(|(from, to)| from == to && *from == t.oid);
    }
    references::parents_first(tables, |t| t.oid, &edges)
}

/// The tenant, checked for a data operation: not a database tenant.
fn check_not_database(t: &Tenant, what: &str) {
    if t.isolation == "database" {
        errors::unsupported(format!(
            "tenant \"{}\" is a database tenant: {what} works on rls and schema tenants only",
            t.identifier
        ))
        .detail("A database tenant's data is in its own database, which this session cannot read or write.")
        .hint("Use pg_dump and pg_restore on the tenant's database.")
        .raise();
    }
}

// ---------------------------------------------------------------- raw SPI

/// Runs `f` inside an SPI connection of its own.
fn spi<R>(f: impl FnOnce() -> R) -> R {
    Spi::connect(|_| f())
}

/// Prepares `sql` in the current SPI connection (not kept past it).
unsafe fn prepare(sql: &str, types: &[pg_sys::Oid]) -> pg_sys::SPIPlanPtr {
    let text = CString::new(sql)
        .unwrap_or_else(|_| errors::invalid("SQL text must not contain NUL bytes").raise());
    let mut types = types.to_vec();
    let plan = pg_sys::SPI_prepare(text.as_ptr(), types.len() as i32, types.as_mut_ptr());
    if plan.is_null() {
        let rc = pg_sys::SPI_result;
        errors::internal(format!("SPI_prepare failed ({rc}) for: {sql}"));
    }
    plan
}

/// Opens a cursor over `sql` in the current SPI connection and returns the
/// portal's name (portals outlive the connection, until the transaction
/// ends or they are closed).  `read_only`: with the calling statement's
/// snapshot, as every cursor export opens.
unsafe fn open_cursor(
    sql: &str,
    args: &[(pg_sys::Oid, pg_sys::Datum)],
    read_only: bool,
) -> CString {
    let types: Vec<pg_sys::Oid> = args.iter().map(|a| a.0).collect();
    let plan = prepare(sql, &types);
    let mut values: Vec<pg_sys::Datum> = args.iter().map(|a| a.1).collect();
    let nulls: Vec<std::ffi::c_char> = vec![b' ' as std::ffi::c_char; args.len()];
    let portal = pg_sys::SPI_cursor_open(
        std::ptr::null(),
        plan,
        values.as_mut_ptr(),
        nulls.as_ptr(),
        read_only,
    );
    if portal.is_null() {
        errors::internal("SPI_cursor_open failed");
    }
    CStr::from_ptr((*portal).name).to_owned()
}

unsafe fn find_cursor(name: &CStr) -> pg_sys::Portal {
    let portal = pg_sys::SPI_cursor_find(name.as_ptr());
    if portal.is_null() {
        errors::internal(format!("cursor {name:?} is gone"));
    }
    portal
}

/// A memory context under the current one, for one batch at a time.
unsafe fn batch_context(parent: pg_sys::MemoryContext) -> pg_sys::MemoryContext {
    pg_sys::AllocSetContextCreateInternal(
        parent,
        c"tenancy export batch".as_ptr(),
        0,
        8 * 1024,
        8 * 1024 * 1024,
    )
}

// ---------------------------------------------------------------- export

extension_sql!(
    r#"
CREATE FUNCTION tenancy.export_tenant(id uuid) RETURNS SETOF jsonb
STABLE ROWS 10000 LANGUAGE c AS 'MODULE_PATHNAME', 'export_tenant_wrapper';
COMMENT ON FUNCTION tenancy.export_tenant(uuid) IS 'One consistent snapshot of a tenant''s data as JSON lines: a header, then one line per row, tables in foreign key order.';
"#,
    name = "export_tenant",
    requires = ["isolation_catalog"]
);

crate::fmgr_v1!(pg_finfo_export_tenant_wrapper);

/// What an export keeps between calls (value per call: one line each).
struct ExportState {
    header: Option<pg_sys::Datum>,
    /// One open cursor per table with rows, in foreign key order, with the
    /// table's owner, whose rights it is read with.
    cursors: Vec<(CString, pg_sys::Oid)>,
    current: usize,
    /// The lines of the last fetch, copied into `batch_cxt`.
    batch: Vec<pg_sys::Datum>,
    pos: usize,
    batch_cxt: pg_sys::MemoryContext,
    /// The ExprContext our shutdown callback is registered with.
    econtext: *mut pg_sys::ExprContext,
}

impl ExportState {
    unsafe fn next(&mut self) -> Option<pg_sys::Datum> {
        if let Some(h) = self.header.take() {
            return Some(h);
        }
        loop {
            if self.pos < self.batch.len() {
                self.pos += 1;
                return Some(self.batch[self.pos - 1]);
            }
            if self.current >= self.cursors.len() {
                return None;
            }
            self.refill();
        }
    }

    /// The next batch of the current cursor; at its end, closes it and
    /// moves to the next.  The previous batch's lines were consumed (each
    /// call's line is used before the next call), so its memory goes.
    unsafe fn refill(&mut self) {
        pg_sys::MemoryContextReset(self.batch_cxt);
        self.batch.clear();
        self.pos = 0;
        let (name, owner) = self.cursors[self.current].clone();
        let batch_cxt = self.batch_cxt;
        let batch = &mut self.batch;
        let ended = access::as_role(owner, Restrict::OperationNoForceRls, || {
            spi(|| {
                let portal = find_cursor(&name);
                pg_sys::SPI_cursor_fetch(portal, true, EXPORT_BATCH as _);
                let n = pg_sys::SPI_processed as usize;
                let table = pg_sys::SPI_tuptable;
                for i in 0..n {
                    let mut is_null = false;
                    let d = pg_sys::SPI_getbinval(
                        *(*table).vals.add(i),
                        (*table).tupdesc,
                        1,
                        &mut is_null,
                    );
                    let old = pg_sys::MemoryContextSwitchTo(batch_cxt);
                    batch.push(pg_sys::Datum::from(pg_sys::pg_detoast_datum_copy(
                        d.cast_mut_ptr(),
                    )));
                    pg_sys::MemoryContextSwitchTo(old);
                }
                pg_sys::SPI_freetuptable(table);
                if n == 0 {
                    pg_sys::SPI_cursor_close(portal);
                }
                n == 0
            })
        });
        if ended {
            self.current += 1;
        }
    }

    /// Closes the cursors not yet read to their end (an export stopped
    /// early: LIMIT, a cancelled COPY is an error and ends them anyway).
    unsafe fn close_rest(&mut self) {
        for (name, _) in self.cursors.drain(self.current..) {
            let portal = pg_sys::SPI_cursor_find(name.as_ptr());
            if !portal.is_null() {
                pg_sys::SPI_cursor_close(portal);
            }
        }
    }
}

/// ExprContext shutdown (the calling query ends before the last line).
#[pg_guard]
unsafe extern "C-unwind" fn export_shutdown(arg: pg_sys::Datum) {
    let state = arg.cast_mut_ptr::<ExportState>();
    (*state).close_rest();
}

/// The state's memory context goes (end of the set, end of the query, or
/// an error): the Rust side of the state goes with it.
#[pg_guard]
unsafe extern "C-unwind" fn export_free(arg: *mut std::ffi::c_void) {
    drop(Box::from_raw(arg as *mut ExportState));
}

/// `export_tenant(id)`: the header line, then one line per row.  A
/// value-per-call set function: PostgreSQL asks for one line at a time, and
/// the function holds one batch of one table's rows, whatever the tenant's
/// size (`SELECT … FROM export_tenant(…)` puts the lines in a tuplestore,
/// which spills to disk past work_mem).
#[no_mangle]
#[pg_guard]
pub unsafe extern "C-unwind" fn export_tenant_wrapper(
    fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    let rsinfo = (*fcinfo).resultinfo as *mut pg_sys::ReturnSetInfo;
    if rsinfo.is_null()
        || (*rsinfo).type_ != pg_sys::NodeTag::T_ReturnSetInfo
        || ((*rsinfo).allowedModes & pg_sys::SetFunctionReturnMode::SFRM_ValuePerCall as i32) == 0
    {
        errors::unsupported("set-valued function called in context that cannot accept a set")
            .raise();
    }
    if (*(*fcinfo).flinfo).fn_extra.is_null() {
        let id = required(crate::base::fmgr::arg(fcinfo, 0), "id");
        let id = pgrx::Uuid::from_datum(id, false)
            .unwrap_or_else(|| errors::null_argument("id").raise());
        let (header, cursors) = export_start(id);
        let funcctx = pg_sys::init_MultiFuncCall(fcinfo);
        let mcxt = (*funcctx).multi_call_memory_ctx;
        let old = pg_sys::MemoryContextSwitchTo(mcxt);
        let header = JsonB(header).into_datum();
        let state = Box::into_raw(Box::new(ExportState {
            header,
            cursors,
            current: 0,
            batch: Vec::with_capacity(EXPORT_BATCH as usize),
            pos: 0,
            batch_cxt: batch_context(mcxt),
            econtext: (*rsinfo).econtext,
        }));
        let free = pg_sys::palloc0(std::mem::size_of::<pg_sys::MemoryContextCallback>())
            as *mut pg_sys::MemoryContextCallback;
        (*free).func = Some(export_free);
        (*free).arg = state as *mut std::ffi::c_void;
        pg_sys::MemoryContextRegisterResetCallback(mcxt, free);
        pg_sys::MemoryContextSwitchTo(old);
        (*funcctx).user_fctx = state as *mut std::ffi::c_void;
        // Registered after init_MultiFuncCall's own, so it runs first at
        // shutdown, while the state is still there.
        pg_sys::RegisterExprContextCallback(
            (*rsinfo).econtext,
            Some(export_shutdown),
            pg_sys::Datum::from(state),
        );
    }
    let funcctx = pg_sys::per_MultiFuncCall(fcinfo);
    let state = (*funcctx).user_fctx as *mut ExportState;
    match (*state).next() {
        Some(line) => {
            (*rsinfo).isDone = pg_sys::ExprDoneCond::ExprMultipleResult;
            line
        }
        None => {
            pg_sys::UnregisterExprContextCallback(
                (*state).econtext,
                Some(export_shutdown),
                pg_sys::Datum::from(state),
            );
            pg_sys::end_MultiFuncCall(fcinfo, funcctx);
            (*rsinfo).isDone = pg_sys::ExprDoneCond::ExprEndResult;
            (*fcinfo).isnull = true;
            pg_sys::Datum::from(0usize)
        }
    }
}

/// The first call: checks, the header, and one read-only cursor per table
/// with rows, all with the calling statement's snapshot (so the counts in
/// the header and the rows that follow are one consistent state).
fn export_start(id: pgrx::Uuid) -> (Value, Vec<(CString, pg_sys::Oid)>) {
    let t =
        tenants::find_by_id(id, Mode::Read).unwrap_or_else(|| errors::tenant_not_found(id).raise());
    crate::context::access::check_may_act(access::current_role(), &t);
    check_not_database(&t, "export_tenant");
    let owner = access::extension_owner();
    access::as_role(owner, Restrict::Operation, || {
        let tables = tenant_tables(&t, Mode::Read);
        let tenant = db::query_one(
            "SELECT pg_catalog.jsonb_build_object('id', t.id, 'identifier', t.identifier, 'name', t.name, 'status', t.status,
                        'isolation', t.isolation, 'metadata', t.metadata, 'created_at', t.created_at),
                    COALESCE((SELECT pg_catalog.jsonb_agg(m.name ORDER BY m.position)
                                FROM tenancy.migration_ledger l
                                JOIN tenancy.migrations m ON m.name OPERATOR(pg_catalog.=) l.migration
                               WHERE l.tenant_id OPERATOR(pg_catalog.=) t.id AND l.status OPERATOR(pg_catalog.=) 'applied'), '[]')
               FROM tenancy.tenants t WHERE t.id OPERATOR(pg_catalog.=) $1",
            Mode::Read,
            &[id.into()],
            |r| (r.must::<JsonB>(1).0, r.must::<JsonB>(2).0),
        )
        .unwrap_or_else(|| errors::tenant_not_found(id).raise());
        let mut listed = Vec::with_capacity(tables.len());
        let mut cursors = Vec::new();
        for table in &tables {
            // A user table is read as its owner, never as the extension's:
            // planning a query on it runs code its owner wrote (an index
            // predicate's or a statistics expression's functions).
            let as_table_owner = |f: &mut dyn FnMut()| {
                access::as_role(table.owner, Restrict::OperationNoForceRls, f)
            };
            let mut rows = 0;
            as_table_owner(&mut || {
                rows = db::query_text(
                    &format!(
                        "SELECT pg_catalog.count(*) FROM {}{}",
                        table.from_item(),
                        table.tenant_filter()
                    ),
                    Mode::Read,
                    &[id.into()],
                    |r| r.must::<i64>(1),
                )
                .into_iter()
                .next()
                .unwrap_or(0)
            });
            let columns: Vec<&str> = table.data_columns().map(|c| c.name.as_str()).collect();
            listed.push(json!({"table": table.label, "columns": columns, "rows": rows}));
            if rows > 0 {
                let sql = export_query(table);
                let uuid = id.into_datum().expect("a uuid is not NULL");
                let mut cursor = None;
                as_table_owner(&mut || {
                    cursor = Some(spi(|| unsafe {
                        open_cursor(&sql, &[(pg_sys::UUIDOID, uuid)], true)
                    }))
                });
                cursors.extend(cursor.map(|c| (c, table.owner)));
            }
        }
        let header = json!({
            "format": FORMAT,
            "version": VERSION,
            "tenant": tenant.0,
            "migrations": tenant.1,
            "tables": listed,
        });
        (header, cursors)
    })
}

/// One table's lines: `{"table": label, "row": {column: value}}`, values as
/// `to_jsonb` gives them, without the tenant column and generated columns;
/// an SQL NULL in a json or jsonb column is a missing key (a JSON null
/// there is the JSON value null).
fn export_query(table: &Table) -> String {
    let mut dropped: Vec<String> = table
        .columns
        .iter()
        .filter(|c| c.generated || Some(&c.name) == table.tenant_column.as_ref())
        .map(|c| literal(&c.name))
        .collect();
    let mut added = String::new();
    for c in table.data_columns() {
        let (col, key) = (quote(&c.name), literal(&c.name));
        match c.json.as_str() {
            "jsonb" => dropped.push(format!("CASE WHEN t.{col} IS NULL THEN {key} END")),
            "json" => {
                dropped.push(key.clone());
                added.push_str(&format!(
                    " OPERATOR(pg_catalog.||) CASE WHEN t.{col} IS NULL THEN '{{}}'::pg_catalog.jsonb \
                     ELSE pg_catalog.jsonb_build_object({key}, t.{col}::pg_catalog.text) END"
                ));
            }
            _ => {}
        }
    }
    let row = if dropped.is_empty() {
        "pg_catalog.to_jsonb(t)".to_string()
    } else {
        format!(
            "(pg_catalog.to_jsonb(t) OPERATOR(pg_catalog.-) ARRAY[{}]::pg_catalog.text[]){added}",
            dropped.join(", ")
        )
    };
    format!(
        "SELECT pg_catalog.jsonb_build_object('table', {}::text, 'row', {row}) FROM {}{}",
        literal(&table.label),
        table.from_item(),
        table.tenant_filter()
    )
}

// ---------------------------------------------------------------- writing

/// How many rows an INSERT wrote and the largest value it wrote into each
/// sequence-owning column.
struct Written {
    rows: i64,
    max: Vec<Option<i64>>,
}

/// `WITH i AS (INSERT INTO target (…) OVERRIDING SYSTEM VALUE <select>
/// RETURNING <sequence columns>) SELECT count(*), max(…)…`: the select
/// gives `columns` in order, then the tenant column's value when the
/// target has one.
fn insert_statement(target: &Table, columns: &[&Column], select: &str) -> (String, Vec<String>) {
    let mut names: Vec<String> = columns.iter().map(|c| quote(&c.name)).collect();
    if let Some(tc) = &target.tenant_column {
        names.push(quote(tc));
    }
    let sequences: Vec<(String, String)> = columns
        .iter()
        .filter_map(|c| c.sequence.as_ref().map(|s| (quote(&c.name), s.clone())))
        .collect();
    let returning = if sequences.is_empty() {
        "1".to_string()
    } else {
        sequences
            .iter()
            .map(|(c, _)| format!("t.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let maxes: String = sequences
        .iter()
        .map(|(c, _)| format!(", pg_catalog.max(i.{c})::pg_catalog.int8"))
        .collect();
    (
        format!(
            "WITH i AS (INSERT INTO {} AS t ({}) OVERRIDING SYSTEM VALUE {select} RETURNING {returning})
             SELECT pg_catalog.count(*){maxes} FROM i",
            target.qualified,
            names.join(", ")
        ),
        sequences.into_iter().map(|(_, s)| s).collect(),
    )
}

fn read_written(r: &db::Row, sequences: usize) -> Written {
    Written {
        rows: r.must(1),
        max: (0..sequences).map(|i| r.get::<i64>(i as i32 + 2)).collect(),
    }
}

/// Moves each sequence past the largest value written into its column,
/// never back (another tenant's rows may be further on).  setval is not
/// transactional: a concurrent nextval between the read and the setval may
/// be overtaken, which only skips values.
fn advance_sequences(sequences: &[String], max: &[Option<i64>]) {
    for (seq, m) in sequences.iter().zip(max) {
        let Some(m) = m else { continue };
        db::query_text(
            &format!(
                "SELECT pg_catalog.setval({}::pg_catalog.regclass, $1) FROM {seq} s
                  WHERE $1 OPERATOR(pg_catalog.>) CASE WHEN s.is_called THEN s.last_value ELSE s.last_value OPERATOR(pg_catalog.-) 1 END",
                literal(seq)
            ),
            Mode::Write,
            &[(*m).into()],
            |_| (),
        );
    }
}

fn add_max(into: &mut [Option<i64>], from: &[Option<i64>]) {
    for (a, b) in into.iter_mut().zip(from) {
        *a = match (*a, *b) {
            (Some(x), Some(y)) => Some(x.max(y)),
            (x, y) => x.or(y),
        };
    }
}

/// Creates the new tenant of an import or clone through create_tenant's own
/// code (validation, provisioning, its `create` and `provision` audit rows,
/// the notification), and returns it with its row.
fn create_tenant(
    caller: access::Caller,
    identifier: &str,
    name: &str,
    metadata: Value,
    iso: &str,
) -> (Tenant, pgrx::composite_type!('static, "tenants")) {
    let iso = match iso {
        "rls" => isolation::rls,
        "schema" => isolation::schema,
        _ => isolation::database,
    };
    let row = crate::lifecycle::create(
        caller,
        Some(identifier),
        Some(name),
        Some(JsonB(metadata)),
        Some(iso),
        None,
        None,
    );
    let t = tenants::find_by_identifier(identifier, Mode::Write).unwrap_or_else(|| {
        errors::internal(format!(
            "tenant \"{identifier}\" vanished after its creation"
        ))
    });
    (t, row)
}

/// The new tenant's table for `label`, or 0A000 naming it.
fn target_table<'a>(targets: &'a [Table], label: &str, new: &Tenant) -> &'a Table {
    targets
        .iter()
        .find(|t| t.label == label)
        .unwrap_or_else(|| {
            let hint = if new.schema_name.is_some() {
                "Register the migration that creates it (tenancy.add_migration), then try again."
            } else {
                "Create the table and register it with tenancy.enable_rls, then try again."
            };
            errors::unsupported(format!(
                "table {} holds data of the tenant but does not exist here for tenant \"{}\"",
                errors::shown(label),
                new.identifier
            ))
            .hint(hint)
            .raise()
        })
}

/// The target's column `name`, writable, or 0A000 naming it.
fn target_column<'a>(target: &'a Table, name: &str) -> &'a Column {
    match target.column(name) {
        Some(c) if !c.generated && Some(&c.name) != target.tenant_column.as_ref() => c,
        Some(_) => errors::unsupported(format!(
            "column \"{}\" of table {} is generated or the tenant column here, and cannot take the exported values",
            errors::shown(name),
            target.label
        ))
        .raise(),
        None => errors::unsupported(format!(
            "column \"{}\" of table {} does not exist here",
            errors::shown(name),
            target.label
        ))
        .hint("Add the column (or the migration that adds it), then try again.")
        .raise(),
    }
}

// ---------------------------------------------------------------- import

/// The export's header, checked.
struct Header {
    tenant: Map<String, Value>,
    migrations: Vec<String>,
    /// (table, columns, rows), in the export's order.
    tables: Vec<(String, Vec<String>, i64)>,
}

fn malformed(why: impl std::fmt::Display) -> ! {
    errors::invalid(format!("malformed tenant export: {why}"))
        .hint("The source must hold the lines of one tenancy.export_tenant() call, one jsonb value per row, as saved.")
        .raise()
}

fn parse_header(line: Value) -> Header {
    let Value::Object(mut h) = line else {
        malformed("the header is not a JSON object")
    };
    match h.get("format") {
        Some(Value::String(f)) if f == FORMAT => {}
        _ => malformed(format!("the header's \"format\" is not \"{FORMAT}\"")),
    }
    match h.get("version").and_then(Value::as_i64) {
        Some(VERSION) => {}
        Some(v) if v > VERSION => errors::unsupported(format!(
            "tenant export version {v} is newer than this tenancy reads (version {VERSION})"
        ))
        .hint("Update the tenancy extension of this database.")
        .raise(),
        _ => malformed("the header's \"version\" is not a supported integer"),
    }
    let Some(Value::Object(tenant)) = h.remove("tenant") else {
        malformed("the header has no \"tenant\" object")
    };
    for key in ["identifier", "name", "isolation"] {
        if !tenant.get(key).is_some_and(Value::is_string) {
            malformed(format!("the header's tenant has no \"{key}\" string"));
        }
    }
    if !tenant.get("metadata").is_some_and(Value::is_object) {
        malformed("the header's tenant has no \"metadata\" object");
    }
    let migrations = match h.remove("migrations") {
        Some(Value::Array(a)) => a
            .into_iter()
            .map(|m| match m {
                Value::String(s) => s,
                _ => malformed("a migration in the header is not a string"),
            })
            .collect(),
        _ => malformed("the header has no \"migrations\" array"),
    };
    let Some(Value::Array(list)) = h.remove("tables") else {
        malformed("the header has no \"tables\" array")
    };
    let mut tables = Vec::with_capacity(list.len());
    let mut seen = HashSet::new();
    for entry in list {
        let table = entry
            .get("table")
            .and_then(Value::as_str)
            .map(str::to_string);
        let columns = entry
            .get("columns")
            .and_then(Value::as_array)
            .and_then(|c| {
                c.iter()
                    .map(|v| v.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
            });
        let rows = entry
            .get("rows")
            .and_then(Value::as_i64)
            .filter(|n| *n >= 0);
        match (table, columns, rows) {
            (Some(t), Some(c), Some(r)) => {
                if !seen.insert(t.clone()) {
                    malformed(format!(
                        "table {} is listed twice in the header",
                        errors::shown(&t)
                    ));
                }
                tables.push((t, c, r));
            }
            _ => malformed(
                "an entry of the header's \"tables\" lacks \"table\", \"columns\" or \"rows\"",
            ),
        }
    }
    Header {
        tenant,
        migrations,
        tables,
    }
}

/// The import's source: a relation the caller reads, and its jsonb column.
struct Source {
    qualified: String,
    column: String,
}

impl Source {
    /// The line, as an SQL expression over alias `s`.
    fn line(&self) -> String {
        format!("s.{}", quote(&self.column))
    }
}

fn describe_source(source: RegClass) -> Source {
    let found = db::query(
        "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname), a.attname::text
           FROM pg_catalog.pg_class c
           JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
           LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) c.oid AND a.attnum OPERATOR(pg_catalog.>) 0
                AND NOT a.attisdropped AND a.atttypid OPERATOR(pg_catalog.=) 'pg_catalog.jsonb'::pg_catalog.regtype
          WHERE c.oid OPERATOR(pg_catalog.=) $1
          ORDER BY a.attnum",
        Mode::Write,
        &[source.0.into()],
        |r| (r.must::<String>(1), r.get::<String>(2)),
    );
    let Some((qualified, _)) = found.first().cloned() else {
        errors::invalid(format!(
            "relation with OID {} does not exist",
            source.0.to_u32()
        ))
        .raise()
    };
    let columns: Vec<String> = found.into_iter().filter_map(|(_, c)| c).collect();
    match <[String; 1]>::try_from(columns) {
        Ok([column]) => Source { qualified, column },
        Err(_) => errors::invalid(format!(
            "source {qualified} must have exactly one jsonb column, holding the export's lines"
        ))
        .hint("CREATE TEMP TABLE lines (line jsonb); then COPY lines FROM STDIN, and pass 'lines'.")
        .raise(),
    }
}

/// Import a tenant from an export's lines (SPEC §9).  SECURITY INVOKER in
/// SQL: it runs as the catalog's owner through `access::definer`, which
/// tells it who called: the source is read as the caller, the new tenant
/// is created as create_tenant creates it.
#[pg_extern(name = "import_tenant", volatile, requires = ["isolation_catalog"])]
#[search_path(pg_catalog, pg_temp)]
fn import_tenant(
    source: Option<RegClass>,
    identifier: default!(Option<&str>, "NULL"),
    name: default!(Option<&str>, "NULL"),
) -> pgrx::composite_type!('static, "tenants") {
    access::definer(|caller| import(caller, required(source, "source"), identifier, name))
}

fn import(
    caller: access::Caller,
    source: RegClass,
    identifier: Option<&str>,
    name: Option<&str>,
) -> pgrx::composite_type!('static, "tenants") {
    let src = describe_source(source);
    let line = src.line();
    // The header: exactly one line with "format".
    let headers = access::as_role(caller.role, Restrict::Operation, || {
        db::query_text(
            &format!(
                "SELECT {line} FROM {} s
                  WHERE pg_catalog.jsonb_typeof({line}) OPERATOR(pg_catalog.=) 'object' AND {line} OPERATOR(pg_catalog.?) 'format'
                  LIMIT 2",
                src.qualified
            ),
            Mode::Write,
            &[],
            |r| r.must::<JsonB>(1).0,
        )
    });
    let header = match <[Value; 1]>::try_from(headers) {
        Ok([h]) => parse_header(h),
        Err(v) if v.is_empty() => malformed(format!(
            "{} holds no header line (with \"format\")",
            src.qualified
        )),
        Err(_) => malformed(format!("{} holds more than one header line", src.qualified)),
    };
    let exported = |key: &str| {
        header
            .tenant
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let iso = exported("isolation");
    if !["rls", "schema", "database"].contains(&iso.as_str()) {
        malformed(format!(
            "the header's isolation \"{}\" is not rls, schema or database",
            errors::shown(&iso)
        ));
    }
    if iso == "database" {
        errors::unsupported(
            "the export is of a database tenant: import_tenant takes rls and schema tenants only",
        )
        .hint("Use pg_dump and pg_restore on the tenant's database.")
        .raise();
    }
    let missing = db::query_one(
        "SELECT m.name FROM pg_catalog.unnest($1::text[]) WITH ORDINALITY AS m(name, n)
          WHERE NOT EXISTS (SELECT FROM tenancy.migrations r WHERE r.name OPERATOR(pg_catalog.=) m.name)
          ORDER BY m.n LIMIT 1",
        Mode::Write,
        &[header.migrations.clone().into()],
        |r| r.must::<String>(1),
    );
    if let Some(m) = missing {
        errors::unsupported(format!("the export was taken after migration \"{}\", which this database does not have", errors::shown(&m)))
            .hint("Register the same migrations here (tenancy.add_migration), in the same order, then import.")
            .raise();
    }

    // Every line but the header is a row of a listed table, as many as the
    // header says (a file cut short, or lines of another export, fail here).
    let counts = access::as_role(caller.role, Restrict::Operation, || {
        db::query_text(
            &format!(
                "SELECT {line} OPERATOR(pg_catalog.->>) 'table', pg_catalog.count(*) FROM {} s
                  WHERE NOT (pg_catalog.jsonb_typeof({line}) OPERATOR(pg_catalog.=) 'object' AND {line} OPERATOR(pg_catalog.?) 'format')
                  GROUP BY 1",
                src.qualified
            ),
            Mode::Write,
            &[],
            |r| (r.get::<String>(1), r.must::<i64>(2)),
        )
    });
    let mut found: HashMap<String, i64> = HashMap::new();
    for (table, n) in counts {
        match table {
            None => malformed(format!(
                "{n} line(s) are neither the header nor a row (no \"table\" string)"
            )),
            Some(t) => {
                found.insert(t, n);
            }
        }
    }
    for (table, _, rows) in &header.tables {
        let n = found.remove(table).unwrap_or(0);
        if n != *rows {
            malformed(format!(
                "the header says table {} has {rows} row(s), the source holds {n}",
                errors::shown(table)
            ));
        }
    }
    if let Some(t) = found.keys().min() {
        malformed(format!(
            "rows of table {} are not listed in the header",
            errors::shown(t)
        ));
    }

    let identifier = identifier
        .map(str::to_string)
        .unwrap_or_else(|| exported("identifier"));
    let name = name.map(str::to_string).unwrap_or_else(|| exported("name"));
    let metadata = header
        .tenant
        .get("metadata")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let (t, row) = create_tenant(caller, &identifier, &name, metadata, &iso);

    // The new tenant's tables, in this database's foreign key order; every
    // listed table and column must be there.
    let targets = tenant_tables(&t, Mode::Write);
    let mut plan = Vec::new();
    for (label, columns, rows) in &header.tables {
        let target = target_table(&targets, label, &t);
        let cols: Vec<&Column> = columns.iter().map(|c| target_column(target, c)).collect();
        plan.push((target, cols, *rows));
    }
    plan.sort_by_key(|(target, _, _)| targets.iter().position(|x| x.oid == target.oid));

    let mut rows_by_table = Map::new();
    for (target, cols, rows) in plan {
        if rows > 0 {
            let n = import_table(caller.role, &src, target, &cols, t.id);
            if n != rows {
                malformed(format!(
                    "{} row(s) of table {} were read, the header says {rows}",
                    n, target.label
                ));
            }
        }
        rows_by_table.insert(target.label.clone(), json!(rows));
    }
    let unlisted: Vec<String> = migrations_not_in(&t, &header.migrations);
    if !unlisted.is_empty() {
        errors::notice(format!(
            "tenant \"{}\" was created with migrations the export was not taken with: {}",
            t.identifier,
            unlisted.join(", ")
        ))
        .detail("They ran before its rows were imported, so a migration that changes existing rows did not change these.")
        .tell();
    }
    audit::record_one(Event::new(
        t.id,
        &t.identifier,
        "import",
        json!({"rows": rows_by_table, "from": {"id": header.tenant.get("id"), "identifier": exported("identifier")}}),
    ));
    row
}

/// The new schema tenant's applied migrations that the export does not name.
fn migrations_not_in(t: &Tenant, exported: &[String]) -> Vec<String> {
    if t.schema_name.is_none() {
        return Vec::new();
    }
    db::query(
        "SELECT l.migration FROM tenancy.migration_ledger l JOIN tenancy.migrations m ON m.name OPERATOR(pg_catalog.=) l.migration
          WHERE l.tenant_id OPERATOR(pg_catalog.=) $1 AND l.status OPERATOR(pg_catalog.=) 'applied'
            AND NOT (l.migration OPERATOR(pg_catalog.=) ANY ($2::text[]))
          ORDER BY m.position",
        Mode::Write,
        &[t.id.into(), exported.to_vec().into()],
        |r| r.must::<String>(1),
    )
}

/// Inserts the source's rows of one table, batch by batch: read as the
/// caller (a cursor over the source), written as the table's owner (an
/// INSERT taking the batch as a jsonb[] parameter).  Returns the rows written.
fn import_table(
    caller: pg_sys::Oid,
    src: &Source,
    target: &Table,
    cols: &[&Column],
    tenant: pgrx::Uuid,
) -> i64 {
    let line = src.line();
    let names: Vec<String> = cols.iter().map(|c| c.name.clone()).collect();
    // Each row an object with only the listed columns: a key populate
    // would ignore is a value the import would lose.
    let cursor_sql = format!(
        "SELECT {line} OPERATOR(pg_catalog.->) 'row',
                (pg_catalog.jsonb_typeof({line} OPERATOR(pg_catalog.->) 'row') OPERATOR(pg_catalog.=) 'object'
                 AND (({line} OPERATOR(pg_catalog.->) 'row') OPERATOR(pg_catalog.-) $2::pg_catalog.text[]) OPERATOR(pg_catalog.=) '{{}}'::pg_catalog.jsonb) IS TRUE
           FROM {} s
          WHERE ({line} OPERATOR(pg_catalog.->>) 'table') OPERATOR(pg_catalog.=) $1",
        src.qualified
    );
    // jsonb columns straight from the line (a JSON null stays a JSON null,
    // a missing key is NULL), json ones from their text; the rest through
    // populate, which reads each value with its type's input function.
    let exprs: Vec<String> = cols
        .iter()
        .map(|c| {
            if c.json == "jsonb" {
                format!(
                    "(l.v OPERATOR(pg_catalog.->) {})::{}",
                    literal(&c.name),
                    c.type_name
                )
            } else if c.json == "json" {
                format!(
                    "(l.v OPERATOR(pg_catalog.->>) {})::{}",
                    literal(&c.name),
                    c.type_name
                )
            } else {
                format!("r.{}", quote(&c.name))
            }
        })
        .chain(target.tenant_column.iter().map(|_| "$2".to_string()))
        .collect();
    let select = format!(
        "SELECT {} FROM pg_catalog.unnest($1::pg_catalog.jsonb[]) AS l(v), pg_catalog.jsonb_populate_record(NULL::{}, l.v) AS r",
        exprs.join(", "),
        target.qualified
    );
    let (insert, sequences) = insert_statement(target, cols, &select);
    let label = target.label.as_str();
    let names_datum = names.clone().into_datum().expect("an array is not NULL");
    let label_datum = label.into_datum().expect("text is not NULL");
    let cursor = access::as_role(caller, Restrict::Operation, || {
        spi(|| unsafe {
            open_cursor(
                &cursor_sql,
                &[
                    (pg_sys::TEXTOID, label_datum),
                    (pg_sys::TEXTARRAYOID, names_datum),
                ],
                false,
            )
        })
    });
    let cxt = unsafe { batch_context(pg_sys::CurrentMemoryContext) };
    let mut total = 0i64;
    let mut max: Vec<Option<i64>> = vec![None; sequences.len()];
    loop {
        unsafe { pg_sys::MemoryContextReset(cxt) };
        let size = if target.self_referencing {
            i64::MAX
        } else {
            IMPORT_BATCH
        };
        let batch = access::as_role(caller, Restrict::Operation, || {
            spi(|| unsafe { fetch_batch(&cursor, cxt, label, size) })
        });
        let Some((array, n)) = batch else { break };
        let written = access::as_role(target.owner, Restrict::OperationNoForceRls, || {
            db::query_text(
                &insert,
                Mode::Write,
                &[
                    unsafe { DatumWithOid::new(array, pg_sys::JSONBARRAYOID) },
                    tenant.into(),
                ],
                |r| read_written(r, sequences.len()),
            )
        })
        .into_iter()
        .next()
        .unwrap_or(Written {
            rows: 0,
            max: vec![],
        });
        if written.rows != n {
            malformed(format!(
                "{} of {n} row(s) of table {label} were written",
                written.rows
            ));
        }
        total += written.rows;
        add_max(&mut max, &written.max);
    }
    unsafe { pg_sys::MemoryContextDelete(cxt) };
    access::as_role(target.owner, Restrict::OperationNoForceRls, || {
        advance_sequences(&sequences, &max)
    });
    total
}

/// The next batch of the source cursor as one jsonb[] in `cxt`, with its
/// length; None at the end (the cursor is then closed).
unsafe fn fetch_batch(
    cursor: &CStr,
    cxt: pg_sys::MemoryContext,
    label: &str,
    size: i64,
) -> Option<(pg_sys::Datum, i64)> {
    let portal = find_cursor(cursor);
    pg_sys::SPI_cursor_fetch(portal, true, size as _);
    let n = pg_sys::SPI_processed as usize;
    if n == 0 {
        pg_sys::SPI_cursor_close(portal);
        return None;
    }
    let table = pg_sys::SPI_tuptable;
    let mut values = Vec::with_capacity(n);
    for i in 0..n {
        let tuple = *(*table).vals.add(i);
        let mut is_null = false;
        let ok = pg_sys::SPI_getbinval(tuple, (*table).tupdesc, 2, &mut is_null);
        let v = pg_sys::SPI_getbinval(tuple, (*table).tupdesc, 1, &mut is_null);
        if !bool::from_datum(ok, false).unwrap_or(false) {
            let shown = pgrx::JsonB::from_datum(v, is_null)
                .map(|j| errors::shown(&j.0.to_string()))
                .unwrap_or_else(|| "null".into());
            malformed(format!(
                "a row of table {label} is not an object of the columns the header lists: {shown}"
            ));
        }
        values.push(v);
    }
    let old = pg_sys::MemoryContextSwitchTo(cxt);
    let array = pg_sys::construct_array(
        values.as_mut_ptr(),
        n as i32,
        pg_sys::JSONBOID,
        -1,
        false,
        b'i' as std::ffi::c_char,
    );
    pg_sys::MemoryContextSwitchTo(old);
    pg_sys::SPI_freetuptable(table);
    Some((pg_sys::Datum::from(array), n as i64))
}

// ---------------------------------------------------------------- clone

/// Clone a tenant (SPEC §9): a new tenant with the source's metadata,
/// isolation and a copy of all its data, consistent as of one snapshot, in
/// the caller's transaction.  SECURITY INVOKER in SQL, run as the catalog's
/// owner through `access::definer` (see import_tenant).
#[pg_extern(name = "clone_tenant", volatile, requires = ["isolation_catalog"])]
#[search_path(pg_catalog, pg_temp)]
fn clone_tenant(
    source: Option<pgrx::Uuid>,
    identifier: Option<&str>,
    name: default!(Option<&str>, "NULL"),
) -> pgrx::composite_type!('static, "tenants") {
    // The snapshot of the statement that called: every table is copied as
    // it was then, whatever commits while the copy runs.
    let snapshot = unsafe { pg_sys::RegisterSnapshot(pg_sys::GetActiveSnapshot()) };
    let row = access::definer(|caller| {
        clone(
            caller,
            required(source, "source"),
            required(identifier, "identifier"),
            name,
            snapshot,
        )
    });
    unsafe { pg_sys::UnregisterSnapshot(snapshot) };
    row
}

fn clone(
    caller: access::Caller,
    source: pgrx::Uuid,
    identifier: &str,
    name: Option<&str>,
    snapshot: pg_sys::Snapshot,
) -> pgrx::composite_type!('static, "tenants") {
    // Locked against removal (not against other changes) until commit.
    let (s, metadata, source_name) = db::query_one(
        concat!(
            "SELECT ",
            crate::tenant_cols!(),
            ", t.metadata, t.name FROM tenancy.tenants t WHERE t.id OPERATOR(pg_catalog.=) $1 FOR KEY SHARE"
        ),
        Mode::Write,
        &[source.into()],
        |r| (Tenant::from_row(r), r.must::<JsonB>(8).0, r.must::<String>(9)),
    )
    .unwrap_or_else(|| errors::tenant_not_found(source).raise());
    if caller.restricted {
        errors::forbidden("clone_tenant cannot run inside a security-restricted operation").raise();
    }
    crate::context::access::check_may_act(caller.role, &s);
    check_not_database(&s, "clone_tenant");
    let tables = tenant_tables(&s, Mode::Write);
    let counts: Vec<i64> = tables
        .iter()
        .map(|t| count_rows(t, s.id, snapshot))
        .collect();
    for (table, n) in tables.iter().zip(&counts) {
        if *n > 0 {
            refuse_shared_unique(table);
        }
    }
    let (t, row) = create_tenant(
        caller,
        identifier,
        name.unwrap_or(&source_name),
        metadata,
        &s.isolation,
    );
    let targets = if t.schema_name.is_some() {
        tenant_tables(&t, Mode::Write)
    } else {
        Vec::new()
    };
    let mut rows = Map::new();
    for (table, n) in tables.iter().zip(counts) {
        if n > 0 {
            let target = if t.schema_name.is_some() {
                target_table(&targets, &table.label, &t)
            } else {
                table
            };
            let written = clone_table(table, target, s.id, t.id, snapshot);
            rows.insert(table.label.clone(), json!(written));
        } else {
            rows.insert(table.label.clone(), json!(0));
        }
    }
    audit::record_one(Event::new(
        t.id,
        &t.identifier,
        "clone",
        json!({"source": {"id": s.id.to_string(), "identifier": s.identifier}, "rows": rows}),
    ));
    row
}

/// The source tenant's rows in `table`, as the snapshot sees them.
fn count_rows(table: &Table, tenant: pgrx::Uuid, snapshot: pg_sys::Snapshot) -> i64 {
    let sql = format!(
        "SELECT pg_catalog.count(*) FROM {}{}",
        table.from_item(),
        table.tenant_filter()
    );
    let uuid = tenant.into_datum().expect("a uuid is not NULL");
    let mut n = 0;
    // As the table's owner, never the extension's (see export_start).
    access::as_role(table.owner, Restrict::OperationNoForceRls, || unsafe {
        run_with_snapshot(&sql, &[(pg_sys::UUIDOID, uuid)], snapshot, |r| {
            n = r.get(1).unwrap_or(0)
        })
    });
    n
}

/// A unique index of a shared table without the tenant column holds the
/// source's values already: the copy would collide.  0A000 naming it,
/// before anything is written.
fn refuse_shared_unique(table: &Table) {
    let Some(tc) = &table.tenant_column else {
        return;
    };
    let index = db::query_one(
        "SELECT ic.relname::text FROM pg_catalog.pg_index i
           JOIN pg_catalog.pg_class ic ON ic.oid OPERATOR(pg_catalog.=) i.indexrelid
           JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid AND a.attname OPERATOR(pg_catalog.=) $2
          WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND i.indisunique
            AND NOT (a.attnum OPERATOR(pg_catalog.=) ANY (i.indkey::pg_catalog.int2[]))
          ORDER BY 1 LIMIT 1",
        Mode::Write,
        &[table.oid.into(), tc.as_str().into()],
        |r| r.must::<String>(1),
    );
    if let Some(index) = index {
        errors::unsupported(format!(
            "table {} has a unique index \"{}\" without its tenant column \"{tc}\": a copy of the tenant's rows would collide with them",
            table.label,
            errors::shown(&index)
        ))
        .detail("A key unique across tenants (a global serial id, an e-mail address) cannot hold the same value for two tenants.")
        .hint(format!("Make the tenant column part of the key: UNIQUE ({}, ...).", quote(tc)))
        .raise();
    }
}

/// INSERT … SELECT of the source tenant's rows of `source` into `target`
/// for the new tenant, with the clone's snapshot, as the target's owner.
fn clone_table(
    source: &Table,
    target: &Table,
    from: pgrx::Uuid,
    to: pgrx::Uuid,
    snapshot: pg_sys::Snapshot,
) -> i64 {
    let cols: Vec<&Column> = source
        .data_columns()
        .map(|c| target_column(target, &c.name))
        .collect();
    let mut exprs: Vec<String> = cols
        .iter()
        .map(|c| format!("t.{}", quote(&c.name)))
        .collect();
    if target.tenant_column.is_some() {
        exprs.push("$2".to_string());
    }
    let select = format!(
        "SELECT {} FROM {}{}",
        exprs.join(", "),
        source.from_item(),
        source.tenant_filter()
    );
    let (insert, sequences) = insert_statement(target, &cols, &select);
    let args = [
        (
            pg_sys::UUIDOID,
            from.into_datum().expect("a uuid is not NULL"),
        ),
        (
            pg_sys::UUIDOID,
            to.into_datum().expect("a uuid is not NULL"),
        ),
    ];
    let written = access::as_role(target.owner, Restrict::OperationNoForceRls, || {
        let mut w = Written {
            rows: 0,
            max: vec![],
        };
        unsafe {
            run_with_snapshot(&insert, &args, snapshot, |r| {
                w = Written {
                    rows: r.get(1).unwrap_or(0),
                    max: (0..sequences.len()).map(|i| r.get(i as i32 + 2)).collect(),
                }
            })
        };
        advance_sequences(&sequences, &w.max);
        w
    });
    written.rows
}

/// Runs `sql` with `snapshot` (its command id advanced, so the
/// transaction's own earlier changes are seen) and hands each row to `each`.
unsafe fn run_with_snapshot(
    sql: &str,
    args: &[(pg_sys::Oid, pg_sys::Datum)],
    snapshot: pg_sys::Snapshot,
    mut each: impl FnMut(&RawRow),
) {
    spi(|| {
        let types: Vec<pg_sys::Oid> = args.iter().map(|a| a.0).collect();
        let plan = prepare(sql, &types);
        let mut values: Vec<pg_sys::Datum> = args.iter().map(|a| a.1).collect();
        let nulls: Vec<std::ffi::c_char> = vec![b' ' as std::ffi::c_char; args.len()];
        let rc = pg_sys::SPI_execute_snapshot(
            plan,
            values.as_mut_ptr(),
            nulls.as_ptr(),
            snapshot,
            std::ptr::null_mut(),
            false,
            true,
            0,
        );
        if rc < 0 {
            errors::internal(format!("SPI_execute_snapshot failed ({rc}) for: {sql}"));
        }
        let table = pg_sys::SPI_tuptable;
        if !table.is_null() {
            for i in 0..pg_sys::SPI_processed as usize {
                each(&RawRow {
                    tuple: *(*table).vals.add(i),
                    desc: (*table).tupdesc,
                });
            }
        }
        pg_sys::SPI_freeplan(plan);
    })
}

/// One row of `run_with_snapshot`, read as int8 columns.
struct RawRow {
    tuple: pg_sys::HeapTuple,
    desc: pg_sys::TupleDesc,
}

impl RawRow {
    fn get(&self, n: i32) -> Option<i64> {
        unsafe {
            let mut is_null = false;
            let d = pg_sys::SPI_getbinval(self.tuple, self.desc, n, &mut is_null);
            i64::from_datum(d, is_null)
        }
    }
}
