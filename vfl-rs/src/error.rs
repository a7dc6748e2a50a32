//! One error type for the whole core. Every failure a caller can cause is a value of this type,
//! never a panic, so the Python boundary can turn it into a clear exception.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq)]
pub enum VflError {
    /// A value of the right type but outside what the operation accepts (maps to `ValueError`).
    #[error("{0}")]
    Value(String),
    /// A value of the wrong type (maps to `TypeError`).
    #[error("{0}")]
    Type(String),
}

pub type Result<T> = std::result::Result<T, VflError>;

impl VflError {
    /// "Expected {expected} for {what}, got {got}" — the shape of every validation message.
    pub fn expected(what: impl AsRef<str>, expected: impl AsRef<str>, got: impl std::fmt::Display) -> Self {
        VflError::Value(format!("Expected {} for {}, got {}", expected.as_ref(), what.as_ref(), got))
    }

    pub fn value(msg: impl Into<String>) -> Self {
        VflError::Value(msg.into())
    }

    pub fn type_error(msg: impl Into<String>) -> Self {
        VflError::Type(msg.into())
    }
}
