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

    // ---- registration ------------------------------------------------------------------

    /// RegisterMProtocol.
    pub fn register(&mut self, protocol: u32, component: u32) -> MgmResult<Handle> {
        if self.ids.contains(&(protocol, component)) {
            return Err(MgmError::AlreadyExists);
        }
        self.ids.insert((protocol, component));
        let h = Handle(self.id());
        self.clients.insert(h, Client { protocol, component });
        Ok(h)
    }

    /// DeRegisterMProtocol: refused (CAN_NOT_COMPLETE) while the client owns interfaces.
    pub fn deregister(&mut self, h: Handle, now: Duration) -> MgmResult<()> {
        self.client(h)?;
        if self.owned_count(h) > 0 {
            return Err(MgmError::CanNotComplete);
        }
        if let Some(c) = self.clients.remove(&h) {
            self.ids.remove(&(c.protocol, c.component));
        }
        self.enums.retain(|_, e| e.owner != h);
        // Requests it will never answer take their defaults now.
        for id in self.requests.of_client(h) {
            self.expire_request(id, now);
        }
        Ok(())
    }

    /// A connection closed: release everything the client owns, then deregister it.
    pub fn client_gone(&mut self, h: Handle, now: Duration) {
        if !self.clients.contains_key(&h) {
            return;
        }
        for iface in self.owned_ifaces(h) {
            let _ = self.release_interface(h, iface, now);
        }
        let _ = self.deregister(h, now);
    }

    // ---- ownership ---------------------------------------------------------------------

    /// TakeInterfaceOwnership.
    pub fn take_interface(&mut self, h: Handle, iface: Iface) -> MgmResult<()> {
        let igmp = self.client(h)?.is_igmp();
        let o = self.owners.get(&iface).copied().unwrap_or_default();
        if igmp {
            match o.igmp {
                Some(x) if x == h => return Ok(()),
                Some(_) => return Err(MgmError::AlreadyExists),
                None => {}
            }
            self.owners.entry(iface).or_default().igmp = Some(h);
            self.owned.entry(h).or_default().insert(iface);
            self.effects.push(Effect::Owner { iface, owner: h, owns: true });
            return Ok(());
        }
        match o.routing {
            Some(x) if x == h => return Ok(()),
            Some(_) => return Err(MgmError::AlreadyExists),
            None => {}
        }
        // IGMP stops while the interface changes hands, then re-reports through the new owner.
        if let Some(i) = o.igmp {
            self.notify(i, Event::DisableIgmp { iface });
        }
        self.owners.entry(iface).or_default().routing = Some(h);
        self.owned.entry(h).or_default().insert(iface);
        self.effects.push(Effect::Owner { iface, owner: h, owns: true });
        if let Some(i) = o.igmp {
            // The new owner learns the receivers IGMP already has there (IGMP's re-adds of
            // memberships it holds change nothing, so they would not tell it).
            let patterns = self.members_by_iface.get(&(iface, i)).cloned().unwrap_or_default();
            for p in patterns {
                if self.members.get(&(p, iface, i)).is_some_and(|f| f.join) {
                    self.notify(h, Event::LocalJoin { entry: p.entry(), iface });
                }
            }
            self.notify(i, Event::EnableIgmp { iface });
        }
        Ok(())
    }

    /// Whether the core has an MFE for `sg` or is creating one.
    pub fn knows(&self, sg: Sg) -> bool {
        self.mfes.contains_key(&sg) || self.creating.contains_key(&sg)
    }

    /// How long RPF and creation answers are awaited.
    pub fn answer_timeout(&self) -> Duration {
        self.settings.answer_timeout
    }

    /// How many interfaces `h` owns.
    pub fn owned_count(&self, h: Handle) -> usize {
        self.owned.get(&h).map_or(0, BTreeSet::len)
    }

    /// The interfaces `h` owns.
    pub fn owned_ifaces(&self, h: Handle) -> Vec<Iface> {
        self.owned.get(&h).into_iter().flatten().copied().collect()
    }

    /// How many membership entries `h` has.
    pub fn membership_count(&self, h: Handle) -> usize {
        self.member_counts.get(&h).copied().unwrap_or(0)
    }

    /// Whether `h` has a membership entry (`pattern` on `iface`).
    pub fn has_membership(&self, h: Handle, pattern: Pattern, iface: Iface) -> bool {
        self.members.contains_key(&(pattern, iface, h))
    }

    /// How many group enumerations `h` has open.
    pub fn enum_count(&self, h: Handle) -> usize {
        self.enums.values().filter(|e| e.owner == h).count()
    }

    /// Whether `h` owns `iface` (as its routing protocol or as IGMP).
    pub fn owns(&self, h: Handle, iface: Iface) -> bool {
        self.owners.get(&iface).is_some_and(|o| o.routing == Some(h) || o.igmp == Some(h))
    }

    /// ReleaseInterfaceOwnership: the client's memberships on the interface go (with their
    /// alerts), every MFE entry kept on its behalf there goes, and MFEs arriving there are
    /// deleted when the routing owner leaves. All at once: see [`Manager::release_step`].
    pub fn release_interface(&mut self, h: Handle, iface: Iface, now: Duration) -> MgmResult<()> {
        let mut unlimited = usize::MAX;
        self.release_step(h, iface, &mut unlimited, now).map(|_| ())
    }

    /// ReleaseInterfaceOwnership in steps of at most `budget` entries (the client's
    /// memberships there, then the MFEs arriving there; what it used is taken off `budget`):
    /// call again while it answers [`Progress::More`]. The first call checks ownership and
    /// stops IGMP there; the client owns the interface until the last step, so it cannot
    /// change hands half released.
    pub fn release_step(
        &mut self,
        h: Handle,
        iface: Iface,
        budget: &mut usize,
        now: Duration,
    ) -> MgmResult<Progress> {
        let igmp = self.client(h)?.is_igmp();
        let o = self.owners.get(&iface).copied().ok_or(MgmError::InvalidParameter)?;
        let slot = if igmp { o.igmp } else { o.routing };
        if slot != Some(h) {
            return Err(MgmError::InvalidParameter);
        }
        let co_igmp = if igmp { None } else { o.igmp };
        if self.releasing.insert((h, iface))
            && let Some(i) = co_igmp
        {
            self.notify(i, Event::DisableIgmp { iface });
        }
        *budget = (*budget).max(1);
        // A membership costs one, and each MFE whose outgoing list it changes one more.
        loop {
            if !self.refresh_stale(budget, now) {
                return Ok(Progress::More);
            }
            let first = self.members_by_iface.get(&(iface, h)).and_then(|s| s.first().copied());
            let Some(p) = first else { break };
            if *budget == 0 {
                return Ok(Progress::More);
            }
            *budget -= 1;
            let flags = self.members.get(&(p, iface, h)).copied().unwrap_or_default();
            let bits = (u32::from(flags.join) * MGM_JOIN_STATE_FLAG)
                | (u32::from(flags.forward) * MGM_FORWARD_STATE_FLAG);
            self.remove_membership(h, p, iface, bits, now, true);
        }
        if !igmp {
            *budget -= self.delete_arriving(iface, *budget, DeleteReason::Released);
            if !self.mfes.arriving(iface, 1).is_empty() {
                return Ok(Progress::More);
            }
            let creating: Vec<Sg> =
                self.creating.iter().filter(|(_, c)| c.iif == iface).map(|(sg, _)| *sg).collect();
            for sg in creating {
                self.abandon_creation(sg);
            }
        }
        self.releasing.remove(&(h, iface));
        self.effects.push(Effect::Owner { iface, owner: h, owns: false });
        let entry = self.owners.get_mut(&iface).expect("checked above");
        if igmp {
            entry.igmp = None;
        } else {
            entry.routing = None;
        }
        if *entry == Owners::default() {
            self.owners.remove(&iface);
        }
        if let Some(set) = self.owned.get_mut(&h) {
            set.remove(&iface);
            if set.is_empty() {
                self.owned.remove(&h);
            }
        }
        if let Some(i) = co_igmp {
            self.notify(i, Event::EnableIgmp { iface });
        }
        Ok(Progress::Done)
    }

    /// GetProtocolOnInterface: (protocol id, component id) of the routing owner (or of IGMP
    /// when it is alone there).
    pub fn protocol_on_interface(&self, iface: Iface) -> MgmResult<(u32, u32)> {
        let o = self.owners.get(&iface).ok_or(MgmError::NotFound)?;
        let h = o.routing.or(o.igmp).ok_or(MgmError::NotFound)?;
        let c = &self.clients[&h];
        Ok((c.protocol, c.component))
    }

    /// An interface disappeared from the kernel: owners are told, then it is released for
    /// each of them (routing owner first).
    pub fn interface_gone(&mut self, ifindex: u32, now: Duration) {
        let gone: Vec<(Iface, Owners)> = self
            .owners
            .iter()
            .filter(|(i, _)| i.ifindex == ifindex)
            .map(|(i, o)| (*i, *o))
            .collect();
        for (iface, o) in gone {
            for h in [o.routing, o.igmp].into_iter().flatten() {
                self.notify(h, Event::InterfaceGone { iface });
            }
            // Its MFEs are gone because the interface is, not because someone released it.
            self.delete_arriving(iface, usize::MAX, DeleteReason::InterfaceGone);
            for h in [o.routing, o.igmp].into_iter().flatten() {
                let _ = self.release_interface(h, iface, now);
            }
        }
    }

    fn routing_owner(&self, iface: Iface) -> Option<Handle> {
        self.owners.get(&iface).and_then(|o| o.routing)
    }

    /// The routing protocol a membership speaks for: the client itself, or for IGMP the
    /// routing owner of the interface.
    fn responsible(&self, h: Handle, iface: Iface) -> Option<Handle> {
        if self.clients.get(&h).is_some_and(Client::is_igmp) {
            self.routing_owner(iface)
        } else {
            Some(h)
        }
    }

    fn routing_clients(&self) -> Vec<Handle> {
        self.clients.iter().filter(|(_, c)| !c.is_igmp()).map(|(h, _)| *h).collect()
    }

    // ---- memberships -------------------------------------------------------------------

    fn check_membership_args(
        &self,
        h: Handle,
        pattern: Pattern,
        iface: Iface,
        flags: u32,
    ) -> MgmResult<()> {
        self.client(h)?;
        let o = self.owners.get(&iface).copied().unwrap_or_default();
        if o.routing != Some(h) && o.igmp != Some(h) {
            return Err(MgmError::InvalidParameter);
        }
        if pattern.family() != iface.family() {
            return Err(MgmError::InvalidParameter);
        }
        if flags == 0 || flags & !(MGM_JOIN_STATE_FLAG | MGM_FORWARD_STATE_FLAG) != 0 {
            return Err(MgmError::InvalidParameter);
        }
        Ok(())
    }

    /// AddGroupMembershipEntry.
    pub fn add_membership(
        &mut self,
        h: Handle,
        pattern: Pattern,
        iface: Iface,
        flags: u32,
        now: Duration,
    ) -> MgmResult<()> {
        self.check_membership_args(h, pattern, iface, flags)?;
        let key = (pattern, iface, h);
        let old = self.members.get(&key).copied().unwrap_or_default();
        let new = Flags {
            join: old.join || flags & MGM_JOIN_STATE_FLAG != 0,
            forward: old.forward || flags & MGM_FORWARD_STATE_FLAG != 0,
        };
        if new.join && !old.join {
            let first = !self.joined.contains_key(&pattern);
            *self.joined.entry(pattern).or_default().entry(h).or_default() += 1;
            let responsible = self.responsible(h, iface);
            if first {
                for to in self.routing_clients() {
                    if Some(to) != responsible {
                        self.notify(
                            to,
                            Event::JoinAlert { entry: pattern.entry(), member_add: true },
                        );
                    }
                }
            }
            if self.clients[&h].is_igmp()
                && let Some(r) = self.routing_owner(iface)
            {
                self.notify(r, Event::LocalJoin { entry: pattern.entry(), iface });
            }
        }
        if self.members.insert(key, new).is_none() {
            *self.member_counts.entry(h).or_default() += 1;
        }
        self.members_by_iface.entry((iface, h)).or_default().insert(pattern);
        if new.forward && !old.forward {
            let sgs: Vec<Sg> = self.mfes_matching(pattern);
            for sg in sgs {
                self.recompute(sg, now);
            }
        }
        Ok(())
    }

    /// DeleteGroupMembershipEntry: clears the given flags; the entry goes when none is left.
    pub fn delete_membership(
        &mut self,
        h: Handle,
        pattern: Pattern,
        iface: Iface,
        flags: u32,
        now: Duration,
    ) -> MgmResult<()> {
        self.check_membership_args(h, pattern, iface, flags)?;
        let old = self.members.get(&(pattern, iface, h)).copied().ok_or(MgmError::NotFound)?;
        let clears_something = (flags & MGM_JOIN_STATE_FLAG != 0 && old.join)
            || (flags & MGM_FORWARD_STATE_FLAG != 0 && old.forward);
        if !clears_something {
            return Err(MgmError::NotFound);
        }
        self.remove_membership(h, pattern, iface, flags, now, false);
        Ok(())
    }

    /// Clears `flags` of a membership, with its alerts. The outgoing lists it changes are
    /// brought up to date now, or (`later`) left to [`Manager::refresh_stale`].
    fn remove_membership(
        &mut self,
        h: Handle,
        pattern: Pattern,
        iface: Iface,
        flags: u32,
        now: Duration,
        later: bool,
    ) {
        let key = (pattern, iface, h);
        let Some(old) = self.members.get(&key).copied() else {
            return;
        };
        let new = Flags {
            join: old.join && flags & MGM_JOIN_STATE_FLAG == 0,
            forward: old.forward && flags & MGM_FORWARD_STATE_FLAG == 0,
        };
        if new == Flags::default() {
            self.members.remove(&key);
            if let Some(n) = self.member_counts.get_mut(&h) {
                *n -= 1;
                if *n == 0 {
                    self.member_counts.remove(&h);
                }
            }
            if let Some(set) = self.members_by_iface.get_mut(&(iface, h)) {
                set.remove(&pattern);
                if set.is_empty() {
                    self.members_by_iface.remove(&(iface, h));
                }
            }
        } else {
            self.members.insert(key, new);
        }
        if old.join && !new.join {
            if let Some(by) = self.joined.get_mut(&pattern) {
                if let Some(n) = by.get_mut(&h) {
                    *n -= 1;
                    if *n == 0 {
                        by.remove(&h);
                    }
                }
                if by.is_empty() {
                    self.joined.remove(&pattern);
                }
            }
            self.prune_alerts(h, pattern, iface);
            if self.clients.get(&h).is_some_and(Client::is_igmp)
                && let Some(r) = self.routing_owner(iface)
            {
                self.notify(r, Event::LocalLeave { entry: pattern.entry(), iface });
            }
        }
        if old.forward && !new.forward {
            if later {
                self.stale.push_back((pattern, None));
            } else {
                for sg in self.mfes_matching(pattern) {
                    self.recompute(sg, now);
                }
            }
        }
    }

    /// Brings up to date the outgoing lists releases left stale, at most `budget` MFEs (what
    /// it used is taken off); whether none is left.
    fn refresh_stale(&mut self, budget: &mut usize, now: Duration) -> bool {
        while let Some(&(p, after)) = self.stale.front() {
            if *budget == 0 {
                return false;
            }
            let (first, hi) = group_range(p);
            let lo = after.map_or(first, std::ops::Bound::Excluded);
            let batch: Vec<Sg> =
                self.mfes.range((lo, hi)).take(*budget).map(|(sg, _)| *sg).collect();
            let Some(&last) = batch.last() else {
                self.stale.pop_front();
                continue;
            };
            *budget -= batch.len();
            for sg in batch.into_iter().filter(|sg| p.matches(sg)) {
                self.recompute(sg, now);
            }
            if let Some(front) = self.stale.front_mut() {
                front.1 = Some(last);
            }
        }
        true
    }

    /// Member-delete prune alerts after `h` lost join state for `pattern` on `iface`.
    fn prune_alerts(&mut self, h: Handle, pattern: Pattern, iface: Iface) {
        let entry = pattern.entry();
        let alert = || Event::PruneAlert {
            request: None,
            entry,
            iface: Some(iface),
            member_delete: true,
            timeout_secs: 0,
        };
        let joined: Vec<Handle> =
            self.joined.get(&pattern).map(|by| by.keys().copied().collect()).unwrap_or_default();
        let deleter = self.responsible(h, iface);
        if let (Some(g), Some(s)) = (pattern.group(), pattern.source()) {
            // (S,G): the owner of the incoming interface towards S, once nobody wants it.
            if joined.is_empty()
                && let Some(m) = self.mfes.get(&Sg::new(s, g))
                && let Some(up) = self.routing_owner(m.iif)
                && Some(up) != deleter
            {
                self.notify(up, alert());
            }
            return;
        }
        // (*,G) and (*,*): only when this client's last interface for the entry went.
        if joined.contains(&h) {
            return;
        }
        let remaining: BTreeSet<Handle> = joined.into_iter().collect();
        match remaining.len() {
            1 => {
                let r = *remaining.first().expect("one");
                if !self.clients[&r].is_igmp() {
                    self.notify(r, alert());
                }
            }
            0 => {
                for to in self.routing_clients() {
                    if Some(to) != deleter {
                        self.notify(to, alert());
                    }
                }
            }
            _ => {}
        }
    }

    fn mfes_matching(&self, pattern: Pattern) -> Vec<Sg> {
        let range = group_range(pattern);
        self.mfes.range(range).map(|(sg, _)| *sg).filter(|sg| pattern.matches(sg)).collect()
    }

    /// The outgoing list the memberships give `sg` arriving on `iif`.
    fn oil_for(&self, sg: Sg, iif: Iface, disabled: &BTreeSet<Iface>) -> Oil {
        let mut out = Oil::new();
        // Its (*,G) and (S,G) memberships, then its family's (*,*).
        for lo in [Pattern::star_g(sg.group), Pattern::any(sg.family())] {
            let range =
                (lo, Iface::MIN, Handle(0))..=(lo.group_end(), Iface::MAX, Handle(u64::MAX));
            for ((p, iface, h), f) in self.members.range(range) {
                if f.forward && p.matches(&sg) && *iface != iif && !disabled.contains(iface) {
                    out.entry(*iface).or_default().insert(*h);
                }
            }
        }
        out
    }

    /// Brings an MFE's outgoing list in line with the memberships.
    fn recompute(&mut self, sg: Sg, now: Duration) {
        let Some(m) = self.mfes.get(&sg) else { return };
        let oifs = self.oil_for(sg, m.iif, &m.disabled);
        if oifs == m.oifs {
            return;
        }
        let became_empty = oifs.is_empty() && !m.oifs.is_empty();
        let became_busy = !oifs.is_empty() && m.oifs.is_empty();
        let iif = m.iif;
        self.mfes.set_oifs(sg, oifs.clone());
        self.effects.push(Effect::Install { sg, iif, oifs });
        if became_empty {
            self.oil_empty_alert(sg, now);
        }
        if became_busy {
            self.oil_busy_alert(sg);
        }
    }

    /// Join alert (member-add = false) to the upstream owner: an MFE that forwarded nowhere
    /// has receivers again, the mirror of the prune alert with member-delete = false (a PIM
    /// would send its join upstream).
    fn oil_busy_alert(&mut self, sg: Sg) {
        let Some(up) = self.mfes.get(&sg).and_then(|m| self.routing_owner(m.iif)) else {
            return;
        };
        self.notify(up, Event::JoinAlert { entry: Pattern::sg(sg).entry(), member_add: false });
    }

    /// Prune alert (member-delete = false) to the upstream owner: the MFE forwards nowhere.
    fn oil_empty_alert(&mut self, sg: Sg, now: Duration) {
        let Some(m) = self.mfes.get(&sg) else { return };
        let Some(up) = self.routing_owner(m.iif) else {
            return;
        };
        let request = RequestId(self.id());
        let deadline = now.saturating_add(self.settings.answer_timeout);
        self.requests.insert(request, up, Awaiting::PruneTimeout(sg), deadline);
        let timeout_secs = self.settings.mfe_timeout.as_secs();
        self.notify(
            up,
            Event::PruneAlert {
                request: Some(request),
                entry: Pattern::sg(sg).entry(),
                iface: None,
                member_delete: false,
                timeout_secs,
            },
        );
    }

    // ---- MFE creation ------------------------------------------------------------------

    /// A packet arrived for `sg` on `ifindex` with no MFE (upcall), or on the wrong interface.
    pub fn new_packet(&mut self, sg: Sg, ifindex: u32, header: &[u8], now: Duration) {
        let in_iface = Iface::new(ifindex, sg.family().any());
        if let Some(m) = self.mfes.get(&sg) {
            if m.iif.ifindex != ifindex {
                let owner = self.owners.get(&in_iface).and_then(|o| o.routing.or(o.igmp));
                if let Some(to) = owner {
                    let event = Event::WrongInterface {
                        source: sg.source,
                        group: sg.group,
                        iface: in_iface,
                        header: header.to_vec(),
                    };
                    self.notify(to, event);
                }
            }
            return;
        }
        if self.creating.contains_key(&sg) {
            return; // already asking; more packets change nothing
        }
        let owners = self.owners.get(&in_iface).copied().unwrap_or_default();
        if owners == Owners::default() {
            // No client owns the interface: its traffic is not MGM's to route, and a
            // negative-cache entry here would blackhole what the kernel would otherwise get.
            return;
        }
        if !self.admit(ifindex, now) {
            // The packet stays with the kernel; the flow's next packets ask again.
            self.refused += 1;
            return;
        }
        let Some(owner) = owners.routing else {
            // Only IGMP is there: nobody to ask, the proposal is final.
            self.creation_alerts(sg, in_iface, sg.family().any(), now);
            return;
        };
        let request = RequestId(self.id());
        let deadline = now.saturating_add(self.settings.answer_timeout);
        self.requests.insert(request, owner, Awaiting::Rpf(sg), deadline);
        self.creating
            .insert(sg, Creating { iif: in_iface, upstream: sg.family().any(), stage: Stage::Rpf });
        self.notify(
            owner,
            Event::Rpf {
                request,
                source: sg.source,
                group: sg.group,
                iif: in_iface,
                upstream: sg.family().any(),
                header: header.to_vec(),
            },
        );
    }

    /// Admission of a new flow arriving on `ifindex`: a creation token of that interface (a
    /// spray of sources on one link cannot starve the others), and room in the table, made by
    /// evicting the oldest MFE that never saw traffic beyond its first packets if need be.
    fn admit(&mut self, ifindex: u32, now: Duration) -> bool {
        let rate = self.settings.creations_per_sec.max(1);
        let (tokens, since) = self.buckets.get(&ifindex).copied().unwrap_or((rate, now));
        let earned = now.saturating_sub(since).as_millis().saturating_mul(u128::from(rate)) / 1000;
        let tokens = u32::try_from(u128::from(tokens) + earned).unwrap_or(u32::MAX).min(rate);
        // Time since `since` that did not earn a whole token is kept for the next count.
        let since = if earned > 0 { now } else { since };
        if tokens == 0 {
            self.buckets.insert(ifindex, (0, since));
            return false;
        }
        if self.mfes.len() + self.creating.len() >= self.settings.max_mfes {
            let Some(old) = self.mfes.oldest_unproven() else {
                self.buckets.insert(ifindex, (tokens, since));
                return false;
            };
            self.delete_mfe(old, DeleteReason::Evicted);
            self.evicted += 1;
        }
        self.buckets.insert(ifindex, (tokens - 1, since));
        true
    }

    /// (new flows refused an MFE, MFEs evicted for new flows) so far.
    pub fn admission_counts(&self) -> (u64, u64) {
        (self.refused, self.evicted)
    }

    /// The room for MFEs (the fast path's, less what static entries take).
    pub fn set_max_mfes(&mut self, n: usize) {
        self.settings.max_mfes = n;
    }

    /// Takes request `request` off the books for its answer: NOT_FOUND if there is no such
    /// request of this kind (or it was answered), INVALID_PARAMETER if it was for another client.
    fn claim(
        &mut self,
        h: Handle,
        request: RequestId,
        kind: impl Fn(Awaiting) -> Option<Sg>,
    ) -> MgmResult<Sg> {
        let (to, awaiting) = self.requests.get(request).ok_or(MgmError::NotFound)?;
        let sg = kind(awaiting).ok_or(MgmError::NotFound)?;
        if to != h {
            return Err(MgmError::InvalidParameter);
        }
        self.requests.remove(request);
        Ok(sg)
    }

    /// The family of the (S,G) request `request` is about, while it is open.
    pub fn request_family(&self, request: RequestId) -> Option<Family> {
        let (_, a) = self.requests.get(request)?;
        let (Awaiting::Rpf(sg) | Awaiting::Creation(sg) | Awaiting::PruneTimeout(sg)) = a;
        Some(sg.family())
    }

    /// The RPF callback's answer: the incoming interface and upstream neighbour to use.
    pub fn answer_rpf(
        &mut self,
        h: Handle,
        request: RequestId,
        iif: Iface,
        upstream: IpAddr,
        now: Duration,
    ) -> MgmResult<()> {
        let (_, awaiting) = self.requests.get(request).ok_or(MgmError::NotFound)?;
        if let Awaiting::Rpf(sg) = awaiting {
            // An answer of the other family is refused and the request stays open.
            check_iif(sg, iif, upstream)?;
        }
        let sg = self.claim(h, request, |a| match a {
            Awaiting::Rpf(sg) => Some(sg),
            _ => None,
        })?;
        self.creation_alerts(sg, iif, upstream, now);
        Ok(())
    }

    /// Computes the outgoing list and asks each owner of an outgoing interface.
    fn creation_alerts(&mut self, sg: Sg, iif: Iface, upstream: IpAddr, now: Duration) {
        let oifs = self.oil_for(sg, iif, &BTreeSet::new());
        let mut by_owner: BTreeMap<Handle, Vec<IfEntry>> = BTreeMap::new();
        for iface in oifs.keys() {
            let o = self.owners.get(iface).copied().unwrap_or_default();
            if let Some(owner) = o.routing.or(o.igmp) {
                by_owner.entry(owner).or_default().push(IfEntry {
                    iface: *iface,
                    enabled: true,
                    igmp: o.igmp.is_some(),
                });
            }
        }
        let deadline = now.saturating_add(self.settings.answer_timeout);
        let mut waiting = BTreeMap::new();
        for (owner, list) in by_owner {
            let request = RequestId(self.id());
            self.requests.insert(request, owner, Awaiting::Creation(sg), deadline);
            waiting.insert(request, owner);
            self.notify(
                owner,
                Event::CreationAlert {
                    request,
                    source: sg.source,
                    group: sg.group,
                    iif,
                    oifs: list,
                },
            );
        }
        let stage = Stage::Alerts { waiting, disabled: BTreeSet::new() };
        self.creating.insert(sg, Creating { iif, upstream, stage });
        self.try_finish_creation(sg, now);
    }

    /// The creation alert's answer: which of the client's own interfaces to keep out.
    pub fn answer_creation(
        &mut self,
        h: Handle,
        request: RequestId,
        disabled: &[Iface],
        now: Duration,
    ) -> MgmResult<()> {
        let sg = self.claim(h, request, |a| match a {
            Awaiting::Creation(sg) => Some(sg),
            _ => None,
        })?;
        let own: Vec<Iface> = disabled
            .iter()
            .copied()
            .filter(|i| self.owners.get(i).is_some_and(|o| o.routing.or(o.igmp) == Some(h)))
            .collect();
        if let Some(Creating { stage: Stage::Alerts { waiting, disabled }, .. }) =
            self.creating.get_mut(&sg)
        {
            waiting.remove(&request);
            disabled.extend(own);
        }
        self.try_finish_creation(sg, now);
        Ok(())
    }

    fn try_finish_creation(&mut self, sg: Sg, now: Duration) {
        let Some(c) = self.creating.get(&sg) else {
            return;
        };
        let Stage::Alerts { waiting, disabled } = &c.stage else {
            return;
        };
        if !waiting.is_empty() {
            return;
        }
        let (iif, upstream, disabled) = (c.iif, c.upstream, disabled.clone());
        self.creating.remove(&sg);
        if self.mfes.len() >= self.settings.max_mfes {
            self.refused += 1;
            return; // full: the next packet tries again
        }
        let oifs = self.oil_for(sg, iif, &disabled);
        let timeout = self.settings.mfe_timeout;
        let empty = oifs.is_empty();
        self.mfes.insert(
            sg,
            Mfe {
                iif,
                upstream,
                oifs: oifs.clone(),
                disabled,
                created: now,
                expires: now.saturating_add(timeout),
                timeout,
            },
        );
        self.effects.push(Effect::Install { sg, iif, oifs });
        if empty {
            self.oil_empty_alert(sg, now);
        }
    }

    fn abandon_creation(&mut self, sg: Sg) {
        self.creating.remove(&sg);
        self.requests.remove_about(sg, |a| matches!(a, Awaiting::Rpf(_) | Awaiting::Creation(_)));
    }

    /// The prune alert's answer: the MFE's new timeout, at most [`MAX_MFE_TIMEOUT`] (a longer
    /// one is INVALID_PARAMETER and leaves the request open).
    pub fn answer_prune(
        &mut self,
        h: Handle,
        request: RequestId,
        timeout: Duration,
        now: Duration,
    ) -> MgmResult<()> {
        if timeout > MAX_MFE_TIMEOUT {
            return Err(MgmError::InvalidParameter);
        }
        let sg = self.claim(h, request, |a| match a {
            Awaiting::PruneTimeout(sg) => Some(sg),
            _ => None,
        })?;
        self.mfes.set_timeout(sg, timeout, now);
        Ok(())
    }

    fn expire_request(&mut self, id: RequestId, now: Duration) {
        let Some((_, awaiting)) = self.requests.remove(id) else {
            return;
        };
        match awaiting {
            Awaiting::Rpf(sg) => {
                if let Some(c) = self.creating.get(&sg).cloned() {
                    self.creation_alerts(sg, c.iif, c.upstream, now);
                }
            }
            Awaiting::Creation(sg) => {
                if let Some(Creating { stage: Stage::Alerts { waiting, .. }, .. }) =
                    self.creating.get_mut(&sg)
                {
                    waiting.remove(&id);
                }
                self.try_finish_creation(sg, now);
            }
            Awaiting::PruneTimeout(_) => {} // the default timeout stands
        }
    }

    /// `sg` carried traffic beyond the packets that created it: a real flow, no longer the
    /// first to go when the table is full.
    pub fn prove(&mut self, sg: Sg) {
        self.mfes.prove(sg);
    }

    /// Traffic was seen on `sg` (its fast-path counters moved): it stays for another timeout.
    pub fn refresh(&mut self, sg: Sg, now: Duration) {
        self.mfes.refresh(sg, now);
    }

    /// Applies defaults to unanswered requests and removes idle MFEs, at most
    /// [`TICK_BATCH`] of each: while [`Manager::has_due`], the rest waits for the next call.
    pub fn tick(&mut self, now: Duration) {
        for id in self.requests.due(now, TICK_BATCH) {
            self.expire_request(id, now);
        }
        for sg in self.mfes.expired(now, TICK_BATCH) {
            self.delete_mfe(sg, DeleteReason::Expired);
        }
        if let Some(born) = now.checked_sub(UNPROVEN_LIFE) {
            for sg in self.mfes.unproven_since(born, TICK_BATCH) {
                self.delete_mfe(sg, DeleteReason::Expired);
            }
        }
    }

    /// Whether requests or MFEs are due at `now` (the last tick left some).
    /// (Asked between every two inputs: it looks at the head of each index, nothing more.)
    pub fn has_due(&self, now: Duration) -> bool {
        self.requests.next_deadline().is_some_and(|d| d <= now)
            || self.mfes.next_expiry().is_some_and(|t| t <= now)
            || self
                .mfes
                .oldest_unproven_since()
                .is_some_and(|t| t.saturating_add(UNPROVEN_LIFE) <= now)
    }

    /// Deletes up to `n` of the MFEs arriving on `iface`; how many.
    fn delete_arriving(&mut self, iface: Iface, n: usize, reason: DeleteReason) -> usize {
        let arriving = self.mfes.arriving(iface, n);
        for &sg in &arriving {
            self.delete_mfe(sg, reason);
        }
        arriving.len()
    }

    fn delete_mfe(&mut self, sg: Sg, reason: DeleteReason) {
        let Some(m) = self.mfes.remove(sg) else {
            return;
        };
        self.effects.push(Effect::Remove { sg });
        let mut told = BTreeSet::new();
        for iface in std::iter::once(&m.iif).chain(m.oifs.keys()) {
            let o = self.owners.get(iface).copied().unwrap_or_default();
            for h in [o.routing, o.igmp].into_iter().flatten() {
                if told.insert(h) {
                    self.notify(
                        h,
                        Event::MfeDeleted { source: sg.source, group: sg.group, reason },
                    );
                }
            }
        }
        self.requests.remove_about(sg, |a| matches!(a, Awaiting::PruneTimeout(_)));
    }

    // ---- MFE queries -------------------------------------------------------------------

    fn view(&self, sg: Sg, m: &Mfe, now: Duration) -> MfeView {
        MfeView {
            source: sg.source,
            group: sg.group,
            iif: m.iif,
            upstream: m.upstream,
            oifs: m.oifs.keys().copied().collect(),
            uptime_secs: now.saturating_sub(m.created).as_secs(),
            expiry_secs: m.expires.saturating_sub(now).as_secs(),
            timeout_secs: m.timeout.as_secs(),
        }
    }

    /// GetMfe. `max_entries` is the buffer, in entries: 0 gets INSUFFICIENT_BUFFER.
    pub fn get_mfe(&self, sg: Sg, max_entries: usize, now: Duration) -> MgmResult<MfeView> {
        let m = self.mfes.get(&sg).ok_or(MgmError::NotFound)?;
        if max_entries == 0 {
            return Err(MgmError::InsufficientBuffer { needed: 1 });
        }
        Ok(self.view(sg, m, now))
    }

    /// GetFirstMfe / GetNextMfe: up to `max_entries` MFEs strictly after `after` (from the
    /// start when `None`), ordered by group then source.
    pub fn get_mfes(
        &self,
        after: Option<Sg>,
        max_entries: usize,
        now: Duration,
    ) -> MgmResult<Page<MfeView>> {
        use std::ops::Bound::{Excluded, Unbounded};
        let lower = after.map_or(Unbounded, Excluded);
        let mut it = self.mfes.range((lower, Unbounded)).peekable();
        if max_entries == 0 && it.peek().is_some() {
            return Err(MgmError::InsufficientBuffer { needed: 1 });
        }
        let entries: Vec<MfeView> =
            it.by_ref().take(max_entries).map(|(sg, m)| self.view(*sg, m, now)).collect();
        Ok(Page { entries, more: it.peek().is_some() })
    }

    /// SetMfe: a new incoming interface / upstream neighbour (e.g. after an RPF change).
    pub fn set_mfe(
        &mut self,
        h: Handle,
        sg: Sg,
        iif: Iface,
        upstream: IpAddr,
        now: Duration,
    ) -> MgmResult<()> {
        self.client(h)?;
        check_iif(sg, iif, upstream)?;
        let m = self.mfes.get(&sg).ok_or(MgmError::NotFound)?;
        let oifs = self.oil_for(sg, iif, &m.disabled);
        let became_empty = oifs.is_empty() && !m.oifs.is_empty();
        self.mfes.set_iif(sg, iif, upstream);
        self.mfes.set_oifs(sg, oifs.clone());
        self.effects.push(Effect::Install { sg, iif, oifs });
        if became_empty {
            self.oil_empty_alert(sg, now);
        }
        Ok(())
    }

    // ---- group enumeration -------------------------------------------------------------

    /// GroupEnumerationStart: a cursor over the joined entries in their order, so an entry
    /// present throughout the enumeration is returned exactly once, whatever changes meanwhile.
    pub fn enum_start(&mut self, h: Handle, kind: EnumType) -> MgmResult<EnumHandle> {
        self.client(h)?;
        let e = EnumHandle(self.id());
        self.enums.insert(e, Enumeration { owner: h, kind, after: None });
        Ok(e)
    }

    /// The entry an enumeration of `kind` reports after `after`.
    fn enum_after(&self, kind: EnumType, after: Option<Pattern>) -> Option<Pattern> {
        use std::ops::Bound::{Excluded, Unbounded};
        let last_of = |p: Pattern| match kind {
            EnumType::AllSources => p,
            // Past every source of the group.
            EnumType::AnySource => p.group_end(),
        };
        let lo = after.map_or(Unbounded, |p| Excluded((last_of(p), Iface::MAX, Handle(u64::MAX))));
        let ((p, ..), _) = self.members.range((lo, Unbounded)).next()?;
        Some(match kind {
            EnumType::AllSources => *p,
            // (*,G) of its group; (*,*) stays (*,*).
            EnumType::AnySource => Pattern::star_g(p.group),
        })
    }

    /// GroupEnumerationGetNext.
    pub fn enum_next(
        &mut self,
        h: Handle,
        e: EnumHandle,
        max_entries: usize,
    ) -> MgmResult<Page<SourceGroupEntry>> {
        let en = *self.enums.get(&e).ok_or(MgmError::InvalidParameter)?;
        if en.owner != h {
            return Err(MgmError::InvalidParameter);
        }
        let mut next = self.enum_after(en.kind, en.after);
        if max_entries == 0 && next.is_some() {
            return Err(MgmError::InsufficientBuffer { needed: 1 });
        }
        let mut entries = Vec::new();
        let mut after = en.after;
        while let Some(p) = next.filter(|_| entries.len() < max_entries) {
            entries.push(p.entry());
            after = Some(p);
            next = self.enum_after(en.kind, after);
        }
        if let Some(en) = self.enums.get_mut(&e) {
            en.after = after;
        }
        Ok(Page { entries, more: next.is_some() })
    }

    /// GroupEnumerationEnd.
    pub fn enum_end(&mut self, h: Handle, e: EnumHandle) -> MgmResult<()> {
        match self.enums.get(&e) {
            Some(en) if en.owner == h => {
                self.enums.remove(&e);
                Ok(())
            }
            _ => Err(MgmError::InvalidParameter),
        }
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
