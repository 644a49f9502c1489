// SPDX-License-Identifier: MIT OR Apache-2.0
//! The vocabulary of the MGM API (RRAS `mgm.h`) as the protocol carries it: handles,
//! interfaces, entries, result codes and callbacks. mgmd's core works in these types, and
//! they are the wire format on purpose: each is declared here once.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

/// RRAS protocol id of IGMP (iprtrmib.h): the one client that may co-own an interface.
pub const PROTO_IP_IGMP: u32 = 10;
/// Membership flag: join state (drives join/prune alerts).
pub const MGM_JOIN_STATE_FLAG: u32 = 0x1;
/// Membership flag: forward state (puts the interface in matching MFEs' outgoing lists).
pub const MGM_FORWARD_STATE_FLAG: u32 = 0x2;

/// Result codes, with their Win32 values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MgmError {
    #[error("invalid parameter")]
    InvalidParameter,
    #[error("insufficient buffer: {needed} entries needed")]
    InsufficientBuffer { needed: usize },
    #[error("cannot complete")]
    CanNotComplete,
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    AlreadyExists,
    #[error("not enough memory")]
    NotEnoughMemory,
}

impl MgmError {
    /// The Win32 error value.
    pub fn code(self) -> u32 {
        match self {
            Self::InvalidParameter => 87,
            Self::InsufficientBuffer { .. } => 122,
            Self::CanNotComplete => 1003,
            Self::NotFound => 1168,
            Self::AlreadyExists => 183,
            Self::NotEnoughMemory => 8,
        }
    }
}

pub type MgmResult<T> = Result<T, MgmError>;

/// A registered client's opaque handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Handle(pub u64);

/// A callback request awaiting an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RequestId(pub u64);

/// A group enumeration in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EnumHandle(pub u64);

/// An address family. An interface's family is its next hop's (0.0.0.0 or :: when it has
/// none), and an entry's is its group's: the two families are separate tables that share
/// the code, never the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub const fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Self::Ipv4,
            IpAddr::V6(_) => Self::Ipv6,
        }
    }

    /// The unspecified address: "any", and "no next hop".
    pub const fn any(self) -> IpAddr {
        match self {
            Self::Ipv4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Self::Ipv6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        }
    }

    /// The all-ones address: the exact-match mask, and the last address in order.
    pub const fn ones(self) -> IpAddr {
        match self {
            Self::Ipv4 => IpAddr::V4(Ipv4Addr::BROADCAST),
            Self::Ipv6 => IpAddr::V6(Ipv6Addr::from_bits(u128::MAX)),
        }
    }
}

/// Why `group` is never routed, if it is not: IPv4's local network control block
/// (224.0.0.0/24) and IPv6's scopes below admin-local (reserved 0, interface-local ff01::/16,
/// link-local ff02::/16). Routers keep these on their link, whatever the tables say.
pub fn never_routed(group: IpAddr) -> Option<&'static str> {
    match group {
        IpAddr::V4(g) if g.octets()[..3] == [224, 0, 0] => Some("link-local (224.0.0.0/24)"),
        IpAddr::V6(g) if g.is_multicast() => match g.octets()[1] & 0x0f {
            0 => Some("of the reserved scope 0"),
            1 => Some("interface-local (ff01::/16)"),
            2 => Some("link-local (ff02::/16)"),
            _ => None,
        },
        _ => None,
    }
}

/// An interface: ifindex plus next hop (unspecified for broadcast and point-to-point links).
/// The next hop's family is the interface's: (5, 0.0.0.0) and (5, ::) are two interfaces,
/// so an IPv4 and an IPv6 protocol each own their side of a link.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Iface {
    pub ifindex: u32,
    pub nexthop: IpAddr,
}

impl Iface {
    /// The first and last interface in order (range bounds).
    pub const MIN: Self = Self { ifindex: 0, nexthop: Family::Ipv4.any() };
    pub const MAX: Self = Self { ifindex: u32::MAX, nexthop: Family::Ipv6.ones() };

    pub fn new(ifindex: u32, nexthop: impl Into<IpAddr>) -> Self {
        Self { ifindex, nexthop: nexthop.into() }
    }

    pub const fn family(&self) -> Family {
        Family::of(self.nexthop)
    }
}

/// A specific (S,G). Field order makes the derived order "by group, then by source" (every
/// IPv4 entry before every IPv6 one), which is the order GetFirst/GetNextMfe walk in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Sg {
    pub group: IpAddr,
    pub source: IpAddr,
}

impl Sg {
    pub fn new(source: impl Into<IpAddr>, group: impl Into<IpAddr>) -> Self {
        Self { group: group.into(), source: source.into() }
    }

    /// An IPv4 (S,G) from octets (as the fast path's IPv4 key holds them).
    pub const fn v4(source: [u8; 4], group: [u8; 4]) -> Self {
        let [a, b, c, d] = source;
        let [e, f, g, h] = group;
        Self {
            group: IpAddr::V4(Ipv4Addr::new(e, f, g, h)),
            source: IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
        }
    }

    /// An (S,G) from outside: one family, a multicast group, a source that is neither
    /// multicast nor broadcast (INVALID_PARAMETER otherwise).
    pub fn checked(source: IpAddr, group: IpAddr) -> MgmResult<Self> {
        let bad_source = source.is_multicast() || source == Family::Ipv4.ones();
        if Family::of(source) != Family::of(group) || !group.is_multicast() || bad_source {
            return Err(MgmError::InvalidParameter);
        }
        Ok(Self { group, source })
    }

    pub const fn family(&self) -> Family {
        Family::of(self.group)
    }
}

/// SOURCE_GROUP_ENTRY.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SourceGroupEntry {
    pub source: IpAddr,
    pub source_mask: IpAddr,
    pub group: IpAddr,
    pub group_mask: IpAddr,
}

/// MGM_ENUM_TYPES.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnumType {
    /// One entry per group, with any source.
    AnySource,
    /// Every (S,G) (and (*,G)) membership.
    AllSources,
}

/// MGM_IF_ENTRY as a creation alert shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IfEntry {
    pub iface: Iface,
    pub enabled: bool,
    /// IGMP co-owns the interface.
    pub igmp: bool,
}

/// Why an MFE went away (Linux addition: deletion notice).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteReason {
    Expired,
    /// Its incoming interface was released.
    Released,
    /// Its incoming interface disappeared from the kernel.
    InterfaceGone,
    /// The table was full and a new flow needed the room: it had seen no traffic beyond the
    /// packets that created it.
    Evicted,
}

/// Callbacks, delivered to one client each.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// Answer with `answer_rpf` (or not: the proposal stands after the timeout).
    Rpf {
        request: RequestId,
        source: IpAddr,
        group: IpAddr,
        iif: Iface,
        upstream: IpAddr,
        header: Vec<u8>,
    },
    /// Answer with `answer_creation` listing interfaces to keep out (default: all enabled).
    CreationAlert {
        request: RequestId,
        source: IpAddr,
        group: IpAddr,
        iif: Iface,
        oifs: Vec<IfEntry>,
    },
    /// With `request` (member_delete = false), answer with `answer_prune` to set the MFE's
    /// timeout (default `timeout_secs`).
    PruneAlert {
        request: Option<RequestId>,
        entry: SourceGroupEntry,
        iface: Option<Iface>,
        member_delete: bool,
        timeout_secs: u64,
    },
    JoinAlert {
        entry: SourceGroupEntry,
        member_add: bool,
    },
    WrongInterface {
        source: IpAddr,
        group: IpAddr,
        iface: Iface,
        header: Vec<u8>,
    },
    LocalJoin {
        entry: SourceGroupEntry,
        iface: Iface,
    },
    LocalLeave {
        entry: SourceGroupEntry,
        iface: Iface,
    },
    DisableIgmp {
        iface: Iface,
    },
    EnableIgmp {
        iface: Iface,
    },
    MfeDeleted {
        source: IpAddr,
        group: IpAddr,
        reason: DeleteReason,
    },
    InterfaceGone {
        iface: Iface,
    },
}

/// MIB_IPMCAST_MFE as the manager knows it (counters come from the fast path).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfeView {
    pub source: IpAddr,
    pub group: IpAddr,
    pub iif: Iface,
    pub upstream: IpAddr,
    pub oifs: Vec<Iface>,
    pub uptime_secs: u64,
    pub expiry_secs: u64,
    pub timeout_secs: u64,
}

/// A registered client, for display.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    pub handle: Handle,
    pub protocol: u32,
    pub component: u32,
}

/// An owned interface, for display.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerInfo {
    pub iface: Iface,
    pub routing: Option<Handle>,
    pub igmp: Option<Handle>,
}

/// A membership, for display.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipInfo {
    pub handle: Handle,
    pub entry: SourceGroupEntry,
    pub iface: Iface,
    pub join: bool,
    pub forward: bool,
}
