// SPDX-License-Identifier: MIT OR Apache-2.0
//! The mgmd control protocol (version 1), spoken on a Unix stream socket. Full description:
//! `docs/protocol.md`.
//!
//! Framing: one JSON object per line (`\n`-terminated UTF-8), at most [`MAX_FRAME`] bytes.
//! A request is `{"id": N, "method": "...", ...params}`; its reply carries the same id and
//! either `result` or `error` (`{"code": "...", "message": "..."}`). Replies on one connection
//! come in request order. Compatibility: new optional fields may appear in results; clients
//! ignore fields they do not know.

use std::{collections::BTreeMap, net::Ipv4Addr};

use serde::{Deserialize, Serialize};

/// Protocol version announced by `hello`.
pub const PROTOCOL_VERSION: u32 = 1;
/// Longest accepted line, newline excluded.
pub const MAX_FRAME: usize = 64 * 1024;
/// Default socket path.
pub const DEFAULT_SOCKET: &str = "/run/mgm/mgmd.sock";

/// A request line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestFrame {
    /// Chosen by the client, echoed in the reply.
    pub id: u64,
    #[serde(flatten)]
    pub request: Request,
}

/// The methods.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Protocol version and server identity.
    Hello,
    /// Managed interfaces, every MFE with its counters, and the global fast-path counters.
    Show,
    /// Installs or replaces a static MFE.
    AddMfe(MfeSpec),
    /// Removes a static MFE.
    DelMfe { source: Ipv4Addr, group: Ipv4Addr },
}

/// A static MFE by interface names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MfeSpec {
    pub source: Ipv4Addr,
    pub group: Ipv4Addr,
    pub iif: String,
    #[serde(default)]
    pub oifs: Vec<String>,
}

/// A reply line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplyFrame {
    /// The request's id; `null` when the request could not be read far enough to know it.
    pub id: Option<u64>,
    #[serde(flatten)]
    pub body: ReplyBody,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyBody {
    Result(Response),
    Error(WireError),
}

/// Successful results, one shape per method.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Response {
    Hello { protocol: u32, server: String },
    Show(Snapshot),
    Done {},
}

/// What `show` returns.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub interfaces: Vec<InterfaceInfo>,
    pub mfes: Vec<MfeInfo>,
    /// Global fast-path counters by name (see `mgm_common::counter`).
    pub counters: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceInfo {
    pub name: String,
    pub ifindex: u32,
    pub mac: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfeInfo {
    pub source: Ipv4Addr,
    pub group: Ipv4Addr,
    pub iif: u32,
    pub oifs: Vec<u32>,
    pub packets: u64,
    pub bytes: u64,
    pub wrong_iif: u64,
    pub ttl_expired: u64,
}

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
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    pub code: ErrorCode,
    pub message: String,
}

impl WireError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

impl std::error::Error for WireError {}

/// Parses one request line; on failure returns the error reply to send (with the id when it
/// could be read), so a bad line never closes the connection.
pub fn parse_request(line: &str) -> Result<RequestFrame, ReplyFrame> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(|e| ReplyFrame {
        id: None,
        body: ReplyBody::Error(WireError::new(
            ErrorCode::Malformed,
            format!("not JSON: {e}"),
        )),
    })?;
    let id = value.get("id").and_then(serde_json::Value::as_u64);
    let fail = |code, message: String| ReplyFrame {
        id,
        body: ReplyBody::Error(WireError::new(code, message)),
    };
    let Some(obj) = value.as_object() else {
        return Err(fail(
            ErrorCode::Malformed,
            "a request is a JSON object".into(),
        ));
    };
    if id.is_none() {
        return Err(fail(
            ErrorCode::Malformed,
            "missing or non-integer \"id\"".into(),
        ));
    }
    let Some(method) = obj
        .get("method")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
    else {
        return Err(fail(
            ErrorCode::Malformed,
            "missing or non-string \"method\"".into(),
        ));
    };
    const METHODS: [&str; 4] = ["hello", "show", "add_mfe", "del_mfe"];
    if !METHODS.contains(&method.as_str()) {
        return Err(fail(
            ErrorCode::UnknownMethod,
            format!("unknown method {method:?}"),
        ));
    }
    let keys: Vec<String> = obj.keys().cloned().collect();
    let frame: RequestFrame = serde_json::from_value(value)
        .map_err(|e| fail(ErrorCode::InvalidParams, format!("{method}: {e}")))?;
    // serde cannot deny unknown fields through `flatten`: a parameter the parsed request does
    // not carry back out was not understood, and silently ignoring it (a typo such as "oif")
    // would install something the client did not ask for.
    let known = serde_json::to_value(&frame).expect("requests serialize");
    if let Some(k) = keys.iter().find(|k| known.get(k.as_str()).is_none()) {
        return Err(fail(
            ErrorCode::InvalidParams,
            format!("{method}: unknown parameter {k:?}"),
        ));
    }
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_code(line: &str) -> (Option<u64>, ErrorCode) {
        match parse_request(line).unwrap_err().body {
            ReplyBody::Error(e) => (parse_request(line).unwrap_err().id, e.code),
            ReplyBody::Result(_) => unreachable!(),
        }
    }

    #[test]
    fn requests_round_trip() {
        for req in [
            Request::Hello,
            Request::Show,
            Request::AddMfe(MfeSpec {
                source: "10.0.0.1".parse().unwrap(),
                group: "239.1.1.1".parse().unwrap(),
                iif: "a".into(),
                oifs: vec!["b".into()],
            }),
            Request::DelMfe {
                source: "10.0.0.1".parse().unwrap(),
                group: "239.1.1.1".parse().unwrap(),
            },
        ] {
            let frame = RequestFrame {
                id: 9,
                request: req,
            };
            let line = serde_json::to_string(&frame).unwrap();
            assert_eq!(parse_request(&line).unwrap(), frame, "{line}");
        }
    }

    #[test]
    fn wire_shape_is_flat() {
        let line = serde_json::to_string(&RequestFrame {
            id: 1,
            request: Request::Show,
        })
        .unwrap();
        assert_eq!(line, r#"{"id":1,"method":"show"}"#);
        let reply = ReplyFrame {
            id: Some(1),
            body: ReplyBody::Error(WireError::new(ErrorCode::NotFound, "x")),
        };
        assert_eq!(
            serde_json::to_string(&reply).unwrap(),
            r#"{"id":1,"error":{"code":"not_found","message":"x"}}"#
        );
    }

    #[test]
    fn bad_lines_get_precise_codes() {
        assert_eq!(err_code("{"), (None, ErrorCode::Malformed));
        assert_eq!(err_code("[1]"), (None, ErrorCode::Malformed));
        assert_eq!(
            err_code(r#"{"method":"show"}"#),
            (None, ErrorCode::Malformed)
        );
        assert_eq!(
            err_code(r#"{"id":-1,"method":"show"}"#),
            (None, ErrorCode::Malformed)
        );
        assert_eq!(err_code(r#"{"id":2}"#), (Some(2), ErrorCode::Malformed));
        assert_eq!(
            err_code(r#"{"id":3,"method":"reboot"}"#),
            (Some(3), ErrorCode::UnknownMethod)
        );
        assert_eq!(
            err_code(r#"{"id":4,"method":"del_mfe","source":"1.2.3"}"#),
            (Some(4), ErrorCode::InvalidParams)
        );
        assert_eq!(
            err_code(r#"{"id":5,"method":"show","extra":1}"#),
            (Some(5), ErrorCode::InvalidParams)
        );
    }
}
