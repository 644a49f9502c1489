// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the kernel tells the daemon: links and neighbours (managed ports follow their MAC and
//! MTU; a link that leaves takes its entries with it) and, with `--follow-kernel`, its
//! multicast routing table, mirrored entry by entry, with the liveness stamp that lets the
//! programs leave followed entries to the kernel when mgmd stops.

use super::*;

/// How often the liveness stamp is written, and how stale it may get before the programs
/// leave every followed entry to the kernel.
pub(super) const ALIVE_EVERY: Duration = Duration::from_millis(500);
const ALIVE_STALE: Duration = Duration::from_secs(3);

impl<D: Dataplane> Daemon<D> {
    /// Follows the kernel's multicast routing tables `tables`: their forwardable entries are
    /// mirrored, one packet per `heartbeat` of each goes to the kernel (0: none), and the
    /// programs leave followed entries to the kernel when this daemon stops saying it is
    /// alive. The table itself arrives as kernel events.
    pub fn follow_kernel(&mut self, tables: Tables, heartbeat: Duration) -> anyhow::Result<()> {
        let w = &mut self.writer;
        w.set_config(mgm_common::config::HEARTBEAT_NS, heartbeat.as_nanos() as u64)?;
        w.set_config(mgm_common::config::STALE_NS, ALIVE_STALE.as_nanos() as u64)?;
        // Not alive yet: entries adopted from a previous run may be stale until the first
        // dump of the table has been reconciled (then the stamp starts).
        self.follow = Some(Follow::new(tables));
        Ok(())
    }

    /// Not following the kernel: entries a previous run followed are nobody's now (the
    /// kernel forwards them anyway), so they leave the fast path.
    pub fn drop_followed(&mut self) {
        let keys: Vec<Sg> = self.writer.kernel_keys().collect();
        if !keys.is_empty() {
            info!(entries = keys.len(), "not following the kernel: its entries left to it");
        }
        for k in keys {
            if let Err(e) = self.writer.remove_kernel(&k, &self.manager) {
                warn!(error = %e, "removing a followed entry");
            }
        }
    }

    /// Makes the fast path equal to the followed table for `keys`.
    pub(super) fn reconcile(&mut self, keys: impl IntoIterator<Item = Sg>) {
        let Some(f) = &self.follow else { return };
        for k in keys {
            let d = f.decide(&k, |i| self.links.is_managed(i));
            let (s, g) = (k.source, k.group);
            let r = match d {
                Some(Decision::Mirror { iif, oifs, local }) => {
                    self.writer.add_kernel(k, iif, &oifs, local).map(|()| "accelerated")
                }
                Some(Decision::Kernel(why)) => {
                    if self.writer.is_kernel(&k) {
                        info!(source = %s, group = %g, why, "kernel entry left to the kernel");
                    }
                    self.writer.remove_kernel(&k, &self.manager).map(|()| "kernel")
                }
                None => self.writer.remove_kernel(&k, &self.manager).map(|()| "gone"),
            };
            match r {
                Ok(what) => tracing::debug!(source = %s, group = %g, what, "kernel entry"),
                // Left to the kernel, which holds it anyway: slower, nothing lost.
                Err(e) => warn!(source = %s, group = %g, error = %e, "mirroring a kernel entry"),
            }
        }
    }

    /// Every followed entry again (the managed interfaces changed).
    pub(super) fn reconcile_all(&mut self) {
        let Some(f) = &self.follow else { return };
        let mut keys: BTreeSet<Sg> = f.keys().collect();
        keys.extend(self.writer.kernel_keys());
        self.reconcile(keys);
    }

    /// Has the run loop write the liveness stamp: in the kernel's clock, read there.
    pub(super) fn say_alive(&mut self) {
        self.to_kernel.push(ToKernel::SayAlive);
    }

    /// A kernel event: an interface gone is released everywhere; MTU and MAC changes reach
    /// the fast path; a neighbour's MAC reaches the copies sent to it.
    pub(super) fn kernel(&mut self, ev: KernelEvent, now: Duration) {
        if let Some(f) = &mut self.follow {
            let keys = f.apply(&ev);
            if let (KernelEvent::LocalGroups(_), Some(ports)) = (&ev, f.local_ports())
                && let Err(e) = self.writer.set_local_ports(ports)
            {
                warn!(error = %e, "writing the local UDP ports to the fast path");
            }
            if matches!(ev, KernelEvent::MfcSnapshot(_)) {
                // Also what was mirrored and is in no table now (adopted after a restart).
                let keys: BTreeSet<Sg> =
                    keys.into_iter().chain(self.writer.kernel_keys()).collect();
                self.reconcile(keys);
                if !self.followed_once {
                    self.followed_once = true;
                    self.say_alive();
                }
            } else {
                self.reconcile(keys);
            }
        }
        for change in self.links.apply(ev) {
            match change {
                Change::Gone(dev) => {
                    self.interface_gone(dev, now);
                    self.reconcile_all();
                }
                Change::Port(dev) => {
                    info!(ifname = %dev.name, mtu = dev.mtu, mac = %crate::kernel::fmt_mac(&dev.mac), "interface changed");
                    if let Err(e) = self.writer.update_port(&dev) {
                        warn!(ifindex = dev.ifindex, error = %e, "updating the interface in the fast path");
                    }
                }
                Change::State(dev) => {
                    let state = if dev.up { "up" } else { "down" };
                    info!(ifname = %dev.name, ifindex = dev.ifindex, "interface {state}");
                }
                Change::Neighbour(ifindex, ip, mac) => {
                    if let Err(e) = self.writer.set_neighbour(ifindex, ip, mac) {
                        warn!(ifindex, %ip, error = %e, "updating a next hop's MAC");
                    }
                }
            }
        }
    }

    /// Gives next hops that have no MAC yet the one the kernel knows; the others are solicited
    /// at the next tick.
    pub(super) fn resolve_neighbours(&mut self) {
        if !self.writer.mirror().has_unresolved_neighbours() {
            return;
        }
        for (ifindex, ip) in self.writer.mirror().unresolved_neighbours() {
            if let Some(mac) = self.links.neighbour(ifindex, ip)
                && let Err(e) = self.writer.set_neighbour(ifindex, ip, mac)
            {
                warn!(ifindex, %ip, error = %e, "updating a next hop's MAC");
            }
        }
    }

    /// An interface that left the kernel: owners are told and released there, MFEs arriving
    /// there go, and the interface leaves the fast path. A later interface that reuses the
    /// name gets a new ifindex and starts from nothing.
    pub(super) fn interface_gone(&mut self, dev: NetDev, now: Duration) {
        self.release_port(dev, now, "interface removed from the kernel");
    }

    /// Everything of `dev` leaves the core and the fast path, and its programs are detached
    /// (it left the kernel, or the configuration).
    pub(super) fn release_port(&mut self, dev: NetDev, now: Duration, why: &str) {
        let ifindex = dev.ifindex;
        info!(ifindex, ifname = %dev.name, "{why}");
        self.manager.interface_gone(ifindex, now);
        self.settle(now);
        // The port can only go once no queued write names it.
        let applied = self.writer.drain(usize::MAX);
        self.applied(applied);
        // Static and held entries naming it can no longer forward: they go too.
        self.end_adopted_leases(Some(ifindex));
        for k in self.writer.remove_port(ifindex, &self.manager) {
            let (s, g) = (k.source, k.group);
            warn!(source = %s, group = %g, "static or held mfe used a removed interface; removed");
            self.hold.forget(&k);
        }
        self.fit_core();
    }

    /// Kills the leases adopted from a previous mgmd on `ifindex` (all with `None`).
    pub(super) fn end_adopted_leases(&mut self, ifindex: Option<u32>) {
        let ids = self.hold.end_leases(ifindex);
        self.writer.kill_leases(ids);
    }
}
