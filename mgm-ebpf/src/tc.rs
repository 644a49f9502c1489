// SPDX-License-Identifier: MIT OR Apache-2.0
//! The TC program: one copy per (interface, next hop), addressed to that neighbour's MAC, for
//! the MFEs whose outgoing list has next hops (XDP cannot tell broadcast copies to one device
//! apart).

use aya_ebpf::{macros::classifier, programs::TcContext};
use mgm_common::{MAX_HOPS, MFE_F_HOPS, MfeKey, counter};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};

use crate::{
    lease,
    maps::{MGM_HOPS, MGM_MFES, MGM_PORTS, count, oif_stats},
    parse::ETH_P_IPV4,
};

const TC_ACT_OK: i32 = 0;
const TC_ACT_SHOT: i32 = 2;

/// Runs on managed interfaces after XDP. It acts only on what XDP handed over
/// (`PASS_TO_TC`): an MFE with next hops, matched on its incoming interface with TTL > 1,
/// header already validated. Everything else goes on to the stack untouched.
#[classifier]
pub fn mgm_tc_ingress(ctx: TcContext) -> i32 {
    tc_ingress(&ctx).unwrap_or(TC_ACT_OK)
}

#[inline(always)]
fn tc_ingress(ctx: &TcContext) -> Option<i32> {
    let ip_off = EthHdr::LEN;
    let eth: EthHdr = ctx.load(0).ok()?;
    if u16::from_be(eth.ether_type) != ETH_P_IPV4 {
        return None;
    }
    let ip: Ipv4Hdr = ctx.load(ip_off).ok()?;
    if ip.version() != 4 || ip.dst_addr[0] & 0xf0 != 0xe0 || ip.ttl <= 1 {
        return None;
    }
    // SAFETY: copied out at once.
    let mfe = (unsafe { MGM_MFES.get(MfeKey::new(ip.src_addr, ip.dst_addr)) }).copied()?;
    // SAFETY: reading a field of the context the kernel passed in.
    let ifindex = unsafe { (*ctx.skb.skb).ingress_ifindex };
    if mfe.flags & MFE_F_HOPS == 0 || ifindex != mfe.iif {
        return None;
    }
    // SAFETY: read-only use of a map value.
    let hops = unsafe { MGM_HOPS.get(mfe.oil) }?;
    // TTL - 1 with the checksum fixed by the helper (RFC 1624 as at XDP).
    let old = u16::from_be_bytes([ip.ttl, ip.proto]);
    let new = u16::from_be_bytes([ip.ttl - 1, ip.proto]);
    ctx.store(ip_off + 8, &(ip.ttl - 1), 0).ok()?;
    ctx.l3_csum_replace(ip_off + 10, old.to_be() as u64, new.to_be() as u64, 2).ok()?;
    for i in 0..MAX_HOPS {
        if i as u32 >= hops.len {
            break;
        }
        let hop = hops.hops[i];
        if !lease::copy_allowed(&hop.leases, mfe.stats, hop.ifindex) {
            count(counter::TC_RELEASED);
            continue;
        }
        if hop.set_dst != 0 {
            if hop.mac == [0; 6] {
                count(counter::TC_NO_NEIGHBOUR);
                continue;
            }
            if ctx.store(0, &hop.mac, 0).is_err() {
                continue;
            }
        } else if ctx.store(0, &eth.dst_addr, 0).is_err() {
            continue;
        }
        // SAFETY: copied out at once.
        let Some(port) = (unsafe { MGM_PORTS.get(hop.ifindex) }).copied() else {
            count(counter::EGRESS_NO_PORT);
            continue;
        };
        if ctx.store(6, &port.mac, 0).is_err() || ctx.clone_redirect(hop.ifindex, 0).is_err() {
            continue;
        }
        if let Some(o) = oif_stats(mfe.stats, hop.ifindex) {
            // SAFETY: this CPU's slot of the per-CPU value.
            unsafe {
                (*o).out_packets += 1;
                (*o).out_bytes += ctx.len() as u64;
            }
        }
        count(counter::TC_TX);
    }
    Some(TC_ACT_SHOT)
}
