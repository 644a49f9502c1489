// SPDX-License-Identifier: MIT OR Apache-2.0
//! One group's router state on one interface (RFC 3376 §6): filter mode, group timer, source
//! timers, and the older-version host compatibility mode (§7.3). Pure: times are passed in
//! (`now`, and expiries as instants on the same clock), and what must happen on the link
//! comes back as [`Ask`]s (queries the querier sends).
//!
//! What it forwards, in MGM terms ([`Forward`]): INCLUDE {S1, ...} is an (S,G) membership per
//! source with a running timer; EXCLUDE mode is a (*,G) membership. The MGM API cannot express
//! "all sources but these", so EXCLUDE {X, Y} forwards every source, the blocked ones (Y)
//! included: hosts that excluded them drop them, as RFC 3376 allows a router to forward more
//! than asked (it never forwards less).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
    time::Duration,
};

use super::addr::Addr;

use super::packet::RecordType;

/// The timers a group's state depends on (RFC 3376 §8), from the interface's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Intervals {
    /// Group membership interval: robustness × query interval + query response interval.
    pub gmi: Duration,
    /// Last member query time: count × interval.
    pub lmqt: Duration,
    /// Older host present interval: robustness × query interval + query response interval.
    pub ohpi: Duration,
}

/// What the state asks of the link: the querier sends these (a non-querier does not).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ask<A = Ipv4Addr> {
    /// A group-specific query, Q(G).
    Group,
    /// A group-and-source-specific query, Q(G,A).
    Sources(Vec<A>),
}

/// What the group receives from the router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Forward<A = Ipv4Addr> {
    /// Every source: a (*,G) membership.
    Any,
    /// These sources only: an (S,G) membership each (never empty: no state means no entry).
    Sources(Vec<A>),
}

/// The compatibility mode: the oldest host version heard recently.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Compat {
    V1 = 1,
    V2 = 2,
    V3 = 3,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group<A = Ipv4Addr> {
    /// EXCLUDE mode while set: when it expires the group falls back to INCLUDE.
    group_timer: Option<Duration>,
    /// Source records: their timer's expiry (`Duration::ZERO`: not running, which in EXCLUDE
    /// mode means the source is excluded).
    sources: BTreeMap<A, Duration>,
    v1_host_until: Option<Duration>,
    v2_host_until: Option<Duration>,
}

impl<A> Default for Group<A> {
    fn default() -> Self {
        Self {
            group_timer: None,
            sources: BTreeMap::new(),
            v1_host_until: None,
            v2_host_until: None,
        }
    }
}

impl<A: Addr> Group<A> {
    pub fn is_exclude(&self) -> bool {
        self.group_timer.is_some()
    }

    /// The compatibility mode at `now`.
    pub fn compat(&self, now: Duration) -> Compat {
        if self.v1_host_until.is_some_and(|t| t > now) {
            Compat::V1
        } else if self.v2_host_until.is_some_and(|t| t > now) {
            Compat::V2
        } else {
            Compat::V3
        }
    }

    /// How many source records the group has.
    pub fn source_count(&self) -> usize {
        self.sources.len()
    }

    /// Whether `s` has a source record.
    pub fn has_source(&self, s: &A) -> bool {
        self.sources.contains_key(s)
    }

    /// Whether nothing is left (the group entry can go).
    pub fn is_empty(&self) -> bool {
        self.group_timer.is_none() && self.sources.is_empty()
    }

    /// What to forward (`None`: nothing).
    pub fn forward(&self) -> Option<Forward<A>> {
        if self.is_exclude() {
            return Some(Forward::Any);
        }
        let s: Vec<A> = self.sources.keys().copied().collect();
        (!s.is_empty()).then_some(Forward::Sources(s))
    }

    /// The sources and their remaining times, and the group timer's, for the operator's view.
    pub fn timers(&self, now: Duration) -> (Option<Duration>, Vec<(A, Duration)>) {
        let left = |t: Duration| t.saturating_sub(now);
        (self.group_timer.map(left), self.sources.iter().map(|(s, t)| (*s, left(*t))).collect())
    }

    /// Keeps every running timer (the group's, the sources') until `floor` at least: what
    /// a report received now would give. Excluded sources stay excluded.
    pub fn hold_until(&mut self, floor: Duration) {
        if let Some(t) = &mut self.group_timer {
            *t = (*t).max(floor);
        }
        for t in self.sources.values_mut().filter(|t| !t.is_zero()) {
            *t = (*t).max(floor);
        }
    }

    /// A v1 or v2 report (§7.3.2: an IS_EX({}) that marks an older host present).
    pub fn old_report(&mut self, version: u8, now: Duration, iv: &Intervals) -> Vec<Ask<A>> {
        let until = Some(now + iv.ohpi);
        if version == 1 {
            self.v1_host_until = until;
        } else {
            self.v2_host_until = until;
        }
        self.record(RecordType::ModeIsExclude, &[], now, iv)
    }

    /// A v2 leave: a TO_IN({}), ignored while v1 hosts are present (they cannot leave).
    pub fn leave(&mut self, now: Duration, iv: &Intervals) -> Vec<Ask<A>> {
        if self.compat(now) == Compat::V1 {
            return Vec::new();
        }
        self.record(RecordType::ChangeToInclude, &[], now, iv)
    }

    /// A v3 group record (§6.4), in the compatibility mode's terms (§7.3.2: with older hosts
    /// present, BLOCK is ignored and TO_EX(x) is TO_EX({})).
    pub fn record(
        &mut self,
        kind: RecordType,
        b: &[A],
        now: Duration,
        iv: &Intervals,
    ) -> Vec<Ask<A>> {
        use RecordType::*;
        let old = self.compat(now) != Compat::V3;
        let (kind, b): (RecordType, &[A]) = match kind {
            BlockOldSources if old => return Vec::new(),
            ChangeToExclude if old => (ChangeToExclude, &[]),
            _ => (kind, b),
        };
        // B as a set: every step below looks sources up in it (a list made a record of 1,024
        // sources against a group of 1,024 cost a million comparisons).
        let b: BTreeSet<A> = b.iter().copied().collect();
        let b = &b;
        let gmi = now + iv.gmi;
        let mut asks = Vec::new();
        match (self.is_exclude(), kind) {
            // INCLUDE (A)
            (false, ModeIsInclude | AllowNewSources) => self.set(b, gmi),
            (false, ChangeToInclude) => {
                let a_minus_b = self.without(b);
                self.set(b, gmi);
                asks.extend(self.ask_sources(a_minus_b, now, iv));
            }
            (false, BlockOldSources) => {
                let a_and_b = self.only(b);
                asks.extend(self.ask_sources(a_and_b, now, iv));
            }
            (false, ModeIsExclude | ChangeToExclude) => {
                // EXCLUDE (A*B, B-A): A*B keep their timers, B-A excluded, A-B deleted.
                let a_and_b = self.only(b);
                self.sources.retain(|s, _| b.contains(s));
                for s in b {
                    self.sources.entry(*s).or_insert(Duration::ZERO);
                }
                self.group_timer = Some(gmi);
                if kind == ChangeToExclude {
                    asks.extend(self.ask_sources(a_and_b, now, iv));
                }
            }
            // EXCLUDE (X, Y)
            (true, ModeIsInclude | AllowNewSources) => self.set(b, gmi),
            (true, ChangeToInclude) => {
                let x_minus_a: Vec<A> =
                    self.requested(now).into_iter().filter(|s| !b.contains(s)).collect();
                self.set(b, gmi);
                asks.extend(self.ask_sources(x_minus_a, now, iv));
                asks.extend(self.ask_group(now, iv));
            }
            (true, BlockOldSources) => {
                // A-X-Y get the group timer; then Q(G, A-Y).
                let gt = self.group_timer.unwrap_or(gmi);
                for s in b {
                    self.sources.entry(*s).or_insert(gt);
                }
                let a_minus_y: Vec<A> =
                    b.iter().copied().filter(|s| self.is_requested(s, now)).collect();
                asks.extend(self.ask_sources(a_minus_y, now, iv));
            }
            (true, ModeIsExclude | ChangeToExclude) => {
                // EXCLUDE (A-Y, Y*A): new ones (A-X-Y) start at GMI for IS_EX, at the group
                // timer for TO_EX; X-A and Y-A deleted.
                let start =
                    if kind == ModeIsExclude { gmi } else { self.group_timer.unwrap_or(gmi) };
                self.sources.retain(|s, _| b.contains(s));
                for s in b {
                    self.sources.entry(*s).or_insert(start);
                }
                self.group_timer = Some(gmi);
                if kind == ChangeToExclude {
                    let a_minus_y: Vec<A> =
                        b.iter().copied().filter(|s| self.is_requested(s, now)).collect();
                    asks.extend(self.ask_sources(a_minus_y, now, iv));
                }
            }
        }
        asks
    }

    /// The timers at `now` (§6.5): expired sources go (in INCLUDE mode) or become excluded
    /// (in EXCLUDE mode); an expired group timer turns the group to INCLUDE with the sources
    /// still running.
    pub fn expire(&mut self, now: Duration) {
        if self.group_timer.is_some_and(|t| t <= now) {
            self.group_timer = None;
            self.sources.retain(|_, t| *t > now);
        }
        if self.is_exclude() {
            for t in self.sources.values_mut() {
                if *t <= now {
                    *t = Duration::ZERO;
                }
            }
        } else {
            self.sources.retain(|_, t| *t > now);
        }
    }

    /// The earliest instant something expires (for the caller's timer).
    pub fn next_expiry(&self) -> Option<Duration> {
        let sources = self.sources.values().copied().filter(|t| !t.is_zero());
        self.group_timer.into_iter().chain(sources).min()
    }

    /// A group-specific query heard from the querier (§6.6.1): a non-querier lowers its group
    /// timer to LMQT, as the querier did.
    pub fn heard_group_query(&mut self, now: Duration, iv: &Intervals) {
        if let Some(t) = &mut self.group_timer {
            *t = (*t).min(now + iv.lmqt);
        }
    }

    /// The same for a group-and-source-specific query.
    pub fn heard_source_query(&mut self, sources: &[A], now: Duration, iv: &Intervals) {
        for s in sources {
            if let Some(t) = self.sources.get_mut(s)
                && !t.is_zero()
            {
                *t = (*t).min(now + iv.lmqt);
            }
        }
    }

    fn set(&mut self, b: &BTreeSet<A>, until: Duration) {
        for s in b {
            self.sources.insert(*s, until);
        }
    }

    fn is_requested(&self, s: &A, now: Duration) -> bool {
        self.sources.get(s).is_some_and(|t| *t > now)
    }

    /// X in EXCLUDE mode, A in INCLUDE mode: sources with a running timer.
    fn requested(&self, now: Duration) -> Vec<A> {
        self.sources.iter().filter(|(_, t)| **t > now).map(|(s, _)| *s).collect()
    }

    fn only(&self, b: &BTreeSet<A>) -> Vec<A> {
        self.sources.keys().copied().filter(|s| b.contains(s)).collect()
    }

    fn without(&self, b: &BTreeSet<A>) -> Vec<A> {
        self.sources.keys().copied().filter(|s| !b.contains(s)).collect()
    }

    /// Q(G,A): the sources' timers lowered to LMQT, and the query asked for.
    fn ask_sources(&mut self, a: Vec<A>, now: Duration, iv: &Intervals) -> Option<Ask<A>> {
        let a: Vec<A> = a.into_iter().filter(|s| self.is_requested(s, now)).collect();
        if a.is_empty() {
            return None;
        }
        for s in &a {
            if let Some(t) = self.sources.get_mut(s) {
                *t = (*t).min(now + iv.lmqt);
            }
        }
        Some(Ask::Sources(a))
    }

    /// Q(G): the group timer lowered to LMQT, and the query asked for.
    fn ask_group(&mut self, now: Duration, iv: &Intervals) -> Option<Ask<A>> {
        let t = self.group_timer.as_mut()?;
        *t = (*t).min(now + iv.lmqt);
        Some(Ask::Group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RecordType::*;

    const IV: Intervals = Intervals {
        gmi: Duration::from_secs(260),
        lmqt: Duration::from_secs(2),
        ohpi: Duration::from_secs(260),
    };

    fn s(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 1, 0, n)
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn include_sources_come_and_go_with_their_timers() {
        let mut g = Group::<Ipv4Addr>::default();
        assert!(g.record(ModeIsInclude, &[s(1), s(2)], secs(0), &IV).is_empty());
        assert_eq!(g.forward(), Some(Forward::Sources(vec![s(1), s(2)])));
        // BLOCK (2): asked about, its timer lowered to LMQT; nobody answers: gone.
        assert_eq!(
            g.record(BlockOldSources, &[s(2), s(9)], secs(10), &IV),
            vec![Ask::Sources(vec![s(2)])]
        );
        g.expire(secs(12));
        assert_eq!(g.forward(), Some(Forward::Sources(vec![s(1)])));
        // TO_IN {} (a last leave): asked about s1, then gone, the group empty.
        assert_eq!(g.record(ChangeToInclude, &[], secs(20), &IV), vec![Ask::Sources(vec![s(1)])]);
        g.expire(secs(22));
        assert!(g.is_empty() && g.forward().is_none());
    }

    #[test]
    fn exclude_mode_forwards_any_source_and_falls_back_to_include() {
        let mut g = Group::<Ipv4Addr>::default();
        g.record(AllowNewSources, &[s(1)], secs(0), &IV);
        // TO_EX {1, 2}: s1 kept (A*B), s2 excluded (B-A), asked about A*B.
        assert_eq!(
            g.record(ChangeToExclude, &[s(1), s(2)], secs(1), &IV),
            vec![Ask::Sources(vec![s(1)])]
        );
        assert!(g.is_exclude());
        assert_eq!(g.forward(), Some(Forward::Any));
        // A host asks for s3 by ALLOW: still EXCLUDE; the group timer runs out: INCLUDE {3}.
        g.record(AllowNewSources, &[s(3)], secs(100), &IV);
        g.expire(secs(262));
        assert!(!g.is_exclude());
        assert_eq!(g.forward(), Some(Forward::Sources(vec![s(3)])));
        g.expire(secs(361));
        assert!(g.is_empty());
    }

    #[test]
    fn a_v3_leave_from_exclude_asks_for_the_group_and_ends_it() {
        let mut g = Group::<Ipv4Addr>::default();
        g.record(ModeIsExclude, &[], secs(0), &IV);
        assert_eq!(g.record(ChangeToInclude, &[], secs(5), &IV), vec![Ask::Group]);
        assert_eq!(g.next_expiry(), Some(secs(7)));
        g.expire(secs(7));
        assert!(g.is_empty());
        // Answered in time instead: the group stays.
        let mut g = Group::<Ipv4Addr>::default();
        g.record(ModeIsExclude, &[], secs(0), &IV);
        g.record(ChangeToInclude, &[], secs(5), &IV);
        g.record(ModeIsExclude, &[], secs(6), &IV);
        g.expire(secs(7));
        assert_eq!(g.forward(), Some(Forward::Any));
    }

    #[test]
    fn older_hosts_set_the_compatibility_mode() {
        let mut g = Group::<Ipv4Addr>::default();
        g.old_report(2, secs(0), &IV);
        assert_eq!((g.compat(secs(1)), g.forward()), (Compat::V2, Some(Forward::Any)));
        // v2 mode: BLOCK is ignored, TO_EX(x) is TO_EX({}).
        assert!(g.record(BlockOldSources, &[s(1)], secs(2), &IV).is_empty());
        g.record(ChangeToExclude, &[s(1)], secs(3), &IV);
        assert_eq!(g.timers(secs(3)).1, vec![]);
        // A v2 leave asks for the group.
        assert_eq!(g.leave(secs(4), &IV), vec![Ask::Group]);
        // A v1 host: leaves are ignored until it is gone.
        let mut g = Group::<Ipv4Addr>::default();
        g.old_report(1, secs(0), &IV);
        assert!(g.leave(secs(1), &IV).is_empty());
        assert_eq!(g.compat(secs(261)), Compat::V3, "back to v3 when the old host is gone");
    }

    #[test]
    fn a_non_querier_lowers_its_timers_as_the_querier_asks() {
        let mut g = Group::<Ipv4Addr>::default();
        g.record(ModeIsExclude, &[], secs(0), &IV);
        g.heard_group_query(secs(10), &IV);
        assert_eq!(g.next_expiry(), Some(secs(12)));
        let mut g = Group::<Ipv4Addr>::default();
        g.record(ModeIsInclude, &[s(1), s(2)], secs(0), &IV);
        g.heard_source_query(&[s(2)], secs(10), &IV);
        g.expire(secs(12));
        assert_eq!(g.forward(), Some(Forward::Sources(vec![s(1)])));
    }
}
