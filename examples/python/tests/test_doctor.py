"""The example's setup passes tenancy's guard rails (docs/guard-rails.md):
doctor() finds no error on the database install() set up, so the pattern
the example ships stays free of the leaks it checks for."""

from __future__ import annotations

import psycopg


def test_doctor_finds_no_error(dba: psycopg.Connection) -> None:
    rows = dba.execute(
        "SELECT severity, object, problem FROM tenancy.doctor() WHERE severity = 'error'"
    ).fetchall()
    assert rows == [], "\n".join(f"{o}: {p}" for _, o, p in rows)
