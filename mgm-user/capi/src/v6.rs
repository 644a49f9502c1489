// SPDX-License-Identifier: MIT OR Apache-2.0
//! IPv6, which RRAS's MGM never had: the same calls with a `6` suffix, addresses as
//! `struct in6_addr` pointers (NULL is `::`). IPv6 has no prefix masks in MGM (a mask is
//! exact or any, as the address says), so the `6` calls have no mask parameters: a source
//! of `::` is any source, a group of `::` every IPv6 group. The interface is the link's
//! IPv6 side, (ifindex, IPv6 next hop), owned apart from its IPv4 side.
//!
//! Callbacks about IPv6 entries go to the table a protocol gives in
//! `ROUTING_PROTOCOL_CONFIG.pIpv6Callbacks` (NULL: the defaults are answered at once).

use std::net::{IpAddr, Ipv6Addr};

use libc::in6_addr;
use mgm_client::proto::types::{Event, Iface};

use crate::{
    BOOL, DWORD, ERROR_INVALID_PARAMETER, HANDLE, Membership,
    dispatch::{Answer, reason_code},
    registry::Proto,
};

/// An interface of a new IPv6 MFE in a creation alert: clear `bIsEnabled` to keep it out.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct MGM_IF_ENTRY6 {
    pub dwIfIndex: DWORD,
    pub IfNextHopAddr: in6_addr,
    pub bIGMP: BOOL,
    pub bIsEnabled: BOOL,
}

/// RPF for an IPv6 flow: `*pdwInIfIndex`, `*pInIfNextHop`, `*pUpStreamNbr` hold the
/// proposal and take the answer.
pub type PMGM_RPF_CALLBACK6 = Option<
    unsafe extern "C" fn(
        pSource: *const in6_addr,
        pGroup: *const in6_addr,
        pdwInIfIndex: *mut DWORD,
        pInIfNextHop: *mut in6_addr,
        pUpStreamNbr: *mut in6_addr,
        dwHdrSize: DWORD,
        pbPacketHdr: *mut u8,
    ) -> DWORD,
>;

/// Creation alert for an IPv6 MFE.
pub type PMGM_CREATION_ALERT_CALLBACK6 = Option<
    unsafe extern "C" fn(
        pSource: *const in6_addr,
        pGroup: *const in6_addr,
        dwInIfIndex: DWORD,
        pInIfNextHop: *const in6_addr,
        dwIfCount: DWORD,
        pmieOutIfList: *mut MGM_IF_ENTRY6,
    ) -> DWORD,
>;

/// Prune alert for an IPv6 entry (`::` source or group: any).
pub type PMGM_PRUNE_ALERT_CALLBACK6 = Option<
    unsafe extern "C" fn(
        pSource: *const in6_addr,
        pGroup: *const in6_addr,
        dwIfIndex: DWORD,
        pIfNextHop: *const in6_addr,
        bMemberDelete: BOOL,
        pdwTimeout: *mut DWORD,
    ) -> DWORD,
>;

/// Join alert for an IPv6 entry.
pub type PMGM_JOIN_ALERT_CALLBACK6 = Option<
    unsafe extern "C" fn(
        pSource: *const in6_addr,
        pGroup: *const in6_addr,
        bMemberUpdate: BOOL,
    ) -> DWORD,
>;

/// An IPv6 packet on the wrong interface.
pub type PMGM_WRONG_IF_CALLBACK6 = Option<
    unsafe extern "C" fn(
        pSource: *const in6_addr,
        pGroup: *const in6_addr,
        dwIfIndex: DWORD,
        pIfNextHop: *const in6_addr,
        dwHdrSize: DWORD,
        pbPacketHdr: *mut u8,
    ) -> DWORD,
>;

/// MLD (the IGMP client of IPv6) joined or left on a shared interface.
pub type PMGM_LOCAL_JOIN_CALLBACK6 = Option<
    unsafe extern "C" fn(
        pSource: *const in6_addr,
        pGroup: *const in6_addr,
        dwIfIndex: DWORD,
        pIfNextHop: *const in6_addr,
    ) -> DWORD,
>;

/// Disable or enable MLD on an interface's IPv6 side; an owned IPv6 side left the kernel.
pub type PMGM_INTERFACE_CALLBACK6 =
    Option<unsafe extern "C" fn(dwIfIndex: DWORD, pIfNextHop: *const in6_addr) -> DWORD>;

/// An IPv6 MFE went (`dwReason`: `MGM_MFE_DELETED_*`).
pub type PMGM_MFE_DELETED_CALLBACK6 = Option<
    unsafe extern "C" fn(
        pSource: *const in6_addr,
        pGroup: *const in6_addr,
        dwReason: DWORD,
    ) -> DWORD,
>;

/// The callbacks about IPv6 entries (mgm). Any may be NULL.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct MGM_IPV6_CALLBACKS {
    pub pfnRpfCallback6: PMGM_RPF_CALLBACK6,
    pub pfnCreationAlertCallback6: PMGM_CREATION_ALERT_CALLBACK6,
    pub pfnPruneAlertCallback6: PMGM_PRUNE_ALERT_CALLBACK6,
    pub pfnJoinAlertCallback6: PMGM_JOIN_ALERT_CALLBACK6,
    pub pfnWrongIfCallback6: PMGM_WRONG_IF_CALLBACK6,
    pub pfnLocalJoinCallback6: PMGM_LOCAL_JOIN_CALLBACK6,
    pub pfnLocalLeaveCallback6: PMGM_LOCAL_JOIN_CALLBACK6,
    pub pfnDisableMldCallback6: PMGM_INTERFACE_CALLBACK6,
    pub pfnEnableMldCallback6: PMGM_INTERFACE_CALLBACK6,
    pub pfnMfeDeletedCallback6: PMGM_MFE_DELETED_CALLBACK6,
    pub pfnInterfaceGoneCallback6: PMGM_INTERFACE_CALLBACK6,
}

/// An outgoing interface of an IPv6 MFE, with its counters.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct MGM_OIF6 {
    pub dwOutIfIndex: DWORD,
    pub NextHopAddr: in6_addr,
    pub ullOutPackets: u64,
    pub ullOutOctets: u64,
    /// Copies longer than the interface's MTU (dropped; mgmd sends Packet Too Big).
    pub ullFragNeeded: u64,
    /// Copies dropped because the interface had been released.
    pub ullOutDiscards: u64,
}

/// An IPv6 MFE (mgm's: RRAS's MIB_IPMCAST_MFE has IPv4 addresses), followed by
/// `ulNumOutIf` [`MGM_OIF6`]s: `SIZEOF_MGM_MFE6(ulNumOutIf)` bytes. Counters are 64-bit.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct MGM_MFE6 {
    pub Group: in6_addr,
    pub Source: in6_addr,
    pub UpStrmNgbr: in6_addr,
    pub InIfNextHopAddr: in6_addr,
    pub dwInIfIndex: DWORD,
    /// The protocol id owning the incoming interface (0: none).
    pub dwInIfProtocol: DWORD,
    pub ulUpTime: crate::ULONG,
    pub ulExpiryTime: crate::ULONG,
    pub ulTimeOut: crate::ULONG,
    pub ulNumOutIf: crate::ULONG,
    pub ullInPkts: u64,
    pub ullInOctets: u64,
    /// Packets that arrived on another interface than the incoming one.
    pub ullPktsDifferentIf: u64,
    /// Packets dropped with a hop limit of 1 or less.
    pub ullInDiscards: u64,
    pub rgOutInfo: [MGM_OIF6; crate::ANY_SIZE],
}

/// A joined IPv6 entry, as [`crate::MgmGroupEnumerationGetNext6`] returns it (`::`: any).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SOURCE_GROUP_ENTRY6 {
    pub Source: in6_addr,
    pub Group: in6_addr,
}

fn addr(p: *const in6_addr) -> IpAddr {
    // SAFETY: the caller passes a valid in6_addr or NULL.
    let a = unsafe { p.as_ref() }.map_or([0; 16], |a| a.s6_addr);
    Ipv6Addr::from(a).into()
}

fn c6(ip: IpAddr) -> in6_addr {
    match ip {
        IpAddr::V6(a) => in6_addr { s6_addr: a.octets() },
        IpAddr::V4(_) => in6_addr { s6_addr: [0; 16] },
    }
}

/// Takes the IPv6 side of a link: (interface, IPv6 next hop; NULL or `::` for a broadcast
/// or point-to-point link).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MgmTakeInterfaceOwnership6(
    hProtocol: HANDLE,
    dwIfIndex: DWORD,
    pIfNextHopAddr: *const in6_addr,
) -> DWORD {
    crate::take(hProtocol, dwIfIndex, addr(pIfNextHopAddr))
}

/// Releases the IPv6 side of a link, atomically as [`crate::MgmReleaseInterfaceOwnership`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MgmReleaseInterfaceOwnership6(
    hProtocol: HANDLE,
    dwIfIndex: DWORD,
    pIfNextHopAddr: *const in6_addr,
) -> DWORD {
    crate::release(hProtocol, dwIfIndex, addr(pIfNextHopAddr))
}

/// The protocol owning (interface, IPv6 next hop).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MgmGetProtocolOnInterface6(
    dwIfIndex: DWORD,
    pIfNextHopAddr: *const in6_addr,
    pdwIfProtocolId: crate::PDWORD,
    pdwIfComponentId: crate::PDWORD,
) -> DWORD {
    // SAFETY: the caller's pointers, passed on.
    unsafe {
        crate::protocol_on(dwIfIndex, addr(pIfNextHopAddr), pdwIfProtocolId, pdwIfComponentId)
    }
}

fn membership6(
    source: *const in6_addr,
    group: *const in6_addr,
    ifindex: DWORD,
    nexthop: *const in6_addr,
    flags: DWORD,
) -> Option<Membership> {
    if group.is_null() {
        return None;
    }
    let (source, group) = (addr(source), addr(group));
    let mask = |a: IpAddr| -> IpAddr {
        if a.is_unspecified() {
            Ipv6Addr::UNSPECIFIED.into()
        } else {
            Ipv6Addr::from_bits(u128::MAX).into()
        }
    };
    Some(Membership {
        source,
        source_mask: mask(source),
        group,
        group_mask: mask(group),
        ifindex,
        nexthop: addr(nexthop),
        flags,
    })
}

/// Adds an IPv6 group membership entry: (S,G); (*,G) with a NULL or `::` source; (*,*)
/// with a group of `::`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MgmAddGroupMembershipEntry6(
    hProtocol: HANDLE,
    pSourceAddr: *const in6_addr,
    pGroupAddr: *const in6_addr,
    dwIfIndex: DWORD,
    pIfNextHopAddr: *const in6_addr,
    dwFlags: DWORD,
) -> DWORD {
    match membership6(pSourceAddr, pGroupAddr, dwIfIndex, pIfNextHopAddr, dwFlags) {
        Some(m) => crate::membership(hProtocol, m, true),
        None => ERROR_INVALID_PARAMETER,
    }
}

/// Clears flags of an IPv6 group membership entry.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MgmDeleteGroupMembershipEntry6(
    hProtocol: HANDLE,
    pSourceAddr: *const in6_addr,
    pGroupAddr: *const in6_addr,
    dwIfIndex: DWORD,
    pIfNextHopAddr: *const in6_addr,
    dwFlags: DWORD,
) -> DWORD {
    match membership6(pSourceAddr, pGroupAddr, dwIfIndex, pIfNextHopAddr, dwFlags) {
        Some(m) => crate::membership(hProtocol, m, false),
        None => ERROR_INVALID_PARAMETER,
    }
}

fn truth(b: bool) -> BOOL {
    b.into()
}

/// Runs an IPv6 event's callback from the protocol's `6` table, if it gave one.
pub(crate) fn call(p: &Proto, event: &Event) -> Answer {
    let c = p.config6.unwrap_or_default();
    let nh = |i: &Iface| c6(i.nexthop);
    let ip = |a: in6_addr| IpAddr::from(Ipv6Addr::from(a.s6_addr));
    // SAFETY (every call below): the daemon's callbacks, with arguments that live for the
    // call; the out-parameters point at locals read afterwards.
    match event {
        Event::Rpf { source, group, iif, upstream, header, .. } => {
            if let Some(f) = c.pfnRpfCallback6 {
                let (mut ifi, mut hop, mut up) = (iif.ifindex, nh(iif), c6(*upstream));
                let mut header = header.clone();
                let len = header.len() as DWORD;
                unsafe {
                    f(
                        &c6(*source),
                        &c6(*group),
                        &mut ifi,
                        &mut hop,
                        &mut up,
                        len,
                        header.as_mut_ptr(),
                    )
                };
                return Answer::Rpf { ifindex: ifi, nexthop: ip(hop), upstream: ip(up) };
            }
        }
        Event::CreationAlert { source, group, iif, oifs, .. } => {
            if let Some(f) = c.pfnCreationAlertCallback6 {
                let mut list: Vec<MGM_IF_ENTRY6> = oifs
                    .iter()
                    .map(|o| MGM_IF_ENTRY6 {
                        dwIfIndex: o.iface.ifindex,
                        IfNextHopAddr: nh(&o.iface),
                        bIGMP: truth(o.igmp),
                        bIsEnabled: truth(o.enabled),
                    })
                    .collect();
                let n = list.len() as DWORD;
                unsafe {
                    f(&c6(*source), &c6(*group), iif.ifindex, &nh(iif), n, list.as_mut_ptr())
                };
                return Answer::Creation {
                    enabled: list.iter().map(|e| e.bIsEnabled != 0).collect(),
                };
            }
        }
        Event::PruneAlert { entry, iface, member_delete, timeout_secs, .. } => {
            if let Some(f) = c.pfnPruneAlertCallback6 {
                let none = in6_addr { s6_addr: [0; 16] };
                let (ifi, hop) = iface.as_ref().map_or((0, none), |i| (i.ifindex, nh(i)));
                let md = truth(*member_delete);
                let mut timeout = DWORD::try_from(*timeout_secs).unwrap_or(DWORD::MAX);
                unsafe { f(&c6(entry.source), &c6(entry.group), ifi, &hop, md, &mut timeout) };
                return Answer::Prune { timeout };
            }
        }
        Event::JoinAlert { entry, member_add } => {
            if let Some(f) = c.pfnJoinAlertCallback6 {
                unsafe { f(&c6(entry.source), &c6(entry.group), truth(*member_add)) };
            }
        }
        Event::WrongInterface { source, group, iface, header } => {
            if let Some(f) = c.pfnWrongIfCallback6 {
                let mut header = header.clone();
                let len = header.len() as DWORD;
                unsafe {
                    f(
                        &c6(*source),
                        &c6(*group),
                        iface.ifindex,
                        &nh(iface),
                        len,
                        header.as_mut_ptr(),
                    )
                };
            }
        }
        Event::LocalJoin { entry, iface } | Event::LocalLeave { entry, iface } => {
            let f = match event {
                Event::LocalJoin { .. } => c.pfnLocalJoinCallback6,
                _ => c.pfnLocalLeaveCallback6,
            };
            if let Some(f) = f {
                unsafe { f(&c6(entry.source), &c6(entry.group), iface.ifindex, &nh(iface)) };
            }
        }
        Event::DisableIgmp { iface } | Event::EnableIgmp { iface } => {
            let f = match event {
                Event::DisableIgmp { .. } => c.pfnDisableMldCallback6,
                _ => c.pfnEnableMldCallback6,
            };
            if let Some(f) = f {
                unsafe { f(iface.ifindex, &nh(iface)) };
            }
        }
        Event::MfeDeleted { source, group, reason } => {
            if let Some(f) = c.pfnMfeDeletedCallback6 {
                unsafe { f(&c6(*source), &c6(*group), reason_code(*reason)) };
            }
        }
        Event::InterfaceGone { iface } => {
            if let Some(f) = c.pfnInterfaceGoneCallback6 {
                unsafe { f(iface.ifindex, &nh(iface)) };
            }
        }
    }
    Answer::Default
}
