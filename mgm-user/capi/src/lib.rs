// SPDX-License-Identifier: MIT OR Apache-2.0
//! libmgm: the MGM API as C routing daemons know it from RRAS's `mgm.h` — the same function
//! names, parameters and structures in Linux types, the same Win32 result codes — over
//! mgmd's socket, through mgm-client (one implementation of the protocol).
//!
//! A process has one connection to mgmd at a time; every handle it registers lives on it,
//! usable from any thread. Callbacks run where the daemon says at [`MgmInitialize`]: on its
//! own loop (it polls [`MgmGetEventFd`] and calls [`MgmDispatch`] when it is readable) or on
//! a thread of the library's. When mgmd goes away the handles of that connection are dead
//! (their calls return ERROR_CONNECTION_INVALID, the lost-connection callback runs once);
//! the next [`MgmRegisterMProtocol`] connects again.

#![allow(non_snake_case, non_camel_case_types, clippy::missing_safety_doc)]

mod conn;
mod dispatch;
mod enumeration;
mod mfe;
mod registry;
mod types;
mod v6;

use std::{
    ffi::{CStr, c_char, c_int},
    net::{IpAddr, Ipv4Addr},
};

pub use dispatch::{
    MGM_DISPATCH_CALLER, MGM_DISPATCH_THREAD, MgmDispatch, PMGM_CONNECTION_LOST_CALLBACK,
};
pub use enumeration::*;
pub use mfe::*;
pub use types::*;
pub use v6::*;

use conn::Failure;
use mgm_client::proto::{self, ErrorCode};
use registry::{Proto, registry};

/// Done.
pub const NO_ERROR: DWORD = 0;
/// This process may not use mgmd's socket (not in its group).
pub const ERROR_ACCESS_DENIED: DWORD = 5;
/// A table of mgmd's is full, or this client is at one of its limits.
pub const ERROR_NOT_ENOUGH_MEMORY: DWORD = 8;
/// A bad handle, an interface the client does not own, a bad mask, a NULL pointer.
pub const ERROR_INVALID_PARAMETER: DWORD = 87;
/// Not even one entry fits the buffer: `*pdwBufferSize` says how much one needs.
pub const ERROR_INSUFFICIENT_BUFFER: DWORD = 122;
/// A registration or an ownership conflicts with an existing one.
pub const ERROR_ALREADY_EXISTS: DWORD = 183;
/// A page was returned and more entries remain.
pub const ERROR_MORE_DATA: DWORD = 234;
/// The walk is over (the page may still hold entries).
pub const ERROR_NO_MORE_ITEMS: DWORD = 259;
/// The call cannot be carried out in the current state.
pub const ERROR_CAN_NOT_COMPLETE: DWORD = 1003;
/// The named entry does not exist.
pub const ERROR_NOT_FOUND: DWORD = 1168;
/// No mgmd at the socket (it does not run).
pub const ERROR_CONNECTION_REFUSED: DWORD = 1225;
/// The handle's connection to mgmd is gone (mgmd stopped or restarted, and released and
/// deregistered everything of it): register again.
pub const ERROR_CONNECTION_INVALID: DWORD = 1229;
/// mgmd did not answer in time (30 s).
pub const ERROR_TIMEOUT: DWORD = 1460;

/// Join state: the entry has members (it drives join and prune alerts).
pub const MGM_JOIN_STATE_FLAG: DWORD = 0x1;
/// Forward state: the interface is in the outgoing list of every matching MFE.
pub const MGM_FORWARD_STATE_FLAG: DWORD = 0x2;

/// A failure as the Win32 code MGM's caller expects.
fn code(f: &Failure) -> DWORD {
    match f {
        Failure::Refused(e) => e.win32.unwrap_or(match e.code {
            ErrorCode::NotFound => ERROR_NOT_FOUND,
            ErrorCode::Full => ERROR_NOT_ENOUGH_MEMORY,
            ErrorCode::PermissionDenied | ErrorCode::TooManyConnections => ERROR_ACCESS_DENIED,
            ErrorCode::FastPath => ERROR_CAN_NOT_COMPLETE,
            _ => ERROR_INVALID_PARAMETER,
        }),
        Failure::Lost => ERROR_CONNECTION_INVALID,
        Failure::TimedOut => ERROR_TIMEOUT,
        Failure::Protocol => ERROR_CAN_NOT_COMPLETE,
    }
}

/// A call's outcome as its Win32 code.
fn status<T>(r: Result<T, DWORD>) -> DWORD {
    r.err().unwrap_or(NO_ERROR)
}

/// Runs `f` with the protocol a handle names: ERROR_INVALID_PARAMETER for a handle this
/// library never gave (or deregistered), ERROR_CONNECTION_INVALID for one of a lost
/// connection.
fn with_proto<T>(h: HANDLE, f: impl FnOnce(&Proto) -> Result<T, Failure>) -> Result<T, DWORD> {
    let p = registry().proto(h)?;
    f(&p).map_err(|e| code(&e))
}

/// Runs `f` on the connection (made now if there is none): for calls without a handle.
fn with_conn<T>(f: impl FnOnce(&conn::Conn) -> Result<T, Failure>) -> Result<T, DWORD> {
    let c = registry().connection()?;
    f(&c).map_err(|e| code(&e))
}

/// An IPv4 address as RRAS passes it: a DWORD in network byte order.
pub(crate) fn ipv4(dw: DWORD) -> IpAddr {
    Ipv4Addr::from(u32::from_be(dw)).into()
}

/// An IPv4 address as RRAS passes it back (0 for anything else).
pub(crate) fn dword(ip: IpAddr) -> DWORD {
    match ip {
        IpAddr::V4(a) => u32::from(a).to_be(),
        IpAddr::V6(_) => 0,
    }
}

/// Where mgmd's socket is (NULL: `$MGM_SOCKET`, else /run/mgm/mgmd.sock), how callbacks run
/// ([`MGM_DISPATCH_CALLER`] or [`MGM_DISPATCH_THREAD`]) and what runs once when the
/// connection to mgmd is lost (NULL: nothing; calls then return ERROR_CONNECTION_INVALID).
/// Optional, and only before the first connection (ERROR_CAN_NOT_COMPLETE after).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MgmInitialize(
    pszSocket: *const c_char,
    dwDispatch: DWORD,
    pfnConnectionLost: PMGM_CONNECTION_LOST_CALLBACK,
) -> DWORD {
    if dwDispatch > MGM_DISPATCH_THREAD {
        return ERROR_INVALID_PARAMETER;
    }
    let socket = if pszSocket.is_null() {
        None
    } else {
        // SAFETY: the caller passes a NUL-terminated string (or NULL, handled above).
        match unsafe { CStr::from_ptr(pszSocket) }.to_str() {
            Ok(s) => Some(s.to_owned()),
            Err(_) => return ERROR_INVALID_PARAMETER,
        }
    };
    status(registry().configure(socket, dwDispatch, pfnConnectionLost))
}

/// The descriptor that is readable while callbacks are due: poll it and call
/// [`MgmDispatch`]. The same descriptor for the process's life (across reconnections);
/// -1 if it could not be made.
#[unsafe(no_mangle)]
pub extern "C" fn MgmGetEventFd() -> c_int {
    registry().event_fd()
}

/// Registers a routing protocol (`dwProtocolId`, `dwComponentId`, [`PROTO_IP_IGMP`] for
/// IGMP) with its callbacks (`prpiInfo`, copied; NULL for none); `*phProtocol` is its
/// handle. ERROR_ALREADY_EXISTS if that pair is registered.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MgmRegisterMProtocol(
    prpiInfo: *const ROUTING_PROTOCOL_CONFIG,
    dwProtocolId: DWORD,
    dwComponentId: DWORD,
    phProtocol: *mut HANDLE,
) -> DWORD {
    if phProtocol.is_null() {
        return ERROR_INVALID_PARAMETER;
    }
    // SAFETY: the caller passes a valid structure or NULL.
    let config = unsafe { prpiInfo.as_ref() }.copied().unwrap_or_default();
    let reg = registry();
    let c = match reg.connection() {
        Ok(c) => c,
        Err(e) => return e,
    };
    match c.call(proto::Register { protocol: dwProtocolId, component: dwComponentId }) {
        Ok(r) => {
            let h = reg.add_proto(&c, r.handle, config);
            // SAFETY: checked non-null; the caller passes a place for one HANDLE.
            unsafe { *phProtocol = h };
            NO_ERROR
        }
        Err(e) => code(&e),
    }
}

/// Deregisters a protocol; it must have released its interfaces (ERROR_CAN_NOT_COMPLETE
/// while it owns one). A handle of a lost connection is forgotten (mgmd deregistered it
/// when the connection went): NO_ERROR.
#[unsafe(no_mangle)]
pub extern "C" fn MgmDeRegisterMProtocol(hProtocol: HANDLE) -> DWORD {
    let reg = registry();
    let r = match reg.proto(hProtocol) {
        Err(ERROR_CONNECTION_INVALID) => Ok(()),
        Err(e) => Err(e),
        Ok(p) => {
            p.conn.call(proto::Deregister { handle: p.server }).map(drop).map_err(|e| code(&e))
        }
    };
    if r.is_ok() {
        reg.remove_proto(hProtocol);
    }
    status(r)
}

/// Takes (interface, IPv4 next hop in network byte order; 0 for a broadcast or
/// point-to-point link). mgmd starts managing the interface (XDP) if it did not yet.
#[unsafe(no_mangle)]
pub extern "C" fn MgmTakeInterfaceOwnership(
    hProtocol: HANDLE,
    dwIfIndex: DWORD,
    dwIfNextHopAddr: DWORD,
) -> DWORD {
    take(hProtocol, dwIfIndex, ipv4(dwIfNextHopAddr))
}

/// Releases (interface, IPv4 next hop): every entry kept there for this protocol goes, and
/// once it returns no packet entering afterwards is forwarded there for it.
#[unsafe(no_mangle)]
pub extern "C" fn MgmReleaseInterfaceOwnership(
    hProtocol: HANDLE,
    dwIfIndex: DWORD,
    dwIfNextHopAddr: DWORD,
) -> DWORD {
    release(hProtocol, dwIfIndex, ipv4(dwIfNextHopAddr))
}

pub(crate) fn take(h: HANDLE, ifindex: DWORD, nexthop: IpAddr) -> DWORD {
    status(with_proto(h, |p| {
        p.conn.call(proto::TakeInterface { handle: p.server, ifindex, nexthop }).map(drop)
    }))
}

pub(crate) fn release(h: HANDLE, ifindex: DWORD, nexthop: IpAddr) -> DWORD {
    status(with_proto(h, |p| {
        p.conn.call(proto::ReleaseInterface { handle: p.server, ifindex, nexthop }).map(drop)
    }))
}

/// The routing protocol that owns (interface, IPv4 next hop) (IGMP when it is alone
/// there): its protocol and component ids. ERROR_NOT_FOUND when nobody owns it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MgmGetProtocolOnInterface(
    dwIfIndex: DWORD,
    dwIfNextHopAddr: DWORD,
    pdwIfProtocolId: PDWORD,
    pdwIfComponentId: PDWORD,
) -> DWORD {
    // SAFETY: the caller's pointers, passed on.
    unsafe { protocol_on(dwIfIndex, ipv4(dwIfNextHopAddr), pdwIfProtocolId, pdwIfComponentId) }
}

pub(crate) unsafe fn protocol_on(
    ifindex: DWORD,
    nexthop: IpAddr,
    protocol: *mut DWORD,
    component: *mut DWORD,
) -> DWORD {
    if protocol.is_null() || component.is_null() {
        return ERROR_INVALID_PARAMETER;
    }
    match with_conn(|c| c.call(proto::GetProtocolOnInterface { ifindex, nexthop })) {
        Ok(p) => {
            // SAFETY: both checked non-null; the caller passes a DWORD each.
            unsafe {
                *protocol = p.protocol;
                *component = p.component;
            }
            NO_ERROR
        }
        Err(e) => e,
    }
}

/// Adds (or adds flags to) a group membership entry on an interface this protocol owns:
/// (S,G) with both masks all ones, (*,G) with a source and source mask of 0, (*,*) with all
/// four 0. Addresses and masks in network byte order.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn MgmAddGroupMembershipEntry(
    hProtocol: HANDLE,
    dwSourceAddr: DWORD,
    dwSourceMask: DWORD,
    dwGroupAddr: DWORD,
    dwGroupMask: DWORD,
    dwIfIndex: DWORD,
    dwIfNextHopIPAddr: DWORD,
    dwFlags: DWORD,
) -> DWORD {
    let m = [dwSourceAddr, dwSourceMask, dwGroupAddr, dwGroupMask];
    membership(hProtocol, Membership::v4(m, dwIfIndex, dwIfNextHopIPAddr, dwFlags), true)
}

/// Clears the given flags of a group membership entry; it goes when none is left.
/// ERROR_NOT_FOUND if it (or the flag) is not there.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn MgmDeleteGroupMembershipEntry(
    hProtocol: HANDLE,
    dwSourceAddr: DWORD,
    dwSourceMask: DWORD,
    dwGroupAddr: DWORD,
    dwGroupMask: DWORD,
    dwIfIndex: DWORD,
    dwIfNextHopIPAddr: DWORD,
    dwFlags: DWORD,
) -> DWORD {
    let m = [dwSourceAddr, dwSourceMask, dwGroupAddr, dwGroupMask];
    membership(hProtocol, Membership::v4(m, dwIfIndex, dwIfNextHopIPAddr, dwFlags), false)
}

/// A membership's arguments in either family.
pub(crate) struct Membership {
    pub source: IpAddr,
    pub source_mask: IpAddr,
    pub group: IpAddr,
    pub group_mask: IpAddr,
    pub ifindex: DWORD,
    pub nexthop: IpAddr,
    pub flags: DWORD,
}

impl Membership {
    /// From RRAS's arguments: (source, source mask, group, group mask) in network byte
    /// order, the interface and its next hop, the flags.
    fn v4([s, sm, g, gm]: [DWORD; 4], ifindex: DWORD, nexthop: DWORD, flags: DWORD) -> Self {
        Self {
            source: ipv4(s),
            source_mask: ipv4(sm),
            group: ipv4(g),
            group_mask: ipv4(gm),
            ifindex,
            nexthop: ipv4(nexthop),
            flags,
        }
    }
}

pub(crate) fn membership(h: HANDLE, m: Membership, add: bool) -> DWORD {
    status(with_proto(h, |p| {
        let args = proto::MembershipArgs {
            handle: p.server,
            source: Some(m.source),
            source_mask: Some(m.source_mask),
            group: m.group,
            group_mask: Some(m.group_mask),
            ifindex: m.ifindex,
            nexthop: Some(m.nexthop),
            flags: m.flags,
        };
        if add {
            p.conn.call(proto::AddMembership(args)).map(drop)
        } else {
            p.conn.call(proto::DeleteMembership(args)).map(drop)
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_headers_constants_are_the_protocols() {
        assert_eq!(MGM_JOIN_STATE_FLAG, proto::types::MGM_JOIN_STATE_FLAG);
        assert_eq!(MGM_FORWARD_STATE_FLAG, proto::types::MGM_FORWARD_STATE_FLAG);
        assert_eq!(PROTO_IP_IGMP, proto::types::PROTO_IP_IGMP);
        use proto::types::MgmError as E;
        let codes = [
            (E::InvalidParameter, ERROR_INVALID_PARAMETER),
            (E::InsufficientBuffer { needed: 1 }, ERROR_INSUFFICIENT_BUFFER),
            (E::CanNotComplete, ERROR_CAN_NOT_COMPLETE),
            (E::NotFound, ERROR_NOT_FOUND),
            (E::AlreadyExists, ERROR_ALREADY_EXISTS),
            (E::NotEnoughMemory, ERROR_NOT_ENOUGH_MEMORY),
        ];
        for (e, c) in codes {
            assert_eq!(e.code(), c, "{e:?}");
        }
    }

    #[test]
    fn ipv4_dwords_are_in_network_byte_order() {
        let dw = u32::from_ne_bytes([239, 1, 2, 3]);
        assert_eq!(ipv4(dw), "239.1.2.3".parse::<IpAddr>().unwrap());
        assert_eq!(dword(ipv4(dw)), dw);
    }
}
