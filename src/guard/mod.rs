//! Guard rails (SPEC §11): what tenancy checks about a database that the
//! other layers set up, and what it does for tables nobody registered.
//!
//! - `doctor`: `tenancy.doctor()`, one row per way the database lets a
//!   tenant's rows out (a table never isolated, a policy undone, a view run
//!   with its owner's rights, a key that answers for other tenants…), each
//!   with the SQL that repairs it.  The checks are SQL over `pg_catalog` and
//!   tenancy's registries, in `sql/doctor.sql`.
//! - `auto_rls`: with `tenancy.auto_rls` on, a table that gains the tenant
//!   column is isolated by `enable_rls` in the same transaction.
//!
//! The top layer: it reads what every layer below leaves behind and calls
//! `enable_rls` (isolation); nothing below calls into it.

pub mod auto_rls;
pub mod doctor;
