// A thin client for the tenancy extension: everything is plain SQL through
// node-postgres. Values always travel as parameters ($1, $2, ...); nothing a
// caller passes is ever pasted into SQL text (but COPY's tenant id, below).

import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import copyStreams from 'pg-copy-streams';

const { to: copyTo, from: copyFrom } = copyStreams;

// ---------------------------------------------------------------------------
// Errors: tenancy raises standard SQLSTATEs (docs/api.md, "Errors"), which we
// turn into classes an application can catch with `instanceof`.
// ---------------------------------------------------------------------------

/** Any database error; keeps the SQLSTATE, DETAIL and HINT of the original. */
export class DatabaseError extends Error {
  constructor(pgError) {
    super(pgError.message, { cause: pgError });
    this.name = this.constructor.name;
    this.code = pgError.code;
    this.detail = pgError.detail;
    this.hint = pgError.hint;
  }
}

/** P0002: no tenant with that identifier or id. */
export class TenantNotFound extends DatabaseError {}
/** 22023: invalid identifier, name, metadata, limit or a NULL argument. */
export class InvalidInput extends DatabaseError {}
/** 23505: identifier, id, schema or migration name already taken. */
export class AlreadyExists extends DatabaseError {}
/**
 * 55000: the tenant is not active (suspended or deleted) when set or used as
 * the context, or a status transition that is not allowed.
 */
export class InvalidState extends DatabaseError {}
/**
 * 42501: the role may not act for the tenant, lacks EXECUTE, or wrote a row
 * the RLS policy refuses (another tenant's id, or no tenant set).
 */
export class AccessDenied extends DatabaseError {}
/** 0A000: not available here, e.g. database isolation without dblink. */
export class Unsupported extends DatabaseError {}

/** 54000: the tenant is over its rate limit; retry after `retryAfterSeconds`. */
export class RateLimited extends DatabaseError {
  constructor(pgError) {
    super(pgError);
    // check_rate_limit puts the wait in the DETAIL: "Retry after N seconds."
    const m = /Retry after (\d+) seconds?/.exec(pgError.detail ?? '');
    this.retryAfterSeconds = m ? Number(m[1]) : null;
  }
}

const BY_SQLSTATE = {
  P0002: TenantNotFound,
  22023: InvalidInput,
  23505: AlreadyExists,
  55000: InvalidState,
  42501: AccessDenied,
  '0A000': Unsupported,
  54000: RateLimited,
};

/** Maps a node-postgres error to one of the classes above; other errors pass through. */
export function mapError(err) {
  if (err instanceof DatabaseError) return err;
  // node-postgres sets `code` to the SQLSTATE on server errors; connection
  // errors carry errno codes such as ECONNREFUSED, which we leave alone.
  if (typeof err?.code !== 'string' || !/^[0-9A-Z]{5}$/.test(err.code)) return err;
  const Cls = BY_SQLSTATE[err.code] ?? DatabaseError;
  return new Cls(err);
}

async function run(db, sql, params) {
  try {
    return await db.query(sql, params);
  } catch (err) {
    throw mapError(err);
  }
}

// ---------------------------------------------------------------------------
// The per-request pattern.
// ---------------------------------------------------------------------------

/**
 * Runs `fn(client)` in one transaction whose tenant is `tenant` (identifier or
 * uuid). set_tenant(..., is_local => true) ties the context to the transaction,
 * so COMMIT or ROLLBACK ends it: the connection goes back to the pool with no
 * tenant, which is what keeps PgBouncer in transaction mode safe.
 */
export async function withTenant(pool, tenant, fn) {
  const client = await pool.connect();
  let broken = null;
  try {
    try {
      await client.query('BEGIN');
      // set_tenant checks the tenant exists, is active and that this role may
      // act for it; for a schema tenant it also puts its schema on search_path.
      await client.query('SELECT tenancy.set_tenant($1, true)', [tenant]);
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      try {
        await client.query('ROLLBACK');
      } catch (rollbackErr) {
        // The session is in an unknown state: do not hand it to the next request.
        broken = rollbackErr;
      }
      throw mapError(err);
    }
  } finally {
    client.release(broken ?? undefined);
  }
}

// ---------------------------------------------------------------------------
// Administration: run on a connection whose role may call these functions
// (a superuser here; in production a role given EXECUTE, see docs/security.md).
// ---------------------------------------------------------------------------

export async function createTenant(db, { identifier, name, metadata = {}, isolation = null }) {
  const { rows } = await run(
    db,
    // isolation NULL lets tenancy.default_isolation decide.
    `SELECT * FROM tenancy.create_tenant($1, $2, $3::jsonb, $4::tenancy.isolation)`,
    [identifier, name, JSON.stringify(metadata), isolation],
  );
  return rows[0];
}

// Export and import (SPEC §9) stream with COPY through pg-copy-streams. COPY
// takes no bind parameters: the id goes in as an escaped literal (the one
// value here that is not a parameter). The role must be allowed to act for
// the tenant.
export async function exportTenant(pool, id) {
  const client = await pool.connect();
  try {
    const sql = `COPY (SELECT tenancy.export_tenant(${client.escapeLiteral(String(id))}::uuid)) TO STDOUT`;
    const chunks = [];
    for await (const chunk of client.query(copyTo(sql))) chunks.push(chunk);
    return Buffer.concat(chunks);
  } catch (err) {
    throw mapError(err);
  } finally {
    client.release();
  }
}

// A new tenant from exportTenant's lines: COPY them into a temporary table,
// then import_tenant, in one transaction (all or nothing).
export async function importTenant(pool, lines, identifier = null) {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('CREATE TEMP TABLE tenancy_import (line jsonb) ON COMMIT DROP');
    await pipeline(Readable.from([lines]), client.query(copyFrom('COPY tenancy_import FROM STDIN')));
    const { rows } = await client.query("SELECT * FROM tenancy.import_tenant('tenancy_import', $1)", [identifier]);
    await client.query('COMMIT');
    return rows[0];
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw mapError(err);
  } finally {
    client.release();
  }
}

export async function tenantByIdentifier(db, identifier) {
  const { rows } = await run(db, 'SELECT * FROM tenancy.tenant_by_identifier($1)', [identifier]);
  return rows[0];
}

export async function mergeMetadata(db, id, patch) {
  const { rows } = await run(db, 'SELECT * FROM tenancy.merge_metadata($1, $2::jsonb)', [
    id,
    JSON.stringify(patch),
  ]);
  return rows[0];
}

export async function suspendTenant(db, id) {
  return (await run(db, 'SELECT * FROM tenancy.suspend_tenant($1)', [id])).rows[0];
}

export async function activateTenant(db, id) {
  return (await run(db, 'SELECT * FROM tenancy.activate_tenant($1)', [id])).rows[0];
}

export async function deleteTenant(db, id, { destroyData = false } = {}) {
  await run(db, 'SELECT tenancy.delete_tenant($1, $2)', [id, destroyData]);
}

export async function searchTenants(db, query, limit = 10) {
  return (await run(db, 'SELECT * FROM tenancy.search_tenants($1, $2)', [query, limit])).rows;
}

export async function listTenants(db, { skip = 0, limit = 100, status = null } = {}) {
  const { rows } = await run(
    db,
    'SELECT * FROM tenancy.list_tenants($1, $2, $3::tenancy.tenant_status)',
    [skip, limit, status],
  );
  return rows;
}

export async function grantTenant(db, role, tenantId) {
  // role is a regrole: passed as text and resolved by the server, not spliced.
  await run(db, 'SELECT tenancy.grant_tenant($1::text::regrole, $2)', [role, tenantId]);
}

export async function addMigration(db, name, sql) {
  return (await run(db, 'SELECT * FROM tenancy.add_migration($1, $2)', [name, sql])).rows[0];
}

/** Counts one request against the tenant's rate limit; throws RateLimited when over. */
export async function checkRateLimit(client) {
  await run(client, 'SELECT tenancy.check_rate_limit()');
}
