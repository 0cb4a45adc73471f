"""Isolation as the app role: what each request sees and may write."""

from __future__ import annotations

import psycopg
import pytest
from conftest import APP, OTHER, dsn

from app import add_invoice, add_order, invoice_totals, list_orders, tenant_request
from tenancy_errors import AccessDenied


@pytest.fixture
def two_tenants(admin):
    acme = admin.create("acme", "Acme")
    globex = admin.create("globex", "Globex")
    for t in (acme, globex):
        admin.grant(APP, t["id"])
    return acme, globex


def test_each_tenant_sees_only_its_rows(app, dba, two_tenants) -> None:
    acme, globex = two_tenants
    with tenant_request(app, "acme") as t:
        assert t["identifier"] == "acme"
        add_order(app, "anvil", 2)
        add_order(app, "rope")
    with tenant_request(app, str(globex["id"])):  # a uuid works as well
        add_order(app, "gear")

    with tenant_request(app, "acme"):
        assert list_orders(app) == [("anvil", 2), ("rope", 1)]
    with tenant_request(app, "globex"):
        assert list_orders(app) == [("gear", 1)]
    # Behind the policy, every row carries its tenant's id.
    rows = dba.execute("SELECT tenant_id, count(*) FROM public.orders GROUP BY 1").fetchall()
    assert dict(rows) == {acme["id"]: 2, globex["id"]: 1}


def test_nothing_visible_or_writable_after_commit(app, two_tenants) -> None:
    with tenant_request(app, "acme"):
        add_order(app, "anvil")
    # The tenant ended with the transaction: the same connection sees nothing.
    assert app.execute("SHOW tenancy.tenant_id").fetchone() == ("",)
    assert list_orders(app) == []
    # tenant_id defaults to the current tenant, NULL now: the policy's WITH
    # CHECK refuses the row (before NOT NULL is even looked at).
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        add_order(app, "orphan")


def test_another_tenants_id_cannot_be_written(app, dba, two_tenants) -> None:
    _, globex = two_tenants
    with pytest.raises(AccessDenied):
        with tenant_request(app, "acme"):
            app.execute(
                "INSERT INTO public.orders (tenant_id, item) VALUES (%s, 'smuggled')", [globex["id"]]
            )
    with tenant_request(app, "acme"):
        # Updating a row into another tenant is refused by WITH CHECK as well.
        add_order(app, "anvil")
    with pytest.raises(AccessDenied):
        with tenant_request(app, "acme"):
            app.execute("UPDATE public.orders SET tenant_id = %s", [globex["id"]])
    assert dba.execute("SELECT count(*) FROM public.orders").fetchone() == (1,)


def test_a_failed_request_leaves_nothing(app, two_tenants) -> None:
    with pytest.raises(ZeroDivisionError):
        with tenant_request(app, "acme"):
            add_order(app, "lost")
            1 / 0
    with tenant_request(app, "acme"):
        assert list_orders(app) == []


def test_one_connection_serves_tenants_in_turn(app, two_tenants) -> None:
    # What a pool does: the same server session, one request after another.
    for item, tenant in [("a1", "acme"), ("g1", "globex"), ("a2", "acme")]:
        with tenant_request(app, tenant):
            add_order(app, item)
    for tenant, expected in [("globex", [("g1", 1)]), ("acme", [("a1", 1), ("a2", 1)])]:
        with tenant_request(app, tenant):
            assert list_orders(app) == expected


def test_is_local_without_a_transaction_fails_closed(app, two_tenants) -> None:
    with tenant_request(app, "acme"):
        add_order(app, "anvil")
    # In autocommit each statement is its own transaction: the tenant set by
    # this statement is gone at the next one, which sees no rows.
    app.execute("SELECT tenancy.set_tenant('acme', true)")
    assert list_orders(app) == []


def test_a_savepoint_is_not_a_request_boundary(two_tenants) -> None:
    # Without autocommit a stray statement opens a transaction and
    # transaction() becomes a savepoint: set_tenant(…, true) then lasts until
    # the outer transaction ends.  Hence autocommit connections in app.py.
    with psycopg.connect(dsn(APP)) as conn:
        conn.execute("SELECT 1")
        with tenant_request(conn, "acme"):
            pass
        assert conn.execute("SELECT identifier FROM tenancy.current_tenant()").fetchone() == ("acme",)
        conn.rollback()
        assert conn.execute("SELECT tenancy.current_tenant_id()").fetchone() == (None,)


def test_schema_tenant(admin, dba) -> None:
    hooli = admin.create("hooli", "Hooli", isolation="schema")
    initech = admin.create("initech", "Initech", isolation="schema")
    assert hooli["schema_name"] == "tenant_hooli"
    admin.grant(OTHER, hooli["id"])
    admin.grant(OTHER, initech["id"])
    with psycopg.connect(dsn(OTHER), autocommit=True) as conn:
        with tenant_request(conn, "hooli"):
            add_invoice(conn, "99.50")  # migrated table, reached unqualified
            assert invoice_totals(conn) == ["99.50"]
        with tenant_request(conn, "initech"):
            assert invoice_totals(conn) == []  # its own, empty, invoices
        # After COMMIT the schema is off search_path again.
        with pytest.raises(psycopg.errors.UndefinedTable):
            invoice_totals(conn)
        # Not granted: the app role may not act for a schema tenant it has no grant for.
    with psycopg.connect(dsn(APP), autocommit=True) as conn:
        with pytest.raises(AccessDenied):
            with tenant_request(conn, "hooli"):
                pass
