"""The adapter's patterns pass tenancy's guard rails (docs/guard-rails.md):
tenants the store creates (RLS and schema), a shared table isolated as the
tests isolate it, and the application role granted tenants leave doctor()
with no error row."""

from __future__ import annotations

from fastapi_tenancy import IsolationStrategy

from conftest import APP, new_tenant


async def test_doctor_finds_no_error(store, su, orders, notes_migration) -> None:
    rls = await store.create(new_tenant())
    schema = await store.create(new_tenant(isolation_strategy=IsolationStrategy.SCHEMA))
    for t in (rls, schema):
        await su.execute(
            "SELECT tenancy.grant_tenant(%s, id) FROM tenancy.tenants WHERE identifier = %s",
            [APP, t.identifier],
        )
    cur = await su.execute("SELECT object, problem FROM tenancy.doctor() WHERE severity = 'error'")
    rows = await cur.fetchall()
    assert rows == [], "\n".join(f"{o}: {p}" for o, p in rows)
