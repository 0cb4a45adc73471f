"""fastapi-tenancy's own TenancyManager and middleware, running on tenancy.

The store and the isolation provider are the only pieces swapped; the
manager, the header resolver, TenancyMiddleware and make_tenant_db_dependency
are the library's, unchanged.
"""

from __future__ import annotations

import uuid

import httpx
import psycopg
import pytest
from conftest import APP
from fastapi import Depends, FastAPI
from fastapi_tenancy import (
    IsolationStrategy,
    TenancyConfig,
    TenancyManager,
    TenancyMiddleware,
    TenantNotFoundError,
)
from fastapi_tenancy.dependencies import make_tenant_db_dependency
from psycopg_pool import AsyncConnectionPool

from tenancy_store import TenancyIsolationProvider, TenancyTenantStore, tenancy_id

# TenancyConfig insists on an async SQLAlchemy URL; with our store and
# provider nothing ever connects through it.
UNUSED_URL = "postgresql+asyncpg://unused@localhost/unused"


def make_manager(
    store: TenancyTenantStore, pool: AsyncConnectionPool, **config: object
) -> TenancyManager:
    cfg = TenancyConfig(
        database_url=UNUSED_URL, resolution_strategy="header", isolation_strategy="rls", **config
    )
    provider = TenancyIsolationProvider(cfg, pool, store, rate_limit=True)
    return TenancyManager(cfg, store, isolation_provider=provider)


async def test_manager_lifecycle_soft_delete(store, app_pool) -> None:
    manager = make_manager(store, app_pool)
    await manager.initialize()
    t = await manager.register_tenant("acme-corp", "Acme Corporation", metadata={"plan": "pro"})
    # register_tenant generated "tenant-<token>"; the store keeps it.
    assert t.id.startswith("tenant-")
    assert (await store.get_by_identifier("acme-corp")).id == t.id
    assert (await store.get_by_id(t.id)).identifier == "acme-corp"
    assert (await manager.suspend_tenant(t.id)).is_suspended()
    assert (await manager.activate_tenant(t.id)).is_active()
    with pytest.raises(ValueError):
        await manager.register_tenant("acme-corp", "Again")
    with pytest.raises(ValueError):
        await manager.register_tenant("Not A Slug", "Bad")
    await manager.delete_tenant(t.id)  # enable_soft_delete=True: status deleted
    assert (await store.get_by_id(t.id)).is_deleted()
    with pytest.raises(TenantNotFoundError):
        await manager.delete_tenant(str(uuid.uuid4()))
    await manager.close()


async def test_manager_hard_delete_destroys_the_schema(store, su, app_pool, notes_migration) -> None:
    manager = make_manager(store, app_pool, enable_soft_delete=False)
    t = await manager.register_tenant("umbrella", "Umbrella", isolation_strategy=IsolationStrategy.SCHEMA)
    assert t.schema_name == "tenant_umbrella"
    cur = await su.execute("SELECT to_regclass('tenant_umbrella.notes') IS NOT NULL")
    assert (await cur.fetchone())[0]  # provisioned with the migrations by create_tenant
    await manager.delete_tenant(t.id, destroy_data=True)
    assert not await store.exists(t.id)
    cur = await su.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_umbrella'")
    assert (await cur.fetchone())[0] == 0
    cur = await su.execute(
        "SELECT array_agg(action ORDER BY id) FROM tenancy.audit_log WHERE tenant_id = %s",
        [tenancy_id(t.id)],
    )
    assert (await cur.fetchone())[0] == ["create", "provision", "delete", "destroy", "delete"]


async def test_fastapi_app_with_the_library_middleware(store, su, app_pool, orders) -> None:
    manager = make_manager(store, app_pool)
    await manager.initialize()
    acme = await manager.register_tenant("acme", "Acme", metadata={"rate_limit_per_minute": 2})
    globex = await manager.register_tenant("globex", "Globex")
    for t in (acme, globex):
        await su.execute("SELECT tenancy.grant_tenant(%s, %s)", [APP, tenancy_id(t.id)])

    app = FastAPI()
    app.add_middleware(TenancyMiddleware, manager=manager)
    get_db = make_tenant_db_dependency(manager)

    @app.get("/orders")
    async def list_orders(conn: psycopg.AsyncConnection = Depends(get_db)) -> list[str]:
        cur = await conn.execute("SELECT item FROM public.orders ORDER BY id")
        return [r[0] for r in await cur.fetchall()]

    @app.post("/orders/{item}")
    async def add_order(item: str, conn: psycopg.AsyncConnection = Depends(get_db)) -> dict:
        await conn.execute("INSERT INTO public.orders (item) VALUES (%s)", [item])
        return {"added": item}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        acme_h, globex_h = {"X-Tenant-ID": "acme"}, {"X-Tenant-ID": "globex"}
        assert (await client.post("/orders/anvil", headers=acme_h)).status_code == 200
        assert (await client.post("/orders/gear", headers=globex_h)).status_code == 200
        assert (await client.get("/orders", headers=acme_h)).json() == ["anvil"]
        assert (await client.get("/orders", headers=globex_h)).json() == ["gear"]
        # Unknown tenant: the library's resolver answers 400 (no enumeration).
        assert (await client.get("/orders", headers={"X-Tenant-ID": "nobody"})).status_code == 400
        # Suspended: the middleware's 403, from the status our store returned.
        await manager.suspend_tenant(globex.id)
        assert (await client.get("/orders", headers=globex_h)).status_code == 403
        # The third request of acme in the window: tenancy.check_rate_limit -> 429.
        r = await client.get("/orders", headers=acme_h)
        assert r.status_code == 429, r.text
    await manager.close()
