// SPDX-License-Identifier: MIT OR Apache-2.0
//! [`BpfFastPath`]: the loaded programs and their maps, written through [`FastPath`], read
//! for counters, and adopted after a restart.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv6Addr},
    path::PathBuf,
};

use aya::{
    Ebpf,
    maps::{
        Array, HashMap, Map, MapData, MapError, PerCpuArray, RingBuf,
        xdp::{DevMapHash, XdpMapError},
    },
    programs::{ProgramFd, XdpMode},
};
use aya_obj::generated::{bpf_cmd, bpf_map_type};
use mgm_common::{
    Hop, HopList, LEASE_NONE, LEASE_STATIC, LegEntry, LegKey, MAX_HOPS, MAX_OIL_PORTS, MfeKey,
    MfeKey6, MfeStats, MfeValue, OifBase, OifKey, OifStats, OilPorts, PortStats, PortValue,
    counter, maps,
};

use super::{BPF_ANY, Dataplane, Verified, attach::Attached, grace::Graces, sys};
use crate::{
    fastpath::{Adopted, FastPath, FastPathError, Leg, has_hops},
    kernel::NetDev,
    manager::Sg,
};

/// Inner devmaps created at once when the OIL pool runs out. Every write to a map-in-map
/// waits for an RCU grace period (8-20 ms measured here), so the outer map is written only to
/// grow the pool, a chunk per batch update (one wait), and never when an OIL is freed: its
/// devmap is emptied and its id reused.
const OIL_POOL_GROWTH: u32 = 256;

/// The loaded programs and their maps.
pub struct BpfFastPath {
    pub(super) ebpf: Ebpf,
    pub(super) mfes: HashMap<MapData, MfeKey, MfeValue>,
    pub(super) mfes6: HashMap<MapData, MfeKey6, MfeValue>,
    pub(super) mfe_stats: PerCpuArray<MapData, MfeStats>,
    pub(super) oif_stats: aya::maps::PerCpuHashMap<MapData, OifKey, OifStats>,
    pub(super) oif_base: HashMap<MapData, OifKey, OifBase>,
    pub(super) config: Array<MapData, u64>,
    /// The UDP ports local sockets may receive multicast on, and their set as written.
    pub(super) local_ports: Array<MapData, u8>,
    pub(super) local_ports_set: BTreeSet<u16>,
    pub(super) counters: PerCpuArray<MapData, u64>,
    pub(super) ports: HashMap<MapData, u32, PortValue>,
    pub(super) leases: Array<MapData, u32>,
    pub(super) oil_ports: HashMap<MapData, u32, OilPorts>,
    pub(super) hops: HashMap<MapData, u32, HopList>,
    pub(super) legs: HashMap<MapData, LegKey, LegEntry>,
    /// Each port as written to `ports`: the legs carry its MAC and stats slot too (the
    /// egress program's one lookup per copy), so a changed MAC is rewritten into them.
    pub(super) port_values: std::collections::HashMap<u32, PortValue>,
    pub(super) port_stats: PerCpuArray<MapData, PortStats>,
    pub(super) egress: ProgramFd,
    pub(super) ingress_fd: ProgramFd,
    /// The TC program, for [`BpfFastPath::test_run_tc`].
    pub(super) tc_fd: std::os::fd::OwnedFd,
    /// The kernel runs XDP test runs with live frames: held packets can be replayed.
    pub(super) live_frames: bool,
    /// OIL ids 1..=oil_pool have an inner devmap in the outer map.
    pub(super) oil_pool: u32,
    /// Those devmaps (id 1 first), held from their creation or opened from their pins after
    /// a restart: the outer map only gives their ids, and turning an id into an fd
    /// (BPF_MAP_GET_FD_BY_ID) takes CAP_SYS_ADMIN, which mgmd does without.
    pub(super) oil_maps: Vec<DevMapHash<MapData>>,
    /// The outer OIL map's fd, for the batch update aya does not wrap (aya's handle of it
    /// would only read inner maps by id, which takes CAP_SYS_ADMIN).
    pub(super) oils_fd: std::os::fd::OwnedFd,
    /// Grace periods, before an unnamed OIL is emptied (see `fastpath::RetiredOil`).
    pub(super) graces: Graces,
    pub(super) attached: BTreeMap<u32, Attached>,
    /// How the kernel's verifier took each program.
    pub(super) verified: Vec<Verified>,
    pub(super) pin_dir: Option<PathBuf>,
    /// The maps came from the pin directory (a restart): their contents are live state.
    pub(super) reused: bool,
    pub(super) upcalls: Option<RingBuf<MapData>>,
    pub(super) max_mfes: u32,
    pub(super) mode: XdpMode,
    /// Possible CPUs: the length of every per-CPU value.
    pub(super) ncpus: usize,
}

impl std::fmt::Debug for BpfFastPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BpfFastPath").field("attached", &self.attached).finish_non_exhaustive()
    }
}

impl Dataplane for BpfFastPath {
    fn port_stats(&self) -> Result<BTreeMap<u32, PortStats>, FastPathError> {
        BpfFastPath::port_stats(self)
    }
    fn counters(&self) -> Result<[u64; counter::COUNT as usize], FastPathError> {
        BpfFastPath::counters(self)
    }
    fn manage(&mut self, dev: &NetDev) -> anyhow::Result<()> {
        Ok(self.attach(dev, self.mode())?)
    }
    fn forget(&mut self, ifindex: u32) {
        // The kernel removed the links with the device; detaching can only fail now.
        let _ = self.detach(ifindex);
    }
    fn can_replay(&self) -> bool {
        self.live_frames
    }
    fn set_config(&mut self, idx: u32, value: u64) -> Result<(), FastPathError> {
        self.config.set(idx, value, 0).map_err(map_err(maps::CONFIG))
    }
    fn set_local_ports(&mut self, ports: &BTreeSet<u16>) -> Result<(), FastPathError> {
        // Only what changed is written; the set follows each write, so a failed one is
        // written again next time.
        let changed: Vec<u16> = self.local_ports_set.symmetric_difference(ports).copied().collect();
        for port in changed {
            let open = ports.contains(&port);
            let v = u8::from(open);
            self.local_ports.set(port.into(), v, 0).map_err(map_err(maps::LOCAL_PORTS))?;
            if open {
                self.local_ports_set.insert(port);
            } else {
                self.local_ports_set.remove(&port);
            }
        }
        Ok(())
    }
}

impl BpfFastPath {
    /// The upcall ring buffer, for the task that reads it (once).
    pub fn take_upcalls(&mut self) -> Option<RingBuf<MapData>> {
        self.upcalls.take()
    }

    /// Global counters summed over CPUs, indexed by [`mgm_common::counter`].
    pub fn counters(&self) -> Result<[u64; counter::COUNT as usize], FastPathError> {
        let mut out = [0u64; counter::COUNT as usize];
        for (i, slot) in out.iter_mut().enumerate() {
            let per_cpu = self.counters.get(&(i as u32), 0).map_err(map_err(maps::COUNTERS))?;
            *slot = per_cpu.iter().sum();
        }
        Ok(out)
    }
}

impl BpfFastPath {
    /// Adds empty inner devmaps to the outer map until it holds id `at_least`, in chunks of
    /// [`OIL_POOL_GROWTH`], each chunk in one batch update.
    pub(super) fn grow_oil_pool(&mut self, at_least: u32) -> Result<(), FastPathError> {
        use std::os::fd::{AsFd as _, AsRawFd as _};
        let end = (self.oil_pool + OIL_POOL_GROWTH).max(at_least).min(mgm_common::MAX_OILS);
        if at_least > end {
            return Err(FastPathError::Full { what: "OIL table", capacity: mgm_common::MAX_OILS });
        }
        let mut inner = Vec::new();
        for _ in self.oil_pool + 1..=end {
            inner.push(new_oil_devmap().map_err(map_err("mgm_oil"))?);
        }
        let keys: Vec<u32> = (self.oil_pool + 1..=end).collect();
        let fds: Vec<u32> = inner.iter().map(|m| m.fd().as_fd().as_raw_fd() as u32).collect();
        let outer = {
            use std::os::fd::AsRawFd as _;
            self.oils_fd.as_raw_fd()
        };
        let mut attr = sys::zeroed_attr();
        attr.batch.keys = keys.as_ptr() as u64;
        attr.batch.values = fds.as_ptr() as u64;
        attr.batch.count = keys.len() as u32;
        attr.batch.map_fd = outer as u32;
        let r = sys::bpf(bpf_cmd::BPF_MAP_UPDATE_BATCH, &mut attr);
        // SAFETY: the kernel wrote back how many elements it inserted.
        let done = unsafe { attr.batch.count };
        for (i, map) in inner.into_iter().take(done as usize).enumerate() {
            let id = self.oil_pool + 1 + i as u32;
            if let Some(path) = self.oil_pin(id) {
                map.pin(&path).map_err(|e| FastPathError::Map {
                    map: maps::OILS,
                    source: std::io::Error::other(format!("pinning mgm_oil {id}: {e}")),
                })?;
            }
            let devmap = DevMapHash::try_from(Map::DevMapHash(map)).map_err(map_err("mgm_oil"))?;
            self.oil_maps.push(devmap);
        }
        self.oil_pool += done;
        if let Err(source) = r {
            return Err(FastPathError::Map { map: maps::OILS, source });
        }
        Ok(())
    }

    /// Gives OIL `id` a new devmap holding `legs` with this process's egress program, in one
    /// write of the outer map, and moves the pin to it. Rewriting the entries in place would
    /// not be atomic: to replace a devmap-hash entry the kernel unlinks the old one before it
    /// links the new, and a broadcast in between misses that interface (a restart under
    /// traffic lost copies so in an emulated guest, where a vCPU can stall in between).
    fn swap_oil(&self, id: u32, legs: &[Leg]) -> Result<DevMapHash<MapData>, FastPathError> {
        use std::os::fd::{AsFd as _, AsRawFd as _};
        let io_err = |what: &str, e: &dyn std::fmt::Display| FastPathError::Map {
            map: maps::OILS,
            source: std::io::Error::other(format!("{what} mgm_oil {id}: {e}")),
        };
        let pin = self.oil_pin(id).expect("reused maps are pinned");
        // Pinned under another name until it is in the outer map: a crash in between leaves
        // the old pin, which still names what the outer map holds. (bpffs takes no '.' in
        // a name.)
        let fresh = pin.with_file_name(format!("new-{id}"));
        let _ = std::fs::remove_file(&fresh);
        let map = new_oil_devmap().map_err(map_err("mgm_oil"))?;
        map.pin(&fresh).map_err(|e| io_err("pinning", &e))?;
        let fd = map.fd().as_fd().as_raw_fd() as u32;
        let mut inner = DevMapHash::try_from(Map::DevMapHash(map)).map_err(map_err("mgm_oil"))?;
        for l in legs {
            inner
                .insert(l.ifindex, l.ifindex, Some(&self.egress), BPF_ANY)
                .map_err(xdp_map_err("mgm_oil"))?;
        }
        // `inner` holds `fd` open: the number names the new map.
        sys::update_elem(self.oils_fd.as_fd(), &id, &fd)
            .map_err(|source| FastPathError::Map { map: maps::OILS, source })?;
        std::fs::rename(&fresh, &pin).map_err(|e| io_err("re-pinning", &e))?;
        Ok(inner)
    }

    /// Where the devmap of OIL `id` is pinned (when the fast path is).
    fn oil_pin(&self, id: u32) -> Option<PathBuf> {
        Some(self.pin_dir.as_ref()?.join("maps").join("oils").join(id.to_string()))
    }

    /// A stats slot no port has (1..=MAX_PORTS), its counters zeroed.
    fn new_port_stats(&mut self) -> Result<u32, FastPathError> {
        let used: BTreeSet<u32> = self.port_values.values().map(|p| p.stats).collect();
        let slot = (1..=mgm_common::MAX_PORTS)
            .find(|s| !used.contains(s))
            .ok_or(FastPathError::Full { what: "port table", capacity: mgm_common::MAX_PORTS })?;
        let zero = aya::maps::PerCpuValues::try_from(vec![PortStats::default(); self.ncpus])
            .expect("one value per possible CPU");
        self.port_stats.set(slot, zero, 0).map_err(map_err(maps::PORT_STATS))?;
        Ok(slot)
    }

    /// Each port's copy counters, all CPUs added up.
    pub fn port_stats(&self) -> Result<BTreeMap<u32, PortStats>, FastPathError> {
        let mut out = BTreeMap::new();
        for (ifindex, p) in &self.port_values {
            let per_cpu = self.port_stats.get(&p.stats, 0).map_err(map_err(maps::PORT_STATS))?;
            let mut sum = PortStats::default();
            per_cpu.iter().for_each(|c| sum.accumulate(c));
            out.insert(*ifindex, sum);
        }
        Ok(out)
    }

    /// The egress program's view of a leg: its leases and the port's MAC.
    fn leg_entry(&self, l: &Leg) -> LegEntry {
        let port = self.port_values.get(&l.ifindex).copied();
        let (src_mac, stats) = port.map_or(([0; 6], 0), |p| (p.mac, p.stats));
        LegEntry { leases: l.leases, src_mac, port_stats: stats as u16 }
    }

    /// How many OIL ids have a pinned devmap: the pool is always ids 1..=n, pinned in that
    /// order as they are made, so the first missing pin is found by bisection. (A crash
    /// between filling the outer map and pinning leaves a few unpinned: they are made again.)
    fn pinned_oil_pool(&self) -> u32 {
        let pinned = |id: u32| self.oil_pin(id).is_some_and(|p| p.exists());
        let (mut lo, mut hi) = (0, mgm_common::MAX_OILS);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if pinned(mid) { lo = mid } else { hi = mid - 1 }
        }
        lo
    }

    /// After a restart (maps reused from the pin directory): everything the previous mgmd
    /// left in the maps, for the mirror to adopt. Devmap entries are rewritten to name this
    /// process's egress program; entries no leg accounts for (a crash mid-write) are removed.
    pub fn pinned_state(&mut self) -> Result<Option<Adopted>, FastPathError> {
        if !self.reused {
            return Ok(None);
        }
        let mut a = Adopted::default();
        for r in self.ports.iter() {
            let (i, p) = r.map_err(map_err(maps::PORTS))?;
            self.port_values.insert(i, p);
            a.ports.push((i, p));
        }
        for r in self.legs.iter() {
            let (k, v) = r.map_err(map_err(maps::LEGS))?;
            a.oils.entry(k.oil).or_default().push(Leg::new(k.ifindex, v.leases));
        }
        self.oil_pool = self.pinned_oil_pool();
        for id in 1..=self.oil_pool {
            let legs = a.oils.get(&id).cloned().unwrap_or_default();
            let inner = if legs.is_empty() {
                // Nothing forwards through it: entries a crash left mid-write go in place.
                let path = self.oil_pin(id).expect("reused maps are pinned");
                let map = MapData::from_pin(&path).map_err(map_err("mgm_oil"))?;
                let mut inner =
                    DevMapHash::try_from(Map::DevMapHash(map)).map_err(map_err("mgm_oil"))?;
                let present: Vec<u32> =
                    inner.keys().collect::<Result<_, _>>().map_err(map_err("mgm_oil"))?;
                for i in present {
                    ignore_absent(inner.remove(i)).map_err(map_err("mgm_oil"))?;
                }
                inner
            } else {
                self.swap_oil(id, &legs)?
            };
            self.oil_maps.push(inner);
        }
        for r in self.hops.iter() {
            let (id, list) = r.map_err(map_err(maps::HOPS))?;
            let legs = list.hops.iter().take((list.len as usize).min(MAX_HOPS)).map(|h| Leg {
                ifindex: h.ifindex,
                nexthop: std::net::Ipv6Addr::from(h.nexthop).to_canonical(),
                mac: h.mac,
                leases: h.leases,
            });
            a.oils.entry(id).or_default().extend(legs);
        }
        for legs in a.oils.values_mut() {
            legs.sort();
        }
        for r in self.mfes.iter() {
            let (k, v) = r.map_err(map_err(maps::MFES))?;
            a.mfes.push((Sg::v4(k.source, k.group), v));
        }
        for r in self.mfes6.iter() {
            let (k, v) = r.map_err(map_err(maps::MFES6))?;
            a.mfes.push((Sg::new(Ipv6Addr::from(k.source), Ipv6Addr::from(k.group)), v));
        }
        let named: std::collections::BTreeSet<u32> = a
            .oils
            .values()
            .flatten()
            .flat_map(|l| l.leases.leases)
            .filter(|&l| l != LEASE_NONE && l != LEASE_STATIC)
            .collect();
        for id in named {
            let v = self.leases.get(&id, 0).map_err(map_err(maps::LEASES))?;
            a.leases.insert(id, v != 0);
        }
        Ok(Some(a))
    }
}

/// A new, empty devmap of the shape the outer OIL map holds.
pub(super) fn new_oil_devmap() -> Result<MapData, aya::maps::MapError> {
    let def = aya_obj::Map::new_from_params(
        bpf_map_type::BPF_MAP_TYPE_DEVMAP_HASH as u32,
        size_of::<u32>() as u32,
        // struct bpf_devmap_val { u32 ifindex; union { int fd; u32 id; } bpf_prog; }
        8,
        MAX_OIL_PORTS,
        0,
    );
    MapData::create(def, "mgm_oil", None)
}

/// The devmap of OIL `id` (1..=oil_pool) among `maps` (id 1 first).
fn oil_map(
    devmaps: &mut [DevMapHash<MapData>],
    id: u32,
) -> Result<&mut DevMapHash<MapData>, FastPathError> {
    let i = id.checked_sub(1).map(|i| i as usize);
    i.and_then(|i| devmaps.get_mut(i)).ok_or_else(|| map_err(maps::OILS)(MapError::KeyNotFound))
}

/// An (S,G) as one of the two MFE maps keys it.
enum Key {
    V4(MfeKey),
    V6(MfeKey6),
}

fn bpf_key(sg: Sg) -> Result<Key, FastPathError> {
    match (sg.source, sg.group) {
        (IpAddr::V4(s), IpAddr::V4(g)) => Ok(Key::V4(MfeKey::new(s.octets(), g.octets()))),
        (IpAddr::V6(s), IpAddr::V6(g)) => {
            Ok(Key::V6(MfeKey6 { source: s.octets(), group: g.octets() }))
        }
        _ => Err(FastPathError::Family(sg.source, sg.group)),
    }
}

fn map_err(map: &'static str) -> impl FnOnce(MapError) -> FastPathError {
    move |e| FastPathError::Map { map, source: io_error(e) }
}

/// aya's error as the kernel's errno where it has one (the daemon's errors carry no aya
/// type), else as text.
fn io_error(e: MapError) -> std::io::Error {
    match e {
        MapError::SyscallError(s) => s.io_error,
        e => std::io::Error::other(e.to_string()),
    }
}

fn xdp_map_err(map: &'static str) -> impl FnOnce(XdpMapError) -> FastPathError {
    move |e| match e {
        XdpMapError::MapError(e) => map_err(map)(e),
        e => FastPathError::Map { map, source: std::io::Error::other(e.to_string()) },
    }
}

/// Treats "no such key" on delete as success: deletes are idempotent.
fn ignore_absent(r: Result<(), MapError>) -> Result<(), MapError> {
    match r {
        Err(MapError::KeyNotFound) => Ok(()),
        Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        other => other,
    }
}

impl FastPath for BpfFastPath {
    fn set_port(&mut self, ifindex: u32, port: PortValue) -> Result<(), FastPathError> {
        let stats = match self.port_values.get(&ifindex) {
            Some(p) => p.stats,
            None => self.new_port_stats()?,
        };
        let port = PortValue { stats, ..port };
        self.ports.insert(ifindex, port, BPF_ANY).map_err(map_err(maps::PORTS))?;
        let old = self.port_values.insert(ifindex, port).map(|p| p.mac);
        if old.is_some_and(|m| m != port.mac) {
            // Rare (an operator changed the address): every leg out of this port is
            // rewritten, one write each.
            let mine: Vec<(LegKey, LegEntry)> = self
                .legs
                .iter()
                .filter_map(Result::ok)
                .filter(|(k, _)| k.ifindex == ifindex)
                .collect();
            for (k, mut v) in mine {
                v.src_mac = port.mac;
                self.legs.insert(k, v, BPF_ANY).map_err(map_err(maps::LEGS))?;
            }
        }
        Ok(())
    }

    fn remove_port(&mut self, ifindex: u32) -> Result<(), FastPathError> {
        self.port_values.remove(&ifindex);
        ignore_absent(self.ports.remove(&ifindex)).map_err(map_err(maps::PORTS))
    }

    fn set_oil(&mut self, id: u32, legs: &[Leg]) -> Result<(), FastPathError> {
        if has_hops(legs) {
            // Copies per next hop: one list the TC program walks, no devmap.
            let mut list = HopList { len: legs.len() as u32, hops: [Hop::default(); MAX_HOPS] };
            for (h, l) in list.hops.iter_mut().zip(legs) {
                *h = Hop {
                    ifindex: l.ifindex,
                    mac: l.mac,
                    set_dst: u8::from(!l.nexthop.is_unspecified()),
                    _pad: 0,
                    nexthop: match l.nexthop {
                        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
                        IpAddr::V6(a) => a.octets(),
                    },
                    leases: l.leases,
                };
            }
            return self.hops.insert(id, list, BPF_ANY).map_err(map_err(maps::HOPS));
        }
        if id > self.oil_pool {
            self.grow_oil_pool(id)?;
        }
        // Legs first: the egress program looks them up once the devmap holds the ports.
        for l in legs {
            let k = LegKey { oil: id, ifindex: l.ifindex };
            self.legs.insert(k, self.leg_entry(l), BPF_ANY).map_err(map_err(maps::LEGS))?;
        }
        let mut ports = OilPorts { len: legs.len() as u32, ifindex: [0; MAX_OIL_PORTS as usize] };
        for (d, l) in ports.ifindex.iter_mut().zip(legs) {
            *d = l.ifindex;
        }
        self.oil_ports.insert(id, ports, BPF_ANY).map_err(map_err(maps::OIL_PORTS))?;
        // The id is free (no MFE names it): its devmap is empty and can be filled in place.
        let inner = oil_map(&mut self.oil_maps, id)?;
        for ifindex in legs.iter().map(|l| l.ifindex) {
            inner
                .insert(ifindex, ifindex, Some(&self.egress), BPF_ANY)
                .map_err(xdp_map_err("mgm_oil"))?;
        }
        Ok(())
    }

    fn remove_oil(&mut self, id: u32, legs: &[Leg]) -> Result<(), FastPathError> {
        if has_hops(legs) {
            return ignore_absent(self.hops.remove(&id)).map_err(map_err(maps::HOPS));
        }
        // Emptied, not removed from the outer map (see OIL_POOL_GROWTH); no MFE names it.
        ignore_absent(self.oil_ports.remove(&id)).map_err(map_err(maps::OIL_PORTS))?;
        for l in legs {
            let inner = oil_map(&mut self.oil_maps, id)?;
            ignore_absent(inner.remove(l.ifindex)).map_err(map_err("mgm_oil"))?;
            let k = LegKey { oil: id, ifindex: l.ifindex };
            ignore_absent(self.legs.remove(&k)).map_err(map_err(maps::LEGS))?;
        }
        Ok(())
    }

    fn set_lease(&mut self, id: u32, alive: bool) -> Result<(), FastPathError> {
        self.leases.set(id, u32::from(alive), BPF_ANY).map_err(map_err(maps::LEASES))
    }

    fn set_mfe(&mut self, key: Sg, value: MfeValue) -> Result<(), FastPathError> {
        match bpf_key(key)? {
            Key::V4(k) => self.mfes.insert(k, value, BPF_ANY).map_err(map_err(maps::MFES)),
            Key::V6(k) => self.mfes6.insert(k, value, BPF_ANY).map_err(map_err(maps::MFES6)),
        }
    }

    fn remove_mfe(&mut self, key: &Sg) -> Result<(), FastPathError> {
        match bpf_key(*key)? {
            Key::V4(k) => ignore_absent(self.mfes.remove(&k)).map_err(map_err(maps::MFES)),
            Key::V6(k) => ignore_absent(self.mfes6.remove(&k)).map_err(map_err(maps::MFES6)),
        }
    }

    fn mfe_stats(&self, slot: u32) -> Result<MfeStats, FastPathError> {
        let per_cpu = self.mfe_stats.get(&slot, 0).map_err(map_err(maps::MFE_STATS))?;
        let mut total = MfeStats::default();
        for s in per_cpu.iter() {
            total.accumulate(s);
        }
        Ok(total)
    }

    fn oif_stats(&self, slot: u32, ifindex: u32) -> Result<OifStats, FastPathError> {
        let mut total = OifStats::default();
        match self.oif_stats.get(&OifKey { slot, ifindex }, 0) {
            Ok(per_cpu) => per_cpu.iter().for_each(|s| total.accumulate(s)),
            // Never counted (or evicted from the LRU): nothing to report.
            Err(MapError::KeyNotFound) => {}
            Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(map_err(maps::OIF_STATS)(e)),
        }
        Ok(total)
    }

    fn oif_base(&self, slot: u32, ifindex: u32) -> Result<OifBase, FastPathError> {
        match self.oif_base.get(&OifKey { slot, ifindex }, 0) {
            Ok(b) => Ok(b),
            Err(MapError::KeyNotFound) => Ok(OifBase::default()),
            Err(e) => Err(map_err(maps::OIF_BASE)(e)),
        }
    }

    fn set_oif_base(&mut self, slot: u32, ifindex: u32, b: OifBase) -> Result<(), FastPathError> {
        self.oif_base.insert(OifKey { slot, ifindex }, b, BPF_ANY).map_err(map_err(maps::OIF_BASE))
    }

    fn clear_oif_stats(&mut self, slot: u32, ifindex: u32) -> Result<(), FastPathError> {
        let key = OifKey { slot, ifindex };
        ignore_absent(self.oif_stats.remove(&key)).map_err(map_err(maps::OIF_STATS))?;
        ignore_absent(self.oif_base.remove(&key)).map_err(map_err(maps::OIF_BASE))
    }

    fn clear_mfe_stats(&mut self, slot: u32) -> Result<(), FastPathError> {
        let zeros = aya::maps::PerCpuValues::try_from(vec![MfeStats::default(); self.ncpus])
            .expect("one value per possible CPU");
        self.mfe_stats.set(slot, zeros, BPF_ANY).map_err(map_err(maps::MFE_STATS))
    }

    fn grace_ticket(&mut self) -> u64 {
        self.graces.ticket()
    }

    fn graces_done(&self) -> u64 {
        self.graces.ended()
    }

    fn wait_grace(&mut self) -> Result<(), FastPathError> {
        self.graces.wait();
        Ok(())
    }

    fn mfe_capacity(&self) -> u32 {
        self.max_mfes
    }
}

/// The liveness stamp (`--follow-kernel`): mgmd's word to the programs that it is alive, in
/// the kernel's coarse monotonic clock (the one `bpf_ktime_get_coarse_ns` reads; a stamp ahead
/// of it would read as stale). The run loop writes it, reading the clock there; the daemon
/// only says when.
#[derive(Debug)]
pub struct Liveness {
    config: std::os::fd::OwnedFd,
}

impl Liveness {
    /// Stamps now.
    pub fn write(&self) -> std::io::Result<()> {
        use std::os::fd::AsFd as _;
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: a valid timespec to fill.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
        let ns = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
        let key: u32 = mgm_common::config::ALIVE_NS;
        sys::update_elem(self.config.as_fd(), &key, &ns)
    }
}

impl BpfFastPath {
    /// A writer of the liveness stamp of its own (a second descriptor of the configuration
    /// map), for the run loop.
    pub fn liveness(&self) -> std::io::Result<Liveness> {
        use aya::maps::IterableMap as _;
        use std::os::fd::AsFd as _;
        Ok(Liveness { config: self.config.map().fd().as_fd().try_clone_to_owned()? })
    }
}
