//! Schema tenants on Citus (SPEC §8, last point): a migration run in a
//! tenant's *distributed schema* (schema-based sharding) makes its new tables
//! single-shard tables of that schema, as the same statements typed by a
//! client would.
//!
//! Why this is needed.  With `citus.enable_schema_based_sharding = on`, the
//! `CREATE SCHEMA` provision runs through SPI already gives a distributed
//! schema (Citus registers it in a Postprocess step, which any utility call
//! reaches).  But Citus turns a new table of a distributed schema into a
//! tenant table only for a *top-level* statement: in Citus 13.2
//! `citus_ProcessUtility` calls `ConvertNewTableIfNecessary` (CREATE TABLE,
//! CREATE FOREIGN TABLE, CREATE TABLE AS) and `ConvertToTenantTableIfNecessary`
//! (ALTER TABLE … SET SCHEMA) only when `context == PROCESS_UTILITY_TOPLEVEL`
//! and its own utility nesting level is 1 (commands/utility_hook.c).  SPI
//! always says PROCESS_UTILITY_QUERY, so the tables a migration created
//! stayed plain tables of the coordinator (measured:
//! docs/design/citus-research.md, "Open question 10").
//!
//! What is done instead.  The migration's text is split into its statements
//! (PostgreSQL's own parser, so quoting, dollar quotes and comments are
//! PostgreSQL's).  The statements that create or move a table are parsed,
//! analysed and planned here and handed to `ProcessUtility` with the
//! top-level context, exactly what `exec_simple_query` does for a client;
//! every other statement runs through SPI as before, one at a time with its
//! own text (Citus sends a DDL statement's query string to the shards, and a
//! string holding several statements is refused there).  The top-level
//! context is claimed only for those statement types: for them PostgreSQL
//! uses `isTopLevel` for nothing (no `PreventInTransactionBlock`), so
//! claiming it changes what Citus does and nothing else.  Everything still
//! runs as the schema's owner in a security-restricted operation
//! (`migrations::apply`).
//!
//! Only a distributed schema takes this path: without Citus, or for a schema
//! Citus does not shard, migrations run exactly as on a single node.

use std::ffi::{CStr, CString};

use pgrx::pg_sys;

use crate::base::db;
use crate::base::errors;

/// Whether Citus shards `schema` by schema (it is in `pg_dist_schema`, as
/// `citus_schemas` shows).  False without Citus, or in a database where the
/// citus extension is not created (its metadata table does not exist).
pub fn is_distributed(schema: pg_sys::Oid) -> bool {
    let has_metadata = || unsafe {
        pg_sys::get_relname_relid(
            c"pg_dist_schema".as_ptr(),
            pg_sys::Oid::from(pg_sys::PG_CATALOG_NAMESPACE),
        ) != pg_sys::InvalidOid
    };
    super::loaded()
        && has_metadata()
        && db::query_one(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_schema s WHERE s.schemaid OPERATOR(pg_catalog.=) $1::pg_catalog.oid::pg_catalog.regnamespace)",
            db::Mode::Write,
            &[schema.into()],
            |r| r.must::<bool>(1),
        )
        .unwrap_or(false)
}

/// Runs migration `sql` (named `migration`) in the distributed schema
/// `schema`, the search_path and role already set by the caller; then makes
/// sure every table of the schema is a Citus table.
pub fn run_migration(migration: &str, schema: &str, sql: &str) {
    for statement in split(sql) {
        if statement.top_level {
            run_top_level(&statement.text);
        } else {
            db::execute_dynamic(&statement.text);
        }
    }
    check_all_distributed(migration, schema);
}

/// One statement of a migration: its own text, and whether it is one of the
/// statements Citus acts on only at top level.
struct Statement {
    text: String,
    top_level: bool,
}

/// The statements of `sql`, in order, by PostgreSQL's parser (a syntax
/// error anywhere is raised before anything runs, as SPI_execute does).
fn split(sql: &str) -> Vec<Statement> {
    let text = CString::new(sql)
        .unwrap_or_else(|_| errors::invalid("SQL text must not contain NUL bytes").raise());
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    unsafe {
        let list = pg_sys::pg_parse_query(text.as_ptr());
        for raw in list_ptrs::<pg_sys::RawStmt>(list) {
            // stmt_location -1: the string is this one statement; stmt_len 0:
            // the statement runs to the end of the string.
            let start = usize::try_from((*raw).stmt_location)
                .unwrap_or(0)
                .min(bytes.len());
            let end = match usize::try_from((*raw).stmt_len) {
                Ok(0) | Err(_) => bytes.len(),
                Ok(len) => (start + len).min(bytes.len()),
            };
            let piece = std::str::from_utf8(&bytes[start..end]).unwrap_or_else(|_| {
                errors::internal("a migration statement does not end on a character boundary")
            });
            out.push(Statement {
                text: piece.to_string(),
                top_level: creates_table((*raw).stmt),
            });
        }
    }
    out
}

/// The pointers of a PostgreSQL List of nodes.
unsafe fn list_ptrs<T>(list: *mut pg_sys::List) -> Vec<*mut T> {
    if list.is_null() {
        return Vec::new();
    }
    let n = usize::try_from((*list).length).unwrap_or(0);
    (0..n)
        .map(|i| (*(*list).elements.add(i)).ptr_value.cast::<T>())
        .collect()
}

/// Whether Citus converts the table this raw statement creates (or moves)
/// only when it runs at top level: CREATE TABLE, CREATE FOREIGN TABLE (which
/// Citus refuses in a distributed schema, as it should), CREATE TABLE AS and
/// SELECT … INTO (not a materialized view: Citus keeps those local), and
/// ALTER TABLE … SET SCHEMA.
unsafe fn creates_table(node: *mut pg_sys::Node) -> bool {
    if node.is_null() {
        return false;
    }
    match (*node).type_ {
        pg_sys::NodeTag::T_CreateStmt | pg_sys::NodeTag::T_CreateForeignTableStmt => true,
        pg_sys::NodeTag::T_CreateTableAsStmt => {
            ctas_kind(node.cast::<pg_sys::CreateTableAsStmt>()) == pg_sys::ObjectType::OBJECT_TABLE
        }
        pg_sys::NodeTag::T_SelectStmt => !(*node.cast::<pg_sys::SelectStmt>()).intoClause.is_null(),
        pg_sys::NodeTag::T_AlterObjectSchemaStmt => matches!(
            (*node.cast::<pg_sys::AlterObjectSchemaStmt>()).objectType,
            pg_sys::ObjectType::OBJECT_TABLE | pg_sys::ObjectType::OBJECT_FOREIGN_TABLE
        ),
        _ => false,
    }
}

/// What a CREATE … AS makes: a table or a materialized view (PostgreSQL 13
/// names the field `relkind`).
#[cfg(feature = "pg13")]
unsafe fn ctas_kind(stmt: *mut pg_sys::CreateTableAsStmt) -> pg_sys::ObjectType::Type {
    (*stmt).relkind
}

#[cfg(not(feature = "pg13"))]
unsafe fn ctas_kind(stmt: *mut pg_sys::CreateTableAsStmt) -> pg_sys::ObjectType::Type {
    (*stmt).objtype
}

/// Runs one table-creating statement as `exec_simple_query` runs a client's:
/// parse, analyse and plan it under a fresh snapshot, then ProcessUtility
/// with the top-level context.  An error propagates (and aborts the
/// (sub)transaction, which also pops the snapshot).
fn run_top_level(statement: &str) {
    let text = CString::new(statement)
        .unwrap_or_else(|_| errors::invalid("SQL text must not contain NUL bytes").raise());
    unsafe {
        // The effects of the migration's earlier statements are visible to
        // this one, as between the statements of one SPI_execute.
        pg_sys::CommandCounterIncrement();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
        for raw in list_ptrs::<pg_sys::RawStmt>(pg_sys::pg_parse_query(text.as_ptr())) {
            let queries = analyze(raw, &text);
            let planned = pg_sys::pg_plan_queries(
                queries,
                text.as_ptr(),
                pg_sys::CURSOR_OPT_PARALLEL_OK as i32,
                std::ptr::null_mut(),
            );
            for stmt in list_ptrs::<pg_sys::PlannedStmt>(planned) {
                if (*stmt).commandType != pg_sys::CmdType::CMD_UTILITY {
                    // Not reached for the statement types creates_table accepts
                    // (each analyses to one utility statement); never run a
                    // plan here without a portal.
                    errors::internal("a table-creating migration statement was planned as a query");
                }
                process_utility(stmt, &text);
                pg_sys::CommandCounterIncrement();
            }
        }
        pg_sys::PopActiveSnapshot();
    }
}

#[cfg(any(feature = "pg13", feature = "pg14"))]
unsafe fn analyze(raw: *mut pg_sys::RawStmt, text: &CStr) -> *mut pg_sys::List {
    pg_sys::pg_analyze_and_rewrite(
        raw,
        text.as_ptr(),
        std::ptr::null_mut(),
        0,
        std::ptr::null_mut(),
    )
}

#[cfg(not(any(feature = "pg13", feature = "pg14")))]
unsafe fn analyze(raw: *mut pg_sys::RawStmt, text: &CStr) -> *mut pg_sys::List {
    pg_sys::pg_analyze_and_rewrite_fixedparams(
        raw,
        text.as_ptr(),
        std::ptr::null(),
        0,
        std::ptr::null_mut(),
    )
}

#[cfg(feature = "pg13")]
unsafe fn process_utility(stmt: *mut pg_sys::PlannedStmt, text: &CStr) {
    let mut qc = pg_sys::QueryCompletion::default();
    pg_sys::ProcessUtility(
        stmt,
        text.as_ptr(),
        pg_sys::ProcessUtilityContext::PROCESS_UTILITY_TOPLEVEL,
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        pg_sys::None_Receiver,
        &mut qc,
    );
}

#[cfg(not(feature = "pg13"))]
unsafe fn process_utility(stmt: *mut pg_sys::PlannedStmt, text: &CStr) {
    let mut qc = pg_sys::QueryCompletion::default();
    // readOnlyTree false: the tree is this call's own, used once.
    pg_sys::ProcessUtility(
        stmt,
        text.as_ptr(),
        false,
        pg_sys::ProcessUtilityContext::PROCESS_UTILITY_TOPLEVEL,
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        pg_sys::None_Receiver,
        &mut qc,
    );
}

/// Refuses a migration that left a table of the distributed schema outside
/// Citus: one created where Citus does not convert tables (inside a DO block
/// or a function the migration calls, or with create_tenant or migrate()
/// itself called from inside another utility statement, such as EXPLAIN
/// ANALYZE).  Such a table would live on the coordinator only, beside the
/// tenant's shards on a worker; the migration fails instead (create_tenant
/// rolls back, migrate() records the failure and rolls the migration back).
fn check_all_distributed(migration: &str, schema: &str) {
    let Some((nsp, _)) = crate::base::security::namespace(schema) else {
        return;
    };
    let local = db::query_one(
        "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
          WHERE c.relnamespace OPERATOR(pg_catalog.=) $1 AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,f}'::\"char\"[])
            AND NOT EXISTS (SELECT FROM pg_catalog.pg_dist_partition p WHERE p.logicalrelid OPERATOR(pg_catalog.=) c.oid::pg_catalog.regclass)
            AND NOT pg_catalog.relation_is_a_known_shard(c.oid::pg_catalog.regclass)
          ORDER BY c.relname LIMIT 1",
        db::Mode::Write,
        &[nsp.into()],
        |r| r.must::<String>(1),
    );
    if let Some(table) = local {
        errors::unsupported(format!(
            "migration \"{}\" left table {table} in distributed schema \"{schema}\" outside Citus",
            errors::shown(migration)
        ))
        .detail("Citus makes a table of a distributed schema a single-shard table of it only when the statement creating it runs at top level.")
        .hint("Create tables with CREATE TABLE at the migration's top level, not inside a DO block or a function, and call create_tenant or migrate() directly, not from inside another statement such as EXPLAIN ANALYZE.")
        .raise();
    }
}
