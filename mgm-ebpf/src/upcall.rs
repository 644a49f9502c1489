// SPDX-License-Identifier: MIT OR Apache-2.0
//! Upcalls: telling mgmd about packets the fast path could not forward.

use core::mem::size_of;

use aya_ebpf::{
    helpers::bpf_ktime_get_ns, helpers::generated::bpf_xdp_load_bytes, programs::XdpContext,
};
use mgm_common::{
    MfeKey, MfeKey6, UPCALL_F_EVENT, UPCALL_F_IPV6, UPCALL_F_QUEUED, UPCALL_FRAME_MAX,
    UPCALL_INTERVAL_NS, UPCALL_NO_MFE, UPCALL_QUEUE, Upcall, UpcallKey, UpcallSeen, counter,
};

use crate::maps::{MGM_UPCALL_SCRATCH, MGM_UPCALL_SEEN, MGM_UPCALL_SEEN6, MGM_UPCALLS, count};
use crate::parse::within;

/// The flow an upcall is about, of either family.
#[derive(Clone, Copy)]
pub enum Flow<'a> {
    V4(&'a MfeKey),
    V6(&'a MfeKey6),
}

impl Flow<'_> {
    /// This flow's rate-limiter entry for (`ifindex`, `kind`), if there is one.
    #[inline(always)]
    fn seen(&self, ifindex: u32, kind: u32) -> Option<*mut UpcallSeen> {
        match self {
            Flow::V4(k) => MGM_UPCALL_SEEN.get_ptr_mut(UpcallKey { flow: **k, ifindex, kind }),
            Flow::V6(k) => MGM_UPCALL_SEEN6.get_ptr_mut(UpcallKey { flow: **k, ifindex, kind }),
        }
    }

    #[inline(always)]
    fn start(&self, ifindex: u32, kind: u32, seen: UpcallSeen) {
        let _ = match self {
            Flow::V4(k) => MGM_UPCALL_SEEN.insert(UpcallKey { flow: **k, ifindex, kind }, seen, 0),
            Flow::V6(k) => MGM_UPCALL_SEEN6.insert(UpcallKey { flow: **k, ifindex, kind }, seen, 0),
        };
    }
}

/// Tells the control plane about a packet it could not forward. Per (S,G, ingress, kind) and
/// `UPCALL_INTERVAL_NS`: one event (a flood of unknown traffic costs one ring entry per flow
/// and interval, not one per packet), and for a flow without MFE the first `UPCALL_QUEUE`
/// packets whole, so mgmd can forward them once the MFE exists instead of losing them.
#[inline(always)]
pub fn upcall(ctx: &XdpContext, flow: Flow<'_>, kind: u32) {
    let ifindex = ctx.ingress_ifindex() as u32;
    let avail = ctx.data_end() - ctx.data();
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    let mut flags = match flow.seen(ifindex, kind) {
        // SAFETY (all three): an LRU value this CPU looked up; a racing CPU may count twice.
        Some(seen) if now.wrapping_sub(unsafe { (*seen).since_ns }) < UPCALL_INTERVAL_NS => {
            if kind != UPCALL_NO_MFE || unsafe { (*seen).queued } >= UPCALL_QUEUE {
                return;
            }
            unsafe { (*seen).queued += 1 };
            UPCALL_F_QUEUED
        }
        _ => {
            let queued = u32::from(kind == UPCALL_NO_MFE);
            flow.start(ifindex, kind, UpcallSeen { since_ns: now, queued, _pad: 0 });
            UPCALL_F_EVENT | if kind == UPCALL_NO_MFE { UPCALL_F_QUEUED } else { 0 }
        }
    };
    // Only a whole packet can be forwarded later: a longer one is counted, not held.
    if flags & UPCALL_F_QUEUED != 0 && avail > UPCALL_FRAME_MAX {
        count(counter::UPCALL_NOT_HELD);
        flags &= !UPCALL_F_QUEUED;
        if flags == 0 {
            return;
        }
    }
    let Some(rec) = MGM_UPCALL_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let len = if avail > UPCALL_FRAME_MAX { UPCALL_FRAME_MAX } else { avail };
    let Some(len) = within(len, 1, UPCALL_FRAME_MAX) else {
        return;
    };
    // SAFETY: rec is this CPU's scratch value; the helper bounds-checks the packet side and
    // len is within 1..=UPCALL_FRAME_MAX, the size of `frame`.
    let rc =
        unsafe { bpf_xdp_load_bytes(ctx.ctx, 0, (*rec).frame.as_mut_ptr().cast(), len as u32) };
    if rc < 0 {
        return;
    }
    // An IPv6 upcall's addresses are in the frame it carries.
    let (source, group, flags) = match flow {
        Flow::V4(k) => (k.source, k.group, flags),
        Flow::V6(_) => ([0; 4], [0; 4], flags | UPCALL_F_IPV6),
    };
    // SAFETY: as above.
    unsafe {
        (*rec).upcall = Upcall { source, group, ifindex, kind, flags, frame_len: len as u32 };
    }
    let size = size_of::<Upcall>() + len;
    // SAFETY: rec points to size_of::<UpcallRecord>() >= size bytes.
    let bytes = unsafe { core::slice::from_raw_parts(rec as *const u8, size) };
    match MGM_UPCALLS.output::<[u8]>(bytes, 0) {
        Ok(()) => count(counter::UPCALL_SENT),
        Err(_) => count(counter::UPCALL_LOST),
    }
}
