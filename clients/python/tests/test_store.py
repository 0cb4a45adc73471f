"""Behaviour of every store method against a real server, raising rules included."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import psycopg
import pytest
from conftest import ADMIN, APP, dsn, new_tenant
from fastapi_tenancy import (
    IsolationStrategy,
    TenancyError,
    Tenant,
    TenantNotFoundError,
    TenantStatus,
)

from tenancy_store import (
    TenancyFeatureNotSupportedError,
    TenancyTenantStore,
    TenantAccessDeniedError,
    TenantAlreadyExistsError,
    TenantStatusTransitionError,
)


new = new_tenant


async def audit_actions(su: psycopg.AsyncConnection, tenant_id: str) -> list[str]:
    cur = await su.execute(
        "SELECT action FROM tenancy.audit_log WHERE tenant_id = %s ORDER BY id", [tenant_id]
    )
    return [r[0] for r in await cur.fetchall()]


# --- create ---------------------------------------------------------------------


async def test_create_returns_the_stored_tenant(store, su) -> None:
    t = new(metadata={"plan": "pro"})
    before = datetime.now(UTC)
    created = await store.create(t)
    assert isinstance(created, Tenant)
    assert (created.id, created.identifier, created.name) == (t.id, t.identifier, t.name)
    assert created.status is TenantStatus.ACTIVE
    assert created.metadata == {"plan": "pro"}
    # Isolation is resolved at creation (tenancy.default_isolation = rls).
    assert created.isolation_strategy is IsolationStrategy.RLS
    assert created.schema_name is None and created.database_url is None
    # Server timestamps, timezone-aware UTC.
    assert created.created_at.tzinfo is not None and created.created_at >= before.replace(microsecond=0)
    assert await audit_actions(su, created.id) == ["create"]


async def test_create_can_replace_a_non_uuid_id() -> None:
    # The old behaviour, on request: tenancy assigns its own id.
    replacing = TenancyTenantStore(dsn(ADMIN), foreign_ids="replace")
    try:
        created = await replacing.create(new(id="tenant-aB3xYz9mQp"))
        assert uuid.UUID(created.id).version == 7  # tenancy's time-ordered ids
        assert (await replacing.get_by_id(created.id)).identifier == created.identifier
        with pytest.raises(TenantNotFoundError):
            await replacing.get_by_id("tenant-aB3xYz9mQp")
    finally:
        await replacing.close()


async def test_create_can_reject_a_non_uuid_id(store) -> None:
    strict = TenancyTenantStore(dsn(ADMIN), foreign_ids="reject")
    try:
        with pytest.raises(ValueError, match="not a uuid"):
            await strict.create(new(id="tenant-aB3xYz9mQp"))
    finally:
        await strict.close()
    assert await store.count() == 0


async def test_create_duplicates_raise_value_error(store) -> None:
    t = await store.create(new())
    with pytest.raises(ValueError, match="already exists") as e:
        await store.create(new(t.identifier))
    assert isinstance(e.value, TenantAlreadyExistsError)
    assert e.value.details["sqlstate"] == "23505"
    with pytest.raises(ValueError):
        await store.create(new(id=t.id))  # same id, other identifier
    # A soft-deleted tenant keeps its identifier taken.
    await store.set_status(t.id, TenantStatus.DELETED)
    with pytest.raises(ValueError):
        await store.create(new(t.identifier))
    assert await store.count() == 1


@pytest.mark.parametrize("identifier", ["ab--cd", "Acme_Corp", "abc-", "a190f3a4-0000-7000-8000-0000000000ab"])
async def test_create_invalid_identifier_is_value_error(store, identifier: str) -> None:
    # Tenant's own validation only checks the length; tenancy's rule is stricter.
    with pytest.raises(ValueError, match="identifier"):
        await store.create(Tenant(id=str(uuid.uuid4()), identifier=identifier, name="X"))
    assert await store.count() == 0


async def test_create_with_status(store) -> None:
    suspended = await store.create(new(status=TenantStatus.SUSPENDED))
    assert suspended.status is TenantStatus.SUSPENDED
    assert (await store.get_by_id(suspended.id)).status is TenantStatus.SUSPENDED
    with pytest.raises(ValueError, match="provisioning"):
        await store.create(new(status=TenantStatus.PROVISIONING))
    assert await store.count() == 1


async def test_create_isolation(store, su) -> None:
    schema = await store.create(new("globex-corp", isolation_strategy=IsolationStrategy.SCHEMA))
    assert schema.isolation_strategy is IsolationStrategy.SCHEMA
    assert schema.schema_name == "tenant_globex_corp"
    cur = await su.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'tenant_globex_corp'")
    assert await cur.fetchone() is not None
    # HYBRID is tenancy's hybrid rule: a premium tier gets a schema, others RLS.
    premium = await store.create(
        new(isolation_strategy=IsolationStrategy.HYBRID, metadata={"tier": "premium"})
    )
    basic = await store.create(new(isolation_strategy=IsolationStrategy.HYBRID, metadata={"tier": "free"}))
    assert premium.isolation_strategy is IsolationStrategy.SCHEMA
    assert basic.isolation_strategy is IsolationStrategy.RLS


async def test_create_refuses_a_schema_name_tenancy_would_not_use(store, su) -> None:
    # A tenancy whose create_tenant has no schema_name (test_ids.py tests the one that has).
    cur = await su.execute(
        "SELECT EXISTS (SELECT FROM pg_proc WHERE proname = 'create_tenant' AND 'schema_name' = ANY (proargnames))"
    )
    if (await cur.fetchone())[0]:
        pytest.skip("the installed tenancy's create_tenant takes schema_name")
    with pytest.raises(ValueError, match="tenant_initech"):
        await store.create(new("initech", isolation_strategy="schema", schema_name="custom_schema"))
    assert await store.count() == 0  # rolled back with the error
    ok = await store.create(new("initech", isolation_strategy="schema", schema_name="tenant_initech"))
    assert ok.schema_name == "tenant_initech"


async def test_create_database_tenant_without_dblink_is_not_implemented(store) -> None:
    with pytest.raises(NotImplementedError) as e:
        await store.create(new("dbtenant", isolation_strategy=IsolationStrategy.DATABASE))
    assert isinstance(e.value, TenancyFeatureNotSupportedError)
    assert "CREATE DATABASE tenant_dbtenant" in e.value.details["detail"]


# --- reads ------------------------------------------------------------------------


async def test_get_by_id(store) -> None:
    t = await store.create(new())
    assert (await store.get_by_id(t.id)).identifier == t.identifier
    assert (await store.get_by_id(t.id.upper())).id == t.id  # any uuid spelling
    for missing in (str(uuid.uuid4()), "tenant-abc", ""):
        with pytest.raises(TenantNotFoundError):
            await store.get_by_id(missing)


async def test_get_by_identifier(store) -> None:
    t = await store.create(new())
    assert (await store.get_by_identifier(t.identifier)).id == t.id
    with pytest.raises(TenantNotFoundError) as e:
        await store.get_by_identifier("nobody-here")
    assert e.value.identifier == "nobody-here"


async def test_deleted_tenants_are_still_found(store) -> None:
    t = await store.create(new())
    await store.set_status(t.id, TenantStatus.DELETED)
    assert (await store.get_by_id(t.id)).is_deleted()
    assert (await store.get_by_identifier(t.identifier)).is_deleted()
    assert await store.exists(t.id)


async def test_exists(store) -> None:
    t = await store.create(new())
    assert await store.exists(t.id) is True
    assert await store.exists(str(uuid.uuid4())) is False
    assert await store.exists("tenant-not-a-uuid") is False


async def test_list_newest_first_paged_and_filtered(store) -> None:
    made = [await store.create(new(f"list-{i:02d}")) for i in range(5)]
    await store.set_status(made[1].id, TenantStatus.SUSPENDED)
    page = await store.list()
    assert [t.identifier for t in page] == [f"list-{i:02d}" for i in (4, 3, 2, 1, 0)]
    assert [t.identifier for t in await store.list(skip=1, limit=2)] == ["list-03", "list-02"]
    assert [t.identifier for t in await store.list(status=TenantStatus.SUSPENDED)] == ["list-01"]
    assert len(await store.list(status=TenantStatus.ACTIVE)) == 4
    assert await store.list(skip=10) == []
    with pytest.raises(ValueError, match="skip"):
        await store.list(skip=-1)
    with pytest.raises(ValueError):
        await store.list(limit=2**40)  # beyond PostgreSQL's integer


async def test_count(store) -> None:
    assert await store.count() == 0
    a, b, _ = [await store.create(new()) for _ in range(3)]
    await store.set_status(a.id, TenantStatus.SUSPENDED)
    await store.set_status(b.id, TenantStatus.DELETED)
    assert await store.count() == 3
    assert await store.count(TenantStatus.ACTIVE) == 1
    assert await store.count(status=TenantStatus.SUSPENDED) == 1
    assert await store.count(TenantStatus.DELETED) == 1
    assert await store.count(TenantStatus.PROVISIONING) == 0


async def test_get_by_ids_in_order_each_once(store) -> None:
    a, b, c = [await store.create(new()) for _ in range(3)]
    got = await store.get_by_ids([c.id, str(uuid.uuid4()), a.id, "tenant-x", c.id])
    assert [t.id for t in got] == [c.id, a.id]
    assert await store.get_by_ids([]) == []
    assert await store.get_by_ids(iter(["nope"])) == []


async def test_search_ranked_case_insensitive_literal(store) -> None:
    await store.create(new("acme", name="Acme"))
    await store.create(new("acme-corp", name="Acme Corporation"))
    await store.create(new("globex", name="Globex, an ACME company"))
    await store.create(new("old-acme-labs", name="Labs"))
    await store.create(new("percent", name="100% Tenant"))
    got = [t.identifier for t in await store.search("ACME")]
    # exact identifier, identifier prefix, name contains, identifier contains
    assert got == ["acme", "acme-corp", "globex", "old-acme-labs"]
    assert [t.identifier for t in await store.search("acme", limit=2)] == ["acme", "acme-corp"]
    # % is a literal character, not a wildcard
    assert [t.identifier for t in await store.search("0%")] == ["percent"]
    assert await store.search("no-such-thing") == []
    with pytest.raises(ValueError):
        await store.search("a", limit=-1)


# --- writes -----------------------------------------------------------------------


async def test_update_replaces_mutable_fields(store, su) -> None:
    t = await store.create(new("renamed-not", metadata={"a": 1, "b": 2}))
    changed = t.model_copy(update={"identifier": "renamed", "name": "Renamed Inc", "metadata": {"c": 3}})
    updated = await store.update(changed)
    assert (updated.identifier, updated.name, updated.metadata) == ("renamed", "Renamed Inc", {"c": 3})
    assert updated.updated_at > t.updated_at
    assert (await store.get_by_identifier("renamed")).id == t.id
    with pytest.raises(TenantNotFoundError):
        await store.get_by_identifier("renamed-not")
    assert await audit_actions(su, t.id) == ["create", "update"]
    # Writing the same values changes nothing: no audit row, updated_at stays.
    same = await store.update(updated)
    assert same.updated_at == updated.updated_at
    assert await audit_actions(su, t.id) == ["create", "update"]


async def test_update_status_goes_through_set_status(store) -> None:
    t = await store.create(new())
    suspended = await store.update(t.model_copy(update={"status": TenantStatus.SUSPENDED, "name": "Paused"}))
    assert suspended.status is TenantStatus.SUSPENDED and suspended.name == "Paused"
    deleted = await store.update(suspended.model_copy(update={"status": TenantStatus.DELETED}))
    # deleted is final: an illegal transition changes nothing, not even the name
    with pytest.raises(ValueError, match="cannot go from deleted to active"):
        await store.update(deleted.model_copy(update={"status": TenantStatus.ACTIVE, "name": "Back"}))
    again = await store.get_by_id(t.id)
    assert (again.status, again.name) == (TenantStatus.DELETED, "Paused")


async def test_update_rename_keeps_the_schema(store) -> None:
    t = await store.create(new("hooli", isolation_strategy=IsolationStrategy.SCHEMA))
    renamed = await store.update(t.model_copy(update={"identifier": "hooli-xyz"}))
    assert renamed.schema_name == "tenant_hooli"


async def test_update_raising_rules(store) -> None:
    a = await store.create(new())
    b = await store.create(new())
    with pytest.raises(TenantNotFoundError):
        await store.update(new(id=str(uuid.uuid4())))
    with pytest.raises(TenantNotFoundError):
        await store.update(new(id="tenant-foreign"))
    with pytest.raises(ValueError, match="already exists"):
        await store.update(b.model_copy(update={"identifier": a.identifier}))
    with pytest.raises(ValueError, match="isolation is fixed"):
        await store.update(b.model_copy(update={"isolation_strategy": IsolationStrategy.SCHEMA}))
    with pytest.raises(ValueError):
        await store.update(b.model_copy(update={"name": "   "}))
    assert (await store.get_by_id(b.id)).name == b.name


async def test_delete_is_hard_by_default(store, su) -> None:
    t = await store.create(new())
    await store.delete(t.id)
    assert not await store.exists(t.id)
    with pytest.raises(TenantNotFoundError):
        await store.get_by_id(t.id)
    # The audit log outlives the row.
    assert await audit_actions(su, t.id) == ["create", "delete"]
    with pytest.raises(TenantNotFoundError):
        await store.delete(t.id)
    with pytest.raises(TenantNotFoundError):
        await store.delete("tenant-foreign")


async def test_delete_soft_and_destroying(su) -> None:
    soft = TenancyTenantStore(dsn(ADMIN), soft_delete=True, destroy_data_on_delete=True)
    try:
        t = await soft.create(new("wayne-ent", isolation_strategy=IsolationStrategy.SCHEMA))
        await soft.delete(t.id)
        gone = await soft.get_by_id(t.id)
        assert gone.status is TenantStatus.DELETED
        cur = await su.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'tenant_wayne_ent'")
        assert await cur.fetchone() is None  # schema dropped
        await soft.delete(t.id)  # deleting a deleted tenant again: no-op
    finally:
        await soft.close()


async def test_set_status(store) -> None:
    t = await store.create(new())
    s = await store.set_status(t.id, TenantStatus.SUSPENDED)
    assert s.is_suspended() and s.updated_at > t.updated_at
    again = await store.set_status(t.id, TenantStatus.SUSPENDED)  # no-op
    assert again.updated_at == s.updated_at
    assert (await store.set_status(t.id, TenantStatus.ACTIVE)).is_active()
    with pytest.raises(TenantStatusTransitionError, match="active to provisioning"):
        await store.set_status(t.id, TenantStatus.PROVISIONING)
    await store.set_status(t.id, TenantStatus.DELETED)
    with pytest.raises(ValueError):
        await store.set_status(t.id, TenantStatus.ACTIVE)
    with pytest.raises(TenantNotFoundError):
        await store.set_status(str(uuid.uuid4()), TenantStatus.ACTIVE)


async def test_update_metadata_merges_shallowly(store) -> None:
    t = await store.create(new(metadata={"plan": "pro", "limits": {"api": 1, "seats": 2}}))
    m = await store.update_metadata(t.id, {"limits": {"api": 5}, "seats": None})
    # Shallow: a nested object is replaced; None is kept as JSON null.
    assert m.metadata == {"plan": "pro", "limits": {"api": 5}, "seats": None}
    assert (await store.update_metadata(t.id, {})).metadata == m.metadata
    with pytest.raises(TenantNotFoundError):
        await store.update_metadata(str(uuid.uuid4()), {"a": 1})


async def test_update_metadata_concurrent_merges_lose_no_key(store) -> None:
    # fastapi-tenancy's SQLAlchemy store needs SERIALIZABLE + 25 retries for this.
    t = await store.create(new())
    await asyncio.gather(*(store.update_metadata(t.id, {f"k{i}": i}) for i in range(20)))
    final = await store.get_by_id(t.id)
    assert final.metadata == {f"k{i}": i for i in range(20)}


async def test_bulk_update_status(store, su) -> None:
    a, b, c = [await store.create(new()) for _ in range(3)]
    got = await store.bulk_update_status([c.id, str(uuid.uuid4()), a.id, "x"], TenantStatus.SUSPENDED)
    assert [(t.id, t.status) for t in got] == [(c.id, TenantStatus.SUSPENDED), (a.id, TenantStatus.SUSPENDED)]
    assert (await store.get_by_id(b.id)).is_active()
    assert await store.bulk_update_status([], TenantStatus.ACTIVE) == []
    # All or nothing: b may not go back to provisioning, so a and c stay put too.
    await store.set_status(b.id, TenantStatus.DELETED)
    with pytest.raises(ValueError):
        await store.bulk_update_status([a.id, b.id], TenantStatus.ACTIVE)
    assert (await store.get_by_id(a.id)).is_suspended()


# --- extras and errors --------------------------------------------------------------


async def test_remove_metadata_keys_and_audit_log(store) -> None:
    t = await store.create(new(metadata={"a": 1, "b": 2}))
    assert (await store.remove_metadata_keys(t.id, ["a", "missing"])).metadata == {"b": 2}
    log = await store.audit_log(t.id)
    assert [e["action"] for e in log] == ["metadata", "create"]  # newest first
    assert log[0]["details"]["remove"] == ["a", "missing"]
    assert await store.audit_log("not-a-uuid") == []


async def test_unprivileged_role_gets_permission_error() -> None:
    # The app role has no EXECUTE on administrative functions.
    weak = TenancyTenantStore(dsn(APP))
    try:
        with pytest.raises(PermissionError) as e:
            await weak.create(new())
        assert isinstance(e.value, TenantAccessDeniedError)
    finally:
        await weak.close()


async def test_storage_failure_is_wrapped_in_tenancy_error() -> None:
    broken = TenancyTenantStore("dbname=tenancy_client_python_missing", timeout=2)
    try:
        with pytest.raises(TenancyError):
            await broken.count()
    finally:
        await broken.close()


async def test_initialize_checks_the_extension(su) -> None:
    await su.execute("DROP DATABASE IF EXISTS tenancy_client_python_noext")
    await su.execute("CREATE DATABASE tenancy_client_python_noext")
    try:
        s = TenancyTenantStore(dsn().replace("tenancy_client_python", "tenancy_client_python_noext"))
        with pytest.raises(TenancyError, match="not installed"):
            await s.initialize()
        await s.close()
    finally:
        await su.execute("DROP DATABASE tenancy_client_python_noext WITH (FORCE)")


async def test_store_returns_a_tenant_subclass() -> None:
    class AppTenant(Tenant):
        plan: str = "free"

    s = TenancyTenantStore[AppTenant](dsn(ADMIN), model=AppTenant)
    try:
        t = await s.create(new())
        assert type(t) is AppTenant
        assert type((await s.list())[0]) is AppTenant
    finally:
        await s.close()
