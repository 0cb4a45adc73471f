//! Integrations (SPEC §7): the tenant context from PostgREST's JWT claims,
//! and a per-tenant rate limit that SQL clients call once per request.

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::prelude::*;
use serde_json::Value;

use crate::base::db::{self, Mode};
use crate::base::errors::{self, required};
use crate::base::settings;
use crate::base::validate;
use crate::catalog::tenants::{self, Tenant};
use crate::context;

// Superuser-set (postgresql.conf, ALTER DATABASE/ROLE … SET by a
// superuser): a role that may act for a tenant must not raise its own limit
// or shrink the window with SET.
pub static RATE_LIMIT_PER_MINUTE: GucSetting<i32> = GucSetting::<i32>::new(100);
pub static RATE_LIMIT_WINDOW: GucSetting<i32> = GucSetting::<i32>::new(60);

pub fn init() {
    GucRegistry::define_int_guc(
        c"tenancy.rate_limit_per_minute",
        c"Requests a tenant may make per window when its metadata has no rate_limit_per_minute.",
        c"",
        &RATE_LIMIT_PER_MINUTE,
        1,
        i32::MAX,
        GucContext::Suset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"tenancy.rate_limit_window",
        c"Length of the sliding window of tenancy.check_rate_limit.",
        c"",
        &RATE_LIMIT_WINDOW,
        1,
        86400,
        GucContext::Suset,
        GucFlags::UNIT_S,
    );
}

/// Makes the tenant named by a claim of PostgREST's `request.jwt.claims`
/// (an identifier or a uuid) the context, exactly as `set_tenant` would.
/// PostgREST users call it from their pre-request function.
#[pg_extern(volatile, requires = ["isolation_catalog"])]
fn set_tenant_from_claims(
    claim: default!(Option<&str>, "'tenant_id'"),
    is_local: default!(Option<bool>, true),
) -> pgrx::composite_type!('static, "tenants") {
    let claim = required(claim, "claim");
    let is_local = required(is_local, "is_local");
    let claims = settings::get(c"request.jwt.claims");
    if claims.is_empty() {
        errors::invalid("request.jwt.claims is not set")
            .hint("PostgREST sets it for each request; outside PostgREST, set it with set_config('request.jwt.claims', '{...}', true).")
            .raise();
    }
    let parsed: Value = serde_json::from_str(&claims)
        .unwrap_or_else(|_| errors::invalid("request.jwt.claims is not valid JSON").raise());
    let tenant = match parsed.get(claim) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Null) | None => errors::invalid(format!(
            "the JWT has no \"{}\" claim",
            errors::shown(claim)
        ))
        .hint("Name the claim that holds the tenant: tenancy.set_tenant_from_claims('claim_name').")
        .raise(),
        Some(_) => errors::invalid(format!(
            "the JWT claim \"{}\" is not a string",
            errors::shown(claim)
        ))
        .raise(),
    };
    context::set_tenant_checked(&tenant, is_local).row
}

/// Counts one request for the tenant (the current one when NULL) in a
/// sliding window; over the limit, raises 54000 with the seconds until a
/// request would be admitted.  Callers of one tenant are serialised by a
/// transaction-level lock only tenancy can take (`db::lock_tenant`; an
/// advisory lock would let any session block a tenant's requests), so the
/// count is exact under concurrency:
/// call it in its own short transaction (or autocommit), first in a request.
#[pg_extern(volatile, requires = ["isolation_catalog"])]
fn check_rate_limit(tenant: default!(Option<pgrx::Uuid>, "NULL")) {
    let role = crate::base::security::current_role();
    let t: Tenant = match tenant {
        Some(id) => {
            let t = tenants::find_by_id(id, Mode::Latest)
                .unwrap_or_else(|| errors::tenant_not_found(id).raise());
            // Same checks as set_tenant: only an active tenant's requests count.
            context::check_usable(&t, role);
            t
        }
        None => context::current(role).unwrap_or_else(|| {
            errors::invalid("no tenant given and no tenant context set")
                .hint("Pass the tenant's id, or call tenancy.set_tenant first.")
                .raise()
        }),
    };
    let default_limit = RATE_LIMIT_PER_MINUTE.get() as i64;
    let window = RATE_LIMIT_WINDOW.get() as f64;
    // Callers for one tenant queue here; the count below is read after the lock.
    db::lock_tenant(validate::LockPurpose::RateLimit, t.id, true);
    let metadata = t.row.get_by_name::<pgrx::JsonB>("metadata").ok().flatten();
    let limit = validate::metadata_rate_limit(
        metadata
            .as_ref()
            .and_then(|m| m.0.get("rate_limit_per_minute")),
    )
    .unwrap_or(default_limit);
    // The hits table is not the caller's: record as the extension owner.
    let admitted = crate::base::security::as_owner(|| {
        db::query_one(
            "WITH gone AS (DELETE FROM tenancy.rate_limit_hits h
                            WHERE h.tenant_id OPERATOR(pg_catalog.=) $1
                              AND h.at OPERATOR(pg_catalog.<=) pg_catalog.clock_timestamp() - pg_catalog.make_interval(secs => $2)
                        RETURNING 1),
                  live AS (SELECT pg_catalog.count(*) AS n, pg_catalog.min(h.at) AS oldest
                             FROM tenancy.rate_limit_hits h
                            WHERE h.tenant_id OPERATOR(pg_catalog.=) $1
                              AND h.at OPERATOR(pg_catalog.>) pg_catalog.clock_timestamp() - pg_catalog.make_interval(secs => $2)),
                  hit AS (INSERT INTO tenancy.rate_limit_hits (tenant_id, at)
                          SELECT $1, pg_catalog.clock_timestamp() FROM live WHERE live.n OPERATOR(pg_catalog.<) $3
                          RETURNING 1)
             SELECT (SELECT pg_catalog.count(*) FROM hit) OPERATOR(pg_catalog.>) 0,
                    GREATEST(0, pg_catalog.ceil(EXTRACT(epoch FROM
                        live.oldest + pg_catalog.make_interval(secs => $2) - pg_catalog.clock_timestamp())))::bigint,
                    (SELECT pg_catalog.count(*) FROM gone)
               FROM live",
            Mode::Write,
            &[t.id.into(), window.into(), limit.into()],
            |r| (r.must::<bool>(1), r.get::<i64>(2).unwrap_or(0)),
        )
    });
    if let Some((false, retry_after)) = admitted {
        errors::TenancyError::new(
            pgrx::PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            format!("tenant \"{}\" is over its rate limit of {limit} requests per {window} s", t.identifier),
        )
        .detail(format!("Retry after {} seconds.", retry_after.max(1)))
        .hint("The limit is the tenant's metadata rate_limit_per_minute, else tenancy.rate_limit_per_minute.")
        .raise();
    }
}
