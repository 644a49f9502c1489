// SPDX-License-Identifier: MIT OR Apache-2.0
//! The fast-path mirror: turns "MFE (S,G) arrives on IIF and leaves on these OIFs" into BPF map
//! writes, in an order that never shows the data path a state nobody asked for.
//!
//! * [`FastPath`] is the small interface to the maps: the BPF implementation lives in
//!   [`crate::dataplane`], [`MemFastPath`] records writes for unit tests.
//! * [`Mirror`] owns the desired state. Outgoing lists are interned: MFEs with the same OIL
//!   share one inner devmap, so a (*,G) with a thousand sources costs one OIL, and changing an
//!   MFE's list is a single MFE write that swaps OIL ids.
//!
//! Write order (invariant 2 of the design): ports before OILs that name them, OILs before MFEs
//! that reference them, and in reverse on removal. Every write is an idempotent upsert/delete.

use std::collections::{BTreeMap, HashMap};

use mgm_common::{MAX_OIL_PORTS, MAX_OILS, MfeKey, MfeStats, MfeValue, OIL_EMPTY, PortValue};

/// Errors from the map layer and from the mirror's own checks.
#[derive(Debug, thiserror::Error)]
pub enum FastPathError {
    #[error("BPF map {map}: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("BPF map {map}: {source}")]
    XdpMap {
        map: &'static str,
        #[source]
        source: aya::maps::xdp::XdpMapError,
    },
    #[error("{what} is full ({capacity} entries)")]
    Full { what: &'static str, capacity: u32 },
    #[error("interface {0} is not managed by mgm (no XDP program attached)")]
    UnknownPort(u32),
    #[error("interface {0} is still used by {1} forwarding entries")]
    PortInUse(u32, usize),
    #[error("outgoing list has {0} interfaces, at most {MAX_OIL_PORTS} are supported")]
    OilTooLong(usize),
}

/// The map operations the mirror needs. Each call is one idempotent map write.
pub trait FastPath {
    fn set_port(&mut self, ifindex: u32, port: PortValue) -> Result<(), FastPathError>;
    fn remove_port(&mut self, ifindex: u32) -> Result<(), FastPathError>;
    /// Creates OIL `id` holding exactly `ifindexes` (replacing any previous list with that id).
    fn set_oil(&mut self, id: u32, ifindexes: &[u32]) -> Result<(), FastPathError>;
    fn remove_oil(&mut self, id: u32) -> Result<(), FastPathError>;
    fn set_mfe(&mut self, key: MfeKey, value: MfeValue) -> Result<(), FastPathError>;
    fn remove_mfe(&mut self, key: &MfeKey) -> Result<(), FastPathError>;
    /// Per-MFE counters summed over CPUs.
    fn mfe_stats(&self, slot: u32) -> Result<MfeStats, FastPathError>;
    fn clear_mfe_stats(&mut self, slot: u32) -> Result<(), FastPathError>;
    /// Number of stats slots, i.e. how many MFEs fit.
    fn mfe_capacity(&self) -> u32;
}

/// One installed MFE as the mirror knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstalledMfe {
    pub iif: u32,
    /// Sorted, without duplicates, never containing `iif`.
    pub oifs: Vec<u32>,
    pub oil: u32,
    pub slot: u32,
}

#[derive(Debug)]
struct InternedOil {
    id: u32,
    refs: usize,
}

/// Desired fast-path state and the logic that writes it.
#[derive(Debug)]
pub struct Mirror<F> {
    fp: F,
    ports: BTreeMap<u32, PortValue>,
    oils: HashMap<Vec<u32>, InternedOil>,
    oil_ids: HashMap<u32, Vec<u32>>,
    free_oil_ids: Vec<u32>,
    next_oil_id: u32,
    mfes: BTreeMap<MfeKey, InstalledMfe>,
    free_slots: Vec<u32>,
    next_slot: u32,
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
        }
    }

    pub fn fast_path(&self) -> &F {
        &self.fp
    }

    pub fn fast_path_mut(&mut self) -> &mut F {
        &mut self.fp
    }

    /// Makes `ifindex` usable as an outgoing interface (its MAC is the source of copies).
    pub fn add_port(&mut self, ifindex: u32, mac: [u8; 6]) -> Result<(), FastPathError> {
        let port = PortValue::new(mac);
        self.fp.set_port(ifindex, port)?;
        self.ports.insert(ifindex, port);
        Ok(())
    }

    /// Removes a port; refused while an MFE still uses it as IIF or OIF.
    pub fn remove_port(&mut self, ifindex: u32) -> Result<(), FastPathError> {
        let users =
            self.mfes.values().filter(|m| m.iif == ifindex || m.oifs.contains(&ifindex)).count();
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

    /// Installs or replaces the MFE for `key`. `oifs` may be in any order and contain the IIF
    /// (it is removed: a packet never goes back out of the interface it came in on).
    pub fn install(&mut self, key: MfeKey, iif: u32, oifs: &[u32]) -> Result<(), FastPathError> {
        let mut oifs: Vec<u32> = oifs.iter().copied().filter(|&o| o != iif).collect();
        oifs.sort_unstable();
        oifs.dedup();
        for &i in oifs.iter().chain(std::iter::once(&iif)) {
            if !self.ports.contains_key(&i) {
                return Err(FastPathError::UnknownPort(i));
            }
        }
        if oifs.len() > MAX_OIL_PORTS as usize {
            return Err(FastPathError::OilTooLong(oifs.len()));
        }
        let old = self.mfes.get(&key).cloned();
        if old.as_ref().is_some_and(|o| o.iif == iif && o.oifs == oifs) {
            return Ok(());
        }
        let slot = match &old {
            Some(o) => o.slot,
            None => self.alloc_slot()?,
        };
        let oil = match self.acquire_oil(&oifs) {
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
        if let Err(e) = self.fp.set_mfe(key, MfeValue::new(iif, oil, slot)) {
            self.release_oil(oil)?;
            if old.is_none() {
                self.free_slots.push(slot);
            }
            return Err(e);
        }
        if let Some(o) = &old {
            self.release_oil(o.oil)?;
        }
        self.mfes.insert(key, InstalledMfe { iif, oifs, oil, slot });
        Ok(())
    }

    /// Removes the MFE for `key`; returns whether it existed.
    pub fn remove(&mut self, key: &MfeKey) -> Result<bool, FastPathError> {
        let Some(m) = self.mfes.get(key).cloned() else {
            return Ok(false);
        };
        self.fp.remove_mfe(key)?;
        self.mfes.remove(key);
        self.release_oil(m.oil)?;
        self.free_slots.push(m.slot);
        Ok(true)
    }

    pub fn get(&self, key: &MfeKey) -> Option<&InstalledMfe> {
        self.mfes.get(key)
    }

    pub fn mfes(&self) -> impl Iterator<Item = (&MfeKey, &InstalledMfe)> {
        self.mfes.iter()
    }

    pub fn stats(&self, key: &MfeKey) -> Result<Option<MfeStats>, FastPathError> {
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

    fn acquire_oil(&mut self, oifs: &[u32]) -> Result<u32, FastPathError> {
        if oifs.is_empty() {
            return Ok(OIL_EMPTY);
        }
        if let Some(o) = self.oils.get_mut(oifs) {
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
        if let Err(e) = self.fp.set_oil(id, oifs) {
            self.free_oil_ids.push(id);
            return Err(e);
        }
        self.oils.insert(oifs.to_vec(), InternedOil { id, refs: 1 });
        self.oil_ids.insert(id, oifs.to_vec());
        Ok(id)
    }

    fn release_oil(&mut self, id: u32) -> Result<(), FastPathError> {
        if id == OIL_EMPTY {
            return Ok(());
        }
        let Some(list) = self.oil_ids.get(&id) else {
            return Ok(());
        };
        let o = self.oils.get_mut(list).expect("oil_ids and oils agree");
        o.refs -= 1;
        if o.refs == 0 {
            // The MFE that referenced it was rewritten or removed first.
            self.fp.remove_oil(id)?;
            let list = self.oil_ids.remove(&id).expect("present");
            self.oils.remove(&list);
            self.free_oil_ids.push(id);
        }
        Ok(())
    }
}

/// One write as [`MemFastPath`] records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    SetPort(u32),
    RemovePort(u32),
    SetOil(u32, Vec<u32>),
    RemoveOil(u32),
    SetMfe(MfeKey, MfeValue),
    RemoveMfe(MfeKey),
    ClearStats(u32),
}

/// In-memory fast path for unit tests: keeps the maps and a log of writes, and checks on every
/// write that nothing references a missing target.
#[derive(Debug, Default)]
pub struct MemFastPath {
    pub ports: BTreeMap<u32, PortValue>,
    pub oils: BTreeMap<u32, Vec<u32>>,
    pub mfes: BTreeMap<MfeKey, MfeValue>,
    pub stats: BTreeMap<u32, MfeStats>,
    pub log: Vec<Write>,
    pub capacity: u32,
}

impl MemFastPath {
    pub fn with_capacity(capacity: u32) -> Self {
        Self { capacity, ..Default::default() }
    }

    /// Panics if any map references a target that is not there: the state the data path
    /// would see after the last write.
    pub fn assert_consistent(&self) {
        for (id, list) in &self.oils {
            for i in list {
                assert!(self.ports.contains_key(i), "oil {id} names missing port {i}");
            }
        }
        for (k, v) in &self.mfes {
            assert!(
                v.oil == OIL_EMPTY || self.oils.contains_key(&v.oil),
                "mfe {k:?} names missing oil {}",
                v.oil
            );
        }
    }
}

impl FastPath for MemFastPath {
    fn set_port(&mut self, ifindex: u32, port: PortValue) -> Result<(), FastPathError> {
        self.ports.insert(ifindex, port);
        self.log.push(Write::SetPort(ifindex));
        self.assert_consistent();
        Ok(())
    }
    fn remove_port(&mut self, ifindex: u32) -> Result<(), FastPathError> {
        self.ports.remove(&ifindex);
        self.log.push(Write::RemovePort(ifindex));
        self.assert_consistent();
        Ok(())
    }
    fn set_oil(&mut self, id: u32, ifindexes: &[u32]) -> Result<(), FastPathError> {
        self.oils.insert(id, ifindexes.to_vec());
        self.log.push(Write::SetOil(id, ifindexes.to_vec()));
        self.assert_consistent();
        Ok(())
    }
    fn remove_oil(&mut self, id: u32) -> Result<(), FastPathError> {
        self.oils.remove(&id);
        self.log.push(Write::RemoveOil(id));
        self.assert_consistent();
        Ok(())
    }
    fn set_mfe(&mut self, key: MfeKey, value: MfeValue) -> Result<(), FastPathError> {
        self.mfes.insert(key, value);
        self.log.push(Write::SetMfe(key, value));
        self.assert_consistent();
        Ok(())
    }
    fn remove_mfe(&mut self, key: &MfeKey) -> Result<(), FastPathError> {
        self.mfes.remove(key);
        self.log.push(Write::RemoveMfe(*key));
        self.assert_consistent();
        Ok(())
    }
    fn mfe_stats(&self, slot: u32) -> Result<MfeStats, FastPathError> {
        Ok(self.stats.get(&slot).copied().unwrap_or_default())
    }
    fn clear_mfe_stats(&mut self, slot: u32) -> Result<(), FastPathError> {
        self.stats.remove(&slot);
        self.log.push(Write::ClearStats(slot));
        Ok(())
    }
    fn mfe_capacity(&self) -> u32 {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: u8, g: u8) -> MfeKey {
        MfeKey::new([10, 0, 0, s], [239, 1, 1, g])
    }

    fn mirror(ports: &[u32]) -> Mirror<MemFastPath> {
        let mut m = Mirror::new(MemFastPath::with_capacity(8));
        for &p in ports {
            m.add_port(p, [2, 0, 0, 0, 0, p as u8]).unwrap();
        }
        m.fast_path_mut().log.clear();
        m
    }

    #[test]
    fn install_writes_oil_before_mfe() {
        let mut m = mirror(&[1, 2, 3]);
        m.install(key(1, 1), 1, &[3, 2]).unwrap();
        let log = &m.fast_path().log;
        assert_eq!(log[0], Write::SetOil(1, vec![2, 3]));
        assert_eq!(log[1], Write::ClearStats(0));
        assert_eq!(log[2], Write::SetMfe(key(1, 1), MfeValue::new(1, 1, 0)));
    }

    #[test]
    fn iif_is_never_in_the_oil_and_duplicates_fold() {
        let mut m = mirror(&[1, 2]);
        m.install(key(1, 1), 1, &[1, 2, 2]).unwrap();
        assert_eq!(m.get(&key(1, 1)).unwrap().oifs, vec![2]);
    }

    #[test]
    fn identical_oils_are_shared_and_freed_with_the_last_user() {
        let mut m = mirror(&[1, 2, 3]);
        m.install(key(1, 1), 1, &[2, 3]).unwrap();
        m.install(key(2, 1), 1, &[3, 2]).unwrap();
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
        m.install(key(1, 1), 1, &[2]).unwrap();
        m.fast_path_mut().log.clear();
        m.install(key(1, 1), 1, &[2, 3]).unwrap();
        let log = m.fast_path().log.clone();
        assert_eq!(
            log,
            vec![
                Write::SetOil(2, vec![2, 3]),
                Write::SetMfe(key(1, 1), MfeValue::new(1, 2, 0)),
                Write::RemoveOil(1),
            ]
        );
    }

    #[test]
    fn reinstalling_the_same_mfe_writes_nothing() {
        let mut m = mirror(&[1, 2]);
        m.install(key(1, 1), 1, &[2]).unwrap();
        m.fast_path_mut().log.clear();
        m.install(key(1, 1), 1, &[2]).unwrap();
        assert!(m.fast_path().log.is_empty());
    }

    #[test]
    fn empty_oil_is_a_negative_cache_entry() {
        let mut m = mirror(&[1]);
        m.install(key(1, 1), 1, &[]).unwrap();
        assert_eq!(m.fast_path().mfes[&key(1, 1)].oil, OIL_EMPTY);
        assert!(m.fast_path().oils.is_empty());
    }

    #[test]
    fn unknown_ports_are_refused_without_writes() {
        let mut m = mirror(&[1, 2]);
        assert!(matches!(m.install(key(1, 1), 1, &[9]), Err(FastPathError::UnknownPort(9))));
        assert!(matches!(m.install(key(1, 1), 9, &[2]), Err(FastPathError::UnknownPort(9))));
        assert!(m.fast_path().log.is_empty());
    }

    #[test]
    fn capacity_is_enforced_and_slots_are_reused_after_clearing() {
        let mut m = Mirror::new(MemFastPath::with_capacity(2));
        m.add_port(1, [0; 6]).unwrap();
        m.add_port(2, [0; 6]).unwrap();
        m.install(key(1, 1), 1, &[2]).unwrap();
        m.install(key(2, 1), 1, &[2]).unwrap();
        assert!(matches!(m.install(key(3, 1), 1, &[2]), Err(FastPathError::Full { .. })));
        assert!(!m.fast_path().mfes.contains_key(&key(3, 1)));
        m.fast_path_mut().stats.insert(0, MfeStats { packets: 7, ..Default::default() });
        m.remove(&key(1, 1)).unwrap();
        m.install(key(3, 1), 1, &[2]).unwrap();
        assert_eq!(m.get(&key(3, 1)).unwrap().slot, 0);
        assert_eq!(m.stats(&key(3, 1)).unwrap().unwrap().packets, 0);
    }

    #[test]
    fn ports_in_use_cannot_be_removed() {
        let mut m = mirror(&[1, 2]);
        m.install(key(1, 1), 1, &[2]).unwrap();
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
}
