// SPDX-License-Identifier: MIT OR Apache-2.0
//! mgm-proto: the mgmd control protocol (version [`PROTOCOL_VERSION`]) as types, which the
//! daemon, its clients and the tests share. Full description: `docs/protocol.md`. Only serde;
//! the methods as command lines (clap) are behind the `clap` feature. To talk to mgmd, use the
//! `mgm-client` crate.
//!
//! * [`types`]: the MGM API's vocabulary (handles, interfaces, entries, result codes, events);
//! * [`statics`]: static MFEs by interface name;
//! * `replies` and `error` (re-exported here): the methods' results and the error replies;
//! * here: the methods (one type per method, [`Method::Reply`] its result) and framing.
//!
//! Framing: one JSON object per line (`\n`-terminated UTF-8), at most [`MAX_FRAME`] bytes.
//! A request is `{"id": N, "method": "...", ...params}`; its reply carries the same id and
//! either `result` or `error` (`{"code": "...", "message": "..."}`). Replies on one connection
//! come in request order; callback events (`{"handle": H, "event": "...", ...}`) may come
//! between them. Compatibility: new optional fields may appear in results; clients ignore
//! fields they do not know.

use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize, de::DeserializeOwned};

#[cfg(feature = "clap")]
mod cli;
mod error;
mod replies;
pub mod statics;
pub mod types;
#[cfg(feature = "clap")]
use cli::*;

pub use error::{ErrorCode, WireError};
pub use replies::*;
pub use statics::StaticMfe;
use types::{EnumHandle, EnumType, Event, Family, Handle, Iface, RequestId, SourceGroupEntry};

/// Protocol version announced by `hello`.
pub const PROTOCOL_VERSION: u32 = 4;
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

/// A method of the protocol: the implementing type is its parameters, `Reply` its result.
/// The server must answer a request with `Reply` and the client decodes exactly that, so a
/// change on one side only does not compile.
pub trait Method: Into<Request> {
    type Reply: Serialize + DeserializeOwned + std::fmt::Debug;
}

/// Declares every method once: the [`Request`] enum (wire `method` name = the variant in
/// snake_case, session command = kebab-case), its [`MethodName`] and each [`Method`] impl.
macro_rules! methods {
    ($( $(#[$attr:meta])* $variant:ident($params:ty) -> $reply:ty, )*) => {
        /// The methods. MGM API calls carry the `handle` their client got from `register`; a
        /// handle works only on the connection that registered it.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[cfg_attr(feature = "clap", derive(clap::Subcommand))]
        #[serde(tag = "method", rename_all = "snake_case")]
        pub enum Request {
            $( $(#[$attr])* $variant($params), )*
        }

        /// The name of each method, as the `method` field of a request line.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum MethodName {
            $( $variant, )*
        }

        impl MethodName {
            /// Every method.
            pub const ALL: &[MethodName] = &[$(MethodName::$variant),*];
        }

        $(
            impl Method for $params {
                type Reply = $reply;
            }

            impl From<$params> for Request {
                fn from(p: $params) -> Self {
                    Self::$variant(p)
                }
            }
        )*
    };
}

methods! {
    /// Protocol version and server identity.
    Hello(Hello) -> HelloInfo,
    /// Managed interfaces, every MFE with its counters, and the global fast-path counters.
    Show(Show) -> Snapshot,
    /// Sizes only (cheap at any table size): MFEs, lists, leases, queued fast-path writes.
    Status(GetStatus) -> Status,
    /// Installs or replaces a static MFE (outside the MGM API, like a static route).
    AddMfe(StaticMfe) -> Done,
    /// Removes a static MFE.
    DelMfe(DelMfe) -> Done,
    /// Re-reads mgmd's configuration file and applies what changed (as SIGHUP does).
    Reload(Reload) -> Reloaded,
    /// RegisterMProtocol PROTOCOL COMPONENT.
    Register(Register) -> Registered,
    /// DeRegisterMProtocol HANDLE.
    Deregister(Deregister) -> Done,
    /// TakeInterfaceOwnership HANDLE IFINDEX [NEXTHOP]. mgm starts managing (XDP) the
    /// interface if it did not yet.
    TakeInterface(TakeInterface) -> Done,
    /// ReleaseInterfaceOwnership HANDLE IFINDEX [NEXTHOP].
    ReleaseInterface(ReleaseInterface) -> Done,
    /// GetProtocolOnInterface IFINDEX [NEXTHOP].
    #[cfg_attr(feature = "clap", command(alias = "protocol-on"))]
    GetProtocolOnInterface(GetProtocolOnInterface) -> ProtocolOnInterface,
    /// AddGroupMembershipEntry HANDLE GROUP IFINDEX [--source S] [--nexthop N] [--flags F].
    AddMembership(AddMembership) -> Done,
    /// DeleteGroupMembershipEntry (the same arguments).
    DeleteMembership(DeleteMembership) -> Done,
    /// GetMfe SOURCE GROUP (with --stats: GetMfeStats).
    GetMfe(GetMfe) -> MfeReply,
    /// GetFirstMfe MAX (GetFirstMfeStats with --stats).
    GetFirstMfe(GetFirstMfe) -> PageReply<MfeReply>,
    /// GetNextMfe SOURCE GROUP MAX (GetNextMfeStats): strictly after (SOURCE, GROUP).
    GetNextMfe(GetNextMfe) -> PageReply<MfeReply>,
    /// SetMfe HANDLE SOURCE GROUP IIF: a new incoming interface / upstream neighbour.
    SetMfe(SetMfe) -> Done,
    /// GroupEnumerationStart HANDLE any-source|all-sources.
    #[cfg_attr(feature = "clap", command(alias = "enum-start"))]
    GroupEnumStart(GroupEnumStart) -> EnumStarted,
    /// GroupEnumerationGetNext HANDLE ENUM MAX.
    #[cfg_attr(feature = "clap", command(alias = "enum-next"))]
    GroupEnumNext(GroupEnumNext) -> PageReply<SourceGroupEntry>,
    /// GroupEnumerationEnd HANDLE ENUM.
    #[cfg_attr(feature = "clap", command(alias = "enum-end"))]
    GroupEnumEnd(GroupEnumEnd) -> Done,
    /// Answers an `rpf` event: HANDLE REQUEST IFINDEX [--nexthop N] [--upstream U].
    AnswerRpf(AnswerRpf) -> Done,
    /// Answers a `creation_alert` event: HANDLE REQUEST [IFINDEX[@NEXTHOP] to keep out...].
    AnswerCreation(AnswerCreation) -> Done,
    /// Answers a `prune_alert` event that carries a request: HANDLE REQUEST TIMEOUT_SECS.
    AnswerPrune(AnswerPrune) -> Done,
    /// Makes this connection a monitor: it gets a copy of every callback event, whoever it
    /// is for (`mgmctl watch`).
    Watch(Watch) -> Done,
}

/// `hello`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct Hello {}

/// `show`: a summary whose long lists (MFEs, memberships) stop at `max_entries`; the paged
/// walks (`get_first_mfe`/`get_next_mfe`, group enumerations) give the rest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct Show {
    #[serde(default = "show_entries")]
    #[cfg_attr(feature = "clap", arg(long, default_value_t = SHOW_ENTRIES))]
    pub max_entries: usize,
}

impl Default for Show {
    fn default() -> Self {
        Self { max_entries: SHOW_ENTRIES }
    }
}

/// Default of [`Show::max_entries`]: a reply of a few hundred KiB at most.
pub const SHOW_ENTRIES: usize = 1000;

fn show_entries() -> usize {
    SHOW_ENTRIES
}

/// `status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct GetStatus {}

/// `reload`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct Reload {}

/// What a reload changed. Entries and interfaces the configuration did not change were not
/// touched (their traffic did not notice).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reloaded {
    /// Interfaces now managed.
    pub interfaces_added: Vec<String>,
    /// Interfaces no longer managed.
    pub interfaces_removed: Vec<String>,
    /// Interfaces the file no longer names but still in use (owned by a client, or used by
    /// a static MFE added over the socket): still managed.
    pub interfaces_kept: Vec<String>,
    /// Static MFEs installed, replaced (another incoming or outgoing interface) and removed.
    pub mfes_added: usize,
    pub mfes_changed: usize,
    pub mfes_removed: usize,
    /// Static MFEs the file names as they were.
    pub mfes_unchanged: usize,
    /// Managed interfaces whose scope boundary changed.
    pub boundaries_changed: usize,
}

/// `watch`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct Watch {}

/// `del_mfe`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct DelMfe {
    pub source: IpAddr,
    pub group: IpAddr,
}

/// `register`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct Register {
    pub protocol: u32,
    pub component: u32,
}

/// `deregister`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct Deregister {
    #[cfg_attr(feature = "clap", arg(value_parser = parse_handle))]
    pub handle: Handle,
}

/// `take_interface`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct TakeInterface {
    #[cfg_attr(feature = "clap", arg(value_parser = parse_handle))]
    pub handle: Handle,
    pub ifindex: u32,
    /// `::` for the interface's IPv6 side.
    #[serde(default = "any")]
    #[cfg_attr(feature = "clap", arg(default_value = "0.0.0.0"))]
    pub nexthop: IpAddr,
}

/// `release_interface`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct ReleaseInterface {
    #[cfg_attr(feature = "clap", arg(value_parser = parse_handle))]
    pub handle: Handle,
    pub ifindex: u32,
    /// `::` for the interface's IPv6 side.
    #[serde(default = "any")]
    #[cfg_attr(feature = "clap", arg(default_value = "0.0.0.0"))]
    pub nexthop: IpAddr,
}

/// `get_protocol_on_interface`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct GetProtocolOnInterface {
    pub ifindex: u32,
    /// `::` for the interface's IPv6 side.
    #[serde(default = "any")]
    #[cfg_attr(feature = "clap", arg(default_value = "0.0.0.0"))]
    pub nexthop: IpAddr,
}

/// `add_membership`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AddMembership(pub MembershipArgs);

/// `delete_membership`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeleteMembership(pub MembershipArgs);

/// `get_mfe`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct GetMfe {
    pub source: IpAddr,
    pub group: IpAddr,
    #[serde(default = "one")]
    #[cfg_attr(feature = "clap", arg(long, default_value_t = 1))]
    pub max_entries: usize,
    #[serde(default)]
    #[cfg_attr(feature = "clap", arg(long))]
    pub stats: bool,
}

/// `get_first_mfe`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct GetFirstMfe {
    pub max_entries: usize,
    #[serde(default)]
    #[cfg_attr(feature = "clap", arg(long))]
    pub stats: bool,
}

/// `get_next_mfe`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct GetNextMfe {
    pub source: IpAddr,
    pub group: IpAddr,
    pub max_entries: usize,
    #[serde(default)]
    #[cfg_attr(feature = "clap", arg(long))]
    pub stats: bool,
}

/// `set_mfe`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct SetMfe {
    #[cfg_attr(feature = "clap", arg(value_parser = parse_handle))]
    pub handle: Handle,
    pub source: IpAddr,
    pub group: IpAddr,
    pub iif: u32,
    /// Default: none (the unspecified address of the entry's family).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long))]
    pub iif_nexthop: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long))]
    pub upstream: Option<IpAddr>,
}

/// `group_enum_start`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct GroupEnumStart {
    #[cfg_attr(feature = "clap", arg(value_parser = parse_handle))]
    pub handle: Handle,
    #[cfg_attr(feature = "clap", arg(value_parser = parse_enum_type))]
    pub enum_type: EnumType,
}

/// `group_enum_next`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct GroupEnumNext {
    #[cfg_attr(feature = "clap", arg(value_parser = parse_handle))]
    pub handle: Handle,
    #[cfg_attr(feature = "clap", arg(value_parser = parse_enum_handle))]
    pub enum_handle: EnumHandle,
    pub max_entries: usize,
}

/// `group_enum_end`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct GroupEnumEnd {
    #[cfg_attr(feature = "clap", arg(value_parser = parse_handle))]
    pub handle: Handle,
    #[cfg_attr(feature = "clap", arg(value_parser = parse_enum_handle))]
    pub enum_handle: EnumHandle,
}

/// `answer_rpf`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct AnswerRpf {
    #[cfg_attr(feature = "clap", arg(value_parser = parse_handle))]
    pub handle: Handle,
    #[cfg_attr(feature = "clap", arg(value_parser = parse_request_id))]
    pub request: RequestId,
    pub ifindex: u32,
    /// Default: none (the unspecified address of the request's family).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long))]
    pub nexthop: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long))]
    pub upstream: Option<IpAddr>,
}

/// `answer_creation`: the interfaces (of this client's) to keep out of the MFE.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct AnswerCreation {
    #[cfg_attr(feature = "clap", arg(value_parser = parse_handle))]
    pub handle: Handle,
    #[cfg_attr(feature = "clap", arg(value_parser = parse_request_id))]
    pub request: RequestId,
    #[serde(default)]
    #[cfg_attr(feature = "clap", arg(value_parser = parse_iface))]
    pub disabled: Vec<Iface>,
}

/// `answer_prune`: the MFE's timeout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
pub struct AnswerPrune {
    #[cfg_attr(feature = "clap", arg(value_parser = parse_handle))]
    pub handle: Handle,
    #[cfg_attr(feature = "clap", arg(value_parser = parse_request_id))]
    pub request: RequestId,
    pub timeout_secs: u64,
}

fn any() -> IpAddr {
    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
}

fn one() -> usize {
    1
}

/// Add/DeleteGroupMembershipEntry parameters. Omitted masks mean "exact" for a non-zero
/// address and "any" for 0.0.0.0; omitted `source` means any source; omitted `flags` means
/// join + forward.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::Args))]
#[serde(deny_unknown_fields)]
pub struct MembershipArgs {
    #[cfg_attr(feature = "clap", arg(value_parser = parse_handle))]
    pub handle: Handle,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long))]
    pub source: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long))]
    pub source_mask: Option<IpAddr>,
    pub group: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long))]
    pub group_mask: Option<IpAddr>,
    pub ifindex: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "clap", arg(long))]
    pub nexthop: Option<IpAddr>,
    #[serde(default = "both_flags")]
    #[cfg_attr(feature = "clap", arg(long, default_value_t = both_flags()))]
    pub flags: u32,
}

fn both_flags() -> u32 {
    types::MGM_JOIN_STATE_FLAG | types::MGM_FORWARD_STATE_FLAG
}

impl MembershipArgs {
    /// The interface: the next hop defaults to the group's family's "none".
    pub fn iface(&self) -> Iface {
        Iface::new(self.ifindex, self.nexthop.unwrap_or(Family::of(self.group).any()))
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

/// Whether a line is an event (events have an `event` field, replies an `id`).
#[derive(Deserialize)]
struct Peek {
    #[serde(default)]
    event: Option<serde::de::IgnoredAny>,
}

/// Tells an event line from a reply line.
pub fn is_event(line: &str) -> bool {
    serde_json::from_str::<Peek>(line).is_ok_and(|p| p.event.is_some())
}

/// A reply line: `{"id": N, "result": ...}` or `{"id": N, "error": ...}`. `T` is the
/// method's [`Method::Reply`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplyFrame<T> {
    /// The request's id; `null` when the request could not be read far enough to know it.
    pub id: Option<u64>,
    #[serde(flatten)]
    pub body: ReplyBody<T>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyBody<T> {
    Result(T),
    Error(WireError),
}

/// A line that is not a request mgmd can serve, and the error reply it gets (with the id
/// when the line could be read far enough to find one). Same wire shape as an error
/// [`ReplyFrame`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rejected {
    pub id: Option<u64>,
    pub error: WireError,
}

/// Parses one request line; on failure returns the error reply to send (with the id when it
/// could be read), so a bad line never closes the connection.
pub fn parse_request(line: &str) -> Result<RequestFrame, Rejected> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(|e| Rejected {
        id: None,
        error: WireError::new(ErrorCode::Malformed, format!("not JSON: {e}")),
    })?;
    let id = value.get("id").and_then(serde_json::Value::as_u64);
    let fail = |code, message: String| Rejected { id, error: WireError::new(code, message) };
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
    if serde_json::from_value::<MethodName>(method.clone().into()).is_err() {
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
    use crate::types::MgmError;

    fn err_code(line: &str) -> (Option<u64>, ErrorCode) {
        let r = parse_request(line).unwrap_err();
        (r.id, r.error.code)
    }

    /// One request of every method, with addresses `ip` (a source) and `g` (a group).
    fn one_of_each(ip: IpAddr, g: IpAddr) -> Vec<Request> {
        let h = Handle(3);
        let f = Family::of(g);
        let args = MembershipArgs {
            handle: h,
            source: Some(ip),
            source_mask: None,
            group: g,
            group_mask: Some(f.ones()),
            ifindex: 2,
            nexthop: None,
            flags: 3,
        };
        vec![
            Hello {}.into(),
            Show::default().into(),
            GetStatus {}.into(),
            StaticMfe { source: ip, group: g, iif: "a".into(), oifs: vec!["b".into()] }.into(),
            DelMfe { source: ip, group: g }.into(),
            Reload {}.into(),
            Register { protocol: 103, component: 1 }.into(),
            Deregister { handle: h }.into(),
            TakeInterface { handle: h, ifindex: 2, nexthop: f.any() }.into(),
            ReleaseInterface { handle: h, ifindex: 2, nexthop: ip }.into(),
            GetProtocolOnInterface { ifindex: 2, nexthop: f.any() }.into(),
            AddMembership(args.clone()).into(),
            DeleteMembership(args).into(),
            GetMfe { source: ip, group: g, max_entries: 1, stats: true }.into(),
            GetFirstMfe { max_entries: 5, stats: false }.into(),
            GetNextMfe { source: ip, group: g, max_entries: 5, stats: false }.into(),
            SetMfe {
                handle: h,
                source: ip,
                group: g,
                iif: 3,
                iif_nexthop: None,
                upstream: Some(ip),
            }
            .into(),
            GroupEnumStart { handle: h, enum_type: EnumType::AnySource }.into(),
            GroupEnumNext { handle: h, enum_handle: EnumHandle(4), max_entries: 2 }.into(),
            GroupEnumEnd { handle: h, enum_handle: EnumHandle(4) }.into(),
            AnswerRpf {
                handle: h,
                request: RequestId(5),
                ifindex: 2,
                nexthop: Some(f.any()),
                upstream: Some(ip),
            }
            .into(),
            AnswerCreation {
                handle: h,
                request: RequestId(6),
                disabled: vec![Iface::new(2, f.any())],
            }
            .into(),
            AnswerPrune { handle: h, request: RequestId(7), timeout_secs: 60 }.into(),
            Watch {}.into(),
        ]
    }

    #[test]
    fn requests_round_trip() {
        let families = [("10.0.0.1", "239.1.1.1"), ("2001:db8::1", "ff3e::8000:1")];
        for (ip, g) in families {
            let mut seen = Vec::new();
            for req in one_of_each(ip.parse().unwrap(), g.parse().unwrap()) {
                let frame = RequestFrame { id: 9, request: req };
                let line = serde_json::to_string(&frame).unwrap();
                assert_eq!(parse_request(&line).unwrap(), frame, "{line}");
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                seen.push(serde_json::from_value::<MethodName>(v["method"].clone()).unwrap());
            }
            assert_eq!(seen, MethodName::ALL, "every method is tested once");
        }
    }

    /// The session grammar of `mgmctl` is the same types: a command line parses into the
    /// request the JSON form would.
    #[cfg(feature = "clap")]
    #[test]
    fn command_lines_parse_into_requests() {
        use clap::Parser as _;
        #[derive()]
        #[cfg_attr(feature = "clap", derive(clap::Parser))]
        #[cfg_attr(feature = "clap", command(no_binary_name = true))]
        struct Line {
            #[cfg_attr(feature = "clap", command(subcommand))]
            request: Request,
        }
        let parse = |l: &str| Line::try_parse_from(l.split_whitespace()).map(|x| x.request);
        let json = |l: &str| parse_request(l).unwrap().request;
        assert_eq!(
            parse("add-membership 3 239.1.1.1 2 --source 10.0.0.1").unwrap(),
            json(
                r#"{"id":1,"method":"add_membership","handle":3,"source":"10.0.0.1","group":"239.1.1.1","ifindex":2}"#
            )
        );
        assert_eq!(
            parse("protocol-on 4").unwrap(),
            json(r#"{"id":1,"method":"get_protocol_on_interface","ifindex":4}"#)
        );
        assert_eq!(
            parse("answer-creation 3 7 2 5@10.0.0.9").unwrap(),
            json(
                r#"{"id":1,"method":"answer_creation","handle":3,"request":7,"disabled":[{"ifindex":2,"nexthop":"0.0.0.0"},{"ifindex":5,"nexthop":"10.0.0.9"}]}"#
            )
        );
        assert_eq!(
            parse("enum-start 3 all-sources").unwrap(),
            json(r#"{"id":1,"method":"group_enum_start","handle":3,"enum_type":"all_sources"}"#)
        );
        assert!(parse("take-interface 3").is_err(), "a missing ifindex");
        assert!(parse("answer-prune 3 7 soon").is_err());
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
        let line =
            serde_json::to_string(&RequestFrame { id: 1, request: Hello {}.into() }).unwrap();
        assert_eq!(line, r#"{"id":1,"method":"hello"}"#);
        let show = parse_request(r#"{"id":1,"method":"show"}"#).unwrap().request;
        assert_eq!(show, Request::Show(Show { max_entries: SHOW_ENTRIES }), "a default");
        let reply: ReplyFrame<Done> = ReplyFrame {
            id: Some(1),
            body: ReplyBody::Error(WireError::new(ErrorCode::NotFound, "x")),
        };
        let line = serde_json::to_string(&reply).unwrap();
        assert_eq!(line, r#"{"id":1,"error":{"code":"not_found","message":"x"}}"#);
        let rejected = Rejected { id: Some(1), error: WireError::new(ErrorCode::NotFound, "x") };
        assert_eq!(serde_json::to_string(&rejected).unwrap(), line, "the same shape");
        let done = ReplyFrame { id: Some(2), body: ReplyBody::Result(Done {}) };
        assert_eq!(serde_json::to_string(&done).unwrap(), r#"{"id":2,"result":{}}"#);
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
