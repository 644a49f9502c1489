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
    net::IpAddr,
    time::Duration,
};

use tracing::{error, info, warn};

use mgm_common::PortValue;

use crate::{
    dataplane::Dataplane,
    fastpath::{Adopted, FastPathError, Mirror, Oif, Origin},
    kernel::NetDev,
    manager::{Effect, Handle, Iface, Manager, Oil, Sg},
    scope::Scope,
};

/// Fast-path writes applied per step: before a reply, and per background step.
pub const WRITE_BATCH: usize = 512;

/// A fast-path write waiting its turn, with leases already resolved: a lease released after
/// the write was queued stays named, so the copy it justified stays dropped.
#[derive(Debug)]
enum Pending {
    Install { key: Sg, iif: u32, oifs: Vec<Oif> },
    Remove { key: Sg },
}

impl Pending {
    fn key(&self) -> Sg {
        match self {
            Pending::Install { key, .. } | Pending::Remove { key } => *key,
        }
    }
}

/// A write that reached the fast path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    Installed(Sg),
    Removed(Sg),
}

pub struct Writer<D> {
    mirror: Mirror<D>,
    pending: VecDeque<Pending>,
    /// When the current backlog of writes started, and how large it grew.
    backlog: Option<(Duration, usize)>,
    /// The fast path's lease for each (interface, owner).
    leases: BTreeMap<(Iface, Handle), u32>,
    /// Owners whose lease could not be opened yet (the table was full).
    unleased: BTreeSet<(Iface, Handle)>,
    /// MFEs whose last write failed (table full, kernel error): rewritten from the core's
    /// state every second until it takes.
    retry: BTreeSet<Sg>,
    write_failures: u64,
    /// Failures since the last log line, and when that was.
    unlogged_failures: u64,
    failure_logged: Option<Duration>,
    /// The daemon's time (its input's), for the log lines' durations and pace.
    now: Duration,
    /// (S,G)s installed by `add_mfe`/configuration, outside the MGM API; they win over MGM.
    statics: BTreeSet<Sg>,
    /// (S,G)s mirrored from the kernel's table (`--follow-kernel`); also outside the MGM API.
    kernel: BTreeSet<Sg>,
}

impl<D: Dataplane> Writer<D> {
    pub fn new(dp: D) -> Self {
        Self {
            mirror: Mirror::new(dp),
            pending: VecDeque::new(),
            backlog: None,
            leases: BTreeMap::new(),
            unleased: BTreeSet::new(),
            retry: BTreeSet::new(),
            write_failures: 0,
            unlogged_failures: 0,
            failure_logged: None,
            now: Duration::ZERO,
            statics: BTreeSet::new(),
            kernel: BTreeSet::new(),
        }
    }

    /// The time of the daemon's current input.
    pub fn set_now(&mut self, now: Duration) {
        self.now = now;
    }

    /// The mirror, to read (what is installed, ports, next hops).
    pub fn mirror(&self) -> &Mirror<D> {
        &self.mirror
    }

    /// The data plane, to read (counters, what it can do).
    pub fn dataplane(&self) -> &D {
        self.mirror.fast_path()
    }

    /// The data plane, for a test to change what it can do.
    #[cfg(test)]
    pub fn dataplane_mut(&mut self) -> &mut D {
        self.mirror.fast_path_mut()
    }

    /// Starts forwarding on `dev`: its programs attached, its port (MAC, MTU) and scope
    /// boundary in the maps.
    pub fn manage(&mut self, dev: &NetDev, boundary: Option<Scope>) -> anyhow::Result<()> {
        self.mirror.fast_path_mut().manage(dev)?;
        self.update_port(dev)?;
        self.set_boundary(dev.ifindex, boundary)?;
        Ok(())
    }

    /// A managed interface's new MAC or MTU.
    pub fn update_port(&mut self, dev: &NetDev) -> Result<(), FastPathError> {
        self.mirror.add_port(dev.ifindex, PortValue::new(dev.mac, dev.mtu))
    }

    pub fn set_boundary(
        &mut self,
        ifindex: u32,
        scope: Option<Scope>,
    ) -> Result<(), FastPathError> {
        self.mirror.set_boundary(ifindex, scope)
    }

    /// A next hop's MAC, if an outgoing list names that next hop.
    pub fn set_neighbour(
        &mut self,
        ifindex: u32,
        ip: IpAddr,
        mac: [u8; 6],
    ) -> Result<(), FastPathError> {
        if !self.mirror.wants_neighbour(ifindex, ip) {
            return Ok(());
        }
        self.mirror.set_neighbour(ifindex, ip, mac)
    }

    /// Removes `ifindex` from the fast path: the entries still using it (static, held), its
    /// port, and the data plane's hold on it (its programs went with the link, or are
    /// detached). Returns the entries removed.
    pub fn remove_port(&mut self, ifindex: u32, manager: &Manager) -> Vec<Sg> {
        let dead: Vec<Sg> =
            self.mirror.mfes().filter(|(_, m)| m.uses(ifindex)).map(|(k, _)| *k).collect();
        for k in &dead {
            let _ = self.remove_static(k, manager);
            let _ = self.mirror.remove(k);
        }
        if let Err(e) = self.mirror.remove_port(ifindex) {
            warn!(ifindex, error = %e, "interface still referenced in the fast path");
        }
        self.mirror.fast_path_mut().forget(ifindex);
        dead
    }

    /// Takes over what a previous mgmd left in the maps; the adopted (S,G)s.
    pub fn adopt(&mut self, a: Adopted) -> Result<Vec<Sg>, FastPathError> {
        self.mirror.adopt(a)
    }

    /// Kills leases adopted from a previous mgmd (their owners did not come back).
    pub fn kill_leases(&mut self, ids: impl IntoIterator<Item = u32>) {
        for id in ids {
            if let Err(e) = self.mirror.kill_lease(id) {
                error!(lease = id, error = %e, "releasing an adopted lease failed");
            }
        }
    }

    /// One value of the programs' configuration (see `mgm_common::config`).
    pub fn set_config(&mut self, idx: u32, value: u64) -> Result<(), FastPathError> {
        self.mirror.fast_path_mut().set_config(idx, value)
    }

    /// The UDP ports local sockets receive multicast on.
    pub fn set_local_ports(&mut self, ports: &BTreeSet<u16>) -> Result<(), FastPathError> {
        self.mirror.fast_path_mut().set_local_ports(ports)
    }

    /// After a restart: the adopted entries marked static are static again, and those
    /// mirrored from the kernel are the follower's again (its first dump keeps or removes
    /// them).
    pub fn adopt_statics(&mut self) {
        for (k, m) in self.mirror.mfes() {
            match m.origin {
                Origin::Static => self.statics.insert(*k),
                Origin::Kernel { .. } => self.kernel.insert(*k),
                Origin::Core => false,
            };
        }
    }

    /// Whether `key` is not the MGM core's: a static entry or one followed from the kernel.
    pub fn is_outside_core(&self, key: &Sg) -> bool {
        self.statics.contains(key) || self.kernel.contains(key)
    }

    pub fn is_kernel(&self, key: &Sg) -> bool {
        self.kernel.contains(key)
    }

    /// The entries followed from the kernel.
    pub fn kernel_keys(&self) -> impl Iterator<Item = Sg> + '_ {
        self.kernel.iter().copied()
    }

    /// Mirrors a kernel entry (a static entry of the same (S,G) wins: it is left alone).
    pub fn add_kernel(
        &mut self,
        key: Sg,
        iif: u32,
        oifs: &[u32],
        local: bool,
    ) -> Result<(), FastPathError> {
        if self.statics.contains(&key) {
            return Ok(());
        }
        self.mirror.install_kernel(key, iif, oifs, local)?;
        self.kernel.insert(key);
        Ok(())
    }

    /// Stops mirroring a kernel entry; what the core holds for that (S,G), if anything,
    /// takes its place.
    pub fn remove_kernel(&mut self, key: &Sg, manager: &Manager) -> Result<(), FastPathError> {
        if self.kernel.remove(key) {
            self.mirror.remove(key)?;
            self.queue_core_state(*key, manager);
        }
        Ok(())
    }

    pub fn static_count(&self) -> usize {
        self.statics.len()
    }

    pub fn is_static(&self, key: &Sg) -> bool {
        self.statics.contains(key)
    }

    pub fn add_static(&mut self, key: Sg, iif: u32, oifs: &[u32]) -> Result<(), FastPathError> {
        self.mirror.install_static(key, iif, oifs)?;
        self.kernel.remove(&key);
        self.statics.insert(key);
        Ok(())
    }

    /// Removes a static MFE; false if there was none. What the core holds for that (S,G), if
    /// anything, takes its place (queued like any write).
    pub fn remove_static(&mut self, key: &Sg, manager: &Manager) -> Result<bool, FastPathError> {
        if !(self.statics.remove(key) && self.mirror.remove(key)?) {
            return Ok(false);
        }
        self.queue_core_state(*key, manager);
        Ok(true)
    }

    /// Takes the core's effects: lease changes happen now, writes join the queue (and its
    /// first batch is applied). Returns the ifindexes whose leases died, and what was applied.
    pub fn queue(&mut self, effects: &[Effect]) -> (Vec<u32>, Vec<Applied>) {
        let killed = self.follow_owners(effects);
        for e in effects {
            let p = match e {
                Effect::Install { sg, iif, oifs } => self.pending_install(*sg, *iif, oifs),
                Effect::Remove { sg } => Pending::Remove { key: *sg },
                Effect::Notify { .. } | Effect::Owner { .. } => continue,
            };
            self.pending.push_back(p);
        }
        let applied = self.drain(WRITE_BATCH);
        if !self.pending.is_empty() && self.backlog.is_none() {
            self.backlog = Some((self.now, self.pending.len()));
        }
        (killed, applied)
    }

    /// Queues the removal of an MFE the core does not know (an adopted one).
    pub fn queue_remove(&mut self, key: Sg) {
        self.pending.push_back(Pending::Remove { key });
    }

    /// Opens the lease of (`iface`, `h`) before the core gives `h` the interface, so that a
    /// full lease table refuses the take instead of leaving an owner whose copies never flow.
    pub fn reserve_lease(&mut self, iface: Iface, h: Handle) -> Result<(), FastPathError> {
        if !self.leases.contains_key(&(iface, h)) {
            let id = self.mirror.open_lease()?;
            self.leases.insert((iface, h), id);
        }
        Ok(())
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
        Pending::Install { key: sg, iif: iif.ifindex, oifs }
    }

    /// Queues again, from the core's current state, the MFEs whose last write failed.
    pub fn retry_failed(&mut self, manager: &Manager) {
        for k in std::mem::take(&mut self.retry) {
            self.queue_core_state(k, manager);
        }
    }

    /// Queues the write that makes the fast path hold what the core holds for `key`: its
    /// MFE, or nothing.
    fn queue_core_state(&mut self, key: Sg, manager: &Manager) {
        let p = match manager.mfe_state(key) {
            Some((iif, oil)) => self.pending_install(key, iif, &oil),
            None => Pending::Remove { key },
        };
        self.pending.push_back(p);
    }

    /// Gives every new owner of an interface a live lease, and kills the leases of owners
    /// that are gone: this is the moment a release takes effect in the fast path. A lease that
    /// could not be opened is tried again with the next effects.
    fn follow_owners(&mut self, effects: &[Effect]) -> Vec<u32> {
        let mut killed = Vec::new();
        for e in effects {
            if let Effect::Owner { iface, owner, owns } = *e {
                if owns {
                    self.unleased.insert((iface, owner));
                } else {
                    self.unleased.remove(&(iface, owner));
                    self.end_lease(iface, owner);
                    killed.push(iface.ifindex);
                }
            }
        }
        for (iface, owner) in std::mem::take(&mut self.unleased) {
            if let Err(e) = self.reserve_lease(iface, owner) {
                error!(ifindex = iface.ifindex, error = %e, "opening a lease failed");
                self.unleased.insert((iface, owner));
            }
        }
        killed
    }

    /// Fast-path writes not applied yet.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Counts a failed write and logs it, at most one line a second with the count: a flood
    /// of failures must not become a flood of log.
    fn failed(&mut self, last: &dyn std::fmt::Debug, err: &FastPathError) {
        self.write_failures += 1;
        self.unlogged_failures += 1;
        if self.failure_logged.is_none_or(|t| self.now.saturating_sub(t) >= Duration::from_secs(1))
        {
            let failures = std::mem::take(&mut self.unlogged_failures);
            warn!(failures, ?last, error = %err, "fast-path writes failed; retried every second");
            self.failure_logged = Some(self.now);
        }
    }

    /// Empties and frees the outgoing lists no MFE names whose grace period has ended (see
    /// `fastpath::RetiredOil`; a failure leaves them for the next call), then recycles the
    /// released leases nothing names any more.
    pub fn reclaim(&mut self) {
        if let Err(err) = self.mirror.reclaim() {
            self.failed(&"emptying an unnamed outgoing list", &err);
        }
        if self.pending.is_empty() {
            // Nothing queued names a released lease any more: ids no OIL names are free.
            self.mirror.reap_leases();
        }
    }

    /// Applies up to `budget` queued writes, in order.
    pub fn drain(&mut self, budget: usize) -> Vec<Applied> {
        let mut applied = Vec::new();
        for _ in 0..budget {
            let Some(p) = self.pending.pop_front() else { break };
            let k = p.key();
            // Static and followed entries win over the MGM clients' (see docs/mgm-api.md).
            if self.is_outside_core(&k) {
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
                    self.retry.insert(k);
                    self.failed(&p, &err);
                }
            }
        }
        self.reclaim();
        if self.pending.is_empty()
            && let Some((since, size)) = self.backlog.take()
        {
            info!(
                writes = size,
                elapsed_ms = self.now.saturating_sub(since).as_millis() as u64,
                "fast path caught up with the core"
            );
        }
        applied
    }

    /// (write failures so far, MFEs waiting for a retry).
    pub fn failures(&self) -> (u64, usize) {
        (self.write_failures, self.retry.len())
    }
}
