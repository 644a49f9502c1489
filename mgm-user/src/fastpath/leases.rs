// SPDX-License-Identifier: MIT OR Apache-2.0
//! The mirror's leases: one per (interface, next hop, owner), opened before a take, killed
//! by a release in one write, reaped once no outgoing list names them.

use super::*;

impl<F: FastPath> Mirror<F> {
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
}
