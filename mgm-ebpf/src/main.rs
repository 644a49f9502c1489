// SPDX-License-Identifier: MIT OR Apache-2.0
//! The mgm fast path.
//!
//! `mgm_xdp_ingress` runs on every managed interface. For IPv4 multicast with an MFE it checks
//! the incoming interface and TTL, decrements the TTL and broadcasts the frame to the MFE's
//! outgoing list (an inner devmap of `MGM_OILS`). `mgm_xdp_egress` runs once per copy (devmap
//! program): it checks that a live lease still backs that interface in the MFE's list (atomic
//! release) and writes the outgoing interface's MAC as the source address.
//!
//! Verdict policy: a packet the fast path does not own (not IPv4, not routable multicast,
//! malformed, no MFE) is passed to the kernel untouched, so the stack sees exactly what it would
//! without mgm. A packet that matches an MFE is mgm's: it is forwarded, or dropped and counted
//! (wrong interface, TTL expired, empty outgoing list).
#![no_std]
#![no_main]

use core::mem::size_of;

use aya_ebpf::{
    bindings::{BPF_F_BROADCAST, BPF_F_EXCLUDE_INGRESS, xdp_action},
    btf_maps::{DevMapHash, HashOfMaps},
    helpers::{bpf_ktime_get_ns, generated::bpf_xdp_load_bytes},
    macros::{btf_map, classifier, map, xdp},
    maps::{
        Array, DevMapHash as LegacyDevMapHash, HashMap, LruHashMap, LruPerCpuHashMap, PerCpuArray,
        PerCpuHashMap, RingBuf,
    },
    programs::{TcContext, XdpContext},
};
use aya_log_ebpf::warn;
use mgm_common::{
    DEFAULT_MAX_MFES, HopList, LEASE_NONE, LegKey, LegValue, MAX_HOPS, MAX_LEASES, MAX_LEGS,
    MAX_OIF_STATS, MAX_OIL_PORTS, MAX_OILS, MAX_PORTS, MFE_F_HOPS, MfeKey, MfeStats, MfeValue,
    OIL_EMPTY, OifKey, OifStats, OilPorts, PortValue, UPCALL_F_EVENT, UPCALL_F_QUEUED,
    UPCALL_FRAME_MAX, UPCALL_INTERVAL_NS, UPCALL_NO_MFE, UPCALL_QUEUE, UPCALL_RING_BYTES,
    UPCALL_WRONG_IIF, Upcall, UpcallKey, UpcallRecord, UpcallSeen, counter,
};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};

const ETH_P_IPV4: u16 = 0x0800;
/// Ones'-complement sum of a valid IPv4 header (RFC 1071).
const CSUM_OK: u32 = 0xffff;

#[map(name = "MGM_MFES")]
static MGM_MFES: HashMap<MfeKey, MfeValue> = HashMap::with_max_entries(DEFAULT_MAX_MFES, 0);

#[map(name = "MGM_MFE_STATS")]
static MGM_MFE_STATS: PerCpuArray<MfeStats> = PerCpuArray::with_max_entries(DEFAULT_MAX_MFES, 0);

#[map(name = "MGM_COUNTERS")]
static MGM_COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

#[map(name = "MGM_PORTS")]
static MGM_PORTS: HashMap<u32, PortValue> = HashMap::with_max_entries(MAX_PORTS, 0);

#[map(name = "MGM_UPCALLS")]
static MGM_UPCALLS: RingBuf = RingBuf::with_byte_size(UPCALL_RING_BYTES, 0);

#[map(name = "MGM_UPCALL_SEEN")]
static MGM_UPCALL_SEEN: LruHashMap<UpcallKey, UpcallSeen> = LruHashMap::with_max_entries(16_384, 0);

/// Where an upcall record is assembled (1.5 KiB: more than the BPF stack holds).
#[map(name = "MGM_UPCALL_SCRATCH")]
static MGM_UPCALL_SCRATCH: PerCpuArray<UpcallRecord> = PerCpuArray::with_max_entries(1, 0);

#[map(name = "MGM_OIF_STATS")]
static MGM_OIF_STATS: LruPerCpuHashMap<OifKey, OifStats> =
    LruPerCpuHashMap::with_max_entries(MAX_OIF_STATS, 0);

/// BPF_F_NO_PREALLOC: 516 bytes per OIL, allocated as OILs appear.
#[map(name = "MGM_OIL_PORTS")]
static MGM_OIL_PORTS: HashMap<u32, OilPorts> = HashMap::with_max_entries(MAX_OILS, 1);

/// BPF_F_NO_PREALLOC: ~900 bytes per OIL with next hops, allocated as they appear.
#[map(name = "MGM_HOPS")]
static MGM_HOPS: HashMap<u32, HopList> = HashMap::with_max_entries(MAX_OILS, 1);

#[map(name = "MGM_LEASES")]
static MGM_LEASES: Array<u32> = Array::with_max_entries(MAX_LEASES, 0);

#[map(name = "MGM_LEGS")]
static MGM_LEGS: HashMap<LegKey, LegValue> = HashMap::with_max_entries(MAX_LEGS, 0);

// BTF map: the inner devmap template is described by BTF, which aya reads at load time.
#[btf_map]
static MGM_OILS: HashOfMaps<u32, DevMapHash<{ MAX_OIL_PORTS as usize }>, { MAX_OILS as usize }> =
    HashOfMaps::new();

#[inline(always)]
fn count(idx: u32) {
    if let Some(c) = MGM_COUNTERS.get_ptr_mut(idx) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *c += 1 };
    }
}

#[inline(always)]
fn verdict(idx: u32, action: xdp_action::Type) -> u32 {
    count(idx);
    action
}

/// Bounds-checked pointer to a `T` at `offset` in the packet.
#[inline(always)]
fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*mut T> {
    let start = ctx.data();
    if start + offset + size_of::<T>() > ctx.data_end() {
        return None;
    }
    Some((start + offset) as *mut T)
}

/// Validates the IPv4 header checksum over `ihl` bytes (20..=60) starting at `ip`.
#[inline(always)]
fn ipv4_checksum_ok(ctx: &XdpContext, ip: usize, ihl: usize) -> bool {
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

/// Tells the control plane about a packet it could not forward. Per (S,G, ingress, kind) and
/// `UPCALL_INTERVAL_NS`: one event (a flood of unknown traffic costs one ring entry per flow
/// and interval, not one per packet), and for a flow without MFE the first `UPCALL_QUEUE`
/// packets whole, so mgmd can forward them once the MFE exists instead of losing them.
#[inline(always)]
fn upcall(ctx: &XdpContext, key: &MfeKey, kind: u32) {
    let ifindex = ctx.ingress_ifindex() as u32;
    let k = UpcallKey { source: key.source, group: key.group, ifindex, kind };
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    let flags = match MGM_UPCALL_SEEN.get_ptr_mut(k) {
        // SAFETY (all three): an LRU value this CPU looked up; a racing CPU may count twice.
        Some(seen) if now.wrapping_sub(unsafe { (*seen).since_ns }) < UPCALL_INTERVAL_NS => {
            if kind != UPCALL_NO_MFE || unsafe { (*seen).queued } >= UPCALL_QUEUE {
                return;
            }
            unsafe { (*seen).queued += 1 };
            UPCALL_F_QUEUED
        }
        _ => {
            let queued = u32::from(kind == UPCALL_NO_MFE);
            let _ = MGM_UPCALL_SEEN.insert(k, UpcallSeen { since_ns: now, queued, _pad: 0 }, 0);
            UPCALL_F_EVENT | if kind == UPCALL_NO_MFE { UPCALL_F_QUEUED } else { 0 }
        }
    };
    let Some(rec) = MGM_UPCALL_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let avail = ctx.data_end() - ctx.data();
    let len = if avail > UPCALL_FRAME_MAX { UPCALL_FRAME_MAX } else { avail };
    if len == 0 {
        return;
    }
    // SAFETY: rec is this CPU's scratch value; the helper bounds-checks the packet side and
    // len is within 1..=UPCALL_FRAME_MAX, the size of `frame`.
    let rc =
        unsafe { bpf_xdp_load_bytes(ctx.ctx, 0, (*rec).frame.as_mut_ptr().cast(), len as u32) };
    if rc < 0 {
        return;
    }
    // SAFETY: as above.
    unsafe {
        (*rec).upcall = Upcall {
            source: key.source,
            group: key.group,
            ifindex,
            kind,
            flags,
            frame_len: len as u32,
        };
    }
    let size = size_of::<Upcall>() + len;
    // SAFETY: rec points to size_of::<UpcallRecord>() >= size bytes.
    let bytes = unsafe { core::slice::from_raw_parts(rec as *const u8, size) };
    match MGM_UPCALLS.output::<[u8]>(bytes, 0) {
        Ok(()) => count(counter::UPCALL_SENT),
        Err(_) => count(counter::UPCALL_LOST),
    }
}

/// Decrements the TTL and updates the checksum incrementally.
#[inline(always)]
fn decrement_ttl(ip: &mut Ipv4Hdr) {
    set_ttl(ip, ip.ttl - 1);
}

/// Sets the TTL and updates the checksum incrementally (RFC 1624, eqn. 3:
/// HC' = ~(~HC + ~m + m'), with m the 16-bit word holding TTL and protocol).
#[inline(always)]
fn set_ttl(ip: &mut Ipv4Hdr, ttl: u8) {
    let old = u16::from_be_bytes([ip.ttl, ip.proto]) as u32;
    ip.ttl = ttl;
    let new = u16::from_be_bytes([ip.ttl, ip.proto]) as u32;
    let hc = u16::from_be_bytes(ip.check) as u32;
    let mut sum = (!hc & 0xffff) + (!old & 0xffff) + new;
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    ip.check = (!(sum as u16)).to_be_bytes();
}

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
    if u16::from_be(unsafe { (*eth).ether_type }) != ETH_P_IPV4 {
        // VLAN-tagged frames land here too: the tag is not ours to strip.
        return verdict(counter::PASS_NOT_IPV4, XDP_PASS);
    }
    let ip_off = EthHdr::LEN;
    let Some(ip) = ptr_at::<Ipv4Hdr>(ctx, ip_off) else {
        return verdict(counter::PASS_MALFORMED, XDP_PASS);
    };
    // SAFETY: bounds-checked by ptr_at; the header is plain bytes.
    let iph = unsafe { &mut *ip };
    if iph.version() != 4 {
        return verdict(counter::PASS_MALFORMED, XDP_PASS);
    }
    let dst = iph.dst_addr;
    if dst[0] & 0xf0 != 0xe0 {
        return verdict(counter::PASS_NOT_MULTICAST, XDP_PASS);
    }
    if dst[0] == 224 && dst[1] == 0 && dst[2] == 0 {
        return verdict(counter::PASS_LINK_LOCAL, XDP_PASS);
    }
    let ihl = iph.ihl() as usize;
    let tot_len = iph.tot_len() as usize;
    let l3_avail = ctx.data_end() - ctx.data() - ip_off;
    // Ethernet padding may make the frame longer than tot_len, never shorter.
    if ihl < Ipv4Hdr::LEN || tot_len < ihl || tot_len > l3_avail {
        return verdict(counter::PASS_MALFORMED, XDP_PASS);
    }
    if !ipv4_checksum_ok(ctx, ip as usize, ihl) {
        return verdict(counter::PASS_MALFORMED, XDP_PASS);
    }

    let key = MfeKey::new(iph.src_addr, dst);
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
            (*s).bytes += (ctx.data_end() - ctx.data()) as u64;
        }
    }
    if iph.ttl <= 1 {
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
    let ip_len = tot_len as u32;
    if mfe.min_mtu != 0 && ip_len > mfe.min_mtu {
        count_too_big(&mfe, ip_len);
    }
    decrement_ttl(iph);
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
    let mut alive = false;
    for lease in leg.leases {
        if lease != LEASE_NONE && MGM_LEASES.get(lease).is_some_and(|v| *v != 0) {
            alive = true;
            break;
        }
    }
    let oif = oif_stats(mfe.stats, ifindex);
    if !alive {
        if let Some(o) = oif {
            // SAFETY: this CPU's slot of the per-CPU value.
            unsafe { (*o).out_discards += 1 };
        }
        return verdict(counter::EGRESS_RELEASED, XDP_DROP);
    }
    if let Some(o) = oif {
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

/// This CPU's counters of (MFE slot, outgoing interface), created on first use.
#[inline(always)]
fn oif_stats(slot: u32, ifindex: u32) -> Option<*mut OifStats> {
    let k = OifKey { slot, ifindex };
    if let Some(p) = MGM_OIF_STATS.get_ptr_mut(k) {
        return Some(p);
    }
    // BPF_NOEXIST: another CPU may have created it meanwhile; then its entry is used.
    let _ = MGM_OIF_STATS.insert(k, OifStats::default(), 1);
    MGM_OIF_STATS.get_ptr_mut(k)
}

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
        let mut alive = false;
        for lease in hop.leases.leases {
            if lease != LEASE_NONE && MGM_LEASES.get(lease).is_some_and(|v| *v != 0) {
                alive = true;
                break;
            }
        }
        let oif = oif_stats(mfe.stats, hop.ifindex);
        if !alive {
            if let Some(o) = oif {
                // SAFETY: this CPU's slot of the per-CPU value.
                unsafe { (*o).out_discards += 1 };
            }
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
        if let Some(o) = oif {
            // SAFETY: as above.
            unsafe {
                (*o).out_packets += 1;
                (*o).out_bytes += ctx.len() as u64;
            }
        }
        count(counter::TC_TX);
    }
    Some(TC_ACT_SHOT)
}

// ---- benchmark helpers (`cargo xtask bench`), never attached by mgmd -----------------------

/// The bare broadcast's outputs.
#[map(name = "MGM_BENCH_PORTS")]
static MGM_BENCH_PORTS: LegacyDevMapHash = LegacyDevMapHash::with_max_entries(64, 0);

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

/// The traffic generator: run with BPF_PROG_TEST_RUN live frames, each frame leaves by the
/// interface the run names as ingress. A veth hands the frame's page to the router as is, and
/// the page comes back to the generator's pool: a router that decremented the TTL did it in
/// the generator's frame. So the TTL is put back to 64 (checksum adjusted) on every send.
#[xdp]
pub fn mgm_bench_tx(ctx: XdpContext) -> u32 {
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

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
