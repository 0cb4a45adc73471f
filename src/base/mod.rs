//! The lowest layer: what every concern of tenancy is built on, and which
//! knows nothing of tenants.

pub mod db;
pub mod errors;
pub mod fmgr;
pub mod security;
pub mod settings;
pub mod sqltypes;
pub mod validate;
