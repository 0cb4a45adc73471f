//! Every error tenancy raises, with its SQLSTATE from SPEC §3.  Functions here
//! never return: they raise a PostgreSQL ERROR (which aborts the statement, so
//! nothing a failing call did is kept).

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode as Code;

pub struct TenancyError {
    code: Code,
    message: String,
    detail: Option<String>,
    hint: Option<String>,
}

impl TenancyError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        TenancyError {
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }
    pub fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = Some(d.into());
        self
    }
    pub fn hint(mut self, h: impl Into<String>) -> Self {
        self.hint = Some(h.into());
        self
    }
    fn report(self) -> ErrorReport {
        let mut r = ErrorReport::new(self.code, self.message, "tenancy");
        if let Some(d) = self.detail {
            r = r.set_detail(d);
        }
        if let Some(h) = self.hint {
            r = r.set_hint(h);
        }
        r
    }
    pub fn raise(self) -> ! {
        self.report().report(PgLogLevel::ERROR);
        unreachable!("ERROR-level reports do not return")
    }
    /// Reports it as a WARNING (with its DETAIL and HINT) and goes on.
    pub fn warn(self) {
        self.report().report(PgLogLevel::WARNING);
    }
    /// Reports it as a NOTICE (with its DETAIL and HINT) and goes on.
    pub fn tell(self) {
        self.report().report(PgLogLevel::NOTICE);
    }
}

/// 00000: a NOTICE, what a call did that its caller should know.
pub fn notice(message: impl Into<String>) -> TenancyError {
    TenancyError::new(Code::ERRCODE_SUCCESSFUL_COMPLETION, message)
}

/// 01000: a WARNING that goes on.
pub fn warning(message: impl Into<String>) -> TenancyError {
    TenancyError::new(Code::ERRCODE_WARNING, message)
}

/// A value as error messages show it: control characters escaped, and cut
/// to 64 characters, so that hostile input cannot flood or garble a log.
pub fn shown(value: &str) -> String {
    let mut out = String::new();
    for (i, c) in value.chars().enumerate() {
        if i == 64 {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// P0002: the tenant does not exist.
pub fn tenant_not_found(what: impl std::fmt::Display) -> TenancyError {
    TenancyError::new(
        Code::ERRCODE_NO_DATA_FOUND,
        format!("tenant {what} not found"),
    )
}

/// 22023: a bad argument value.
pub fn invalid(message: impl Into<String>) -> TenancyError {
    TenancyError::new(Code::ERRCODE_INVALID_PARAMETER_VALUE, message)
}

/// 22023 for an argument that must not be NULL.
pub fn null_argument(arg: &str) -> TenancyError {
    invalid(format!("argument \"{arg}\" must not be null"))
}

/// 23505: something that must be unique already exists.
pub fn duplicate(message: impl Into<String>) -> TenancyError {
    TenancyError::new(Code::ERRCODE_UNIQUE_VIOLATION, message)
}

/// 55000: not allowed in the object's current state.
pub fn wrong_state(message: impl Into<String>) -> TenancyError {
    TenancyError::new(Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, message)
}

/// 42501: the role may not do this.
pub fn forbidden(message: impl Into<String>) -> TenancyError {
    TenancyError::new(Code::ERRCODE_INSUFFICIENT_PRIVILEGE, message)
}

/// 0A000: not available on this server.
pub fn unsupported(message: impl Into<String>) -> TenancyError {
    TenancyError::new(Code::ERRCODE_FEATURE_NOT_SUPPORTED, message)
}

/// Unwraps a required (non-NULL) argument or raises 22023 naming it.
pub fn required<T>(value: Option<T>, arg: &str) -> T {
    match value {
        Some(v) => v,
        None => null_argument(arg).raise(),
    }
}

/// Internal failures of the SPI layer are bugs, never user errors: report them
/// as such rather than letting a Rust panic surface.
pub fn internal(what: impl std::fmt::Display) -> ! {
    TenancyError::new(
        Code::ERRCODE_INTERNAL_ERROR,
        format!("tenancy internal error: {what}"),
    )
    .raise()
}
