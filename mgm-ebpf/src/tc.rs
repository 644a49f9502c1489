// SPDX-License-Identifier: MIT OR Apache-2.0
//! The TC program: one copy per (interface, next hop), addressed to that neighbour's MAC, for
//! the MFEs whose outgoing list has next hops (XDP cannot tell broadcast copies to one device
//! apart).

use core::ffi::c_void;

use aya_ebpf::{
    helpers::generated::{bpf_loop, bpf_skb_change_tail},
    macros::classifier,
    programs::TcContext,
};
use mgm_common::{HopList, MAX_HOPS, MFE_F_HOPS, MfeKey, MfeKey6, MfeValue, counter};
use network_types::eth::EthHdr;

use crate::{
    lease,
    maps::{self, MGM_HOPS, MGM_MFES, MGM_MFES6, MGM_PORTS, count, count_out, verdict},
    parse::{ETH_P_IPV4, check_copy, group_mac},
    parse6::{ETH_P_IPV6, check6, group_mac6},
};

const TC_ACT_OK: i32 = 0;
const TC_ACT_SHOT: i32 = 2;

/// Runs on managed interfaces after XDP. It forwards only what XDP hands over (`PASS_TO_TC`:
/// an MFE with next hops, matched on its incoming interface with TTL > 1), and checks the
/// packet again with the very checks XDP applies (`parse::check`): a frame XDP passed to the
/// kernel as malformed or control traffic comes through here too, and must go on untouched.
/// Every exit is counted: `tc_pass` (untouched), `tc_consumed` (copies made), or
/// `tc_drop_failed` (a helper failed once the frame was changed: dropped, never handed on with
/// a TTL written and a stale checksum).
#[classifier]
pub fn mgm_tc_ingress(ctx: TcContext) -> i32 {
    match tc_ingress(&ctx) {
        Some(action) => action,
        None => verdict(counter::TC_PASS, TC_ACT_OK),
    }
}

/// The exit of a frame this program has changed and cannot finish: dropped, counted.
#[inline(always)]
fn failed() -> i32 {
    verdict(counter::TC_DROP_FAILED, TC_ACT_SHOT)
}

#[inline(always)]
fn tc_ingress(ctx: &TcContext) -> Option<i32> {
    let ip_off = EthHdr::LEN;
    // SAFETY: reading fields of the context the kernel passed in.
    let (vlan, ifindex) = unsafe { ((*ctx.skb.skb).vlan_present, (*ctx.skb.skb).ingress_ifindex) };
    // A VLAN tag (or priority tag) the driver took out of the frame: not ours, as at XDP.
    if vlan != 0 {
        return None;
    }
    let eth: EthHdr = ctx.load(0).ok()?;
    let ether_type = u16::from_be(eth.ether_type);
    if (ether_type != ETH_P_IPV4 && ether_type != ETH_P_IPV6) || eth.dst_addr[0] & 1 == 0 {
        return None;
    }
    let l3_len = (ctx.len() as usize).checked_sub(ip_off)?;
    if ether_type == ETH_P_IPV6 {
        return tc_ipv6(ctx, ifindex, l3_len);
    }
    let ip = check_copy(ctx, ip_off, l3_len).ok()?;
    let proto = ip.proto;
    if ip.ttl <= 1 {
        return None;
    }
    // SAFETY: copied out at once.
    let mfe = (unsafe { MGM_MFES.get(MfeKey::new(ip.src, ip.dst)) }).copied()?;
    let hops = hop_list(&mfe, ifindex)?;
    // From here on the frame is changed: a failure drops it.
    if trim(ctx, l3_len, ip.tot_len).is_none() {
        return Some(failed());
    }
    // TTL - 1 with the checksum fixed by the helper (RFC 1624 as at XDP).
    let old = u16::from_be_bytes([ip.ttl, proto]);
    let new = u16::from_be_bytes([ip.ttl - 1, proto]);
    if ctx.store(ip_off + 8, &(ip.ttl - 1), 0).is_err()
        || ctx.l3_csum_replace(ip_off + 10, old.to_be() as u64, new.to_be() as u64, 2).is_err()
    {
        return Some(failed());
    }
    Some(copies(ctx, &mfe, hops, group_mac(ip.dst)))
}

/// The same for IPv6 (no header checksum: the hop limit is simply one less).
#[inline(always)]
fn tc_ipv6(ctx: &TcContext, ifindex: u32, l3_len: usize) -> Option<i32> {
    let ip_off = EthHdr::LEN;
    let ip = check6(ctx, ip_off, l3_len).ok()?;
    if ip.hop_limit <= 1 {
        return None;
    }
    // SAFETY: copied out at once.
    let mfe = (unsafe { MGM_MFES6.get(MfeKey6 { source: ip.src, group: ip.dst }) }).copied()?;
    let hops = hop_list(&mfe, ifindex)?;
    if trim(ctx, l3_len, ip.tot_len).is_none()
        || ctx.store(ip_off + 7, &(ip.hop_limit - 1), 0).is_err()
    {
        return Some(failed());
    }
    Some(copies(ctx, &mfe, hops, group_mac6(&ip.dst)))
}

/// The copies `mfe` asks of this program, if any (next hops, and the packet arrived on its
/// incoming interface).
#[inline(always)]
fn hop_list(mfe: &MfeValue, ifindex: u32) -> Option<&'static HopList> {
    if mfe.flags & MFE_F_HOPS == 0 || ifindex != mfe.iif {
        return None;
    }
    // SAFETY: read-only use of a map value.
    unsafe { MGM_HOPS.get(mfe.oil) }
}

/// Trims the packet to its IP datagram (`tot_len` bytes): the copies are the datagram alone
/// (no padding or junk after it).
#[inline(always)]
fn trim(ctx: &TcContext, l3_len: usize, tot_len: usize) -> Option<()> {
    if l3_len > tot_len {
        // SAFETY: the context's own skb, shrunk to a length it has.
        let len = (EthHdr::LEN + tot_len) as u32;
        if unsafe { bpf_skb_change_tail(ctx.skb.skb.cast(), len, 0) } != 0 {
            return None;
        }
    }
    Some(())
}

/// One copy per leg of `hops` (leases allowing), to the neighbour's MAC or the group's, from
/// the port's; the original is consumed. The legs are walked by `bpf_loop`: the verifier
/// checks one leg once, whatever the list's length (unrolled, 32 legs cost 500,000
/// instructions of verification).
#[inline(always)]
fn copies(ctx: &TcContext, mfe: &MfeValue, hops: &HopList, group: [u8; 6]) -> i32 {
    let mut legs = Legs { ctx, mfe, hops, group };
    let n = if hops.len > MAX_HOPS as u32 { MAX_HOPS as u32 } else { hops.len };
    // SAFETY: `copy_leg` reads `legs` (on this stack) only while the helper runs.
    unsafe {
        bpf_loop(n, copy_leg as *mut c_void, (&mut legs as *mut Legs<'_>).cast(), 0);
    }
    verdict(counter::TC_CONSUMED, TC_ACT_SHOT)
}

/// What every leg's copy needs.
struct Legs<'a> {
    ctx: &'a TcContext,
    mfe: &'a MfeValue,
    hops: &'a HopList,
    group: [u8; 6],
}

/// The copy for leg `i` (a `bpf_loop` callback: 0 goes on, 1 stops).
#[inline(never)]
unsafe extern "C" fn copy_leg(i: u64, legs: *mut c_void) -> i64 {
    // SAFETY: `copies` passes its `Legs`, alive for the whole loop.
    let Legs { ctx, mfe, hops, group } = unsafe { &*(legs as *const Legs<'_>) };
    let i = i as usize;
    if i >= MAX_HOPS {
        return 1;
    }
    let hop = hops.hops[i];
    if !lease::copy_allowed(&hop.leases, mfe.stats, hop.ifindex) {
        count(counter::TC_RELEASED);
        return 0;
    }
    // A copy for a neighbour goes to its MAC; one for the whole link to the group's.
    let dst = if hop.set_dst != 0 { hop.mac } else { *group };
    if hop.set_dst != 0 && hop.mac == [0; 6] {
        count(counter::TC_NO_NEIGHBOUR);
        maps::port_dropped(maps::port_slot(hop.ifindex));
        return 0;
    }
    if ctx.store(0, &dst, 0).is_err() {
        return 0;
    }
    // SAFETY: copied out at once.
    let Some(port) = (unsafe { MGM_PORTS.get(hop.ifindex) }).copied() else {
        count(counter::EGRESS_NO_PORT);
        return 0;
    };
    if ctx.store(6, &port.mac, 0).is_err() || ctx.clone_redirect(hop.ifindex, 0).is_err() {
        return 0;
    }
    count_out(mfe.stats, hop.ifindex, ctx.len() as usize);
    maps::port_sent(port.stats, ctx.len() as usize);
    count(counter::TC_TX);
    0
}
