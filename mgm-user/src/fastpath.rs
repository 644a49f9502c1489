// SPDX-License-Identifier: MIT OR Apache-2.0
//! The fast-path mirror: turns "MFE (S,G) arrives on IIF and leaves on these OIFs" into BPF map
//! writes, in an order that never shows the data path a state nobody asked for.
//!
//! * [`FastPath`] is the small interface to the maps: the BPF implementation lives in
//!   [`crate::dataplane`]; the tests record writes with an in-memory one (`dataplane/mem.rs`).
//! * [`Mirror`] owns the desired state. Outgoing lists are interned: MFEs with the same OIL
//!   share one inner devmap, so a (*,G) with a thousand sources costs one OIL, and changing an
//!   MFE's list is a single MFE write that swaps OIL ids.
//! * Leases make a release atomic. A lease is one client's ownership of one (interface, next
//!   hop); each leg (OIL, outgoing interface) names the leases that put the interface there,
//!   and the egress program sends a copy only while one of them is alive. Killing a lease is
//!   one array write that stops every copy it justified, in every OIL at once; the OILs are
//!   rewritten without it afterwards, at leisure. A dead lease id is reused only once nothing
//!   names it any more ([`Mirror::reap_leases`]).
//!
//! Write order, so that the maps always describe a state the core really had: ports before
//! OILs that name them, legs before the devmap that makes them reachable, OILs before MFEs
//! that reference them, and in reverse on removal. Every write is an idempotent upsert/delete.
//!
//! Here: the MFEs and their interned lists; beside it, `ports.rs` (ports, boundaries, next
//! hops' MACs) and `leases.rs`.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    net::{IpAddr, Ipv4Addr},
};

use mgm_common::{
    LEASE_NONE, LEASE_STATIC, LEG_LEASES, LegValue, MAX_HOPS, MAX_LEASES, MAX_OIL_PORTS, MAX_OILS,
    MFE_F_HOPS, MFE_F_KERNEL, MFE_F_LOCAL, MFE_F_STATIC, MfeStats, MfeValue, OIL_EMPTY, OifBase,
    OifStats, PortValue,
};

use crate::{
    manager::{Family, Sg},
    scope::Scope,
};

/// Errors from the map layer and from the mirror's own checks.
#[derive(Debug, thiserror::Error)]
pub enum FastPathError {
    /// The kernel refused a map operation.
    #[error("BPF map {map}: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} is full ({capacity} entries)")]
    Full { what: &'static str, capacity: u32 },
    #[error("interface {0} is not managed by mgm (no XDP program attached)")]
    UnknownPort(u32),
    #[error("interface {0} is still used by {1} forwarding entries")]
    PortInUse(u32, usize),
    #[error(
        "outgoing list has {0} interfaces, at most {MAX_OIL_PORTS} are supported \
         ({MAX_HOPS} with next hops)"
    )]
    OilTooLong(usize),
    #[error("interface {0} is kept in one list by more than {LEG_LEASES} owners")]
    TooManyLeases(u32),
    #[error("lease {0} was never opened")]
    UnknownLease(u32),
    #[error("({0}, {1}) mixes the address families")]
    Family(IpAddr, IpAddr),
}

/// The map operations the mirror needs. Each call is one idempotent map write (or, for an
/// OIL, a group of writes that only become reachable with the last one).
pub trait FastPath {
    fn set_port(&mut self, ifindex: u32, port: PortValue) -> Result<(), FastPathError>;
    fn remove_port(&mut self, ifindex: u32) -> Result<(), FastPathError>;
    /// Creates OIL `id` holding exactly `legs` (the id is not in use).
    fn set_oil(&mut self, id: u32, legs: &[Leg]) -> Result<(), FastPathError>;
    /// Removes OIL `id` (no MFE references it any more) and its legs.
    fn remove_oil(&mut self, id: u32, legs: &[Leg]) -> Result<(), FastPathError>;
    fn set_mfe(&mut self, key: Sg, value: MfeValue) -> Result<(), FastPathError>;
    fn remove_mfe(&mut self, key: &Sg) -> Result<(), FastPathError>;
    /// Marks lease `id` alive or released: one write, seen by the next copy on any CPU.
    fn set_lease(&mut self, id: u32, alive: bool) -> Result<(), FastPathError>;
    /// Per-MFE counters summed over CPUs.
    fn mfe_stats(&self, slot: u32) -> Result<MfeStats, FastPathError>;
    /// Counters of one outgoing interface of the MFE in `slot`, summed over CPUs, as the
    /// programs keep them (copies made by XDP are not in `out_*`: see [`OifStats`]).
    fn oif_stats(&self, slot: u32, ifindex: u32) -> Result<OifStats, FastPathError>;
    /// The daemon's share of the copy count of (slot, ifindex) (see [`OifBase`]).
    fn oif_base(&self, slot: u32, ifindex: u32) -> Result<OifBase, FastPathError>;
    fn set_oif_base(&mut self, slot: u32, ifindex: u32, b: OifBase) -> Result<(), FastPathError>;
    /// Clears both the counters and the base of (slot, ifindex).
    fn clear_oif_stats(&mut self, slot: u32, ifindex: u32) -> Result<(), FastPathError>;
    fn clear_mfe_stats(&mut self, slot: u32) -> Result<(), FastPathError>;
    /// Number of stats slots, i.e. how many MFEs fit.
    fn mfe_capacity(&self) -> u32;
    /// Asks for an RCU grace period that begins after this call and returns its ticket: once
    /// [`FastPath::graces_done`] reaches it, no program still runs that read a map before
    /// the call (a packet that found the old OIL id under its MFE has left).
    fn grace_ticket(&mut self) -> u64;
    /// The highest ticket whose grace period has ended.
    fn graces_done(&self) -> u64;
    /// Waits out a grace period now: every ticket handed out so far is done on return.
    fn wait_grace(&mut self) -> Result<(), FastPathError>;
}

/// One outgoing copy of an OIL: an interface, or an (interface, next hop) addressed to that
/// neighbour's MAC, and the leases that keep copies flowing there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Leg {
    pub ifindex: u32,
    /// Unspecified (0.0.0.0, ::): every host on the link (the group's MAC).
    pub nexthop: IpAddr,
    /// The next hop's MAC when resolved (zero otherwise, or without next hop).
    pub mac: [u8; 6],
    pub leases: LegValue,
}

impl Leg {
    pub fn new(ifindex: u32, leases: LegValue) -> Self {
        Self { ifindex, nexthop: Ipv4Addr::UNSPECIFIED.into(), mac: [0; 6], leases }
    }

    pub(crate) fn leases(&self) -> impl Iterator<Item = u32> + '_ {
        self.leases.leases.iter().copied().filter(|&l| l != LEASE_NONE)
    }
}

/// Whether an OIL needs the TC path (a copy per next hop) rather than an XDP broadcast.
pub fn has_hops(legs: &[Leg]) -> bool {
    legs.iter().any(|l| !l.nexthop.is_unspecified())
}

/// Copies per forwarded packet that XDP makes to `ifindex` for an MFE with `legs`, which
/// the programs do not count one by one (1 or 0; the TC path counts its own).
fn xdp_copies(legs: &[Leg], ifindex: u32) -> u64 {
    u64::from(!has_hops(legs) && legs.iter().any(|l| l.ifindex == ifindex))
}

/// One outgoing (interface, next hop) of an MFE and the leases behind it, as installed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Oif {
    pub ifindex: u32,
    pub nexthop: IpAddr,
    pub leases: Vec<u32>,
}

impl Oif {
    pub fn new(ifindex: u32, nexthop: impl Into<IpAddr>, leases: Vec<u32>) -> Self {
        Self { ifindex, nexthop: nexthop.into(), leases }
    }
}

/// What a previous mgmd left in pinned maps (see [`Mirror::adopt`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Adopted {
    pub ports: Vec<(u32, PortValue)>,
    /// OIL id -> its legs, sorted by ifindex.
    pub oils: BTreeMap<u32, Vec<Leg>>,
    pub mfes: Vec<(Sg, MfeValue)>,
    /// Every lease a leg names (static excluded) and whether it is alive.
    pub leases: BTreeMap<u32, bool>,
}

/// One installed MFE as the mirror knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstalledMfe {
    pub iif: u32,
    /// Sorted by ifindex, one per interface, never containing `iif`.
    pub legs: Vec<Leg>,
    pub oil: u32,
    pub slot: u32,
    /// Every outgoing interface it ever had: their counters go with the MFE.
    pub counted: BTreeSet<u32>,
    /// Who installed it (marked in the map, so a restart tells them apart).
    pub origin: Origin,
}

/// Who an installed MFE belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The MGM core (clients' state).
    Core,
    /// Configuration or `add_mfe`.
    Static,
    /// The kernel's multicast routing table (`--follow-kernel`); `local`: this host is a
    /// member of the group on the incoming interface (see [`MFE_F_LOCAL`]).
    Kernel { local: bool },
}

impl Origin {
    fn flags(self) -> u32 {
        match self {
            Origin::Core => 0,
            Origin::Static => MFE_F_STATIC,
            Origin::Kernel { local: false } => MFE_F_KERNEL,
            Origin::Kernel { local: true } => MFE_F_KERNEL | MFE_F_LOCAL,
        }
    }

    fn of(flags: u32) -> Self {
        if flags & MFE_F_KERNEL != 0 {
            Origin::Kernel { local: flags & MFE_F_LOCAL != 0 }
        } else if flags & MFE_F_STATIC != 0 {
            Origin::Static
        } else {
            Origin::Core
        }
    }
}

impl InstalledMfe {
    /// The outgoing ifindexes, sorted.
    pub fn oifs(&self) -> Vec<u32> {
        self.legs.iter().map(|l| l.ifindex).collect()
    }

    /// Whether `ifindex` is its incoming or one of its outgoing interfaces.
    pub fn uses(&self, ifindex: u32) -> bool {
        self.iif == ifindex || self.legs.iter().any(|l| l.ifindex == ifindex)
    }
}

/// An OIL no MFE names any more, kept whole in the maps until a packet that looked up its
/// MFE before the switch cannot be using it: emptied earlier, that packet would lose the
/// copies of the interfaces removed first (lists are written one entry at a time); its id
/// reused earlier, the packet would go where another MFE forwards.
#[derive(Debug)]
struct RetiredOil {
    id: u32,
    legs: Vec<Leg>,
    ticket: u64,
}

#[derive(Debug)]
struct InternedOil {
    id: u32,
    refs: usize,
}

#[derive(Debug, Default)]
struct LeaseState {
    alive: bool,
    /// Interned OILs naming it.
    refs: usize,
}

/// Desired fast-path state and the logic that writes it.
#[derive(Debug)]
pub struct Mirror<F> {
    fp: F,
    ports: BTreeMap<u32, PortValue>,
    oils: HashMap<Vec<Leg>, InternedOil>,
    oil_ids: HashMap<u32, Vec<Leg>>,
    /// Unnamed OILs waiting out a grace period, oldest first (see [`RetiredOil`]).
    retired: VecDeque<RetiredOil>,
    free_oil_ids: Vec<u32>,
    next_oil_id: u32,
    mfes: BTreeMap<Sg, InstalledMfe>,
    free_slots: Vec<u32>,
    next_slot: u32,
    leases: HashMap<u32, LeaseState>,
    free_leases: Vec<u32>,
    /// Killed leases not recycled yet (what `reap_leases` looks at).
    dead_leases: BTreeSet<u32>,
    next_lease: u32,
    /// Resolved next hops: (ifindex, address) -> MAC.
    neighbours: HashMap<(u32, IpAddr), [u8; 6]>,
    /// Installed MFEs per next hop they send to (so the per-tick checks do not walk every MFE).
    hop_users: BTreeMap<(u32, IpAddr), usize>,
    /// Administrative scope boundaries drawn at interfaces.
    boundaries: BTreeMap<u32, Scope>,
}

impl<F: FastPath> Mirror<F> {
    pub fn new(fp: F) -> Self {
        Self {
            fp,
            ports: BTreeMap::new(),
            oils: HashMap::new(),
            oil_ids: HashMap::new(),
            retired: VecDeque::new(),
            free_oil_ids: Vec::new(),
            next_oil_id: OIL_EMPTY + 1,
            mfes: BTreeMap::new(),
            free_slots: Vec::new(),
            next_slot: 0,
            leases: HashMap::new(),
            free_leases: Vec::new(),
            dead_leases: BTreeSet::new(),
            next_lease: LEASE_STATIC + 1,
            neighbours: HashMap::new(),
            hop_users: BTreeMap::new(),
            boundaries: BTreeMap::new(),
        }
    }

    pub fn fast_path(&self) -> &F {
        &self.fp
    }

    pub fn fast_path_mut(&mut self) -> &mut F {
        &mut self.fp
    }

    /// Takes over the state a previous mgmd left in the maps, so that nothing is rewritten
    /// that need not be: forwarding goes on as it was. MFEs naming a missing OIL are removed,
    /// duplicate lists are merged, unreferenced lists emptied. Returns the adopted MFE keys.
    pub fn adopt(&mut self, a: Adopted) -> Result<Vec<Sg>, FastPathError> {
        assert!(self.mfes.is_empty() && self.oils.is_empty(), "adopt into a fresh mirror");
        self.ports.extend(a.ports.iter().copied());
        let mut canonical: HashMap<Vec<Leg>, u32> = HashMap::new();
        let mut refs: BTreeMap<u32, usize> = BTreeMap::new();
        let mut keys = Vec::new();
        for (key, mut v) in a.mfes {
            if v.oil != OIL_EMPTY {
                let Some(legs) = a.oils.get(&v.oil) else {
                    self.fp.remove_mfe(&key)?;
                    continue;
                };
                let id = *canonical.entry(legs.clone()).or_insert(v.oil);
                if id != v.oil {
                    v.oil = id;
                    self.fp.set_mfe(key, v)?;
                }
                *refs.entry(id).or_default() += 1;
            }
            let legs = a.oils.get(&v.oil).cloned().unwrap_or_default();
            self.next_slot = self.next_slot.max(v.stats + 1);
            let counted = legs.iter().map(|l| l.ifindex).collect();
            self.count_hops(&legs, true);
            let origin = Origin::of(v.flags);
            let m = InstalledMfe { iif: v.iif, legs, oil: v.oil, slot: v.stats, counted, origin };
            self.mfes.insert(key, m);
            keys.push(key);
        }
        let used_slots: BTreeSet<u32> = self.mfes.values().map(|m| m.slot).collect();
        self.free_slots = (0..self.next_slot).filter(|s| !used_slots.contains(s)).collect();
        let max_id = a.oils.keys().copied().max().unwrap_or(OIL_EMPTY);
        self.next_oil_id = self.next_oil_id.max(max_id + 1);
        for (id, legs) in &a.oils {
            let Some(&n) = refs.get(id) else { continue };
            for l in legs.iter().flat_map(Leg::leases) {
                let alive = a.leases.get(&l).copied().unwrap_or(false);
                let s = self.leases.entry(l).or_insert(LeaseState { alive, refs: 0 });
                s.refs += 1;
            }
            self.oils.insert(legs.clone(), InternedOil { id: *id, refs: n });
            self.oil_ids.insert(*id, legs.clone());
        }
        // Unnamed lists (a merged duplicate was named until just now) are retired like any
        // other; a lease only they name is dead to the mirror, recycled once they are gone.
        for (id, legs) in a.oils.into_iter().filter(|(id, _)| !refs.contains_key(id)) {
            for l in legs.iter().flat_map(Leg::leases) {
                self.leases.entry(l).or_insert(LeaseState { alive: false, refs: 0 }).refs += 1;
            }
            let ticket = self.fp.grace_ticket();
            self.retired.push_back(RetiredOil { id, legs, ticket });
        }
        let retired: BTreeSet<u32> = self.retired.iter().map(|r| r.id).collect();
        self.free_oil_ids = (OIL_EMPTY + 1..self.next_oil_id)
            .filter(|id| !self.oil_ids.contains_key(id) && !retired.contains(id))
            .collect();
        self.leases.remove(&LEASE_STATIC);
        self.dead_leases =
            self.leases.iter().filter(|(_, l)| !l.alive).map(|(id, _)| *id).collect();
        let max_lease = self.leases.keys().copied().max().unwrap_or(LEASE_STATIC);
        self.next_lease = max_lease + 1;
        self.free_leases =
            (LEASE_STATIC + 1..self.next_lease).filter(|l| !self.leases.contains_key(l)).collect();
        self.reclaim()?;
        Ok(keys)
    }

    fn value(&self, m: &InstalledMfe) -> MfeValue {
        self.mfe_value(m.iif, m.oil, m.slot, &m.legs, m.origin)
    }

    fn mfe_value(&self, iif: u32, oil: u32, slot: u32, legs: &[Leg], origin: Origin) -> MfeValue {
        let hops = if has_hops(legs) { MFE_F_HOPS } else { 0 };
        let flags = hops | origin.flags();
        // One copy without next hop: the ingress program sends it itself.
        let single = match legs {
            [only] if hops == 0 => only.ifindex,
            _ => 0,
        };
        MfeValue { min_mtu: self.min_mtu(legs), flags, single, ..MfeValue::new(iif, oil, slot) }
    }

    /// Installs a static MFE: every outgoing interface is kept by [`LEASE_STATIC`].
    pub fn install_static(&mut self, key: Sg, iif: u32, oifs: &[u32]) -> Result<(), FastPathError> {
        self.install_fixed(key, iif, oifs, Origin::Static)
    }

    /// Installs an entry followed from the kernel's table: like a static one, and marked so
    /// that the programs leave to the kernel what they do not forward (with `local`, also
    /// what a socket of this host may receive).
    pub fn install_kernel(
        &mut self,
        key: Sg,
        iif: u32,
        oifs: &[u32],
        local: bool,
    ) -> Result<(), FastPathError> {
        self.install_fixed(key, iif, oifs, Origin::Kernel { local })
    }

    /// An entry outside the MGM core: its interfaces are kept by [`LEASE_STATIC`].
    fn install_fixed(
        &mut self,
        key: Sg,
        iif: u32,
        oifs: &[u32],
        origin: Origin,
    ) -> Result<(), FastPathError> {
        let oifs: Vec<Oif> =
            oifs.iter().map(|&o| Oif::new(o, key.family().any(), vec![LEASE_STATIC])).collect();
        self.install_as(key, iif, &oifs, origin)
    }

    /// Installs or replaces the MFE for `key`. `oifs` may come in any order; the same
    /// (interface, next hop) listed twice gets the union of its leases; the IIF is dropped (a
    /// packet never goes back out of the interface it came in on). Without next hops the
    /// copies are an XDP broadcast; with one, every copy is made by the TC program.
    pub fn install(&mut self, key: Sg, iif: u32, oifs: &[Oif]) -> Result<(), FastPathError> {
        self.install_as(key, iif, oifs, Origin::Core)
    }

    fn install_as(
        &mut self,
        key: Sg,
        iif: u32,
        oifs: &[Oif],
        origin: Origin,
    ) -> Result<(), FastPathError> {
        if Family::of(key.source) != key.family() {
            return Err(FastPathError::Family(key.source, key.group));
        }
        let mut merged: BTreeMap<(u32, IpAddr), BTreeSet<u32>> = BTreeMap::new();
        for o in oifs.iter().filter(|o| o.ifindex != iif && !self.stops(o.ifindex, &key, iif)) {
            // The core gives an entry next hops of its own family only.
            if Family::of(o.nexthop) != key.family() {
                return Err(FastPathError::Family(key.source, key.group));
            }
            merged.entry((o.ifindex, o.nexthop)).or_default().extend(&o.leases);
        }
        for &i in merged.keys().map(|(i, _)| i).chain(std::iter::once(&iif)) {
            if !self.ports.contains_key(&i) {
                return Err(FastPathError::UnknownPort(i));
            }
        }
        let hops = merged.keys().any(|(_, nh)| !nh.is_unspecified());
        let max = if hops { MAX_HOPS } else { MAX_OIL_PORTS as usize };
        if merged.len() > max {
            return Err(FastPathError::OilTooLong(merged.len()));
        }
        let mut legs = Vec::with_capacity(merged.len());
        for ((ifindex, nexthop), leases) in merged {
            if leases.len() > LEG_LEASES {
                return Err(FastPathError::TooManyLeases(ifindex));
            }
            let mut v = LegValue::default();
            for (slot, l) in v.leases.iter_mut().zip(&leases) {
                if *l != LEASE_STATIC && !self.leases.contains_key(l) {
                    return Err(FastPathError::UnknownLease(*l));
                }
                *slot = *l;
            }
            let mac = if nexthop.is_unspecified() {
                [0; 6]
            } else {
                self.neighbours.get(&(ifindex, nexthop)).copied().unwrap_or([0; 6])
            };
            legs.push(Leg { ifindex, nexthop, mac, leases: v });
        }
        self.install_legs(key, iif, legs, origin)
    }

    fn install_legs(
        &mut self,
        key: Sg,
        iif: u32,
        legs: Vec<Leg>,
        origin: Origin,
    ) -> Result<(), FastPathError> {
        let old = self.mfes.get(&key).cloned();
        if old.as_ref().is_some_and(|o| o.iif == iif && o.legs == legs && o.origin == origin) {
            return Ok(());
        }
        let slot = match &old {
            Some(o) => o.slot,
            None => self.alloc_slot()?,
        };
        let oil = match self.acquire_oil(&legs) {
            Ok(id) => id,
            Err(e) => {
                if old.is_none() {
                    self.free_slots.push(slot);
                }
                return Err(e);
            }
        };
        if old.is_none() {
            // A reused slot still holds the previous MFE's counters.
            self.fp.clear_mfe_stats(slot)?;
        }
        let value = self.mfe_value(iif, oil, slot, &legs, origin);
        if let Err(e) = self.fp.set_mfe(key, value) {
            self.release_oil(oil)?;
            if old.is_none() {
                self.free_slots.push(slot);
            }
            return Err(e);
        }
        if let Some(o) = &old {
            self.release_oil(o.oil)?;
        }
        if let Some(o) = &old {
            self.count_hops(&o.legs, false);
        }
        self.count_hops(&legs, true);
        // A new MFE has forwarded nothing under another list: nothing to carry over.
        if let Some(o) = &old
            && let Err(e) = self.rebase(o, &legs)
        {
            // Forwarding is in place; only this MFE's copy counts may be off from here.
            tracing::warn!(error = %e, "copy counters of an outgoing list not carried over");
        }
        let mut counted = old.map(|o| o.counted).unwrap_or_default();
        counted.extend(legs.iter().map(|l| l.ifindex));
        self.mfes.insert(key, InstalledMfe { iif, legs, oil, slot, counted, origin });
        Ok(())
    }

    /// Removes the MFE for `key`; returns whether it existed.
    pub fn remove(&mut self, key: &Sg) -> Result<bool, FastPathError> {
        let Some(m) = self.mfes.get(key).cloned() else {
            return Ok(false);
        };
        self.fp.remove_mfe(key)?;
        self.mfes.remove(key);
        self.count_hops(&m.legs, false);
        self.release_oil(m.oil)?;
        // The next MFE in this slot starts from zero on every interface.
        for &i in &m.counted {
            self.fp.clear_oif_stats(m.slot, i)?;
        }
        self.free_slots.push(m.slot);
        Ok(true)
    }

    /// Counters of each current outgoing interface of `key`.
    pub fn oif_stats(&self, key: &Sg) -> Result<Vec<(u32, OifStats)>, FastPathError> {
        let Some(m) = self.mfes.get(key) else { return Ok(Vec::new()) };
        let (packets, bytes) = self.fp.mfe_stats(m.slot)?.forwarded();
        // Every interface of the list gets one XDP copy per packet, or none (TC path).
        let n = u64::from(!has_hops(&m.legs));
        m.legs
            .iter()
            .map(|l| {
                let mut s = self.fp.oif_stats(m.slot, l.ifindex)?;
                let b = self.fp.oif_base(m.slot, l.ifindex)?;
                s.out_packets =
                    s.out_packets.wrapping_add(b.packets).wrapping_add(packets.wrapping_mul(n));
                s.out_bytes = s.out_bytes.wrapping_add(b.bytes).wrapping_add(bytes.wrapping_mul(n));
                Ok((l.ifindex, s))
            })
            .collect()
    }

    /// Sets each interface's copy count right when MFE `old` gets the list `new`: an
    /// interface that joins the list counts from zero (as a new row of the MFE's statistics);
    /// one that stays but changes path (XDP broadcast ↔ TC copies per next hop) goes on from
    /// where it was, the forwarded count times the change in XDP copies per packet moving
    /// into its base. One that leaves needs nothing: it is no longer reported. A packet in
    /// flight during the change may be counted on the old list's side.
    fn rebase(&mut self, old: &InstalledMfe, new: &[Leg]) -> Result<(), FastPathError> {
        let slot = old.slot;
        let mut forwarded = None;
        for i in new.iter().map(|l| l.ifindex) {
            let (was, is) = (xdp_copies(&old.legs, i), xdp_copies(new, i));
            let joins = !old.legs.iter().any(|l| l.ifindex == i);
            if joins && old.counted.contains(&i) {
                // Back in the list: what it counted before is not this row's.
                self.fp.clear_oif_stats(slot, i)?;
            }
            if !joins && was == is || joins && is == 0 {
                continue;
            }
            let (packets, bytes) = match forwarded {
                Some(f) => f,
                None => *forwarded.insert(self.fp.mfe_stats(slot)?.forwarded()),
            };
            if (packets, bytes) == (0, 0) {
                // Nothing forwarded yet: the base stays 0.
                continue;
            }
            // Wrapping: "negative" when the interface gains XDP copies.
            let d = was.wrapping_sub(is);
            let mut b = if joins { OifBase::default() } else { self.fp.oif_base(slot, i)? };
            b.packets = b.packets.wrapping_add(packets.wrapping_mul(d));
            b.bytes = b.bytes.wrapping_add(bytes.wrapping_mul(d));
            self.fp.set_oif_base(slot, i, b)?;
        }
        Ok(())
    }

    pub fn get(&self, key: &Sg) -> Option<&InstalledMfe> {
        self.mfes.get(key)
    }

    /// The smallest MTU of `key`'s outgoing interfaces, if it is installed and any is known.
    pub fn path_mtu(&self, key: &Sg) -> Option<u32> {
        Some(self.min_mtu(&self.mfes.get(key)?.legs)).filter(|&m| m != 0)
    }

    pub fn mfes(&self) -> impl Iterator<Item = (&Sg, &InstalledMfe)> {
        self.mfes.iter()
    }

    pub fn stats(&self, key: &Sg) -> Result<Option<MfeStats>, FastPathError> {
        match self.mfes.get(key) {
            Some(m) => self.fp.mfe_stats(m.slot).map(Some),
            None => Ok(None),
        }
    }

    /// Number of distinct outgoing lists currently in the fast path.
    pub fn oil_count(&self) -> usize {
        self.oils.len()
    }

    fn alloc_slot(&mut self) -> Result<u32, FastPathError> {
        if let Some(s) = self.free_slots.pop() {
            return Ok(s);
        }
        let cap = self.fp.mfe_capacity();
        if self.next_slot >= cap {
            return Err(FastPathError::Full { what: "MFE table", capacity: cap });
        }
        self.next_slot += 1;
        Ok(self.next_slot - 1)
    }

    fn acquire_oil(&mut self, legs: &[Leg]) -> Result<u32, FastPathError> {
        if legs.is_empty() {
            return Ok(OIL_EMPTY);
        }
        if let Some(o) = self.oils.get_mut(legs) {
            o.refs += 1;
            return Ok(o.id);
        }
        if self.free_oil_ids.is_empty() && self.next_oil_id > MAX_OILS && !self.retired.is_empty() {
            // Only retired ids left: wait for them here rather than refuse the list.
            self.fp.wait_grace()?;
            self.reclaim()?;
        }
        let id = match self.free_oil_ids.pop() {
            Some(id) => id,
            None if self.next_oil_id <= MAX_OILS => {
                self.next_oil_id += 1;
                self.next_oil_id - 1
            }
            None => {
                return Err(FastPathError::Full { what: "OIL table", capacity: MAX_OILS });
            }
        };
        if let Err(e) = self.fp.set_oil(id, legs) {
            self.free_oil_ids.push(id);
            return Err(e);
        }
        for l in legs.iter().flat_map(Leg::leases) {
            if let Some(s) = self.leases.get_mut(&l) {
                s.refs += 1;
            }
        }
        self.oils.insert(legs.to_vec(), InternedOil { id, refs: 1 });
        self.oil_ids.insert(id, legs.to_vec());
        Ok(id)
    }

    fn release_oil(&mut self, id: u32) -> Result<(), FastPathError> {
        if id == OIL_EMPTY {
            return Ok(());
        }
        let Some(legs) = self.oil_ids.get(&id) else {
            return Ok(());
        };
        let o = self.oils.get_mut(legs).expect("oil_ids and oils agree");
        o.refs -= 1;
        if o.refs == 0 {
            // The MFE that named it was rewritten or removed first; packets that read it
            // before may still be on their way through it.
            let legs = self.oil_ids.remove(&id).expect("present");
            self.oils.remove(&legs);
            let ticket = self.fp.grace_ticket();
            self.retired.push_back(RetiredOil { id, legs, ticket });
            self.reclaim()?;
        }
        Ok(())
    }

    /// Empties and frees the retired OILs whose grace period has ended; their leases may
    /// then be recycled.
    pub fn reclaim(&mut self) -> Result<(), FastPathError> {
        let done = self.fp.graces_done();
        while self.retired.front().is_some_and(|r| r.ticket <= done) {
            let r = self.retired.front().expect("checked");
            self.fp.remove_oil(r.id, &r.legs)?;
            let r = self.retired.pop_front().expect("checked");
            for l in r.legs.iter().flat_map(Leg::leases) {
                if let Some(s) = self.leases.get_mut(&l) {
                    s.refs -= 1;
                }
            }
            self.free_oil_ids.push(r.id);
        }
        Ok(())
    }

    /// How many unnamed OILs wait out a grace period.
    pub fn retired_oils(&self) -> usize {
        self.retired.len()
    }
}

mod leases;
mod ports;
#[cfg(test)]
mod tests;
