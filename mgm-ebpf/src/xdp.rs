// SPDX-License-Identifier: MIT OR Apache-2.0
//! The XDP programs. `mgm_xdp_ingress` runs on every managed interface: for IPv4 or IPv6
//! multicast with an MFE it checks the header (`parse::check`, `parse6::check6`), the incoming
//! interface and TTL (hop limit), trims
//! the frame to the IP datagram, addresses it to the group's MAC, decrements the TTL and
//! broadcasts it to the MFE's outgoing list (an inner devmap of `MGM_OILS`). `mgm_xdp_egress` runs once
//! per copy (devmap program): it drops a copy no live lease backs (atomic release) and writes
//! the outgoing interface's MAC as the source address.

use aya_ebpf::{
    bindings::{BPF_F_BROADCAST, BPF_F_EXCLUDE_INGRESS, xdp_action},
    helpers::generated::{
        bpf_ktime_get_coarse_ns, bpf_loop, bpf_redirect, bpf_xdp_adjust_meta, bpf_xdp_adjust_tail,
    },
    macros::xdp,
    programs::XdpContext,
};
use aya_log_ebpf::warn;
use core::{ffi::c_void, mem::size_of};

use mgm_common::{
    CopyMeta, IIF_MOVING_NS, MAX_OIL_PORTS, MFE_F_HOPS, MFE_F_KERNEL, MFE_F_LOCAL, MfeKey, MfeKey6,
    MfeValue, OIL_EMPTY, OilPorts, UPCALL_NO_MFE, UPCALL_TOO_BIG, UPCALL_WRONG_IIF, config,
    counter,
};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};

/// Set by the loader (`mgm_common::globals::XDP_META`): whether this kernel lets XDP programs
/// call `bpf_xdp_adjust_meta`. Read-only data: the verifier knows its value and drops the
/// call where it is 0.
#[unsafe(no_mangle)]
static MGM_XDP_META: u8 = 1;

/// UDP's protocol number: only its datagrams name a port the program can check.
const IPPROTO_UDP: u8 = 17;

use crate::{
    lease,
    maps::{
        self, MGM_CONFIG, MGM_HEARTBEAT, MGM_LOCAL_PORTS, MGM_MFE_STATS, MGM_MFES, MGM_MFES6,
        MGM_MOVED, MGM_OIL_PORTS, MGM_OILS, MGM_PORTS, count, uncount, verdict,
    },
    packet::Packet as _,
    parse::{ETH_P_IPV4, HDR_MIN, Ipv4, check_copy, check_plain, decrement_ttl, group_mac, ptr_at},
    parse6::{ETH_P_IPV6, HDR6, Ipv6, check6, group_mac6},
    upcall::{Flow, upcall},
};

/// A routable packet of either family, as its checks found it.
enum Packet {
    V4(Ipv4),
    V6(Ipv6),
}

impl Packet {
    #[inline(always)]
    fn tot_len(&self) -> usize {
        match self {
            Packet::V4(ip) => ip.tot_len,
            Packet::V6(ip) => ip.tot_len,
        }
    }

    /// TTL or hop limit.
    #[inline(always)]
    fn ttl(&self) -> u8 {
        match self {
            Packet::V4(ip) => ip.ttl,
            Packet::V6(ip) => ip.hop_limit,
        }
    }
}

#[xdp]
pub fn mgm_xdp_ingress(ctx: XdpContext) -> u32 {
    ingress(&ctx)
}

#[inline(always)]
fn ingress(ctx: &XdpContext) -> u32 {
    use xdp_action::XDP_PASS;

    let Some(eth) = ptr_at::<EthHdr>(ctx, 0) else {
        return verdict(counter::PASS_MALFORMED, XDP_PASS);
    };
    // SAFETY: bounds-checked by ptr_at.
    let (ether_type, l2_dst) = unsafe { ((*eth).ether_type, (*eth).dst_addr) };
    let ether_type = u16::from_be(ether_type);
    if ether_type != ETH_P_IPV4 && ether_type != ETH_P_IPV6 {
        // VLAN-tagged frames land here too: the tag is not ours to strip.
        return verdict(counter::PASS_NOT_IPV4, XDP_PASS);
    }
    if l2_dst[0] & 1 == 0 {
        return verdict(counter::PASS_L2_UNICAST, XDP_PASS);
    }
    let ip_off = EthHdr::LEN;
    let l3_len = ctx.data_end() - ctx.data() - ip_off;
    if ether_type == ETH_P_IPV6 {
        return match check6(ctx, ip_off, l3_len) {
            Ok(ip) => forward(ctx, Packet::V6(ip), ip_off, l3_len),
            Err(why) => verdict(why, XDP_PASS),
        };
    }
    // A header without options is checked in place; one with options (or a frame too short
    // for 20 bytes) on a copy, by the same function as the TC program's.
    let plain = match ctx.in_place::<HDR_MIN>(ip_off) {
        Some(h) => match check_plain(h, l3_len) {
            Ok(ip) => ip,
            Err(why) => return verdict(why, XDP_PASS),
        },
        None => None,
    };
    let ip = match plain {
        Some(ip) => ip,
        None => match check_copy(ctx, ip_off, l3_len) {
            Ok(ip) => ip,
            Err(why) => return verdict(why, XDP_PASS),
        },
    };
    forward(ctx, Packet::V4(ip), ip_off, l3_len)
}

/// A routable packet: its MFE decides (same rules for both families).
#[inline(always)]
fn forward(ctx: &XdpContext, ip: Packet, ip_off: usize, l3_len: usize) -> u32 {
    use xdp_action::{XDP_DROP, XDP_PASS};

    let (k4, k6);
    let (flow, found) = match &ip {
        Packet::V4(p) => {
            k4 = MfeKey::new(p.src, p.dst);
            // SAFETY: the value is copied out at once; the writer replaces entries whole.
            (Flow::V4(&k4), unsafe { MGM_MFES.get(k4) }.copied())
        }
        Packet::V6(p) => {
            k6 = MfeKey6 { source: p.src, group: p.dst };
            // SAFETY: as above.
            (Flow::V6(&k6), unsafe { MGM_MFES6.get(k6) }.copied())
        }
    };
    let Some(mfe) = found else {
        upcall(ctx, flow, UPCALL_NO_MFE);
        return verdict(counter::PASS_NO_MFE, XDP_PASS);
    };
    let stats = MGM_MFE_STATS.get_ptr_mut(mfe.stats);
    // An entry followed from the kernel's table: the kernel holds it too, and gets what the
    // fast path does not forward (its daemon acts on wrong-interface packets and counters).
    let kernel = mfe.flags & MFE_F_KERNEL != 0;

    if ctx.ingress_ifindex() as u32 != mfe.iif {
        if let Some(s) = stats {
            // SAFETY: per-CPU slot.
            unsafe { (*s).wrong_iif += 1 };
        }
        if kernel {
            // The flow comes in elsewhere too: the kernel's entry may be moving there.
            if let Some(moved) = MGM_MOVED.get_ptr_mut(mfe.stats) {
                // SAFETY: an aligned u64 of a shared array; a racing store is as good.
                unsafe { *moved = bpf_ktime_get_coarse_ns() };
            }
            return verdict(counter::PASS_KERNEL, XDP_PASS);
        }
        upcall(ctx, flow, UPCALL_WRONG_IIF);
        return verdict(counter::DROP_WRONG_IIF, XDP_DROP);
    }
    if kernel && let Some(why) = kernel_turn(mfe.stats) {
        // Not counted here: the kernel forwards and counts it.
        return verdict(why, XDP_PASS);
    }
    if mfe.flags & MFE_F_LOCAL != 0 && (matches!(ip, Packet::V6(_)) || for_this_host(ctx, ip_off)) {
        // The kernel forwards it too, and delivers it to the local socket.
        return verdict(counter::PASS_LOCAL, XDP_PASS);
    }
    // The copy's length (the datagram and an Ethernet header). Packets forwarded are
    // packets less TTL-expired: that count is also every XDP copy's (see `OifStats`).
    let copy_len = ip_off + ip.tot_len();
    if let Some(s) = stats {
        // SAFETY: per-CPU slot.
        unsafe {
            (*s).packets += 1;
            (*s).bytes += copy_len as u64;
        }
    }
    if ip.ttl() <= 1 {
        if let Some(s) = stats {
            // SAFETY: per-CPU slot.
            unsafe {
                (*s).ttl_expired += 1;
                (*s).ttl_expired_bytes += copy_len as u64;
            }
        }
        if kernel {
            return verdict(counter::PASS_KERNEL, XDP_PASS);
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
    let ip_len = ip.tot_len() as u32;
    let too_big = mfe.min_mtu != 0 && ip_len > mfe.min_mtu;
    if too_big {
        count_too_big(&mfe, ip_len, copy_len);
        if let Packet::V6(_) = ip {
            // IPv6 is never fragmented on the way: mgmd tells the source (Packet Too Big).
            upcall(ctx, flow, UPCALL_TOO_BIG);
        }
    }
    // One outgoing interface: the copy is made here and sent straight there, without the
    // devmap and its per-copy program, under the same lease check.
    if mfe.single != 0 {
        if too_big {
            // Counted (and taken back) above; the copy could not leave unfragmented. Before
            // the lease check, which would take it back a second time.
            return verdict(counter::DROP_TOO_BIG, XDP_DROP);
        }
        let leg = match lease::leg_for_copy(mfe.oil, mfe.stats, mfe.single, copy_len) {
            Ok(leg) => leg,
            Err(why) => return verdict(why, XDP_DROP),
        };
        if rewrite(ctx, &ip, l3_len, Some(leg.src_mac)).is_none() {
            uncount(mfe.stats, mfe.single, copy_len);
            return verdict(counter::PASS_MALFORMED, XDP_PASS);
        }
        count(counter::EGRESS_TX);
        maps::port_sent(leg.port_stats as u32, copy_len);
        // SAFETY: a plain helper call.
        let action = unsafe { bpf_redirect(mfe.single, 0) } as u32;
        return verdict(counter::FORWARDED, action);
    }
    let Some(oil) = MGM_OILS.get(mfe.oil) else {
        warn!(ctx, "mfe names missing oil {}", mfe.oil);
        return verdict(counter::DROP_NO_OIL, XDP_DROP);
    };
    if rewrite(ctx, &ip, l3_len, None).is_none() {
        return verdict(counter::PASS_MALFORMED, XDP_PASS);
    }
    // The OIL and counters travel with the frame to the egress program (native mode). Where
    // the driver keeps no metadata the egress program reads the MFE again.
    // SAFETY: a read of a constant the loader set; the helper checks the headroom.
    if unsafe { core::ptr::read_volatile(&MGM_XDP_META) } != 0
        && unsafe { bpf_xdp_adjust_meta(ctx.ctx, -(size_of::<CopyMeta>() as i32)) } == 0
        && let Some(m) = meta(ctx)
    {
        // SAFETY: bounds-checked by meta().
        unsafe { *m = CopyMeta { oil: mfe.oil, stats: mfe.stats } };
    }
    // The incoming interface is never in an OIL; EXCLUDE_INGRESS makes that hold even if a
    // writer bug put it there (no packet ever goes back where it came from).
    match oil.redirect(0, (BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS) as u64) {
        Ok(action) => verdict(counter::FORWARDED, action),
        Err(_) => verdict(counter::DROP_NO_OIL, XDP_DROP),
    }
}

/// Whether a socket of this host may receive the packet: a UDP datagram to a port some
/// socket could receive multicast on, or anything the program cannot tell (other
/// protocols, fragments, a header cut short).
#[inline(always)]
fn for_this_host(ctx: &XdpContext, ip_off: usize) -> bool {
    let Some(h) = ptr_at::<[u8; HDR_MIN]>(ctx, ip_off) else { return true };
    // SAFETY: bounds-checked by ptr_at.
    let h = unsafe { &*h };
    let fragment = u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0;
    if h[9] != IPPROTO_UDP || fragment {
        return true;
    }
    let ihl = (h[0] & 0x0f) as usize * 4;
    let Some(port) = ptr_at::<[u8; 2]>(ctx, ip_off + ihl + 2) else { return true };
    // SAFETY: bounds-checked by ptr_at.
    let port = u16::from_be_bytes(unsafe { *port }) as u32;
    MGM_LOCAL_PORTS.get(port).is_none_or(|&open| open != 0)
}

/// Whether this packet of a followed entry (counters `slot`) goes to the kernel instead:
/// every packet for [`IIF_MOVING_NS`] after one of the entry arrived on another interface
/// (its incoming interface may be changing), every packet while the daemon's liveness stamp
/// is stale (fail open: nobody keeps the mirror equal to the kernel's table then), else one
/// per heartbeat period on this CPU.
#[inline(always)]
fn kernel_turn(slot: u32) -> Option<u32> {
    // SAFETY: a plain helper call.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    if MGM_MOVED.get(slot).is_some_and(|&t| t != 0 && now.wrapping_sub(t) < IIF_MOVING_NS) {
        return Some(counter::PASS_IIF_MOVING);
    }
    let cfg = |i| MGM_CONFIG.get(i).copied().unwrap_or(0);
    let stale = cfg(config::STALE_NS);
    if stale != 0 && now.wrapping_sub(cfg(config::ALIVE_NS)) > stale {
        return Some(counter::PASS_KERNEL);
    }
    let period = cfg(config::HEARTBEAT_NS);
    let last = MGM_HEARTBEAT.get_ptr_mut(slot)?;
    // SAFETY: this CPU's slot.
    unsafe {
        if period == 0 || now.wrapping_sub(*last) < period {
            return None;
        }
        *last = now;
    }
    Some(counter::PASS_HEARTBEAT)
}

/// Makes the frame a router's copy: trimmed to the IP datagram (padding or junk after
/// tot_len stays here), sent to the group's MAC (from `src` when given; else the egress
/// program writes each port's), TTL - 1.
#[inline(always)]
fn rewrite(ctx: &XdpContext, ip: &Packet, l3_len: usize, src: Option<[u8; 6]>) -> Option<()> {
    let tot_len = ip.tot_len();
    if l3_len > tot_len {
        // SAFETY: shrinking by less than the frame's length.
        if unsafe { bpf_xdp_adjust_tail(ctx.ctx, -((l3_len - tot_len) as i32)) } != 0 {
            return None;
        }
    }
    let eth = ptr_at::<EthHdr>(ctx, 0)?;
    match ip {
        Packet::V4(p) => {
            let iph = ptr_at::<Ipv4Hdr>(ctx, EthHdr::LEN)?;
            // SAFETY: bounds-checked by ptr_at; the headers are plain bytes.
            unsafe {
                (*eth).dst_addr = group_mac(p.dst);
                decrement_ttl(&mut *iph);
            }
        }
        Packet::V6(p) => {
            let h = ptr_at::<[u8; HDR6]>(ctx, EthHdr::LEN)?;
            // SAFETY: as above. IPv6 has no header checksum to update.
            unsafe {
                (*eth).dst_addr = group_mac6(&p.dst);
                (*h)[7] = p.hop_limit - 1;
            }
        }
    }
    if let Some(mac) = src {
        // SAFETY: bounds-checked by ptr_at above (the tail only shrank past the headers).
        unsafe { (*eth).src_addr = mac };
    }
    Some(())
}

/// The metadata in front of the frame, if the ingress program left one.
#[inline(always)]
fn meta(ctx: &XdpContext) -> Option<*mut CopyMeta> {
    let m = ctx.metadata();
    if m + size_of::<CopyMeta>() > ctx.data() {
        return None;
    }
    Some(m as *mut CopyMeta)
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
    // Ingress validated this very frame; the bounds checks are for the verifier.
    let (Some(eth), Some(ip)) = (ptr_at::<EthHdr>(ctx, 0), ptr_at::<Ipv4Hdr>(ctx, EthHdr::LEN))
    else {
        return verdict(counter::EGRESS_STALE, XDP_DROP);
    };
    // The OIL the frame was broadcast to, from the ingress program's metadata (native
    // mode), or else the MFE's current one (generic mode: metadata does not survive the
    // devmap there).
    let copy = match meta(ctx) {
        // SAFETY: bounds-checked by meta().
        Some(m) => unsafe { *m },
        None => match mfe_of_copy(ctx, eth, ip) {
            Some(mfe) => CopyMeta { oil: mfe.oil, stats: mfe.stats },
            None => return verdict(counter::EGRESS_STALE, XDP_DROP),
        },
    };
    // Counted as sent by the ingress program; only a copy that may not leave costs a write.
    let leg = match lease::leg_for_copy(copy.oil, copy.stats, ifindex, ctx.data_end() - ctx.data())
    {
        Ok(leg) => leg,
        Err(why) => return verdict(why, XDP_DROP),
    };
    // SAFETY: bounds-checked by ptr_at.
    unsafe { (*eth).src_addr = leg.src_mac };
    maps::port_sent(leg.port_stats as u32, ctx.data_end() - ctx.data());
    verdict(counter::EGRESS_TX, XDP_PASS)
}

/// The MFE of a copy, read again from its headers (generic mode).
#[inline(always)]
fn mfe_of_copy(ctx: &XdpContext, eth: *mut EthHdr, ip: *mut Ipv4Hdr) -> Option<MfeValue> {
    // SAFETY: bounds-checked by the caller's ptr_at.
    if u16::from_be(unsafe { (*eth).ether_type }) == ETH_P_IPV6 {
        let h = ptr_at::<[u8; HDR6]>(ctx, EthHdr::LEN)?;
        let mut key = MfeKey6::default();
        // SAFETY: bounds-checked by ptr_at.
        let h = unsafe { &*h };
        key.source.copy_from_slice(&h[8..24]);
        key.group.copy_from_slice(&h[24..40]);
        // SAFETY: copied out at once.
        return unsafe { MGM_MFES6.get(key) }.copied();
    }
    // SAFETY: bounds-checked by the caller's ptr_at; copied out at once.
    unsafe { MGM_MFES.get(MfeKey::new((*ip).src_addr, (*ip).dst_addr)) }.copied()
}

/// The packet is longer than some outgoing interface's MTU: the kernel will drop those
/// copies before the egress program sees them (no fragmentation on this path), so they are
/// counted here, per interface, and taken back from the copies sent. Only packets that long
/// pay for the walk, by `bpf_loop` (checked once by the verifier, for up to 128 ports).
#[inline(never)]
fn count_too_big(mfe: &MfeValue, ip_len: u32, copy_len: usize) {
    // SAFETY: read-only use of a map value.
    let Some(ports) = (unsafe { MGM_OIL_PORTS.get(mfe.oil) }) else {
        return;
    };
    let mut walk = TooBig { mfe, ports, ip_len, copy_len };
    let n = if ports.len > MAX_OIL_PORTS { MAX_OIL_PORTS } else { ports.len };
    // SAFETY: `too_big_port` reads `walk` (on this stack) only while the helper runs.
    unsafe {
        bpf_loop(n, too_big_port as *mut c_void, (&mut walk as *mut TooBig<'_>).cast(), 0);
    }
}

/// What [`count_too_big`]'s rounds share.
struct TooBig<'a> {
    mfe: &'a MfeValue,
    ports: &'a OilPorts,
    ip_len: u32,
    copy_len: usize,
}

/// Port `i` of the walk (a `bpf_loop` callback: 0 goes on, 1 stops).
#[inline(never)]
unsafe extern "C" fn too_big_port(i: u64, walk: *mut c_void) -> i64 {
    // SAFETY: `count_too_big` passes its `TooBig`, alive for the whole loop.
    let TooBig { mfe, ports, ip_len, copy_len } = unsafe { &*(walk as *const TooBig<'_>) };
    let i = i as usize;
    if i >= MAX_OIL_PORTS as usize {
        return 1;
    }
    let ifindex = ports.ifindex[i];
    // SAFETY: copied out at once.
    let (mtu, port) = unsafe { MGM_PORTS.get(ifindex) }.map_or((0, 0), |p| (p.mtu as u32, p.stats));
    if mtu != 0 && *ip_len > mtu {
        maps::port_dropped(port);
        if let Some(o) = uncount(mfe.stats, ifindex, *copy_len) {
            // SAFETY: this CPU's slot of the per-CPU value.
            unsafe { (*o).frag_needed += 1 };
        }
        count(counter::EGRESS_TOO_BIG);
    }
    0
}
