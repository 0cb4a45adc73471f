"""Translate tenancy's SQLSTATEs into fastapi-tenancy's exceptions.

tenancy reports every failure with a standard SQLSTATE (docs/api.md, "Errors").
fastapi-tenancy code catches its own exception classes (``TenantNotFoundError``
in resolvers, ``ValueError`` around ``create``, ``TenantInactiveError`` and
``RateLimitExceededError`` in the middleware), so the store raises exactly
those.  The classes defined here subclass both ``TenancyError`` and the
builtin a Python caller would reach for, so ``except ValueError`` and
``except TenancyError`` both work.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import psycopg
from fastapi_tenancy.core.exceptions import (
    RateLimitExceededError,
    TenancyError,
    TenantInactiveError,
    TenantNotFoundError,
)

__all__ = [
    "InvalidTenantValueError",
    "TenancyFeatureNotSupportedError",
    "TenantAccessDeniedError",
    "TenantAlreadyExistsError",
    "TenantRateLimitedError",
    "TenantStatusTransitionError",
    "translate",
]


class TenantAlreadyExistsError(TenancyError, ValueError):
    """23505: identifier, id, schema or database name already taken.

    ``TenantStore.create`` promises ``ValueError`` for duplicates.
    """


class InvalidTenantValueError(TenancyError, ValueError):
    """22023 (and 22003): an identifier, name, metadata, skip/limit... tenancy refuses."""


class TenantStatusTransitionError(TenancyError, ValueError):
    """55000 from an administrative call: a transition tenancy does not allow.

    fastapi-tenancy's stores accept any status change; tenancy only allows
    provisioning -> active, active <-> suspended, active|suspended -> deleted.
    """


class TenantAccessDeniedError(TenancyError, PermissionError):
    """42501: the role may not act for the tenant, or lacks EXECUTE/SELECT."""


class TenancyFeatureNotSupportedError(TenancyError, NotImplementedError):
    """0A000: e.g. database isolation without dblink (DETAIL has the SQL to run)."""


class TenantRateLimitedError(RateLimitExceededError):
    """54000 from ``tenancy.check_rate_limit``.

    A ``RateLimitExceededError`` (so fastapi-tenancy's middleware answers 429)
    that also carries ``retry_after``, parsed from the error's DETAIL
    ``Retry after N seconds.``
    """

    def __init__(
        self,
        tenant_id: str,
        limit: int,
        window_seconds: int,
        retry_after: int | None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(tenant_id, limit, window_seconds, details)
        self.retry_after = retry_after


# Message formats of tenancy 0.2 (src/errors.rs callers).  Only used to fill
# attributes; a message that does not match still maps to the right class.
_INACTIVE = re.compile(r'tenant "(?P<tenant>[^"]+)" is (?P<status>\w+), not active')
_RATE = re.compile(
    r'tenant "(?P<tenant>[^"]+)" is over its rate limit of (?P<limit>\d+) requests per (?P<window>\d+) s'
)
_RETRY = re.compile(r"Retry after (?P<seconds>\d+) seconds?")

Context = Literal["admin", "context"]


def translate(
    exc: psycopg.Error,
    *,
    context: Context = "admin",
    lookup: str | None = None,
) -> TenancyError:
    """Return the fastapi-tenancy exception for a psycopg error.

    ``context`` says what the statement was: ``"admin"`` for catalog changes
    (a 55000 is an illegal status transition) or ``"context"`` for
    ``set_tenant`` / reads under a tenant (a 55000 is an inactive tenant).
    ``lookup`` is the id or identifier the caller asked for, used for
    ``TenantNotFoundError.identifier``.  Raise the result ``from exc``.
    """
    diag = exc.diag
    state = exc.sqlstate
    message = diag.message_primary or str(exc)
    details: dict[str, Any] = {"sqlstate": state}
    if diag.message_detail:
        details["detail"] = diag.message_detail
    if diag.message_hint:
        details["hint"] = diag.message_hint

    if state == "P0002":
        return TenantNotFoundError(identifier=lookup, details=details)
    if state == "23505":
        return TenantAlreadyExistsError(message, details)
    if state in ("22023", "22003", "22P02"):
        # 22003: an int beyond PostgreSQL's integer; 22P02: text that is not a uuid.
        return InvalidTenantValueError(message, details)
    if state == "55000":
        m = _INACTIVE.search(message)
        if context == "context" or m is not None:
            tenant = m.group("tenant") if m else (lookup or "?")
            status = m.group("status") if m else "inactive"
            return TenantInactiveError(tenant, status, details)
        return TenantStatusTransitionError(message, details)
    if state == "42501":
        return TenantAccessDeniedError(message, details)
    if state == "0A000":
        return TenancyFeatureNotSupportedError(message, details)
    if state == "54000":
        m = _RATE.search(message)
        r = _RETRY.search(diag.message_detail or "")
        return TenantRateLimitedError(
            tenant_id=lookup or (m.group("tenant") if m else "?"),
            limit=int(m.group("limit")) if m else 0,
            window_seconds=int(m.group("window")) if m else 0,
            retry_after=int(r.group("seconds")) if r else None,
            details=details,
        )
    # The contract: unexpected storage errors are wrapped in TenancyError.
    return TenancyError(f"tenancy call failed: {message}", details)
