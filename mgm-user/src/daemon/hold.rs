// SPDX-License-Identifier: MIT OR Apache-2.0
//! The restart hold: after a restart, the MFEs and leases adopted from the pinned maps keep
//! forwarding while clients reconnect and re-create their state; then the MFEs the core has
//! not re-created are offered to it as new traffic, and those it does not take go.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use crate::manager::Sg;

use crate::fastpath::{FastPath, Mirror};

/// Where the restart hold is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Clients reconnect and re-create their state; adopted MFEs keep forwarding.
    Until(Duration),
    /// Adopted MFEs were handed to the core as if their traffic had just arrived; those it
    /// does not re-create by this time go.
    Revalidating(Duration),
    Done,
}

/// What the hold asks of the daemon at a tick.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Nothing,
    /// Offer these adopted MFEs to the core (as new traffic on their incoming interface).
    Revalidate(Vec<Sg>),
    /// The hold is over: remove these (and every adopted lease is dead).
    Finish(Vec<Sg>),
}

pub struct RestartHold {
    /// Adopted MFEs that the core has not re-created.
    held: BTreeSet<Sg>,
    /// Adopted leases still alive, by lease id, with their interface.
    leases: BTreeMap<u32, u32>,
    stage: Stage,
}

impl Default for RestartHold {
    fn default() -> Self {
        Self { held: BTreeSet::new(), leases: BTreeMap::new(), stage: Stage::Done }
    }
}

impl RestartHold {
    /// Starts a hold over `held` and the live leases of `mirror` until `until`.
    pub fn start<F: FastPath>(&mut self, held: BTreeSet<Sg>, mirror: &Mirror<F>, until: Duration) {
        self.held = held;
        self.leases = mirror.live_leases();
        self.stage = Stage::Until(until);
    }

    /// (held MFEs, adopted leases alive).
    pub fn sizes(&self) -> (usize, usize) {
        (self.held.len(), self.leases.len())
    }

    pub fn is_held(&self, key: &Sg) -> bool {
        self.held.contains(key)
    }

    /// The core (or a static entry) took `key` over.
    pub fn forget(&mut self, key: &Sg) {
        self.held.remove(key);
    }

    /// Forgets the adopted leases on `ifindex` (all with `None`) and returns them, to be
    /// killed: a release or removal there during the hold stops the held copies too
    /// (conservative: they may be another next hop's).
    pub fn end_leases(&mut self, ifindex: Option<u32>) -> Vec<u32> {
        let ids: Vec<u32> = self
            .leases
            .iter()
            .filter(|(_, i)| ifindex.is_none_or(|x| x == **i))
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            self.leases.remove(id);
        }
        ids
    }

    /// Advances the hold; `grace` is how long re-validation may take.
    pub fn tick(&mut self, now: Duration, grace: Duration) -> Step {
        match self.stage {
            Stage::Until(t) if now >= t => {
                self.stage = Stage::Revalidating(now.saturating_add(grace));
                Step::Revalidate(self.held.iter().copied().collect())
            }
            Stage::Revalidating(t) if now >= t || self.held.is_empty() => {
                self.stage = Stage::Done;
                Step::Finish(std::mem::take(&mut self.held).into_iter().collect())
            }
            _ => Step::Nothing,
        }
    }
}
