// SPDX-License-Identifier: MIT OR Apache-2.0
//! IGMP on one interface, the router side (RFC 3376 §5-§7, with RFC 2236 and 1112 hosts):
//! querier election, general and startup queries, the last-member queries a leave or a BLOCK
//! asks for, the groups' state, and the memberships that result. Pure: messages and the time
//! come in, [`Out`]s (queries to send, memberships to add or delete) come back.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
    time::Duration,
};

use super::{
    addr::Addr,
    group::{Ask, Compat, Forward, Group, Intervals},
    packet::{Message, Query},
};

/// 224.0.0.1: general queries go there.
pub const ALL_SYSTEMS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 1);

/// One interface's configuration (RFC 3376 §8 defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// The version of the queries sent (3, or 2 / 1 on links with older routers).
    pub version: u8,
    pub robustness: u8,
    pub query_interval: Duration,
    pub query_response_interval: Duration,
    pub last_member_interval: Duration,
    /// Last member query count (default: the robustness variable).
    pub last_member_count: u8,
    pub startup_interval: Duration,
    pub startup_count: u8,
    /// Take part in querier election (off: never query, only listen).
    pub querier: bool,
    /// Groups with state at once: reports for more are ignored (and counted), so a host
    /// reporting without end cannot take the router's memberships from the other links.
    pub max_groups: usize,
    /// Source records one group may have: sources beyond are ignored (and counted), for
    /// the same reason.
    pub max_sources: usize,
    /// Source records and groups the interface may hold in all (each at most one
    /// membership in mgmd): new ones beyond are ignored and counted. The daemon lowers it to
    /// the interface's share of what mgmd grants its connection.
    pub max_records: usize,
}

impl Default for Config {
    fn default() -> Self {
        let qi = Duration::from_secs(125);
        Self {
            version: 3,
            robustness: 2,
            query_interval: qi,
            query_response_interval: Duration::from_secs(10),
            last_member_interval: Duration::from_secs(1),
            last_member_count: 2,
            startup_interval: qi / 4,
            startup_count: 2,
            querier: true,
            max_groups: 4096,
            max_sources: 1024,
            max_records: usize::MAX,
        }
    }
}

impl Config {
    pub fn intervals(&self) -> Intervals {
        let rv = u32::from(self.robustness.max(1));
        let gmi = self.query_interval * rv + self.query_response_interval;
        Intervals {
            gmi,
            lmqt: self.last_member_interval * u32::from(self.last_member_count.max(1)),
            ohpi: gmi,
        }
    }

    /// How long another querier is believed present after its last query.
    pub fn other_querier_present(&self) -> Duration {
        self.query_interval * u32::from(self.robustness.max(1)) + self.query_response_interval / 2
    }
}

/// What the interface asks of the world.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Out<A = Ipv4Addr> {
    /// Send this query to `to` (224.0.0.1 for a general query, else the group).
    Send { to: A, query: Query<A> },
    /// A membership appeared: `source` `None` is (*,G).
    Join { source: Option<A>, group: A },
    /// A membership went.
    Leave { source: Option<A>, group: A },
}

/// Queries still to repeat for a group (last member queries: count × interval).
#[derive(Clone, Debug)]
struct Repeat<A> {
    group: A,
    sources: Option<Vec<A>>,
    left: u8,
    next: Duration,
}

/// The operator's view of an interface.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct View<A = Ipv4Addr> {
    pub querier: A,
    pub is_querier: bool,
    pub version: u8,
    pub groups: Vec<GroupView<A>>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct GroupView<A = Ipv4Addr> {
    pub group: A,
    /// "include" or "exclude".
    pub mode: &'static str,
    /// The oldest host version present (1, 2, 3).
    pub compat: u8,
    /// Seconds left on the group timer (EXCLUDE mode).
    pub timer_secs: Option<u64>,
    /// Sources and the seconds left on their timers (0 in EXCLUDE mode: excluded).
    pub sources: Vec<(A, u64)>,
}

/// What the interface keeps of one group besides its state.
#[derive(Clone, Copy, Debug, Default)]
struct Held {
    due: Option<Duration>,
    /// Its source records, and one for the group.
    records: usize,
}

#[derive(Debug)]
pub struct Interface<A = Ipv4Addr> {
    cfg: Config,
    addr: A,
    /// Another router that won the election, and until when it is believed present.
    other: Option<(A, Duration)>,
    startup_left: u8,
    next_general: Duration,
    groups: BTreeMap<A, Group<A>>,
    /// Per group with state: when its next timer runs out, and the records it holds.
    held: BTreeMap<A, Held>,
    /// The groups by their next expiry: what [`Interface::tick`] looks at (only what is due).
    by_due: BTreeSet<(Duration, A)>,
    /// Source records and groups held, in all: what `max_records` bounds.
    records: usize,
    repeats: Vec<Repeat<A>>,
    /// The memberships last announced (what the caller holds in MGM), by group.
    members: BTreeMap<A, BTreeSet<Option<A>>>,
    /// Reports for new groups ignored because `max_groups` were there.
    refused: u64,
    /// New sources ignored because their group had `max_sources`.
    refused_sources: u64,
}

impl<A: Addr> Interface<A> {
    /// An interface whose own address is `addr`, starting at `now` (its first general query
    /// is due at once).
    pub fn new(cfg: Config, addr: A, now: Duration) -> Self {
        Self {
            cfg,
            addr,
            other: None,
            startup_left: cfg.startup_count,
            next_general: now,
            groups: BTreeMap::new(),
            held: BTreeMap::new(),
            by_due: BTreeSet::new(),
            records: 0,
            repeats: Vec::new(),
            members: BTreeMap::new(),
            refused: 0,
            refused_sources: 0,
        }
    }

    pub fn is_querier(&self, now: Duration) -> bool {
        self.cfg.querier && self.other.is_none_or(|(_, until)| until <= now)
    }

    /// A message from `source` on this link (the caller checked that the source is on it).
    /// Its cost is that of the groups it names: only they are looked at again.
    pub fn receive(&mut self, source: A, msg: &Message<A>, now: Duration) -> Vec<Out<A>> {
        let iv = self.cfg.intervals();
        let mut asks = Vec::new();
        let mut out = Vec::new();
        match msg {
            Message::Query(q) => {
                if let Some(group) = self.heard_query(source, q, now, &iv) {
                    self.settle(group, now, &mut out);
                }
            }
            Message::Report { version, group } => {
                if let Some(g) = self.group(*group) {
                    asks.extend(g.old_report(*version, now, &iv).into_iter().map(|a| (*group, a)));
                    self.settle(*group, now, &mut out);
                }
            }
            Message::Leave { group } => {
                if let Some(g) = self.groups.get_mut(group) {
                    asks.extend(g.leave(now, &iv).into_iter().map(|a| (*group, a)));
                    self.settle(*group, now, &mut out);
                }
            }
            Message::ReportV3(records) => {
                for r in records {
                    // A record that only removes (TO_IN/BLOCK/IS_IN of nothing), for a group
                    // without state, leaves an empty one, which `settle` drops.
                    let max = self.cfg.max_sources;
                    let spare = self.cfg.max_records.saturating_sub(self.records);
                    if let Some(g) = self.group(r.group) {
                        // Known sources always count; new ones only while there is room.
                        let mut room = max.saturating_sub(g.source_count()).min(spare);
                        let sources: Vec<A> = r
                            .sources
                            .iter()
                            .copied()
                            .filter(|s| {
                                let ok = g.has_source(s) || room > 0;
                                room -= usize::from(ok && !g.has_source(s));
                                ok
                            })
                            .collect();
                        let refused = (r.sources.len() - sources.len()) as u64;
                        let a = g.record(r.kind, &sources, now, &iv);
                        self.refused_sources += refused;
                        asks.extend(a.into_iter().map(|a| (r.group, a)));
                        self.settle(r.group, now, &mut out);
                    }
                }
            }
        }
        if self.is_querier(now) {
            for (group, ask) in asks {
                self.ask(group, ask, now);
            }
        }
        out.extend(self.tick(now));
        out
    }

    /// Timers due at `now`: queries to send, states expired, memberships changed. Its cost
    /// is that of what is due.
    pub fn tick(&mut self, now: Duration) -> Vec<Out<A>> {
        let mut out = Vec::new();
        if self.other.is_some_and(|(_, until)| until <= now) {
            // The other querier went quiet: this router queries again, at once. Its members
            // last reported to the other querier's queries, which may have asked for an
            // answer at once (Max Resp Code 0) and then stopped: their timers would run out
            // before they can answer this router's first query (the Other Querier Present
            // Interval is only half a response interval shorter than the Group Membership
            // Interval). So every timer is refreshed as a report now would: no member that
            // answers loses its traffic over what another router on the link claimed.
            self.other = None;
            self.next_general = now;
            let floor = now + self.cfg.intervals().gmi;
            let groups: Vec<A> = self.groups.keys().copied().collect();
            for group in groups {
                if let Some(g) = self.groups.get_mut(&group) {
                    g.hold_until(floor);
                }
                self.settle(group, now, &mut out);
            }
        }
        if self.is_querier(now) && self.next_general <= now {
            out.push(self.general_query());
            // Startup: `startup_count` queries in all, an interval apart.
            self.startup_left = self.startup_left.saturating_sub(1);
            let every = if self.startup_left > 0 {
                self.cfg.startup_interval
            } else {
                self.cfg.query_interval
            };
            self.next_general = now + every;
        }
        let querier = self.is_querier(now);
        let mut repeats = std::mem::take(&mut self.repeats);
        repeats.retain_mut(|r| {
            if r.next > now {
                return true;
            }
            if querier {
                out.push(self.specific_query(r.group, r.sources.clone(), now));
            }
            r.left -= 1;
            r.next = now + self.cfg.last_member_interval;
            r.left > 0
        });
        self.repeats = repeats;
        while let Some(&(due, group)) = self.by_due.first()
            && due <= now
        {
            self.settle(group, now, &mut out);
        }
        out
    }

    /// Looks at `group` again at `now`: its expired timers, its place in the expiry index,
    /// its records, and the memberships it gives against those announced (the difference
    /// goes to `out`).
    fn settle(&mut self, group: A, now: Duration, out: &mut Vec<Out<A>>) {
        let mut want = BTreeSet::new();
        let mut now_held = Held::default();
        if let Some(g) = self.groups.get_mut(&group) {
            g.expire(now);
            if g.is_empty() {
                self.groups.remove(&group);
            } else {
                now_held = Held { due: g.next_expiry(), records: g.source_count() + 1 };
                match g.forward() {
                    Some(Forward::Any) => {
                        want.insert(None);
                    }
                    Some(Forward::Sources(s)) => want.extend(s.into_iter().map(Some)),
                    None => {}
                }
            }
        }
        let was = self.held.remove(&group).unwrap_or_default();
        if let Some(due) = was.due {
            self.by_due.remove(&(due, group));
        }
        self.records = self.records - was.records + now_held.records;
        if self.groups.contains_key(&group) {
            if let Some(due) = now_held.due {
                self.by_due.insert((due, group));
            }
            self.held.insert(group, now_held);
        }
        let had = self.members.remove(&group).unwrap_or_default();
        out.extend(had.difference(&want).map(|&source| Out::Leave { source, group }));
        out.extend(want.difference(&had).map(|&source| Out::Join { source, group }));
        if !want.is_empty() {
            self.members.insert(group, want);
        }
    }

    /// When [`Interface::tick`] next has something to do.
    pub fn next_wakeup(&self, now: Duration) -> Duration {
        let mut t = self.other.map_or(Duration::MAX, |(_, until)| until);
        if self.cfg.querier {
            t = t.min(self.next_general);
        }
        let repeats = self.repeats.iter().map(|r| r.next);
        let groups = self.by_due.first().map(|(due, _)| *due);
        repeats.chain(groups).fold(t, Duration::min).max(now)
    }

    /// Every membership gone (the daemon stops, or IGMP is disabled on the interface).
    pub fn clear(&mut self) -> Vec<Out<A>> {
        self.groups.clear();
        self.held.clear();
        self.by_due.clear();
        self.records = 0;
        self.repeats.clear();
        std::mem::take(&mut self.members)
            .into_iter()
            .flat_map(|(group, s)| s.into_iter().map(move |source| Out::Leave { source, group }))
            .collect()
    }

    /// Reports for new groups ignored at the `max_groups` limit.
    pub fn refused_groups(&self) -> u64 {
        self.refused
    }

    /// New sources ignored at the `max_sources` limit.
    pub fn refused_sources(&self) -> u64 {
        self.refused_sources
    }

    /// The memberships this interface holds now.
    pub fn memberships(&self) -> impl Iterator<Item = (Option<A>, A)> + '_ {
        self.members.iter().flat_map(|(g, s)| s.iter().map(move |s| (*s, *g)))
    }

    /// Whether this interface holds `m`.
    pub fn has_membership(&self, (source, group): (Option<A>, A)) -> bool {
        self.members.get(&group).is_some_and(|s| s.contains(&source))
    }

    /// Lowers (or raises) the bound on records: the daemon's share of mgmd's quota. What
    /// is held beyond stays until it expires; only new records are refused.
    pub fn set_max_records(&mut self, max: usize) {
        self.cfg.max_records = max;
    }

    pub fn view(&self, now: Duration) -> View<A> {
        let groups = self
            .groups
            .iter()
            .map(|(group, g)| {
                let (timer, sources) = g.timers(now);
                GroupView {
                    group: *group,
                    mode: if g.is_exclude() { "exclude" } else { "include" },
                    compat: g.compat(now) as u8,
                    timer_secs: timer.map(|t| t.as_secs()),
                    sources: sources.into_iter().map(|(s, t)| (s, t.as_secs())).collect(),
                }
            })
            .collect();
        let querier = match self.other {
            Some((q, until)) if until > now => q,
            _ if self.cfg.querier => self.addr,
            _ => A::UNSPECIFIED,
        };
        View { querier, is_querier: self.is_querier(now), version: self.cfg.version, groups }
    }

    /// The state for `group`, created if needed; `None` for groups never routed (224.0.0.x,
    /// ff02::/16).
    fn group(&mut self, group: A) -> Option<&mut Group<A>> {
        if !group.is_routed_group() {
            return None;
        }
        let full = self.groups.len() >= self.cfg.max_groups || self.records >= self.cfg.max_records;
        if !self.groups.contains_key(&group) && full {
            self.refused += 1;
            return None;
        }
        Some(self.groups.entry(group).or_default())
    }

    /// The group whose timers a query changed, if any.
    fn heard_query(&mut self, source: A, q: &Query<A>, now: Duration, iv: &Intervals) -> Option<A> {
        // Election: the lowest address queries (a source of 0.0.0.0 is a snooping switch's
        // proxy query and takes no part).
        if source != A::UNSPECIFIED && source < self.addr {
            self.other = Some((source, now + self.cfg.other_querier_present()));
        }
        if self.is_querier(now) || q.group == A::UNSPECIFIED || q.suppress {
            return None;
        }
        // A non-querier follows the querier's last member queries (§6.6.1), with this
        // router's own last member query time.
        let g = self.groups.get_mut(&q.group)?;
        if q.sources.is_empty() {
            g.heard_group_query(now, iv);
        } else {
            g.heard_source_query(&q.sources, now, iv);
        }
        Some(q.group)
    }

    /// Q(G) or Q(G,A): sent now, and count − 1 more times an interval apart.
    fn ask(&mut self, group: A, ask: Ask<A>, now: Duration) {
        let sources = match ask {
            Ask::Group => None,
            Ask::Sources(s) => Some(s),
        };
        // A repeat already under way for the same question is not doubled.
        self.repeats.retain(|r| !(r.group == group && r.sources == sources));
        self.repeats.push(Repeat {
            group,
            sources,
            left: self.cfg.last_member_count.max(1),
            next: now,
        });
    }

    fn general_query(&self) -> Out<A> {
        let query = Query {
            version: self.cfg.version,
            group: A::UNSPECIFIED,
            max_resp: self.cfg.query_response_interval,
            suppress: false,
            qrv: self.cfg.robustness.min(7),
            qqi: self.cfg.query_interval,
            sources: Vec::new(),
        };
        Out::Send { to: A::ALL_NODES, query }
    }

    /// A group(-and-source)-specific query, in the version the group's hosts understand (v2
    /// hosts get a v2 group query without sources; v1 hosts have none: a general one).
    fn specific_query(&self, group: A, sources: Option<Vec<A>>, now: Duration) -> Out<A> {
        let compat = self.groups.get(&group).map_or(Compat::V3, |g| g.compat(now));
        let version = self.cfg.version.min(compat as u8);
        if version == 1 {
            return self.general_query();
        }
        let query = Query {
            version,
            group,
            max_resp: self.cfg.last_member_interval,
            suppress: false,
            qrv: self.cfg.robustness.min(7),
            qqi: self.cfg.query_interval,
            sources: if version == 3 { sources.unwrap_or_default() } else { Vec::new() },
        };
        Out::Send { to: group, query }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{GroupRecord, RecordType};

    const ME: Ipv4Addr = Ipv4Addr::new(10, 2, 1, 1);
    const G: Ipv4Addr = Ipv4Addr::new(239, 1, 1, 1);
    const HOST: Ipv4Addr = Ipv4Addr::new(10, 2, 1, 2);

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn sends(out: &[Out]) -> Vec<(Ipv4Addr, u8, Ipv4Addr, usize)> {
        out.iter()
            .filter_map(|o| match o {
                Out::Send { to, query } => {
                    Some((*to, query.version, query.group, query.sources.len()))
                }
                _ => None,
            })
            .collect()
    }

    fn v3(kind: RecordType, sources: &[Ipv4Addr]) -> Message {
        Message::ReportV3(vec![GroupRecord { kind, group: G, sources: sources.to_vec() }])
    }

    #[test]
    fn startup_queries_then_the_query_interval() {
        let mut i = Interface::new(Config::default(), ME, secs(0));
        assert_eq!(sends(&i.tick(secs(0))), vec![(ALL_SYSTEMS, 3, Ipv4Addr::UNSPECIFIED, 0)]);
        assert!(i.tick(secs(30)).is_empty(), "startup interval is 31.25 s");
        assert_eq!(sends(&i.tick(secs(32))).len(), 1, "the second (and last) startup query");
        assert_eq!(i.next_wakeup(secs(32)), secs(32 + 125));
    }

    #[test]
    fn a_join_and_a_leave_become_a_membership_and_its_end() {
        let mut i = Interface::new(Config::default(), ME, secs(0));
        i.tick(secs(0));
        let out = i.receive(HOST, &Message::Report { version: 2, group: G }, secs(1));
        assert_eq!(out, vec![Out::Join { source: None, group: G }]);
        // The v2 leave: two group queries, v2 (the host is v2), a second apart; then gone.
        let out = i.receive(HOST, &Message::Leave { group: G }, secs(10));
        assert_eq!(sends(&out), vec![(G, 2, G, 0)]);
        assert_eq!(sends(&i.tick(secs(11))), vec![(G, 2, G, 0)]);
        assert_eq!(i.tick(secs(12)), vec![Out::Leave { source: None, group: G }]);
    }

    #[test]
    fn a_silent_host_expires_after_the_group_membership_interval() {
        let mut i = Interface::new(Config::default(), ME, secs(0));
        i.receive(HOST, &v3(RecordType::ModeIsExclude, &[]), secs(0));
        assert!(i.memberships().count() == 1);
        i.tick(secs(259));
        assert!(i.memberships().count() == 1);
        assert_eq!(i.tick(secs(260)), vec![Out::Leave { source: None, group: G }]);
    }

    #[test]
    fn include_sources_are_source_memberships() {
        let (s1, s2) = (Ipv4Addr::new(10, 1, 0, 1), Ipv4Addr::new(10, 1, 0, 2));
        let mut i = Interface::new(Config::default(), ME, secs(0));
        i.tick(secs(0));
        let out = i.receive(HOST, &v3(RecordType::AllowNewSources, &[s1, s2]), secs(1));
        assert_eq!(out.len(), 2);
        // BLOCK s2: a group-and-source query for it, twice, then its membership goes.
        let out = i.receive(HOST, &v3(RecordType::BlockOldSources, &[s2]), secs(5));
        assert_eq!(sends(&out), vec![(G, 3, G, 1)]);
        i.tick(secs(6));
        assert_eq!(i.tick(secs(7)), vec![Out::Leave { source: Some(s2), group: G }]);
        assert_eq!(i.memberships().collect::<Vec<_>>(), vec![(Some(s1), G)]);
    }

    #[test]
    fn the_lowest_address_queries_and_the_other_takes_over_when_it_goes_quiet() {
        let mut i = Interface::new(Config::default(), ME, secs(0));
        i.tick(secs(0));
        let lower = Ipv4Addr::new(10, 2, 1, 0);
        let q = Query {
            version: 3,
            group: Ipv4Addr::UNSPECIFIED,
            max_resp: secs(10),
            suppress: false,
            qrv: 2,
            qqi: secs(125),
            sources: vec![],
        };
        i.receive(lower, &Message::Query(q.clone()), secs(1));
        assert!(!i.is_querier(secs(1)));
        assert_eq!(i.view(secs(1)).querier, lower);
        // A higher address does not win.
        i.receive(Ipv4Addr::new(10, 2, 1, 9), &Message::Query(q), secs(2));
        assert_eq!(i.view(secs(2)).querier, lower);
        // No query sent while another querier is present (255 s).
        assert!(sends(&i.tick(secs(200))).is_empty());
        assert_eq!(sends(&i.tick(secs(256))).len(), 1, "took over");
        assert!(i.is_querier(secs(256)));
    }

    /// A rogue querier with a lower address asks for answers at once (Max Resp Code 0), then
    /// goes silent: when this router takes the role back, the members that answered the rogue
    /// keep their membership until they can answer this router's queries.
    #[test]
    fn a_takeover_after_a_rogue_querier_keeps_the_members_that_answer() {
        let mut i = Interface::new(Config::default(), ME, secs(0));
        i.tick(secs(0));
        let rogue = Ipv4Addr::new(10, 2, 1, 0);
        let q = Query {
            version: 3,
            group: Ipv4Addr::UNSPECIFIED,
            max_resp: secs(0),
            suppress: false,
            qrv: 1,
            qqi: secs(1),
            sources: vec![],
        };
        let s1 = Ipv4Addr::new(10, 1, 0, 1);
        for t in 0..=15 {
            i.receive(rogue, &Message::Query(q.clone()), secs(t));
            // The host answers each at once.
            i.receive(HOST, &v3(RecordType::ModeIsExclude, &[]), secs(t));
            let other = Ipv4Addr::new(239, 2, 2, 2);
            let allow =
                GroupRecord { kind: RecordType::ModeIsInclude, group: other, sources: vec![s1] };
            i.receive(HOST, &Message::ReportV3(vec![allow]), secs(t));
        }
        assert!(!i.is_querier(secs(15)));
        // Silent from 15 s: this router takes over at 15 + 255 s and queries (10 s to answer).
        let out = i.tick(secs(270));
        assert_eq!(sends(&out).len(), 1, "took over: {out:?}");
        for t in 271..=285 {
            let out = i.tick(secs(t));
            assert!(out.iter().all(|o| !matches!(o, Out::Leave { .. })), "at {t} s: {out:?}");
        }
        assert_eq!(i.memberships().count(), 2);
        // A member that does not answer still goes, a group membership interval later.
        let leaves = |out: Vec<Out>| out.iter().filter(|o| matches!(o, Out::Leave { .. })).count();
        assert_eq!(leaves(i.tick(secs(270 + 259))), 0);
        assert_eq!(leaves(i.tick(secs(270 + 260))), 2);
    }

    #[test]
    fn link_local_groups_are_never_members() {
        let mut i = Interface::new(Config::default(), ME, secs(0));
        let mdns = Ipv4Addr::new(224, 0, 0, 251);
        let out = i.receive(HOST, &Message::Report { version: 2, group: mdns }, secs(1));
        assert!(out.iter().all(|o| !matches!(o, Out::Join { .. })));
    }

    #[test]
    fn groups_beyond_the_limit_are_refused_and_counted() {
        let cfg = Config { max_groups: 2, ..Config::default() };
        let mut i = Interface::new(cfg, ME, secs(0));
        for n in 1..=3u8 {
            let g = Ipv4Addr::new(239, 0, 0, n);
            i.receive(HOST, &Message::Report { version: 2, group: g }, secs(1));
        }
        let groups: Vec<Ipv4Addr> = i.memberships().map(|m| m.1).collect();
        assert_eq!(groups, [Ipv4Addr::new(239, 0, 0, 1), Ipv4Addr::new(239, 0, 0, 2)]);
        assert_eq!(i.refused_groups(), 1);
        // A group already there is still refreshed.
        let out = i.receive(HOST, &Message::Report { version: 2, group: groups[0] }, secs(2));
        assert!(out.iter().all(|o| !matches!(o, Out::Leave { .. })));
        assert_eq!(i.refused_groups(), 1);
    }

    #[test]
    fn sources_beyond_the_limit_are_refused_and_counted() {
        let cfg = Config { max_sources: 2, ..Config::default() };
        let mut i = Interface::new(cfg, ME, secs(0));
        let s = |n: u8| Ipv4Addr::new(10, 1, 0, n);
        i.receive(HOST, &v3(RecordType::AllowNewSources, &[s(1), s(2), s(3)]), secs(1));
        i.receive(HOST, &v3(RecordType::AllowNewSources, &[s(1), s(4)]), secs(2));
        let m: Vec<_> = i.memberships().collect();
        assert_eq!(m, [(Some(s(1)), G), (Some(s(2)), G)]);
        assert_eq!(i.refused_sources(), 2);
    }

    /// The same state machine on IPv6 addresses (MLDv2 mirrors IGMPv3): general queries to
    /// ff02::1, the lowest link-local address wins the election, link-scoped groups get no
    /// state, a leave is asked about count times, then the membership goes.
    #[test]
    fn the_same_logic_runs_on_ipv6() {
        use std::net::Ipv6Addr;
        let me: Ipv6Addr = "fe80::2".parse().unwrap();
        let host: Ipv6Addr = "fe80::99".parse().unwrap();
        let g: Ipv6Addr = "ff05::1:3".parse().unwrap();
        let mut i = Interface::new(Config::default(), me, secs(0));
        let out = i.tick(secs(0));
        assert!(matches!(&out[..], [Out::Send { to, .. }] if *to == Ipv6Addr::ALL_NODES));
        let rec =
            |kind, group| Message::ReportV3(vec![GroupRecord { kind, group, sources: vec![] }]);
        let link_scoped: Ipv6Addr = "ff02::fb".parse().unwrap();
        i.receive(host, &rec(RecordType::ChangeToExclude, link_scoped), secs(1));
        let out = i.receive(host, &rec(RecordType::ChangeToExclude, g), secs(1));
        assert_eq!(out, [Out::Join { source: None, group: g }]);
        let out = i.receive(host, &rec(RecordType::ChangeToInclude, g), secs(2));
        assert!(matches!(&out[..], [Out::Send { to, query }] if *to == g && query.group == g));
        let out = i.tick(secs(3));
        assert_eq!(out.len(), 1, "the second last-member query: {out:?}");
        assert_eq!(i.tick(secs(4)), [Out::Leave { source: None, group: g }]);
        // A router with a lower link-local address takes over the querier's role.
        let lower: Ipv6Addr = "fe80::1".parse().unwrap();
        let q = Query {
            version: 3,
            group: Ipv6Addr::UNSPECIFIED,
            max_resp: secs(10),
            suppress: false,
            qrv: 2,
            qqi: secs(125),
            sources: vec![],
        };
        i.receive(lower, &Message::Query(q), secs(5));
        assert!(!i.is_querier(secs(5)));
        assert_eq!(i.view(secs(5)).querier, lower);
    }
}
