//! How a tenant's data is kept apart (SPEC §4): row-level security on
//! shared tables, a schema or a database of its own, the privileges those
//! rest on, and the migrations that build a schema tenant's tables.

pub mod footprint;
pub mod migrations;
pub mod privileges;
pub mod provision;
pub mod references;
pub mod rls;
