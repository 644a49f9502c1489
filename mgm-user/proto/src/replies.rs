// SPDX-License-Identifier: MIT OR Apache-2.0
//! The methods' results: what `result` holds in a reply line.

use std::{collections::BTreeMap, net::IpAddr};

use serde::{Deserialize, Serialize};

use crate::types::{ClientInfo, EnumHandle, Handle, MembershipInfo, MfeView, OwnerInfo};

/// The result of a method that returns nothing but success: `{}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {}

/// `register`'s result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registered {
    pub handle: Handle,
}

/// `get_protocol_on_interface`'s result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtocolOnInterface {
    pub protocol: u32,
    pub component: u32,
}

/// `group_enum_start`'s result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnumStarted {
    pub enum_handle: EnumHandle,
}

/// `hello`'s result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloInfo {
    pub protocol: u32,
    pub server: String,
    /// Memberships this connection's clients may hold (`--max-memberships-per-conn`; for a
    /// user other than root, shared with that user's other connections), so a client can
    /// share it out (mgm-igmpd among its links). Absent from older mgmd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memberships: Option<u64>,
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

/// An MFE, the one shape the protocol has for one: as `get_mfe` and the walks return it
/// (`stats` only when asked for) and as `show` lists it (always with `stats`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfeReply {
    #[serde(flatten)]
    pub mfe: MfeView,
    /// Who installed it.
    #[serde(default)]
    pub origin: Origin,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<MfeStatsReply>,
}

impl MfeReply {
    /// Its counters (zero when they were not asked for).
    pub fn counters(&self) -> MfeStatsReply {
        self.stats.clone().unwrap_or_default()
    }

    /// Its outgoing interfaces' indexes.
    pub fn oif_indexes(&self) -> Vec<u32> {
        self.mfe.oifs.iter().map(|i| i.ifindex).collect()
    }
}

/// Who installed an MFE.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Created through the MGM API (a first packet, its routing protocol's answers).
    #[default]
    Mgm,
    /// `add_mfe` or mgmd's configuration: it has no upstream neighbour, timeout or expiry
    /// (they read as unspecified and 0).
    Static,
    /// Followed from the kernel's multicast routing table (`--follow-kernel`): the same.
    Kernel,
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
    /// MFEs in the fast path (MGM, static and followed from the kernel).
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
    /// ICMPv6 Packet Too Big messages sent to the sources of IPv6 packets too long for an
    /// outgoing link, and those not sent (over the budget of 1,000 a second, burst 50).
    #[serde(default)]
    pub too_big_sent: u64,
    #[serde(default)]
    pub too_big_limited: u64,
    /// Fast-path writes that failed (table full, kernel error), and the MFEs waiting for a
    /// retry (every second, from the core's current state).
    #[serde(default)]
    pub write_failures: u64,
    #[serde(default)]
    pub retrying: usize,
    /// Bytes of replies and events waiting for their clients to read (paced behind full
    /// connection queues).
    #[serde(default)]
    pub backlog_bytes: usize,
    /// New flows not given an MFE (over their interface's creation rate, or no room), and
    /// MFEs evicted to make room (ones that saw no traffic beyond their first packets).
    #[serde(default)]
    pub flows_refused: u64,
    #[serde(default)]
    pub mfes_evicted: u64,
    /// Releases under way in steps (asked for, or of clients that left); a release is
    /// answered when its last step is done.
    #[serde(default)]
    pub releasing: usize,
}

/// What `show` returns.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub interfaces: Vec<InterfaceInfo>,
    /// The fast path's entries (MGM's, static and followed), in the shape `get_mfe` gives,
    /// with their counters.
    pub mfes: Vec<MfeReply>,
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
    /// There are more MFEs than listed (the MFE walk has them all).
    #[serde(default)]
    pub more_mfes: bool,
    /// There are more memberships than listed.
    #[serde(default)]
    pub more_memberships: bool,
    /// The followed kernel table (`--follow-kernel`; empty otherwise): every entry, and
    /// whether the fast path forwards it or why the kernel does.
    #[serde(default)]
    pub kernel_routes: Vec<KernelRouteInfo>,
    /// There are more kernel entries than listed.
    #[serde(default)]
    pub more_kernel_routes: bool,
}

/// One entry of the followed kernel table, as the kernel announced it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelRouteInfo {
    /// `0.0.0.0` for the kernel's (*,G) and (*,*) entries.
    pub source: IpAddr,
    pub group: IpAddr,
    /// 0 while unresolved.
    pub iif: u32,
    /// Outgoing interfaces with their TTL thresholds, as the kernel lists them.
    pub oifs: Vec<KernelOif>,
    /// Forwarded by the fast path (its counters are the MFE's in `mfes`).
    pub accelerated: bool,
    /// Why the kernel forwards it instead (absent when accelerated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelOif {
    pub ifindex: u32,
    pub ttl_threshold: u8,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceInfo {
    pub name: String,
    pub ifindex: u32,
    pub mac: String,
    /// The MTU mgm holds copies to (the kernel's, followed as it changes).
    #[serde(default)]
    pub mtu: u16,
    /// Up with a carrier (copies can leave).
    #[serde(default)]
    pub up: bool,
}
