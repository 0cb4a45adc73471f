//! tenancy on a Citus cluster (SPEC §8): what the other modules ask of Citus.
//!
//! So far, the tenant context's way to the workers, and what enable_rls
//! does differently on a distributed table.  Citus sends a worker
//! the `SET LOCAL` commands of the transaction (and replays them for
//! connections it opens later), but only with `citus.propagate_set_commands
//! = 'local'`, and never what `set_config()` sets, which is how tenancy sets
//! its context.  So under Citus a transaction-local context is also set with
//! a `SET LOCAL` statement, in a nesting level of its own where propagation
//! is on (measured: docs/design/citus-research.md, "Experiments").  A
//! session-level context, and any context outside a transaction block,
//! cannot reach the workers: Citus sends no session state.

use std::ffi::CStr;

use pgrx::pg_sys;

use crate::base::db;

pub mod nodes;
pub mod routing;
pub mod schemas;
pub mod setup;

pub use nodes::loaded;

/// Makes the transaction-local value of setting `name` reach every worker
/// of the transaction, now and for connections opened later; nothing outside
/// a transaction block (a SET LOCAL there ends with the statement) or
/// without Citus.
pub fn propagate_local(name: &CStr, value: &str) {
    if !loaded() || !unsafe { pg_sys::IsTransactionBlock() } {
        return;
    }
    let name = name.to_string_lossy();
    let statement = format!("SET LOCAL {name} = {}", pgrx::spi::quote_literal(value));
    crate::base::settings::scoped(&[(c"citus.propagate_set_commands", "local")], || {
        db::execute_dynamic(&statement)
    });
}

/// Whether `table` is a Citus table (distributed or reference): a catalog
/// read of `pg_dist_partition`, remembered until the table's relcache
/// invalidation (nodes::dist).
pub fn is_distributed(table: pg_sys::Oid) -> bool {
    loaded() && nodes::dist(table) != nodes::Dist::Local
}

/// Runs `statement`, DDL on `table`'s tenant column DEFAULT: on a Citus
/// table, on the coordinator's table only.  Citus refuses to change a
/// distribution column's DEFAULT across the shards ("cannot execute ALTER
/// TABLE command involving partition column"), and a default only the
/// coordinator has serves every INSERT that goes through it.
pub fn alter_column_default(table: pg_sys::Oid, statement: &str) {
    if is_distributed(table) {
        crate::base::settings::scoped(&[(c"citus.enable_ddl_propagation", "off")], || {
            db::execute_dynamic(statement)
        });
    } else {
        db::execute_dynamic(statement);
    }
}
