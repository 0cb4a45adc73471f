"""Tenant administration through tenancy's functions, as a non-superuser admin."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ADMIN, APP, DB, dsn

from tenancy_errors import TenantNotFound


def audit(dba, tenant_id) -> list[str]:
    rows = dba.execute(
        "SELECT action FROM tenancy.audit_log WHERE tenant_id = %s ORDER BY id", [tenant_id]
    ).fetchall()
    return [r[0] for r in rows]


def test_create_and_get(admin, dba) -> None:
    t = admin.create("acme-corp", "Acme Corporation", {"plan": "pro"})
    assert (t["status"], t["isolation"], t["metadata"]) == ("active", "rls", {"plan": "pro"})
    assert admin.get("acme-corp")["id"] == t["id"]
    s = admin.create("globex", "Globex", isolation="schema")
    assert s["schema_name"] == "tenant_globex"
    # Provisioned with the registered migration, in the same transaction.
    assert dba.execute("SELECT to_regclass('tenant_globex.invoices') IS NOT NULL").fetchone() == (True,)
    assert audit(dba, s["id"]) == ["create", "provision"]


def test_merge_metadata(admin, dba) -> None:
    t = admin.create("acme", "Acme", {"plan": "pro", "limits": {"api": 1}})
    m = admin.merge_metadata(t["id"], {"seats": 25, "limits": {"api": 1000}})
    assert m["metadata"] == {"plan": "pro", "seats": 25, "limits": {"api": 1000}}
    assert audit(dba, t["id"]) == ["create", "metadata"]
    with pytest.raises(ValueError):
        admin.merge_metadata(t["id"], ["not", "an", "object"])


def test_suspend_and_activate(admin, dba) -> None:
    t = admin.create("acme", "Acme")
    assert admin.suspend(t["id"])["status"] == "suspended"
    assert admin.suspend(t["id"])["status"] == "suspended"  # again: a no-op
    assert admin.activate(t["id"])["status"] == "active"
    assert audit(dba, t["id"]) == ["create", "status", "status"]


def test_search(admin) -> None:
    admin.create("acme", "Acme")
    admin.create("acme-corp", "Acme Corporation")
    admin.create("globex", "Globex, an ACME company")
    admin.create("old-acme-labs", "Labs")
    admin.create("initech", "Initech")
    assert [t["identifier"] for t in admin.search("ACME")] == ["acme", "acme-corp", "globex", "old-acme-labs"]
    assert [t["identifier"] for t in admin.search("acme", limit=1)] == ["acme"]
    assert admin.search("%") == []  # literal, not a wildcard


def test_delete_soft_then_hard_with_data(admin, dba, app) -> None:
    t = admin.create("hooli", "Hooli", isolation="schema")
    admin.delete(t["id"])  # soft
    assert admin.get("hooli")["status"] == "deleted"
    admin.delete(t["id"], hard=True, destroy_data=True)
    with pytest.raises(TenantNotFound):
        admin.get("hooli")
    assert dba.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'tenant_hooli'").fetchone() == (0,)
    assert audit(dba, t["id"])[-2:] == ["delete", "destroy"]  # history outlives the row
    with pytest.raises(LookupError):
        admin.delete(t["id"])


def test_the_demo_runs(dba) -> None:
    here = Path(__file__).resolve().parent.parent
    env = dict(os.environ, DBA_DSN=dsn(), ADMIN_DSN=dsn(ADMIN), APP_DSN=dsn(APP), APP_ROLE=APP)
    out = subprocess.run([sys.executable, "app.py"], cwd=here, env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "demo-acme sees [('anvil', 2), ('rocket skates', 1)]" in lines
    assert "demo-globex sees [('hammock', 1)]" in lines
    assert "no tenant sees []" in lines
    assert "demo-hooli invoices ['99.50']" in lines
    assert any(line.startswith("suspended tenant refused: TenantNotActive") for line in lines)
    assert lines[-1] == "cleaned up"
    assert DB  # the demo ran against the test database


def test_export_import_round_trip(admin, dba) -> None:
    """export_tenant through COPY TO STDOUT, import_tenant from COPY FROM STDIN."""
    t = admin.create("acme", "Acme", {"plan": "pro"})
    dba.execute(
        "INSERT INTO public.orders (tenant_id, item, qty) VALUES (%s, %s, 2), (%s, %s, 1)",
        [t["id"], 'anvil "heavy"', t["id"], "rocket\nskates"],
    )
    dba.execute("SELECT tenancy.grant_all_tenants(%s)", [ADMIN])  # export needs access to the tenant
    try:
        lines = admin.export(t["id"])
        assert len(lines.splitlines()) == 3  # header + 2 rows
        copy = admin.import_(lines, "acme-copy")
    finally:
        dba.execute("SELECT tenancy.revoke_all_tenants(%s)", [ADMIN])
    assert (copy["metadata"], copy["isolation"]) == ({"plan": "pro"}, "rls")
    rows = "SELECT id, item, qty FROM public.orders WHERE tenant_id = %s ORDER BY id"
    assert dba.execute(rows, [copy["id"]]).fetchall() == dba.execute(rows, [t["id"]]).fetchall()
    assert audit(dba, copy["id"]) == ["create", "import"]
