// SPDX-License-Identifier: MIT OR Apache-2.0
//! The Multicast Group Manager: the semantics of RRAS `mgm.h` (see docs/mgm-reference.md),
//! as a pure, synchronous state machine. No I/O, no clock: time comes in as `now` (a monotonic
//! [`Duration`] since an arbitrary epoch). Every call returns its result code; what it causes
//! (fast-path writes, callbacks) is queued and collected with [`Manager::take_effects`].
//!
//! Callbacks that MGM calls synchronously and whose answer it uses (RPF, creation alert, the
//! prune alert's timeout) become requests with an id; the client answers with
//! `answer_rpf`/`answer_creation`/`answer_prune`, and [`Manager::tick`] applies the documented
//! default when no answer came by the deadline.
//!
//! Choices where the spec is silent (also in docs/mgm-api.md):
//! * taking an interface one already owns is an idempotent success;
//! * memberships only on interfaces the client owns (else INVALID_PARAMETER);
//! * deleting a membership that does not exist: NOT_FOUND;
//! * releasing the routing owner's interface deletes the MFEs whose incoming interface it is;
//! * the prune alert with member-delete = false fires when an MFE's outgoing list becomes empty
//!   (including an MFE created empty), to the routing owner of its incoming interface;
//! * join/prune alerts go to routing protocols only, never to IGMP.
//!
//! The state and its small accessors are here; the calls are beside it by concern:
//! `clients.rs` (registration, ownership, releases), `memberships.rs` (memberships, outgoing
//! lists, alerts), `creation.rs` (MFE creation, lifetime, deletion), `queries.rs` (GetMfe, the
//! walks, SetMfe, group enumerations), over the indexes of `table.rs` and `requests.rs`.

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    net::IpAddr,
    time::Duration,
};

use serde::{Deserialize, Serialize};

use self::{
    requests::{Awaiting, Requests},
    table::{Mfe, MfeTable},
};

mod clients;
mod creation;
mod memberships;
mod queries;
mod requests;
mod table;

/// The MGM vocabulary is the protocol's (declared once, in mgm-proto): the core works in it.
use mgm_proto::MembershipArgs;
pub use mgm_proto::types::{
    ClientInfo, DeleteReason, EnumHandle, EnumType, Event, Family, Handle, IfEntry, Iface,
    MGM_FORWARD_STATE_FLAG, MGM_JOIN_STATE_FLAG, MembershipInfo, MfeView, MgmError, MgmResult,
    OwnerInfo, PROTO_IP_IGMP, RequestId, Sg, SourceGroupEntry, never_routed,
};

/// The longest MFE timeout a prune answer may set: 2^32 − 1 s, the range of RRAS's 32-bit
/// timeout (136 years, so "never" in practice).
pub const MAX_MFE_TIMEOUT: Duration = Duration::from_secs(u32::MAX as u64);
/// Requests and MFEs a [`Manager::tick`] handles at most, of each (a million MFEs created
/// at once also expire at once: they go in steps).
pub const TICK_BATCH: usize = 1024;
/// How long an MFE lives that carried no traffic beyond the packets that created it (a
/// sprayed one-packet flow must not hold its slot for the whole idle timeout).
pub const UNPROVEN_LIFE: Duration = Duration::from_secs(60);

/// A membership's (source, group): (S,G), (*,G) or (*,*) of one family. Stored as the API
/// says it, the unspecified address meaning "any", so (*,*) keeps its family and the order
/// is by group, then source, with "any" first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pattern {
    group: IpAddr,
    source: IpAddr,
}

impl Pattern {
    /// From the API's (address, mask) pairs: masks are all-ones (exact) or zero (any); address
    /// 0 means any. Ranges are not supported by this API version. All four of one family.
    pub fn from_masks(
        source: IpAddr,
        source_mask: IpAddr,
        group: IpAddr,
        group_mask: IpAddr,
    ) -> MgmResult<Self> {
        let family = Family::of(group);
        if [source, source_mask, group_mask].iter().any(|a| Family::of(*a) != family) {
            return Err(MgmError::InvalidParameter);
        }
        // Exact, or "any" (which only the unspecified address may be).
        let one = |addr: IpAddr, mask: IpAddr| -> MgmResult<IpAddr> {
            if mask == family.ones() || (addr.is_unspecified() && mask.is_unspecified()) {
                Ok(addr)
            } else {
                Err(MgmError::InvalidParameter)
            }
        };
        let p = Self { source: one(source, source_mask)?, group: one(group, group_mask)? };
        match (p.group(), p.source()) {
            (Some(g), _) if !g.is_multicast() => Err(MgmError::InvalidParameter),
            // (S,*) is not one of the three shapes.
            (None, Some(_)) => Err(MgmError::InvalidParameter),
            (_, Some(s)) if Sg::checked(s, p.group).is_err() => Err(MgmError::InvalidParameter),
            _ => Ok(p),
        }
    }

    /// A membership method's (source, group) (INVALID_PARAMETER for what is not one of the
    /// three shapes).
    pub fn of(a: &MembershipArgs) -> MgmResult<Self> {
        let f = Family::of(a.group);
        let source = a.source.unwrap_or(f.any());
        let mask = |addr: IpAddr, m: Option<IpAddr>| {
            m.unwrap_or(if addr.is_unspecified() { f.any() } else { f.ones() })
        };
        Self::from_masks(source, mask(source, a.source_mask), a.group, mask(a.group, a.group_mask))
    }

    /// (*,*) of a family.
    pub const fn any(family: Family) -> Self {
        Self { group: family.any(), source: family.any() }
    }

    /// (*,G).
    pub fn star_g(group: impl Into<IpAddr>) -> Self {
        let group = group.into();
        Self { group, source: Family::of(group).any() }
    }

    pub const fn sg(sg: Sg) -> Self {
        Self { group: sg.group, source: sg.source }
    }

    pub const fn family(&self) -> Family {
        Family::of(self.group)
    }

    /// The group, `None` for any.
    pub fn group(&self) -> Option<IpAddr> {
        (!self.group.is_unspecified()).then_some(self.group)
    }

    /// The source, `None` for any.
    pub fn source(&self) -> Option<IpAddr> {
        (!self.source.is_unspecified()).then_some(self.source)
    }

    pub fn matches(&self, sg: &Sg) -> bool {
        self.family() == sg.family()
            && self.group().is_none_or(|g| g == sg.group)
            && self.source().is_none_or(|s| s == sg.source)
    }

    /// The last pattern of this one's group in order (past all its sources).
    fn group_end(&self) -> Self {
        Self { group: self.group, source: self.family().ones() }
    }

    pub fn entry(&self) -> SourceGroupEntry {
        let f = self.family();
        let mask = |a: Option<IpAddr>| if a.is_some() { f.ones() } else { f.any() };
        SourceGroupEntry {
            source: self.source,
            source_mask: mask(self.source()),
            group: self.group,
            group_mask: mask(self.group()),
        }
    }
}

/// An outgoing list: each interface with the clients whose memberships put it there. The fast
/// path keeps a copy flowing to an interface while one of those clients still owns it, which
/// is what makes a release atomic there.
pub type Oil = BTreeMap<Iface, BTreeSet<Handle>>;

/// What a call caused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Make the fast path forward `sg` arriving on `iif` to exactly `oifs`.
    Install { sg: Sg, iif: Iface, oifs: Oil },
    /// Remove `sg` from the fast path.
    Remove { sg: Sg },
    /// Deliver a callback.
    Notify { to: Handle, event: Event },
    /// `owner` took (`owns`) or gave up `iface`: the fast path opens or kills its lease.
    Owner { iface: Iface, owner: Handle, owns: bool },
}

/// Tunables.
#[derive(Clone, Debug)]
pub struct Settings {
    /// MFE idle timeout unless a prune alert answer sets another (RRAS default: 900 s).
    pub mfe_timeout: Duration,
    /// How long RPF and creation-alert answers are awaited before the defaults apply.
    pub answer_timeout: Duration,
    /// Most MFEs the manager holds (and creates at once): the fast path's room for them.
    pub max_mfes: usize,
    /// New MFEs one incoming interface may start per second (and at once): a sender spraying
    /// sources cannot take the table, or the routing protocol's attention, from the others.
    pub creations_per_sec: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            mfe_timeout: Duration::from_secs(900),
            answer_timeout: Duration::from_secs(2),
            max_mfes: 1 << 20,
            creations_per_sec: 1_000,
        }
    }
}

/// How far a release done in steps has come.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    Done,
    More,
}

/// A page of results: `more` is MORE_DATA, else NO_MORE_ITEMS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    pub entries: Vec<T>,
    pub more: bool,
}

#[derive(Clone, Debug)]
struct Client {
    protocol: u32,
    component: u32,
}

impl Client {
    fn is_igmp(&self) -> bool {
        self.protocol == PROTO_IP_IGMP
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Owners {
    routing: Option<Handle>,
    igmp: Option<Handle>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Flags {
    join: bool,
    forward: bool,
}

#[derive(Clone, Debug)]
enum Stage {
    Rpf,
    Alerts { waiting: BTreeMap<RequestId, Handle>, disabled: BTreeSet<Iface> },
}

/// An MFE being created: waiting for RPF, then for creation alert answers.
#[derive(Clone, Debug)]
struct Creating {
    iif: Iface,
    upstream: IpAddr,
    stage: Stage,
}

/// A group enumeration: a cursor over the memberships, so it costs no memory beyond itself
/// and each page costs its entries.
#[derive(Clone, Copy, Debug)]
struct Enumeration {
    owner: Handle,
    kind: EnumType,
    /// The last entry returned.
    after: Option<Pattern>,
}

/// Key of a membership: ordered by group, source, interface, client.
type MemberKey = (Pattern, Iface, Handle);

/// The manager's whole state.
#[derive(Debug, Default)]
pub struct Manager {
    settings: Settings,
    clients: BTreeMap<Handle, Client>,
    owners: BTreeMap<Iface, Owners>,
    members: BTreeMap<MemberKey, Flags>,
    /// Index: (interface, client) → the patterns it has there.
    members_by_iface: BTreeMap<(Iface, Handle), BTreeSet<Pattern>>,
    /// Index: pattern → the clients with join state for it, each with its number of
    /// interfaces (join and prune alerts cost a lookup, not a walk of every membership).
    joined: BTreeMap<Pattern, BTreeMap<Handle, usize>>,
    /// Index: the (protocol id, component id) pairs registered.
    ids: BTreeSet<(u32, u32)>,
    /// Index: the interfaces each client owns.
    owned: BTreeMap<Handle, BTreeSet<Iface>>,
    /// Index: how many membership entries each client has.
    member_counts: BTreeMap<Handle, usize>,
    /// Per incoming ifindex: creation tokens left and when they were counted.
    buckets: BTreeMap<u32, (u32, Duration)>,
    /// New flows not given an MFE (rate or room), and MFEs evicted for new ones.
    refused: u64,
    evicted: u64,
    mfes: MfeTable,
    creating: BTreeMap<Sg, Creating>,
    requests: Requests,
    /// Releases done in steps (see [`Manager::release_step`]) that have begun.
    releasing: BTreeSet<(Handle, Iface)>,
    /// Outgoing lists releases have yet to bring up to date: the MFEs matching a removed
    /// membership's pattern, walked from a cursor (the last MFE done) a budget at a time.
    stale: VecDeque<(Pattern, Option<Sg>)>,
    enums: BTreeMap<EnumHandle, Enumeration>,
    next_id: u64,
    effects: Vec<Effect>,
}

impl Manager {
    pub fn new(settings: Settings) -> Self {
        Self { settings, next_id: 1, ..Default::default() }
    }

    /// Collects what the calls since the last collection caused, in order.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn notify(&mut self, to: Handle, event: Event) {
        self.effects.push(Effect::Notify { to, event });
    }

    fn client(&self, h: Handle) -> MgmResult<&Client> {
        self.clients.get(&h).ok_or(MgmError::InvalidParameter)
    }

    pub fn is_registered(&self, h: Handle) -> bool {
        self.clients.contains_key(&h)
    }

    pub fn clients(&self) -> Vec<ClientInfo> {
        self.clients
            .iter()
            .map(|(h, c)| ClientInfo { handle: *h, protocol: c.protocol, component: c.component })
            .collect()
    }

    pub fn owners(&self) -> Vec<OwnerInfo> {
        self.owners
            .iter()
            .map(|(i, o)| OwnerInfo { iface: *i, routing: o.routing, igmp: o.igmp })
            .collect()
    }

    /// The first `n` membership entries, and whether there are more.
    pub fn memberships(&self, n: usize) -> (Vec<MembershipInfo>, bool) {
        let list = self
            .members
            .iter()
            .take(n)
            .map(|((p, iface, h), f)| MembershipInfo {
                handle: *h,
                entry: p.entry(),
                iface: *iface,
                join: f.join,
                forward: f.forward,
            })
            .collect();
        (list, self.members.len() > n)
    }

    /// Every MFE's (S,G), in walk order.
    /// The MFE for `sg` as the fast path should have it: incoming interface and list.
    pub fn mfe_state(&self, sg: Sg) -> Option<(Iface, Oil)> {
        self.mfes.get(&sg).map(|m| (m.iif, m.oifs.clone()))
    }

    pub fn mfe_count(&self) -> usize {
        self.mfes.len()
    }

    /// Up to `n` MFE keys strictly after `after` (from the first with `None`), in order.
    pub fn mfe_keys_after(&self, after: Option<Sg>, n: usize) -> Vec<Sg> {
        use std::ops::Bound::{Excluded, Unbounded};
        let lo = after.map_or(Unbounded, Excluded);
        self.mfes.range((lo, Unbounded)).take(n).map(|(k, _)| *k).collect()
    }
}

/// An incoming interface and upstream neighbour for `sg` must be of its family
/// (INVALID_PARAMETER otherwise).
fn check_iif(sg: Sg, iif: Iface, upstream: IpAddr) -> MgmResult<()> {
    if iif.family() != sg.family() || Family::of(upstream) != sg.family() {
        return Err(MgmError::InvalidParameter);
    }
    Ok(())
}

/// Where in the MFE table (ordered by group, then source) the MFEs matching `p` lie: those
/// of its group, or every one of its family for (*,*).
fn group_range(p: Pattern) -> (std::ops::Bound<Sg>, std::ops::Bound<Sg>) {
    use std::ops::Bound::Included;
    let f = p.family();
    let (lo, hi) = p.group().map_or((f.any(), f.ones()), |g| (g, g));
    (Included(Sg::new(f.any(), lo)), Included(Sg::new(f.ones(), hi)))
}

#[cfg(test)]
mod tests;
