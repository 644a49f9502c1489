// SPDX-License-Identifier: MIT OR Apache-2.0
//! A restart: what a previous mgmd left in the pinned maps is adopted and held while the
//! clients come back, then re-validated through the core.

use super::*;

impl<D: Dataplane> Daemon<D> {
    /// Takes over what a previous mgmd left in the pinned maps (a restart): forwarding goes
    /// on unchanged; the adopted MFEs are held for `hold` while clients reconnect and
    /// re-create their state, then re-validated through the core (see docs/mgm-api.md).
    /// The kernel's links must be known first (a [`KernelEvent::Snapshot`]).
    pub fn adopt(&mut self, a: Adopted, now: Duration, hold: Duration) -> anyhow::Result<()> {
        let keys = self.writer.adopt(a)?;
        let ports: Vec<u32> = self.writer.mirror().ports().map(|(i, _)| i).collect();
        for ifindex in ports {
            match self.links.device(ifindex).cloned() {
                Some(dev) => self.manage(dev)?,
                None => {
                    // Gone while mgmd was away: so are the MFEs using it.
                    self.writer.remove_port(ifindex, &self.manager);
                }
            }
        }
        // Static entries stay static; the others wait for their clients.
        self.writer.adopt_statics();
        self.fit_core();
        let m = self.writer.mirror();
        let core = |x: &crate::fastpath::InstalledMfe| x.origin == crate::fastpath::Origin::Core;
        let held: BTreeSet<Sg> = keys.into_iter().filter(|k| m.get(k).is_some_and(core)).collect();
        self.hold.start(held, m, now.saturating_add(hold));
        let (mfes, leases) = self.hold.sizes();
        let statics = self.writer.static_count();
        info!(
            mfes,
            statics,
            leases,
            hold_secs = hold.as_secs(),
            "took over the pinned fast path; forwarding continues"
        );
        Ok(())
    }

    /// How long an MFE's creation may take: both callbacks unanswered, and a second.
    pub(super) fn creation_grace(&self) -> Duration {
        self.manager.answer_timeout().saturating_mul(2).saturating_add(Duration::from_secs(1))
    }

    /// The restart hold: see [`Daemon::adopt`].
    pub(super) fn tick_hold(&mut self, now: Duration) {
        match self.hold.tick(now, self.creation_grace()) {
            Step::Nothing => {}
            Step::Revalidate(keys) => {
                for k in keys {
                    if self.manager.knows(k) {
                        continue; // its install is queued or coming
                    }
                    let Some(iif) = self.writer.mirror().get(&k).map(|m| m.iif) else { continue };
                    self.manager.new_packet(k, iif, &[], now);
                    if !self.manager.knows(k) {
                        // Nobody owns its incoming interface any more.
                        self.hold.forget(&k);
                        self.writer.queue_remove(k);
                    }
                }
                self.settle(now);
            }
            Step::Finish(keys) => {
                for k in keys {
                    self.writer.queue_remove(k);
                }
                let applied = self.writer.drain(WRITE_BATCH);
                self.applied(applied);
                self.end_adopted_leases(None);
                info!("restart hold over: the fast path is the core's again");
            }
        }
    }

    /// The core's room: the fast path's less what static entries take.
    pub(crate) fn fit_core(&mut self) {
        let room = manager_room(self.writer.dataplane(), self.writer.static_count());
        self.manager.set_max_mfes(room);
    }
}
