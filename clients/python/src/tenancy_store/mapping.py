"""Between tenancy's ``tenancy.tenants`` rows and fastapi-tenancy's ``Tenant``.

| tenancy column           | Tenant field          | note |
|--------------------------|-----------------------|------|
| id uuid                  | id: str               | canonical lowercase uuid text |
| identifier, name         | identifier, name      | tenancy's identifier rule is stricter (no ``--``, not uuid-like) |
| status tenant_status     | status: TenantStatus  | same four values |
| isolation isolation      | isolation_strategy    | always concrete; tenancy has no per-tenant ``hybrid`` |
| schema_name name         | schema_name           | derived by tenancy, fixed at creation |
| database_name name       | database_url          | only when a ``database_url_template`` is given |
| metadata jsonb           | metadata: dict        | |
| created_at, updated_at   | same                  | UTC |
"""

from __future__ import annotations

import uuid
from datetime import UTC
from typing import Any

from fastapi_tenancy.core.types import IsolationStrategy, Tenant, TenantT

# Every query selects exactly these columns from a function returning
# tenancy.tenants, so a column added in a later tenancy version cannot break
# the mapping.  Enums and `name` are cast to text so psycopg hands back str.
TENANT_COLUMNS = (
    "id, identifier, name, status::text AS status, isolation::text AS isolation, "
    "schema_name::text AS schema_name, database_name::text AS database_name, "
    "metadata, created_at, updated_at"
)


def parse_uuid(value: Any) -> uuid.UUID | None:
    """The uuid in ``value``, or None when it is not one.

    fastapi-tenancy ids are opaque strings (its manager makes
    ``tenant-<token>``); tenancy's are uuids.  A string that is not a uuid
    cannot name a tenancy tenant, so lookups treat it as "not found" instead
    of sending it to the server and getting 22P02.
    """
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        return None


def row_to_tenant(
    row: dict[str, Any],
    model: type[TenantT] = Tenant,  # type: ignore[assignment]
    database_url_template: str | None = None,
) -> TenantT:
    """Build the domain model from a row selected with ``TENANT_COLUMNS``."""
    database_url = None
    if database_url_template and row["database_name"]:
        database_url = database_url_template.format(database_name=row["database_name"])
    return model.model_validate(
        {
            "id": str(row["id"]),
            "identifier": row["identifier"],
            "name": row["name"],
            "status": row["status"],
            "isolation_strategy": IsolationStrategy(row["isolation"]),
            "metadata": row["metadata"],
            "created_at": row["created_at"].astimezone(UTC),
            "updated_at": row["updated_at"].astimezone(UTC),
            "database_url": database_url,
            "schema_name": row["schema_name"],
        }
    )
