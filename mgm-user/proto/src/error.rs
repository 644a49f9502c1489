// SPDX-License-Identifier: MIT OR Apache-2.0
//! The error replies: stable codes clients match on, with MGM's result codes.

use serde::{Deserialize, Serialize};

use crate::types::MgmError;

/// Stable error codes: clients match on these, never on messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The line is not a JSON object of the request shape.
    Malformed,
    /// The line is longer than [`MAX_FRAME`].
    TooLarge,
    /// `method` names no known method.
    UnknownMethod,
    /// The method is known but its parameters are wrong.
    InvalidParams,
    /// The named entry does not exist.
    NotFound,
    /// A named interface does not exist or is not managed.
    NoSuchInterface,
    /// A table is full.
    Full,
    /// The fast path refused a write (kernel error).
    FastPath,
    /// MGM ERROR_INVALID_PARAMETER (87): bad handle, interface not owned, bad mask...
    InvalidParameter,
    /// MGM ERROR_ALREADY_EXISTS (183).
    AlreadyExists,
    /// MGM ERROR_CAN_NOT_COMPLETE (1003).
    CanNotComplete,
    /// MGM ERROR_INSUFFICIENT_BUFFER (122): `needed` says how many entries.
    InsufficientBuffer,
    /// MGM ERROR_NOT_ENOUGH_MEMORY (8).
    NotEnoughMemory,
    /// The peer (SO_PEERCRED) may not use the socket; the connection is closed.
    PermissionDenied,
    /// The peer's user has as many connections open as it may; the connection is closed.
    TooManyConnections,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    pub code: ErrorCode,
    pub message: String,
    /// The Win32 value of an MGM result code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub win32: Option<u32>,
    /// With `insufficient_buffer`: entries needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needed: Option<usize>,
}

impl WireError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), win32: None, needed: None }
    }

    /// An MGM result code (with its Win32 value) that says more than its generic text.
    pub fn mgm(e: MgmError, message: impl Into<String>) -> Self {
        Self { message: message.into(), ..Self::from(e) }
    }
}

impl From<MgmError> for WireError {
    fn from(e: MgmError) -> Self {
        let code = match e {
            MgmError::InvalidParameter => ErrorCode::InvalidParameter,
            MgmError::InsufficientBuffer { .. } => ErrorCode::InsufficientBuffer,
            MgmError::CanNotComplete => ErrorCode::CanNotComplete,
            MgmError::NotFound => ErrorCode::NotFound,
            MgmError::AlreadyExists => ErrorCode::AlreadyExists,
            MgmError::NotEnoughMemory => ErrorCode::NotEnoughMemory,
        };
        let needed = match e {
            MgmError::InsufficientBuffer { needed } => Some(needed),
            _ => None,
        };
        Self { code, message: e.to_string(), win32: Some(e.code()), needed }
    }
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The code as it is on the wire (what a client matches on).
        let code = serde_json::to_value(self.code).ok();
        let code = code.as_ref().and_then(serde_json::Value::as_str).unwrap_or("error");
        write!(f, "{code}: {}", self.message)
    }
}

impl std::error::Error for WireError {}
