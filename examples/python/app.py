"""A small multi-tenant app on tenancy with psycopg 3.

Three roles, as in production:

- the DBA (a superuser) runs ``install()`` once: the shared ``orders`` table
  under RLS, a migration for schema tenants, privileges;
- an administrator role calls tenancy's lifecycle functions (``TenantAdmin``);
- the application role serves requests (``tenant_request``).  It must not be a
  superuser, have BYPASSRLS or own ``orders``: those bypass row-level security.

Run it (the database needs ``CREATE EXTENSION tenancy``)::

    ADMIN_DSN="dbname=app" APP_DSN="dbname=app user=app_role" APP_ROLE=app_role python app.py
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from tenancy_errors import translating

# Columns picked from the tenancy.tenants rows the functions return.
TENANT = "id, identifier, name, status::text AS status, isolation::text AS isolation, schema_name::text AS schema_name, metadata"


# --- One-time setup (DBA) ---------------------------------------------------------


def install(dba: psycopg.Connection, app_role: str) -> None:
    """Shared RLS table, schema-tenant migration and the app role's privileges.

    Idempotent: enable_rls is, the table uses IF NOT EXISTS, and the
    migration is registered only once (registered migrations are immutable).
    """
    with dba.transaction():
        dba.execute(
            "CREATE TABLE IF NOT EXISTS public.orders ("
            " id bigserial,"
            " tenant_id uuid NOT NULL,"  # filled in by enable_rls's column default
            " item text NOT NULL,"
            " qty integer NOT NULL DEFAULT 1,"
            " PRIMARY KEY (tenant_id, id))"  # keys lead with the tenant column
        )
        dba.execute("SELECT tenancy.enable_rls('public.orders')")
        role = sql.Identifier(app_role)
        dba.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON public.orders TO {}").format(role))
        dba.execute(sql.SQL("GRANT USAGE ON SEQUENCE public.orders_id_seq TO {}").format(role))
        registered = dba.execute(
            "SELECT 1 FROM tenancy.migrations WHERE name = %s", ["001_invoices"]
        ).fetchone()
        if registered is None:
            # Runs in every schema tenant's schema, at creation and by migrate().
            dba.execute(
                "SELECT tenancy.add_migration(%s, %s)",
                ["001_invoices",
                 "CREATE TABLE invoices (id bigserial PRIMARY KEY, total numeric(12,2) NOT NULL)"],
            )


# --- Tenant administration --------------------------------------------------------


class TenantAdmin:
    """tenancy's lifecycle functions, with errors as Python exceptions.

    ``conn`` is in autocommit mode: each call is its own transaction, which
    tenancy makes all or nothing (catalog change, audit row, notification).
    """

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def _one(self, query: str, params: list[Any]) -> dict[str, Any]:
        with translating(), self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query, params)
            row = cur.fetchone()
            assert row is not None
            return row

    def create(self, identifier: str, name: str, metadata: dict | None = None,
               isolation: str | None = None) -> dict[str, Any]:
        return self._one(
            f"SELECT {TENANT} FROM tenancy.create_tenant(%s, %s, %s, %s::tenancy.isolation)",
            [identifier, name, Jsonb(metadata or {}), isolation],
        )

    def get(self, identifier: str) -> dict[str, Any]:
        return self._one(f"SELECT {TENANT} FROM tenancy.tenant_by_identifier(%s)", [identifier])

    def merge_metadata(self, tenant_id: Any, patch: dict) -> dict[str, Any]:
        return self._one(f"SELECT {TENANT} FROM tenancy.merge_metadata(%s, %s)", [tenant_id, Jsonb(patch)])

    def suspend(self, tenant_id: Any) -> dict[str, Any]:
        return self._one(f"SELECT {TENANT} FROM tenancy.suspend_tenant(%s)", [tenant_id])

    def activate(self, tenant_id: Any) -> dict[str, Any]:
        return self._one(f"SELECT {TENANT} FROM tenancy.activate_tenant(%s)", [tenant_id])

    def search(self, query: str, limit: int = 10) -> list[dict[str, Any]]:
        with translating(), self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(f"SELECT {TENANT} FROM tenancy.search_tenants(%s, %s::integer)", [query, limit])
            return cur.fetchall()

    def grant(self, role: str, tenant_id: Any) -> None:
        with translating():
            self.conn.execute("SELECT tenancy.grant_tenant(%s, %s)", [role, tenant_id])

    def export(self, tenant_id: Any) -> bytes:
        """The tenant's data as JSON lines (SPEC §9), streamed with COPY.

        COPY takes no bind parameters: the id goes in as a quoted literal.
        The admin role must be allowed to act for the tenant.
        """
        query = sql.SQL("COPY (SELECT tenancy.export_tenant({}::uuid)) TO STDOUT").format(sql.Literal(str(tenant_id)))
        out = bytearray()
        with translating(), self.conn.cursor() as cur, cur.copy(query) as copy:
            for block in copy:
                out += block
        return bytes(out)

    def import_(self, lines: bytes, identifier: str | None = None) -> dict[str, Any]:
        """A new tenant from ``export()``'s lines: COPY them into a temporary
        table, then import_tenant, in one transaction (all or nothing)."""
        with translating(), self.conn.transaction(), self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute("CREATE TEMP TABLE tenancy_import (line jsonb) ON COMMIT DROP")
            with cur.copy("COPY tenancy_import FROM STDIN") as copy:
                copy.write(lines)
            cur.execute(f"SELECT {TENANT} FROM tenancy.import_tenant('tenancy_import', %s)", [identifier])
            row = cur.fetchone()
            assert row is not None
            return row

    def delete(self, tenant_id: Any, *, hard: bool = False, destroy_data: bool = False) -> None:
        """Soft delete (status ``deleted``) unless ``hard``; ``destroy_data`` drops the data."""
        with translating(), self.conn.transaction():
            # SET LOCAL through set_config: ends with this transaction.
            self.conn.execute(
                "SELECT set_config('tenancy.soft_delete', %s, true)", ["off" if hard else "on"]
            )
            self.conn.execute("SELECT tenancy.delete_tenant(%s, %s)", [tenant_id, destroy_data])


# --- Per request (application role) -----------------------------------------------


@contextmanager
def tenant_request(conn: psycopg.Connection, tenant: str, *,
                   rate_limit: bool = False) -> Iterator[dict[str, Any]]:
    """One request: a transaction that starts with ``set_tenant(tenant, true)``.

    ``is_local => true`` ends the tenant with the transaction, so the
    connection goes back to its pool with no tenant (the form to use behind a
    transaction-mode pooler).  With ``rate_limit`` the request is counted by
    ``tenancy.check_rate_limit()``.  Errors inside the block roll it back and
    leave as the exceptions of ``tenancy_errors``.
    """
    with translating(), conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"SELECT {TENANT} FROM tenancy.set_tenant(%s, true)", [tenant])
        row = cur.fetchone()
        if rate_limit:
            cur.execute("SELECT tenancy.check_rate_limit()")
        assert row is not None
        yield row


def add_order(conn: psycopg.Connection, item: str, qty: int = 1) -> int:
    # No tenant_id: the column default is the current tenant.
    row = conn.execute(
        "INSERT INTO public.orders (item, qty) VALUES (%s, %s) RETURNING id", [item, qty]
    ).fetchone()
    assert row is not None
    return int(row[0])


def list_orders(conn: psycopg.Connection) -> list[tuple[str, int]]:
    # No WHERE tenant_id: the policy filters.
    return [(r[0], r[1]) for r in conn.execute("SELECT item, qty FROM public.orders ORDER BY id")]


def add_invoice(conn: psycopg.Connection, total: str) -> None:
    # Unqualified: set_tenant put the schema tenant's schema first on search_path.
    conn.execute("INSERT INTO invoices (total) VALUES (%s::numeric)", [total])


def invoice_totals(conn: psycopg.Connection) -> list[str]:
    return [str(r[0]) for r in conn.execute("SELECT total FROM invoices ORDER BY id")]


# --- Demo ---------------------------------------------------------------------------


def main() -> int:
    dba_dsn = os.environ.get("DBA_DSN", os.environ.get("ADMIN_DSN", ""))
    admin_dsn = os.environ.get("ADMIN_DSN", "")
    app_dsn = os.environ["APP_DSN"]
    app_role = os.environ["APP_ROLE"]

    with psycopg.connect(dba_dsn, autocommit=True) as dba:
        install(dba, app_role)

    with psycopg.connect(admin_dsn, autocommit=True) as admin_conn, \
            psycopg.connect(app_dsn, autocommit=True) as app:
        # autocommit: every conn.transaction() below is a real BEGIN ... COMMIT.
        # Without it, a statement outside a block opens an implicit transaction
        # and the next transaction() is only a savepoint inside it, so the
        # tenant set there would outlive the "request".
        admin = TenantAdmin(admin_conn)
        acme = admin.create("demo-acme", "Acme Corporation", {"plan": "pro"})
        globex = admin.create("demo-globex", "Globex")
        hooli = admin.create("demo-hooli", "Hooli", isolation="schema")
        for t in (acme, globex, hooli):
            admin.grant(app_role, t["id"])
        print(f"created {acme['identifier']} ({acme['isolation']}), {globex['identifier']} "
              f"({globex['isolation']}), {hooli['identifier']} ({hooli['isolation']}, schema {hooli['schema_name']})")

        with tenant_request(app, "demo-acme"):
            add_order(app, "anvil", 2)
            add_order(app, "rocket skates")
        with tenant_request(app, "demo-globex"):
            add_order(app, "hammock")
        with tenant_request(app, "demo-acme"):
            print("demo-acme sees", list_orders(app))
        with tenant_request(app, "demo-globex"):
            print("demo-globex sees", list_orders(app))
        with app.transaction():
            print("no tenant sees", list_orders(app))

        with tenant_request(app, "demo-hooli"):
            add_invoice(app, "99.50")
            print("demo-hooli invoices", invoice_totals(app))

        print("metadata", admin.merge_metadata(acme["id"], {"seats": 25})["metadata"])
        print("search 'demo-'", [t["identifier"] for t in admin.search("demo-")])
        admin.suspend(globex["id"])
        try:
            with tenant_request(app, "demo-globex"):
                pass
        except Exception as exc:  # TenantNotActive
            print(f"suspended tenant refused: {type(exc).__name__}: {exc}")
        admin.activate(globex["id"])

        for t in (acme, globex, hooli):
            admin.delete(t["id"], hard=True, destroy_data=True)
        print("cleaned up")
    return 0


if __name__ == "__main__":
    sys.exit(main())
