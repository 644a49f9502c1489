// SPDX-License-Identifier: MIT OR Apache-2.0
//! Benchmark programs (`cargo xtask bench`), in an object of their own that mgmd never loads:
//! the two ceilings of the XDP path (a bare broadcast; a broadcast that also writes what a
//! correct router's copy must carry at layer 2; the same copies made by `bpf_clone_redirect`
//! in TC, as Cilium replicates), the layer-2 ceiling with a flow table's lookup, the
//! live-frame generator and a counting receiver.
#![no_std]
#![no_main]

use core::ffi::c_void;

use aya_ebpf::{
    bindings::{BPF_F_BROADCAST, BPF_F_EXCLUDE_INGRESS, TC_ACT_SHOT, xdp_action},
    helpers::generated::bpf_loop,
    macros::{classifier, map, xdp},
    maps::{Array, DevMapHash, HashMap, PerCpuArray, PerCpuHashMap},
    programs::{TcContext, XdpContext},
};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};

use mgm_common::{MfeKey, bench};
use mgm_ebpf::parse::{group_mac, ptr_at, set_ttl};

/// The license the kernel checks for GPL-only helpers.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

/// Outputs of a ceiling at most (mgm's widest list, `MAX_OIL_PORTS`).
const MAX_OUT: u32 = 128;

/// The bare broadcast's outputs.
#[map(name = "MGM_BENCH_PORTS")]
static MGM_BENCH_PORTS: DevMapHash = DevMapHash::with_max_entries(MAX_OUT, 0);

/// The second ceiling's outputs (each entry runs `mgm_bench_l2out` on its copy).
#[map(name = "MGM_BENCH_L2_PORTS")]
static MGM_BENCH_L2_PORTS: DevMapHash = DevMapHash::with_max_entries(MAX_OUT, 0);

/// Each output's own MAC, by ifindex: the source address of the copies it sends.
#[map(name = "MGM_BENCH_MACS")]
static MGM_BENCH_MACS: HashMap<u32, [u8; 6]> = HashMap::with_max_entries(MAX_OUT, 0);

/// The TC ceiling's outputs: entry 0 holds their number, entries 1..=n their ifindexes.
#[map(name = "MGM_BENCH_TC_PORTS")]
static MGM_BENCH_TC_PORTS: Array<u32> = Array::with_max_entries(MAX_OUT + 1, 0);

/// Frames each receiver got, by its ifindex.
#[map(name = "MGM_BENCH_RX")]
static MGM_BENCH_RX: PerCpuHashMap<u32, u64> = PerCpuHashMap::with_max_entries(2 * MAX_OUT, 0);

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

/// The lookup ceiling's table: each flow's (S,G) and a per-CPU count of its packets and
/// bytes. Allocated as it is filled (BPF_F_NO_PREALLOC): a run that never fills it pays
/// nothing for its size.
#[map(name = "MGM_BENCH_TABLE")]
static MGM_BENCH_TABLE: PerCpuHashMap<MfeKey, [u64; 2]> =
    PerCpuHashMap::with_max_entries(bench::TABLE_MAX, 1);

/// The second ceiling plus the least any router does per packet with a table of flows:
/// find the packet's (S,G) and count it in that entry. What it costs over the second
/// ceiling is the table's, at the size and spread of flows measured; a frame of a flow
/// not in the table is dropped.
#[xdp]
pub fn mgm_bench_l2_lookup(ctx: XdpContext) -> u32 {
    let (Some(eth), Some(ip)) = (ptr_at::<EthHdr>(&ctx, 0), ptr_at::<Ipv4Hdr>(&ctx, EthHdr::LEN))
    else {
        return xdp_action::XDP_DROP;
    };
    // SAFETY: bounds-checked by ptr_at.
    let key = unsafe { MfeKey::new((*ip).src_addr, (*ip).dst_addr) };
    let Some(count) = MGM_BENCH_TABLE.get_ptr_mut(key) else {
        return xdp_action::XDP_DROP;
    };
    // SAFETY: this CPU's slot of the per-CPU value; bounds-checked by ptr_at.
    unsafe {
        (*count)[0] += 1;
        (*count)[1] += (ctx.data_end() - ctx.data()) as u64;
        (*eth).dst_addr = group_mac((*ip).dst_addr);
    }
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

/// The TC ceiling: one `bpf_clone_redirect` per output of `MGM_BENCH_TC_PORTS`, each copy
/// to the group's MAC (written once) from its port's own (written per copy), as the second
/// XDP ceiling's copies; the original is dropped. No check, no forwarding entry.
#[classifier]
pub fn mgm_bench_tc_clone(ctx: TcContext) -> i32 {
    let Ok(dst) = ctx.load::<[u8; 4]>(EthHdr::LEN + 16) else {
        return TC_ACT_SHOT;
    };
    if ctx.store(0, &group_mac(dst), 0).is_err() {
        return TC_ACT_SHOT;
    }
    let n = MGM_BENCH_TC_PORTS.get(0).copied().unwrap_or(0).min(MAX_OUT);
    let mut ctx = ctx;
    // SAFETY: `tc_copy` reads `ctx` (on this stack) only while the helper runs.
    unsafe { bpf_loop(n, tc_copy as *mut c_void, (&mut ctx as *mut TcContext).cast(), 0) };
    TC_ACT_SHOT
}

/// Copy `i` of the TC ceiling (a `bpf_loop` callback: 0 goes on, 1 stops).
#[inline(never)]
unsafe extern "C" fn tc_copy(i: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `mgm_bench_tc_clone` passes its context, alive for the whole loop.
    let ctx = unsafe { &mut *(ctx as *mut TcContext) };
    let Some(&ifindex) = MGM_BENCH_TC_PORTS.get(i as u32 + 1) else {
        return 1;
    };
    // SAFETY: copied out at once.
    let Some(mac) = (unsafe { MGM_BENCH_MACS.get(ifindex) }).copied() else {
        return 0;
    };
    if ctx.store(6, &mac, 0).is_ok() {
        let _ = ctx.clone_redirect(ifindex, 0);
    }
    0
}

/// The generator's flows: entry 0, how many (0 or 1: the frame's own (S,G), untouched).
#[map(name = "MGM_BENCH_GEN")]
static MGM_BENCH_GEN: Array<u32> = Array::with_max_entries(1, 0);

/// Flow numbers, one per frame in turn (uniform or skewed mixes, drawn by the benchmark).
#[map(name = "MGM_BENCH_FLOWS")]
static MGM_BENCH_FLOWS: Array<u32> = Array::with_max_entries(bench::FLOW_TABLE, 0);

/// Where this CPU's generator is in `MGM_BENCH_FLOWS`.
#[map(name = "MGM_BENCH_TURN")]
static MGM_BENCH_TURN: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

/// The traffic generator: run with BPF_PROG_TEST_RUN live frames, each frame leaves by the
/// interface the run names as ingress. A veth hands the frame's page to the router as is, and
/// the page comes back to the generator's pool: a router that decremented the TTL did it in
/// the generator's frame. So the TTL (IPv6: the hop limit) is put back to 64 (IPv4: checksum
/// adjusted) on every send. With several flows (`MGM_BENCH_GEN`), each IPv4 frame carries
/// the next flow's source and group (`mgm_common::bench::flow`).
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
    let (Some(eth), Some(ip)) = (ptr_at::<EthHdr>(&ctx, 0), ptr_at::<Ipv4Hdr>(&ctx, EthHdr::LEN))
    else {
        return xdp_action::XDP_TX;
    };
    // SAFETY: bounds-checked by ptr_at.
    let (eth, iph) = unsafe { (&mut *eth, &mut *ip) };
    let flows = MGM_BENCH_GEN.get(0).copied().unwrap_or(0);
    if flows > 1
        && let Some(turn) = MGM_BENCH_TURN.get_ptr_mut(0)
    {
        // SAFETY: this CPU's slot.
        let t = unsafe {
            let t = *turn;
            *turn = t.wrapping_add(1);
            t
        };
        let f = MGM_BENCH_FLOWS.get(t & (bench::FLOW_TABLE - 1)).copied().unwrap_or(0);
        let (src, dst) = bench::flow(f);
        iph.src_addr = src;
        iph.dst_addr = dst;
        iph.ttl = 64;
        eth.dst_addr = group_mac(dst);
        iph.check = ipv4_checksum(iph);
    } else if iph.ttl != 64 {
        set_ttl(iph, 64);
    }
    xdp_action::XDP_TX
}

/// The header checksum of an option-less IPv4 header.
#[inline(always)]
fn ipv4_checksum(ip: &Ipv4Hdr) -> [u8; 2] {
    // SAFETY: Ipv4Hdr is 20 plain bytes.
    let h = unsafe { &*(ip as *const Ipv4Hdr as *const [u8; 20]) };
    let mut sum = 0u32;
    for i in 0..10 {
        if i != 5 {
            sum += u16::from_be_bytes([h[2 * i], h[2 * i + 1]]) as u32;
        }
    }
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    (!(sum as u16)).to_be_bytes()
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
