//! Observability (SPEC §10): what tenants are doing now and have done.
//!
//! `stats`: the live statistics, `tenancy.tenant_stats` and
//! `tenancy.tenant_activity`, kept in shared memory when the library is in
//! `shared_preload_libraries`, counted by executor hooks.
//!
//! A layer above `context`: it counts a statement for the tenant the
//! context's last check passed for.

pub mod stats;

/// Called from `_PG_init`: installs the hooks only while the postmaster
/// loads the library from `shared_preload_libraries`; a library loaded
/// later (CREATE EXTENSION, a session's first call) must not request shared
/// memory, and everything but the live statistics works as before.
pub fn init() {
    stats::init();
}
