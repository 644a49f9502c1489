// SPDX-License-Identifier: MIT OR Apache-2.0
//! The packet as both programs read it, one way: a header in place where the packet's
//! memory is directly readable (XDP), or a bounds-checked copy (XDP and TC alike). The checks
//! of both families ([`crate::parse::check_copy`], [`crate::parse6::check6`]) are written
//! once, over this, and run unchanged in either program.

use aya_ebpf::{
    helpers::generated::{bpf_skb_load_bytes, bpf_xdp_load_bytes},
    programs::{TcContext, XdpContext},
};

use crate::parse::ptr_at;

/// A packet's bytes, as either program reads them.
pub trait Packet {
    /// `len` bytes at `off` into `buf` (which holds at least `len`); negative on failure.
    fn copy_bytes(&self, off: usize, buf: *mut u8, len: u32) -> i64;

    /// The `N` bytes at `off` where they lie, if the program may read the packet in place
    /// and the packet holds them (no helper call on the hot path).
    fn in_place<const N: usize>(&self, off: usize) -> Option<&[u8; N]>;

    /// The `N` bytes at `off`, in place or copied, if the packet holds them.
    #[inline(always)]
    fn bytes<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
        if let Some(h) = self.in_place::<N>(off) {
            return Some(*h);
        }
        let mut h = [0u8; N];
        (self.copy_bytes(off, h.as_mut_ptr(), N as u32) >= 0).then_some(h)
    }
}

impl Packet for XdpContext {
    #[inline(always)]
    fn copy_bytes(&self, off: usize, buf: *mut u8, len: u32) -> i64 {
        // SAFETY: the caller's buffer holds `len` bytes; the helper bounds-checks the packet.
        unsafe { bpf_xdp_load_bytes(self.ctx, off as u32, buf.cast(), len) }
    }

    #[inline(always)]
    fn in_place<const N: usize>(&self, off: usize) -> Option<&[u8; N]> {
        // SAFETY: bounds-checked by ptr_at; the packet outlives the program's run.
        ptr_at::<[u8; N]>(self, off).map(|h| unsafe { &*h })
    }
}

impl Packet for TcContext {
    #[inline(always)]
    fn copy_bytes(&self, off: usize, buf: *mut u8, len: u32) -> i64 {
        // SAFETY: as above, for the skb.
        unsafe { bpf_skb_load_bytes(self.skb.skb.cast(), off as u32, buf.cast(), len) }
    }

    /// An skb's data may not be linear: always a copy.
    #[inline(always)]
    fn in_place<const N: usize>(&self, _off: usize) -> Option<&[u8; N]> {
        None
    }
}
