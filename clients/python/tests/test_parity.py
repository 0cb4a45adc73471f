"""One scenario, two stores: fastapi-tenancy's InMemoryTenantStore and ours.

The in-memory store is the library's reference behaviour (its own tests run
against it).  Every call of the scenario is recorded as plain data, results
and raised exception families alike, and the two transcripts must be equal.
Where tenancy deliberately differs, test_known_differences shows both sides.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi_tenancy import InMemoryTenantStore, Tenant, TenantNotFoundError, TenantStatus, TenantStore

from tenancy_store import TenancyTenantStore

# Fixed ids so both stores hold the very same tenants: uuids, and the kind of
# string ids fastapi-tenancy's own code and tests make (kept by the store).
IDENTIFIERS = ["acme", "acme-corp", "globex", "initech", "old-acme-labs"]
UUID_IDS = {name: str(uuid.UUID(int=i + 1, version=4)) for i, name in enumerate(IDENTIFIERS)}
PEER_IDS = {name: f"t-store-{i + 1:06d}" for i, name in enumerate(IDENTIFIERS)}
NAMES = {
    "acme": "Acme",
    "acme-corp": "Acme Corporation",
    "globex": "Globex, an ACME company",
    "initech": "Initech",
    "old-acme-labs": "Labs",
}
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def norm(t: Tenant) -> tuple[Any, ...]:
    # Timestamps differ by design (the server's clock); everything else must not.
    return (t.id, t.identifier, t.name, t.status.value, t.metadata)


async def record(log: list[Any], label: str, call) -> Any:
    try:
        result = await call
    except TenantNotFoundError:
        log.append((label, "raises TenantNotFoundError"))
        return None
    except ValueError:
        log.append((label, "raises ValueError"))
        return None
    if isinstance(result, Tenant):
        log.append((label, norm(result)))
    elif isinstance(result, (list, tuple)):
        log.append((label, [norm(t) for t in result]))
    else:
        log.append((label, result))
    return result


async def scenario(store: TenantStore, ids: dict[str, str]) -> list[Any]:
    log: list[Any] = []
    # Created in identifier order, so both stores break search ties the same way.
    for i, ident in enumerate(ids):
        t = Tenant(
            id=ids[ident],
            identifier=ident,
            name=NAMES[ident],
            metadata={"n": i},
            # Only the in-memory store keeps these; the server's clock orders ours
            # the same way because the creates run one after the other.
            created_at=T0 + timedelta(seconds=i),
            updated_at=T0 + timedelta(seconds=i),
        )
        await record(log, f"create {ident}", store.create(t))
    acme, corp, globex, initech, labs = ids.values()

    await record(log, "create duplicate identifier", store.create(
        Tenant(id=str(uuid.uuid4()), identifier="acme", name="Again")))
    await record(log, "create duplicate id", store.create(
        Tenant(id=acme, identifier="fresh-one", name="Again")))
    await record(log, "get_by_id", store.get_by_id(globex))
    await record(log, "get_by_id missing", store.get_by_id(str(uuid.uuid4())))
    await record(log, "get_by_identifier", store.get_by_identifier("initech"))
    await record(log, "get_by_identifier missing", store.get_by_identifier("umbrella"))
    await record(log, "exists", store.exists(labs))
    await record(log, "exists missing", store.exists(str(uuid.uuid4())))
    await record(log, "list", store.list())
    await record(log, "list page", store.list(skip=1, limit=2))

    await record(log, "suspend", store.set_status(corp, TenantStatus.SUSPENDED))
    await record(log, "list suspended", store.list(status=TenantStatus.SUSPENDED))
    await record(log, "list active page", store.list(skip=1, limit=2, status=TenantStatus.ACTIVE))
    await record(log, "count", store.count())
    await record(log, "count active", store.count(TenantStatus.ACTIVE))
    await record(log, "activate", store.set_status(corp, TenantStatus.ACTIVE))

    await record(log, "merge", store.update_metadata(initech, {"plan": "pro", "n": 10}))
    await record(log, "merge again", store.update_metadata(initech, {"seats": 5}))
    current = await store.get_by_id(globex)
    await record(log, "update", store.update(current.model_copy(
        update={"name": "Globex Corporation", "identifier": "globex-corp", "metadata": {"x": 1}})))
    await record(log, "old identifier gone", store.get_by_identifier("globex"))
    await record(log, "new identifier", store.get_by_identifier("globex-corp"))

    await record(log, "search acme", store.search("acme"))
    await record(log, "search ACME limit 2", store.search("ACME", limit=2))
    await record(log, "search labs", store.search("labs"))
    await record(log, "search nothing", store.search("zzz"))

    await record(log, "get_by_ids", store.get_by_ids([labs, str(uuid.uuid4()), acme]))
    await record(log, "bulk suspend", store.bulk_update_status([initech, str(uuid.uuid4()), acme],
                                                                TenantStatus.SUSPENDED))
    await record(log, "count suspended", store.count(status=TenantStatus.SUSPENDED))

    await record(log, "delete", store.delete(labs))
    await record(log, "get deleted", store.get_by_id(labs))
    await record(log, "exists deleted", store.exists(labs))
    await record(log, "count after delete", store.count())

    missing = str(uuid.uuid4()) if ids is UUID_IDS else "t-store-999999"
    await record(log, "update missing", store.update(Tenant(id=missing, identifier="ghost", name="Ghost")))
    await record(log, "set_status missing", store.set_status(missing, TenantStatus.ACTIVE))
    await record(log, "update_metadata missing", store.update_metadata(missing, {"a": 1}))
    await record(log, "delete missing", store.delete(missing))
    await record(log, "final list", store.list(limit=10))
    return log


@pytest.mark.parametrize("ids", [UUID_IDS, PEER_IDS], ids=["uuid-ids", "string-ids"])
async def test_same_transcript_as_the_in_memory_store(store: TenancyTenantStore, ids: dict[str, str]) -> None:
    reference = await scenario(InMemoryTenantStore(), ids)
    ours = await scenario(store, ids)
    assert len(ours) == len(reference)
    for theirs_step, ours_step in zip(reference, ours, strict=True):
        assert ours_step == theirs_step


async def test_known_differences(store: TenancyTenantStore) -> None:
    """What tenancy does on purpose that the in-memory store does not."""
    memory = InMemoryTenantStore()
    a = Tenant(id=str(uuid.uuid4()), identifier="acme", name="Acme")
    for s in (memory, store):
        await s.create(a)

    # 1. Status transitions: deleted is final in tenancy.
    for s in (memory, store):
        await s.set_status(a.id, TenantStatus.DELETED)
    assert (await memory.set_status(a.id, TenantStatus.ACTIVE)).is_active()
    with pytest.raises(ValueError):
        await store.set_status(a.id, TenantStatus.ACTIVE)
    await memory.set_status(a.id, TenantStatus.DELETED)

    # 2. get_by_ids: a repeated id comes back once from tenancy.
    assert len(await memory.get_by_ids([a.id, a.id])) == 2
    assert len(await store.get_by_ids([a.id, a.id])) == 1

    # 3. create keeps the caller's timestamps in memory; tenancy uses its clock.
    b = Tenant(id=str(uuid.uuid4()), identifier="bygone", name="B", created_at=T0, updated_at=T0)
    assert (await memory.create(b)).created_at == T0
    assert (await store.create(b)).created_at > T0

    # 4. Identifiers: tenancy refuses some that Tenant's own validation accepts.
    odd = Tenant(id=str(uuid.uuid4()), identifier="ab--cd", name="Odd")
    await memory.create(odd)
    with pytest.raises(ValueError):
        await store.create(odd)
