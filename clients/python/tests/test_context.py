"""The per-request helpers: set_tenant(…, true) in a transaction, as the app role."""

from __future__ import annotations

import psycopg
import pytest
from conftest import APP, OTHER, dsn, new_tenant
from fastapi_tenancy import (
    RateLimitExceededError,
    TenantInactiveError,
    TenantNotFoundError,
    TenantStatus,
)

from tenancy_store import (
    TenantAccessDeniedError,
    TenantRateLimitedError,
    check_rate_limit,
    tenant_connection,
    tenant_transaction,
)


async def grant(su: psycopg.AsyncConnection, role: str, tenant_id: str) -> None:
    await su.execute("SELECT tenancy.grant_tenant(%s, %s)", [role, tenant_id])


async def items(conn: psycopg.AsyncConnection) -> list[str]:
    cur = await conn.execute("SELECT item FROM public.orders ORDER BY id")
    return [r[0] for r in await cur.fetchall()]


async def test_each_tenant_sees_only_its_rows(store, su, app_pool, orders) -> None:
    acme = await store.create(new_tenant("acme"))
    globex = await store.create(new_tenant("globex"))
    for t in (acme, globex):
        await grant(su, APP, t.id)

    async with tenant_connection(app_pool, acme) as conn:
        await conn.execute("INSERT INTO public.orders (item) VALUES ('anvil'), ('rope')")
    async with tenant_connection(app_pool, globex.identifier) as conn:
        await conn.execute("INSERT INTO public.orders (item) VALUES ('gear')")

    async with tenant_connection(app_pool, "acme") as conn:
        assert await items(conn) == ["anvil", "rope"]
    async with app_pool.connection() as conn:
        async with tenant_transaction(conn, globex.id) as current:
            assert current.identifier == "globex"
            assert await items(conn) == ["gear"]
        # After COMMIT the tenant is gone: nothing is visible, nothing writable.
        assert await items(conn) == []
        cur = await conn.execute("SHOW tenancy.tenant_id")
        assert (await cur.fetchone())[0] == ""
    # The rows really carry their tenant (checked as the superuser).
    cur = await su.execute("SELECT tenant_id::text, count(*) FROM public.orders GROUP BY 1 ORDER BY 2")
    assert await cur.fetchall() == [(globex.id, 1), (acme.id, 2)]


async def test_a_row_of_another_tenant_cannot_be_written(store, su, app_pool, orders) -> None:
    acme = await store.create(new_tenant("acme"))
    globex = await store.create(new_tenant("globex"))
    await grant(su, APP, acme.id)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        async with tenant_connection(app_pool, acme) as conn:
            await conn.execute(
                "INSERT INTO public.orders (tenant_id, item) VALUES (%s, 'smuggled')", [globex.id]
            )
    cur = await su.execute("SELECT count(*) FROM public.orders")
    assert (await cur.fetchone())[0] == 0


async def test_the_block_rolls_back_on_error(store, su, app_pool, orders) -> None:
    acme = await store.create(new_tenant("acme"))
    await grant(su, APP, acme.id)
    with pytest.raises(RuntimeError):
        async with tenant_connection(app_pool, acme) as conn:
            await conn.execute("INSERT INTO public.orders (item) VALUES ('lost')")
            raise RuntimeError("request failed")
    async with tenant_connection(app_pool, acme) as conn:
        assert await items(conn) == []


async def test_context_errors(store, su, app_pool) -> None:
    acme = await store.create(new_tenant("acme"))
    paused = await store.create(new_tenant("paused"))
    await grant(su, APP, paused.id)
    await store.set_status(paused.id, TenantStatus.SUSPENDED)

    async with app_pool.connection() as conn:
        with pytest.raises(TenantNotFoundError):
            async with tenant_transaction(conn, "nobody-here"):
                pass
        # Not granted to this role: PermissionError, not a silent empty result.
        with pytest.raises(PermissionError) as e:
            async with tenant_transaction(conn, acme):
                pass
        assert isinstance(e.value, TenantAccessDeniedError)
        with pytest.raises(TenantInactiveError) as e2:
            async with tenant_transaction(conn, paused):
                pass
        assert (e2.value.tenant_id, e2.value.status) == ("paused", "suspended")


async def test_rate_limit(store, su, app_pool) -> None:
    acme = await store.create(new_tenant("acme", metadata={"rate_limit_per_minute": 2}))
    await grant(su, APP, acme.id)
    async with app_pool.connection() as conn:
        for _ in range(2):
            async with tenant_transaction(conn, acme, rate_limit=True):
                pass
        with pytest.raises(RateLimitExceededError) as e:
            async with tenant_transaction(conn, acme, rate_limit=True):
                pass
        assert isinstance(e.value, TenantRateLimitedError)
        assert e.value.limit == 2 and e.value.window_seconds == 60
        assert 0 < e.value.retry_after <= 60
        # The standalone form, with an explicit tenant id.
        with pytest.raises(TenantRateLimitedError):
            await check_rate_limit(conn, acme.id)


async def test_schema_tenant_tables_are_reachable_unqualified(store, su, notes_migration) -> None:
    hooli = await store.create(new_tenant("hooli", isolation_strategy="schema"))
    await grant(su, OTHER, hooli.id)
    conn = await psycopg.AsyncConnection.connect(dsn(OTHER))
    try:
        async with tenant_transaction(conn, "hooli"):
            await conn.execute("INSERT INTO notes (body) VALUES ('hello')")
            cur = await conn.execute("SELECT body FROM notes")
            assert await cur.fetchall() == [("hello",)]
            cur = await conn.execute("SELECT current_schema()")
            assert (await cur.fetchone())[0] == "tenant_hooli"
        async with conn.transaction():
            with pytest.raises(psycopg.errors.UndefinedTable):
                await conn.execute("SELECT body FROM notes")
    finally:
        await conn.close()
