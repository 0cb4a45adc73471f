//! SQL argument types pgrx does not map itself: `regrole` and `regclass`
//! (OIDs that PostgreSQL resolves from names, so callers may write
//! `'app_role'` or `'orders'`), and `name`.

use pgrx::callconv::{Arg, ArgAbi};
use pgrx::nullable::Nullable;
use pgrx::pg_sys;
use pgrx::pgrx_sql_entity_graph::metadata::{
    ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable, TypeOrigin,
};
use pgrx::prelude::*;

/// Lets pgrx pass the type as a function argument, through its FromDatum.
macro_rules! arg_from_datum {
    ($rust:ident) => {
        unsafe impl<'fcx> ArgAbi<'fcx> for $rust {
            unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
                let index = arg.index();
                unsafe { arg.unbox_arg_using_from_datum() }.unwrap_or_else(|| {
                    crate::base::errors::invalid(format!("argument {index} must not be null"))
                        .raise()
                })
            }
            unsafe fn unbox_nullable_arg(arg: Arg<'_, 'fcx>) -> Nullable<Self> {
                unsafe { arg.unbox_arg_using_from_datum() }.into()
            }
        }
    };
}

macro_rules! oid_alias {
    ($rust:ident, $sql:literal, $typoid:expr) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $rust(pub pg_sys::Oid);

        impl FromDatum for $rust {
            unsafe fn from_polymorphic_datum(
                datum: pg_sys::Datum,
                is_null: bool,
                _: pg_sys::Oid,
            ) -> Option<Self> {
                if is_null {
                    None
                } else {
                    Some($rust(pg_sys::Oid::from(datum.value() as u32)))
                }
            }
        }

        impl IntoDatum for $rust {
            fn into_datum(self) -> Option<pg_sys::Datum> {
                Some(pg_sys::Datum::from(self.0.to_u32()))
            }
            fn type_oid() -> pg_sys::Oid {
                $typoid
            }
        }

        // So that a function can return it, also in a row of a set.
        unsafe impl pgrx::callconv::BoxRet for $rust {
            unsafe fn box_into<'fcx>(
                self,
                fcinfo: &mut pgrx::callconv::FcInfo<'fcx>,
            ) -> pgrx::datum::Datum<'fcx> {
                unsafe { fcinfo.return_raw_datum(pg_sys::Datum::from(self.0.to_u32())) }
            }
        }

        unsafe impl SqlTranslatable for $rust {
            const TYPE_IDENT: &'static str = pgrx::pgrx_resolved_type!($rust);
            const TYPE_ORIGIN: TypeOrigin = TypeOrigin::External;
            const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> =
                Ok(SqlMappingRef::literal($sql));
            const RETURN_SQL: Result<ReturnsRef, ReturnsError> =
                Ok(ReturnsRef::One(SqlMappingRef::literal($sql)));
        }

        arg_from_datum!($rust);
    };
}

oid_alias!(RegRole, "regrole", pg_sys::REGROLEOID);
oid_alias!(RegClass, "regclass", pg_sys::REGCLASSOID);

/// A `name` argument, read as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name(pub String);

impl FromDatum for Name {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _: pg_sys::Oid,
    ) -> Option<Self> {
        if is_null {
            return None;
        }
        let p = datum.cast_mut_ptr::<std::ffi::c_char>();
        Some(Name(
            std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned(),
        ))
    }
}

impl IntoDatum for Name {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        let c = std::ffi::CString::new(self.0).unwrap_or_default();
        unsafe {
            let p = pg_sys::palloc0(pg_sys::NAMEDATALEN as usize) as *mut std::ffi::c_char;
            let bytes = c.as_bytes();
            let n = bytes.len().min(pg_sys::NAMEDATALEN as usize - 1);
            std::ptr::copy_nonoverlapping(bytes.as_ptr() as *const std::ffi::c_char, p, n);
            Some(pg_sys::Datum::from(p))
        }
    }
    fn type_oid() -> pg_sys::Oid {
        pg_sys::NAMEOID
    }
}

unsafe impl SqlTranslatable for Name {
    const TYPE_IDENT: &'static str = pgrx::pgrx_resolved_type!(Name);
    const TYPE_ORIGIN: TypeOrigin = TypeOrigin::External;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = Ok(SqlMappingRef::literal("name"));
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> =
        Ok(ReturnsRef::One(SqlMappingRef::literal("name")));
}

arg_from_datum!(Name);
