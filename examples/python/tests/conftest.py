"""Fixtures: connections as the DBA (PGUSER), the admin role and the app role.

test.sh made the database (TENANCY_TEST_DB) and the roles.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from app import TenantAdmin, install

DB = os.environ.get("TENANCY_TEST_DB", "tenancy_example_python")
ADMIN = "tenancy_example_python_admin"
APP = "tenancy_example_python_app"
OTHER = "tenancy_example_python_other"


def dsn(role: str | None = None) -> str:
    return make_conninfo(dbname=DB, user=role) if role else make_conninfo(dbname=DB)


def slug(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def dba() -> Iterator[psycopg.Connection]:
    with psycopg.connect(dsn(), autocommit=True) as conn:
        yield conn


@pytest.fixture(autouse=True)
def installed(dba: psycopg.Connection) -> None:
    """The app's tables, then a catalog with no tenant and no order."""
    install(dba, APP)
    dba.execute("SET tenancy.soft_delete = off")
    dba.execute("SELECT tenancy.delete_tenant(id, true) FROM tenancy.tenants")
    dba.execute("RESET tenancy.soft_delete")
    dba.execute("TRUNCATE public.orders")


@pytest.fixture
def admin() -> Iterator[TenantAdmin]:
    with psycopg.connect(dsn(ADMIN), autocommit=True) as conn:
        yield TenantAdmin(conn)


@pytest.fixture
def app() -> Iterator[psycopg.Connection]:
    """The application's connection; autocommit so transaction() is BEGIN/COMMIT."""
    with psycopg.connect(dsn(APP), autocommit=True) as conn:
        yield conn
