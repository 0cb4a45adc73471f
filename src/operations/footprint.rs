//! (SPEC §9: being built)
