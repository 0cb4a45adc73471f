"""tenancy's SQLSTATEs as Python exceptions.

tenancy raises every error with a standard SQLSTATE (docs/api.md, "Errors").
Application code should not compare SQLSTATE strings: ``translating()``
turns a psycopg error into the exception a Python caller expects, keeping the
original as ``__cause__`` and its DETAIL/HINT as attributes.

| SQLSTATE | exception | also a |
|---|---|---|
| P0002 | TenantNotFound | LookupError |
| 22023 | InvalidValue | ValueError |
| 23505 | AlreadyExists | ValueError |
| 55000 | TenantNotActive / IllegalTransition (both WrongState) | |
| 42501 | AccessDenied | PermissionError |
| 0A000 | NotSupported | NotImplementedError |
| 54000 | RateLimited (``retry_after`` seconds) | |
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

__all__ = [
    "AccessDenied",
    "AlreadyExists",
    "IllegalTransition",
    "InvalidValue",
    "NotSupported",
    "RateLimited",
    "TenancyError",
    "TenantNotActive",
    "TenantNotFound",
    "WrongState",
    "from_psycopg",
    "translating",
]


class TenancyError(Exception):
    """A tenancy error; ``sqlstate``, ``detail`` and ``hint`` come from the server."""

    def __init__(self, message: str, sqlstate: str | None = None,
                 detail: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.detail = detail
        self.hint = hint


class TenantNotFound(TenancyError, LookupError):
    """P0002: no tenant with that id or identifier."""


class InvalidValue(TenancyError, ValueError):
    """22023: bad identifier, name, metadata, skip/limit, NULL argument, setting."""


class AlreadyExists(TenancyError, ValueError):
    """23505: identifier, id, schema, database or migration name taken."""


class WrongState(TenancyError):
    """55000: the tenant is not in a state that allows this."""


class TenantNotActive(WrongState):
    """55000 from set_tenant or a read of the context: suspended or deleted."""


class IllegalTransition(WrongState):
    """55000 from set_status & co: e.g. deleted -> active."""


class AccessDenied(TenancyError, PermissionError):
    """42501: the role may not act for the tenant (or lacks a privilege)."""


class NotSupported(TenancyError, NotImplementedError):
    """0A000: e.g. a database tenant without dblink; DETAIL has the SQL to run."""


class RateLimited(TenancyError):
    """54000 from tenancy.check_rate_limit: ``retry_after`` seconds to wait."""

    def __init__(self, message: str, sqlstate: str | None = None,
                 detail: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, sqlstate, detail, hint)
        # DETAIL reads "Retry after N seconds." (docs/api.md, check_rate_limit)
        m = re.search(r"Retry after (\d+) seconds?", detail or "")
        self.retry_after: int | None = int(m.group(1)) if m else None


_BY_SQLSTATE: dict[str, type[TenancyError]] = {
    "P0002": TenantNotFound,
    "22023": InvalidValue,
    "23505": AlreadyExists,
    "42501": AccessDenied,
    "0A000": NotSupported,
    "54000": RateLimited,
}


def from_psycopg(exc: psycopg.Error) -> Exception:
    """The Python exception for ``exc``, or ``exc`` itself for other SQLSTATEs."""
    state = exc.sqlstate
    diag = exc.diag
    message = diag.message_primary or str(exc)
    if state == "55000":
        # One SQLSTATE, two situations; the message tells which.
        cls: type[TenancyError] = TenantNotActive if "not active" in message else IllegalTransition
    elif state in _BY_SQLSTATE:
        cls = _BY_SQLSTATE[state]
    else:
        return exc
    return cls(message, state, diag.message_detail, diag.message_hint)


@contextmanager
def translating() -> Iterator[None]:
    """Re-raise psycopg errors of the block as the exceptions above."""
    try:
        yield
    except psycopg.Error as exc:
        mapped = from_psycopg(exc)
        if mapped is exc:
            raise
        raise mapped from exc
