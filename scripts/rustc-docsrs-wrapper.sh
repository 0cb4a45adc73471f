#!/usr/bin/env bash
# RUSTC_WRAPPER for scripts/check-features.sh: compiles pgrx-pg-sys from the
# bindings it ships for every PostgreSQL version (its docs.rs mode), so the
# crate can be type-checked for pg13..pg18 without those servers installed.
rustc=$1; shift
for a in "$@"; do
  if [ "$a" = pgrx_pg_sys ]; then exec "$rustc" "$@" --cfg docsrs; fi
done
exec "$rustc" "$@"
