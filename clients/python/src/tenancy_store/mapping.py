"""Between tenancy's ``tenancy.tenants`` rows and fastapi-tenancy's ``Tenant``.

| tenancy column           | Tenant field          | note |
|--------------------------|-----------------------|------|
| id uuid                  | id: str               | the caller's id (see "Ids" below) |
| identifier, name         | identifier, name      | tenancy's identifier rule is stricter (no ``--``, not uuid-like) |
| status tenant_status     | status: TenantStatus  | same four values |
| isolation isolation      | isolation_strategy    | always concrete; tenancy has no per-tenant ``hybrid`` |
| schema_name name         | schema_name           | derived by tenancy, fixed at creation |
| database_name name       | database_url          | a database tenant's from ``database_url_template``; a schema or RLS tenant's kept as given (``_tenancy_store_database_url``) |
| metadata jsonb           | metadata: dict        | without the reserved key ``_tenancy_store_id`` |
| created_at, updated_at   | same                  | UTC |

Ids
---
fastapi-tenancy's ``Tenant.id`` is any string (``TenancyManager.register_tenant``
makes ``tenant-<token>``); tenancy's ``tenancy.tenants.id`` is a uuid.
:func:`tenancy_id` maps one to the other without a lookup table:

- a string that parses as a uuid (any spelling Python's ``uuid.UUID`` reads)
  names that uuid;
- any other string names ``uuid5(ID_NAMESPACE, string)``, a name-based uuid
  in a namespace fixed forever (PostgreSQL computes the same with the
  uuid-ossp extension: ``uuid_generate_v5('<ID_NAMESPACE>', 't-store-000001')``).

So a lookup by the caller's id is ``tenancy.tenant(uuid)``, one primary-key
lookup, and a second tenant with the same id hits the primary key: the
database refuses the duplicate, atomically.  When the caller's string is not
the uuid's canonical text (``t-store-000001``, an upper-case uuid), it is
kept in the tenant's metadata under :data:`ID_KEY`, so the store returns
exactly the id it was given; the key is removed from the metadata the caller
sees and is refused in metadata the caller writes.  A kept id is believed
only when it maps to the row's uuid, so an edited key cannot make the store
return an id that does not find the tenant.
"""

from __future__ import annotations

import uuid
from datetime import UTC
from typing import Any

from fastapi_tenancy.core.types import IsolationStrategy, Tenant, TenantT

from .errors import InvalidTenantValueError

# Every query selects exactly these columns from a function returning
# tenancy.tenants, so a column added in a later tenancy version cannot break
# the mapping.  Enums and `name` are cast to text so psycopg hands back str.
TENANT_COLUMNS = (
    "id, identifier, name, status::text AS status, isolation::text AS isolation, "
    "schema_name::text AS schema_name, database_name::text AS database_name, "
    "metadata, created_at, updated_at"
)


# Fixed forever: changing it would lose every tenant created with a non-uuid id.
ID_NAMESPACE = uuid.UUID("ea1fb28f-5a95-4ac0-bace-2c57f219fe35")
# Where the caller's id is kept when it is not the canonical text of the uuid.
ID_KEY = "_tenancy_store_id"
# Where a schema or RLS tenant's database_url is kept: tenancy has no database
# for those tenants, fastapi-tenancy's stores keep the field as given.
URL_KEY = "_tenancy_store_database_url"
RESERVED_KEYS = (ID_KEY, URL_KEY)


def tenancy_id(peer_id: str | uuid.UUID) -> uuid.UUID:
    """The ``tenancy.tenants.id`` of the tenant whose fastapi-tenancy id is ``peer_id``.

    Deterministic and total: every string names exactly one uuid.
    """
    if isinstance(peer_id, uuid.UUID):
        return peer_id
    text = str(peer_id)
    try:
        return uuid.UUID(text)
    except ValueError:
        return uuid.uuid5(ID_NAMESPACE, text)


def kept_id(peer_id: str | uuid.UUID) -> str | None:
    """What to keep under :data:`ID_KEY` for ``peer_id``: None when the
    canonical text of its uuid already is the id."""
    text = str(peer_id)
    return None if text == str(tenancy_id(peer_id)) else text


def check_peer_metadata(metadata: dict[str, Any] | None) -> None:
    """Refuse the reserved keys in metadata the caller writes."""
    for key in RESERVED_KEYS:
        if metadata and key in metadata:
            raise InvalidTenantValueError(
                f"metadata key {key!r} is reserved by tenancy-store", {"key": key}
            )


def stored_metadata(
    metadata: dict[str, Any], keep_id: str | None, database_url: str | None = None
) -> dict[str, Any]:
    """The metadata to store: the caller's, plus what the store keeps."""
    out = dict(metadata)
    if keep_id is not None:
        out[ID_KEY] = keep_id
    if database_url is not None:
        out[URL_KEY] = database_url
    return out


def peer_id_of(row: dict[str, Any]) -> str:
    """The id the caller gave this tenant (its uuid's text if it gave none)."""
    kept = (row["metadata"] or {}).get(ID_KEY)
    if isinstance(kept, str) and tenancy_id(kept) == row["id"]:
        return kept
    return str(row["id"])


def parse_uuid(value: Any) -> uuid.UUID | None:
    """The uuid in ``value``, or None when it is not one (``foreign_ids``
    ``"replace"``/``"reject"``, where only uuid ids reach tenancy)."""
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        return None


def derived_database_url(row: dict[str, Any], template: str | None) -> str | None:
    """A database tenant's URL from ``database_url_template``, else None."""
    if template and row["database_name"]:
        return template.format(database_name=row["database_name"])
    return None


def row_to_tenant(
    row: dict[str, Any],
    model: type[TenantT] = Tenant,  # type: ignore[assignment]
    database_url_template: str | None = None,
) -> TenantT:
    """Build the domain model from a row selected with ``TENANT_COLUMNS``."""
    metadata = dict(row["metadata"] or {})
    kept_url = metadata.pop(URL_KEY, None)
    metadata.pop(ID_KEY, None)
    database_url = derived_database_url(row, database_url_template)
    if database_url is None and row["database_name"] is None and isinstance(kept_url, str):
        database_url = kept_url
    return model.model_validate(
        {
            "id": peer_id_of(row),
            "identifier": row["identifier"],
            "name": row["name"],
            "status": row["status"],
            "isolation_strategy": IsolationStrategy(row["isolation"]),
            "metadata": metadata,
            "created_at": row["created_at"].astimezone(UTC),
            "updated_at": row["updated_at"].astimezone(UTC),
            "database_url": database_url,
            "schema_name": row["schema_name"],
        }
    )
