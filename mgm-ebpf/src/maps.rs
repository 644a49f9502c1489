// SPDX-License-Identifier: MIT OR Apache-2.0
//! The maps mgmd writes and the programs read (layouts in `mgm-common`), and the counters.

use aya_ebpf::{
    btf_maps::{ArrayOfMaps, DevMapHash},
    macros::{btf_map, map},
    maps::{Array, HashMap, LruHashMap, LruPerCpuHashMap, PerCpuArray, RingBuf},
};
use mgm_common::{
    DEFAULT_MAX_MFES, HopList, LegEntry, LegKey, MAX_LEASES, MAX_LEGS, MAX_OIF_BASES,
    MAX_OIF_STATS, MAX_OIL_PORTS, MAX_OILS, MAX_PORTS, MfeKey, MfeKey6, MfeStats, MfeValue,
    OifBase, OifKey, OifStats, OilPorts, PortStats, PortValue, UPCALL_RING_BYTES, UpcallKey,
    UpcallKey6, UpcallRecord, UpcallSeen, config, counter,
};

#[map(name = "MGM_MFES")]
pub static MGM_MFES: HashMap<MfeKey, MfeValue> = HashMap::with_max_entries(DEFAULT_MAX_MFES, 0);

#[map(name = "MGM_MFES6")]
pub static MGM_MFES6: HashMap<MfeKey6, MfeValue> = HashMap::with_max_entries(DEFAULT_MAX_MFES, 0);

#[map(name = "MGM_MFE_STATS")]
pub static MGM_MFE_STATS: PerCpuArray<MfeStats> =
    PerCpuArray::with_max_entries(DEFAULT_MAX_MFES, 0);

#[map(name = "MGM_CONFIG")]
pub static MGM_CONFIG: Array<u64> = Array::with_max_entries(config::COUNT, 0);

#[map(name = "MGM_HEARTBEAT")]
pub static MGM_HEARTBEAT: PerCpuArray<u64> = PerCpuArray::with_max_entries(DEFAULT_MAX_MFES, 0);

#[map(name = "MGM_MOVED")]
pub static MGM_MOVED: Array<u64> = Array::with_max_entries(DEFAULT_MAX_MFES, 0);

#[map(name = "MGM_LOCAL_PORTS")]
pub static MGM_LOCAL_PORTS: Array<u8> = Array::with_max_entries(1 << 16, 0);

#[map(name = "MGM_COUNTERS")]
static MGM_COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counter::COUNT, 0);

#[map(name = "MGM_PORTS")]
pub static MGM_PORTS: HashMap<u32, PortValue> = HashMap::with_max_entries(MAX_PORTS, 0);

/// Slot 0 is never given to an interface: copies of an uncounted one land there.
#[map(name = "MGM_PORT_STATS")]
static MGM_PORT_STATS: PerCpuArray<PortStats> = PerCpuArray::with_max_entries(MAX_PORTS + 1, 0);

#[map(name = "MGM_UPCALLS")]
pub static MGM_UPCALLS: RingBuf = RingBuf::with_byte_size(UPCALL_RING_BYTES, 0);

#[map(name = "MGM_UPCALL_SEEN")]
pub static MGM_UPCALL_SEEN: LruHashMap<UpcallKey<4>, UpcallSeen> =
    LruHashMap::with_max_entries(16_384, 0);

#[map(name = "MGM_UPCALL_SEEN6")]
pub static MGM_UPCALL_SEEN6: LruHashMap<UpcallKey6, UpcallSeen> =
    LruHashMap::with_max_entries(16_384, 0);

/// Where an upcall record is assembled (1.5 KiB: more than the BPF stack holds).
#[map(name = "MGM_UPCALL_SCRATCH")]
pub static MGM_UPCALL_SCRATCH: PerCpuArray<UpcallRecord> = PerCpuArray::with_max_entries(1, 0);

#[map(name = "MGM_OIF_STATS")]
static MGM_OIF_STATS: LruPerCpuHashMap<OifKey, OifStats> =
    LruPerCpuHashMap::with_max_entries(MAX_OIF_STATS, 0);

/// The daemon's share of the copy counts. No program reads it; it is declared here so that
/// it is created, and pinned, with the others.
#[map(name = "MGM_OIF_BASE")]
pub static MGM_OIF_BASE: HashMap<OifKey, OifBase> = HashMap::with_max_entries(MAX_OIF_BASES, 1);

/// BPF_F_NO_PREALLOC: 516 bytes per OIL, allocated as OILs appear.
#[map(name = "MGM_OIL_PORTS")]
pub static MGM_OIL_PORTS: HashMap<u32, OilPorts> = HashMap::with_max_entries(MAX_OILS, 1);

/// BPF_F_NO_PREALLOC: ~900 bytes per OIL with next hops, allocated as they appear.
#[map(name = "MGM_HOPS")]
pub static MGM_HOPS: HashMap<u32, HopList> = HashMap::with_max_entries(MAX_OILS, 1);

#[map(name = "MGM_LEASES")]
pub static MGM_LEASES: Array<u32> = Array::with_max_entries(MAX_LEASES, 0);

#[map(name = "MGM_LEGS")]
pub static MGM_LEGS: HashMap<LegKey, LegEntry> = HashMap::with_max_entries(MAX_LEGS, 0);

// BTF map: the inner devmap template is described by BTF, which aya reads at load time. An
// array indexed by OIL id (1..=MAX_OILS): its lookup is inlined by the verifier, where a hash
// would cost a call per packet.
#[btf_map]
pub static MGM_OILS: ArrayOfMaps<
    DevMapHash<{ MAX_OIL_PORTS as usize }>,
    { MAX_OILS as usize + 1 },
> = ArrayOfMaps::new();

/// Counts one outcome (an index of `mgm_common::counter`).
#[inline(always)]
pub fn count(idx: u32) {
    if let Some(c) = MGM_COUNTERS.get_ptr_mut(idx) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *c += 1 };
    }
}

/// Counts the outcome and returns the action (an XDP or a TC one).
#[inline(always)]
pub fn verdict<T>(idx: u32, action: T) -> T {
    count(idx);
    action
}

/// Counts a copy of `bytes` that left through the interface of stats slot `port`.
#[inline(always)]
pub fn port_sent(port: u32, bytes: usize) {
    if let Some(p) = MGM_PORT_STATS.get_ptr_mut(port) {
        // SAFETY: this CPU's slot of the per-CPU value.
        unsafe {
            (*p).copies += 1;
            (*p).bytes += bytes as u64;
        }
    }
}

/// Counts a copy meant for the interface of stats slot `port` that did not leave.
#[inline(always)]
pub fn port_dropped(port: u32) {
    if let Some(p) = MGM_PORT_STATS.get_ptr_mut(port) {
        // SAFETY: this CPU's slot of the per-CPU value.
        unsafe { (*p).drops += 1 };
    }
}

/// The stats slot of `ifindex` (0 when it is not a port).
#[inline(always)]
pub fn port_slot(ifindex: u32) -> u32 {
    // SAFETY: copied out at once.
    unsafe { MGM_PORTS.get(ifindex) }.map_or(0, |p| p.stats)
}

/// Counts a copy of `bytes` sent on `ifindex` for the MFE with counters `slot` (TC path:
/// copies counted one by one).
#[inline(always)]
pub fn count_out(slot: u32, ifindex: u32, bytes: usize) {
    if let Some(o) = oif_stats(slot, ifindex) {
        // SAFETY: this CPU's slot of the per-CPU value.
        unsafe {
            (*o).out_packets = (*o).out_packets.wrapping_add(1);
            (*o).out_bytes = (*o).out_bytes.wrapping_add(bytes as u64);
        }
    }
}

/// Takes back a copy of `bytes` on `ifindex` that the ingress program counted as sent (XDP
/// paths: a packet forwarded is a copy on every interface of the list) and that did not
/// leave. Returns the interface's counters, for the caller to say why.
#[inline(always)]
pub fn uncount(slot: u32, ifindex: u32, bytes: usize) -> Option<*mut OifStats> {
    let o = oif_stats(slot, ifindex)?;
    // SAFETY: this CPU's slot of the per-CPU value.
    unsafe {
        (*o).out_packets = (*o).out_packets.wrapping_sub(1);
        (*o).out_bytes = (*o).out_bytes.wrapping_sub(bytes as u64);
    }
    Some(o)
}

/// This CPU's counters of (MFE slot, outgoing interface), created on first use.
#[inline(always)]
pub fn oif_stats(slot: u32, ifindex: u32) -> Option<*mut OifStats> {
    let k = OifKey { slot, ifindex };
    if let Some(p) = MGM_OIF_STATS.get_ptr_mut(k) {
        return Some(p);
    }
    // BPF_NOEXIST: another CPU may have created it meanwhile; then its entry is used.
    let _ = MGM_OIF_STATS.insert(k, OifStats::default(), 1);
    MGM_OIF_STATS.get_ptr_mut(k)
}
