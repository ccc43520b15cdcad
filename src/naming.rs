//! One naming mechanism for the crate's closed sets (backend, architecture, scope, data
//! source): serde names each variant; clap parses the same names through `ValueEnum` (feature
//! `cli`, with the same `rename_all`); `Display` and `FromStr` come from serde here, so a name
//! is written in exactly one place.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{G2dError, Result};

/// The serde name of a unit variant.
pub fn name_of<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => unreachable!("named enums serialise to strings"),
    }
}

/// Parses a serde name; `field` names the setting in the error.
pub fn parse_name<T: DeserializeOwned>(field: &str, s: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|e| G2dError::config(field, e.to_string()))
}

/// `Display` and `FromStr` through serde for the listed enums (`field` names them in errors).
macro_rules! serde_named {
    ($($ty:ty => $field:literal),+ $(,)?) => {$(
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&$crate::naming::name_of(self))
            }
        }
        impl std::str::FromStr for $ty {
            type Err = $crate::error::G2dError;
            fn from_str(s: &str) -> $crate::error::Result<Self> {
                $crate::naming::parse_name($field, s)
            }
        }
    )+};
}

serde_named!(
    crate::backend::BackendKind => "backend",
    crate::classifier::Arch => "arch",
    crate::params::Scope => "scope",
);
