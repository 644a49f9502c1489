// SPDX-License-Identifier: MIT OR Apache-2.0
//! The in-memory data plane (unit tests, and the fuzz targets through the `testing`
//! feature): the maps as plain collections, with a log of writes.

use std::collections::{BTreeMap, BTreeSet};

use mgm_common::{
    LEASE_STATIC, MfeStats, MfeValue, OIL_EMPTY, OifBase, OifStats, PortValue, counter,
};

use crate::{
    dataplane::Dataplane,
    fastpath::{FastPath, FastPathError, Leg},
    kernel::NetDev,
    manager::Sg,
};

/// One write as [`MemFastPath`] records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    SetPort(u32),
    RemovePort(u32),
    /// OIL id and its interfaces.
    SetOil(u32, Vec<u32>),
    RemoveOil(u32),
    SetMfe(Sg, MfeValue),
    RemoveMfe(Sg),
    ClearStats(u32),
    SetLease(u32, bool),
}

/// In-memory fast path for unit tests: keeps the maps and a log of writes, and checks on every
/// write that nothing references a missing target.
#[derive(Debug, Default)]
pub struct MemFastPath {
    pub ports: BTreeMap<u32, PortValue>,
    pub oils: BTreeMap<u32, Vec<Leg>>,
    pub mfes: BTreeMap<Sg, MfeValue>,
    pub stats: BTreeMap<u32, MfeStats>,
    pub oif_stats: BTreeMap<(u32, u32), OifStats>,
    pub oif_base: BTreeMap<(u32, u32), OifBase>,
    pub leases: BTreeMap<u32, bool>,
    /// Packets handed back for forwarding (held while their MFE was created).
    /// Interfaces the programs are attached to.
    pub attached: BTreeSet<u32>,
    /// A kernel without XDP live-frame test runs: held packets cannot be replayed.
    pub cannot_replay: bool,
    /// Makes MFE writes fail, as a full table or a kernel error would.
    pub fail_mfe_writes: bool,
    pub log: Vec<Write>,
    pub capacity: u32,
    /// The programs' configuration values, by index.
    pub config: BTreeMap<u32, u64>,
    /// The UDP ports local sockets may receive multicast on.
    pub local_ports: BTreeSet<u16>,
    /// Grace periods end only when a test says so ([`MemFastPath::end_graces`]); otherwise
    /// each ends as it is asked for.
    pub hold_graces: bool,
    pub graces_asked: u64,
    pub graces_ended: u64,
}

impl MemFastPath {
    pub fn with_capacity(capacity: u32) -> Self {
        Self { capacity, ..Default::default() }
    }

    /// Panics if any map references a target that is not there: the state the data path
    /// would see after the last write.
    pub fn assert_consistent(&self) {
        for (id, legs) in &self.oils {
            for l in legs {
                assert!(self.ports.contains_key(&l.ifindex), "oil {id} names missing port {l:?}");
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

    /// Ends every grace period asked for so far.
    pub fn end_graces(&mut self) {
        self.graces_ended = self.graces_asked;
    }

    /// Whether the data path would send a copy of `key` to `ifindex` now: the model of the
    /// egress (and TC) program's check.
    pub fn forwards(&self, key: &Sg, ifindex: u32) -> bool {
        let Some(m) = self.mfes.get(key) else { return false };
        let Some(legs) = self.oils.get(&m.oil) else { return false };
        legs.iter()
            .filter(|l| l.ifindex == ifindex)
            .flat_map(Leg::leases)
            .any(|l| l == LEASE_STATIC || self.leases.get(&l).copied().unwrap_or(false))
    }
}

impl FastPath for MemFastPath {
    fn grace_ticket(&mut self) -> u64 {
        self.graces_asked += 1;
        if !self.hold_graces {
            self.graces_ended = self.graces_asked;
        }
        self.graces_asked
    }
    fn graces_done(&self) -> u64 {
        self.graces_ended
    }
    fn wait_grace(&mut self) -> Result<(), FastPathError> {
        self.end_graces();
        Ok(())
    }
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
    fn set_oil(&mut self, id: u32, legs: &[Leg]) -> Result<(), FastPathError> {
        assert!(!self.oils.contains_key(&id), "oil {id} written twice");
        self.oils.insert(id, legs.to_vec());
        self.log.push(Write::SetOil(id, legs.iter().map(|l| l.ifindex).collect()));
        self.assert_consistent();
        Ok(())
    }
    fn remove_oil(&mut self, id: u32, _legs: &[Leg]) -> Result<(), FastPathError> {
        self.oils.remove(&id);
        self.log.push(Write::RemoveOil(id));
        self.assert_consistent();
        Ok(())
    }
    fn set_mfe(&mut self, key: Sg, value: MfeValue) -> Result<(), FastPathError> {
        if self.fail_mfe_writes {
            return Err(FastPathError::Full { what: "MFE table (simulated)", capacity: 0 });
        }
        self.mfes.insert(key, value);
        self.log.push(Write::SetMfe(key, value));
        self.assert_consistent();
        Ok(())
    }
    fn remove_mfe(&mut self, key: &Sg) -> Result<(), FastPathError> {
        self.mfes.remove(key);
        self.log.push(Write::RemoveMfe(*key));
        self.assert_consistent();
        Ok(())
    }
    fn set_lease(&mut self, id: u32, alive: bool) -> Result<(), FastPathError> {
        self.leases.insert(id, alive);
        self.log.push(Write::SetLease(id, alive));
        Ok(())
    }
    fn mfe_stats(&self, slot: u32) -> Result<MfeStats, FastPathError> {
        Ok(self.stats.get(&slot).copied().unwrap_or_default())
    }
    fn oif_stats(&self, slot: u32, ifindex: u32) -> Result<OifStats, FastPathError> {
        Ok(self.oif_stats.get(&(slot, ifindex)).copied().unwrap_or_default())
    }
    fn oif_base(&self, slot: u32, ifindex: u32) -> Result<OifBase, FastPathError> {
        Ok(self.oif_base.get(&(slot, ifindex)).copied().unwrap_or_default())
    }
    fn set_oif_base(&mut self, slot: u32, ifindex: u32, b: OifBase) -> Result<(), FastPathError> {
        self.oif_base.insert((slot, ifindex), b);
        Ok(())
    }
    fn clear_oif_stats(&mut self, slot: u32, ifindex: u32) -> Result<(), FastPathError> {
        self.oif_stats.remove(&(slot, ifindex));
        self.oif_base.remove(&(slot, ifindex));
        Ok(())
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

impl Dataplane for MemFastPath {
    fn port_stats(
        &self,
    ) -> Result<std::collections::BTreeMap<u32, mgm_common::PortStats>, FastPathError> {
        Ok(self.ports.keys().map(|i| (*i, mgm_common::PortStats::default())).collect())
    }
    fn counters(&self) -> Result<[u64; counter::COUNT as usize], FastPathError> {
        Ok([0; counter::COUNT as usize])
    }
    fn manage(&mut self, dev: &NetDev) -> anyhow::Result<()> {
        self.attached.insert(dev.ifindex);
        Ok(())
    }
    fn forget(&mut self, ifindex: u32) {
        self.attached.remove(&ifindex);
    }
    fn can_replay(&self) -> bool {
        !self.cannot_replay
    }
    fn set_config(&mut self, idx: u32, value: u64) -> Result<(), FastPathError> {
        self.config.insert(idx, value);
        Ok(())
    }
    fn set_local_ports(&mut self, ports: &BTreeSet<u16>) -> Result<(), FastPathError> {
        self.local_ports = ports.clone();
        Ok(())
    }
}
