// SPDX-License-Identifier: MIT OR Apache-2.0
//! libmgm: the MGM API as C routing daemons know it from RRAS's `mgm.h` — the same function
//! names and parameters in Linux types, the same Win32 result codes — over mgmd's socket,
//! through mgm-client (one implementation of the protocol).
//!
//! One process has one connection to mgmd (as a Windows router has one MGM); every handle it
//! registers lives on it, from any thread. Callbacks run where the daemon says at
//! [`MgmInitialize`]: on its own loop (it polls the descriptor it gets and calls
//! [`MgmDispatch`] when it is readable) or on a thread of the library's.
//!
//! Work in progress (issue 33): registration, interface ownership, the event descriptor.

#![allow(non_snake_case, non_camel_case_types, clippy::missing_safety_doc)]

mod conn;

use std::{
    ffi::{CStr, c_char, c_int, c_void},
    net::{IpAddr, Ipv4Addr},
    sync::{Arc, Mutex},
};

use conn::{Conn, Failure};
use mgm_client::proto::{self, ErrorCode, types::Handle};

/// RRAS's `DWORD`.
pub type DWORD = u32;
/// RRAS's `HANDLE`: a registered protocol.
pub type HANDLE = *mut c_void;

/// Done.
pub const NO_ERROR: DWORD = 0;
/// No mgmd to talk to at the socket (it does not run, or this process may not use it).
pub const ERROR_ACCESS_DENIED: DWORD = 5;
/// A table of mgmd's is full.
pub const ERROR_NOT_ENOUGH_MEMORY: DWORD = 8;
/// A bad handle, an interface the client does not own, a bad mask.
pub const ERROR_INVALID_PARAMETER: DWORD = 87;
/// Not even one entry fits the buffer.
pub const ERROR_INSUFFICIENT_BUFFER: DWORD = 122;
/// A registration or an ownership conflicts with an existing one.
pub const ERROR_ALREADY_EXISTS: DWORD = 183;
/// A page was returned and more entries remain.
pub const ERROR_MORE_DATA: DWORD = 234;
/// The walk is over.
pub const ERROR_NO_MORE_ITEMS: DWORD = 259;
/// The call cannot be carried out in the current state.
pub const ERROR_CAN_NOT_COMPLETE: DWORD = 1003;
/// The named entry does not exist.
pub const ERROR_NOT_FOUND: DWORD = 1168;
/// mgmd refused the connection (not running).
pub const ERROR_CONNECTION_REFUSED: DWORD = 1225;
/// The connection to mgmd is gone (it stopped or restarted): its handles are dead;
/// [`MgmRegisterMProtocol`] connects again.
pub const ERROR_CONNECTION_INVALID: DWORD = 1229;
/// mgmd did not answer in time.
pub const ERROR_TIMEOUT: DWORD = 1460;

/// Callbacks run on the daemon's own loop: it polls the descriptor [`MgmInitialize`] gives
/// and calls [`MgmDispatch`] when it is readable.
pub const MGM_DISPATCH_CALLER: DWORD = 0;
/// Callbacks run on a thread of the library's.
pub const MGM_DISPATCH_THREAD: DWORD = 1;

/// The library's state: the connection, once made.
static LIB: Mutex<Option<Arc<Conn>>> = Mutex::new(None);
/// Where mgmd's socket is, and how callbacks run (set by [`MgmInitialize`]).
static CONFIG: Mutex<(Option<String>, DWORD)> = Mutex::new((None, MGM_DISPATCH_CALLER));

/// The socket used when [`MgmInitialize`] named none: `$MGM_SOCKET`, else mgmd's default.
fn socket_path() -> String {
    let cfg = CONFIG.lock().unwrap_or_else(|p| p.into_inner());
    cfg.0
        .clone()
        .or_else(|| std::env::var("MGM_SOCKET").ok())
        .unwrap_or_else(|| proto::DEFAULT_SOCKET.to_owned())
}

/// The connection, made at first use (or again after one was lost).
fn conn() -> Result<Arc<Conn>, DWORD> {
    let mut lib = LIB.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = lib.as_ref()
        && c.lost().is_none()
    {
        return Ok(c.clone());
    }
    let c = Arc::new(Conn::connect(&socket_path()).map_err(|e| match e {
        mgm_client::ClientError::Connect { source, .. }
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            ERROR_ACCESS_DENIED
        }
        _ => ERROR_CONNECTION_REFUSED,
    })?);
    *lib = Some(c.clone());
    Ok(c)
}

/// The connection if there is one already (calls that need a handle never connect).
fn existing() -> Result<Arc<Conn>, DWORD> {
    LIB.lock().unwrap_or_else(|p| p.into_inner()).clone().ok_or(ERROR_INVALID_PARAMETER)
}

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
        Failure::Lost(_) => ERROR_CONNECTION_INVALID,
        Failure::TimedOut => ERROR_TIMEOUT,
        Failure::Protocol(_) => ERROR_CAN_NOT_COMPLETE,
    }
}

/// Runs `f` on the connection; its outcome as a Win32 code.
fn with<T>(
    c: Result<Arc<Conn>, DWORD>,
    f: impl FnOnce(&Conn) -> Result<T, Failure>,
) -> Result<T, DWORD> {
    let c = c?;
    f(&c).map_err(|e| code(&e))
}

fn status(r: Result<(), DWORD>) -> DWORD {
    r.err().unwrap_or(NO_ERROR)
}

/// An IPv4 address as RRAS passes it: a DWORD in network byte order.
fn ipv4(dw: DWORD) -> IpAddr {
    Ipv4Addr::from(u32::from_be(dw)).into()
}

fn handle(h: HANDLE) -> Handle {
    Handle(h as usize as u64)
}

/// Where mgmd's socket is (NULL: `$MGM_SOCKET`, else /run/mgm/mgmd.sock) and how callbacks
/// run ([`MGM_DISPATCH_CALLER`] or [`MGM_DISPATCH_THREAD`]). Optional; before the first
/// registration. With MGM_DISPATCH_CALLER, `*pEventFd` (if not NULL) is set to the
/// descriptor to poll once the first registration has connected: see [`MgmGetEventFd`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MgmInitialize(pszSocket: *const c_char, dwDispatch: DWORD) -> DWORD {
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
    *CONFIG.lock().unwrap_or_else(|p| p.into_inner()) = (socket, dwDispatch);
    NO_ERROR
}

/// The descriptor that is readable while callbacks are due ([`MgmDispatch`] runs them), or
/// -1 before the first registration.
#[unsafe(no_mangle)]
pub extern "C" fn MgmGetEventFd() -> c_int {
    existing().map_or(-1, |c| c.event_fd())
}

/// Registers a routing protocol (`dwProtocolId`, `dwComponentId`); `*phProtocol` is its
/// handle. ERROR_ALREADY_EXISTS if that pair is registered.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MgmRegisterMProtocol(
    _prpiInfo: *const c_void,
    dwProtocolId: DWORD,
    dwComponentId: DWORD,
    phProtocol: *mut HANDLE,
) -> DWORD {
    if phProtocol.is_null() {
        return ERROR_INVALID_PARAMETER;
    }
    let r = with(conn(), |c| {
        c.call(proto::Register { protocol: dwProtocolId, component: dwComponentId })
    });
    match r {
        Ok(reg) => {
            // SAFETY: checked non-null; the caller passes a place for one HANDLE.
            unsafe { *phProtocol = reg.handle.0 as usize as HANDLE };
            NO_ERROR
        }
        Err(e) => e,
    }
}

/// Deregisters a protocol; it must have released its interfaces.
#[unsafe(no_mangle)]
pub extern "C" fn MgmDeRegisterMProtocol(hProtocol: HANDLE) -> DWORD {
    status(with(existing(), |c| c.call(proto::Deregister { handle: handle(hProtocol) }).map(drop)))
}

/// Takes (interface, IPv4 next hop in network byte order; 0 for a broadcast link).
#[unsafe(no_mangle)]
pub extern "C" fn MgmTakeInterfaceOwnership(
    hProtocol: HANDLE,
    dwIfIndex: DWORD,
    dwIfNextHopAddr: DWORD,
) -> DWORD {
    let m = proto::TakeInterface {
        handle: handle(hProtocol),
        ifindex: dwIfIndex,
        nexthop: ipv4(dwIfNextHopAddr),
    };
    status(with(existing(), |c| c.call(m).map(drop)))
}

/// Releases (interface, IPv4 next hop): once it returns, no packet entering afterwards is
/// forwarded there for this protocol.
#[unsafe(no_mangle)]
pub extern "C" fn MgmReleaseInterfaceOwnership(
    hProtocol: HANDLE,
    dwIfIndex: DWORD,
    dwIfNextHopAddr: DWORD,
) -> DWORD {
    let m = proto::ReleaseInterface {
        handle: handle(hProtocol),
        ifindex: dwIfIndex,
        nexthop: ipv4(dwIfNextHopAddr),
    };
    status(with(existing(), |c| c.call(m).map(drop)))
}

/// Join state: the entry has members (it fires join alerts). Written out for mgm.h; a test
/// checks it is the protocol's.
pub const MGM_JOIN_STATE_FLAG: DWORD = 0x1;
/// Forward state: the interface is in the OIL of every matching MFE.
pub const MGM_FORWARD_STATE_FLAG: DWORD = 0x2;

/// One membership's arguments, IPv4 addresses and masks as RRAS passes them (network byte
/// order; a mask of 0 with an address of 0 is "any").
#[allow(clippy::too_many_arguments)]
fn membership(
    h: HANDLE,
    source: DWORD,
    source_mask: DWORD,
    group: DWORD,
    group_mask: DWORD,
    ifindex: DWORD,
    nexthop: DWORD,
    flags: DWORD,
) -> proto::MembershipArgs {
    proto::MembershipArgs {
        handle: handle(h),
        source: Some(ipv4(source)),
        source_mask: Some(ipv4(source_mask)),
        group: ipv4(group),
        group_mask: Some(ipv4(group_mask)),
        ifindex,
        nexthop: Some(ipv4(nexthop)),
        flags,
    }
}

/// Adds (or adds flags to) a group membership entry: (S,G) with both masks all ones, (*,G)
/// with a source and mask of 0, (*,*) with all four 0.
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
    let m = membership(
        hProtocol,
        dwSourceAddr,
        dwSourceMask,
        dwGroupAddr,
        dwGroupMask,
        dwIfIndex,
        dwIfNextHopIPAddr,
        dwFlags,
    );
    status(with(existing(), |c| c.call(proto::AddMembership(m)).map(drop)))
}

/// Clears the flags of a group membership entry; it goes when none is left.
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
    let m = membership(
        hProtocol,
        dwSourceAddr,
        dwSourceMask,
        dwGroupAddr,
        dwGroupMask,
        dwIfIndex,
        dwIfNextHopIPAddr,
        dwFlags,
    );
    status(with(existing(), |c| c.call(proto::DeleteMembership(m)).map(drop)))
}

/// The routing protocol that owns (interface, IPv4 next hop): its protocol and component
/// ids. ERROR_NOT_FOUND when nobody owns it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn MgmGetProtocolOnInterface(
    dwIfIndex: DWORD,
    dwIfNextHopAddr: DWORD,
    pdwIfProtocolId: *mut DWORD,
    pdwIfComponentId: *mut DWORD,
) -> DWORD {
    if pdwIfProtocolId.is_null() || pdwIfComponentId.is_null() {
        return ERROR_INVALID_PARAMETER;
    }
    let m = proto::GetProtocolOnInterface { ifindex: dwIfIndex, nexthop: ipv4(dwIfNextHopAddr) };
    match with(conn(), |c| c.call(m)) {
        Ok(p) => {
            // SAFETY: both checked non-null; the caller passes a DWORD each.
            unsafe {
                *pdwIfProtocolId = p.protocol;
                *pdwIfComponentId = p.component;
            }
            NO_ERROR
        }
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_headers_flags_are_the_protocols() {
        assert_eq!(MGM_JOIN_STATE_FLAG, proto::types::MGM_JOIN_STATE_FLAG);
        assert_eq!(MGM_FORWARD_STATE_FLAG, proto::types::MGM_FORWARD_STATE_FLAG);
    }
}
