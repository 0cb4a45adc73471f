"""fastapi-tenancy's string ids kept by the store (SPEC §12).

A tenant created with id ``t-store-000001`` is found, updated and deleted by
that id, the store always returns that id, and a second tenant with it is
refused as fastapi-tenancy's own stores refuse it.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest
from conftest import ADMIN, APP, new_tenant
from fastapi_tenancy import InMemoryTenantStore, IsolationStrategy, TenantNotFoundError, TenantStatus

from tenancy_store import (
    ID_KEY,
    ID_NAMESPACE,
    TenantAccessDeniedError,
    TenantAlreadyExistsError,
    check_rate_limit,
    tenancy_id,
    tenant_connection,
    tenant_transaction,
)

PEER_ID = "t-store-000001"


async def row(su: psycopg.AsyncConnection, tid: uuid.UUID) -> tuple | None:
    cur = await su.execute("SELECT id, metadata FROM tenancy.tenants WHERE id = %s", [tid])
    return await cur.fetchone()


def test_tenancy_id_is_uuid5_in_the_fixed_namespace() -> None:
    assert ID_NAMESPACE == uuid.UUID("ea1fb28f-5a95-4ac0-bace-2c57f219fe35")
    assert tenancy_id(PEER_ID) == uuid.uuid5(ID_NAMESPACE, PEER_ID)
    u = uuid.uuid4()
    assert tenancy_id(str(u)) == u
    assert tenancy_id(str(u).upper()) == u
    assert tenancy_id(u) == u
    assert tenancy_id("tenant-abc") != tenancy_id("tenant-abd")


async def test_sql_computes_the_same_uuid(su) -> None:
    # What the README tells SQL users: uuid-ossp's uuid_generate_v5.
    await su.execute('CREATE EXTENSION IF NOT EXISTS "uuid-ossp"')
    cur = await su.execute("SELECT uuid_generate_v5(%s, %s)", [ID_NAMESPACE, PEER_ID])
    assert (await cur.fetchone())[0] == tenancy_id(PEER_ID)


async def test_a_peer_id_through_the_whole_lifecycle(store, su) -> None:
    created = await store.create(new_tenant("acme", id=PEER_ID, metadata={"plan": "pro"}))
    assert created.id == PEER_ID
    assert created.metadata == {"plan": "pro"}
    # Stored under its uuid5, the id kept beside the metadata.
    stored = await row(su, tenancy_id(PEER_ID))
    assert stored is not None and stored[1] == {"plan": "pro", ID_KEY: PEER_ID}

    assert (await store.get_by_id(PEER_ID)).identifier == "acme"
    assert (await store.get_by_identifier("acme")).id == PEER_ID
    assert await store.exists(PEER_ID)

    updated = await store.update(created.model_copy(update={"name": "Acme Inc", "metadata": {"seats": 3}}))
    assert (updated.id, updated.name, updated.metadata) == (PEER_ID, "Acme Inc", {"seats": 3})
    merged = await store.update_metadata(PEER_ID, {"plan": "team"})
    assert (merged.id, merged.metadata) == (PEER_ID, {"seats": 3, "plan": "team"})
    removed = await store.remove_metadata_keys(PEER_ID, ["seats", ID_KEY])
    assert (removed.id, removed.metadata) == (PEER_ID, {"plan": "team"})
    renamed = await store.update(removed.model_copy(update={"identifier": "acme-corp"}))
    assert renamed.id == PEER_ID
    suspended = await store.set_status(PEER_ID, TenantStatus.SUSPENDED)
    assert suspended.id == PEER_ID and suspended.is_suspended()

    other = await store.create(new_tenant("globex", id="t-store-000002"))
    assert [t.id for t in await store.list()] == ["t-store-000002", PEER_ID]
    assert [t.id for t in await store.search("acme")] == [PEER_ID]
    assert [t.id for t in await store.get_by_ids([other.id, "nobody", PEER_ID])] == [other.id, PEER_ID]
    bulk = await store.bulk_update_status([PEER_ID, other.id, "nobody"], TenantStatus.ACTIVE)
    assert [t.id for t in bulk] == [PEER_ID, other.id]
    # The audit log is the uuid's (and outlives the row: this id is reused by every run).
    newest = (await store.audit_log(PEER_ID, limit=1))[0]
    assert (newest["tenant_id"], newest["action"]) == (tenancy_id(PEER_ID), "status")

    await store.delete(PEER_ID)
    with pytest.raises(TenantNotFoundError) as e:
        await store.get_by_id(PEER_ID)
    assert e.value.identifier == PEER_ID
    assert not await store.exists(PEER_ID)
    with pytest.raises(TenantNotFoundError):
        await store.delete(PEER_ID)
    assert await row(su, tenancy_id(PEER_ID)) is None


async def test_a_duplicate_id_is_refused_as_the_peer_refuses_it(store) -> None:
    memory = InMemoryTenantStore()
    first = new_tenant("acme", id=PEER_ID)
    again = new_tenant("globex", id=PEER_ID)  # same id, another identifier
    same_identifier = new_tenant("acme", id="t-store-000009")
    for s in (memory, store):
        await s.create(first)
    for dup in (again, same_identifier):
        with pytest.raises(ValueError) as theirs:
            await memory.create(dup)
        with pytest.raises(ValueError) as ours:
            await store.create(dup)
        # "Tenant id='t-store-000001' already exists." (str() adds the details)
        assert ours.value.message == str(theirs.value)
        assert isinstance(ours.value, TenantAlreadyExistsError)
        assert ours.value.details["sqlstate"] == "23505"
    assert await store.count() == 1
    assert (await store.get_by_id(PEER_ID)).identifier == "acme"
    # Deleted tenants keep their id taken (tenancy keeps the row when soft-deleted).
    await store.set_status(PEER_ID, TenantStatus.DELETED)
    with pytest.raises(ValueError, match="already exists"):
        await store.create(again)


async def test_a_uuid_id_is_used_as_it_is(store, su) -> None:
    u = str(uuid.uuid4())
    created = await store.create(new_tenant(id=u))
    assert created.id == u
    stored = await row(su, uuid.UUID(u))
    assert stored is not None and ID_KEY not in stored[1]  # nothing to keep
    # Another spelling of a uuid names the same tenant, and is kept as given.
    upper = str(uuid.uuid4()).upper()
    made = await store.create(new_tenant(id=upper))
    assert made.id == upper
    assert (await store.get_by_id(upper.lower())).id == upper
    with pytest.raises(ValueError, match="already exists"):
        await store.create(new_tenant(id=upper.lower()))


async def test_the_id_never_changes_after_metadata_operations(store) -> None:
    t = await store.create(new_tenant(id="tenant-aB3xYz9mQp", metadata={"a": 1}))
    # Each of these replaces or edits the stored metadata.
    for step in (
        store.update(t.model_copy(update={"metadata": {}})),
        store.update_metadata(t.id, {"b": 2}),
        store.remove_metadata_keys(t.id, ["b"]),
        store.update(t.model_copy(update={"metadata": {"c": 3}, "name": "Renamed"})),
    ):
        assert (await step).id == "tenant-aB3xYz9mQp"
    assert (await store.get_by_id("tenant-aB3xYz9mQp")).metadata == {"c": 3}


async def test_the_reserved_key_is_refused_in_written_metadata(store) -> None:
    t = await store.create(new_tenant(id=PEER_ID))
    for call in (
        store.create(new_tenant(metadata={ID_KEY: "t-other"})),
        store.update(t.model_copy(update={"metadata": {ID_KEY: "t-other"}})),
        store.update_metadata(PEER_ID, {ID_KEY: "t-other"}),
    ):
        with pytest.raises(ValueError, match="reserved"):
            await call
    assert (await store.get_by_id(PEER_ID)).id == PEER_ID
    assert await store.count() == 1


async def test_an_edited_kept_id_is_not_believed(store, su) -> None:
    # A kept id that does not map to the row's uuid (edited in SQL) is ignored:
    # the store never returns an id that would not find the tenant.
    await store.create(new_tenant(id=PEER_ID))
    await su.execute(
        "SELECT tenancy.merge_metadata(%s, jsonb_build_object(%s::text, 'forged'))", [tenancy_id(PEER_ID), ID_KEY]
    )
    assert (await store.get_by_id(PEER_ID)).id == str(tenancy_id(PEER_ID))


async def test_schema_and_rls_tenants_keep_their_database_url(store) -> None:
    # fastapi-tenancy's stores keep database_url as given; tenancy has no
    # database for these tenants, so the store keeps it beside the metadata.
    url = "postgresql+asyncpg://u:p@h/db"
    t = await store.create(new_tenant(id=PEER_ID, database_url=url, metadata={"a": 1}))
    assert (t.database_url, t.metadata) == (url, {"a": 1})
    assert (await store.get_by_id(PEER_ID)).database_url == url
    assert (await store.update_metadata(PEER_ID, {"b": 2})).database_url == url
    cleared = await store.update(t.model_copy(update={"database_url": None}))
    assert cleared.database_url is None and cleared.id == PEER_ID
    schema = await store.create(
        new_tenant("initech", isolation_strategy=IsolationStrategy.SCHEMA, database_url=url)
    )
    assert schema.database_url == url


async def test_request_context_by_a_peer_id(store, su, app_pool, orders) -> None:
    t = await store.create(new_tenant("acme", id=PEER_ID))
    await su.execute("SELECT tenancy.grant_tenant(%s, %s)", [APP, tenancy_id(PEER_ID)])
    async with tenant_connection(app_pool, t) as conn:
        await conn.execute("INSERT INTO public.orders (item) VALUES ('anvil')")
        cur = await conn.execute("SELECT tenancy.current_tenant_id()")
        assert (await cur.fetchone())[0] == tenancy_id(PEER_ID)
        await check_rate_limit(conn, PEER_ID)
    async with app_pool.connection() as conn:
        async with tenant_transaction(conn, t) as current:
            assert current.id == PEER_ID and current.metadata == {}


# --- schema_name: an application's own schemas (SPEC §12) -----------------------


async def has_schema_name_arg(su: psycopg.AsyncConnection) -> bool:
    cur = await su.execute(
        "SELECT EXISTS (SELECT FROM pg_proc WHERE proname = 'create_tenant'"
        " AND 'schema_name' = ANY (proargnames))"
    )
    return bool((await cur.fetchone())[0])


@pytest.fixture
async def schema_name_arg(su: psycopg.AsyncConnection) -> None:
    if not await has_schema_name_arg(su):
        pytest.skip("the installed tenancy's create_tenant has no schema_name")


async def test_a_schema_tenant_adopts_its_existing_schema(store, su, notes_migration, schema_name_arg) -> None:
    # What a fastapi-tenancy application has: a schema of its own naming,
    # with the table the migration would make, and data in it.
    # The store's role may adopt only what it could grant: a schema (and
    # tables) owned by a role whose privileges it has; here its own.
    await su.execute("DROP SCHEMA IF EXISTS tenant_abc CASCADE")
    await su.execute(f"CREATE SCHEMA tenant_abc AUTHORIZATION {ADMIN}")
    await su.execute("CREATE TABLE tenant_abc.notes (id serial PRIMARY KEY, body text NOT NULL)")
    await su.execute(f"ALTER TABLE tenant_abc.notes OWNER TO {ADMIN}")
    await su.execute("INSERT INTO tenant_abc.notes (body) VALUES ('kept')")
    # A schema of someone else's is refused (42501), and nothing is created.
    await su.execute("DROP SCHEMA IF EXISTS tenant_theirs CASCADE")
    await su.execute("CREATE SCHEMA tenant_theirs")
    with pytest.raises(TenantAccessDeniedError, match="tenant_theirs"):
        await store.create(
            new_tenant("theirs", isolation_strategy=IsolationStrategy.SCHEMA, schema_name="tenant_theirs")
        )
    await su.execute("DROP SCHEMA tenant_theirs")
    assert await store.count() == 0
    t = await store.create(
        new_tenant("abc-corp", id="tenant-abc", isolation_strategy=IsolationStrategy.SCHEMA, schema_name="tenant_abc")
    )
    assert (t.id, t.schema_name) == ("tenant-abc", "tenant_abc")
    assert (await store.get_by_id("tenant-abc")).schema_name == "tenant_abc"
    cur = await su.execute("SELECT body FROM tenant_abc.notes")
    assert await cur.fetchall() == [("kept",)]  # its tables kept
    cur = await su.execute(
        "SELECT status FROM tenancy.migration_ledger WHERE tenant_id = %s AND migration = %s",
        [tenancy_id("tenant-abc"), notes_migration],
    )
    assert await cur.fetchall() == [("applied",)]  # a baseline: recorded, not run again
    # Renamed, it keeps its schema.
    renamed = await store.update(t.model_copy(update={"identifier": "abc-inc"}))
    assert renamed.schema_name == "tenant_abc"


async def test_schema_name_refusals(store, su, schema_name_arg) -> None:
    await store.create(new_tenant("first", isolation_strategy=IsolationStrategy.SCHEMA, schema_name="tenant_taken"))
    with pytest.raises(ValueError, match="tenant_taken"):  # 23505: another tenant's
        await store.create(new_tenant("second", isolation_strategy=IsolationStrategy.SCHEMA, schema_name="tenant_taken"))
    with pytest.raises(ValueError):  # 22023: an RLS tenant has no schema
        await store.create(new_tenant("third", isolation_strategy=IsolationStrategy.RLS, schema_name="tenant_third"))
    with pytest.raises(ValueError):  # 22023: not a schema name tenancy accepts
        await store.create(new_tenant("fourth", isolation_strategy=IsolationStrategy.SCHEMA, schema_name="public"))
    assert await store.count() == 1
    cur = await su.execute("SELECT count(*) FROM pg_namespace WHERE nspname IN ('tenant_third')")
    assert (await cur.fetchone())[0] == 0
