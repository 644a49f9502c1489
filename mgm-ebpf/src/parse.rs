// SPDX-License-Identifier: MIT OR Apache-2.0
//! Packet access and the IPv4 checks every forwarding path applies (XDP and TC alike, on a
//! copy of the header): what may be routed, and why the rest goes to the kernel. Also the
//! header checksum (RFC 1071) and its incremental update on a TTL change (RFC 1624).

use core::{ffi::c_void, mem::size_of};

use aya_ebpf::{
    helpers::generated::bpf_loop, macros::map, maps::PerCpuArray, programs::XdpContext,
};
use mgm_common::counter;
use network_types::ip::Ipv4Hdr;

use crate::packet::Packet;

pub const ETH_P_IPV4: u16 = 0x0800;
const IPPROTO_IGMP: u8 = 2;
const IPPROTO_PIM: u8 = 103;
const IPOPT_EOL: u8 = 0;
const IPOPT_NOP: u8 = 1;
/// Router Alert (RFC 2113): the packet is for routers to look at, not to forward blindly.
const IPOPT_RA: u8 = 148;
/// Longest and shortest IPv4 header.
pub const HDR_MAX: usize = 60;
pub const HDR_MIN: usize = Ipv4Hdr::LEN;
/// A header copy: 60 bytes and room to index with a mask the verifier understands.
pub type Header = [u8; 64];

/// This CPU's copy of the header being checked (an IPv4 header with options, an IPv6
/// Hop-by-Hop header) and the state of its options walk. In a map value, not on the stack:
/// the verifier does not track a map value's bytes, so the rounds of a walk look alike to it
/// and it checks one (on the stack each offset would be a state of its own), and the
/// 512-byte stack keeps its room. A program runs to completion on its CPU before another
/// uses it (softirq context), as the upcall scratch.
#[repr(C)]
pub struct Scratch {
    pub bytes: Header,
    /// The walk's next offset.
    pub at: u32,
    /// 0, or the counter + 1 that refuses the packet.
    pub verdict: u32,
}

#[map(name = "MGM_SCRATCH")]
static MGM_SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// This CPU's scratch value.
#[inline(always)]
pub fn scratch() -> Option<&'static mut Scratch> {
    // SAFETY: this CPU's slot, used by one program run at a time (see `Scratch`).
    MGM_SCRATCH.get_ptr_mut(0).map(|p| unsafe { &mut *p })
}

/// What a walk's rounds read: the scratch value and where the walked bytes end. Read-only
/// for the rounds (on the caller's stack); what changes goes to the scratch value.
pub struct Walk {
    pub s: *mut Scratch,
    pub end: usize,
}

impl Walk {
    /// A round's start: the scratch value, the next option's offset and the walk's end, or
    /// `None` once the walk has reached its end. The offset is compared whole (a walk may end
    /// exactly at 64), then masked for the verifier: it comes from the packet, the copy is 64
    /// bytes.
    ///
    /// # Safety
    /// `walk` is the `Walk` [`run_walk`] passes to its rounds.
    #[inline(always)]
    pub unsafe fn round(walk: *mut c_void) -> Option<(&'static mut Scratch, usize, usize)> {
        // SAFETY: `run_walk` passes its `Walk`, alive for the whole loop, and the scratch
        // value it names.
        let (s, end) = unsafe { ((*(walk as *const Walk)).s, (*(walk as *const Walk)).end) };
        let s = unsafe { &mut *s };
        let at = s.at as usize;
        if at >= end {
            return None;
        }
        Some((s, at & 63, end))
    }
}

/// Runs `round` over `walk` until it returns 1, at most `rounds` times (`bpf_loop`: the
/// verifier checks one round whatever the count); the walk's verdict.
#[inline(always)]
pub fn run_walk(
    s: &mut Scratch,
    start: usize,
    end: usize,
    rounds: u32,
    round: unsafe extern "C" fn(u64, *mut c_void) -> i64,
) -> Result<(), u32> {
    s.at = start as u32;
    s.verdict = 0;
    let mut walk = Walk { s, end };
    // SAFETY: `round` reads `walk` (on this stack) only while the helper runs.
    unsafe { bpf_loop(rounds, round as *mut c_void, (&mut walk as *mut Walk).cast(), 0) };
    match s.verdict {
        0 => Ok(()),
        why => Err(why - 1),
    }
}
/// Ones'-complement sum of a valid IPv4 header (RFC 1071).
const CSUM_OK: u32 = 0xffff;

/// Bounds-checked pointer to a `T` at `offset` in the packet.
#[inline(always)]
pub fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*mut T> {
    let start = ctx.data();
    if start + offset + size_of::<T>() > ctx.data_end() {
        return None;
    }
    Some((start + offset) as *mut T)
}

/// How many header bytes to copy out of `l3_len`: 20..=60, or `None` for a frame too short
/// to hold an IPv4 header.
#[inline(always)]
pub fn header_len(l3_len: usize) -> Option<usize> {
    within(if l3_len > HDR_MAX { HDR_MAX } else { l3_len }, HDR_MIN, HDR_MAX)
}

/// `n` if it lies within `min..=max`, bounded on the very register the caller goes on to use
/// (as a helper's size, or an offset). Written for every verifier from Linux 6.1 on: the
/// range is checked as one unsigned comparison of `n - min` (old verifiers learn nothing
/// from `n != 0`, nor link `n` to `n - min`), and the optimiser may not move the bound to a
/// sibling register.
#[inline(always)]
pub fn within(n: usize, min: usize, max: usize) -> Option<usize> {
    let m = opaque(n.wrapping_sub(min));
    if m > max - min {
        return None;
    }
    Some(opaque(m) + min)
}

/// `v`, which the optimiser may no longer reason about (an `asm!` moving the register to
/// itself: one instruction): the checks that follow are compiled as written, on this
/// register.
#[inline(always)]
pub fn opaque(mut v: usize) -> usize {
    // SAFETY: one register moved to itself: no memory, no stack, no flags.
    unsafe {
        core::arch::asm!("{0} = {0}", inout(reg) v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// What the checks found in a routable packet.
pub struct Ipv4 {
    pub tot_len: usize,
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub ttl: u8,
    /// The upper-layer protocol (the TC path rewrites the TTL with it in the checksum).
    pub proto: u8,
}

/// The checks before any forwarding of an IPv4 packet at `ip_off` (with `l3_len` bytes after
/// the Ethernet header), on a copy of its header: what the TC program runs on every packet,
/// and the XDP program on a header [`check_plain`] leaves to it (options, or a frame shorter
/// than 20 bytes of IP). `Err` is the counter saying why the kernel gets the packet instead.
/// A function of its own: the verifier checks it once. (The XDP program's in-place check
/// stays in the caller, whose registers then carry the result to the forwarding: merging the
/// two here cost 8 ns a packet, measured with `prog_bench`.)
#[inline(never)]
pub fn check_copy<C: Packet>(ctx: &C, ip_off: usize, l3_len: usize) -> Result<Ipv4, u32> {
    let s = scratch().ok_or(counter::PASS_MALFORMED)?;
    let n = header_len(l3_len).ok_or(counter::PASS_MALFORMED)?;
    // n is within 20..=60 and the copy holds 64 bytes; the helper bounds-checks the packet.
    if ctx.copy_bytes(ip_off, s.bytes.as_mut_ptr(), n as u32) < 0 {
        return Err(counter::PASS_MALFORMED);
    }
    check(s, n, l3_len)
}

/// The checks before any forwarding: `s.bytes` holds the first `avail` bytes of the IP
/// header (and maybe more), `l3_len` bytes follow the Ethernet header in the frame. `Err` is
/// the counter saying why the kernel gets the packet instead: not multicast or link-local
/// scope, a malformed header (version, IHL, lengths, checksum, an option's length), or
/// control traffic (IGMP, PIM, Router Alert), which only the kernel and the routing daemons
/// may consume.
#[inline(always)]
pub fn check(s: &mut Scratch, avail: usize, l3_len: usize) -> Result<Ipv4, u32> {
    if avail < HDR_MIN {
        return Err(counter::PASS_MALFORMED);
    }
    let h = &s.bytes;
    let fixed: &[u8; HDR_MIN] = h.first_chunk().ok_or(counter::PASS_MALFORMED)?;
    let (ip, ihl) = check_fixed(fixed, l3_len)?;
    if ihl > avail || !checksum_ok(h, ihl) {
        return Err(counter::PASS_MALFORMED);
    }
    control(h[9])?;
    run_walk(s, Ipv4Hdr::LEN, ihl, (HDR_MAX - Ipv4Hdr::LEN) as u32, option)?;
    Ok(ip)
}

/// The same checks on a header without options, read in place from the packet (the common
/// case, without a copy): `Ok(None)` when the header has options, for [`check`] to decide.
#[inline(always)]
pub fn check_plain(h: &[u8; HDR_MIN], l3_len: usize) -> Result<Option<Ipv4>, u32> {
    let (ip, ihl) = check_fixed(h, l3_len)?;
    if ihl != HDR_MIN {
        return Ok(None);
    }
    if !checksum_ok(h, HDR_MIN) {
        return Err(counter::PASS_MALFORMED);
    }
    control(h[9])?;
    Ok(Some(ip))
}

/// IGMP and PIM are for the kernel and the routing daemons, never forwarded.
#[inline(always)]
fn control(proto: u8) -> Result<(), u32> {
    if proto == IPPROTO_IGMP || proto == IPPROTO_PIM {
        return Err(counter::PASS_CONTROL);
    }
    Ok(())
}

/// What the fixed 20 bytes decide: version, scope, IHL and lengths. Returns the packet and
/// its header length; the checksum, then the protocol and options, are left to the caller.
#[inline(always)]
fn check_fixed(h: &[u8; HDR_MIN], l3_len: usize) -> Result<(Ipv4, usize), u32> {
    if h[0] >> 4 != 4 {
        return Err(counter::PASS_MALFORMED);
    }
    let dst = [h[16], h[17], h[18], h[19]];
    if dst[0] & 0xf0 != 0xe0 {
        return Err(counter::PASS_NOT_MULTICAST);
    }
    if dst[0] == 224 && dst[1] == 0 && dst[2] == 0 {
        return Err(counter::PASS_LINK_LOCAL);
    }
    let ihl = (h[0] & 0x0f) as usize * 4;
    let tot_len = u16::from_be_bytes([h[2], h[3]]) as usize;
    // Ethernet padding may make the frame longer than tot_len, never shorter.
    if ihl < HDR_MIN || tot_len < ihl || tot_len > l3_len {
        return Err(counter::PASS_MALFORMED);
    }
    let src = [h[12], h[13], h[14], h[15]];
    Ok((Ipv4 { tot_len, src, dst, ttl: h[8], proto: h[9] }, ihl))
}

/// One option of an IPv4 header's walk (RFC 791): each well formed, none a Router Alert.
/// A `bpf_loop` round (0 goes on, 1 stops); each moves at least one byte, so 40 rounds cover
/// the longest option space.
#[inline(never)]
unsafe extern "C" fn option(_: u64, walk: *mut c_void) -> i64 {
    // SAFETY: `run_walk` passes its `Walk`.
    let Some((s, i, ihl)) = (unsafe { Walk::round(walk) }) else {
        return 1;
    };
    let kind = s.bytes[i];
    if kind == IPOPT_EOL {
        return 1;
    }
    if kind == IPOPT_NOP {
        s.at = (i + 1) as u32;
        return 0;
    }
    let len = s.bytes[(i + 1) & 63] as usize;
    if i + 1 >= ihl || len < 2 || i + len > ihl {
        s.verdict = counter::PASS_MALFORMED + 1;
        return 1;
    }
    if kind == IPOPT_RA {
        s.verdict = counter::PASS_CONTROL + 1;
        return 1;
    }
    s.at = (i + len) as u32;
    0
}

/// Validates the header checksum over its first `ihl` bytes (of an in-place 20-byte header
/// or a copy of up to 60: the loop's bound is the array's, which the verifier can see).
#[inline(always)]
fn checksum_ok<const N: usize>(h: &[u8; N], ihl: usize) -> bool {
    let mut sum: u32 = 0;
    for i in 0..N / 2 {
        if 2 * i >= ihl {
            break;
        }
        sum += u16::from_be_bytes([h[2 * i], h[2 * i + 1]]) as u32;
    }
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum == CSUM_OK
}

/// The Ethernet address of an IPv4 group (RFC 1112): 01:00:5e and its low 23 bits.
#[inline(always)]
pub fn group_mac(group: [u8; 4]) -> [u8; 6] {
    [0x01, 0x00, 0x5e, group[1] & 0x7f, group[2], group[3]]
}

/// Decrements the TTL and updates the checksum incrementally.
#[inline(always)]
pub fn decrement_ttl(ip: &mut Ipv4Hdr) {
    set_ttl(ip, ip.ttl - 1);
}

/// Sets the TTL and updates the checksum incrementally (RFC 1624, eqn. 3:
/// HC' = ~(~HC + ~m + m'), with m the 16-bit word holding TTL and protocol).
#[inline(always)]
pub fn set_ttl(ip: &mut Ipv4Hdr, ttl: u8) {
    let old = u16::from_be_bytes([ip.ttl, ip.proto]) as u32;
    ip.ttl = ttl;
    let new = u16::from_be_bytes([ip.ttl, ip.proto]) as u32;
    let hc = u16::from_be_bytes(ip.check) as u32;
    let mut sum = (!hc & 0xffff) + (!old & 0xffff) + new;
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    ip.check = (!(sum as u16)).to_be_bytes();
}
