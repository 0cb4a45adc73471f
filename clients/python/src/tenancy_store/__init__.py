"""fastapi-tenancy's TenantStore on the tenancy PostgreSQL extension.

    from tenancy_store import TenancyTenantStore, tenant_connection

    store = TenancyTenantStore("postgresql://tenant_admin@db/app")
    await store.initialize()
    tenant = await store.get_by_identifier("acme-corp")

    async with tenant_connection(app_pool, tenant) as conn:   # one request
        await conn.execute("SELECT * FROM orders")             # acme-corp's rows only
"""

from .context import check_rate_limit, tenant_connection, tenant_transaction
from .errors import (
    InvalidTenantValueError,
    TenancyFeatureNotSupportedError,
    TenantAccessDeniedError,
    TenantAlreadyExistsError,
    TenantRateLimitedError,
    TenantStatusTransitionError,
    translate,
)
from .mapping import ID_KEY, ID_NAMESPACE, tenancy_id
from .provider import TenancyIsolationProvider
from .store import TenancyTenantStore

__version__ = "0.1.0"

__all__ = [
    "ID_KEY",
    "ID_NAMESPACE",
    "InvalidTenantValueError",
    "TenancyFeatureNotSupportedError",
    "TenancyIsolationProvider",
    "TenancyTenantStore",
    "TenantAccessDeniedError",
    "TenantAlreadyExistsError",
    "TenantRateLimitedError",
    "TenantStatusTransitionError",
    "check_rate_limit",
    "tenant_connection",
    "tenancy_id",
    "tenant_transaction",
    "translate",
]
