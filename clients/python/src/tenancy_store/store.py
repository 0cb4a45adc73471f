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
from fastapi_tenancy.core.exceptions import TenancyError
from fastapi_tenancy.core.types import IsolationStrategy, Tenant, TenantStatus, TenantT
from fastapi_tenancy.storage.tenant_store import TenantStore
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from .errors import InvalidTenantValueError, TenantAlreadyExistsError, translate
from .mapping import (
    ID_KEY,
    RESERVED_KEYS,
    TENANT_COLUMNS,
    check_peer_metadata,
    derived_database_url,
    kept_id,
    parse_uuid,
    row_to_tenant,
    stored_metadata,
    tenancy_id,
)

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
            makes or ``t-store-000001``.  ``"keep"`` (default): the tenant is
            found, updated and deleted by that id, which the store returns
            as given (its tenancy uuid is ``tenancy_id(id)``, a uuid5; see
            ``tenancy_store.mapping``).  ``"replace"``: tenancy assigns a
            UUIDv7 and the returned tenant carries it.  ``"reject"``:
            ``ValueError``.
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
        foreign_ids: Literal["keep", "replace", "reject"] = "keep",
        database_url_template: str | None = None,
    ) -> None:
        if foreign_ids not in ("keep", "replace", "reject"):
            raise ValueError(f"foreign_ids must be 'keep', 'replace' or 'reject', got {foreign_ids!r}")
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
        # Whether the installed tenancy's create_tenant takes schema_name
        # (added for moving over from fastapi-tenancy); asked once, the first
        # time a tenant carries one.
        self._has_schema_name_arg: bool | None = None

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
        parameter is the tenant's uuid, ``tenancy_id(tenant_id)``."""
        rows = await self._rows(
            f"SELECT {TENANT_COLUMNS} FROM {call}", [tenancy_id(tenant_id), *args], lookup=str(tenant_id)
        )
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

        - ``id``: see ``foreign_ids``; by default any string, kept as given.
        - ``isolation_strategy``: None -> ``tenancy.default_isolation``;
          HYBRID -> tenancy's hybrid rule (``metadata.tier`` in
          ``tenancy.premium_tiers`` gets ``schema``, the rest ``rls``).
        - ``status``: the tenant is created ``active`` and then moved to
          SUSPENDED or DELETED in the same transaction; PROVISIONING is
          refused (``ValueError``): tenancy creates tenants active and no
          tenant goes back to provisioning.
        - ``schema_name``: a schema tenant gets that schema
          (``create_tenant(…, schema_name => …)``, when the installed tenancy has it); an
          existing schema that is no other tenant's is adopted, its tables
          kept and the registered migrations recorded as applied.  Refused
          (``ValueError``) for a tenant tenancy does not isolate by schema.
          With a tenancy without it, only the derived name is accepted.
        - ``database_url``: a database tenant's is derived
          (``database_url_template``) and any other value is refused; a
          schema or RLS tenant's is kept as given, as fastapi-tenancy's
          stores keep it (tenancy itself has no database for them).
        - ``created_at``/``updated_at``: the server's transaction time.

        Raises ``ValueError`` (``TenantAlreadyExistsError``) when the id or
        identifier is taken, deleted tenants included, with the message of
        fastapi-tenancy's stores (``Tenant id='…' already exists.``), and
        ``ValueError`` (``InvalidTenantValueError``) for what tenancy's
        validators refuse.
        """
        status = TenantStatus(tenant.status)
        if status is TenantStatus.PROVISIONING:
            raise InvalidTenantValueError(
                "tenancy creates tenants active; status 'provisioning' cannot be stored",
                {"identifier": tenant.identifier},
            )
        check_peer_metadata(tenant.metadata)
        if self._foreign_ids == "keep":
            tid: uuid.UUID | None = tenancy_id(tenant.id)
            keep = kept_id(tenant.id)
        else:
            tid, keep = parse_uuid(tenant.id), None
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
        metadata = stored_metadata(tenant.metadata, keep, tenant.database_url)

        try:
            await self._ensure_open()
            async with self._pool.connection() as conn, conn.transaction():
                async with conn.cursor(row_factory=dict_row) as cur:
                    for stmt, args in setup:
                        await cur.execute(stmt, args)
                    if tenant.schema_name is not None and await self._schema_name_arg(cur):
                        await cur.execute(
                            f"SELECT {TENANT_COLUMNS} FROM tenancy.create_tenant("
                            "identifier => %s, name => %s, metadata => %s, "
                            "isolation => %s::tenancy.isolation, id => %s, schema_name => %s::name)",
                            [tenant.identifier, tenant.name, Jsonb(metadata), isolation, tid, tenant.schema_name],
                        )
                    else:
                        await cur.execute(
                            f"SELECT {TENANT_COLUMNS} FROM tenancy.create_tenant("
                            "%s, %s, %s, %s::tenancy.isolation, %s)",
                            [tenant.identifier, tenant.name, Jsonb(metadata), isolation, tid],
                        )
                    row = await cur.fetchone()
                    assert row is not None
                    self._check_derived(tenant, row)
                    if status is not TenantStatus.ACTIVE:
                        row = await self._set_status_in(cur, row["id"], status)
        except psycopg.Error as exc:
            raise self._duplicate(translate(exc, lookup=tenant.identifier), tenant) from exc
        return self._tenant(row)

    async def _schema_name_arg(self, cur: Any) -> bool:
        """Does the installed ``tenancy.create_tenant`` take ``schema_name``?"""
        if self._has_schema_name_arg is None:
            await cur.execute(
                "SELECT EXISTS (SELECT FROM pg_catalog.pg_proc p"
                " JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
                " WHERE n.nspname = 'tenancy' AND p.proname = 'create_tenant'"
                " AND 'schema_name' = ANY (p.proargnames)) AS has"
            )
            found = await cur.fetchone()
            self._has_schema_name_arg = bool(found and found["has"])
        return self._has_schema_name_arg

    @staticmethod
    def _duplicate(exc: TenancyError, tenant: Tenant) -> TenancyError:
        """A taken id or identifier, said as fastapi-tenancy's stores say it.

        tenancy names the uuid (``tenant id <uuid> already exists``); the
        caller knows its own id, so the message names that.
        """
        if not isinstance(exc, TenantAlreadyExistsError):
            return exc
        message = exc.message
        details = {**exc.details, "tenancy_message": message}
        if message.startswith("tenant id "):
            return TenantAlreadyExistsError(f"Tenant id={tenant.id!r} already exists.", details)
        if message.startswith("tenant identifier "):
            return TenantAlreadyExistsError(
                f"Tenant identifier={tenant.identifier!r} already exists.", details
            )
        return exc

    def _check_derived(self, tenant: Tenant, row: dict[str, Any]) -> None:
        """Refuse a schema_name/database_url tenancy would not use.

        Raised inside the transaction, so the tenant just created is rolled back.
        """
        if tenant.schema_name is not None and tenant.schema_name != row["schema_name"]:
            if row["isolation"] != IsolationStrategy.SCHEMA.value:
                raise InvalidTenantValueError(
                    f"tenant {tenant.identifier!r} is isolated by {row['isolation']}, "
                    f"so it has no schema; schema_name {tenant.schema_name!r} is for schema tenants",
                    {"identifier": tenant.identifier},
                )
            raise InvalidTenantValueError(
                f"tenancy names this tenant's schema {row['schema_name']!r}, "
                f"not {tenant.schema_name!r}; the installed tenancy derives schema names "
                "from the identifier (its create_tenant has no schema_name)",
                {"identifier": tenant.identifier},
            )
        if tenant.database_url is not None and row["database_name"] is not None:
            if tenant.database_url != derived_database_url(row, self._database_url_template):
                raise InvalidTenantValueError(
                    "tenancy derives database names from the identifier; a database "
                    "tenant's database_url must be None or match database_url_template",
                    {"identifier": tenant.identifier},
                )

    async def update(self, tenant: TenantT) -> TenantT:
        """``tenancy.update_tenant`` (+ ``set_status`` when it changed), one transaction.

        Identifier, name, metadata (replaced whole), status and a schema or
        RLS tenant's ``database_url`` are written.  Isolation, schema name
        and a database tenant's database are fixed at creation in tenancy: a
        different non-None value is refused with ``ValueError``.  A new
        identifier keeps the schema name, and the tenant keeps its id.
        Raises ``TenantNotFoundError`` for an unknown id, ``ValueError`` for
        a taken identifier or an illegal status transition.
        """
        check_peer_metadata(tenant.metadata)
        tid = tenancy_id(tenant.id)
        status = TenantStatus(tenant.status)
        try:
            await self._ensure_open()
            async with self._pool.connection() as conn, conn.transaction():
                async with conn.cursor(row_factory=dict_row) as cur:
                    # FOR UPDATE-free read: update_tenant locks the row itself;
                    # this read feeds the fixed-field check and the kept id.
                    await cur.execute(f"SELECT {TENANT_COLUMNS} FROM tenancy.tenant(%s)", [tid])
                    current = await cur.fetchone()
                    assert current is not None
                    self._check_fixed(tenant, current)
                    # The id the tenant was created with stays, whichever
                    # spelling of it this call used.
                    keep = current["metadata"].get(ID_KEY)
                    url = tenant.database_url if current["database_name"] is None else None
                    metadata = stored_metadata(tenant.metadata, keep, url)
                    await cur.execute(
                        f"SELECT {TENANT_COLUMNS} FROM tenancy.update_tenant(%s, %s, %s, %s)",
                        [tid, tenant.identifier, tenant.name, Jsonb(metadata)],
                    )
                    row = await cur.fetchone()
                    assert row is not None
                    if row["status"] != status.value:
                        row = await self._set_status_in(cur, tid, status)
        except psycopg.Error as exc:
            raise self._duplicate(translate(exc, lookup=tenant.id), tenant) from exc
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
        if tenant.database_url is not None and current["database_name"] is not None:
            if tenant.database_url != derived_database_url(current, self._database_url_template):
                raise InvalidTenantValueError(
                    "the database is fixed at creation in tenancy", {"tenant_id": tenant.id}
                )

    async def delete(self, tenant_id: str) -> None:
        """``tenancy.delete_tenant``: removes the row unless ``soft_delete``.

        Hard delete runs with ``SET LOCAL tenancy.soft_delete = off``; the
        audit log keeps the history.  ``TenantNotFoundError`` when unknown.
        """
        soft = "on" if self._soft_delete else "off"
        await self._rows(
            "SELECT tenancy.delete_tenant(%s, %s)",
            [tenancy_id(tenant_id), self._destroy_data],
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
        """``tenancy.tenant_exists``."""
        rows = await self._rows("SELECT tenancy.tenant_exists(%s) AS e", [tenancy_id(tenant_id)])
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
        check_peer_metadata(metadata)
        return await self._one_by_id(tenant_id, "tenancy.merge_metadata(%s, %s)", Jsonb(metadata))

    #####################################
    # Batch operations: one call each   #
    #####################################

    async def get_by_ids(self, tenant_ids: Iterable[str]) -> Sequence[TenantT]:
        """``tenancy.tenants_by_ids``: in the order of the ids, each once.

        Unknown ids are skipped.
        """
        ids = [tenancy_id(t) for t in tenant_ids]
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
        ids = [tenancy_id(t) for t in tenant_ids]
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
        """``tenancy.remove_metadata_keys``: atomic removal of top-level keys.

        The store's reserved keys are not in the caller's metadata, so
        naming them removes nothing.
        """
        keys = [k for k in keys if k not in RESERVED_KEYS]
        return await self._one_by_id(tenant_id, "tenancy.remove_metadata_keys(%s, %s::text[])", keys)

    async def destroy_data(self, tenant_id: str) -> None:
        """Mark the tenant deleted and destroy its data, keeping the row.

        ``tenancy.delete_tenant(id, destroy_data => true)`` with soft delete
        on: drops a schema tenant's schema, deletes an RLS tenant's rows from
        every table registered with ``enable_rls``, drops a database tenant's
        database at commit (needs dblink, else ``NotImplementedError``).
        """
        await self._rows(
            "SELECT tenancy.delete_tenant(%s, true)",
            [tenancy_id(tenant_id)],
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
            where = "WHERE tenant_id = %s"
            params.append(tenancy_id(tenant_id))
        params.append(limit)
        return await self._rows(
            "SELECT id, at, actor::text AS actor, tenant_id, action, details "
            f"FROM tenancy.audit_log {where} ORDER BY id DESC LIMIT %s",
            params,
        )
