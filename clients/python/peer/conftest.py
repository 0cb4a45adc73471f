"""fastapi-tenancy's own store tests, run against tenancy-store.

test.sh unpacks the tests of the installed fastapi-tenancy's sdist into
``.peer/tests`` (their files, unchanged) and copies this conftest, with the
two store test files it runs, into ``.peer/tests/storage/tenancy/``: one
directory below their ``tests/storage/conftest.py``, so that pytest's own
fixture overriding gives our store fixtures precedence over theirs, while
everything else (``make_tenant``, the root conftest) stays theirs.

Only the store fixtures are replaced: ``any_sqla_store`` (the contract suite,
parametrised over SQLite/PostgreSQL/MySQL/MSSQL upstream) and
``postgres_store`` (their PostgreSQL tests) yield a ``TenancyTenantStore``
on the test database.  Tests that cannot pass against any store but theirs,
or that ask for what tenancy refuses on purpose, are marked here, with the
reason, and listed in clients/python/README.md.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest
import pytest_asyncio
from psycopg.conninfo import make_conninfo

from tenancy_store import TenancyTenantStore

DB = os.environ.get("TENANCY_TEST_DB", "tenancy_client_python")
ADMIN = "tenancy_client_python_admin"
HERE = Path(__file__).parent

PRIVATE = "patches or reads the SQLAlchemy store's private attributes ({attr}), which tenancy-store has not"
# test (Class::name) -> (reason, how): "xfail" = expected to fail, strictly
# (a pass would show up as a failure and the entry must go); "skip" = not run.
EXPECTED: dict[str, tuple[str, str]] = {
    "TestSQLAConstraints::test_generic_exception_wrapped_in_tenancy_error": (
        PRIVATE.format(attr="_session_factory"), "xfail"),
    "TestSQLADelete::test_delete_exception_wrapped": (PRIVATE.format(attr="_session_factory"), "xfail"),
    "TestSQLAUpdateMetadata::test_corrupted_metadata_gracefully_replaced": (
        PRIVATE.format(attr="_engine, to write invalid JSON into its tenants table"), "xfail"),
    "TestSQLAEdgeCases::test_corrupted_metadata_returns_empty_dict": (
        PRIVATE.format(attr="_engine, to write invalid JSON into its tenants table"), "xfail"),
    "TestSQLAEdgeCases::test_naive_datetime_coerced_to_utc": (
        PRIVATE.format(attr="_engine, to write naive timestamps into its tenants table"), "xfail"),
    "TestPostgreSQLDialect::test_dialect_detected": (PRIVATE.format(attr="_dialect"), "xfail"),
    "TestPostgreSQLDialect::test_connection_pool_not_static": (PRIVATE.format(attr="_engine.pool"), "xfail"),
    "TestSQLASetStatus::test_set_status_all_values": (
        "tenancy keeps its status transitions on purpose: deleted is final, so "
        "deleted -> provisioning is refused (55000, TenantStatusTransitionError)", "xfail"),
    "TestSQLAUpdate::test_update_clears_optional_fields": (
        "tenancy keeps on purpose that isolation is never null (resolved at creation, "
        "fixed after) and that only a schema tenant has a schema name: the RLS tenant "
        "with schema_name='tenant_x' this test creates is refused (22023)", "xfail"),
    "TestUpdateMetadataSingleTransaction::test_normal_merge_succeeds": (
        "builds fastapi-tenancy's own SQLAlchemyTenantStore on SQLite, not the store "
        "fixture: it says nothing about tenancy-store", "skip"),
    "TestUpdateMetadataSingleTransaction::test_concurrent_merges_are_consistent": (
        "builds fastapi-tenancy's own SQLAlchemyTenantStore on SQLite, not the store "
        "fixture: it says nothing about tenancy-store", "skip"),
}


# Needs tenancy's create_tenant(…, schema_name => …): expected to fail only
# where the installed tenancy lacks it (the store then accepts only the
# schema name tenancy derives).
NEEDS_SCHEMA_NAME = "TestSQLACreateRead::test_optional_fields_stored_and_retrieved"


def _has_schema_name_arg() -> bool:
    with psycopg.connect(make_conninfo(dbname=DB), autocommit=True) as su:
        found = su.execute(
            "SELECT EXISTS (SELECT FROM pg_proc WHERE proname = 'create_tenant'"
            " AND 'schema_name' = ANY (proargnames))"
        ).fetchone()
    return bool(found and found[0])


def pytest_configure(config: pytest.Config) -> None:
    # Their markers (registered in their pyproject.toml, which is not ours).
    for marker in ("unit", "integration", "e2e", "slow"):
        config.addinivalue_line("markers", f"{marker}: fastapi-tenancy's test marker")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    expected = dict(EXPECTED)
    if any(HERE in item.path.parents for item in items) and not _has_schema_name_arg():
        expected[NEEDS_SCHEMA_NAME] = (
            "gives a schema tenant the schema name 'tenant_abc': needs tenancy's "
            "create_tenant(…, schema_name => …), which the installed tenancy lacks", "xfail")
    for item in items:
        if HERE not in item.path.parents:
            continue
        key = "::".join(item.nodeid.split("::")[1:])
        if key not in expected:
            continue
        reason, how = expected[key]
        if how == "skip":
            item.add_marker(pytest.mark.skip(reason=reason))
        else:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True))


async def _wipe() -> None:
    """No tenant left (their tests count and list the whole catalog)."""
    async with await psycopg.AsyncConnection.connect(make_conninfo(dbname=DB), autocommit=True) as su:
        await su.execute("SET tenancy.soft_delete = off")
        await su.execute("SELECT tenancy.delete_tenant(id, true) FROM tenancy.tenants")


async def _store() -> AsyncIterator[TenancyTenantStore]:
    await _wipe()
    store = TenancyTenantStore(make_conninfo(dbname=DB, user=ADMIN), max_size=10)
    await store.initialize()
    try:
        yield store
    finally:
        await store.close()
        await _wipe()


@pytest_asyncio.fixture
async def any_sqla_store() -> AsyncIterator[TenancyTenantStore]:
    """Theirs yields a SQLAlchemyTenantStore per reachable backend; ours, tenancy-store."""
    async for store in _store():
        yield store


@pytest_asyncio.fixture
async def postgres_store() -> AsyncIterator[TenancyTenantStore]:
    """Theirs yields a SQLAlchemyTenantStore on PostgreSQL; ours, tenancy-store."""
    async for store in _store():
        yield store


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """The count of their tests alone, before pytest's line for the whole run."""
    counts: dict[str, int] = {}
    for outcome in ("passed", "failed", "error", "xfailed", "xpassed", "skipped"):
        reports = terminalreporter.stats.get(outcome, [])
        counts[outcome] = len({
            r.nodeid for r in reports
            if getattr(r, "nodeid", "") and str(HERE.relative_to(config.rootpath)) in r.nodeid
        })
    if not any(counts.values()):
        return
    version = os.environ.get("TENANCY_PEER_VERSION", "?")
    terminalreporter.write_line(
        f"fastapi-tenancy {version} tests/storage against tenancy-store: "
        f"{counts['passed']} passed, {counts['failed'] + counts['error'] + counts['xpassed']} failed, "
        f"{counts['xfailed']} expected failures, {counts['skipped']} skipped"
    )
