// SPDX-License-Identifier: MIT OR Apache-2.0
//! The fast-path mirror: turns "MFE (S,G) arrives on IIF and leaves on these OIFs" into BPF map
//! writes, in an order that never shows the data path a state nobody asked for.
//!
//! * [`FastPath`] is the small interface to the maps: the BPF implementation lives in
//!   [`crate::dataplane`]; the tests record writes with an in-memory one (`testing`).
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

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
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
            match refs.get(id) {
                Some(&n) => {
                    for l in legs.iter().flat_map(Leg::leases) {
                        let alive = a.leases.get(&l).copied().unwrap_or(false);
                        let s = self.leases.entry(l).or_insert(LeaseState { alive, refs: 0 });
                        s.refs += 1;
                    }
                    self.oils.insert(legs.clone(), InternedOil { id: *id, refs: n });
                    self.oil_ids.insert(*id, legs.clone());
                }
                None => self.fp.remove_oil(*id, legs)?,
            }
        }
        self.free_oil_ids =
            (OIL_EMPTY + 1..self.next_oil_id).filter(|id| !self.oil_ids.contains_key(id)).collect();
        self.leases.remove(&LEASE_STATIC);
        self.dead_leases =
            self.leases.iter().filter(|(_, l)| !l.alive).map(|(id, _)| *id).collect();
        let max_lease = self.leases.keys().copied().max().unwrap_or(LEASE_STATIC);
        self.next_lease = max_lease + 1;
        self.free_leases =
            (LEASE_STATIC + 1..self.next_lease).filter(|l| !self.leases.contains_key(l)).collect();
        Ok(keys)
    }

    /// Adopted leases still alive, with the interface each one keeps copies flowing to.
    pub fn live_leases(&self) -> BTreeMap<u32, u32> {
        let mut out = BTreeMap::new();
        for legs in self.oil_ids.values() {
            for l in legs {
                for id in l.leases() {
                    if self.leases.get(&id).is_some_and(|s| s.alive) {
                        out.insert(id, l.ifindex);
                    }
                }
            }
        }
        out
    }

    /// Makes `ifindex` usable as an outgoing interface (its MAC is the source of copies), or
    /// updates it (an MTU change).
    pub fn add_port(&mut self, ifindex: u32, port: PortValue) -> Result<(), FastPathError> {
        if self.ports.get(&ifindex) == Some(&port) {
            return Ok(());
        }
        self.fp.set_port(ifindex, port)?;
        self.ports.insert(ifindex, port);
        // MFEs sending there may have a new smallest MTU.
        let users: Vec<(Sg, InstalledMfe)> = self
            .mfes
            .iter()
            .filter(|(_, m)| m.legs.iter().any(|l| l.ifindex == ifindex))
            .map(|(k, m)| (*k, m.clone()))
            .collect();
        for (k, m) in users {
            self.fp.set_mfe(k, self.value(&m))?;
        }
        Ok(())
    }

    /// Draws (or, with `None`, removes) a scope boundary at `ifindex`. Installed entries
    /// that cross it stop doing so at once; an entry the boundary no longer stops gets its
    /// interface back at its next install (the owner of the entry reinstalls it).
    pub fn set_boundary(
        &mut self,
        ifindex: u32,
        scope: Option<Scope>,
    ) -> Result<(), FastPathError> {
        match scope {
            Some(s) => self.boundaries.insert(ifindex, s),
            None => self.boundaries.remove(&ifindex),
        };
        let crossing: Vec<(Sg, InstalledMfe)> = self
            .mfes
            .iter()
            .filter(|(k, m)| m.legs.iter().any(|l| self.stops(l.ifindex, k, m.iif)))
            .map(|(k, m)| (*k, m.clone()))
            .collect();
        for (k, m) in crossing {
            let legs = m.legs.iter().filter(|l| !self.stops(l.ifindex, &k, m.iif)).cloned();
            self.install_legs(k, m.iif, legs.collect(), m.origin)?;
        }
        Ok(())
    }

    /// Whether a boundary keeps `key`'s packets arriving on `iif` from leaving on `oif`: one
    /// at either interface at the group's scope or above.
    fn stops(&self, oif: u32, key: &Sg, iif: u32) -> bool {
        [iif, oif].iter().any(|i| self.boundaries.get(i).is_some_and(|b| b.stops(key.group)))
    }

    /// The smallest known MTU among `legs`' interfaces (0: none known).
    fn min_mtu(&self, legs: &[Leg]) -> u32 {
        legs.iter()
            .filter_map(|l| self.ports.get(&l.ifindex))
            .map(|p| u32::from(p.mtu))
            .filter(|&m| m != 0)
            .min()
            .unwrap_or(0)
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

    /// The next hops installed MFEs send to: the neighbours to keep resolved.
    pub fn wanted_neighbours(&self) -> BTreeSet<(u32, IpAddr)> {
        self.hop_users.keys().copied().collect()
    }

    /// Whether an installed MFE sends to this next hop.
    pub fn wants_neighbour(&self, ifindex: u32, ip: IpAddr) -> bool {
        self.hop_users.contains_key(&(ifindex, ip))
    }

    /// The next hops MFEs send to whose MAC is not known yet.
    pub fn unresolved_neighbours(&self) -> Vec<(u32, IpAddr)> {
        self.hop_users.keys().filter(|k| !self.neighbours.contains_key(k)).copied().collect()
    }

    /// Whether some next hop an MFE sends to has no known MAC yet.
    pub fn has_unresolved_neighbours(&self) -> bool {
        self.hop_users.keys().any(|k| !self.neighbours.contains_key(k))
    }

    /// Keeps `hop_users` in step as MFEs with next-hop legs come (`add`) and go.
    fn count_hops(&mut self, legs: &[Leg], add: bool) {
        for l in legs.iter().filter(|l| !l.nexthop.is_unspecified()) {
            let k = (l.ifindex, l.nexthop);
            if add {
                *self.hop_users.entry(k).or_default() += 1;
            } else if let Some(n) = self.hop_users.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    self.hop_users.remove(&k);
                }
            }
        }
    }

    /// A next hop's MAC (new or changed): the MFEs sending there get lists with it, each in
    /// one MFE write as for any list change.
    pub fn set_neighbour(
        &mut self,
        ifindex: u32,
        ip: IpAddr,
        mac: [u8; 6],
    ) -> Result<(), FastPathError> {
        if self.neighbours.insert((ifindex, ip), mac) == Some(mac) {
            return Ok(());
        }
        let hop = (ifindex, ip);
        let users: Vec<(Sg, InstalledMfe)> = self
            .mfes
            .iter()
            .filter(|(_, m)| m.legs.iter().any(|l| (l.ifindex, l.nexthop) == hop && l.mac != mac))
            .map(|(k, m)| (*k, m.clone()))
            .collect();
        for (k, m) in users {
            let legs: Vec<Leg> = m
                .legs
                .iter()
                .map(|l| if (l.ifindex, l.nexthop) == hop { Leg { mac, ..*l } } else { *l })
                .collect();
            self.install_legs(k, m.iif, legs, m.origin)?;
        }
        Ok(())
    }

    /// Removes a port; refused while an MFE still uses it as IIF or OIF.
    pub fn remove_port(&mut self, ifindex: u32) -> Result<(), FastPathError> {
        let users = self
            .mfes
            .values()
            .filter(|m| m.iif == ifindex || m.legs.iter().any(|l| l.ifindex == ifindex))
            .count();
        if users > 0 {
            return Err(FastPathError::PortInUse(ifindex, users));
        }
        self.fp.remove_port(ifindex)?;
        self.ports.remove(&ifindex);
        Ok(())
    }

    pub fn ports(&self) -> impl Iterator<Item = (u32, &PortValue)> {
        self.ports.iter().map(|(i, p)| (*i, p))
    }

    /// Opens a new lease (alive) and returns its id.
    pub fn open_lease(&mut self) -> Result<u32, FastPathError> {
        let id = match self.free_leases.pop() {
            Some(id) => id,
            None if self.next_lease < MAX_LEASES => {
                self.next_lease += 1;
                self.next_lease - 1
            }
            None => return Err(FastPathError::Full { what: "lease table", capacity: MAX_LEASES }),
        };
        if let Err(e) = self.fp.set_lease(id, true) {
            self.free_leases.push(id);
            return Err(e);
        }
        self.leases.insert(id, LeaseState { alive: true, refs: 0 });
        Ok(id)
    }

    /// Releases a lease: from the moment this returns no copy justified only by it leaves.
    pub fn kill_lease(&mut self, id: u32) -> Result<(), FastPathError> {
        let Some(l) = self.leases.get_mut(&id) else {
            return Err(FastPathError::UnknownLease(id));
        };
        self.fp.set_lease(id, false)?;
        l.alive = false;
        self.dead_leases.insert(id);
        Ok(())
    }

    /// Recycles dead leases no OIL names. Call only when no queued install names them either.
    pub fn reap_leases(&mut self) {
        let leases = &mut self.leases;
        let free = &mut self.free_leases;
        self.dead_leases.retain(|id| {
            let unnamed = leases.get(id).is_none_or(|l| l.refs == 0);
            if unnamed && leases.remove(id).is_some() {
                free.push(*id);
            }
            !unnamed
        });
    }

    /// (alive, released but still named by some OIL) lease counts.
    pub fn lease_counts(&self) -> (usize, usize) {
        let alive = self.leases.values().filter(|l| l.alive).count();
        (alive, self.leases.len() - alive)
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
            // The MFE that referenced it was rewritten or removed first.
            self.fp.remove_oil(id, legs)?;
            let legs = self.oil_ids.remove(&id).expect("present");
            for l in legs.iter().flat_map(Leg::leases) {
                if let Some(s) = self.leases.get_mut(&l) {
                    s.refs -= 1;
                }
            }
            self.oils.remove(&legs);
            self.free_oil_ids.push(id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{MemFastPath, Write};

    fn o(ifindex: u32, leases: Vec<u32>) -> Oif {
        Oif::new(ifindex, Ipv4Addr::UNSPECIFIED, leases)
    }

    /// The map value of a static MFE.
    fn static_value(iif: u32, oil: u32, slot: u32) -> MfeValue {
        MfeValue { flags: MFE_F_STATIC, ..MfeValue::new(iif, oil, slot) }
    }

    fn key(s: u8, g: u8) -> Sg {
        Sg::v4([10, 0, 0, s], [239, 1, 1, g])
    }

    fn mirror(ports: &[u32]) -> Mirror<MemFastPath> {
        let mut m = Mirror::new(MemFastPath::with_capacity(8));
        for &p in ports {
            m.add_port(p, PortValue::new([2, 0, 0, 0, 0, p as u8], 0)).unwrap();
        }
        m.fast_path_mut().log.clear();
        m
    }

    /// Copies out per interface of `key`, as the daemon reports them.
    fn outs(m: &Mirror<MemFastPath>, k: &Sg) -> Vec<(u32, u64, u64)> {
        m.oif_stats(k).unwrap().iter().map(|(i, s)| (*i, s.out_packets, s.out_bytes)).collect()
    }

    /// What the programs count for `n` packets of 100 bytes matched by the MFE in `slot`:
    /// the ingress program once per packet, the TC program each copy it sends.
    fn forward(m: &mut Mirror<MemFastPath>, k: &Sg, n: u64) {
        let i = m.get(k).unwrap().clone();
        let fp = m.fast_path_mut();
        let s = fp.stats.entry(i.slot).or_default();
        s.packets += n;
        s.bytes += 100 * n;
        if has_hops(&i.legs) {
            for l in &i.legs {
                let o = fp.oif_stats.entry((i.slot, l.ifindex)).or_default();
                o.out_packets = o.out_packets.wrapping_add(n);
                o.out_bytes = o.out_bytes.wrapping_add(100 * n);
            }
        }
    }

    #[test]
    fn scope_boundaries_keep_groups_on_their_side_both_ways() {
        let mut m = mirror(&[1, 2, 3]);
        let site = |g: &str| {
            Sg::new("2001:db8::1".parse::<IpAddr>().unwrap(), g.parse::<IpAddr>().unwrap())
        };
        let (s5, s8, s14) = (site("ff05::1"), site("ff08::1"), site("ff0e::1"));
        let v4_local = Sg::v4([10, 0, 0, 1], [239, 255, 0, 1]);
        for k in [s5, s8, s14, v4_local] {
            m.install_static(k, 1, &[2, 3]).unwrap();
        }
        // Drawn after the entries: the ones it stops lose the interface at once.
        m.set_boundary(3, Some("site".parse().unwrap())).unwrap();
        assert_eq!(m.get(&s5).unwrap().oifs(), [2]);
        assert_eq!(m.get(&v4_local).unwrap().oifs(), [2]);
        assert_eq!(m.get(&s8).unwrap().oifs(), [2, 3]);
        assert_eq!(m.get(&s14).unwrap().oifs(), [2, 3]);
        // Installed later: the same.
        m.install_static(s5, 1, &[2, 3]).unwrap();
        assert_eq!(m.get(&s5).unwrap().oifs(), [2]);
        // Arriving on the boundary: forwarded nowhere (a negative entry), beyond its scope as usual.
        m.install_static(s5, 3, &[1, 2]).unwrap();
        assert_eq!(m.get(&s5).unwrap().oifs(), Vec::<u32>::new());
        assert_eq!(m.get(&s5).unwrap().oil, OIL_EMPTY);
        m.install_static(s8, 3, &[1, 2]).unwrap();
        assert_eq!(m.get(&s8).unwrap().oifs(), [1, 2]);
        // A wider boundary stops organisation-local too; removed, the next install crosses.
        m.set_boundary(3, Some("8".parse().unwrap())).unwrap();
        assert_eq!(m.get(&s8).unwrap().oifs(), Vec::<u32>::new());
        assert_eq!(m.get(&s14).unwrap().oifs(), [2, 3]);
        m.set_boundary(3, None).unwrap();
        m.install_static(s5, 1, &[2, 3]).unwrap();
        assert_eq!(m.get(&s5).unwrap().oifs(), [2, 3]);
    }

    #[test]
    fn copy_counts_go_on_across_list_and_path_changes() {
        let mut m = mirror(&[1, 2, 3, 4]);
        let k = key(1, 1);
        m.install_static(k, 1, &[2, 3]).unwrap();
        forward(&mut m, &k, 10);
        // TTL-expired packets are no copies.
        let slot = m.get(&k).unwrap().slot;
        let s = m.fast_path_mut().stats.get_mut(&slot).unwrap();
        s.packets += 5;
        s.bytes += 500;
        s.ttl_expired += 5;
        s.ttl_expired_bytes += 500;
        assert_eq!(outs(&m, &k), vec![(2, 10, 1000), (3, 10, 1000)]);
        // A copy the egress program dropped is taken back (wrapping) from that interface.
        let d = m.fast_path_mut().oif_stats.entry((slot, 3)).or_default();
        d.out_packets = d.out_packets.wrapping_sub(1);
        d.out_bytes = d.out_bytes.wrapping_sub(100);
        d.out_discards += 1;
        assert_eq!(outs(&m, &k), vec![(2, 10, 1000), (3, 9, 900)]);

        // 4 joins from zero, 2 leaves; back in the list, 2 is a new row from zero too (the
        // discard it counted before is gone with it).
        m.install_static(k, 1, &[3, 4]).unwrap();
        forward(&mut m, &k, 7);
        assert_eq!(outs(&m, &k), vec![(3, 16, 1600), (4, 7, 700)]);
        let d = m.fast_path_mut().oif_stats.entry((slot, 2)).or_default();
        d.out_discards += 1;
        m.install_static(k, 1, &[2, 3, 4]).unwrap();
        forward(&mut m, &k, 1);
        assert_eq!(outs(&m, &k), vec![(2, 1, 100), (3, 17, 1700), (4, 8, 800)]);
        assert_eq!(m.oif_stats(&k).unwrap()[0].1.out_discards, 0);

        // A next hop moves the MFE to the TC path (which counts each copy), and back: the
        // counts go on.
        let nh = Ipv4Addr::new(10, 0, 0, 9);
        let oifs = [Oif::new(2, nh, vec![LEASE_STATIC]), o(3, vec![LEASE_STATIC])];
        m.install_as(k, 1, &oifs, Origin::Static).unwrap();
        forward(&mut m, &k, 4);
        assert_eq!(outs(&m, &k), vec![(2, 5, 500), (3, 21, 2100)]);
        m.install_static(k, 1, &[2, 3]).unwrap();
        forward(&mut m, &k, 2);
        assert_eq!(outs(&m, &k), vec![(2, 7, 700), (3, 23, 2300)]);

        // Removed, the slot's next MFE starts from zero.
        assert!(m.remove(&k).unwrap());
        let k2 = key(2, 1);
        m.install_static(k2, 1, &[2]).unwrap();
        assert_eq!(m.get(&k2).unwrap().slot, slot);
        assert_eq!(outs(&m, &k2), vec![(2, 0, 0)]);
    }

    #[test]
    fn install_writes_oil_before_mfe() {
        let mut m = mirror(&[1, 2, 3]);
        m.install_static(key(1, 1), 1, &[3, 2]).unwrap();
        let log = &m.fast_path().log;
        assert_eq!(log[0], Write::SetOil(1, vec![2, 3]));
        assert_eq!(log[1], Write::ClearStats(0));
        assert_eq!(log[2], Write::SetMfe(key(1, 1), static_value(1, 1, 0)));
    }

    #[test]
    fn iif_is_never_in_the_oil_and_duplicates_fold() {
        let mut m = mirror(&[1, 2]);
        m.install_static(key(1, 1), 1, &[1, 2, 2]).unwrap();
        assert_eq!(m.get(&key(1, 1)).unwrap().oifs(), vec![2]);
    }

    #[test]
    fn identical_oils_are_shared_and_freed_with_the_last_user() {
        let mut m = mirror(&[1, 2, 3]);
        m.install_static(key(1, 1), 1, &[2, 3]).unwrap();
        m.install_static(key(2, 1), 1, &[3, 2]).unwrap();
        assert_eq!(m.oil_count(), 1);
        assert_eq!(m.get(&key(1, 1)).unwrap().oil, m.get(&key(2, 1)).unwrap().oil);
        assert!(m.remove(&key(1, 1)).unwrap());
        assert_eq!(m.fast_path().oils.len(), 1);
        assert!(m.remove(&key(2, 1)).unwrap());
        assert!(m.fast_path().oils.is_empty());
        // The MFE went before its OIL.
        let log = &m.fast_path().log;
        let n = log.len();
        assert_eq!(log[n - 2], Write::RemoveMfe(key(2, 1)));
        assert_eq!(log[n - 1], Write::RemoveOil(1));
    }

    #[test]
    fn changing_an_oil_swaps_ids_with_one_mfe_write() {
        let mut m = mirror(&[1, 2, 3]);
        m.install_static(key(1, 1), 1, &[2]).unwrap();
        m.fast_path_mut().log.clear();
        m.install_static(key(1, 1), 1, &[2, 3]).unwrap();
        let log = m.fast_path().log.clone();
        assert_eq!(
            log,
            vec![
                Write::SetOil(2, vec![2, 3]),
                Write::SetMfe(key(1, 1), static_value(1, 2, 0)),
                Write::RemoveOil(1),
            ]
        );
    }

    #[test]
    fn reinstalling_the_same_mfe_writes_nothing() {
        let mut m = mirror(&[1, 2]);
        m.install_static(key(1, 1), 1, &[2]).unwrap();
        m.fast_path_mut().log.clear();
        m.install_static(key(1, 1), 1, &[2]).unwrap();
        assert!(m.fast_path().log.is_empty());
    }

    #[test]
    fn empty_oil_is_a_negative_cache_entry() {
        let mut m = mirror(&[1]);
        m.install_static(key(1, 1), 1, &[]).unwrap();
        assert_eq!(m.fast_path().mfes[&key(1, 1)].oil, OIL_EMPTY);
        assert!(m.fast_path().oils.is_empty());
    }

    #[test]
    fn unknown_ports_are_refused_without_writes() {
        let mut m = mirror(&[1, 2]);
        assert!(matches!(m.install_static(key(1, 1), 1, &[9]), Err(FastPathError::UnknownPort(9))));
        assert!(matches!(m.install_static(key(1, 1), 9, &[2]), Err(FastPathError::UnknownPort(9))));
        assert!(m.fast_path().log.is_empty());
    }

    #[test]
    fn capacity_is_enforced_and_slots_are_reused_after_clearing() {
        let mut m = Mirror::new(MemFastPath::with_capacity(2));
        m.add_port(1, PortValue::new([0; 6], 0)).unwrap();
        m.add_port(2, PortValue::new([0; 6], 0)).unwrap();
        m.install_static(key(1, 1), 1, &[2]).unwrap();
        m.install_static(key(2, 1), 1, &[2]).unwrap();
        assert!(matches!(m.install_static(key(3, 1), 1, &[2]), Err(FastPathError::Full { .. })));
        assert!(!m.fast_path().mfes.contains_key(&key(3, 1)));
        m.fast_path_mut().stats.insert(0, MfeStats { packets: 7, ..Default::default() });
        m.remove(&key(1, 1)).unwrap();
        m.install_static(key(3, 1), 1, &[2]).unwrap();
        assert_eq!(m.get(&key(3, 1)).unwrap().slot, 0);
        assert_eq!(m.stats(&key(3, 1)).unwrap().unwrap().packets, 0);
    }

    #[test]
    fn ports_in_use_cannot_be_removed() {
        let mut m = mirror(&[1, 2]);
        m.install_static(key(1, 1), 1, &[2]).unwrap();
        assert!(matches!(m.remove_port(2), Err(FastPathError::PortInUse(2, 1))));
        assert!(matches!(m.remove_port(1), Err(FastPathError::PortInUse(1, 1))));
        m.remove(&key(1, 1)).unwrap();
        m.remove_port(2).unwrap();
    }

    #[test]
    fn removing_an_absent_mfe_is_a_no_op() {
        let mut m = mirror(&[1]);
        assert!(!m.remove(&key(1, 1)).unwrap());
        assert!(m.fast_path().log.is_empty());
    }

    #[test]
    fn killing_a_lease_stops_every_copy_it_kept_with_one_write() {
        let mut m = Mirror::new(MemFastPath::with_capacity(2000));
        for p in 1..=3 {
            m.add_port(p, PortValue::new([0; 6], 0)).unwrap();
        }
        let pim2 = m.open_lease().unwrap();
        let pim3 = m.open_lease().unwrap();
        for s in 0..1000u32 {
            let k = Sg::v4(s.to_be_bytes(), [239, 1, 1, 1]);
            m.install(k, 1, &[o(2, vec![pim2]), o(3, vec![pim3])]).unwrap();
        }
        assert_eq!(m.oil_count(), 1, "one shared list");
        m.fast_path_mut().log.clear();
        m.kill_lease(pim2).unwrap();
        assert_eq!(m.fast_path().log, vec![Write::SetLease(pim2, false)]);
        for s in 0..1000u32 {
            let k = Sg::v4(s.to_be_bytes(), [239, 1, 1, 1]);
            assert!(!m.fast_path().forwards(&k, 2), "copy to 2 after the release");
            assert!(m.fast_path().forwards(&k, 3), "the other interface keeps flowing");
        }
    }

    #[test]
    fn a_leg_kept_by_two_owners_survives_one_release() {
        let mut m = mirror(&[1, 2]);
        let (pim, igmp) = (m.open_lease().unwrap(), m.open_lease().unwrap());
        m.install(key(1, 1), 1, &[o(2, vec![pim]), o(2, vec![igmp])]).unwrap();
        assert_eq!(m.get(&key(1, 1)).unwrap().oifs(), vec![2], "one copy per interface");
        m.kill_lease(pim).unwrap();
        assert!(m.fast_path().forwards(&key(1, 1), 2));
        m.kill_lease(igmp).unwrap();
        assert!(!m.fast_path().forwards(&key(1, 1), 2));
    }

    #[test]
    fn a_dead_lease_is_reused_only_once_no_oil_names_it() {
        let mut m = mirror(&[1, 2]);
        let l = m.open_lease().unwrap();
        m.install(key(1, 1), 1, &[o(2, vec![l])]).unwrap();
        m.kill_lease(l).unwrap();
        m.reap_leases();
        assert_ne!(m.open_lease().unwrap(), l, "still named by an OIL: not reusable");
        assert_eq!(m.lease_counts(), (1, 1));
        m.install(key(1, 1), 1, &[]).unwrap();
        m.reap_leases();
        assert_eq!(m.lease_counts(), (1, 0));
        let again = m.open_lease().unwrap();
        assert_eq!(again, l, "recycled");
        assert!(m.fast_path().leases[&l], "and alive again");
    }

    #[test]
    fn statics_forward_without_a_lease_and_unknown_leases_are_refused() {
        let mut m = mirror(&[1, 2]);
        m.install_static(key(1, 1), 1, &[2]).unwrap();
        assert!(m.fast_path().forwards(&key(1, 1), 2));
        assert!(matches!(
            m.install(key(2, 1), 1, &[o(2, vec![77])]),
            Err(FastPathError::UnknownLease(77))
        ));
        let many: Vec<Oif> = (0..5).map(|_| o(2, vec![m.open_lease().unwrap()])).collect();
        assert!(matches!(m.install(key(2, 1), 1, &many), Err(FastPathError::TooManyLeases(2))));
    }

    /// What a BPF fast path would report after a restart, from the in-memory maps.
    fn pinned(fp: &MemFastPath) -> Adopted {
        let named: BTreeSet<u32> = fp
            .oils
            .values()
            .flatten()
            .flat_map(|l| l.leases().collect::<Vec<_>>())
            .filter(|&l| l != LEASE_STATIC)
            .collect();
        Adopted {
            ports: fp.ports.iter().map(|(i, p)| (*i, *p)).collect(),
            oils: fp.oils.clone(),
            mfes: fp.mfes.iter().map(|(k, v)| (*k, *v)).collect(),
            leases: named.into_iter().map(|l| (l, fp.leases[&l])).collect(),
        }
    }

    #[test]
    fn a_restarted_mirror_adopts_the_maps_without_rewriting_them() {
        let mut m = mirror(&[1, 2, 3]);
        let (a, b) = (m.open_lease().unwrap(), m.open_lease().unwrap());
        m.install(key(1, 1), 1, &[o(2, vec![a]), o(3, vec![b])]).unwrap();
        m.install(key(2, 1), 1, &[o(2, vec![a]), o(3, vec![b])]).unwrap();
        m.install(key(3, 1), 1, &[o(3, vec![b])]).unwrap();
        m.install_static(key(4, 1), 1, &[2]).unwrap();
        // A static negative entry: nothing but its mark tells it from an MGM one.
        m.install_static(key(6, 1), 1, &[]).unwrap();
        m.kill_lease(b).unwrap();
        // A list nobody references any more (a crash before it was emptied).
        m.fast_path_mut().oils.insert(40, vec![Leg::new(2, LegValue::default())]);
        let state = pinned(m.fast_path());

        let mut fresh = Mirror::new(MemFastPath::with_capacity(8));
        fresh.fast_path_mut().ports = m.fast_path().ports.clone();
        fresh.fast_path_mut().oils = m.fast_path().oils.clone();
        fresh.fast_path_mut().mfes = m.fast_path().mfes.clone();
        fresh.fast_path_mut().leases = m.fast_path().leases.clone();
        let keys = fresh.adopt(state).unwrap();
        assert_eq!(keys.len(), 5);
        let statics: Vec<Sg> =
            fresh.mfes().filter(|(_, m)| m.origin == Origin::Static).map(|(k, _)| *k).collect();
        assert_eq!(statics, vec![key(4, 1), key(6, 1)], "statics are told apart");
        assert_eq!(fresh.fast_path().log, vec![Write::RemoveOil(40)], "only the orphan list goes");
        assert_eq!(fresh.oil_count(), 3);
        assert_eq!(fresh.lease_counts(), (1, 1), "a alive, b released but named");
        assert!(fresh.fast_path().forwards(&key(1, 1), 2));
        assert!(!fresh.fast_path().forwards(&key(1, 1), 3));
        assert!(fresh.fast_path().forwards(&key(4, 1), 2), "the static entry");
        assert_eq!(fresh.live_leases(), BTreeMap::from([(a, 2)]));

        // Life goes on: new ids do not collide with adopted ones, and freeing works.
        let c = fresh.open_lease().unwrap();
        assert!(c != a && c != b);
        fresh.install(key(5, 1), 1, &[o(3, vec![c])]).unwrap();
        assert_ne!(fresh.get(&key(5, 1)).unwrap().slot, fresh.get(&key(1, 1)).unwrap().slot);
        for k in [1, 2, 3, 4, 5, 6] {
            assert!(fresh.remove(&key(k, 1)).unwrap());
        }
        assert!(fresh.fast_path().oils.is_empty() && fresh.fast_path().mfes.is_empty());
        fresh.reap_leases();
        assert_eq!(fresh.lease_counts(), (2, 0));
    }

    #[test]
    fn next_hops_get_a_leg_each_and_follow_their_neighbour() {
        let mut m = mirror(&[1, 2, 3]);
        let (a, b) = (m.open_lease().unwrap(), m.open_lease().unwrap());
        let nh = |s: &str| -> IpAddr { s.parse().unwrap() };
        let oifs = [
            Oif::new(2, nh("10.5.0.2"), vec![a]),
            Oif::new(2, nh("10.5.0.3"), vec![b]),
            Oif::new(3, Ipv4Addr::UNSPECIFIED, vec![a]),
        ];
        m.install(key(1, 1), 1, &oifs).unwrap();
        let mfe = m.get(&key(1, 1)).unwrap().clone();
        assert_eq!(mfe.legs.len(), 3, "two copies on interface 2, one on 3");
        assert_eq!(m.fast_path().mfes[&key(1, 1)].flags, MFE_F_HOPS, "made by the TC program");
        assert!(m.has_unresolved_neighbours());
        assert_eq!(
            m.wanted_neighbours(),
            BTreeSet::from([(2, nh("10.5.0.2")), (2, nh("10.5.0.3"))])
        );

        // A MAC appears: one new list, swapped in by one MFE write; the old list goes.
        m.fast_path_mut().log.clear();
        m.set_neighbour(2, nh("10.5.0.2"), [2, 0, 0, 0, 0, 2]).unwrap();
        let log = m.fast_path().log.clone();
        assert!(
            matches!(log.as_slice(), [Write::SetOil(..), Write::SetMfe(..), Write::RemoveOil(_)]),
            "{log:?}"
        );
        let legs = &m.get(&key(1, 1)).unwrap().legs;
        assert_eq!(legs.iter().filter(|l| l.mac == [2, 0, 0, 0, 0, 2]).count(), 1);
        m.fast_path_mut().log.clear();
        m.set_neighbour(2, nh("10.5.0.2"), [2, 0, 0, 0, 0, 2]).unwrap();
        assert!(m.fast_path().log.is_empty(), "an unchanged MAC writes nothing");
        assert!(m.has_unresolved_neighbours(), "10.5.0.3 still has no MAC");
        m.set_neighbour(2, nh("10.5.0.3"), [2, 0, 0, 0, 0, 3]).unwrap();
        assert!(!m.has_unresolved_neighbours());

        // Plain lists stay XDP broadcasts.
        m.install(key(2, 1), 1, &[o(3, vec![a])]).unwrap();
        assert_eq!(m.fast_path().mfes[&key(2, 1)].flags, 0);
        let too_many: Vec<Oif> = (0..=MAX_HOPS as u8)
            .map(|i| Oif::new(2, Ipv4Addr::new(10, 6, 0, i + 1), vec![a]))
            .collect();
        assert!(matches!(m.install(key(3, 1), 1, &too_many), Err(FastPathError::OilTooLong(_))));
        // The last MFE sending to next hops goes: nothing left to keep resolved.
        m.remove(&key(1, 1)).unwrap();
        assert!(m.wanted_neighbours().is_empty());
    }

    /// IPv6 next hops (link-local, as routing protocols give them) work as IPv4's; a next hop
    /// of the other family than the entry's is refused.
    #[test]
    fn ipv6_next_hops_get_a_leg_each_and_follow_their_neighbour() {
        let mut m = mirror(&[1, 2, 3]);
        let a = m.open_lease().unwrap();
        let nh = |s: &str| -> IpAddr { s.parse().unwrap() };
        let k = Sg::new(nh("2001:db8:1::1"), nh("ff3e::8000:1"));
        let oifs = [
            Oif::new(2, nh("fe80::2"), vec![a]),
            Oif::new(2, nh("fe80::3"), vec![a]),
            Oif::new(3, nh("::"), vec![a]),
        ];
        m.install(k, 1, &oifs).unwrap();
        assert_eq!(m.get(&k).unwrap().legs.len(), 3);
        assert_eq!(m.fast_path().mfes[&k].flags, MFE_F_HOPS);
        assert_eq!(m.wanted_neighbours(), BTreeSet::from([(2, nh("fe80::2")), (2, nh("fe80::3"))]));
        m.set_neighbour(2, nh("fe80::2"), [2, 0, 0, 0, 0, 2]).unwrap();
        let legs = &m.get(&k).unwrap().legs;
        assert_eq!(legs.iter().filter(|l| l.mac == [2, 0, 0, 0, 0, 2]).count(), 1);
        assert_eq!(m.unresolved_neighbours(), vec![(2, nh("fe80::3"))]);
        // The same address of the other family is another neighbour.
        m.set_neighbour(2, nh("10.0.0.3"), [2, 0, 0, 0, 0, 3]).unwrap();
        assert!(m.has_unresolved_neighbours());
        let mixed = [Oif::new(2, nh("10.5.0.2"), vec![a])];
        assert!(matches!(m.install(k, 1, &mixed), Err(FastPathError::Family(..))));
        m.remove(&k).unwrap();
        assert!(m.wanted_neighbours().is_empty());
    }
}
