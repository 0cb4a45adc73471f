"""``TenancyTenantStore``: fastapi-tenancy's ``TenantStore`` on tenancy's SQL API.

Every method is one transaction on a pooled psycopg 3 async connection and
calls tenancy's functions; the store owns no table.  Validation, uniqueness,
status transitions, the atomic metadata merge, auditing and ``tenancy_events``
notifications all happen in the database, so they hold for every other
client of the same catalog too.

Connect the store as a tenant *administrator* role:
``GRANT USAGE ON SCHEMA tenancy`` and
``GRANT EXECUTE ON ALL ROUTINES IN SCHEMA tenancy`` (plus ``SELECT ON
tenancy.audit_log`` for :meth:`TenancyTenantStore.audit_log`).  Application
requests use a separate, unprivileged role (see ``tenancy_store.context``).
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import psycopg
from fastapi_tenancy.core.exceptions import TenancyError, TenantNotFoundError
from fastapi_tenancy.core.types import IsolationStrategy, Tenant, TenantStatus, TenantT
from fastapi_tenancy.storage.tenant_store import TenantStore
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from .errors import InvalidTenantValueError, translate
from .mapping import TENANT_COLUMNS, parse_uuid, row_to_tenant

__all__ = ["TenancyTenantStore"]

logger = logging.getLogger(__name__)

# Inside the class, `list` is the name of a method; annotations use this.
_List = builtins.list


class TenancyTenantStore(TenantStore[TenantT]):
    """A ``TenantStore`` whose tenants live in ``tenancy.tenants``.

    Args:
        conninfo: libpq connection string or URL for the store's own pool
            (``postgresql://admin@db/app``; not SQLAlchemy's ``+asyncpg`` form).
        pool: an ``AsyncConnectionPool`` to use instead; the store does not
            close a pool it was given.
        min_size, max_size: size of the pool the store creates.
        timeout: seconds to wait for a pooled connection before failing.
        model: the ``Tenant`` subclass to return (``TenantStore[AppTenant]``);
            extra fields need defaults, tenancy has no column for them.
        soft_delete: what :meth:`delete` does.  False (default) removes the
            row, as fastapi-tenancy's own stores do: ``TenancyManager`` soft-
            deletes through ``set_status(DELETED)`` and calls ``delete`` only
            for a hard delete.  True marks the tenant ``deleted``.
        destroy_data_on_delete: :meth:`delete` also drops the tenant's schema,
            deletes its rows from every RLS table or drops its database
            (``tenancy.delete_tenant(…, destroy_data => true)``).
        foreign_ids: what :meth:`create` does with an id that is not a uuid,
            such as the ``tenant-<token>`` ids ``TenancyManager.register_tenant``
            makes.  ``"replace"`` (default): tenancy assigns a UUIDv7 and the
            returned tenant carries it (the manager uses the returned id).
            ``"reject"``: ``ValueError``.
        database_url_template: fills ``Tenant.database_url`` for database
            tenants, e.g. ``"postgresql://app@db/{database_name}"``.
    """

    def __init__(
        self,
        conninfo: str = "",
        *,
        pool: AsyncConnectionPool | None = None,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 30.0,
        model: type[TenantT] = Tenant,  # type: ignore[assignment]
        soft_delete: bool = False,
        destroy_data_on_delete: bool = False,
        foreign_ids: Literal["replace", "reject"] = "replace",
        database_url_template: str | None = None,
    ) -> None:
        if foreign_ids not in ("replace", "reject"):
            raise ValueError(f"foreign_ids must be 'replace' or 'reject', got {foreign_ids!r}")
        self._owns_pool = pool is None
        self._pool = pool or AsyncConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            open=False,
            # Each method opens its own transaction explicitly; autocommit keeps
            # the connection idle (not "idle in transaction") between calls.
            kwargs={"autocommit": True},
        )
        self._model = model
        self._soft_delete = soft_delete
        self._destroy_data = destroy_data_on_delete
        self._foreign_ids = foreign_ids
        self._database_url_template = database_url_template
        self._open_lock: asyncio.Lock | None = None
        self._opened = False

    #############
    # Lifecycle #
    #############

    async def initialize(self) -> None:
        """Open the pool and check that the tenancy extension is installed.

        ``TenancyManager.initialize()`` calls this.  Idempotent.  It creates
        nothing: the catalog is the extension's (``CREATE EXTENSION tenancy``).
        """
        try:
            await self._ensure_open()
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    "SELECT extversion FROM pg_extension WHERE extname = 'tenancy'"
                )
                row = await cur.fetchone()
        except psycopg.Error as exc:  # PoolTimeout is one: server unreachable
            raise translate(exc) from exc
        if row is None:
            raise TenancyError(
                "the tenancy extension is not installed in this database",
                {"hint": "CREATE EXTENSION tenancy"},
            )
        logger.info("TenancyTenantStore ready (tenancy %s)", row[0])

    async def close(self) -> None:
        """Close the pool the store created (a pool passed in stays open)."""
        if self._owns_pool and self._opened:
            await self._pool.close()
            self._opened = False

    async def _ensure_open(self) -> None:
        if not self._owns_pool or self._opened:
            return
        if self._open_lock is None:  # created lazily: __init__ may run outside a loop
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if not self._opened:
                # No wait: an unreachable server then fails the first call after
                # `timeout`, and close() still stops the pool's workers.
                await self._pool.open(wait=False)
                self._opened = True

    ###########
    # Helpers #
    ###########

    async def _rows(
        self,
        sql: str,
        params: Sequence[Any] = (),
        *,
        lookup: str | None = None,
        setup: Sequence[tuple[str, Sequence[Any]]] = (),
    ) -> _List[dict[str, Any]]:
        """Run ``setup`` statements then ``sql`` in one transaction; all rows.

        Every psycopg error leaves as a fastapi-tenancy exception (P0002 ->
        TenantNotFoundError, 23505 -> ValueError, ...): the contract asks
        stores to wrap storage errors.
        """
        try:
            await self._ensure_open()
            async with self._pool.connection() as conn, conn.transaction():
                async with conn.cursor(row_factory=dict_row) as cur:
                    for stmt, args in setup:
                        await cur.execute(stmt, args)
                    await cur.execute(sql, params)
                    return await cur.fetchall()
        except psycopg.Error as exc:
            raise translate(exc, lookup=lookup) from exc

    async def _one_by_id(self, tenant_id: str, call: str, *args: Any) -> TenantT:
        """``SELECT <tenant columns> FROM <call>`` where the call's first
        parameter is the tenant's uuid.  An id that is not a uuid names no
        tenant: TenantNotFoundError without a query, as for a missing one."""
        tid = parse_uuid(tenant_id)
        if tid is None:
            raise TenantNotFoundError(identifier=str(tenant_id))
        rows = await self._rows(f"SELECT {TENANT_COLUMNS} FROM {call}", [tid, *args], lookup=str(tenant_id))
        return self._tenant(rows[0])

    @staticmethod
    async def _set_status_in(cur: Any, tid: Any, status: TenantStatus) -> dict[str, Any]:
        """``tenancy.set_status`` on the cursor of a transaction already open
        (create and update change the status in the same transaction)."""
        await cur.execute(
            f"SELECT {TENANT_COLUMNS} FROM tenancy.set_status(%s, %s::tenancy.tenant_status)",
            [tid, status.value],
        )
        row = await cur.fetchone()
        assert row is not None
        return row

    def _tenant(self, row: dict[str, Any]) -> TenantT:
        return row_to_tenant(row, self._model, self._database_url_template)

    def _tenants(self, rows: Iterable[dict[str, Any]]) -> _List[TenantT]:
        return [self._tenant(r) for r in rows]

    @staticmethod
    def _status(status: TenantStatus | str | None) -> str | None:
        # TenantStatus and tenancy.tenant_status have the same four values.
        return None if status is None else TenantStatus(status).value

    ############################
    # Required CRUD operations #
    ############################

    async def get_by_id(self, tenant_id: str) -> TenantT:
        """``tenancy.tenant(id)``; any status, deleted included."""
        return await self._one_by_id(tenant_id, "tenancy.tenant(%s)")

    async def get_by_identifier(self, identifier: str) -> TenantT:
        """``tenancy.tenant_by_identifier(identifier)``; any status."""
        rows = await self._rows(
            f"SELECT {TENANT_COLUMNS} FROM tenancy.tenant_by_identifier(%s)",
            [identifier],
            lookup=identifier,
        )
        return self._tenant(rows[0])

    async def create(self, tenant: TenantT) -> TenantT:
        """``tenancy.create_tenant``, provisioning included, in one transaction.

        - ``id``: kept when it is a uuid, else see ``foreign_ids``.
        - ``isolation_strategy``: None -> ``tenancy.default_isolation``;
          HYBRID -> tenancy's hybrid rule (``metadata.tier`` in
          ``tenancy.premium_tiers`` gets ``schema``, the rest ``rls``).
        - ``status``: the tenant is created ``active`` and then moved to
          SUSPENDED or DELETED in the same transaction; PROVISIONING is
          refused (``ValueError``): tenancy creates tenants active and no
          tenant goes back to provisioning.
        - ``schema_name``/``database_url``: tenancy derives them; a different
          value is refused (``ValueError``) rather than silently ignored.
        - ``created_at``/``updated_at``: the server's transaction time.

        Raises ``ValueError`` (``TenantAlreadyExistsError``) when the id or
        identifier is taken, deleted tenants included, and ``ValueError``
        (``InvalidTenantValueError``) for what tenancy's validators refuse.
        """
        status = TenantStatus(tenant.status)
        if status is TenantStatus.PROVISIONING:
            raise InvalidTenantValueError(
                "tenancy creates tenants active; status 'provisioning' cannot be stored",
                {"identifier": tenant.identifier},
            )
        tid = parse_uuid(tenant.id)
        if tid is None and self._foreign_ids == "reject":
            raise InvalidTenantValueError(
                f"tenant id {tenant.id!r} is not a uuid; tenancy ids are uuids",
                {"identifier": tenant.identifier},
            )

        setup: _List[tuple[str, Sequence[Any]]] = []
        isolation: str | None = None
        if tenant.isolation_strategy == IsolationStrategy.HYBRID:
            # Per-tenant "hybrid" means "decide by tier": let create_tenant do it.
            setup.append(("SELECT set_config('tenancy.default_isolation', 'hybrid', true)", ()))
        elif tenant.isolation_strategy is not None:
            isolation = IsolationStrategy(tenant.isolation_strategy).value

        try:
            await self._ensure_open()
            async with self._pool.connection() as conn, conn.transaction():
                async with conn.cursor(row_factory=dict_row) as cur:
                    for stmt, args in setup:
                        await cur.execute(stmt, args)
                    await cur.execute(
                        f"SELECT {TENANT_COLUMNS} FROM tenancy.create_tenant("
                        "%s, %s, %s, %s::tenancy.isolation, %s)",
                        [tenant.identifier, tenant.name, Jsonb(tenant.metadata), isolation, tid],
                    )
                    row = await cur.fetchone()
                    assert row is not None
                    self._check_derived(tenant, row)
                    if status is not TenantStatus.ACTIVE:
                        row = await self._set_status_in(cur, row["id"], status)
        except psycopg.Error as exc:
            raise translate(exc, lookup=tenant.identifier) from exc
        return self._tenant(row)

    def _check_derived(self, tenant: Tenant, row: dict[str, Any]) -> None:
        """Refuse a schema_name/database_url tenancy would not use.

        Raised inside the transaction, so the tenant just created is rolled back.
        """
        if tenant.schema_name is not None and tenant.schema_name != row["schema_name"]:
            raise InvalidTenantValueError(
                f"tenancy names this tenant's schema {row['schema_name']!r}, "
                f"not {tenant.schema_name!r}; schema names are derived from the identifier",
                {"identifier": tenant.identifier},
            )
        if tenant.database_url is not None:
            derived = row_to_tenant(row, Tenant, self._database_url_template).database_url
            if tenant.database_url != derived:
                raise InvalidTenantValueError(
                    "tenancy derives database names from the identifier; "
                    "database_url must be None or match database_url_template",
                    {"identifier": tenant.identifier},
                )

    async def update(self, tenant: TenantT) -> TenantT:
        """``tenancy.update_tenant`` (+ ``set_status`` when it changed), one transaction.

        Identifier, name, metadata (replaced whole) and status are written.
        Isolation, schema name and database are fixed at creation in tenancy:
        a different non-None value is refused with ``ValueError``.  A new
        identifier keeps the schema name.  Raises ``TenantNotFoundError``
        for an unknown id, ``ValueError`` for a taken identifier or an
        illegal status transition.
        """
        tid = parse_uuid(tenant.id)
        if tid is None:
            raise TenantNotFoundError(identifier=tenant.id)
        status = TenantStatus(tenant.status)
        try:
            await self._ensure_open()
            async with self._pool.connection() as conn, conn.transaction():
                async with conn.cursor(row_factory=dict_row) as cur:
                    # FOR UPDATE-free read: update_tenant locks the row itself;
                    # this read only feeds the fixed-field check below.
                    await cur.execute(f"SELECT {TENANT_COLUMNS} FROM tenancy.tenant(%s)", [tid])
                    current = await cur.fetchone()
                    assert current is not None
                    self._check_fixed(tenant, current)
                    await cur.execute(
                        f"SELECT {TENANT_COLUMNS} FROM tenancy.update_tenant(%s, %s, %s, %s)",
                        [tid, tenant.identifier, tenant.name, Jsonb(tenant.metadata)],
                    )
                    row = await cur.fetchone()
                    assert row is not None
                    if row["status"] != status.value:
                        row = await self._set_status_in(cur, tid, status)
        except psycopg.Error as exc:
            raise translate(exc, lookup=tenant.id) from exc
        return self._tenant(row)

    def _check_fixed(self, tenant: Tenant, current: dict[str, Any]) -> None:
        if (
            tenant.isolation_strategy is not None
            and IsolationStrategy(tenant.isolation_strategy).value != current["isolation"]
        ):
            raise InvalidTenantValueError(
                f"isolation is fixed at creation in tenancy (tenant is {current['isolation']!r})",
                {"tenant_id": tenant.id},
            )
        if tenant.schema_name is not None and tenant.schema_name != current["schema_name"]:
            raise InvalidTenantValueError(
                "schema_name is fixed at creation in tenancy", {"tenant_id": tenant.id}
            )
        if tenant.database_url is not None:
            derived = row_to_tenant(current, Tenant, self._database_url_template).database_url
            if tenant.database_url != derived:
                raise InvalidTenantValueError(
                    "the database is fixed at creation in tenancy", {"tenant_id": tenant.id}
                )

    async def delete(self, tenant_id: str) -> None:
        """``tenancy.delete_tenant``: removes the row unless ``soft_delete``.

        Hard delete runs with ``SET LOCAL tenancy.soft_delete = off``; the
        audit log keeps the history.  ``TenantNotFoundError`` when unknown.
        """
        tid = parse_uuid(tenant_id)
        if tid is None:
            raise TenantNotFoundError(identifier=str(tenant_id))
        soft = "on" if self._soft_delete else "off"
        await self._rows(
            "SELECT tenancy.delete_tenant(%s, %s)",
            [tid, self._destroy_data],
            lookup=str(tenant_id),
            setup=[("SELECT set_config('tenancy.soft_delete', %s, true)", [soft])],
        )

    async def list(
        self,
        skip: int = 0,
        limit: int = 100,
        status: TenantStatus | None = None,
    ) -> Sequence[TenantT]:
        """``tenancy.list_tenants``: newest first, ties by id descending."""
        rows = await self._rows(
            f"SELECT {TENANT_COLUMNS} FROM tenancy.list_tenants("
            "%s::integer, %s::integer, %s::tenancy.tenant_status)",
            [skip, limit, self._status(status)],
        )
        return self._tenants(rows)

    async def count(self, status: TenantStatus | None = None) -> int:
        """``tenancy.count_tenants``."""
        rows = await self._rows(
            "SELECT tenancy.count_tenants(%s::tenancy.tenant_status) AS n", [self._status(status)]
        )
        return int(rows[0]["n"])

    async def exists(self, tenant_id: str) -> bool:
        """``tenancy.tenant_exists``; False for a string that is not a uuid."""
        tid = parse_uuid(tenant_id)
        if tid is None:
            return False
        rows = await self._rows("SELECT tenancy.tenant_exists(%s) AS e", [tid])
        return bool(rows[0]["e"])

    async def set_status(self, tenant_id: str, status: TenantStatus) -> TenantT:
        """``tenancy.set_status``.

        Setting the current status again returns the row unchanged.  An
        illegal transition (e.g. deleted -> active) raises
        ``TenantStatusTransitionError`` (a ``ValueError``).
        """
        return await self._one_by_id(
            tenant_id, "tenancy.set_status(%s, %s::tenancy.tenant_status)", self._status(status)
        )

    async def update_metadata(self, tenant_id: str, metadata: dict[str, Any]) -> TenantT:
        """``tenancy.merge_metadata``: ``metadata || patch`` in one UPDATE.

        Concurrent merges never lose a key, with no retry loop (the
        SQLAlchemy store needs SERIALIZABLE and up to 25 retries for that).
        A key set to None is stored as JSON null; remove keys with
        :meth:`remove_metadata_keys`.
        """
        return await self._one_by_id(tenant_id, "tenancy.merge_metadata(%s, %s)", Jsonb(metadata))

    #####################################
    # Batch operations: one call each   #
    #####################################

    async def get_by_ids(self, tenant_ids: Iterable[str]) -> Sequence[TenantT]:
        """``tenancy.tenants_by_ids``: in the order of the ids, each once.

        Unknown ids, and strings that are not uuids, are skipped.
        """
        ids = [u for u in (parse_uuid(t) for t in tenant_ids) if u is not None]
        if not ids:
            return []
        rows = await self._rows(
            f"SELECT {TENANT_COLUMNS} FROM tenancy.tenants_by_ids(%s::uuid[])", [ids]
        )
        return self._tenants(rows)

    async def search(
        self,
        query: str,
        limit: int = 10,
        _scan_limit: int = 100,
    ) -> Sequence[TenantT]:
        """``tenancy.search_tenants``: case-insensitive substring, GIN-indexed.

        Ranked like ``InMemoryTenantStore``: exact identifier, identifier
        prefix, name contains, identifier contains; ties by identifier.
        ``_scan_limit`` is accepted for interface compatibility and unused:
        the search runs over every tenant in the database.
        """
        rows = await self._rows(
            f"SELECT {TENANT_COLUMNS} FROM tenancy.search_tenants(%s, %s::integer)",
            [query, limit],
        )
        return self._tenants(rows)

    async def bulk_update_status(
        self,
        tenant_ids: Iterable[str],
        status: TenantStatus,
    ) -> Sequence[TenantT]:
        """``tenancy.bulk_set_status``: one statement, all or nothing.

        Unknown ids are skipped; rows come back in the order of the ids.  If
        any transition is illegal nothing changes and
        ``TenantStatusTransitionError`` is raised.
        """
        ids = [u for u in (parse_uuid(t) for t in tenant_ids) if u is not None]
        if not ids:
            return []
        rows = await self._rows(
            f"SELECT {TENANT_COLUMNS} FROM tenancy.bulk_set_status("
            "%s::uuid[], %s::tenancy.tenant_status)",
            [ids, self._status(status)],
        )
        return self._tenants(rows)

    ##################################
    # tenancy extras (not in the ABC) #
    ##################################

    async def remove_metadata_keys(self, tenant_id: str, keys: Iterable[str]) -> TenantT:
        """``tenancy.remove_metadata_keys``: atomic removal of top-level keys."""
        return await self._one_by_id(tenant_id, "tenancy.remove_metadata_keys(%s, %s::text[])", _List(keys))

    async def destroy_data(self, tenant_id: str) -> None:
        """Mark the tenant deleted and destroy its data, keeping the row.

        ``tenancy.delete_tenant(id, destroy_data => true)`` with soft delete
        on: drops a schema tenant's schema, deletes an RLS tenant's rows from
        every table registered with ``enable_rls``, drops a database tenant's
        database at commit (needs dblink, else ``NotImplementedError``).
        """
        tid = parse_uuid(tenant_id)
        if tid is None:
            raise TenantNotFoundError(identifier=str(tenant_id))
        await self._rows(
            "SELECT tenancy.delete_tenant(%s, true)",
            [tid],
            lookup=str(tenant_id),
            setup=[("SELECT set_config('tenancy.soft_delete', 'on', true)", ())],
        )

    async def audit_log(
        self, tenant_id: str | None = None, limit: int = 100
    ) -> _List[dict[str, Any]]:
        """Rows of ``tenancy.audit_log``, newest first (needs SELECT on it).

        tenancy writes these itself, in the transaction of each change:
        ``create``, ``update``, ``status``, ``metadata``, ``delete``, ...
        """
        params: _List[Any] = []
        where = ""
        if tenant_id is not None:
            tid = parse_uuid(tenant_id)
            if tid is None:
                return []
            where = "WHERE tenant_id = %s"
            params.append(tid)
        params.append(limit)
        return await self._rows(
            "SELECT id, at, actor::text AS actor, tenant_id, action, details "
            f"FROM tenancy.audit_log {where} ORDER BY id DESC LIMIT %s",
            params,
        )
