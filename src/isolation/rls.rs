//! Row-level security isolation (SPEC §4 "RLS"): shared tables with a tenant
//! column, filtered by one policy on `(SELECT tenancy.current_tenant_id())`.
//!
//! `enable_rls` and `disable_rls` run as the caller, so only a table's owner
//! (or a superuser) can change its security; the registry row is written with
//! the extension owner's rights.  Deleting a tenant's rows runs as each
//! table's owner, so the table's triggers and rules never run with more
//! rights than their owner has.

use pgrx::prelude::*;
use pgrx::PgSqlErrorCode as Code;

use crate::base::db::{self, Mode};
use crate::base::errors::{self, required, TenancyError};
use crate::base::sqltypes::{Name, RegClass};

/// The policy every isolated table gets.
pub const POLICY: &str = "tenancy_isolation";

struct Table {
    qualified: String,
    kind: String,
    temporary: bool,
}

fn describe(tbl: RegClass) -> Table {
    db::query_one(
        "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname), c.relkind::text,
                c.relpersistence OPERATOR(pg_catalog.=) 't'
           FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
          WHERE c.oid OPERATOR(pg_catalog.=) $1",
        Mode::Write,
        &[tbl.0.into()],
        |r| Table { qualified: r.must(1), kind: r.must(2), temporary: r.must(3) },
    )
    .unwrap_or_else(|| errors::invalid(format!("relation with OID {} does not exist", tbl.0.to_u32())).raise())
}

fn policy_exists(tbl: RegClass) -> bool {
    db::query_one(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_policy p
                         WHERE p.polrelid OPERATOR(pg_catalog.=) $1 AND p.polname OPERATOR(pg_catalog.=) $2)",
        Mode::Write,
        &[tbl.0.into(), POLICY.into()],
        |r| r.must::<bool>(1),
    )
    .unwrap_or(false)
}

fn quote(ident: &str) -> String {
    pgrx::spi::quote_identifier(ident)
}

/// Isolate `tbl` by tenant: check the column is uuid, default it to the
/// current tenant, ENABLE and FORCE row level security, create the policy,
/// make sure an index leads with the column, and record the table.
/// Idempotent: calling it again leaves the same state.
#[pg_extern(volatile, requires = ["isolation_catalog"])]
pub fn enable_rls(tbl: Option<RegClass>, tenant_column: default!(Option<Name>, "'tenant_id'")) {
    let tbl = required(tbl, "tbl");
    let column = required(tenant_column, "tenant_column").0;
    let table = describe(tbl);
    if table.kind != "r" && table.kind != "p" {
        TenancyError::new(
            Code::ERRCODE_WRONG_OBJECT_TYPE,
            format!("\"{}\" is not a table", table.qualified),
        )
        .raise();
    }
    // A temporary table is its session's alone, and its registration would
    // outlive it (no event fires when a session's temporary tables go).
    if table.temporary {
        errors::unsupported(format!(
            "\"{}\" is a temporary table; tenancy isolates only permanent tables",
            table.qualified
        ))
        .hint("Create the shared table without TEMPORARY.")
        .raise();
    }
    let found = db::query_one(
        "SELECT a.attnum, pg_catalog.format_type(a.atttypid, a.atttypmod), a.atttypid OPERATOR(pg_catalog.=) 'pg_catalog.uuid'::pg_catalog.regtype
           FROM pg_catalog.pg_attribute a
          WHERE a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attname OPERATOR(pg_catalog.=) $2
            AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped",
        Mode::Write,
        &[tbl.0.into(), column.as_str().into()],
        |r| (r.must::<i16>(1), r.must::<String>(2), r.must::<bool>(3)),
    );
    let Some((attnum, type_name, is_uuid)) = found else {
        TenancyError::new(
            Code::ERRCODE_UNDEFINED_COLUMN,
            format!(
                "column \"{column}\" of relation \"{}\" does not exist",
                table.qualified
            ),
        )
        .hint("Add a uuid column for the tenant, or name it with the tenant_column argument.")
        .raise()
    };
    if !is_uuid {
        TenancyError::new(
            Code::ERRCODE_DATATYPE_MISMATCH,
            format!(
                "column \"{column}\" of relation \"{}\" is of type {type_name}, not uuid",
                table.qualified
            ),
        )
        .hint("The tenant column holds tenancy.tenants.id values and must be of type uuid.")
        .raise();
    }

    let (t, c, p) = (&table.qualified, quote(&column), quote(POLICY));
    // The sub-select makes PostgreSQL check the context once per statement
    // (an InitPlan); Citus refuses sub-selects in the policies of
    // distributed tables, so with Citus the policy calls the function itself
    // (it is STABLE, and its answer is memoized within the statement).
    let check = if crate::citus::loaded() {
        format!("{c} OPERATOR(pg_catalog.=) tenancy.current_tenant_id()")
    } else {
        format!("{c} OPERATOR(pg_catalog.=) (SELECT tenancy.current_tenant_id())")
    };
    if policy_exists(tbl) {
        db::execute_dynamic(&format!("DROP POLICY {p} ON {t}"));
    }
    crate::citus::alter_column_default(
        tbl.0,
        &format!("ALTER TABLE {t} ALTER COLUMN {c} SET DEFAULT tenancy.current_tenant_id()"),
    );
    // One statement per call: Citus sends a distributed table's DDL to the
    // shards as the whole query string, which may hold one command only.
    db::execute_dynamic(&format!("ALTER TABLE {t} ENABLE ROW LEVEL SECURITY"));
    db::execute_dynamic(&format!("ALTER TABLE {t} FORCE ROW LEVEL SECURITY"));
    db::execute_dynamic(&format!(
        "CREATE POLICY {p} ON {t} AS PERMISSIVE FOR ALL USING ({check}) WITH CHECK ({check})"
    ));
    let indexed = db::query_one(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_index i
                         WHERE i.indrelid OPERATOR(pg_catalog.=) $1
                           AND i.indkey[0] OPERATOR(pg_catalog.=) $2 AND i.indpred IS NULL)",
        Mode::Write,
        &[tbl.0.into(), attnum.into()],
        |r| r.must::<bool>(1),
    )
    .unwrap_or(false);
    if !indexed {
        // CREATE INDEX needs CREATE on the table's schema, which an owner of
        // a table in someone else's schema (public on PostgreSQL 15 and
        // later) may lack: then the policy still holds, and the index is the
        // caller's to make.
        let create = format!("CREATE INDEX ON {t} ({c})");
        if may_create_in_schema(tbl) {
            db::execute_dynamic(&create);
        } else {
            errors::warning(format!(
                "no index of \"{}\" leads with \"{column}\", and this role may not create one in its schema",
                table.qualified
            ))
            .detail("Without one, every statement reads the whole table to find the tenant's rows.")
            .hint(format!("Ask the schema's owner to run: {create};"))
            .warn();
        }
    }
    crate::base::security::as_owner(|| {
        db::execute(
            "INSERT INTO tenancy.rls_tables (tbl, tenant_column, policy_name) VALUES ($1::pg_catalog.oid::pg_catalog.regclass, $2, $3)
             ON CONFLICT (tbl) DO UPDATE SET tenant_column = EXCLUDED.tenant_column, policy_name = EXCLUDED.policy_name",
            &[tbl.0.into(), column.as_str().into(), POLICY.into()],
        );
    });
    warn_side_channels(tbl, &table.qualified, &column, attnum);
}

/// Whether the calling role has CREATE on the table's schema (CREATE INDEX
/// asks for it).
fn may_create_in_schema(tbl: RegClass) -> bool {
    db::query_one(
        "SELECT pg_catalog.has_schema_privilege(c.relnamespace, 'CREATE') FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) $1",
        Mode::Write,
        &[tbl.0.into()],
        |r| r.must::<bool>(1),
    )
    .unwrap_or(false)
}

/// WARNING for every index of the table that does not lead with the tenant
/// column, and every foreign key into an isolated table (this one or
/// another in `tenancy.rls_tables`) whose key leaves out that table's tenant
/// column: PostgreSQL applies their checks before, or without, the policy,
/// so they tell one tenant about another's rows (docs/security.md, "Known
/// side channels").
fn warn_side_channels(tbl: RegClass, qualified: &str, column: &str, attnum: i16) {
    let indexes = db::query(
        "SELECT ic.relname::text FROM pg_catalog.pg_index i
           JOIN pg_catalog.pg_class ic ON ic.oid OPERATOR(pg_catalog.=) i.indexrelid
          WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND i.indkey[0] OPERATOR(pg_catalog.<>) $2
          ORDER BY 1",
        Mode::Write,
        &[tbl.0.into(), attnum.into()],
        |r| r.must::<String>(1),
    );
    for index in indexes {
        errors::warning(format!(
            "index \"{}\" of table \"{qualified}\" does not lead with the tenant column \"{}\"",
            errors::shown(&index),
            errors::shown(column)
        ))
        .detail(
            "Its conditions run before the policy: a role that can read the table learns from EXPLAIN ANALYZE how many \
             of other tenants' rows fall in a range of it, and from a unique violation that another tenant holds a value.",
        )
        .hint(format!("Make the tenant column its first column: ({}, ...).", quote(column)))
        .warn();
    }
    // The registry is not the caller's to read: look it up as its owner.
    let keys = crate::base::security::as_owner(|| {
        db::query(
            "SELECT c.conname::text, pg_catalog.format('%I.%I', n.nspname, r.relname), ref.tenant_column::text,
                    pg_catalog.format('%s', c.confrelid::pg_catalog.regclass)
               FROM pg_catalog.pg_constraint c
               JOIN pg_catalog.pg_class r ON r.oid OPERATOR(pg_catalog.=) c.conrelid
               JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) r.relnamespace
               JOIN tenancy.rls_tables ref ON ref.tbl::pg_catalog.oid OPERATOR(pg_catalog.=) c.confrelid
               JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) c.confrelid
                                             AND a.attname OPERATOR(pg_catalog.=) ref.tenant_column
              WHERE c.contype OPERATOR(pg_catalog.=) 'f' AND c.conparentid OPERATOR(pg_catalog.=) 0
                AND (c.conrelid OPERATOR(pg_catalog.=) $1 OR c.confrelid OPERATOR(pg_catalog.=) $1)
                AND NOT (a.attnum OPERATOR(pg_catalog.=) ANY (c.confkey))
              ORDER BY 2, 1",
            Mode::Write,
            &[tbl.0.into()],
            |r| (r.must::<String>(1), r.must::<String>(2), r.must::<String>(3), r.must::<String>(4)),
        )
    });
    for (name, on, tenant_column, referenced) in keys {
        errors::warning(format!(
            "foreign key \"{}\" of table \"{on}\" does not include the tenant column \"{}\" of \"{referenced}\"",
            errors::shown(&name),
            errors::shown(&tenant_column)
        ))
        .detail(
            "Foreign key checks bypass row-level security: a reference tells a tenant whether another tenant's key exists, \
             locks that tenant's row, and a cascade crosses tenants.",
        )
        .hint(format!(
            "Reference the tenant column too: FOREIGN KEY ({tc}, ...) REFERENCES {referenced} ({tc}, ...), with a unique key on it.",
            tc = quote(&tenant_column)
        ))
        .warn();
    }
}

/// Undo `enable_rls`: drop the policy and the column default, turn row level
/// security off and forget the table.  The index stays.  A table that is not
/// isolated is left as it is.
#[pg_extern(volatile, requires = ["isolation_catalog"])]
fn disable_rls(tbl: Option<RegClass>) {
    let tbl = required(tbl, "tbl");
    let table = describe(tbl);
    let column = crate::base::security::as_owner(|| {
        db::query_one(
            "SELECT r.tenant_column::text FROM tenancy.rls_tables r WHERE r.tbl::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
            Mode::Write,
            &[tbl.0.into()],
            |r| r.must::<String>(1),
        )
    });
    let Some(column) = column else { return };
    let (t, c, p) = (&table.qualified, quote(&column), quote(POLICY));
    if policy_exists(tbl) {
        db::execute_dynamic(&format!("DROP POLICY {p} ON {t}"));
    }
    db::execute_dynamic(&format!("ALTER TABLE {t} NO FORCE ROW LEVEL SECURITY"));
    db::execute_dynamic(&format!("ALTER TABLE {t} DISABLE ROW LEVEL SECURITY"));
    crate::citus::alter_column_default(
        tbl.0,
        &format!("ALTER TABLE {t} ALTER COLUMN {c} DROP DEFAULT"),
    );
    crate::base::security::as_owner(|| {
        db::execute(
            "DELETE FROM tenancy.rls_tables r WHERE r.tbl::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
            &[tbl.0.into()],
        );
    });
}

/// Deletes the tenant's rows from every isolated table; returns how many.
/// Each table's DELETE runs as that table's owner, as a security-restricted
/// operation that row-level security does not filter (what PostgreSQL does
/// for an owner's maintenance commands): a trigger or rule on the table runs
/// with its owner's rights, never the extension owner's.
pub fn delete_tenant_rows(tenant: pgrx::Uuid) -> i64 {
    let tables = db::query(
        "SELECT c.oid, pg_catalog.format('%I.%I', n.nspname, c.relname), r.tenant_column::text, c.relowner
           FROM tenancy.rls_tables r
           JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) r.tbl::pg_catalog.oid
           JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
          WHERE c.relpersistence OPERATOR(pg_catalog.<>) 't'
          ORDER BY 2",
        Mode::Write,
        &[],
        |r| {
            (
                r.must::<pgrx::pg_sys::Oid>(1),
                r.must::<String>(2),
                r.must::<String>(3),
                r.must::<pgrx::pg_sys::Oid>(4),
            )
        },
    );
    // Referencing tables before the tables they reference: a foreign key
    // between two registered tables would refuse the parent's rows first.
    let oids: Vec<pgrx::pg_sys::Oid> = tables.iter().map(|t| t.0).collect();
    let edges = crate::isolation::references::among(&oids, Mode::Write);
    let mut ordered = crate::isolation::references::parents_first(tables, |t| t.0, &edges);
    ordered.reverse();
    let mut total = 0i64;
    for (_, table, column, owner) in ordered {
        let sql = format!(
            "WITH d AS (DELETE FROM {table} WHERE {} OPERATOR(pg_catalog.=) $1 RETURNING 1) SELECT pg_catalog.count(*) FROM d",
            quote(&column)
        );
        total += crate::base::security::as_role(
            owner,
            crate::base::security::Restrict::OperationNoForceRls,
            || {
                db::query_text(&sql, Mode::Write, &[tenant.into()], |r| r.must::<i64>(1))
                    .into_iter()
                    .sum::<i64>()
            },
        );
    }
    total
}
