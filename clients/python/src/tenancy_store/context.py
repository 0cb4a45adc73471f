"""The per-request tenant context: one transaction, ``set_tenant(…, true)``.

tenancy keeps the current tenant in the setting ``tenancy.tenant_id``.  With
``is_local => true`` it ends with the transaction, so a pooled connection
never carries a tenant into the next request (docs/pooling.md).  These helpers
open that transaction on a connection of the *application's* role, which must
not be a superuser, have BYPASSRLS or own the shared tables: those bypass RLS.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from fastapi_tenancy.core.types import Tenant
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from .errors import translate
from .mapping import TENANT_COLUMNS, row_to_tenant, tenancy_id

__all__ = ["check_rate_limit", "tenant_connection", "tenant_transaction"]

TenantRef = str | uuid.UUID | Tenant


def _key(tenant: TenantRef) -> str:
    # set_tenant takes an identifier or a uuid in text form; a Tenant's id
    # may be any string (t-store-000001), so a Tenant goes by its uuid.
    if isinstance(tenant, Tenant):
        return str(tenancy_id(tenant.id))
    return str(tenant)


@asynccontextmanager
async def tenant_transaction(
    conn: psycopg.AsyncConnection,
    tenant: TenantRef,
    *,
    rate_limit: bool = False,
) -> AsyncIterator[Tenant]:
    """Run the block in one transaction whose tenant is ``tenant``.

    ``tenant``: a ``Tenant`` (found by its id, whatever string it is), or a
    str/uuid that ``tenancy.set_tenant`` reads: an identifier or a uuid.

    Yields the tenant's row as a ``Tenant``.  Commits when the block ends,
    rolls back when it raises; either way the tenant (and, for a schema
    tenant, its place on ``search_path``) is gone afterwards.  With
    ``rate_limit=True`` it also counts the request with
    ``tenancy.check_rate_limit()`` as the transaction's second statement.

    Raises ``TenantNotFoundError`` (P0002), ``TenantInactiveError`` (55000),
    ``TenantAccessDeniedError`` (42501) and, with ``rate_limit``,
    ``TenantRateLimitedError`` (54000), all before the block runs.
    """
    key = _key(tenant)
    async with conn.transaction():
        try:
            async with conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(
                    f"SELECT {TENANT_COLUMNS} FROM tenancy.set_tenant(%s, true)", [key]
                )
                row = await cur.fetchone()
                if rate_limit:
                    await cur.execute("SELECT tenancy.check_rate_limit()")
        except psycopg.Error as exc:
            raise translate(exc, context="context", lookup=key) from exc
        assert row is not None  # set_tenant returns the row or raises
        yield row_to_tenant(row)


@asynccontextmanager
async def tenant_connection(
    pool: AsyncConnectionPool,
    tenant: TenantRef,
    *,
    rate_limit: bool = False,
) -> AsyncIterator[psycopg.AsyncConnection]:
    """A pooled connection inside ``tenant_transaction(conn, tenant)``.

    The shape of a FastAPI dependency::

        async def tenant_db(tenant: Tenant = Depends(get_current_tenant)):
            async with tenant_connection(app_pool, tenant) as conn:
                yield conn
    """
    async with pool.connection() as conn:
        async with tenant_transaction(conn, tenant, rate_limit=rate_limit):
            yield conn


async def check_rate_limit(
    conn: psycopg.AsyncConnection, tenant_id: str | uuid.UUID | None = None
) -> None:
    """Count one request for ``tenant_id`` (or the current tenant).

    ``tenant_id`` is the store's id of the tenant (any string, see
    ``tenancy_store.mapping.tenancy_id``) or its uuid.

    The database-side replacement for ``TenancyManager.check_rate_limit``:
    a sliding window whose limit is the tenant's
    ``metadata.rate_limit_per_minute``, else ``tenancy.rate_limit_per_minute``.
    Raises ``TenantRateLimitedError`` (a ``RateLimitExceededError``) with
    ``retry_after`` seconds when over the limit.  Call it first in the
    request's transaction, or in a short transaction of its own.
    """
    try:
        await conn.execute(
            "SELECT tenancy.check_rate_limit(%s::uuid)",
            [tenancy_id(tenant_id) if tenant_id is not None else None],
        )
    except psycopg.Error as exc:
        raise translate(
            exc, context="context", lookup=str(tenant_id) if tenant_id else None
        ) from exc
