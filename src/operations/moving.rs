//! Moving a tenant between `'rls'` and `'schema'` (SPEC §9 `move_tenant`):
//! its rows go from the shared tables into the same-named tables of a new
//! schema of its own, or back, in the caller's transaction.
//!
//! Concurrency.  Where a tenant's data lives is guarded by tenancy's own
//! lock on the tenant (`LockPurpose::Placement`, a userlock no SQL function
//! can take): every request of the tenant holds it shared from its first
//! `set_tenant` or `current_tenant_id()` to the end of its transaction, and
//! `move_tenant` takes it exclusively.  So a move waits for the tenant's
//! transactions under way, the tenant's new transactions wait for the move,
//! and then run against the new placement: `set_tenant` reads the tenant
//! after the wait and puts the new schema on search_path (or takes it off).
//! What cannot follow is refused rather than left to write in the old
//! place: a statement whose snapshot predates the move (it waited for it)
//! gets 40001, a session whose `set_tenant` came before the move gets 55000
//! until it calls `set_tenant` again.  Moving out of a schema also takes
//! ACCESS EXCLUSIVE locks on its tables, for requests that reach them without
//! any tenancy call (a session-level context, schema tables have no
//! policy).  Other tenants are not blocked: the move locks only this
//! tenant's rows in the shared tables, and only this tenant's schema.
//!
//! Security.  No user code runs with the extension owner's rights: each
//! table is written as its owner in a security-restricted operation in which
//! row-level security is not forced on that owner (as `rls::delete_tenant_rows`
//! deletes), so the table's triggers run with their owner's rights.  The
//! copy into a table reads the source as the target's owner; where that
//! owner may not read the source (a shared table's owner reading the
//! tenant's schema), it is granted SELECT on that one table of the schema
//! being dropped, inside this transaction, which no other session sees.

use std::collections::HashMap;

use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;
use serde_json::{json, Map, Value};

use crate::base::db::{self, Mode};
use crate::base::errors::{self, required, TenancyError};
use crate::base::security::{self as access, Restrict};
use crate::base::settings;
use crate::base::validate;
use crate::catalog::audit::{self, Event};
use crate::catalog::isolation;
use crate::catalog::tenants::{self, Tenant};
use crate::context::placement;
use crate::isolation::provision;
use crate::isolation::references;
use crate::tenant_cols;

fn quote(ident: &str) -> String {
    pgrx::spi::quote_identifier(ident)
}

// ---------------------------------------------------------------------------
// Reading the catalogs.

/// A table taking part in a move.
#[derive(Clone)]
struct Table {
    oid: pg_sys::Oid,
    /// Schema-qualified and quoted, for SQL and messages.
    qualified: String,
    relname: String,
    owner: pg_sys::Oid,
    /// The tenant column (shared tables only).
    tenant_column: Option<String>,
    row_security: bool,
}

struct Column {
    name: String,
    generated: bool,
}

fn columns(table: pg_sys::Oid) -> Vec<Column> {
    db::query(
        "SELECT a.attname::text, a.attgenerated OPERATOR(pg_catalog.<>) ''
           FROM pg_catalog.pg_attribute a
          WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
          ORDER BY a.attnum",
        Mode::Write,
        &[table.into()],
        |r| Column {
            name: r.must(1),
            generated: r.must(2),
        },
    )
}

/// The registered shared tables, but for partitions of a registered table
/// (their rows are the parent's).
fn shared_tables() -> Vec<Table> {
    db::query(
        "SELECT c.oid, pg_catalog.format('%I.%I', n.nspname, c.relname), c.relname::text, c.relowner,
                r.tenant_column::text, c.relrowsecurity
           FROM tenancy.rls_tables r
           JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) r.tbl::pg_catalog.oid
           JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
          WHERE c.relpersistence OPERATOR(pg_catalog.<>) 't'
            AND NOT EXISTS (SELECT FROM pg_catalog.pg_partition_ancestors(c.oid) a
                              JOIN tenancy.rls_tables p ON p.tbl::pg_catalog.oid OPERATOR(pg_catalog.=) a.relid
                             WHERE a.relid OPERATOR(pg_catalog.<>) c.oid)
          ORDER BY 2",
        Mode::Write,
        &[],
        |r| Table {
            oid: r.must(1),
            qualified: r.must(2),
            relname: r.must(3),
            owner: r.must(4),
            tenant_column: r.get(5),
            row_security: r.must(6),
        },
    )
}

/// The tables of schema `schema` that hold rows: plain and partitioned
/// tables, not their partitions.
fn schema_tables(schema: &str) -> Vec<Table> {
    db::query(
        "SELECT c.oid, pg_catalog.format('%I.%I', n.nspname, c.relname), c.relname::text, c.relowner, c.relrowsecurity
           FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
          WHERE n.nspname OPERATOR(pg_catalog.=) $1 AND c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::\"char\"[])
            AND NOT c.relispartition
          ORDER BY c.relname",
        Mode::Write,
        &[schema.into()],
        |r| Table {
            oid: r.must(1),
            qualified: r.must(2),
            relname: r.must(3),
            owner: r.must(4),
            tenant_column: None,
            row_security: r.must(5),
        },
    )
}

/// Whether the tenant has a row in `t`: read as the table's owner, whom
/// row-level security does not filter here (no user code runs in a SELECT).
fn has_rows(t: &Table, tenant: pgrx::Uuid) -> bool {
    let sql = match &t.tenant_column {
        Some(c) => format!(
            "SELECT EXISTS (SELECT FROM {} WHERE {} OPERATOR(pg_catalog.=) $1)",
            t.qualified,
            quote(c)
        ),
        None => format!("SELECT EXISTS (SELECT FROM {}) OR $1 IS NULL", t.qualified),
    };
    access::as_role(t.owner, Restrict::OperationNoForceRls, || {
        db::query_text(&sql, Mode::Write, &[tenant.into()], |r| r.must::<bool>(1))
            .into_iter()
            .next()
            .unwrap_or(false)
    })
}

/// `tables` in an order where every table comes after those it references
/// by a foreign key (references to itself aside): the order to insert in.
fn parents_first(
    tables: Vec<(Table, Table)>,
    key: impl Fn(&(Table, Table)) -> pg_sys::Oid,
) -> Vec<(Table, Table)> {
    let oids: Vec<pg_sys::Oid> = tables.iter().map(&key).collect();
    let edges = references::among(&oids, Mode::Write);
    references::parents_first(tables, key, &edges)
}

fn unsupported_table(message: String, hint: &str) -> ! {
    errors::unsupported(message).hint(hint).raise()
}

// ---------------------------------------------------------------------------
// Copying.

/// Runs a statement and returns how many rows it processed.
fn execute_counted(sql: &str, args: &[DatumWithOid]) -> i64 {
    let text = std::ffi::CString::new(sql)
        .unwrap_or_else(|_| errors::invalid("SQL text must not contain NUL bytes").raise());
    Spi::connect(|_client| unsafe {
        let mut types: Vec<pg_sys::Oid> = args.iter().map(|a| a.oid()).collect();
        let (mut values, nulls) = db::spi_args(args);
        let rc = pg_sys::SPI_execute_with_args(
            text.as_ptr(),
            args.len() as i32,
            types.as_mut_ptr(),
            values.as_mut_ptr(),
            nulls.as_ptr(),
            false,
            0,
        );
        if rc < 0 {
            errors::internal(format!("SPI_execute_with_args failed ({rc})"));
        }
        pg_sys::SPI_processed as i64
    })
}

/// The columns to copy from `source` into `target`, by name: every column
/// of the source but `skip` (the tenant column), each of which the target
/// must have; the target's generated columns compute their own values.
/// A column the target lacks: 0A000 naming it.
/// With `keep_if_target_has`, `skip` is copied after all when the target
/// has a column of that name.
fn matched_columns(
    source: &Table,
    target: &Table,
    skip: Option<&str>,
    keep_if_target_has: bool,
) -> Vec<String> {
    let target_columns = columns(target.oid);
    let mut out = Vec::new();
    for c in columns(source.oid) {
        if skip == Some(c.name.as_str())
            && !(keep_if_target_has && target_columns.iter().any(|t| t.name == c.name))
        {
            continue;
        }
        match target_columns.iter().find(|t| t.name == c.name) {
            Some(t) if t.generated => {}
            Some(_) => out.push(c.name),
            None => errors::unsupported(format!(
                "column \"{}\" of {} has no counterpart in {}",
                errors::shown(&c.name),
                source.qualified,
                target.qualified
            ))
            .hint("Add the column to the other table (a migration for the tenant schemas, ALTER TABLE for the shared one), then move the tenant.")
            .raise(),
        }
    }
    out
}

/// Whether `reader` reads every row of `source` in a security-restricted
/// operation without forced row-level security: a superuser, a role with
/// BYPASSRLS, the owner, or a table without row-level security.
fn reads_unfiltered(reader: pg_sys::Oid, source: &Table) -> bool {
    unsafe {
        pg_sys::superuser_arg(reader)
            || pg_sys::has_bypassrls_privilege(reader)
            || pg_sys::has_privs_of_role(reader, source.owner)
            || !source.row_security
    }
}

/// Grants `role` what reading `source` in `schema` takes (USAGE on the
/// schema, SELECT on the table), what it lacks of it; returns the GRANT
/// statements run, for the caller to revoke.
fn lend_table(role: pg_sys::Oid, source: &Table, schema: &str) -> String {
    let (usage, select) = db::query_one(
        "SELECT pg_catalog.has_schema_privilege($1, $2, 'USAGE'), pg_catalog.has_table_privilege($1, $3, 'SELECT')",
        Mode::Write,
        &[role.into(), schema.into(), source.oid.into()],
        |r| (r.must::<bool>(1), r.must::<bool>(2)),
    )
    .unwrap_or((false, false));
    let grantee = quote(&access::role_name(role));
    let mut sql = String::new();
    if !usage {
        sql.push_str(&format!(
            "GRANT USAGE ON SCHEMA {} TO {grantee};",
            quote(schema)
        ));
    }
    if !select {
        sql.push_str(&format!(
            "GRANT SELECT ON TABLE {} TO {grantee};",
            source.qualified
        ));
    }
    if !sql.is_empty() {
        db::execute_dynamic(&sql);
    }
    sql
}

fn may_select(role: pg_sys::Oid, table: pg_sys::Oid) -> bool {
    db::query_one(
        "SELECT pg_catalog.has_table_privilege($1, $2, 'SELECT')",
        Mode::Write,
        &[role.into(), table.into()],
        |r| r.must::<bool>(1),
    )
    .unwrap_or(false)
}

/// The sequences behind the target's columns that are copied: identity,
/// serial (OWNED BY) and any sequence a column default calls, with the
/// sequence's increment.  Integer columns only.
fn sequences(target: &Table, copied: &[String]) -> Vec<(String, pg_sys::Oid, i64)> {
    db::query(
        "SELECT a.attname::text, s.seqrelid, s.seqincrement
           FROM pg_catalog.pg_attribute a,
                LATERAL (SELECT d.objid AS seq FROM pg_catalog.pg_depend d
                          WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                            AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                            AND d.refobjid OPERATOR(pg_catalog.=) a.attrelid AND d.refobjsubid OPERATOR(pg_catalog.=) a.attnum
                            AND d.deptype OPERATOR(pg_catalog.=) ANY ('{a,i}'::\"char\"[])
                         UNION
                         SELECT d.refobjid FROM pg_catalog.pg_attrdef ad JOIN pg_catalog.pg_depend d
                             ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_attrdef'::pg_catalog.regclass
                            AND d.objid OPERATOR(pg_catalog.=) ad.oid
                            AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                          WHERE ad.adrelid OPERATOR(pg_catalog.=) a.attrelid AND ad.adnum OPERATOR(pg_catalog.=) a.attnum) q
           JOIN pg_catalog.pg_sequence s ON s.seqrelid OPERATOR(pg_catalog.=) q.seq
          WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
            AND a.atttypid OPERATOR(pg_catalog.=) ANY ('{int2,int4,int8}'::pg_catalog.regtype[]::pg_catalog.oid[])
            AND a.attname OPERATOR(pg_catalog.=) ANY ($2::text[])
          ORDER BY 1, 2",
        Mode::Write,
        &[target.oid.into(), copied.to_vec().into()],
        |r| (r.must::<String>(1), r.must::<pg_sys::Oid>(2), r.must::<i64>(3)),
    )
}

/// Makes each sequence of `target`'s copied columns hand out values past
/// those copied (the tenant's rows of a shared table, or the whole table of
/// the new schema).  A sequence of the new schema is set (nobody else uses
/// it yet); a shared one is only ever moved forward, by drawing values, so
/// a concurrent nextval of another tenant is never handed a value twice.
fn sequences_past(target: &Table, copied: &[String], tenant: pgrx::Uuid, shared: bool) {
    for (column, seq, increment) in sequences(target, copied) {
        let agg = if increment > 0 { "max" } else { "min" };
        let filter = match (&target.tenant_column, shared) {
            (Some(c), true) => format!(" WHERE {} OPERATOR(pg_catalog.=) $1", quote(c)),
            _ => " WHERE $1 IS NOT NULL".to_string(),
        };
        let sql = format!(
            "SELECT pg_catalog.{agg}({})::bigint FROM {}{filter}",
            quote(&column),
            target.qualified
        );
        let edge = access::as_role(target.owner, Restrict::OperationNoForceRls, || {
            db::query_text(&sql, Mode::Write, &[tenant.into()], |r| r.get::<i64>(1))
                .into_iter()
                .next()
                .flatten()
        });
        let Some(edge) = edge else { continue };
        advance(seq, increment, edge, shared);
    }
}

/// The sequence's next value, from its own relation (pg_sequences shows
/// NULL before the first nextval).
fn next_value(seq: pg_sys::Oid, increment: i64) -> i64 {
    let sql = format!(
        "SELECT CASE WHEN s.is_called THEN s.last_value OPERATOR(pg_catalog.+) $1 ELSE s.last_value END FROM {} s",
        regclass_text(seq)
    );
    db::query_text(&sql, Mode::Write, &[increment.into()], |r| r.must::<i64>(1))
        .into_iter()
        .next()
        .unwrap_or(0)
}

fn regclass_text(oid: pg_sys::Oid) -> String {
    db::query_one(
        "SELECT $1::pg_catalog.oid::pg_catalog.regclass::text",
        Mode::Write,
        &[oid.into()],
        |r| r.must::<String>(1),
    )
    .unwrap_or_else(|| errors::internal(format!("relation {} vanished", oid.to_u32())))
}

fn advance(seq: pg_sys::Oid, increment: i64, edge: i64, shared: bool) {
    let behind = |next: i64| {
        if increment > 0 {
            next <= edge
        } else {
            next >= edge
        }
    };
    let next = next_value(seq, increment);
    if !behind(next) {
        return;
    }
    if !shared {
        db::query(
            "SELECT pg_catalog.setval($1::pg_catalog.oid::pg_catalog.regclass, $2)",
            Mode::Write,
            &[seq.into(), edge.into()],
            |_| (),
        );
        return;
    }
    // Draw what separates the sequence from the edge; a concurrent nextval
    // only shortens the way.
    loop {
        let steps =
            ((edge as i128 - next_value(seq, increment) as i128) / increment as i128 + 1).max(1);
        db::query(
            "SELECT pg_catalog.max(pg_catalog.nextval($1::pg_catalog.oid::pg_catalog.regclass))
               FROM pg_catalog.generate_series(1::bigint, $2)",
            Mode::Write,
            &[seq.into(), (steps as i64).into()],
            |_| (),
        );
        if !behind(next_value(seq, increment)) {
            return;
        }
    }
}

/// Refuses foreign keys from tables outside the move into the tables the
/// move empties or drops: a cascade or SET NULL would change rows the move
/// does not carry, and DROP SCHEMA … CASCADE would drop the key itself.
fn refuse_outside_references(emptied: &[pg_sys::Oid], inside: &[pg_sys::Oid], any_action: bool) {
    let found = db::query_one(
        "SELECT pg_catalog.format('foreign key %I of %s references %s', c.conname, c.conrelid::pg_catalog.regclass, c.confrelid::pg_catalog.regclass)
           FROM pg_catalog.pg_constraint c
          WHERE c.contype OPERATOR(pg_catalog.=) 'f' AND c.conparentid OPERATOR(pg_catalog.=) 0
            AND c.confrelid OPERATOR(pg_catalog.=) ANY ($1) AND NOT (c.conrelid OPERATOR(pg_catalog.=) ANY ($2))
            AND ($3 OR c.confdeltype OPERATOR(pg_catalog.=) ANY ('{c,n,d}'::\"char\"[]))
          ORDER BY 1 LIMIT 1",
        Mode::Write,
        &[emptied.to_vec().into(), inside.to_vec().into(), any_action.into()],
        |r| r.must::<String>(1),
    );
    if let Some(what) = found {
        errors::unsupported(format!("cannot move the tenant: {what}"))
            .detail("The referencing table's rows are not the tenant's data that move_tenant carries.")
            .hint("Register the referencing table with enable_rls (and give the tenant schemas the same table), or drop the foreign key.")
            .raise();
    }
}

// ---------------------------------------------------------------------------
// The function.

/// Move a tenant between `'rls'` and `'schema'` isolation, with all its
/// rows, in the caller's transaction (SPEC §9).  Returns the tenant's row.
#[pg_extern(volatile, security_definer, requires = ["isolation_catalog"])]
#[search_path(pg_catalog, pg_temp)]
fn move_tenant(
    id: Option<pgrx::Uuid>,
    isolation: Option<isolation>,
) -> pgrx::composite_type!('static, "tenants") {
    let id = required(id, "id");
    let to = required(isolation, "isolation");
    // Everything that refuses the call is checked before the wait for the
    // tenant's requests, and again once nothing can change under us.
    let seen = tenants::find_by_id(id, Mode::Write)
        .unwrap_or_else(|| errors::tenant_not_found(id).raise());
    check_movable(&seen, to);
    if seen.isolation == to.as_str() {
        return seen.row;
    }
    placement::take_exclusive(id);
    let t = tenants::lock(id);
    check_movable(&t, to);
    if t.isolation == to.as_str() {
        return t.row;
    }
    if crate::citus::nodes::in_database() {
        errors::unsupported("move_tenant is not available on a Citus cluster yet")
            .detail("A schema tenant's tables are single-shard tables of a distributed schema there; moving them is not implemented.")
            .raise();
    }
    let (moved, details) = match to {
        isolation::schema => to_schema(&t),
        _ => to_rls(&t),
    };
    audit::record_one(Event::new(t.id, &t.identifier, "move", details));
    moved.row
}

fn check_movable(t: &Tenant, to: isolation) {
    if t.isolation == "database" || to == isolation::database {
        errors::unsupported(format!(
            "tenant \"{}\" cannot be moved {} database isolation",
            t.identifier,
            if t.isolation == "database" { "out of" } else { "into" }
        ))
        .detail("Moving a tenant's data between databases needs a connection to the other database (dblink) and gives up the single transaction.")
        .hint("Export the tenant and import it in the other database.")
        .raise();
    }
    if t.status != "active" && t.status != "suspended" {
        errors::wrong_state(format!(
            "tenant \"{}\" is {}: only an active or suspended tenant can be moved",
            t.identifier, t.status
        ))
        .raise();
    }
}

/// Sets the tenant's isolation and schema in its catalog row.
fn set_placement(t: &Tenant, to: &str, schema: Option<&str>) -> Tenant {
    crate::catalog::changed();
    db::query_one(
        concat!(
            "UPDATE tenancy.tenants AS t
                SET isolation = $2::tenancy.isolation, schema_name = $3,
                    updated_at = GREATEST(pg_catalog.now(), t.created_at)
              WHERE t.id OPERATOR(pg_catalog.=) $1
          RETURNING ",
            tenant_cols!()
        ),
        Mode::Write,
        &[t.id.into(), to.into(), schema.into()],
        Tenant::from_row,
    )
    .unwrap_or_else(|| errors::tenant_not_found(t.id).raise())
}

/// rls -> schema.
fn to_schema(t: &Tenant) -> (Tenant, Value) {
    let schema = validate::tenant_object_name(&settings::schema_prefix(), &t.identifier)
        .unwrap_or_else(|| {
            errors::invalid(format!(
                "tenant identifier \"{}\" is too long for a schema name: \"{}\" plus the identifier exceeds 63 bytes",
                t.identifier,
                settings::schema_prefix()
            ))
            .hint("Choose a shorter tenancy.schema_prefix for the move.")
            .raise()
        });
    provision::check_available(isolation::schema, Some(&schema), None);
    let shared = shared_tables();
    let sources: Vec<Table> = shared
        .iter()
        .filter(|s| has_rows(s, t.id))
        .cloned()
        .collect();
    let all_shared: Vec<pg_sys::Oid> = shared.iter().map(|s| s.oid).collect();
    refuse_outside_references(
        &sources.iter().map(|s| s.oid).collect::<Vec<_>>(),
        &all_shared,
        false,
    );
    // Two shared tables of the same name would land in one table.
    for (i, a) in sources.iter().enumerate() {
        if let Some(b) = sources[i + 1..].iter().find(|b| b.relname == a.relname) {
            unsupported_table(
                format!("tables {} and {} both hold rows of the tenant and would go to the same table of its schema", a.qualified, b.qualified),
                "A tenant schema has one table per name; rename one of the shared tables.",
            );
        }
    }

    let moved = set_placement(t, "schema", Some(&schema));
    let provisioned = provision::provision(&moved, false).unwrap_or_else(|| json!({}));

    let made = schema_tables(&schema);
    let mut pairs = Vec::new();
    for source in sources {
        let target = made
            .iter()
            .find(|s| s.relname == source.relname)
            .cloned()
            .unwrap_or_else(|| {
                unsupported_table(
                    format!(
                        "table {} has no counterpart in the tenant's schema: the migrations create no table {}",
                        source.qualified,
                        quote(&source.relname)
                    ),
                    "Register a migration that creates the table for schema tenants, then move the tenant.",
                )
            });
        pairs.push((source, target));
    }
    // Insert parents first; delete children first.
    let pairs = parents_first(pairs, |(_, target)| target.oid);
    let mut plans = Vec::new();
    for (source, target) in &pairs {
        let tenant_column = source.tenant_column.clone().unwrap_or_default();
        // The tenant column is dropped unless the target has one.
        let copied = matched_columns(source, target, Some(&tenant_column), true);
        if !reads_unfiltered(target.owner, source) || !may_select(target.owner, source.oid) {
            unsupported_table(
                format!(
                    "{} is owned by role {}, which cannot read {}",
                    target.qualified,
                    quote(&access::role_name(target.owner)),
                    source.qualified
                ),
                "tenancy copies rows as the owner of the table they go to; let the schema's owner own the tables its migrations create.",
            );
        }
        plans.push((source.clone(), target.clone(), tenant_column, copied));
    }
    let mut rows = Map::new();
    let mut counts = HashMap::new();
    for (source, target, tenant_column, copied) in &plans {
        let list = copied
            .iter()
            .map(|c| quote(c))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO {} ({list}) OVERRIDING SYSTEM VALUE SELECT {list} FROM {} WHERE {} OPERATOR(pg_catalog.=) $1",
            target.qualified,
            source.qualified,
            quote(tenant_column)
        );
        let n = access::as_role(target.owner, Restrict::OperationNoForceRls, || {
            execute_counted(&sql, &[t.id.into()])
        });
        counts.insert(source.oid, n);
        rows.insert(source.qualified.clone(), json!(n));
    }
    let source_order: Vec<(Table, Table)> = plans
        .iter()
        .map(|(s, t, _, _)| (s.clone(), t.clone()))
        .collect();
    for (source, _) in parents_first(source_order, |(source, _)| source.oid)
        .iter()
        .rev()
    {
        let sql = format!(
            "DELETE FROM {} WHERE {} OPERATOR(pg_catalog.=) $1",
            source.qualified,
            quote(source.tenant_column.as_deref().unwrap_or_default())
        );
        let n = access::as_role(source.owner, Restrict::OperationNoForceRls, || {
            execute_counted(&sql, &[t.id.into()])
        });
        let copied = counts.get(&source.oid).copied().unwrap_or(0);
        if n != copied {
            changed_under_us(t, source, copied, n);
        }
    }
    for (_, target, _, copied) in &plans {
        sequences_past(target, copied, t.id, false);
    }
    let mut details = json!({"from": "rls", "to": "schema", "schema_name": schema, "rows": rows});
    if let Some(applied) = provisioned.get("migrations") {
        details["migrations"] = applied.clone();
    }
    (moved, details)
}

/// A writer that bypasses the tenant context (a superuser, a role with
/// BYPASSRLS) changed the tenant's rows between the copy and the delete.
fn changed_under_us(t: &Tenant, table: &Table, copied: i64, deleted: i64) -> ! {
    TenancyError::new(
        pgrx::PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE,
        format!(
            "rows of tenant \"{}\" in {} changed during the move: {copied} copied, {deleted} to delete",
            t.identifier, table.qualified
        ),
    )
    .detail("A session that bypasses row-level security wrote the tenant's rows while it was being moved.")
    .hint("Retry the move.")
    .raise()
}

/// schema -> rls.
fn to_rls(t: &Tenant) -> (Tenant, Value) {
    let schema = t.schema_name.clone().unwrap_or_default();
    let tables = schema_tables(&schema);
    // Requests that reach the schema's tables without a tenancy call (a
    // session-level context; these tables have no policy) wait from here.
    if !tables.is_empty() {
        let list = tables
            .iter()
            .map(|s| s.qualified.clone())
            .collect::<Vec<_>>()
            .join(", ");
        db::execute_dynamic(&format!("LOCK TABLE {list} IN ACCESS EXCLUSIVE MODE"));
    }
    let inside = db::query(
        "SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
          WHERE n.nspname OPERATOR(pg_catalog.=) $1",
        Mode::Write,
        &[schema.as_str().into()],
        |r| r.must::<pg_sys::Oid>(1),
    );
    refuse_outside_references(&inside, &inside, true);
    let shared = shared_tables();
    let mut pairs = Vec::new();
    for source in tables.into_iter().filter(|s| has_rows(s, t.id)) {
        let mut named = shared.iter().filter(|s| s.relname == source.relname);
        let target = named.next().cloned().unwrap_or_else(|| {
            unsupported_table(
                format!(
                    "table {} has no counterpart among the shared tables: no table registered with enable_rls is named {}",
                    source.qualified,
                    quote(&source.relname)
                ),
                "Create the shared table with a tenant column and register it with tenancy.enable_rls, then move the tenant.",
            )
        });
        if let Some(other) = named.next() {
            unsupported_table(
                format!(
                    "table {} has two counterparts among the shared tables: {} and {}",
                    source.qualified, target.qualified, other.qualified
                ),
                "Rename one of the shared tables.",
            );
        }
        pairs.push((source, target));
    }
    let pairs = parents_first(pairs, |(_, target)| target.oid);
    let mut plans = Vec::new();
    for (source, target) in &pairs {
        let tenant_column = target.tenant_column.clone().unwrap_or_default();
        let copied = matched_columns(source, target, Some(&tenant_column), false);
        if !reads_unfiltered(target.owner, source) {
            unsupported_table(
                format!(
                    "{} has row-level security, which would hide rows from role {}, the owner of {}",
                    source.qualified,
                    quote(&access::role_name(target.owner)),
                    target.qualified
                ),
                "Disable row-level security on the tenant's table, then move the tenant.",
            );
        }
        plans.push((source.clone(), target.clone(), tenant_column, copied));
    }
    let mut rows = Map::new();
    for (source, target, tenant_column, copied) in &plans {
        // The shared table's owner writes it (its triggers run as that
        // owner) and so must read the tenant's table: granted for this one
        // statement, inside this transaction, which no other session sees.
        let grants = lend_table(target.owner, source, &schema);
        let list = copied
            .iter()
            .map(|c| quote(c))
            .collect::<Vec<_>>()
            .join(", ");
        let sep = if list.is_empty() { "" } else { ", " };
        let sql = format!(
            "INSERT INTO {} ({}{sep}{list}) OVERRIDING SYSTEM VALUE SELECT $1{sep}{list} FROM {}",
            target.qualified,
            quote(tenant_column),
            source.qualified
        );
        let n = access::as_role(target.owner, Restrict::OperationNoForceRls, || {
            execute_counted(&sql, &[t.id.into()])
        });
        if !grants.is_empty() {
            db::execute_dynamic(
                &grants
                    .replace("GRANT ", "REVOKE ")
                    .replace(" TO ", " FROM "),
            );
        }
        rows.insert(target.qualified.clone(), json!(n));
    }
    for (_, target, _, copied) in &plans {
        sequences_past(target, copied, t.id, true);
    }
    // The catalog row first: the guard on tenant schemas refuses to drop
    // the schema of a tenant that still names it.
    let moved = set_placement(t, "rls", None);
    provision::drop_schema(t);
    // The ledger described the schema: a later move back applies every migration.
    db::execute(
        "DELETE FROM tenancy.migration_ledger l WHERE l.tenant_id OPERATOR(pg_catalog.=) $1",
        &[t.id.into()],
    );
    if crate::catalog::direct::has_relation(c"migration_skips") {
        db::execute(
            "DELETE FROM tenancy.migration_skips s WHERE s.tenant_id OPERATOR(pg_catalog.=) $1",
            &[t.id.into()],
        );
    }
    (
        moved,
        json!({"from": "schema", "to": "rls", "schema_name": schema, "rows": rows}),
    )
}
