"""Fixtures: a real server (from test.sh's environment), the store, app pools.

test.sh creates the database (TENANCY_TEST_DB) with tenancy installed and the
login roles; PGHOST/PGPORT/PGUSER (a superuser) come from the environment.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest
from fastapi_tenancy import Tenant
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool

from tenancy_store import TenancyTenantStore

DB = os.environ.get("TENANCY_TEST_DB", "tenancy_client_python")
ADMIN = "tenancy_client_python_admin"
APP = "tenancy_client_python_app"
OTHER = "tenancy_client_python_other"


def dsn(role: str | None = None) -> str:
    """Connection string for the test database; host and port from PG* variables."""
    return make_conninfo(dbname=DB, user=role) if role else make_conninfo(dbname=DB)


def slug(prefix: str = "t") -> str:
    """A fresh valid identifier."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def new_tenant(identifier: str | None = None, **kw) -> Tenant:
    """A Tenant to create: a uuid id, a fresh identifier unless given."""
    identifier = identifier or slug()
    kw.setdefault("id", str(uuid.uuid4()))
    kw.setdefault("name", identifier.title())
    return Tenant(identifier=identifier, **kw)


@pytest.fixture
async def su() -> AsyncIterator[psycopg.AsyncConnection]:
    """The superuser, for setup and for looking behind the API."""
    conn = await psycopg.AsyncConnection.connect(dsn(), autocommit=True)
    yield conn
    await conn.close()


@pytest.fixture(autouse=True)
async def clean_catalog(su: psycopg.AsyncConnection) -> None:
    """Every test starts with no tenant (counts and lists are global)."""
    await su.execute("SET tenancy.soft_delete = off")
    await su.execute("SELECT tenancy.delete_tenant(id, true) FROM tenancy.tenants")
    await su.execute("RESET tenancy.soft_delete")


@pytest.fixture
async def store() -> AsyncIterator[TenancyTenantStore]:
    """The store as the admin role: EXECUTE on tenancy's functions, not a superuser."""
    s = TenancyTenantStore(dsn(ADMIN), max_size=10)
    await s.initialize()
    yield s
    await s.close()


@pytest.fixture
async def app_pool() -> AsyncIterator[AsyncConnectionPool]:
    """Connections of the application role, which RLS applies to."""
    pool = AsyncConnectionPool(dsn(APP), min_size=1, max_size=4, open=False)
    await pool.open(wait=True)
    yield pool
    await pool.close()


@pytest.fixture
async def orders(su: psycopg.AsyncConnection) -> str:
    """A shared table isolated by tenancy.enable_rls, usable by the app role."""
    await su.execute("DROP TABLE IF EXISTS public.orders")
    await su.execute(
        "CREATE TABLE public.orders (id bigserial, tenant_id uuid NOT NULL, item text NOT NULL, PRIMARY KEY (tenant_id, id))"
    )
    await su.execute("SELECT tenancy.enable_rls('public.orders')")
    await su.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON public.orders TO tenancy_client_python_app")
    await su.execute("GRANT USAGE ON SEQUENCE public.orders_id_seq TO tenancy_client_python_app")
    return "public.orders"


@pytest.fixture
async def notes_migration(su: psycopg.AsyncConnection) -> str:
    """A migration every schema tenant gets: table `notes`.

    Registered migrations are immutable and stay for the whole run (the
    catalog is wiped between tests, the migration registry is not), so it is
    registered once and written to be harmless in any schema.
    """
    try:
        await su.execute(
            "SELECT tenancy.add_migration(%s, %s)",
            ["001_notes", "CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, body text NOT NULL)"],
        )
    except psycopg.errors.UniqueViolation:
        pass
    return "001_notes"
