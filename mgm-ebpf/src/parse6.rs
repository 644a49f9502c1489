// SPDX-License-Identifier: MIT OR Apache-2.0
//! The IPv6 checks (RFC 8200): what may be routed, and why the rest goes to the kernel. The
//! extension headers are walked up to [`MAX_EXT_HEADERS`], each read with a bounds-checked
//! helper; anything the walk does not understand is left to the kernel untouched. The XDP
//! and TC programs run the very same checks (the TC program sees what XDP passed on).

use core::ffi::c_void;

use mgm_common::{MAX_EXT_HEADERS, counter};

use crate::{
    packet::Packet,
    parse::{Walk, run_walk, scratch, within},
};

pub const ETH_P_IPV6: u16 = 0x86dd;
/// The fixed header.
pub const HDR6: usize = 40;
const NH_HOP_BY_HOP: u8 = 0;
const NH_ROUTING: u8 = 43;
const NH_FRAGMENT: u8 = 44;
const NH_ICMPV6: u8 = 58;
const NH_DEST_OPTS: u8 = 60;
const NH_PIM: u8 = 103;
/// MLD messages (RFC 2710, RFC 3810): query, v1 report, done, v2 report.
const MLD_TYPES: [u8; 4] = [130, 131, 132, 143];
const OPT_PAD1: u8 = 0;
const OPT_PADN: u8 = 1;
/// Router Alert (RFC 2711): for routers to look at (MLD), not to forward blindly.
const OPT_ROUTER_ALERT: u8 = 5;
/// The longest Hop-by-Hop header the walk reads (and room to index with a mask).
const HBH_MAX: usize = 64;

/// What the checks found in a routable IPv6 packet.
#[derive(Default)]
pub struct Ipv6 {
    /// Fixed header and payload.
    pub tot_len: usize,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub hop_limit: u8,
}

/// The checks before any forwarding of an IPv6 packet at `ip_off`, with `l3_len` bytes after
/// the Ethernet header. `Err` is the counter saying why the kernel gets it instead: not
/// multicast, a scope never routed (reserved, interface-local, link-local), a malformed
/// header, control traffic (Router Alert, MLD, PIM), or headers the walk does not take.
/// Both programs run it: XDP before forwarding, TC on what XDP passed on.
#[inline(always)]
pub fn check6<C: Packet>(ctx: &C, ip_off: usize, l3_len: usize) -> Result<Ipv6, u32> {
    let mut ip = Ipv6::default();
    match check6_into(ctx, ip_off, l3_len, &mut ip) {
        0 => Ok(ip),
        why => Err(why - 1),
    }
}

/// [`check6`] as a function of its own (the verifier checks it once), writing into `out`:
/// 0, or the counter + 1. (A subprogram cannot return a struct: that would hand the caller a
/// pointer into its own stack.)
#[inline(never)]
fn check6_into<C: Packet>(ctx: &C, ip_off: usize, l3_len: usize, out: &mut Ipv6) -> u32 {
    match checks(ctx, ip_off, l3_len) {
        Ok(ip) => {
            *out = ip;
            0
        }
        Err(why) => why + 1,
    }
}

#[inline(always)]
fn checks<C: Packet>(ctx: &C, ip_off: usize, l3_len: usize) -> Result<Ipv6, u32> {
    let h = ctx.bytes::<HDR6>(ip_off).ok_or(counter::PASS_MALFORMED)?;
    let ip = fixed(&h, l3_len)?;
    walk(ctx, h[6], ip_off + HDR6, ip_off + ip.tot_len)?;
    Ok(ip)
}

/// The fixed header's checks: version, a multicast destination of a routed scope, a payload
/// length within the frame.
#[inline(always)]
fn fixed(h: &[u8; HDR6], l3_len: usize) -> Result<Ipv6, u32> {
    if h[0] >> 4 != 6 {
        return Err(counter::PASS_MALFORMED);
    }
    let mut dst = [0u8; 16];
    dst.copy_from_slice(&h[24..40]);
    if dst[0] != 0xff {
        return Err(counter::PASS_NOT_MULTICAST);
    }
    // Scopes 0 (reserved), 1 (interface-local), 2 (link-local) and 15 (reserved) never leave
    // the link (RFC 4291 §2.7, RFC 7346).
    if matches!(dst[1] & 0x0f, 0 | 1 | 2 | 15) {
        return Err(counter::PASS_LINK_LOCAL);
    }
    let payload = u16::from_be_bytes([h[4], h[5]]) as usize;
    let tot_len = HDR6 + payload;
    // Ethernet padding may make the frame longer, never shorter. A jumbogram (payload 0 with
    // a Hop-by-Hop Jumbo option) is refused by the option walk.
    if tot_len > l3_len {
        return Err(counter::PASS_MALFORMED);
    }
    let mut src = [0u8; 16];
    src.copy_from_slice(&h[8..24]);
    Ok(Ipv6 { tot_len, src, dst, hop_limit: h[7] })
}

/// Walks the extension headers from `off` (next header `nh`) to the upper-layer header,
/// which must start before `end`.
#[inline(always)]
fn walk<C: Packet>(ctx: &C, mut nh: u8, mut off: usize, end: usize) -> Result<(), u32> {
    for i in 0..=MAX_EXT_HEADERS {
        let len = match nh {
            NH_HOP_BY_HOP if i == 0 => {
                let [next, ext] = load::<_, 2>(ctx, off, end)?;
                let len = (ext as usize + 1) * 8;
                hop_by_hop(ctx, off, len, end)?;
                nh = next;
                len
            }
            // Only right after the fixed header (RFC 8200 §4.3).
            NH_HOP_BY_HOP => return Err(counter::PASS_MALFORMED),
            NH_DEST_OPTS => {
                let [next, ext] = load::<_, 2>(ctx, off, end)?;
                nh = next;
                (ext as usize + 1) * 8
            }
            NH_FRAGMENT => {
                let f = load::<_, 4>(ctx, off, end)?;
                if u16::from_be_bytes([f[2], f[3]]) & 0xfff8 != 0 {
                    // A later fragment: the upper-layer header is in the first one.
                    return Ok(());
                }
                nh = f[0];
                8
            }
            // A router that is not the destination leaves it alone; the kernel decides.
            NH_ROUTING => return Err(counter::PASS_EXT_HEADERS),
            NH_ICMPV6 => {
                let [kind] = load::<_, 1>(ctx, off, end)?;
                if MLD_TYPES.contains(&kind) {
                    return Err(counter::PASS_CONTROL);
                }
                return Ok(());
            }
            NH_PIM => return Err(counter::PASS_CONTROL),
            // UDP, TCP, No Next Header, ESP, AH...: the payload, forwarded as it is.
            _ => return Ok(()),
        };
        if off + len > end {
            return Err(counter::PASS_MALFORMED);
        }
        off += len;
    }
    Err(counter::PASS_EXT_HEADERS)
}

/// `N` bytes at `off`, which must lie before `end` (the datagram's end).
#[inline(always)]
fn load<C: Packet, const N: usize>(ctx: &C, off: usize, end: usize) -> Result<[u8; N], u32> {
    let mut b = [0u8; N];
    if off + N > end {
        return Err(counter::PASS_MALFORMED);
    }
    // `b` holds N bytes; the helper bounds-checks the packet side.
    if ctx.copy_bytes(off, b.as_mut_ptr(), N as u32) < 0 {
        return Err(counter::PASS_MALFORMED);
    }
    Ok(b)
}

/// The options of a Hop-by-Hop header of `len` bytes at `off`: padding only is forwarded; a
/// Router Alert is control traffic; any other option (Jumbo, or one a router must act on)
/// is the kernel's to handle.
#[inline(always)]
fn hop_by_hop<C: Packet>(ctx: &C, off: usize, len: usize, end: usize) -> Result<(), u32> {
    if len > HBH_MAX {
        return Err(counter::PASS_EXT_HEADERS);
    }
    if off + len > end {
        return Err(counter::PASS_MALFORMED);
    }
    let n = within(len, 8, HBH_MAX).ok_or(counter::PASS_EXT_HEADERS)?;
    let s = scratch().ok_or(counter::PASS_MALFORMED)?;
    // n is within 8..=64, the size of the copy; the helper bounds-checks the packet.
    if ctx.copy_bytes(off, s.bytes.as_mut_ptr(), n as u32) < 0 {
        return Err(counter::PASS_MALFORMED);
    }
    // Each round moves at least one byte.
    run_walk(s, 2, n, (HBH_MAX - 2) as u32, hbh_option)
}

/// One option of a Hop-by-Hop header's walk (a `bpf_loop` round: 0 goes on, 1 stops).
#[inline(never)]
unsafe extern "C" fn hbh_option(_: u64, walk: *mut c_void) -> i64 {
    // SAFETY: `run_walk` passes its `Walk`.
    let Some((s, i, n)) = (unsafe { Walk::round(walk) }) else {
        return 1;
    };
    let kind = s.bytes[i];
    if kind == OPT_PAD1 {
        s.at = (i + 1) as u32;
        return 0;
    }
    let why = if i + 1 >= n {
        counter::PASS_MALFORMED
    } else {
        let opt_len = s.bytes[(i + 1) & (HBH_MAX - 1)] as usize;
        match kind {
            OPT_PADN if i + 2 + opt_len <= n => {
                s.at = (i + 2 + opt_len) as u32;
                return 0;
            }
            // An option running past its header: malformed (the kernel drops it).
            OPT_PADN => counter::PASS_MALFORMED,
            OPT_ROUTER_ALERT => counter::PASS_CONTROL,
            _ => counter::PASS_EXT_HEADERS,
        }
    };
    s.verdict = why + 1;
    1
}

/// The Ethernet address of an IPv6 group (RFC 2464 §7): 33:33 and its low 32 bits.
#[inline(always)]
pub fn group_mac6(group: &[u8; 16]) -> [u8; 6] {
    [0x33, 0x33, group[12], group[13], group[14], group[15]]
}
