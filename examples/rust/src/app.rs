//! The example application: notes in a shared table isolated by row-level
//! security, and invoices in each schema tenant's own schema. Queries name no
//! tenant at all; the tenant comes from `with_tenant`'s context.

use tokio_postgres::{Client, GenericClient};
use uuid::Uuid;

use crate::tenancy::{self, Error};

/// DDL cannot take parameters, so the one identifier we need (the app role) is
/// quoted by the server with `format('%I')`, never pasted in by hand.
async fn ddl(db: &impl GenericClient, template: &str, identifier: &str) -> Result<(), Error> {
    let sql: String = db
        .query_one("SELECT format($1, $2::text)", &[&template, &identifier])
        .await?
        .get(0);
    db.batch_execute(&sql).await?;
    Ok(())
}

/// One-off setup, run as the owner of the tables (here the superuser). The app
/// role must not own the tables, be a superuser or have BYPASSRLS: the policy
/// does not apply to those. One transaction: it all happens or none of it.
pub async fn setup_schema(admin: &mut Client, app_role: &str) -> Result<(), Error> {
    let tx = admin.transaction().await?;
    tx.batch_execute(
        "CREATE TABLE notes (
                 id         bigserial,
                 tenant_id  uuid NOT NULL,
                 body       text NOT NULL,
                 created_at timestamptz NOT NULL DEFAULT now(),
                 PRIMARY KEY (tenant_id, id)); -- keys lead with the tenant column
             -- policy on tenant_id, default tenant_id = current tenant, FORCE RLS, index
             SELECT tenancy.enable_rls('notes');",
    )
    .await?;
    ddl(
        &tx,
        "GRANT SELECT, INSERT, UPDATE, DELETE ON notes TO %I",
        app_role,
    )
    .await?;
    ddl(&tx, "GRANT USAGE ON SEQUENCE notes_id_seq TO %I", app_role).await?;
    // Schema tenants get this table in their own schema, at creation.
    tenancy::add_migration(
        &tx,
        "001_invoices",
        "CREATE TABLE invoices (id bigserial PRIMARY KEY, amount_cents bigint NOT NULL)",
    )
    .await?;
    // On any error above, dropping `tx` rolls it back.
    Ok(tx.commit().await?)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    pub id: i64,
    pub tenant_id: Uuid,
    pub body: String,
}

// --- RLS tenants: one shared table -----------------------------------------

pub async fn add_note(db: &impl GenericClient, body: &str) -> Result<Note, Error> {
    // tenant_id is filled in by the column default enable_rls installed.
    let r = db
        .query_one(
            "INSERT INTO notes (body) VALUES ($1) RETURNING id, tenant_id, body",
            &[&body],
        )
        .await?;
    Ok(Note {
        id: r.get(0),
        tenant_id: r.get(1),
        body: r.get(2),
    })
}

pub async fn list_notes(db: &impl GenericClient) -> Result<Vec<Note>, Error> {
    // No WHERE tenant_id = ...: the policy adds it.
    let rows = db
        .query("SELECT id, tenant_id, body FROM notes ORDER BY id", &[])
        .await?;
    Ok(rows
        .iter()
        .map(|r| Note {
            id: r.get(0),
            tenant_id: r.get(1),
            body: r.get(2),
        })
        .collect())
}

// --- schema tenants: the same unqualified name, a different schema each ----

pub async fn add_invoice(db: &impl GenericClient, amount_cents: i64) -> Result<i64, Error> {
    let r = db
        .query_one(
            "INSERT INTO invoices (amount_cents) VALUES ($1) RETURNING id",
            &[&amount_cents],
        )
        .await?;
    Ok(r.get(0))
}

pub async fn list_invoices(db: &impl GenericClient) -> Result<Vec<i64>, Error> {
    let rows = db
        .query("SELECT amount_cents FROM invoices ORDER BY id", &[])
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
