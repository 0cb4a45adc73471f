"""The store is a drop-in TenantStore: same base, every method, same signatures."""

from __future__ import annotations

import inspect

import pytest
from fastapi_tenancy import (
    BaseIsolationProvider,
    RateLimitExceededError,
    TenancyError,
    TenantStore,
)
from fastapi_tenancy.core.types import IsolationProvider

import tenancy_store
from tenancy_store import TenancyIsolationProvider, TenancyTenantStore

# The batch methods and close() have base implementations (N+1 loops, no-op);
# a production store is expected to override them, and this one does.
OPTIONAL = ("get_by_ids", "search", "bulk_update_status", "close")
REQUIRED = sorted(TenantStore.__abstractmethods__)


def test_the_contract_is_what_we_think() -> None:
    # If fastapi-tenancy adds an abstract method, this fails before users do.
    assert REQUIRED == sorted(
        [
            "count",
            "create",
            "delete",
            "exists",
            "get_by_id",
            "get_by_identifier",
            "list",
            "set_status",
            "update",
            "update_metadata",
        ]
    )


def test_subclass_with_nothing_abstract_left() -> None:
    assert issubclass(TenancyTenantStore, TenantStore)
    assert not TenancyTenantStore.__abstractmethods__
    store = TenancyTenantStore("dbname=unused")  # no connection until first use
    assert isinstance(store, TenantStore)


@pytest.mark.parametrize("name", REQUIRED + list(OPTIONAL))
def test_method_overridden_async_and_signature_compatible(name: str) -> None:
    ours = TenancyTenantStore.__dict__.get(name)
    assert ours is not None, f"{name} is not implemented by TenancyTenantStore itself"
    theirs = getattr(TenantStore, name)
    assert inspect.iscoroutinefunction(ours), f"{name} must be async like the contract"

    p_ours = list(inspect.signature(ours).parameters.values())
    p_theirs = list(inspect.signature(theirs).parameters.values())
    # Every parameter of the contract, in order, same name, kind and default:
    # callers may pass any of them by position or by keyword.
    assert len(p_ours) >= len(p_theirs), name
    for a, b in zip(p_ours, p_theirs, strict=False):
        assert (a.name, a.kind, a.default) == (b.name, b.kind, b.default), (name, a, b)
    # Anything extra must be optional so contract-shaped calls still bind.
    for extra in p_ours[len(p_theirs) :]:
        assert extra.default is not inspect.Parameter.empty, (name, extra)


def test_isolation_provider_fits_the_manager() -> None:
    assert issubclass(TenancyIsolationProvider, BaseIsolationProvider)
    assert not TenancyIsolationProvider.__abstractmethods__
    # The structural protocol fastapi-tenancy checks at runtime.
    provider = TenancyIsolationProvider.__new__(TenancyIsolationProvider)
    assert isinstance(provider, IsolationProvider)


@pytest.mark.parametrize(
    ("cls", "bases"),
    [
        (tenancy_store.TenantAlreadyExistsError, (TenancyError, ValueError)),
        (tenancy_store.InvalidTenantValueError, (TenancyError, ValueError)),
        (tenancy_store.TenantStatusTransitionError, (TenancyError, ValueError)),
        (tenancy_store.TenantAccessDeniedError, (TenancyError, PermissionError)),
        (tenancy_store.TenancyFeatureNotSupportedError, (TenancyError, NotImplementedError)),
        (tenancy_store.TenantRateLimitedError, (RateLimitExceededError,)),
    ],
)
def test_exceptions_are_catchable_both_ways(cls: type, bases: tuple[type, ...]) -> None:
    assert issubclass(cls, bases)
