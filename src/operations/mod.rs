//! Tenant data operations (SPEC §9): a tenant's data is its rows in every
//! table of `tenancy.rls_tables` and every table of its own schema.  Moving
//! it between isolations, exporting, importing and cloning it (where it is:
//! isolation::footprint).  Database tenants: 0A000 throughout.

pub mod export;
pub mod moving;
