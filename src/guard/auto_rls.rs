//! `tenancy.auto_rls` (SPEC §11): an event trigger at the end of CREATE
//! TABLE (also `PARTITION OF`), CREATE TABLE AS, SELECT INTO and ALTER TABLE
//! (ADD COLUMN, RENAME COLUMN, ALTER COLUMN … TYPE, ATTACH PARTITION, SET
//! SCHEMA) that isolates each table the command left with a uuid tenant
//! column by calling `enable_rls`, in the same transaction.
//!
//! It runs as the role that ran the DDL (PostgreSQL runs event triggers so),
//! and so does `enable_rls`: only what that role may do to the table is
//! done, and that role owns a table it just created.  When `enable_rls`
//! fails, the DDL fails with it: with the setting on, no table with a tenant
//! column is left unisolated.  Only the lookups of tenancy's registries
//! (which the role may not read) run as the extension owner, restricted.

use std::cell::Cell;

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::base::db::{self, Mode};
use crate::base::errors;
use crate::base::sqltypes::{Name, RegClass};

thread_local! {
    // enable_rls runs ALTER TABLE, which ends in this event trigger again.
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
}

/// Clears ACTIVE however the registering ends (a PostgreSQL error unwinds
/// through it as a Rust panic).
struct Active;

impl Drop for Active {
    fn drop(&mut self) {
        ACTIVE.with(|a| a.set(false));
    }
}

/// A table the command left with a tenant column, not registered yet.
struct Found {
    table: pg_sys::Oid,
    name: String,
    column: String,
    type_name: String,
    is_uuid: bool,
}

/// The event trigger's function (`RETURNS event_trigger` in
/// sql/doctor.sql; PostgreSQL calls it only as an event trigger, and the
/// statement below fails anywhere else).
#[pg_extern(sql = false)]
fn auto_rls() {
    if !crate::base::settings::auto_rls() || ACTIVE.with(|a| a.get()) {
        return;
    }
    ACTIVE.with(|a| a.set(true));
    let _active = Active;
    let column = crate::base::settings::tenant_column();
    // The tables the command named and their partitions (ATTACH PARTITION
    // names the parent).  The tenant column of a partition or child of a
    // registered table is the parent's (its policy must match); elsewhere
    // the one tenancy.tenant_column names.  Not: another schema's or
    // another session's temporary table, tables of extensions, of schema
    // tenancy, of a tenant's schema (its schema isolates it) or of a system
    // schema.
    let found = crate::base::security::as_owner(|| {
        db::query(
            "WITH named AS (
                 SELECT DISTINCT d.objid AS oid FROM pg_catalog.pg_event_trigger_ddl_commands() d
                  WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass AND NOT d.in_extension),
             tables AS (
                 SELECT named.oid FROM named
                 UNION
                 SELECT i.inhrelid FROM named JOIN pg_catalog.pg_inherits i ON i.inhparent OPERATOR(pg_catalog.=) named.oid)
             SELECT c.oid, pg_catalog.format('%I.%I', n.nspname, c.relname), a.attname::text,
                    pg_catalog.format_type(a.atttypid, a.atttypmod),
                    a.atttypid OPERATOR(pg_catalog.=) 'pg_catalog.uuid'::pg_catalog.regtype
               FROM tables t
               JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.oid
               JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
               CROSS JOIN LATERAL (
                   SELECT COALESCE((SELECT r.tenant_column FROM pg_catalog.pg_inherits i
                                      JOIN tenancy.rls_tables r ON r.tbl::pg_catalog.oid OPERATOR(pg_catalog.=) i.inhparent
                                     WHERE i.inhrelid OPERATOR(pg_catalog.=) c.oid LIMIT 1),
                                   $1::pg_catalog.name) AS name) tc
               JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) c.oid AND a.attname OPERATOR(pg_catalog.=) tc.name
                                             AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
              WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::\"char\"[])
                AND c.relpersistence OPERATOR(pg_catalog.<>) 't'
                AND n.nspname OPERATOR(pg_catalog.<>) ALL ('{tenancy,pg_catalog,information_schema,pg_toast}'::pg_catalog.name[])
                AND NOT n.nspname::text OPERATOR(pg_catalog.~~) 'pg\\_%'
                AND NOT EXISTS (SELECT FROM tenancy.tenants tt WHERE tt.schema_name OPERATOR(pg_catalog.=) n.nspname)
                AND NOT EXISTS (SELECT FROM tenancy.rls_tables r WHERE r.tbl::pg_catalog.oid OPERATOR(pg_catalog.=) c.oid)
                AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
                                 WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
                                   AND d.objid OPERATOR(pg_catalog.=) c.oid AND d.deptype OPERATOR(pg_catalog.=) 'e')
              ORDER BY 2",
            Mode::Write,
            &[column.as_str().into()],
            |r| Found {
                table: r.must(1),
                name: r.must(2),
                column: r.must(3),
                type_name: r.must(4),
                is_uuid: r.must(5),
            },
        )
    });
    for f in found {
        if !f.is_uuid {
            errors::warning(format!(
                "table \"{}\" is not isolated: its column \"{}\" is of type {}, not uuid",
                errors::shown(&f.name),
                errors::shown(&f.column),
                errors::shown(&f.type_name)
            ))
            .detail("tenancy.auto_rls registers tables whose tenant column holds tenancy.tenants.id as uuid.")
            .hint("Make the column uuid, or isolate the table some other way.")
            .warn();
            continue;
        }
        crate::isolation::rls::enable_rls(Some(RegClass(f.table)), Some(Name(f.column.clone())));
        errors::notice(format!(
            "table \"{}\" is isolated by tenant column \"{}\" (tenancy.auto_rls)",
            errors::shown(&f.name),
            errors::shown(&f.column)
        ))
        .tell();
    }
}
