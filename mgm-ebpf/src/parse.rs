// SPDX-License-Identifier: MIT OR Apache-2.0
//! Packet access and IPv4 header arithmetic: bounds-checked pointers, the header checksum
//! (RFC 1071) and its incremental update on a TTL change (RFC 1624).

use core::mem::size_of;

use aya_ebpf::programs::XdpContext;
use network_types::ip::Ipv4Hdr;

pub const ETH_P_IPV4: u16 = 0x0800;
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

/// Validates the IPv4 header checksum over `ihl` bytes (20..=60) starting at `ip`.
#[inline(always)]
pub fn ipv4_checksum_ok(ctx: &XdpContext, ip: usize, ihl: usize) -> bool {
    let end = ctx.data_end();
    let mut sum: u32 = 0;
    // Fixed 20 bytes: the caller already checked they are in the packet.
    for i in 0..10 {
        // SAFETY: within the Ipv4Hdr the caller bounds-checked.
        sum += unsafe { ((ip + 2 * i) as *const u16).read_unaligned() } as u32;
    }
    // Options: up to 40 more bytes, each word bounds-checked for the verifier.
    for i in 10..30 {
        if 2 * i >= ihl {
            break;
        }
        let p = ip + 2 * i;
        if p + 2 > end {
            return false;
        }
        // SAFETY: bounds-checked just above.
        sum += unsafe { (p as *const u16).read_unaligned() } as u32;
    }
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum == CSUM_OK
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
