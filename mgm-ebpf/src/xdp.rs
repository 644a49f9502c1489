// SPDX-License-Identifier: MIT OR Apache-2.0
//! The XDP programs. `mgm_xdp_ingress` runs on every managed interface: for IPv4 multicast
//! with an MFE it checks the header (`parse::check`), the incoming interface and TTL, trims
//! the frame to the IP datagram, addresses it to the group's MAC, decrements the TTL and
//! broadcasts it to the MFE's outgoing list (an inner devmap of `MGM_OILS`). `mgm_xdp_egress` runs once
//! per copy (devmap program): it drops a copy no live lease backs (atomic release) and writes
//! the outgoing interface's MAC as the source address.

use aya_ebpf::{
    bindings::{BPF_F_BROADCAST, BPF_F_EXCLUDE_INGRESS, xdp_action},
    helpers::generated::{bpf_xdp_adjust_tail, bpf_xdp_load_bytes},
    macros::xdp,
    programs::XdpContext,
};
use aya_log_ebpf::warn;
use mgm_common::{
    LegKey, MAX_OIL_PORTS, MFE_F_HOPS, MfeKey, MfeValue, OIL_EMPTY, UPCALL_NO_MFE,
    UPCALL_WRONG_IIF, counter,
};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};

use crate::{
    lease,
    maps::{
        MGM_LEGS, MGM_MFE_STATS, MGM_MFES, MGM_OIL_PORTS, MGM_OILS, MGM_PORTS, count, oif_stats,
        verdict,
    },
    parse::{ETH_P_IPV4, Header, check, decrement_ttl, group_mac, header_len, ptr_at},
    upcall::upcall,
};

#[xdp]
pub fn mgm_xdp_ingress(ctx: XdpContext) -> u32 {
    ingress(&ctx)
}

#[inline(always)]
fn ingress(ctx: &XdpContext) -> u32 {
    use xdp_action::{XDP_DROP, XDP_PASS};

    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return verdict(counter::PASS_MALFORMED, XDP_PASS);
    };
    // SAFETY: bounds-checked by ptr_at.
    let (ether_type, l2_dst) = unsafe { ((*eth).ether_type, (*eth).dst_addr) };
    if u16::from_be(ether_type) != ETH_P_IPV4 {
        // VLAN-tagged frames land here too: the tag is not ours to strip.
        return verdict(counter::PASS_NOT_IPV4, XDP_PASS);
    }
    if l2_dst[0] & 1 == 0 {
        return verdict(counter::PASS_L2_UNICAST, XDP_PASS);
    }
    let ip_off = EthHdr::LEN;
    let l3_len = ctx.data_end() - ctx.data() - ip_off;
    // The checks read a copy of the header, the same code as the TC path's.
    let mut h: Header = [0; 64];
    let Some(n) = header_len(l3_len) else {
        return verdict(counter::PASS_MALFORMED, XDP_PASS);
    };
    // SAFETY: n is within 20..=60 and `h` holds 64 bytes; the helper bounds-checks the packet.
    if unsafe { bpf_xdp_load_bytes(ctx.ctx, ip_off as u32, h.as_mut_ptr().cast(), n as u32) } < 0 {
        return verdict(counter::PASS_MALFORMED, XDP_PASS);
    }
    let ip = match check(&h, n, l3_len) {
        Ok(ip) => ip,
        Err(why) => return verdict(why, XDP_PASS),
    };

    let key = MfeKey::new(ip.src, ip.dst);
    // SAFETY: the value is copied out at once; the writer replaces entries whole.
    let Some(mfe) = (unsafe { MGM_MFES.get(key) }).copied() else {
        upcall(ctx, &key, UPCALL_NO_MFE);
        return verdict(counter::PASS_NO_MFE, XDP_PASS);
    };
    let stats = MGM_MFE_STATS.get_ptr_mut(mfe.stats);

    if ctx.ingress_ifindex() as u32 != mfe.iif {
        if let Some(s) = stats {
            // SAFETY: per-CPU slot.
            unsafe { (*s).wrong_iif += 1 };
        }
        upcall(ctx, &key, UPCALL_WRONG_IIF);
        return verdict(counter::DROP_WRONG_IIF, XDP_DROP);
    }
    if let Some(s) = stats {
        // SAFETY: per-CPU slot.
        unsafe {
            (*s).packets += 1;
            (*s).bytes += (ip_off + ip.tot_len) as u64;
        }
    }
    if ip.ttl <= 1 {
        if let Some(s) = stats {
            // SAFETY: per-CPU slot.
            unsafe { (*s).ttl_expired += 1 };
        }
        return verdict(counter::DROP_TTL, XDP_DROP);
    }
    if mfe.oil == OIL_EMPTY {
        return verdict(counter::DROP_EMPTY_OIL, XDP_DROP);
    }
    if mfe.flags & MFE_F_HOPS != 0 {
        // Copies addressed to individual neighbours: XDP cannot tell broadcast copies to one
        // device apart, the TC program clones per next hop.
        return verdict(counter::PASS_TO_TC, XDP_PASS);
    }
    // SAFETY: the inner map reference is only used for the redirect below.
    let Some(oil) = (unsafe { MGM_OILS.get(&mfe.oil) }) else {
        warn!(ctx, "mfe names missing oil {}", mfe.oil);
        return verdict(counter::DROP_NO_OIL, XDP_DROP);
    };
    let ip_len = ip.tot_len as u32;
    if mfe.min_mtu != 0 && ip_len > mfe.min_mtu {
        count_too_big(&mfe, ip_len);
    }
    // A router's copy is the IP datagram alone: padding or junk after tot_len stays here.
    if l3_len > ip.tot_len {
        // SAFETY: shrinking by less than the frame's length.
        if unsafe { bpf_xdp_adjust_tail(ctx.ctx, -((l3_len - ip.tot_len) as i32)) } != 0 {
            return verdict(counter::PASS_MALFORMED, XDP_PASS);
        }
    }
    let (Some(eth), Some(iph)) = (ptr_at::<EthHdr>(ctx, 0), ptr_at::<Ipv4Hdr>(ctx, ip_off)) else {
        return verdict(counter::PASS_MALFORMED, XDP_PASS);
    };
    // SAFETY: bounds-checked by ptr_at; the headers are plain bytes.
    unsafe {
        // On a broadcast link the copy goes to the group's MAC (the egress program writes
        // the port's own as the source).
        (*eth).dst_addr = group_mac(ip.dst);
        decrement_ttl(&mut *iph);
    }
    // The incoming interface is never in an OIL; EXCLUDE_INGRESS makes that hold even if a
    // writer bug put it there (no packet ever goes back where it came from).
    match oil.redirect(0, (BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS) as u64) {
        Ok(action) => verdict(counter::FORWARDED, action),
        Err(_) => verdict(counter::DROP_NO_OIL, XDP_DROP),
    }
}

#[xdp(map = "devmap")]
pub fn mgm_xdp_egress(ctx: XdpContext) -> u32 {
    egress(&ctx)
}

/// One copy, about to leave on `egress_ifindex`. It goes only if a lease behind this
/// interface in the MFE's current outgoing list is alive: releasing an (interface, next hop)
/// is one write to `MGM_LEASES`, whatever the number of MFEs and OILs that name it.
#[inline(always)]
fn egress(ctx: &XdpContext) -> u32 {
    use xdp_action::{XDP_DROP, XDP_PASS};

    // SAFETY: reading a field of the context the kernel passed in.
    let ifindex = unsafe { (*ctx.ctx).egress_ifindex };
    // SAFETY: the value is copied out at once.
    let Some(port) = (unsafe { MGM_PORTS.get(ifindex) }).copied() else {
        return verdict(counter::EGRESS_NO_PORT, XDP_DROP);
    };
    // Ingress validated this very frame; the bounds checks are for the verifier.
    let (Some(eth), Some(ip)) = (ptr_at::<EthHdr>(ctx, 0), ptr_at::<Ipv4Hdr>(ctx, EthHdr::LEN))
    else {
        return verdict(counter::EGRESS_STALE, XDP_DROP);
    };
    // SAFETY: bounds-checked by ptr_at.
    let key = unsafe { MfeKey::new((*ip).src_addr, (*ip).dst_addr) };
    // The MFE is read again rather than passed in XDP metadata: metadata does not survive the
    // devmap redirect in generic (skb) mode. If the MFE changed since ingress, its current
    // list decides.
    // SAFETY: copied out at once.
    let Some(mfe) = (unsafe { MGM_MFES.get(key) }).copied() else {
        return verdict(counter::EGRESS_STALE, XDP_DROP);
    };
    // SAFETY: copied out at once.
    let Some(leg) = (unsafe { MGM_LEGS.get(LegKey { oil: mfe.oil, ifindex }) }).copied() else {
        return verdict(counter::EGRESS_STALE, XDP_DROP);
    };
    if !lease::copy_allowed(&leg, mfe.stats, ifindex) {
        return verdict(counter::EGRESS_RELEASED, XDP_DROP);
    }
    if let Some(o) = oif_stats(mfe.stats, ifindex) {
        // SAFETY: as above.
        unsafe {
            (*o).out_packets += 1;
            (*o).out_bytes += (ctx.data_end() - ctx.data()) as u64;
        }
    }
    // SAFETY: bounds-checked by ptr_at.
    unsafe { (*eth).src_addr = port.mac };
    verdict(counter::EGRESS_TX, XDP_PASS)
}

/// The packet is longer than some outgoing interface's MTU: the kernel will drop those
/// copies before the egress program sees them (no fragmentation on this path), so they are
/// counted here, per interface. Only packets that long pay for the walk.
#[inline(never)]
fn count_too_big(mfe: &MfeValue, ip_len: u32) {
    // SAFETY: read-only use of a map value.
    let Some(ports) = (unsafe { MGM_OIL_PORTS.get(mfe.oil) }) else {
        return;
    };
    for i in 0..MAX_OIL_PORTS as usize {
        if i as u32 >= ports.len {
            break;
        }
        let ifindex = ports.ifindex[i];
        // SAFETY: copied out at once.
        let mtu = unsafe { MGM_PORTS.get(ifindex) }.map_or(0, |p| p.mtu as u32);
        if mtu != 0 && ip_len > mtu {
            if let Some(o) = oif_stats(mfe.stats, ifindex) {
                // SAFETY: this CPU's slot of the per-CPU value.
                unsafe { (*o).frag_needed += 1 };
            }
            count(counter::EGRESS_TOO_BIG);
        }
    }
}
