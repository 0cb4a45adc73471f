"""Each SQLSTATE mapping, raised by a real call."""

from __future__ import annotations

import psycopg
import pytest
from conftest import APP

from app import tenant_request
from tenancy_errors import (
    AccessDenied,
    AlreadyExists,
    IllegalTransition,
    InvalidValue,
    NotSupported,
    RateLimited,
    TenancyError,
    TenantNotActive,
    TenantNotFound,
    from_psycopg,
    translating,
)


def test_p0002_tenant_not_found(app) -> None:
    with pytest.raises(LookupError) as e:
        with tenant_request(app, "nobody-here"):
            pass
    assert isinstance(e.value, TenantNotFound) and e.value.sqlstate == "P0002"
    assert isinstance(e.value.__cause__, psycopg.Error)


def test_22023_invalid_value(admin) -> None:
    with pytest.raises(ValueError) as e:
        admin.create("Acme_Corp", "Acme")
    assert isinstance(e.value, InvalidValue)
    assert 'invalid tenant identifier "Acme_Corp"' in str(e.value)
    assert e.value.hint  # tenancy explains the rule
    with pytest.raises(InvalidValue):
        admin.search("x", limit=-1)


def test_23505_already_exists(admin) -> None:
    admin.create("acme", "Acme")
    with pytest.raises(AlreadyExists) as e:
        admin.create("acme", "Acme again")
    assert isinstance(e.value, ValueError) and e.value.sqlstate == "23505"


def test_55000_not_active_and_illegal_transition(admin, app) -> None:
    t = admin.create("acme", "Acme")
    admin.grant(APP, t["id"])
    admin.suspend(t["id"])
    with pytest.raises(TenantNotActive, match="suspended, not active"):
        with tenant_request(app, "acme"):
            pass
    admin.delete(t["id"])  # soft: status deleted, which is final
    with pytest.raises(IllegalTransition, match="cannot go from deleted to active"):
        admin.activate(t["id"])


def test_55000_for_a_session_already_using_the_tenant(admin, app) -> None:
    t = admin.create("acme", "Acme")
    admin.grant(APP, t["id"])
    with pytest.raises(TenantNotActive):
        with tenant_request(app, "acme"):
            admin.suspend(t["id"])  # committed by the admin meanwhile
            app.execute("SELECT count(*) FROM public.orders")  # the next statement re-checks


def test_42501_access_denied(admin, app) -> None:
    admin.create("acme", "Acme")  # never granted to the app role
    with pytest.raises(PermissionError) as e:
        with tenant_request(app, "acme"):
            pass
    assert isinstance(e.value, AccessDenied)
    assert "may not act for tenant" in str(e.value)


def test_0a000_not_supported(admin) -> None:
    with pytest.raises(NotImplementedError) as e:
        admin.create("dbtenant", "Db", isolation="database")
    assert isinstance(e.value, NotSupported)
    assert "CREATE DATABASE tenant_dbtenant" in (e.value.detail or "")


def test_54000_rate_limited_with_retry_after(admin, app) -> None:
    t = admin.create("acme", "Acme", {"rate_limit_per_minute": 3})
    admin.grant(APP, t["id"])
    for _ in range(3):
        with tenant_request(app, "acme", rate_limit=True):
            pass
    with pytest.raises(RateLimited) as e:
        with tenant_request(app, "acme", rate_limit=True):
            pass
    assert e.value.sqlstate == "54000"
    assert isinstance(e.value.retry_after, int) and 0 < e.value.retry_after <= 60
    assert "rate limit of 3 requests per 60 s" in str(e.value)


def test_other_errors_stay_psycopg_errors(app) -> None:
    with pytest.raises(psycopg.errors.UndefinedTable):
        with translating():
            app.execute("SELECT * FROM no_such_table")
    err = psycopg.errors.DivisionByZero()
    assert from_psycopg(err) is err
    assert not isinstance(err, TenancyError)
