//! A thin client for the tenancy extension: everything is plain SQL through
//! tokio-postgres. Values always travel as parameters (`$1`, `$2`, ...); nothing
//! a caller passes is ever pasted into SQL text.

use std::fmt;
use std::time::Duration;

use serde_json::Value;
use tokio_postgres::error::DbError;
use tokio_postgres::{Client, GenericClient, Row, Transaction};
use uuid::Uuid;

// ---------------------------------------------------------------------------
// Errors: tenancy raises standard SQLSTATEs (docs/api.md, "Errors"), which we
// turn into variants an application can match on.
// ---------------------------------------------------------------------------

#[derive(Debug)]
pub enum Error {
    /// P0002: no tenant with that identifier or id.
    TenantNotFound(DbError),
    /// 22023: invalid identifier, name, metadata, limit, or a NULL argument.
    InvalidInput(DbError),
    /// 23505: identifier, id, schema or migration name already taken.
    AlreadyExists(DbError),
    /// 55000: the tenant is not active (suspended, deleted) when set or used as
    /// the context, or a status transition that is not allowed.
    InvalidState(DbError),
    /// 42501: the role may not act for the tenant, lacks EXECUTE, or wrote a
    /// row the RLS policy refuses (another tenant's id, or no tenant set).
    AccessDenied(DbError),
    /// 0A000: not available here, e.g. database isolation without dblink.
    Unsupported(DbError),
    /// 54000: over the tenant's rate limit. `retry_after` comes from the
    /// DETAIL "Retry after N seconds." of `check_rate_limit`.
    RateLimited {
        retry_after: Option<Duration>,
        error: DbError,
    },
    /// Any other SQLSTATE, or no SQLSTATE at all (I/O, protocol, decoding).
    Postgres(tokio_postgres::Error),
}

impl Error {
    /// The SQLSTATE, when the server sent one.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Error::TenantNotFound(e)
            | Error::InvalidInput(e)
            | Error::AlreadyExists(e)
            | Error::InvalidState(e)
            | Error::AccessDenied(e)
            | Error::Unsupported(e)
            | Error::RateLimited { error: e, .. } => Some(e.code().code()),
            Error::Postgres(e) => e.code().map(|c| c.code()),
        }
    }
}

fn retry_after(detail: Option<&str>) -> Option<Duration> {
    let rest = detail?.strip_prefix("Retry after ")?;
    let secs: u64 = rest.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_secs(secs))
}

impl From<tokio_postgres::Error> for Error {
    fn from(err: tokio_postgres::Error) -> Self {
        let Some(db) = err.as_db_error() else {
            return Error::Postgres(err);
        };
        let db = db.clone();
        match db.code().code() {
            "P0002" => Error::TenantNotFound(db),
            "22023" => Error::InvalidInput(db),
            "23505" => Error::AlreadyExists(db),
            "55000" => Error::InvalidState(db),
            "42501" => Error::AccessDenied(db),
            "0A000" => Error::Unsupported(db),
            "54000" => Error::RateLimited {
                retry_after: retry_after(db.detail()),
                error: db,
            },
            _ => Error::Postgres(err),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Postgres(e) => write!(f, "{e}"),
            Error::RateLimited { error, .. } => write!(f, "rate limited: {error}"),
            Error::TenantNotFound(e)
            | Error::InvalidInput(e)
            | Error::AlreadyExists(e)
            | Error::InvalidState(e)
            | Error::AccessDenied(e)
            | Error::Unsupported(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Postgres(e) => Some(e),
            Error::RateLimited { error, .. } => Some(error),
            Error::TenantNotFound(e)
            | Error::InvalidInput(e)
            | Error::AlreadyExists(e)
            | Error::InvalidState(e)
            | Error::AccessDenied(e)
            | Error::Unsupported(e) => Some(e),
        }
    }
}

// ---------------------------------------------------------------------------
// The per-request pattern.
// ---------------------------------------------------------------------------

/// Runs `f` in one transaction whose tenant is `tenant` (identifier or uuid).
///
/// `set_tenant(…, is_local => true)` ties the context to the transaction, so
/// COMMIT or ROLLBACK ends it: the connection goes back to its pool with no
/// tenant, which is what keeps PgBouncer in transaction mode safe. `E` is the
/// caller's error type; it only has to absorb ours.
pub async fn with_tenant<T, E>(
    client: &mut Client,
    tenant: &str,
    f: impl AsyncFnOnce(&Transaction<'_>) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<Error>,
{
    let tx = client.transaction().await.map_err(Error::from)?;
    // Checks the tenant exists, is active and that this role may act for it;
    // for a schema tenant it also puts its schema first on search_path.
    if let Err(err) = tx
        .execute("SELECT tenancy.set_tenant($1, true)", &[&tenant])
        .await
    {
        let _ = tx.rollback().await;
        return Err(Error::from(err).into());
    }
    match f(&tx).await {
        Ok(value) => {
            tx.commit().await.map_err(Error::from)?;
            Ok(value)
        }
        Err(err) => {
            // Report the request's error, not a failure to roll back.
            let _ = tx.rollback().await;
            Err(err)
        }
    }
}

// ---------------------------------------------------------------------------
// Administration: run on a connection whose role may call these functions
// (a superuser here; in production a role given EXECUTE, see docs/security.md).
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: Uuid,
    pub identifier: String,
    pub name: String,
    pub status: String,
    pub isolation: String,
    pub schema_name: Option<String>,
    pub metadata: Value,
}

// Enums come back as text: tokio-postgres does not decode unknown enum types.
const COLUMNS: &str = "id, identifier, name, status::text, isolation::text, schema_name::text, metadata";

impl From<&Row> for Tenant {
    fn from(r: &Row) -> Self {
        Tenant {
            id: r.get(0),
            identifier: r.get(1),
            name: r.get(2),
            status: r.get(3),
            isolation: r.get(4),
            schema_name: r.get(5),
            metadata: r.get(6),
        }
    }
}

// `call` is always one of the constant strings below ('static), never caller input.
async fn one(
    db: &impl GenericClient,
    call: &'static str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Tenant, Error> {
    let row = db
        .query_one(&format!("SELECT {COLUMNS} FROM {call}"), params)
        .await?;
    Ok(Tenant::from(&row))
}

async fn many(
    db: &impl GenericClient,
    call: &'static str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<Tenant>, Error> {
    let rows = db.query(&format!("SELECT {COLUMNS} FROM {call}"), params).await?;
    Ok(rows.iter().map(Tenant::from).collect())
}

/// `isolation` None lets `tenancy.default_isolation` decide.
pub async fn create_tenant(
    db: &impl GenericClient,
    identifier: &str,
    name: &str,
    metadata: &Value,
    isolation: Option<&str>,
) -> Result<Tenant, Error> {
    one(
        db,
        "tenancy.create_tenant($1, $2, $3, $4::text::tenancy.isolation)",
        &[&identifier, &name, metadata, &isolation],
    )
    .await
}

/// The tenant's data as JSON lines (SPEC §9), streamed with COPY. COPY takes
/// no bind parameters: the id is formatted in (a uuid's text needs no quoting).
/// The role must be allowed to act for the tenant.
pub async fn export_tenant(db: &Client, id: Uuid) -> Result<Vec<u8>, Error> {
    use futures_util::TryStreamExt;
    let stream = db
        .copy_out(&format!("COPY (SELECT tenancy.export_tenant('{id}')) TO STDOUT"))
        .await?;
    futures_util::pin_mut!(stream);
    let mut out = Vec::new();
    while let Some(chunk) = stream.try_next().await? {
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// A new tenant from `export_tenant`'s lines: COPY them into a temporary
/// table, then `import_tenant`, in one transaction (all or nothing).
pub async fn import_tenant(db: &mut Client, lines: &[u8], identifier: Option<&str>) -> Result<Tenant, Error> {
    use futures_util::SinkExt;
    let tx = db.transaction().await?;
    tx.batch_execute("CREATE TEMP TABLE tenancy_import (line jsonb) ON COMMIT DROP").await?;
    let sink = tx.copy_in("COPY tenancy_import FROM STDIN").await?;
    futures_util::pin_mut!(sink);
    sink.send(bytes::Bytes::copy_from_slice(lines)).await?;
    sink.finish().await?;
    let row = tx
        .query_one(&format!("SELECT {COLUMNS} FROM tenancy.import_tenant('tenancy_import', $1)"), &[&identifier])
        .await?;
    tx.commit().await?;
    Ok(Tenant::from(&row))
}

pub async fn tenant_by_identifier(db: &impl GenericClient, identifier: &str) -> Result<Tenant, Error> {
    one(db, "tenancy.tenant_by_identifier($1)", &[&identifier]).await
}

pub async fn merge_metadata(db: &impl GenericClient, id: Uuid, patch: &Value) -> Result<Tenant, Error> {
    one(db, "tenancy.merge_metadata($1, $2)", &[&id, patch]).await
}

pub async fn suspend_tenant(db: &impl GenericClient, id: Uuid) -> Result<Tenant, Error> {
    one(db, "tenancy.suspend_tenant($1)", &[&id]).await
}

pub async fn activate_tenant(db: &impl GenericClient, id: Uuid) -> Result<Tenant, Error> {
    one(db, "tenancy.activate_tenant($1)", &[&id]).await
}

pub async fn delete_tenant(db: &impl GenericClient, id: Uuid, destroy_data: bool) -> Result<(), Error> {
    db.execute("SELECT tenancy.delete_tenant($1, $2)", &[&id, &destroy_data])
        .await?;
    Ok(())
}

pub async fn search_tenants(db: &impl GenericClient, query: &str, limit: i32) -> Result<Vec<Tenant>, Error> {
    many(db, "tenancy.search_tenants($1, $2)", &[&query, &limit]).await
}

/// `status` None lists every status, deleted tenants included.
pub async fn list_tenants(
    db: &impl GenericClient,
    skip: i32,
    limit: i32,
    status: Option<&str>,
) -> Result<Vec<Tenant>, Error> {
    many(
        db,
        "tenancy.list_tenants($1, $2, $3::text::tenancy.tenant_status)",
        &[&skip, &limit, &status],
    )
    .await
}

/// The role is a `regrole`: sent as text and resolved by the server, not spliced.
pub async fn grant_tenant(db: &impl GenericClient, role: &str, tenant: Uuid) -> Result<(), Error> {
    db.execute(
        "SELECT tenancy.grant_tenant($1::text::regrole, $2)",
        &[&role, &tenant],
    )
    .await?;
    Ok(())
}

pub async fn add_migration(db: &impl GenericClient, name: &str, sql: &str) -> Result<(), Error> {
    db.execute("SELECT tenancy.add_migration($1, $2)", &[&name, &sql])
        .await?;
    Ok(())
}

/// Counts one request against the current tenant's rate limit; call it first
/// in the request's transaction. Over the limit: `Error::RateLimited`.
pub async fn check_rate_limit(db: &impl GenericClient) -> Result<(), Error> {
    db.execute("SELECT tenancy.check_rate_limit()", &[]).await?;
    Ok(())
}
