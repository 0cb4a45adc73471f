// The example application: notes in a shared table isolated by row-level
// security, and invoices in each schema tenant's own schema. Queries name no
// tenant at all; the tenant comes from withTenant's context.

import { addMigration } from './tenancy.js';

// DDL cannot take parameters, so the one identifier we need (the app role)
// is quoted by the server with format('%I'), never pasted in by hand.
async function ddl(db, template, ...identifiers) {
  const { rows } = await db.query('SELECT format($1, VARIADIC $2::text[]) AS sql', [
    template,
    identifiers,
  ]);
  await db.query(rows[0].sql);
}

/**
 * One-off setup, run as the owner of the tables (here the superuser). The app
 * role must not own the tables, be a superuser or have BYPASSRLS: the policy
 * does not apply to those. One transaction: it all happens or none of it.
 */
export async function setupSchema(pool, appRole) {
  const admin = await pool.connect();
  try {
    await admin.query('BEGIN');
    await createAppSchema(admin, appRole);
    await admin.query('COMMIT');
  } catch (err) {
    await admin.query('ROLLBACK');
    throw err;
  } finally {
    admin.release();
  }
}

async function createAppSchema(admin, appRole) {
  await admin.query(`CREATE TABLE notes (
      id         bigserial,
      tenant_id  uuid NOT NULL,
      body       text NOT NULL,
      created_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (tenant_id, id))`);  // keys lead with the tenant column
  // Policy on tenant_id, default tenant_id = current tenant, FORCE RLS, index.
  await admin.query(`SELECT tenancy.enable_rls('notes')`);
  await ddl(admin, 'GRANT SELECT, INSERT, UPDATE, DELETE ON notes TO %I', appRole);
  await ddl(admin, 'GRANT USAGE ON SEQUENCE notes_id_seq TO %I', appRole);
  // Schema tenants get this table in their own schema, at creation.
  await addMigration(
    admin,
    '001_invoices',
    'CREATE TABLE invoices (id bigserial PRIMARY KEY, total numeric(12,2) NOT NULL)',
  );
}

// --- RLS tenants: one shared table -----------------------------------------

export async function addNote(client, body) {
  // tenant_id is filled in by the column default enable_rls installed.
  const { rows } = await client.query(
    'INSERT INTO notes (body) VALUES ($1) RETURNING id, tenant_id, body',
    [body],
  );
  return rows[0];
}

export async function listNotes(client) {
  // No WHERE tenant_id = ...: the policy adds it.
  const { rows } = await client.query('SELECT id, tenant_id, body FROM notes ORDER BY id');
  return rows;
}

// --- schema tenants: the same unqualified name, a different schema each ----

export async function addInvoice(client, total) {
  const { rows } = await client.query(
    'INSERT INTO invoices (total) VALUES ($1) RETURNING id, total',
    [total],
  );
  return rows[0];
}

export async function listInvoices(client) {
  const { rows } = await client.query('SELECT id, total FROM invoices ORDER BY id');
  return rows;
}
