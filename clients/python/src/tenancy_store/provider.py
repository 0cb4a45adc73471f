"""``TenancyIsolationProvider``: fastapi-tenancy's isolation provider, done by tenancy.

fastapi-tenancy's providers create schemas, run ``CREATE POLICY`` and set
``app.current_tenant`` / ``search_path`` from Python.  With tenancy the
database does all of that: ``create_tenant`` provisions, ``enable_rls``
writes the policy, ``set_tenant(…, true)`` sets the context and the schema.
So this provider only opens the request transaction and passes the rest on.

Pass it to ``TenancyManager(config, store, isolation_provider=...)``; the
manager's ``register_tenant``, ``delete_tenant`` and
``make_tenant_db_dependency`` then work unchanged, except that the dependency
yields a psycopg ``AsyncConnection`` (inside the tenant's transaction), not
a SQLAlchemy ``AsyncSession``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import psycopg
from fastapi_tenancy.core.types import Tenant
from fastapi_tenancy.isolation.base import BaseIsolationProvider
from psycopg_pool import AsyncConnectionPool

from .context import tenant_connection

if TYPE_CHECKING:
    from fastapi_tenancy.core.config import TenancyConfig

    from .store import TenancyTenantStore

__all__ = ["TenancyIsolationProvider"]

logger = logging.getLogger(__name__)


class TenancyIsolationProvider(BaseIsolationProvider):
    """Isolation by tenancy, whatever each tenant's isolation is.

    Args:
        config: the application's ``TenancyConfig`` (the base class keeps it).
        pool: pool of the application's role: not a superuser, no BYPASSRLS,
            not the owner of the shared tables, granted the tenants it serves
            (``tenancy.grant_tenant`` / ``grant_all_tenants``).
        store: the admin store, used by :meth:`destroy_tenant`.
        rate_limit: call ``tenancy.check_rate_limit()`` at the start of every
            session (raises ``TenantRateLimitedError``, a
            ``RateLimitExceededError``, which the middleware turns into 429).
    """

    def __init__(
        self,
        config: TenancyConfig,
        pool: AsyncConnectionPool,
        store: TenancyTenantStore[Any] | None = None,
        *,
        rate_limit: bool = False,
    ) -> None:
        super().__init__(config)
        self._pool = pool
        self._store = store
        self._rate_limit = rate_limit

    @asynccontextmanager
    async def get_session(self, tenant: Tenant) -> AsyncIterator[psycopg.AsyncConnection]:  # type: ignore[override]
        """A connection in a transaction that began with ``set_tenant(id, true)``."""
        async with tenant_connection(self._pool, tenant, rate_limit=self._rate_limit) as conn:
            yield conn

    async def apply_filters(self, query: Any, tenant: Tenant) -> Any:
        """Unchanged: the RLS policy or the tenant's schema already isolates."""
        return query

    async def initialize_tenant(self, tenant: Tenant, metadata: Any = None) -> None:
        """Nothing to do: ``tenancy.create_tenant`` provisioned the tenant.

        A schema tenant got its schema and every migration registered with
        ``tenancy.add_migration`` in the transaction that created it.  Tables
        come from migrations, not from SQLAlchemy ``MetaData``.
        """
        if metadata is not None:
            logger.warning(
                "TenancyIsolationProvider ignores app_metadata: register tenant "
                "tables with tenancy.add_migration() instead"
            )

    async def destroy_tenant(self, tenant: Tenant, **kwargs: Any) -> None:
        """``tenancy.delete_tenant(id, destroy_data => true)`` (soft: status deleted).

        ``TenancyManager.delete_tenant(destroy_data=True)`` calls this and
        then ``store.delete`` for the row.
        """
        if self._store is None:
            raise NotImplementedError("TenancyIsolationProvider needs store= to destroy data")
        await self._store.destroy_data(tenant.id)

    async def close(self) -> None:
        """The pool belongs to the application; it closes it."""
