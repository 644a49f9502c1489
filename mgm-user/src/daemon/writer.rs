// SPDX-License-Identifier: MIT OR Apache-2.0
//! The fast-path writer: owns the mirror of the BPF maps (and through it the data plane), the
//! FIFO of writes that follow the replies, the leases that make a release atomic, the retries
//! of writes the kernel refused, and the static MFEs (which win over the core's).
//!
//! Writes go through the FIFO: up to [`WRITE_BATCH`] of them before each reply, the rest in
//! the background between inputs, so a client leaving with 100k entries does not stall the
//! socket. Releases do not wait for that queue: each (interface, next hop, owner) holds a lease
//! in the fast path, and killing it stops every copy it kept alive in one write (see
//! [`crate::fastpath`]).

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    time::Instant,
};

use mgm_common::MfeKey;
use tracing::{error, info, warn};

use crate::{
    dataplane::Dataplane,
    fastpath::{FastPathError, Mirror, Oif},
    manager::{Effect, Handle, Iface, Manager, Oil, Sg},
};

/// Fast-path writes applied per step: before a reply, and per background step.
pub const WRITE_BATCH: usize = 512;

/// A fast-path write waiting its turn, with leases already resolved: a lease released after
/// the write was queued stays named, so the copy it justified stays dropped.
#[derive(Debug)]
enum Pending {
    Install { key: MfeKey, iif: u32, oifs: Vec<Oif> },
    Remove { key: MfeKey },
}

impl Pending {
    fn key(&self) -> MfeKey {
        match self {
            Pending::Install { key, .. } | Pending::Remove { key } => *key,
        }
    }
}

/// A write that reached the fast path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    Installed(MfeKey),
    Removed(MfeKey),
}

pub fn key(sg: Sg) -> MfeKey {
    MfeKey::new(sg.source.octets(), sg.group.octets())
}

pub struct Writer<D> {
    mirror: Mirror<D>,
    pending: VecDeque<Pending>,
    /// When the current backlog of writes started, and how large it grew.
    backlog: Option<(Instant, usize)>,
    /// The fast path's lease for each (interface, owner).
    leases: BTreeMap<(Iface, Handle), u32>,
    /// The core's ownership epoch `leases` was last brought in line with.
    leases_synced: Option<u64>,
    /// MFEs whose last write failed (table full, kernel error): rewritten from the core's
    /// state every second until it takes.
    retry: BTreeSet<MfeKey>,
    write_failures: u64,
    /// (S,G)s installed by `add_mfe`/configuration, outside the MGM API; they win over MGM.
    statics: BTreeSet<MfeKey>,
}

impl<D: Dataplane> Writer<D> {
    pub fn new(dp: D) -> Self {
        Self {
            mirror: Mirror::new(dp),
            pending: VecDeque::new(),
            backlog: None,
            leases: BTreeMap::new(),
            leases_synced: None,
            retry: BTreeSet::new(),
            write_failures: 0,
            statics: BTreeSet::new(),
        }
    }

    pub fn mirror(&self) -> &Mirror<D> {
        &self.mirror
    }

    pub fn mirror_mut(&mut self) -> &mut Mirror<D> {
        &mut self.mirror
    }

    pub fn is_static(&self, key: &MfeKey) -> bool {
        self.statics.contains(key)
    }

    pub fn add_static(&mut self, key: MfeKey, iif: u32, oifs: &[u32]) -> Result<(), FastPathError> {
        self.mirror.install_static(key, iif, oifs)?;
        self.statics.insert(key);
        Ok(())
    }

    /// Removes a static MFE; false if there was none.
    pub fn remove_static(&mut self, key: &MfeKey) -> Result<bool, FastPathError> {
        Ok(self.statics.remove(key) && self.mirror.remove(key)?)
    }

    /// Takes the core's effects: lease changes happen now, writes join the queue (and its
    /// first batch is applied). Returns the ifindexes whose leases died, and what was applied.
    pub fn queue(&mut self, manager: &Manager, effects: &[Effect]) -> (Vec<u32>, Vec<Applied>) {
        let killed = self.sync_leases(manager);
        for e in effects {
            let p = match e {
                Effect::Install { sg, iif, oifs } => self.pending_install(*sg, *iif, oifs),
                Effect::Remove { sg } => Pending::Remove { key: key(*sg) },
                Effect::Notify { .. } => continue,
            };
            self.pending.push_back(p);
        }
        let applied = self.drain(WRITE_BATCH);
        if !self.pending.is_empty() && self.backlog.is_none() {
            self.backlog = Some((Instant::now(), self.pending.len()));
        }
        (killed, applied)
    }

    /// Queues the removal of an MFE the core does not know (an adopted one).
    pub fn queue_remove(&mut self, key: MfeKey) {
        self.pending.push_back(Pending::Remove { key });
    }

    /// Kills the lease of (`iface`, `h`) now: a release takes effect before the core walks
    /// the entries (which takes time proportional to their number).
    pub fn end_lease(&mut self, iface: Iface, h: Handle) {
        if let Some(id) = self.leases.remove(&(iface, h))
            && let Err(e) = self.mirror.kill_lease(id)
        {
            error!(ifindex = iface.ifindex, lease = id, error = %e, "releasing a lease failed");
        }
    }

    /// An install with the leases of the clients behind each outgoing interface resolved now.
    fn pending_install(&self, sg: Sg, iif: Iface, oifs: &Oil) -> Pending {
        let oifs = oifs
            .iter()
            .map(|(iface, by)| {
                let leases = by.iter().filter_map(|h| self.leases.get(&(*iface, *h))).copied();
                Oif::new(iface.ifindex, iface.nexthop, leases.collect())
            })
            .collect();
        Pending::Install { key: key(sg), iif: iif.ifindex, oifs }
    }

    /// Queues again, from the core's current state, the MFEs whose last write failed.
    pub fn retry_failed(&mut self, manager: &Manager) {
        for k in std::mem::take(&mut self.retry) {
            let sg = Sg::new(k.source.into(), k.group.into());
            let p = match manager.mfe_state(sg) {
                Some((iif, oil)) => self.pending_install(sg, iif, &oil),
                None => Pending::Remove { key: k },
            };
            self.pending.push_back(p);
        }
    }

    /// Gives every current owner of an interface a live lease, and kills the leases of
    /// owners that are gone: this is the moment a release takes effect in the fast path.
    /// Runs only when ownership changed since the last complete pass.
    fn sync_leases(&mut self, manager: &Manager) -> Vec<u32> {
        let epoch = manager.ownership_epoch();
        if self.leases_synced == Some(epoch) {
            return Vec::new();
        }
        let mut complete = true;
        let owners: BTreeSet<(Iface, Handle)> = manager
            .owners()
            .into_iter()
            .flat_map(|o| [o.routing, o.igmp].into_iter().flatten().map(move |h| (o.iface, h)))
            .collect();
        let gone: Vec<(Iface, Handle)> =
            self.leases.keys().filter(|k| !owners.contains(k)).copied().collect();
        let killed = gone.iter().map(|(i, _)| i.ifindex).collect();
        for (iface, h) in gone {
            // The copies it kept stop only when the queued rewrites land if this fails.
            self.end_lease(iface, h);
        }
        for k in owners {
            if self.leases.contains_key(&k) {
                continue;
            }
            match self.mirror.open_lease() {
                Ok(id) => {
                    self.leases.insert(k, id);
                }
                Err(e) => {
                    // Tried again after the next input.
                    complete = false;
                    error!(ifindex = k.0.ifindex, error = %e, "opening a lease failed");
                }
            }
        }
        self.leases_synced = complete.then_some(epoch);
        killed
    }

    /// Fast-path writes not applied yet.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Applies up to `budget` queued writes, in order.
    pub fn drain(&mut self, budget: usize) -> Vec<Applied> {
        let mut applied = Vec::new();
        for _ in 0..budget {
            let Some(p) = self.pending.pop_front() else { break };
            let k = p.key();
            // Static entries win over the MGM clients' (see docs/mgm-api.md).
            if self.statics.contains(&k) {
                self.retry.remove(&k);
                continue;
            }
            let r = match &p {
                Pending::Install { key, iif, oifs } => {
                    self.mirror.install(*key, *iif, oifs).map(|()| Applied::Installed(*key))
                }
                Pending::Remove { key } => self.mirror.remove(key).map(|_| Applied::Removed(*key)),
            };
            match r {
                Ok(a) => {
                    self.retry.remove(&k);
                    applied.push(a);
                }
                Err(err) => {
                    self.write_failures += 1;
                    self.retry.insert(k);
                    warn!(write = ?p, error = %err, "fast-path write failed; retried every second");
                }
            }
        }
        if self.pending.is_empty() {
            // Nothing queued names a released lease any more: ids no OIL names are free.
            self.mirror.reap_leases();
            if let Some((since, size)) = self.backlog.take() {
                info!(
                    writes = size,
                    elapsed_ms = since.elapsed().as_millis() as u64,
                    "fast path caught up with the core"
                );
            }
        }
        applied
    }

    /// (write failures so far, MFEs waiting for a retry).
    pub fn failures(&self) -> (u64, usize) {
        (self.write_failures, self.retry.len())
    }
}
