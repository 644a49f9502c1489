// SPDX-License-Identifier: MIT OR Apache-2.0
//! The MFE table and its indexes. Reads go straight to the map; every change goes through a
//! method here, so the indexes cannot drift: by expiry (a tick costs the MFEs that are due, not
//! a walk of the table), by incoming interface (a release costs the MFEs arriving there), and
//! the MFEs not proven by traffic yet, oldest first (the ones evicted when the table is full).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    ops::Deref,
    time::Duration,
};

use super::{Iface, Oil, Sg};

#[derive(Clone, Debug)]
pub(super) struct Mfe {
    pub iif: Iface,
    pub upstream: IpAddr,
    pub oifs: Oil,
    /// Kept out by a creation alert answer.
    pub disabled: BTreeSet<Iface>,
    pub created: Duration,
    pub expires: Duration,
    pub timeout: Duration,
}

#[derive(Debug, Default)]
pub(super) struct MfeTable {
    map: BTreeMap<Sg, Mfe>,
    by_expiry: BTreeSet<(Duration, Sg)>,
    by_iif: BTreeSet<(Iface, Sg)>,
    unproven: BTreeSet<(Duration, Sg)>,
}

impl Deref for MfeTable {
    type Target = BTreeMap<Sg, Mfe>;

    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl MfeTable {
    /// A new MFE (unproven until [`MfeTable::prove`]); replaces any MFE for `sg`.
    pub fn insert(&mut self, sg: Sg, m: Mfe) {
        self.remove(sg);
        self.by_expiry.insert((m.expires, sg));
        self.by_iif.insert((m.iif, sg));
        self.unproven.insert((m.created, sg));
        self.map.insert(sg, m);
    }

    pub fn remove(&mut self, sg: Sg) -> Option<Mfe> {
        let m = self.map.remove(&sg)?;
        self.by_expiry.remove(&(m.expires, sg));
        self.by_iif.remove(&(m.iif, sg));
        self.unproven.remove(&(m.created, sg));
        Some(m)
    }

    /// A new idle timeout, counted from `now`.
    pub fn set_timeout(&mut self, sg: Sg, timeout: Duration, now: Duration) {
        if let Some(m) = self.map.get_mut(&sg) {
            m.timeout = timeout;
        }
        self.refresh(sg, now);
    }

    /// Restarts the idle timer.
    pub fn refresh(&mut self, sg: Sg, now: Duration) {
        let Some(m) = self.map.get_mut(&sg) else { return };
        let expires = now.saturating_add(m.timeout);
        if expires != m.expires {
            self.by_expiry.remove(&(m.expires, sg));
            self.by_expiry.insert((expires, sg));
            m.expires = expires;
        }
    }

    pub fn set_iif(&mut self, sg: Sg, iif: Iface, upstream: IpAddr) {
        let Some(m) = self.map.get_mut(&sg) else { return };
        self.by_iif.remove(&(m.iif, sg));
        self.by_iif.insert((iif, sg));
        m.iif = iif;
        m.upstream = upstream;
    }

    pub fn set_oifs(&mut self, sg: Sg, oifs: Oil) {
        if let Some(m) = self.map.get_mut(&sg) {
            m.oifs = oifs;
        }
    }

    /// Traffic beyond its first packets: no longer the first to be evicted.
    pub fn prove(&mut self, sg: Sg) {
        if let Some(m) = self.map.get(&sg) {
            self.unproven.remove(&(m.created, sg));
        }
    }

    /// The oldest MFE never proven by traffic.
    pub fn oldest_unproven(&self) -> Option<Sg> {
        self.unproven.first().map(|&(_, sg)| sg)
    }

    /// When the MFE that expires first does.
    pub fn next_expiry(&self) -> Option<Duration> {
        self.by_expiry.first().map(|&(t, _)| t)
    }

    /// When the oldest MFE never proven by traffic was created.
    pub fn oldest_unproven_since(&self) -> Option<Duration> {
        self.unproven.first().map(|&(t, _)| t)
    }

    /// Up to `n` MFEs idle past their timeout at `now`, soonest due first.
    pub fn expired(&self, now: Duration, n: usize) -> Vec<Sg> {
        self.by_expiry.iter().take_while(|(t, _)| *t <= now).take(n).map(|&(_, sg)| sg).collect()
    }

    /// Up to `n` MFEs created at or before `created` and never proven by traffic, oldest
    /// first.
    pub fn unproven_since(&self, created: Duration, n: usize) -> Vec<Sg> {
        self.unproven.iter().take_while(|(t, _)| *t <= created).take(n).map(|&(_, sg)| sg).collect()
    }

    /// Up to `n` MFEs arriving on `iif`.
    pub fn arriving(&self, iif: Iface, n: usize) -> Vec<Sg> {
        let f = iif.family();
        let lo = (iif, Sg::new(f.any(), f.any()));
        self.by_iif.range(lo..).take_while(|(i, _)| *i == iif).take(n).map(|&(_, sg)| sg).collect()
    }

    /// The indexes agree with the map (for tests).
    #[cfg(test)]
    pub fn check(&self) {
        assert_eq!(self.by_expiry.len(), self.map.len());
        assert_eq!(self.by_iif.len(), self.map.len());
        for (sg, m) in &self.map {
            assert!(self.by_expiry.contains(&(m.expires, *sg)));
            assert!(self.by_iif.contains(&(m.iif, *sg)));
        }
        for (t, sg) in &self.unproven {
            assert_eq!(self.map.get(sg).map(|m| m.created), Some(*t));
        }
    }
}
