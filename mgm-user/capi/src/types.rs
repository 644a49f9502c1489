// SPDX-License-Identifier: MIT OR Apache-2.0
//! mgm.h's types: RRAS's names and layouts (`mgm.h`, `ipmib.h`) in Linux types. A DWORD
//! and a ULONG are 32 bits as on Windows, so structures and the code that walks them port
//! unchanged; IPv4 addresses are DWORDs in network byte order, as RRAS passes them.

#![allow(non_snake_case, non_camel_case_types)]

use std::ffi::{c_int, c_void};

/// RRAS's `DWORD`.
pub type DWORD = u32;
/// RRAS's `ULONG` (32 bits, as on Windows: counters wrap as SNMP's Counter32 do).
pub type ULONG = u32;
/// RRAS's `BOOL`: 0 is false.
pub type BOOL = c_int;
/// RRAS's `HANDLE`: a registered protocol, or a group enumeration.
pub type HANDLE = *mut c_void;
/// RRAS's `BYTE`.
pub type BYTE = u8;
/// RRAS's `PBYTE`.
pub type PBYTE = *mut BYTE;
/// RRAS's `PDWORD`.
pub type PDWORD = *mut DWORD;
/// A pointer to [`MGM_IF_ENTRY`].
pub type PMGM_IF_ENTRY = *mut MGM_IF_ENTRY;
/// A pointer to [`SOURCE_GROUP_ENTRY`].
pub type PSOURCE_GROUP_ENTRY = *mut SOURCE_GROUP_ENTRY;
/// A pointer to [`MIB_IPMCAST_MFE`].
pub type PMIB_IPMCAST_MFE = *mut MIB_IPMCAST_MFE;
/// A pointer to [`MIB_IPMCAST_MFE_STATS`].
pub type PMIB_IPMCAST_MFE_STATS = *mut MIB_IPMCAST_MFE_STATS;
/// A pointer to [`MIB_IPMCAST_MFE_STATS_EX`].
pub type PMIB_IPMCAST_MFE_STATS_EX = *mut MIB_IPMCAST_MFE_STATS_EX;
/// A pointer to [`ROUTING_PROTOCOL_CONFIG`].
pub type PROUTING_PROTOCOL_CONFIG = *mut ROUTING_PROTOCOL_CONFIG;

/// The size of RRAS's open arrays at the end of a structure (`[ANY_SIZE]`).
pub const ANY_SIZE: usize = 1;

/// RRAS's protocol id of IGMP (`PROTO_IP_IGMP`): the client that may share an interface
/// with one routing protocol, and gets the disable and enable IGMP callbacks.
pub const PROTO_IP_IGMP: DWORD = 10;

/// `MGM_ENUM_TYPES`: one entry per joined group, source any.
pub const ANY_SOURCE: DWORD = 0;
/// `MGM_ENUM_TYPES`: every joined entry as it was added ((S,G), (*,G) or (*,*)).
pub const ALL_SOURCES: DWORD = 1;
/// RRAS's `MGM_ENUM_TYPES`.
pub type MGM_ENUM_TYPES = DWORD;

/// The statistics functions' `dwFlags`: fill MIB_IPMCAST_MFE_STATS.
pub const MGM_MFE_STATS_0: DWORD = 0x1;
/// The statistics functions' `dwFlags`: fill MIB_IPMCAST_MFE_STATS_EX.
pub const MGM_MFE_STATS_1: DWORD = 0x2;

/// An interface of a new MFE in a creation alert (`MGM_IF_ENTRY`): clear `bIsEnabled` to
/// keep it out of the MFE for its lifetime.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MGM_IF_ENTRY {
    pub dwIfIndex: DWORD,
    pub dwIfNextHopAddr: DWORD,
    /// IGMP is on the interface.
    pub bIGMP: BOOL,
    pub bIsEnabled: BOOL,
}

/// A joined entry, as a group enumeration returns it (`SOURCE_GROUP_ENTRY`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SOURCE_GROUP_ENTRY {
    pub dwSourceAddr: DWORD,
    pub dwSourceMask: DWORD,
    pub dwGroupAddr: DWORD,
    pub dwGroupMask: DWORD,
}

/// An outgoing interface of an MFE (`MIB_IPMCAST_OIF`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MIB_IPMCAST_OIF {
    pub dwOutIfIndex: DWORD,
    pub dwNextHopAddr: DWORD,
    pub pvReserved: *mut c_void,
    pub dwReserved: DWORD,
}

/// An MFE (`MIB_IPMCAST_MFE`), followed by `ulNumOutIf` outgoing interfaces: its size is
/// `SIZEOF_MIB_MFE(ulNumOutIf)`. Times are in seconds; `dwRouteProtocol`,
/// `dwRouteNetwork`, `dwRouteMask` and `fFlags` are 0 (mgm keeps no route with an MFE).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MIB_IPMCAST_MFE {
    pub dwGroup: DWORD,
    pub dwSource: DWORD,
    pub dwSrcMask: DWORD,
    pub dwUpStrmNgbr: DWORD,
    pub dwInIfIndex: DWORD,
    /// The protocol id of the routing protocol owning the incoming interface (0: none).
    pub dwInIfProtocol: DWORD,
    pub dwRouteProtocol: DWORD,
    pub dwRouteNetwork: DWORD,
    pub dwRouteMask: DWORD,
    pub ulUpTime: ULONG,
    pub ulExpiryTime: ULONG,
    pub ulTimeOut: ULONG,
    pub ulNumOutIf: ULONG,
    pub fFlags: DWORD,
    pub dwReserved: DWORD,
    pub rgmioOutInfo: [MIB_IPMCAST_OIF; ANY_SIZE],
}

/// An outgoing interface's counters (`MIB_IPMCAST_OIF_STATS`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MIB_IPMCAST_OIF_STATS {
    pub dwOutIfIndex: DWORD,
    pub dwNextHopAddr: DWORD,
    pub pvDialContext: *mut c_void,
    /// Always 0: mgm has no per-interface TTL thresholds.
    pub ulTtlTooLow: ULONG,
    /// Copies longer than the interface's MTU (dropped, never fragmented).
    pub ulFragNeeded: ULONG,
    pub ulOutPackets: ULONG,
    /// Copies dropped because the interface had been released.
    pub ulOutDiscards: ULONG,
}

/// An MFE's counters (`MIB_IPMCAST_MFE_STATS`, [`MGM_MFE_STATS_0`]), followed by
/// `ulNumOutIf` interfaces' counters: `SIZEOF_MIB_MFE_STATS(ulNumOutIf)` bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MIB_IPMCAST_MFE_STATS {
    pub dwGroup: DWORD,
    pub dwSource: DWORD,
    pub dwSrcMask: DWORD,
    pub dwUpStrmNgbr: DWORD,
    pub dwInIfIndex: DWORD,
    pub dwInIfProtocol: DWORD,
    pub dwRouteProtocol: DWORD,
    pub dwRouteNetwork: DWORD,
    pub dwRouteMask: DWORD,
    pub ulUpTime: ULONG,
    pub ulExpiryTime: ULONG,
    pub ulNumOutIf: ULONG,
    pub ulInPkts: ULONG,
    pub ulInOctets: ULONG,
    /// Packets that arrived on another interface than the incoming one.
    pub ulPktsDifferentIf: ULONG,
    /// Always 0 (mgm queues nothing).
    pub ulQueueOverflow: ULONG,
    pub rgmiosOutStats: [MIB_IPMCAST_OIF_STATS; ANY_SIZE],
}

/// An MFE's extended counters (`MIB_IPMCAST_MFE_STATS_EX`, [`MGM_MFE_STATS_1`]):
/// `SIZEOF_MIB_MFE_STATS_EX(ulNumOutIf)` bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MIB_IPMCAST_MFE_STATS_EX {
    pub dwGroup: DWORD,
    pub dwSource: DWORD,
    pub dwSrcMask: DWORD,
    pub dwUpStrmNgbr: DWORD,
    pub dwInIfIndex: DWORD,
    pub dwInIfProtocol: DWORD,
    pub dwRouteProtocol: DWORD,
    pub dwRouteNetwork: DWORD,
    pub dwRouteMask: DWORD,
    pub ulUpTime: ULONG,
    pub ulExpiryTime: ULONG,
    pub ulNumOutIf: ULONG,
    pub ulInPkts: ULONG,
    pub ulInOctets: ULONG,
    pub ulPktsDifferentIf: ULONG,
    pub ulQueueOverflow: ULONG,
    /// Always 0.
    pub ulUninitMfe: ULONG,
    /// Always 0.
    pub ulNegativeMfe: ULONG,
    /// Packets dropped with a TTL (hop limit) of 1 or less.
    pub ulInDiscards: ULONG,
    /// Always 0.
    pub ulInHdrErrors: ULONG,
    /// The sum of the interfaces' `ulOutPackets`.
    pub ulTotalOutPackets: ULONG,
    pub rgmiosOutStats: [MIB_IPMCAST_OIF_STATS; ANY_SIZE],
}

/// RPF: the incoming interface for a new MFE. `*pdwInIfIndex`, `*pdwInIfNextHopAddr` and
/// `*pdwUpStreamNbr` hold the proposal (where the packet arrived) and take the answer;
/// `pbPacketHdr` is the packet's first `dwHdrSize` bytes. `pbRoute` is NULL (mgm has no
/// route structure to give). Any return value is taken as NO_ERROR.
pub type PMGM_RPF_CALLBACK = Option<
    unsafe extern "C" fn(
        dwSourceAddr: DWORD,
        dwSourceMask: DWORD,
        dwGroupAddr: DWORD,
        dwGroupMask: DWORD,
        pdwInIfIndex: PDWORD,
        pdwInIfNextHopAddr: PDWORD,
        pdwUpStreamNbr: PDWORD,
        dwHdrSize: DWORD,
        pbPacketHdr: PBYTE,
        pbRoute: PBYTE,
    ) -> DWORD,
>;

/// Creation alert: a new MFE leaves by `dwIfCount` of this protocol's interfaces; clear
/// `bIsEnabled` of those it must not leave by.
pub type PMGM_CREATION_ALERT_CALLBACK = Option<
    unsafe extern "C" fn(
        dwSourceAddr: DWORD,
        dwSourceMask: DWORD,
        dwGroupAddr: DWORD,
        dwGroupMask: DWORD,
        dwInIfIndex: DWORD,
        dwInIfNextHopAddr: DWORD,
        dwIfCount: DWORD,
        pmieOutIfList: PMGM_IF_ENTRY,
    ) -> DWORD,
>;

/// Prune alert. With `bMemberDelete` false (an MFE's outgoing list became empty),
/// `*pdwTimeout` holds the MFE's timeout in seconds and takes the answer.
pub type PMGM_PRUNE_ALERT_CALLBACK = Option<
    unsafe extern "C" fn(
        dwSourceAddr: DWORD,
        dwSourceMask: DWORD,
        dwGroupAddr: DWORD,
        dwGroupMask: DWORD,
        dwIfIndex: DWORD,
        dwIfNextHopAddr: DWORD,
        bMemberDelete: BOOL,
        pdwTimeout: PDWORD,
    ) -> DWORD,
>;

/// Join alert: the first join state for an entry (`bMemberUpdate` true), or an MFE whose
/// incoming interface this protocol owns gained an outgoing interface (false).
pub type PMGM_JOIN_ALERT_CALLBACK = Option<
    unsafe extern "C" fn(
        dwSourceAddr: DWORD,
        dwSourceMask: DWORD,
        dwGroupAddr: DWORD,
        dwGroupMask: DWORD,
        bMemberUpdate: BOOL,
    ) -> DWORD,
>;

/// A packet of (S,G) arrived on this protocol's interface, which is not the MFE's
/// incoming one.
pub type PMGM_WRONG_IF_CALLBACK = Option<
    unsafe extern "C" fn(
        dwSourceAddr: DWORD,
        dwGroupAddr: DWORD,
        dwIfIndex: DWORD,
        dwIfNextHopAddr: DWORD,
        dwHdrSize: DWORD,
        pbPacketHdr: PBYTE,
    ) -> DWORD,
>;

/// Local join or leave: IGMP added or deleted a membership on an interface this routing
/// protocol shares with it.
pub type PMGM_LOCAL_JOIN_CALLBACK = Option<
    unsafe extern "C" fn(
        dwSourceAddr: DWORD,
        dwSourceMask: DWORD,
        dwGroupAddr: DWORD,
        dwGroupMask: DWORD,
        dwIfIndex: DWORD,
        dwIfNextHopAddr: DWORD,
    ) -> DWORD,
>;

/// See [`PMGM_LOCAL_JOIN_CALLBACK`].
pub type PMGM_LOCAL_LEAVE_CALLBACK = PMGM_LOCAL_JOIN_CALLBACK;

/// Disable (or enable) IGMP: IGMP stops (resumes, re-adding its memberships) on the
/// interface while a routing protocol takes or releases it.
pub type PMGM_DISABLE_IGMP_CALLBACK =
    Option<unsafe extern "C" fn(dwIfIndex: DWORD, dwIfNextHopAddr: DWORD) -> DWORD>;

/// See [`PMGM_DISABLE_IGMP_CALLBACK`].
pub type PMGM_ENABLE_IGMP_CALLBACK = PMGM_DISABLE_IGMP_CALLBACK;

/// mgm: an MFE went (`dwReason`: one of the `MGM_MFE_DELETED_*` values).
pub type PMGM_MFE_DELETED_CALLBACK =
    Option<unsafe extern "C" fn(dwSourceAddr: DWORD, dwGroupAddr: DWORD, dwReason: DWORD) -> DWORD>;

/// mgm: an interface this protocol owned left the kernel; its state there is gone.
pub type PMGM_INTERFACE_GONE_CALLBACK =
    Option<unsafe extern "C" fn(dwIfIndex: DWORD, dwIfNextHopAddr: DWORD) -> DWORD>;

/// `dwReason` of an MFE deletion: it was idle for its timeout.
pub const MGM_MFE_DELETED_EXPIRED: DWORD = 1;
/// Its incoming interface was released.
pub const MGM_MFE_DELETED_RELEASED: DWORD = 2;
/// Its incoming interface left the kernel.
pub const MGM_MFE_DELETED_INTERFACE_GONE: DWORD = 3;
/// The table was full and it was the least recently used.
pub const MGM_MFE_DELETED_EVICTED: DWORD = 4;

/// A protocol's callbacks (`ROUTING_PROTOCOL_CONFIG`), given to [`crate::MgmRegisterMProtocol`]
/// (copied: the caller's structure need not outlive the call). Any may be NULL: a request
/// it would answer takes its default (the proposal stands, every interface is enabled, the
/// timeout stays). The first ten fields are RRAS's; mgm appends its two notices.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ROUTING_PROTOCOL_CONFIG {
    /// Reserved: 0.
    pub dwCallbackFlags: DWORD,
    pub pfnRpfCallback: PMGM_RPF_CALLBACK,
    pub pfnCreationAlertCallback: PMGM_CREATION_ALERT_CALLBACK,
    pub pfnPruneAlertCallback: PMGM_PRUNE_ALERT_CALLBACK,
    pub pfnJoinAlertCallback: PMGM_JOIN_ALERT_CALLBACK,
    pub pfnWrongIfCallback: PMGM_WRONG_IF_CALLBACK,
    pub pfnLocalJoinCallback: PMGM_LOCAL_JOIN_CALLBACK,
    pub pfnLocalLeaveCallback: PMGM_LOCAL_LEAVE_CALLBACK,
    pub pfnDisableIgmpCallback: PMGM_DISABLE_IGMP_CALLBACK,
    pub pfnEnableIgmpCallback: PMGM_ENABLE_IGMP_CALLBACK,
    /// mgm.
    pub pfnMfeDeletedCallback: PMGM_MFE_DELETED_CALLBACK,
    /// mgm.
    pub pfnInterfaceGoneCallback: PMGM_INTERFACE_GONE_CALLBACK,
    /// mgm: the callbacks about IPv6 entries (copied at registration), or NULL.
    pub pIpv6Callbacks: *const crate::v6::MGM_IPV6_CALLBACKS,
}

impl Default for ROUTING_PROTOCOL_CONFIG {
    fn default() -> Self {
        Self {
            dwCallbackFlags: 0,
            pfnRpfCallback: None,
            pfnCreationAlertCallback: None,
            pfnPruneAlertCallback: None,
            pfnJoinAlertCallback: None,
            pfnWrongIfCallback: None,
            pfnLocalJoinCallback: None,
            pfnLocalLeaveCallback: None,
            pfnDisableIgmpCallback: None,
            pfnEnableIgmpCallback: None,
            pfnMfeDeletedCallback: None,
            pfnInterfaceGoneCallback: None,
            pIpv6Callbacks: std::ptr::null(),
        }
    }
}

// SAFETY: function pointers and integers; the IPv6 table's pointer is read only at
// registration (the copy is what the library keeps).
unsafe impl Send for ROUTING_PROTOCOL_CONFIG {}
// SAFETY: as above.
unsafe impl Sync for ROUTING_PROTOCOL_CONFIG {}
