//! Putting tenancy's state on every node of a Citus cluster (SPEC §8.1):
//! the cluster copy of the catalog (sql/citus.sql) becomes a pair of Citus
//! reference tables, and the isolation policies take the form Citus
//! accepts on distributed tables.
//!
//! Why reference tables of a copy, and not the catalog itself: a reference
//! table is on every node and written in the coordinator's transaction (a
//! two-phase commit with every worker), which is what "in force on every
//! node in the same transaction" asks; but a Citus table can only be
//! queried the ways Citus can distribute, and the lifecycle functions'
//! statements (data-modifying CTEs with parameters, joins with the local
//! registries) are not all such ways.  So the catalog stays local to the
//! coordinator, and the two tables a worker's check reads are kept in step
//! by triggers, in the same statement as each change.
//!
//! The copy becomes a reference table at the first change to the catalog on
//! a coordinator with Citus (so `CREATE EXTENSION citus; CREATE EXTENSION
//! tenancy;` needs nothing else), or at `tenancy.citus_setup()`, which also
//! copies what was there before Citus came and rewrites old policies.

use std::cell::Cell;

use pgrx::pg_sys;
use pgrx::prelude::*;

use crate::base::db::{self, Mode};
use crate::base::errors;

thread_local! {
    /// The OID of `tenancy.cluster_tenants` once it is known to be a Citus
    /// table (an extension dropped and created again gets new OIDs).
    static READY: Cell<Option<pg_sys::Oid>> = const { Cell::new(None) };
}

/// True when Citus is in this database: the WHEN condition of the triggers
/// that keep the cluster copy in step (one node never runs them).
#[pg_extern(stable, parallel_safe)]
fn citus_loaded() -> bool {
    super::nodes::in_database()
}

/// Makes the cluster copy a pair of reference tables if it is not one yet;
/// called by those triggers before each copied change.  True where the
/// copy is kept from here (a coordinator with Citus); false without Citus
/// and on a worker, where nothing is done.
#[pg_extern(volatile)]
fn citus_prepare_catalog() -> bool {
    prepare(false)
}

/// Copies the catalog's state into the cluster copy (anew with `resync`)
/// and makes it a pair of reference tables; false where there is nothing
/// to keep (no Citus, a worker).
fn prepare(resync: bool) -> bool {
    if !super::nodes::in_database() || super::nodes::is_worker() {
        return false;
    }
    // A system cache read: this runs before every copied change.
    let Some(tenants) = crate::catalog::direct::relation(c"cluster_tenants") else {
        return false;
    };
    if !resync && READY.with(|r| r.get()) == Some(tenants) {
        return true;
    }
    // One session converts; another waits here, then finds it done.
    db::execute(
        "LOCK TABLE tenancy.cluster_tenants, tenancy.cluster_grants IN EXCLUSIVE MODE",
        &[],
    );
    let distributed = super::is_distributed(tenants);
    if distributed && !resync {
        READY.with(|r| r.set(Some(tenants)));
        return true;
    }
    // The grants that count on the coordinator: those of roles holding the
    // marker (see access::mark).
    db::execute("DELETE FROM tenancy.cluster_tenants", &[]);
    db::execute(
        "INSERT INTO tenancy.cluster_tenants SELECT * FROM tenancy.tenants",
        &[],
    );
    db::execute("DELETE FROM tenancy.cluster_grants", &[]);
    db::execute(
        "INSERT INTO tenancy.cluster_grants (role, role_name, tenant_id)
         SELECT g.role::pg_catalog.oid, r.rolname, g.tenant_id
           FROM tenancy.tenant_grants g
           JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) g.role::pg_catalog.oid
          WHERE EXISTS (SELECT FROM pg_catalog.pg_type t, pg_catalog.aclexplode(t.typacl) a
                         WHERE t.oid OPERATOR(pg_catalog.=) 'tenancy.tenant_grantee'::pg_catalog.regtype
                           AND a.grantee OPERATOR(pg_catalog.=) g.role::pg_catalog.oid)",
        &[],
    );
    if !distributed {
        // Citus copies the rows into the new shards, on every node (and
        // makes sure each node has the extension first).
        // Citus's NOTICEs about the copy are not the caller's business.
        crate::base::settings::scoped(&[(c"client_min_messages", "warning")], || {
            for name in ["tenancy.cluster_tenants", "tenancy.cluster_grants"] {
                db::query_text(
                    "SELECT pg_catalog.create_reference_table($1::pg_catalog.regclass)",
                    Mode::Write,
                    &[name.into()],
                    |_| (),
                );
                // What stays in the coordinator's own table is read by no one.
                db::query_text(
                    "SELECT pg_catalog.truncate_local_data_after_distributing_table($1::pg_catalog.regclass)",
                    Mode::Write,
                    &[name.into()],
                    |_| (),
                );
            }
        });
    }
    READY.with(|r| r.set(Some(tenants)));
    true
}

/// Finishes tenancy's setup on a Citus coordinator (SPEC §8): the tenants
/// and grants are copied to every node and kept in step from then on, and
/// the isolation policies of tables enabled before Citus came take the form
/// Citus distributes.  Idempotent: a second call copies the catalog's state
/// anew.  0A000 where Citus is not installed in the database.
#[pg_extern(volatile, requires = ["citus_catalog"])]
fn citus_setup() {
    let installed = db::query_one(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'citus')",
        Mode::Write,
        &[],
        |r| r.must::<bool>(1),
    )
    .unwrap_or(false);
    if !installed || !super::nodes::in_database() {
        errors::unsupported("Citus is not installed in this database")
            .hint("Add citus to shared_preload_libraries and run CREATE EXTENSION citus first.")
            .raise();
    }
    if super::nodes::is_worker() {
        errors::notice("this is a Citus worker: tenancy.citus_setup() runs on the coordinator")
            .tell();
        return;
    }
    prepare(true);
    rewrite_policies();
}

/// Gives every policy enable_rls made without Citus (`col = (SELECT
/// tenancy.current_tenant_id())`, which Citus refuses on a distributed
/// table) the form enable_rls makes with Citus: the same condition, the
/// function called without the sub-select.
fn rewrite_policies() {
    let old = db::query(
        "SELECT r.tbl::pg_catalog.text, r.tenant_column::pg_catalog.text, r.policy_name::pg_catalog.text
           FROM tenancy.rls_tables r
           JOIN pg_catalog.pg_policy p ON p.polrelid OPERATOR(pg_catalog.=) r.tbl::pg_catalog.oid
                                      AND p.polname OPERATOR(pg_catalog.=) r.policy_name
          WHERE p.polqual IS NOT NULL AND pg_catalog.pg_get_expr(p.polqual, p.polrelid) OPERATOR(pg_catalog.~~) '%SELECT%'
          ORDER BY 1",
        Mode::Write,
        &[],
        |r| (r.must::<String>(1), r.must::<String>(2), r.must::<String>(3)),
    );
    for (table, column, policy) in old {
        let check = format!(
            "{} OPERATOR(pg_catalog.=) tenancy.current_tenant_id()",
            pgrx::spi::quote_identifier(&column)
        );
        db::execute_dynamic(&format!(
            "ALTER POLICY {} ON {table} USING ({check}) WITH CHECK ({check})",
            pgrx::spi::quote_identifier(&policy)
        ));
        errors::notice(format!("policy of {table} rewritten for Citus")).tell();
    }
}

extension_sql_file!(
    "../../sql/citus.sql",
    name = "citus_catalog",
    requires = ["isolation_catalog", citus_loaded, citus_prepare_catalog]
);
