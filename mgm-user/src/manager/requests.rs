// SPDX-License-Identifier: MIT OR Apache-2.0
//! Callbacks waiting for their answer, indexed so that what touches them costs the requests
//! it touches: by deadline (a tick), by client (deregistration) and by (S,G) (an MFE deleted
//! or a creation abandoned).

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use super::{Handle, RequestId, Sg};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Awaiting {
    Rpf(Sg),
    Creation(Sg),
    PruneTimeout(Sg),
}

impl Awaiting {
    fn sg(self) -> Sg {
        match self {
            Self::Rpf(sg) | Self::Creation(sg) | Self::PruneTimeout(sg) => sg,
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Requests {
    by_id: BTreeMap<RequestId, (Handle, Awaiting, Duration)>,
    by_deadline: BTreeSet<(Duration, RequestId)>,
    by_client: BTreeSet<(Handle, RequestId)>,
    by_sg: BTreeSet<(Sg, RequestId)>,
}

impl Requests {
    pub fn insert(&mut self, id: RequestId, to: Handle, awaiting: Awaiting, deadline: Duration) {
        self.remove(id);
        self.by_deadline.insert((deadline, id));
        self.by_client.insert((to, id));
        self.by_sg.insert((awaiting.sg(), id));
        self.by_id.insert(id, (to, awaiting, deadline));
    }

    pub fn get(&self, id: RequestId) -> Option<(Handle, Awaiting)> {
        self.by_id.get(&id).map(|&(to, a, _)| (to, a))
    }

    pub fn remove(&mut self, id: RequestId) -> Option<(Handle, Awaiting)> {
        let (to, a, deadline) = self.by_id.remove(&id)?;
        self.by_deadline.remove(&(deadline, id));
        self.by_client.remove(&(to, id));
        self.by_sg.remove(&(a.sg(), id));
        Some((to, a))
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.by_deadline.first().map(|&(d, _)| d)
    }

    /// Up to `n` requests whose deadline has passed at `now`, earliest first.
    pub fn due(&self, now: Duration, n: usize) -> Vec<RequestId> {
        self.by_deadline.iter().take_while(|(d, _)| *d <= now).take(n).map(|&(_, id)| id).collect()
    }

    /// The requests waiting for `h`.
    pub fn of_client(&self, h: Handle) -> Vec<RequestId> {
        let lo = (h, RequestId(0));
        self.by_client.range(lo..).take_while(|(to, _)| *to == h).map(|&(_, id)| id).collect()
    }

    /// Removes the requests about `sg` that `which` selects.
    pub fn remove_about(&mut self, sg: Sg, which: impl Fn(Awaiting) -> bool) {
        let lo = (sg, RequestId(0));
        let ids: Vec<RequestId> =
            self.by_sg.range(lo..).take_while(|(s, _)| *s == sg).map(|&(_, id)| id).collect();
        for id in ids {
            if self.by_id.get(&id).is_some_and(|&(_, a, _)| which(a)) {
                self.remove(id);
            }
        }
    }

    /// Every request, and the indexes agree with them (for tests).
    #[cfg(test)]
    pub fn check(&self) -> Vec<(RequestId, Handle, Awaiting)> {
        assert_eq!(self.by_deadline.len(), self.by_id.len());
        assert_eq!(self.by_client.len(), self.by_id.len());
        assert_eq!(self.by_sg.len(), self.by_id.len());
        let mut all = Vec::new();
        for (&id, &(to, a, d)) in &self.by_id {
            assert!(self.by_deadline.contains(&(d, id)));
            assert!(self.by_client.contains(&(to, id)));
            assert!(self.by_sg.contains(&(a.sg(), id)));
            all.push((id, to, a));
        }
        all
    }
}
