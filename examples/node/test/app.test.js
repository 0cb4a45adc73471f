// Runs against a fresh database made by ../test.sh: PGHOST, PGPORT, PGDATABASE
// and PGUSER (a superuser, the admin) come from the environment, APP_ROLE is
// the non-superuser login role the application connects as.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';

import * as tenancy from '../src/tenancy.js';
import { withTenant } from '../src/tenancy.js';
import { setupSchema, addNote, listNotes, addInvoice, listInvoices } from '../src/app.js';

const APP_ROLE = process.env.APP_ROLE ?? 'example_node_app';

// The admin runs DDL and lifecycle calls. The app pool has ONE connection, so
// every request below reuses the same server session, like a PgBouncer in
// transaction mode would: a leaked tenant would show up on the next request.
const admin = new pg.Pool({ max: 2 });
const app = new pg.Pool({ user: APP_ROLE, max: 1 });

const ids = {};

before(async () => {
  await setupSchema(admin, APP_ROLE);
  for (const identifier of ['acme', 'globex']) {
    const t = await tenancy.createTenant(admin, { identifier, name: identifier.toUpperCase() });
    await tenancy.grantTenant(admin, APP_ROLE, t.id);
    ids[identifier] = t.id;
  }
  // 'initech' exists but is not granted to the app role.
  ids.initech = (await tenancy.createTenant(admin, { identifier: 'initech', name: 'Initech' })).id;
});

after(async () => {
  await app.end();
  await admin.end();
});

test('each tenant reads and writes only its own rows (RLS)', async () => {
  await withTenant(app, 'acme', async (c) => {
    const n = await addNote(c, 'acme: first');
    assert.equal(n.tenant_id, ids.acme, 'tenant_id is filled in from the context');
    await addNote(c, 'acme: second');
  });
  await withTenant(app, 'globex', (c) => addNote(c, 'globex: only'));

  const acme = await withTenant(app, 'acme', listNotes);
  const globex = await withTenant(app, ids.globex, listNotes); // a uuid works too
  assert.deepEqual(acme.map((n) => n.body), ['acme: first', 'acme: second']);
  assert.deepEqual(globex.map((n) => n.body), ['globex: only']);
  assert.ok(acme.every((n) => n.tenant_id === ids.acme));
});

test('after COMMIT the pooled connection carries no tenant and sees no rows', async () => {
  const inside = await withTenant(app, 'acme', async (c) => {
    const { rows } = await c.query('SELECT pg_backend_pid() AS pid, tenancy.current_tenant_id() AS t');
    return rows[0];
  });
  assert.equal(inside.t, ids.acme);

  // Same server session (pool of one), next "request" without withTenant.
  const { rows } = await app.query(
    `SELECT pg_backend_pid() AS pid, tenancy.current_tenant_id() AS t,
            (SELECT count(*)::int FROM notes) AS visible`,
  );
  assert.equal(rows[0].pid, inside.pid, 'the same server session was reused');
  assert.equal(rows[0].t, null);
  assert.equal(rows[0].visible, 0, 'no tenant, no rows');
  // Writing without a tenant is refused by the policy, not silently stored.
  await assert.rejects(
    app.query('INSERT INTO notes (body) VALUES ($1)', ['orphan']).catch((e) => {
      throw tenancy.mapError(e);
    }),
    tenancy.AccessDenied,
  );
});

test('an error inside withTenant rolls back the writes and the context', async () => {
  await assert.rejects(
    withTenant(app, 'globex', async (c) => {
      await addNote(c, 'globex: never committed');
      throw new Error('request failed');
    }),
    /request failed/,
  );
  const { rows } = await app.query('SELECT tenancy.current_tenant_id() AS t');
  assert.equal(rows[0].t, null);
  const notes = await withTenant(app, 'globex', listNotes);
  assert.deepEqual(notes.map((n) => n.body), ['globex: only']);
});

test("a row with another tenant's id is refused", async () => {
  await assert.rejects(
    withTenant(app, 'acme', (c) =>
      c.query('INSERT INTO notes (tenant_id, body) VALUES ($1, $2)', [ids.globex, 'smuggled'])),
    tenancy.AccessDenied,
  );
});

test('why is_local: a session-level set_tenant would leak into the next request', async () => {
  const c = await app.connect();
  try {
    await c.query("SELECT tenancy.set_tenant('acme')"); // the mistake: no BEGIN, not local
  } finally {
    c.release();
  }
  const { rows } = await app.query('SELECT tenancy.current_tenant_id() AS t');
  assert.equal(rows[0].t, ids.acme, 'the next user of the connection inherited acme');
  await app.query('DISCARD ALL'); // what a session-mode pooler runs between clients
  const again = await app.query('SELECT tenancy.current_tenant_id() AS t');
  assert.equal(again.rows[0].t, null);
});

test('schema tenants: unqualified tables resolve to the tenant schema', async () => {
  for (const identifier of ['hooli', 'pied-piper']) {
    const t = await tenancy.createTenant(admin, { identifier, name: identifier, isolation: 'schema' });
    assert.equal(t.isolation, 'schema');
    assert.equal(t.schema_name, `tenant_${identifier.replace('-', '_')}`);
    await tenancy.grantTenant(admin, APP_ROLE, t.id);
  }
  await withTenant(app, 'hooli', async (c) => {
    await addInvoice(c, '10.50');
    await addInvoice(c, '20.00');
  });
  await withTenant(app, 'pied-piper', (c) => addInvoice(c, '99.99'));

  const hooli = await withTenant(app, 'hooli', listInvoices);
  const piper = await withTenant(app, 'pied-piper', listInvoices);
  assert.deepEqual(hooli.map((i) => i.total), ['10.50', '20.00']);
  assert.deepEqual(piper.map((i) => i.total), ['99.99']);

  // search_path was local too: after COMMIT "invoices" names nothing.
  await assert.rejects(app.query('SELECT * FROM invoices'), { code: '42P01' });
});

test('admin: create, look up, merge metadata, suspend, activate, search, list, delete', async () => {
  const t = await tenancy.createTenant(admin, {
    identifier: 'umbrella',
    name: 'Umbrella Corp',
    metadata: { plan: 'pro' },
  });
  assert.equal(t.status, 'active');
  assert.equal(t.isolation, 'rls');
  await tenancy.grantTenant(admin, APP_ROLE, t.id);

  assert.equal((await tenancy.tenantByIdentifier(admin, 'umbrella')).id, t.id);
  const merged = await tenancy.mergeMetadata(admin, t.id, { seats: 25 });
  assert.deepEqual(merged.metadata, { plan: 'pro', seats: 25 });

  assert.equal((await tenancy.suspendTenant(admin, t.id)).status, 'suspended');
  await assert.rejects(withTenant(app, 'umbrella', listNotes), tenancy.InvalidState);
  assert.equal((await tenancy.activateTenant(admin, t.id)).status, 'active');
  assert.deepEqual(await withTenant(app, 'umbrella', listNotes), []);

  const found = await tenancy.searchTenants(admin, 'UMBREL');
  assert.deepEqual(found.map((x) => x.identifier), ['umbrella']);
  const active = await tenancy.listTenants(admin, { status: 'active', limit: 1000 });
  assert.ok(active.some((x) => x.id === t.id));

  await tenancy.deleteTenant(admin, t.id);
  assert.equal((await tenancy.tenantByIdentifier(admin, 'umbrella')).status, 'deleted');
  await assert.rejects(withTenant(app, 'umbrella', listNotes), tenancy.InvalidState);
  // deleted is final: no transition out of it.
  await assert.rejects(tenancy.activateTenant(admin, t.id), tenancy.InvalidState);
});

test('suspending a tenant takes effect at the next statement of an open request', async () => {
  await assert.rejects(
    withTenant(app, 'globex', async (c) => {
      await listNotes(c);
      await tenancy.suspendTenant(admin, ids.globex); // another session, committed
      await listNotes(c);
    }),
    tenancy.InvalidState,
  );
  await tenancy.activateTenant(admin, ids.globex);
});

// --- error mapping: each class from a real call ------------------------------

test('error: unknown tenant -> TenantNotFound (P0002)', async () => {
  await assert.rejects(withTenant(app, 'nobody', listNotes), tenancy.TenantNotFound);
  await assert.rejects(tenancy.tenantByIdentifier(admin, 'nobody'), (e) => {
    assert.ok(e instanceof tenancy.TenantNotFound);
    assert.equal(e.code, 'P0002');
    assert.match(e.message, /"nobody" not found/);
    return true;
  });
});

test('error: duplicate identifier -> AlreadyExists (23505)', async () => {
  await assert.rejects(
    tenancy.createTenant(admin, { identifier: 'acme', name: 'Acme again' }),
    tenancy.AlreadyExists,
  );
});

test('error: bad identifier or NULL -> InvalidInput (22023)', async () => {
  await assert.rejects(
    tenancy.createTenant(admin, { identifier: 'Bad_Name', name: 'x' }),
    (e) => e instanceof tenancy.InvalidInput && /invalid tenant identifier/.test(e.message),
  );
  await assert.rejects(
    tenancy.createTenant(admin, { identifier: 'fine-name', name: 'x', metadata: [1, 2] }),
    tenancy.InvalidInput,
  );
  await assert.rejects(withTenant(app, null, listNotes), tenancy.InvalidInput);
});

test('error: suspended tenant as context -> InvalidState (55000)', async () => {
  const t = await tenancy.createTenant(admin, { identifier: 'soylent', name: 'Soylent' });
  await tenancy.grantTenant(admin, APP_ROLE, t.id);
  await tenancy.suspendTenant(admin, t.id);
  await assert.rejects(withTenant(app, 'soylent', listNotes), (e) => {
    assert.ok(e instanceof tenancy.InvalidState);
    assert.equal(e.code, '55000');
    return true;
  });
});

test('error: tenant not granted to the app role -> AccessDenied (42501)', async () => {
  await assert.rejects(withTenant(app, 'initech', listNotes), (e) => {
    assert.ok(e instanceof tenancy.AccessDenied);
    assert.match(e.message, /may not act for tenant "initech"/);
    return true;
  });
  // The app role was not given the admin API either.
  await assert.rejects(tenancy.tenantByIdentifier(app, 'acme'), tenancy.AccessDenied);
});

test('error: database isolation without dblink -> Unsupported (0A000)', async () => {
  await assert.rejects(
    tenancy.createTenant(admin, { identifier: 'example-node-db', name: 'Db', isolation: 'database' }),
    (e) => e instanceof tenancy.Unsupported && /CREATE DATABASE/.test(e.detail),
  );
});

test('error: over the rate limit -> RateLimited (54000) with retry-after', async () => {
  const t = await tenancy.createTenant(admin, {
    identifier: 'rate-limited',
    name: 'Busy',
    metadata: { rate_limit_per_minute: 2 },
  });
  await tenancy.grantTenant(admin, APP_ROLE, t.id);
  // First statement of each request, after set_tenant (docs/api.md).
  const request = () => withTenant(app, 'rate-limited', tenancy.checkRateLimit);
  await request();
  await request();
  await assert.rejects(request(), (e) => {
    assert.ok(e instanceof tenancy.RateLimited);
    assert.equal(e.code, '54000');
    assert.ok(e.retryAfterSeconds >= 1 && e.retryAfterSeconds <= 60, `${e.retryAfterSeconds}`);
    return true;
  });
});

test('error: anything else -> DatabaseError with its SQLSTATE', async () => {
  await assert.rejects(withTenant(app, 'acme', (c) => c.query('SELEC 1')), (e) => {
    assert.equal(e.constructor, tenancy.DatabaseError);
    assert.equal(e.code, '42601');
    return true;
  });
});

test('export and import a tenant through COPY (a round trip)', async () => {
  await withTenant(app, 'acme', async (c) => {
    await addNote(c, 'quoted "note"\nsecond line');
  });
  const lines = await tenancy.exportTenant(admin, ids.acme);
  const header = JSON.parse(lines.toString().split('\n')[0]);
  assert.equal(header.format, 'tenancy-export');
  const copy = await tenancy.importTenant(admin, lines, 'acme-copy');
  assert.notEqual(copy.id, ids.acme);
  const notes = async (id) =>
    (await admin.query('SELECT id, body FROM notes WHERE tenant_id = $1 ORDER BY id', [id])).rows;
  assert.deepEqual(await notes(copy.id), await notes(ids.acme));
});

// The example's setup passes tenancy's guard rails (docs/guard-rails.md):
// doctor() finds no error, so the pattern this example ships stays clean.
test('tenancy.doctor() finds no error in the setup', async () => {
  const { rows } = await admin.query(
    "SELECT object, problem FROM tenancy.doctor() WHERE severity = 'error'");
  assert.deepEqual(rows, [], rows.map((r) => `${r.object}: ${r.problem}`).join('\n'));
});
