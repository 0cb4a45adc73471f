//! The foreign keys among a set of a tenant's tables, and the order they
//! give: every table after the tables it references.  What the data
//! operations insert in (export, import, clone, move) and what destroy_data
//! deletes in, reversed.

use pgrx::pg_sys;

use crate::base::db::{self, Mode};

/// The foreign keys among `tables`, (referencing, referenced), a table's
/// references to itself included; one row per key of a partitioned table
/// (not its partitions' copies).
pub fn among(tables: &[pg_sys::Oid], mode: Mode) -> Vec<(pg_sys::Oid, pg_sys::Oid)> {
    if tables.is_empty() {
        return Vec::new();
    }
    db::query(
        "SELECT c.conrelid, c.confrelid FROM pg_catalog.pg_constraint c
          WHERE c.contype OPERATOR(pg_catalog.=) 'f' AND c.conparentid OPERATOR(pg_catalog.=) 0::pg_catalog.oid
            AND c.conrelid OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.oid[])
            AND c.confrelid OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.oid[])",
        mode,
        &[tables.to_vec().into()],
        |r| (r.must::<pg_sys::Oid>(1), r.must::<pg_sys::Oid>(2)),
    )
}

/// `items` (in name order) ordered so that each comes after every item it
/// references by `edges` (a reference to itself is no constraint: PostgreSQL
/// checks it at the end of the statement); ties, and the items of a cycle,
/// in the order given (PostgreSQL then says which key fails).
pub fn parents_first<T>(
    items: Vec<T>,
    oid: impl Fn(&T) -> pg_sys::Oid,
    edges: &[(pg_sys::Oid, pg_sys::Oid)],
) -> Vec<T> {
    let mut waiting: Vec<Option<T>> = items.into_iter().map(Some).collect();
    let mut placed: Vec<pg_sys::Oid> = Vec::with_capacity(waiting.len());
    let mut out = Vec::with_capacity(waiting.len());
    loop {
        let ready = waiting.iter().position(|t| {
            t.as_ref().is_some_and(|t| {
                let me = oid(t);
                edges
                    .iter()
                    .filter(|(from, to)| *from == me && *to != me)
                    .all(|(_, to)| placed.contains(to))
            })
        });
        let Some(i) = ready.or_else(|| waiting.iter().position(Option::is_some)) else {
            break;
        };
        let t = waiting[i].take().expect("position found an item");
        placed.push(oid(&t));
        out.push(t);
    }
    out
}
