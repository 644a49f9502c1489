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

use crate::config::StaticMfe;
use crate::manager::{
    ClientInfo, EnumHandle, EnumType, Event, Handle, Iface, MembershipInfo, MfeView, MgmError,
    OwnerInfo, Pattern, RequestId,
};

/// Protocol version announced by `hello`.
pub const PROTOCOL_VERSION: u32 = 2;
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

/// The methods. MGM API calls carry the `handle` their client got from `register`; a handle
/// works only on the connection that registered it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Protocol version and server identity.
    Hello,
    /// Managed interfaces, every MFE with its counters, and the global fast-path counters.
    Show,
    /// Sizes only (cheap at any table size): MFEs, lists, leases, queued fast-path writes.
    Status,
    /// Installs or replaces a static MFE (outside the MGM API, like a static route).
    AddMfe(StaticMfe),
    /// Removes a static MFE.
    DelMfe { source: Ipv4Addr, group: Ipv4Addr },
    /// RegisterMProtocol.
    Register { protocol: u32, component: u32 },
    /// DeRegisterMProtocol.
    Deregister { handle: Handle },
    /// TakeInterfaceOwnership. mgm starts managing (XDP) the interface if it did not yet.
    TakeInterface {
        handle: Handle,
        ifindex: u32,
        #[serde(default = "any")]
        nexthop: Ipv4Addr,
    },
    /// ReleaseInterfaceOwnership.
    ReleaseInterface {
        handle: Handle,
        ifindex: u32,
        #[serde(default = "any")]
        nexthop: Ipv4Addr,
    },
    /// GetProtocolOnInterface.
    GetProtocolOnInterface {
        ifindex: u32,
        #[serde(default = "any")]
        nexthop: Ipv4Addr,
    },
    /// AddGroupMembershipEntry.
    AddMembership(MembershipArgs),
    /// DeleteGroupMembershipEntry.
    DeleteMembership(MembershipArgs),
    /// GetMfe (with `stats`: GetMfeStats).
    GetMfe {
        source: Ipv4Addr,
        group: Ipv4Addr,
        #[serde(default = "one")]
        max_entries: usize,
        #[serde(default)]
        stats: bool,
    },
    /// GetFirstMfe (GetFirstMfeStats).
    GetFirstMfe {
        max_entries: usize,
        #[serde(default)]
        stats: bool,
    },
    /// GetNextMfe (GetNextMfeStats): strictly after (source, group).
    GetNextMfe {
        source: Ipv4Addr,
        group: Ipv4Addr,
        max_entries: usize,
        #[serde(default)]
        stats: bool,
    },
    /// SetMfe: new incoming interface / upstream neighbour.
    SetMfe {
        handle: Handle,
        source: Ipv4Addr,
        group: Ipv4Addr,
        iif: u32,
        #[serde(default = "any")]
        iif_nexthop: Ipv4Addr,
        #[serde(default = "any")]
        upstream: Ipv4Addr,
    },
    /// GroupEnumerationStart.
    GroupEnumStart { handle: Handle, enum_type: EnumType },
    /// GroupEnumerationGetNext.
    GroupEnumNext { handle: Handle, enum_handle: EnumHandle, max_entries: usize },
    /// GroupEnumerationEnd.
    GroupEnumEnd { handle: Handle, enum_handle: EnumHandle },
    /// Answer to an `rpf` event.
    AnswerRpf {
        handle: Handle,
        request: RequestId,
        ifindex: u32,
        #[serde(default = "any")]
        nexthop: Ipv4Addr,
        #[serde(default = "any")]
        upstream: Ipv4Addr,
    },
    /// Answer to a `creation_alert` event: the interfaces (of this client's) to keep out.
    AnswerCreation {
        handle: Handle,
        request: RequestId,
        #[serde(default)]
        disabled: Vec<Iface>,
    },
    /// Answer to a `prune_alert` event that carries a request: the MFE's timeout.
    AnswerPrune { handle: Handle, request: RequestId, timeout_secs: u64 },
    /// Makes this connection a monitor: it gets a copy of every callback event, whoever it
    /// is for (`mgmctl watch`).
    Watch,
}

/// Every method name, for telling "unknown method" from "bad parameters".
pub const METHODS: [&str; 23] = [
    "hello",
    "show",
    "status",
    "add_mfe",
    "del_mfe",
    "register",
    "deregister",
    "take_interface",
    "release_interface",
    "get_protocol_on_interface",
    "add_membership",
    "delete_membership",
    "get_mfe",
    "get_first_mfe",
    "get_next_mfe",
    "set_mfe",
    "group_enum_start",
    "group_enum_next",
    "group_enum_end",
    "answer_rpf",
    "answer_creation",
    "answer_prune",
    "watch",
];

fn any() -> Ipv4Addr {
    Ipv4Addr::UNSPECIFIED
}

fn one() -> usize {
    1
}

/// Add/DeleteGroupMembershipEntry parameters. Omitted masks mean "exact" for a non-zero
/// address and "any" for 0.0.0.0; omitted `source` means any source; omitted `flags` means
/// join + forward.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembershipArgs {
    pub handle: Handle,
    #[serde(default = "any")]
    pub source: Ipv4Addr,
    #[serde(default)]
    pub source_mask: Option<Ipv4Addr>,
    pub group: Ipv4Addr,
    #[serde(default)]
    pub group_mask: Option<Ipv4Addr>,
    pub ifindex: u32,
    #[serde(default = "any")]
    pub nexthop: Ipv4Addr,
    #[serde(default = "both_flags")]
    pub flags: u32,
}

fn both_flags() -> u32 {
    crate::manager::MGM_JOIN_STATE_FLAG | crate::manager::MGM_FORWARD_STATE_FLAG
}

impl MembershipArgs {
    pub fn pattern(&self) -> Result<Pattern, MgmError> {
        let mask = |addr: Ipv4Addr, m: Option<Ipv4Addr>| {
            m.unwrap_or(if addr.is_unspecified() {
                Ipv4Addr::UNSPECIFIED
            } else {
                Ipv4Addr::BROADCAST
            })
        };
        Pattern::from_masks(
            self.source,
            mask(self.source, self.source_mask),
            self.group,
            mask(self.group, self.group_mask),
        )
    }

    pub fn iface(&self) -> Iface {
        Iface::new(self.ifindex, self.nexthop)
    }
}

/// A callback, pushed on the connection that registered `handle` as `{"handle": H,
/// "event": "...", ...}` (no `id`: events are not replies).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventFrame {
    pub handle: Handle,
    #[serde(flatten)]
    pub event: Event,
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

/// A successful result: its shape depends on the method (docs/protocol.md). The client
/// library decodes it into the type each call expects.
pub type Response = serde_json::Value;

/// `hello`'s result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloInfo {
    pub protocol: u32,
    pub server: String,
}

/// A page of a walk: `status` is `more_data` or `no_more_items` (MGM's codes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageReply<T> {
    pub status: PageStatus,
    pub entries: Vec<T>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageStatus {
    MoreData,
    NoMoreItems,
}

/// An MFE as `get_mfe` and the walks return it; `stats` only when asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfeReply {
    #[serde(flatten)]
    pub mfe: MfeView,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<MfeStatsReply>,
}

/// MIB_IPMCAST_MFE_STATS counters (from the fast path, summed over CPUs).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfeStatsReply {
    pub in_packets: u64,
    pub in_octets: u64,
    pub wrong_interface: u64,
    pub ttl_expired: u64,
    /// One entry per outgoing interface (MIB_IPMCAST_OIF_STATS).
    #[serde(default)]
    pub oifs: Vec<OifStatsReply>,
}

/// Counters of one outgoing interface of an MFE.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OifStatsReply {
    pub ifindex: u32,
    pub out_packets: u64,
    pub out_octets: u64,
    /// Copies larger than the interface's MTU (dropped, not fragmented).
    pub frag_needed: u64,
    /// Copies dropped because the interface had been released.
    pub out_discards: u64,
    /// Always 0: mgm has no per-interface TTL thresholds (TTL <= 1 is `ttl_expired`).
    pub ttl_too_low: u64,
}

/// Reply to `status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// MFEs the MGM core holds.
    pub mfes: usize,
    /// MFEs in the fast path (MGM and static).
    pub installed: usize,
    /// Distinct outgoing lists in the fast path.
    pub oils: usize,
    /// Fast-path writes queued behind the replies already sent (background cleanup after a
    /// large release, for instance). 0 when the fast path has caught up with the core.
    pub pending_writes: usize,
    /// Leases of current owners.
    pub leases_alive: usize,
    /// Released leases some outgoing list still names (their copies are already dropped).
    pub leases_released: usize,
    /// MFEs taken over from a previous mgmd (restart) that the clients have not re-created
    /// yet: they keep forwarding until the hold ends, then are re-validated through the core.
    #[serde(default)]
    pub held: usize,
    /// (S,G)s whose first packets wait for their MFE to be created.
    #[serde(default)]
    pub unresolved: usize,
    /// Such packets forwarded once their MFE existed, and dropped (more than 4 per flow, more
    /// than 1,024 flows waiting, or no MFE within 5 s).
    #[serde(default)]
    pub replayed: u64,
    #[serde(default)]
    pub replay_dropped: u64,
    /// Fast-path writes that failed (table full, kernel error), and the MFEs waiting for a
    /// retry (every second, from the core's current state).
    #[serde(default)]
    pub write_failures: u64,
    #[serde(default)]
    pub retrying: usize,
}

/// What `show` returns.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub interfaces: Vec<InterfaceInfo>,
    pub mfes: Vec<MfeInfo>,
    /// Global fast-path counters by name (see `mgm_common::counter`).
    pub counters: BTreeMap<String, u64>,
    /// Registered MGM clients.
    #[serde(default)]
    pub protocols: Vec<ClientInfo>,
    /// Owned interfaces.
    #[serde(default)]
    pub ownership: Vec<OwnerInfo>,
    /// Group memberships.
    #[serde(default)]
    pub memberships: Vec<MembershipInfo>,
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
    /// `static` (add_mfe / configuration) or `mgm` (created through the MGM API).
    #[serde(default)]
    pub origin: String,
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
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

impl std::error::Error for WireError {}

/// Parses one request line; on failure returns the error reply to send (with the id when it
/// could be read), so a bad line never closes the connection.
pub fn parse_request(line: &str) -> Result<RequestFrame, ReplyFrame> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(|e| ReplyFrame {
        id: None,
        body: ReplyBody::Error(WireError::new(ErrorCode::Malformed, format!("not JSON: {e}"))),
    })?;
    let id = value.get("id").and_then(serde_json::Value::as_u64);
    let fail = |code, message: String| ReplyFrame {
        id,
        body: ReplyBody::Error(WireError::new(code, message)),
    };
    let Some(obj) = value.as_object() else {
        return Err(fail(ErrorCode::Malformed, "a request is a JSON object".into()));
    };
    if id.is_none() {
        return Err(fail(ErrorCode::Malformed, "missing or non-integer \"id\"".into()));
    }
    let Some(method) = obj.get("method").and_then(serde_json::Value::as_str).map(str::to_owned)
    else {
        return Err(fail(ErrorCode::Malformed, "missing or non-string \"method\"".into()));
    };
    if !METHODS.contains(&method.as_str()) {
        return Err(fail(ErrorCode::UnknownMethod, format!("unknown method {method:?}")));
    }
    let keys: Vec<String> = obj.keys().cloned().collect();
    let frame: RequestFrame = serde_json::from_value(value)
        .map_err(|e| fail(ErrorCode::InvalidParams, format!("{method}: {e}")))?;
    // serde cannot deny unknown fields through `flatten`: a parameter the parsed request does
    // not carry back out was not understood, and silently ignoring it (a typo such as "oif")
    // would install something the client did not ask for.
    let known = serde_json::to_value(&frame).expect("requests serialize");
    if let Some(k) = keys.iter().find(|k| known.get(k.as_str()).is_none()) {
        return Err(fail(ErrorCode::InvalidParams, format!("{method}: unknown parameter {k:?}")));
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
        let h = Handle(3);
        let ip: Ipv4Addr = "10.0.0.1".parse().unwrap();
        let g: Ipv4Addr = "239.1.1.1".parse().unwrap();
        let args = MembershipArgs {
            handle: h,
            source: ip,
            source_mask: None,
            group: g,
            group_mask: Some(Ipv4Addr::BROADCAST),
            ifindex: 2,
            nexthop: any(),
            flags: 3,
        };
        let all = [
            Request::Hello,
            Request::Show,
            Request::Status,
            Request::AddMfe(StaticMfe {
                source: "10.0.0.1".parse().unwrap(),
                group: "239.1.1.1".parse().unwrap(),
                iif: "a".into(),
                oifs: vec!["b".into()],
            }),
            Request::DelMfe {
                source: "10.0.0.1".parse().unwrap(),
                group: "239.1.1.1".parse().unwrap(),
            },
            Request::Register { protocol: 103, component: 1 },
            Request::Deregister { handle: h },
            Request::TakeInterface { handle: h, ifindex: 2, nexthop: any() },
            Request::ReleaseInterface { handle: h, ifindex: 2, nexthop: ip },
            Request::GetProtocolOnInterface { ifindex: 2, nexthop: any() },
            Request::AddMembership(args.clone()),
            Request::DeleteMembership(args),
            Request::GetMfe { source: ip, group: g, max_entries: 1, stats: true },
            Request::GetFirstMfe { max_entries: 5, stats: false },
            Request::GetNextMfe { source: ip, group: g, max_entries: 5, stats: false },
            Request::SetMfe {
                handle: h,
                source: ip,
                group: g,
                iif: 3,
                iif_nexthop: any(),
                upstream: ip,
            },
            Request::GroupEnumStart { handle: h, enum_type: EnumType::AnySource },
            Request::GroupEnumNext { handle: h, enum_handle: EnumHandle(4), max_entries: 2 },
            Request::GroupEnumEnd { handle: h, enum_handle: EnumHandle(4) },
            Request::AnswerRpf {
                handle: h,
                request: RequestId(5),
                ifindex: 2,
                nexthop: any(),
                upstream: ip,
            },
            Request::AnswerCreation {
                handle: h,
                request: RequestId(6),
                disabled: vec![Iface::new(2, any())],
            },
            Request::AnswerPrune { handle: h, request: RequestId(7), timeout_secs: 60 },
            Request::Watch,
        ];
        let mut seen = std::collections::BTreeSet::new();
        for req in all {
            let frame = RequestFrame { id: 9, request: req };
            let line = serde_json::to_string(&frame).unwrap();
            assert_eq!(parse_request(&line).unwrap(), frame, "{line}");
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            seen.insert(v["method"].as_str().unwrap().to_owned());
        }
        let listed: std::collections::BTreeSet<String> =
            METHODS.iter().map(|m| (*m).to_owned()).collect();
        assert_eq!(seen, listed, "every method is tested and listed exactly once");
    }

    #[test]
    fn membership_masks_default_from_the_addresses() {
        let line =
            r#"{"id":1,"method":"add_membership","handle":3,"group":"239.1.1.1","ifindex":2}"#;
        let Request::AddMembership(a) = parse_request(line).unwrap().request else { panic!() };
        assert_eq!(
            a.pattern().unwrap(),
            Pattern { group: Some("239.1.1.1".parse().unwrap()), source: None }
        );
        assert_eq!(a.flags, 3);
        let line = r#"{"id":1,"method":"add_membership","handle":3,"source":"10.0.0.1","group":"239.1.1.1","ifindex":2}"#;
        let Request::AddMembership(a) = parse_request(line).unwrap().request else { panic!() };
        assert_eq!(a.pattern().unwrap().source, Some("10.0.0.1".parse().unwrap()));
        let line = r#"{"id":1,"method":"add_membership","handle":3,"group":"239.1.1.1","group_mask":"255.255.0.0","ifindex":2}"#;
        let Request::AddMembership(a) = parse_request(line).unwrap().request else { panic!() };
        assert_eq!(a.pattern(), Err(MgmError::InvalidParameter), "ranges are not supported");
    }

    #[test]
    fn mgm_errors_carry_their_win32_value() {
        let e = WireError::from(MgmError::InsufficientBuffer { needed: 1 });
        assert_eq!(
            (e.code, e.win32, e.needed),
            (ErrorCode::InsufficientBuffer, Some(122), Some(1))
        );
        let line = serde_json::to_string(&WireError::from(MgmError::AlreadyExists)).unwrap();
        assert_eq!(line, r#"{"code":"already_exists","message":"already exists","win32":183}"#);
    }

    #[test]
    fn wire_shape_is_flat() {
        let line = serde_json::to_string(&RequestFrame { id: 1, request: Request::Show }).unwrap();
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
        assert_eq!(err_code(r#"{"method":"show"}"#), (None, ErrorCode::Malformed));
        assert_eq!(err_code(r#"{"id":-1,"method":"show"}"#), (None, ErrorCode::Malformed));
        assert_eq!(err_code(r#"{"id":2}"#), (Some(2), ErrorCode::Malformed));
        assert_eq!(err_code(r#"{"id":3,"method":"reboot"}"#), (Some(3), ErrorCode::UnknownMethod));
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
