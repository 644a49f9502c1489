// SPDX-License-Identifier: MIT OR Apache-2.0
//! Benchmark programs (`cargo xtask bench`), in an object of their own that mgmd never loads:
//! the two ceilings of the XDP path (a bare broadcast; a broadcast that also writes what a
//! correct router's copy must carry at layer 2), the live-frame generator and a counting
//! receiver.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::{BPF_F_BROADCAST, BPF_F_EXCLUDE_INGRESS, xdp_action},
    macros::{map, xdp},
    maps::{DevMapHash, HashMap, PerCpuHashMap},
    programs::XdpContext,
};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};

use mgm_ebpf::parse::{group_mac, ptr_at, set_ttl};

/// The license the kernel checks for GPL-only helpers.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

/// The bare broadcast's outputs.
#[map(name = "MGM_BENCH_PORTS")]
static MGM_BENCH_PORTS: DevMapHash = DevMapHash::with_max_entries(64, 0);

/// The second ceiling's outputs (each entry runs `mgm_bench_l2out` on its copy).
#[map(name = "MGM_BENCH_L2_PORTS")]
static MGM_BENCH_L2_PORTS: DevMapHash = DevMapHash::with_max_entries(64, 0);

/// Each output's own MAC, by ifindex: the source address of the copies it sends.
#[map(name = "MGM_BENCH_MACS")]
static MGM_BENCH_MACS: HashMap<u32, [u8; 6]> = HashMap::with_max_entries(64, 0);

/// Frames each receiver got, by its ifindex.
#[map(name = "MGM_BENCH_RX")]
static MGM_BENCH_RX: PerCpuHashMap<u32, u64> = PerCpuHashMap::with_max_entries(64, 0);

/// The ceiling of the XDP path: every frame to every port of `MGM_BENCH_PORTS`, no parsing,
/// no lookup, no check.
#[xdp]
pub fn mgm_bench_broadcast(_ctx: XdpContext) -> u32 {
    MGM_BENCH_PORTS
        .redirect(0, (BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS) as u64)
        .unwrap_or(xdp_action::XDP_DROP)
}

/// The second ceiling: only what any correct router's copy needs besides the broadcast. The
/// copies go to the group's MAC (01:00:5e + the group's low 23 bits, written once here) and
/// each from its own port's MAC (`mgm_bench_l2out`). No check, no forwarding entry.
#[xdp]
pub fn mgm_bench_l2(ctx: XdpContext) -> u32 {
    let (Some(eth), Some(ip)) = (ptr_at::<EthHdr>(&ctx, 0), ptr_at::<Ipv4Hdr>(&ctx, EthHdr::LEN))
    else {
        return xdp_action::XDP_DROP;
    };
    // SAFETY: bounds-checked by ptr_at.
    unsafe { (*eth).dst_addr = group_mac((*ip).dst_addr) };
    MGM_BENCH_L2_PORTS
        .redirect(0, (BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS) as u64)
        .unwrap_or(xdp_action::XDP_DROP)
}

/// The second ceiling's per-copy half: the port's MAC as the source.
#[xdp(map = "devmap")]
pub fn mgm_bench_l2out(ctx: XdpContext) -> u32 {
    // SAFETY: reading a field of the context the kernel passed in.
    let ifindex = unsafe { (*ctx.ctx).egress_ifindex };
    // SAFETY: copied out at once.
    let (Some(eth), Some(mac)) =
        (ptr_at::<EthHdr>(&ctx, 0), unsafe { MGM_BENCH_MACS.get(ifindex) })
    else {
        return xdp_action::XDP_DROP;
    };
    // SAFETY: bounds-checked by ptr_at.
    unsafe { (*eth).src_addr = *mac };
    xdp_action::XDP_PASS
}

/// The traffic generator: run with BPF_PROG_TEST_RUN live frames, each frame leaves by the
/// interface the run names as ingress. A veth hands the frame's page to the router as is, and
/// the page comes back to the generator's pool: a router that decremented the TTL did it in
/// the generator's frame. So the TTL (IPv6: the hop limit) is put back to 64 (IPv4: checksum
/// adjusted) on every send.
#[xdp]
pub fn mgm_bench_tx(ctx: XdpContext) -> u32 {
    // IPv6 frames (EtherType 0x86dd) have their hop limit at byte 7; anything else is IPv4.
    if let Some(et) = ptr_at::<[u8; 2]>(&ctx, 12)
        // SAFETY: bounds-checked by ptr_at.
        && unsafe { *et } == [0x86, 0xdd]
    {
        if let Some(h) = ptr_at::<[u8; 8]>(&ctx, EthHdr::LEN) {
            // SAFETY: bounds-checked by ptr_at.
            unsafe { (*h)[7] = 64 };
        }
        return xdp_action::XDP_TX;
    }
    if let Some(ip) = ptr_at::<Ipv4Hdr>(&ctx, EthHdr::LEN) {
        // SAFETY: bounds-checked by ptr_at.
        let iph = unsafe { &mut *ip };
        if iph.ttl != 64 {
            set_ttl(iph, 64);
        }
    }
    xdp_action::XDP_TX
}

/// A receiver: counts and drops.
#[xdp]
pub fn mgm_bench_rx(ctx: XdpContext) -> u32 {
    let ifindex = ctx.ingress_ifindex() as u32;
    match MGM_BENCH_RX.get_ptr_mut(ifindex) {
        // SAFETY: this CPU's slot.
        Some(c) => unsafe { *c += 1 },
        None => {
            let _ = MGM_BENCH_RX.insert(ifindex, 1, 0);
        }
    }
    xdp_action::XDP_DROP
}
