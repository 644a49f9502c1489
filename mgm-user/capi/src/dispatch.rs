// SPDX-License-Identifier: MIT OR Apache-2.0
//! Running the callbacks: each event mgmd sent goes to the callback its protocol
//! registered, on the thread the daemon chose; the answers to RPF, creation and prune
//! requests go back to mgmd from the callback's out-parameters (a NULL callback answers the
//! default at once, so no MFE waits for mgmd's timeout).

use std::{
    net::IpAddr,
    sync::{Arc, Mutex},
};

use mgm_client::proto::{
    self, EventFrame,
    types::{DeleteReason, Event, Iface, SourceGroupEntry},
};

use crate::{
    BOOL, DWORD, ERROR_CAN_NOT_COMPLETE, ERROR_CONNECTION_INVALID, HANDLE, MGM_IF_ENTRY,
    MGM_MFE_DELETED_EVICTED, MGM_MFE_DELETED_EXPIRED, MGM_MFE_DELETED_INTERFACE_GONE,
    MGM_MFE_DELETED_RELEASED, NO_ERROR, dword,
    registry::{Proto, registry},
};

/// Callbacks run on the daemon's own loop: it polls [`crate::MgmGetEventFd`] and calls
/// [`MgmDispatch`] when it is readable.
pub const MGM_DISPATCH_CALLER: DWORD = 0;
/// Callbacks run on a thread of the library's, one at a time.
pub const MGM_DISPATCH_THREAD: DWORD = 1;

/// mgm: the connection to mgmd is gone. Every handle of it is dead (mgmd released and
/// deregistered them); register again once mgmd is back.
pub type PMGM_CONNECTION_LOST_CALLBACK = Option<unsafe extern "C" fn()>;

/// One dispatcher at a time: callbacks never run concurrently.
static DISPATCHING: Mutex<()> = Mutex::new(());

/// Runs the callbacks that are due, on the calling thread. NO_ERROR; after the connection
/// to mgmd was lost, ERROR_CONNECTION_INVALID once (after the lost-connection callback);
/// ERROR_CAN_NOT_COMPLETE when called from inside a callback.
#[unsafe(no_mangle)]
pub extern "C" fn MgmDispatch() -> DWORD {
    let Ok(_one) = DISPATCHING.try_lock() else {
        return ERROR_CAN_NOT_COMPLETE;
    };
    let reg = registry();
    reg.drain_wake();
    if let Some(conn) = reg.current() {
        for ev in conn.take_events() {
            if let Some((h, p)) = reg.proto_on(&conn, ev.handle) {
                run(h, &p, ev);
            }
        }
    }
    match reg.take_loss() {
        Some(on_lost) => {
            if let Some(f) = on_lost {
                // SAFETY: the daemon's callback, given to MgmInitialize.
                unsafe { f() };
            }
            ERROR_CONNECTION_INVALID
        }
        None => NO_ERROR,
    }
}

/// The library's dispatch thread: waits on the event descriptor, then dispatches.
pub fn spawn_thread() -> bool {
    let fd = registry().event_fd();
    if fd < 0 {
        return false;
    }
    std::thread::Builder::new()
        .name("libmgm-dispatch".into())
        .spawn(move || {
            loop {
                let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
                // SAFETY: one valid pollfd; the descriptor lives as long as the process.
                let n = unsafe { libc::poll(&mut pfd, 1, -1) };
                if n > 0 {
                    MgmDispatch();
                }
            }
        })
        .is_ok()
}

fn truth(b: bool) -> BOOL {
    b.into()
}

/// IPv4 (source, mask, group, mask) as RRAS passes them.
fn entry4(e: &SourceGroupEntry) -> Option<[DWORD; 4]> {
    let all = [e.source, e.source_mask, e.group, e.group_mask];
    all.iter().all(IpAddr::is_ipv4).then(|| all.map(dword))
}

/// The masks of an exact (S,G) as RRAS passes them with one.
fn sg4(source: IpAddr, group: IpAddr) -> Option<[DWORD; 4]> {
    let any = source.is_unspecified();
    entry4(&SourceGroupEntry {
        source,
        source_mask: if any { [0, 0, 0, 0].into() } else { [255, 255, 255, 255].into() },
        group,
        group_mask: [255, 255, 255, 255].into(),
    })
}

fn iface4(i: &Iface) -> Option<(DWORD, DWORD)> {
    i.nexthop.is_ipv4().then(|| (i.ifindex, dword(i.nexthop)))
}

/// What a callback answered to a request of mgmd's (RPF, creation, prune), in the
/// family-free terms the reply takes; [`Answer::Default`] when no callback ran.
pub(crate) enum Answer {
    Default,
    Rpf {
        ifindex: DWORD,
        nexthop: IpAddr,
        upstream: IpAddr,
    },
    /// One flag per outgoing interface of the alert, in its order.
    Creation {
        enabled: Vec<bool>,
    },
    Prune {
        timeout: DWORD,
    },
}

/// Runs one event's callback (IPv4 events through the RRAS callbacks, IPv6 ones through
/// the `6` table, see [`crate::v6`]) and answers mgmd when the event is a request.
fn run(_h: HANDLE, p: &Arc<Proto>, ev: EventFrame) {
    let answer = if is_v6(&ev.event) { crate::v6::call(p, &ev.event) } else { call(p, &ev.event) };
    reply(p, &ev.event, answer);
}

/// Whether an event is about IPv6: which callback table it goes to.
fn is_v6(event: &Event) -> bool {
    match event {
        Event::Rpf { group, .. }
        | Event::CreationAlert { group, .. }
        | Event::WrongInterface { group, .. }
        | Event::MfeDeleted { group, .. } => group.is_ipv6(),
        Event::PruneAlert { entry, .. }
        | Event::JoinAlert { entry, .. }
        | Event::LocalJoin { entry, .. }
        | Event::LocalLeave { entry, .. } => entry.group.is_ipv6(),
        Event::DisableIgmp { iface }
        | Event::EnableIgmp { iface }
        | Event::InterfaceGone { iface } => iface.nexthop.is_ipv6(),
    }
}

/// Sends mgmd the answer to a request (the default where no callback answered); other
/// events need none.
fn reply(p: &Proto, event: &Event, answer: Answer) {
    let handle = p.server;
    match event {
        Event::Rpf { request, iif, upstream, .. } => {
            let (ifindex, nexthop, upstream) = match answer {
                Answer::Rpf { ifindex, nexthop, upstream } => (ifindex, nexthop, upstream),
                _ => (iif.ifindex, iif.nexthop, *upstream),
            };
            let (nexthop, upstream) = (Some(nexthop), Some(upstream));
            let _ = p.conn.call(proto::AnswerRpf {
                handle,
                request: *request,
                ifindex,
                nexthop,
                upstream,
            });
        }
        Event::CreationAlert { request, oifs, .. } => {
            let disabled = match answer {
                Answer::Creation { enabled } => {
                    oifs.iter().zip(enabled).filter(|(_, on)| !on).map(|(o, _)| o.iface).collect()
                }
                _ => Vec::new(),
            };
            let _ = p.conn.call(proto::AnswerCreation { handle, request: *request, disabled });
        }
        Event::PruneAlert { request: Some(request), timeout_secs, .. } => {
            // An unchanged answer keeps mgmd's own value, even one past a DWORD.
            let asked = DWORD::try_from(*timeout_secs).unwrap_or(DWORD::MAX);
            let timeout_secs = match answer {
                Answer::Prune { timeout } if timeout != asked => timeout.into(),
                _ => *timeout_secs,
            };
            let _ = p.conn.call(proto::AnswerPrune { handle, request: *request, timeout_secs });
        }
        _ => {}
    }
}

/// Runs an IPv4 event's RRAS callback, if the protocol gave one.
fn call(p: &Proto, event: &Event) -> Answer {
    let c = &p.config;
    // SAFETY (every call below): the daemon's callbacks, with arguments that live for the
    // call; the out-parameters point at locals read afterwards.
    match event {
        Event::Rpf { source, group, iif, upstream, header, .. } => {
            if let (Some(f), Some([s, sm, g, gm]), Some((ifi, nh))) =
                (c.pfnRpfCallback, sg4(*source, *group), iface4(iif))
            {
                let (mut ifi, mut nh, mut up) = (ifi, nh, dword(*upstream));
                let mut header = header.clone();
                let len = header.len() as DWORD;
                unsafe {
                    f(
                        s,
                        sm,
                        g,
                        gm,
                        &mut ifi,
                        &mut nh,
                        &mut up,
                        len,
                        header.as_mut_ptr(),
                        std::ptr::null_mut(),
                    )
                };
                return Answer::Rpf {
                    ifindex: ifi,
                    nexthop: crate::ipv4(nh),
                    upstream: crate::ipv4(up),
                };
            }
        }
        Event::CreationAlert { source, group, iif, oifs, .. } => {
            if let (Some(f), Some([s, sm, g, gm]), Some((ifi, nh))) =
                (c.pfnCreationAlertCallback, sg4(*source, *group), iface4(iif))
            {
                let mut list: Vec<MGM_IF_ENTRY> = oifs
                    .iter()
                    .map(|o| MGM_IF_ENTRY {
                        dwIfIndex: o.iface.ifindex,
                        dwIfNextHopAddr: dword(o.iface.nexthop),
                        bIGMP: truth(o.igmp),
                        bIsEnabled: truth(o.enabled),
                    })
                    .collect();
                unsafe { f(s, sm, g, gm, ifi, nh, list.len() as DWORD, list.as_mut_ptr()) };
                return Answer::Creation {
                    enabled: list.iter().map(|e| e.bIsEnabled != 0).collect(),
                };
            }
        }
        Event::PruneAlert { entry, iface, member_delete, timeout_secs, .. } => {
            let (ifi, nh) = iface.as_ref().and_then(iface4).unwrap_or((0, 0));
            if let (Some(f), Some([s, sm, g, gm])) = (c.pfnPruneAlertCallback, entry4(entry)) {
                let mut timeout = DWORD::try_from(*timeout_secs).unwrap_or(DWORD::MAX);
                unsafe { f(s, sm, g, gm, ifi, nh, truth(*member_delete), &mut timeout) };
                return Answer::Prune { timeout };
            }
        }
        Event::JoinAlert { entry, member_add } => {
            if let (Some(f), Some([s, sm, g, gm])) = (c.pfnJoinAlertCallback, entry4(entry)) {
                unsafe { f(s, sm, g, gm, truth(*member_add)) };
            }
        }
        Event::WrongInterface { source, group, iface, header } => {
            if let (Some(f), Some((ifi, nh))) = (c.pfnWrongIfCallback, iface4(iface))
                && source.is_ipv4()
            {
                let mut header = header.clone();
                let len = header.len() as DWORD;
                unsafe { f(dword(*source), dword(*group), ifi, nh, len, header.as_mut_ptr()) };
            }
        }
        Event::LocalJoin { entry, iface } | Event::LocalLeave { entry, iface } => {
            let f = match event {
                Event::LocalJoin { .. } => c.pfnLocalJoinCallback,
                _ => c.pfnLocalLeaveCallback,
            };
            if let (Some(f), Some([s, sm, g, gm]), Some((ifi, nh))) =
                (f, entry4(entry), iface4(iface))
            {
                unsafe { f(s, sm, g, gm, ifi, nh) };
            }
        }
        Event::DisableIgmp { iface } | Event::EnableIgmp { iface } => {
            let f = match event {
                Event::DisableIgmp { .. } => c.pfnDisableIgmpCallback,
                _ => c.pfnEnableIgmpCallback,
            };
            if let (Some(f), Some((ifi, nh))) = (f, iface4(iface)) {
                unsafe { f(ifi, nh) };
            }
        }
        Event::MfeDeleted { source, group, reason } => {
            if let Some(f) = c.pfnMfeDeletedCallback
                && group.is_ipv4()
            {
                unsafe { f(dword(*source), dword(*group), reason_code(*reason)) };
            }
        }
        Event::InterfaceGone { iface } => {
            if let (Some(f), Some((ifi, nh))) = (c.pfnInterfaceGoneCallback, iface4(iface)) {
                unsafe { f(ifi, nh) };
            }
        }
    }
    Answer::Default
}

pub(crate) fn reason_code(r: DeleteReason) -> DWORD {
    match r {
        DeleteReason::Expired => MGM_MFE_DELETED_EXPIRED,
        DeleteReason::Released => MGM_MFE_DELETED_RELEASED,
        DeleteReason::InterfaceGone => MGM_MFE_DELETED_INTERFACE_GONE,
        DeleteReason::Evicted => MGM_MFE_DELETED_EVICTED,
    }
}
