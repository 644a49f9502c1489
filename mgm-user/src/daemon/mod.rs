// SPDX-License-Identifier: MIT OR Apache-2.0
//! mgmd as one instance: everything that can happen to it is an [`Input`] (a connection
//! opening, a request line, a connection closing, an upcall from the fast path, a kernel event,
//! a timer tick), and [`Daemon::handle`] turns each into effects: fast-path writes, replies,
//! callbacks, solicitations. [`run`] feeds it from the sockets; tests feed it directly.
//!
//! ```text
//!  clients ─ server tasks ─┐
//!  upcall ring ────────────┼─ mpsc<Input> ─▶ Daemon::handle ─▶ Manager (core) ─effects─┐
//!  kernel monitor ─────────┤                   │                                       ▼
//!  ticker ─────────────────┘                   ├── replies, events ◀── Connections   Writer ─▶ Mirror ─▶ maps
//!                                              └── RestartHold, FirstPackets, Sweep, Links
//! ```
//! For each request: the core call, then its fast-path writes (the first batch), then the
//! reply, then the callbacks it caused. Each component owns one piece of state:
//! `conns` (connections and handles), [`writer`] (the mirror, queued writes, leases, retries,
//! static MFEs; the only way to the mirror and the data plane), [`hold`] (the restart hold),
//! [`first_packets`] (flows waiting for their MFE), [`sweep`] (counters keeping MFEs alive),
//! [`links`] (the kernel's view). This file holds the instance and its dispatch of inputs;
//! how it handles each kind is beside it: `dispatch` (requests), `releases` (releases in
//! steps), `from_kernel` (links, neighbours, the followed table), `packets` (upcalls),
//! `restart` (adoption and the hold), [`reload`]. A release that finishes re-queues the
//! inputs its connection held back; nothing here calls [`Daemon::handle`] from inside it.
//! The socket and the metrics endpoint know nothing of the daemon: their events
//! (`server::ConnEvent`, `metrics::Scrape`) become inputs here.

mod conns;
mod dispatch;
pub mod first_packets;
pub mod follow;
mod from_kernel;
pub mod hold;
pub mod links;
mod packets;
mod releases;
pub mod reload;
mod restart;
pub mod run;
pub mod sweep;
pub mod too_big;
pub mod writer;

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    net::{IpAddr, Ipv6Addr},
    time::Duration,
};

use tracing::{debug, info, warn};

pub use self::run::run;
pub use self::writer::WRITE_BATCH;
use self::{
    conns::Connections,
    first_packets::FirstPackets,
    follow::{Decision, Follow, Tables},
    hold::{RestartHold, Step},
    links::{Change, Links},
    sweep::Sweep,
    writer::{Applied, Writer},
};
use self::{
    from_kernel::ALIVE_EVERY,
    releases::{Job, RELEASE_BATCH},
};
use crate::{
    config::StaticMfe,
    dataplane::{
        BpfFastPath, Dataplane,
        upcall::{self, Upcall},
    },
    fastpath::{Adopted, FastPath, FastPathError},
    kernel::{KernelEvent, NetDev},
    manager::{Effect, Handle, Iface, Manager, Progress, Settings, Sg},
    metrics::Scrape,
    proto::{
        ErrorCode, EventFrame, Rejected, Reloaded, ReplyBody, ReplyFrame, RequestFrame, Status,
        WireError,
    },
    scope::{Boundary, Scope},
    server::{ConnEvent, ConnId, Outbound},
};

/// Everything that can happen to mgmd.
#[derive(Debug)]
pub enum Input {
    /// A client connected; replies and events go out through `tx`.
    Connected { conn: ConnId, tx: Outbound, peer: Option<(u32, u32, i32)> },
    /// A line: a parsed request, or the error reply a bad line gets.
    Line { conn: ConnId, line: Result<RequestFrame, Rejected> },
    /// The client went away.
    Disconnected { conn: ConnId },
    /// A packet the fast path could not forward (no MFE, or the wrong interface).
    Upcall(Upcall),
    /// The kernel announced a change of links or neighbours.
    Kernel(KernelEvent),
    /// The kernel's answer to [`ToKernel::LookUpLink`]: the link, or `None` if there is none.
    LinkLookedUp { ifindex: u32, dev: Option<NetDev> },
    /// Time passed: callback deadlines, expiry, retries, the restart hold.
    Tick,
    /// Read the configuration again and apply what changed (SIGHUP); the outcome goes to
    /// `done`.
    Reload { done: tokio::sync::oneshot::Sender<Result<Reloaded, WireError>> },
    /// A metrics scrape: the counters and sizes go to `done`.
    Metrics { done: tokio::sync::oneshot::Sender<crate::metrics::Sample> },
}

/// The socket's events are inputs (the server knows nothing of the daemon).
impl From<ConnEvent> for Input {
    fn from(e: ConnEvent) -> Self {
        match e {
            ConnEvent::Connected { conn, tx, peer } => Input::Connected { conn, tx, peer },
            ConnEvent::Line { conn, line } => Input::Line { conn, line },
            ConnEvent::Disconnected { conn } => Input::Disconnected { conn },
        }
    }
}

impl From<Scrape> for Input {
    fn from(s: Scrape) -> Self {
        Input::Metrics { done: s.done }
    }
}

/// What one connection may hold, and how many static MFEs there may be: a careless or hostile
/// client runs into these before it can fill a table the others need. The defaults are far
/// above what a routing daemon uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Registered clients (handles) per connection.
    pub handles_per_conn: usize,
    /// Interfaces (ifindex, next hop) owned per user (all connections of one uid together;
    /// root's per connection): each holds a lease in the fast path, whose table has 65,535.
    pub interfaces_per_conn: usize,
    /// Membership entries per user, counted as interfaces are.
    pub memberships_per_conn: usize,
    /// Open group enumerations per connection.
    pub enums_per_conn: usize,
    /// Static MFEs in all (they share the MFE table with the ones traffic creates).
    pub static_mfes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            handles_per_conn: 64,
            interfaces_per_conn: 4_096,
            memberships_per_conn: 1 << 20,
            enums_per_conn: 16,
            static_mfes: mgm_common::DEFAULT_MAX_MFES as usize / 2,
        }
    }
}

/// The error of a call over a limit: NOT_ENOUGH_MEMORY, as MGM answers when resources run out.
fn over_limit(what: &str, limit: usize, flag: &str) -> WireError {
    let why = format!("limit reached: {limit} {what} (mgmd {flag})");
    WireError::mgm(crate::manager::MgmError::NotEnoughMemory, why)
}

/// Timer period of [`run`]: callback deadlines and MFE expiry are checked at this granularity.
pub const TICK: Duration = Duration::from_millis(250);
/// How often failed fast-path writes are retried.
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// What the daemon asks of the kernel, carried out by the run loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToKernel {
    /// Resolve this next hop on this interface (ARP, or IPv6 Neighbour Discovery).
    Solicit(u32, IpAddr),
    /// Send this ICMPv6 message (a Packet Too Big, checksum left to the kernel) to `to`.
    PacketTooBig { to: Ipv6Addr, message: Vec<u8> },
    /// Ask for this link (a request named it before its notification was read), and answer
    /// with [`Input::LinkLookedUp`].
    LookUpLink(u32),
    /// Forward this held packet as if it arrived on `ifindex` now (through the replay
    /// thread: `dataplane::Replayer`).
    Replay { ifindex: u32, frame: Vec<u8> },
    /// Write the liveness stamp (`--follow-kernel`): the kernel's coarse monotonic clock now,
    /// which the programs compare with theirs (see `dataplane::bpf::Liveness`).
    SayAlive,
}

pub struct Daemon<D: Dataplane = BpfFastPath> {
    manager: Manager,
    writer: Writer<D>,
    conns: Connections,
    links: Links,
    hold: RestartHold,
    first: FirstPackets,
    sweep: Sweep,
    /// What the kernel should do for the daemon (taken by the run loop).
    to_kernel: Vec<ToKernel>,
    /// ICMPv6 Packet Too Big messages sent, within their budget.
    too_big: too_big::Budget,
    /// Links asked of the kernel ([`ToKernel::LookUpLink`]) and the connections whose
    /// request waits for the answer; links answered, for those requests' second turn.
    lookups: BTreeMap<u32, BTreeSet<ConnId>>,
    looked_up: BTreeSet<u32>,
    /// Held packets the replay thread dropped (its queue was full): its count, read here.
    replay_lost: std::sync::Arc<std::sync::atomic::AtomicU64>,
    limits: Limits,
    /// Releases (asked for, or of departed clients) being done a step at a time.
    jobs: VecDeque<Job>,
    /// Connections waiting for a release to finish: their next inputs wait here, in order,
    /// and they are not read meanwhile (so this holds at most what was already in flight).
    busy: BTreeMap<ConnId, VecDeque<Input>>,
    /// Inputs handled before the next one from outside: those a finished release let go,
    /// in order (re-queued, not handled from inside the step that finished it).
    ready: VecDeque<Input>,
    /// When the last release step ran; steps so far and when the first ran, for the log.
    last_step: Duration,
    steps: (u64, Duration),
    last_retry: Duration,
    /// The kernel's multicast routing table, when mgmd follows it.
    follow: Option<Follow>,
    /// When the liveness stamp was last written (followed entries fail open without it).
    last_alive: Duration,
    /// The followed table has been read whole once: the fast path's followed entries are
    /// current, and the liveness stamp may be written.
    followed_once: bool,
    /// Scope boundaries by interface name (see [`crate::scope`]).
    boundaries: BTreeMap<String, Scope>,
    /// Where a reload reads the configuration, and what the configuration installed.
    config_source: Option<reload::Source>,
    configured: reload::Configured,
}

impl<D: Dataplane> Daemon<D> {
    pub fn new(dp: D, settings: Settings) -> Self {
        let mut manager = Manager::new(settings);
        // The core creates no more MFEs than the fast path has room for.
        manager.set_max_mfes(manager_room(&dp, 0));
        Self {
            manager,
            writer: Writer::new(dp),
            conns: Connections::default(),
            links: Links::default(),
            hold: RestartHold::default(),
            first: FirstPackets::default(),
            sweep: Sweep::default(),
            to_kernel: Vec::new(),
            too_big: too_big::Budget::default(),
            lookups: BTreeMap::new(),
            looked_up: BTreeSet::new(),
            replay_lost: Default::default(),
            limits: Limits::default(),
            jobs: VecDeque::new(),
            busy: BTreeMap::new(),
            ready: VecDeque::new(),
            last_step: Duration::ZERO,
            steps: (0, Duration::ZERO),
            last_retry: Duration::ZERO,
            follow: None,
            last_alive: Duration::ZERO,
            followed_once: false,
            boundaries: BTreeMap::new(),
            config_source: None,
            configured: reload::Configured::default(),
        }
    }

    /// Where the replay thread counts the held packets it dropped (see [`ToKernel::Replay`]).
    pub fn count_replay_losses(&mut self, lost: std::sync::Arc<std::sync::atomic::AtomicU64>) {
        self.replay_lost = lost;
    }

    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// One input, at monotonic time `now`, then the inputs it let go.
    pub fn handle(&mut self, now: Duration, input: Input) {
        self.one(now, input);
        self.handle_ready(now);
    }

    /// The inputs a finished release let go, in order; one that starts another release
    /// parks the rest again.
    fn handle_ready(&mut self, now: Duration) {
        while let Some(input) = self.ready.pop_front() {
            self.one(now, input);
        }
    }

    fn one(&mut self, now: Duration, input: Input) {
        self.writer.set_now(now);
        // Lines waiting for room go first (their clients may have read since).
        self.conns.pump();
        let conn = match &input {
            Input::Line { conn, .. } | Input::Disconnected { conn } => Some(*conn),
            _ => None,
        };
        // A connection whose release is under way: its next request waits for the answer.
        if let Some(waiting) = conn.and_then(|c| self.busy.get_mut(&c)) {
            waiting.push_back(input);
            return;
        }
        match input {
            Input::Connected { conn, tx, peer } => {
                conns::log_open(conn, peer);
                self.conns.open(conn, tx, peer.map(|(uid, _, _)| uid));
            }
            Input::Disconnected { conn } => self.close(conn, "disconnected", now),
            // A connection already dropped (a slow client): its remaining lines are not served.
            Input::Line { conn, .. } if !self.conns.is_open(conn) => {}
            Input::Line { conn, line: Err(rejected) } => {
                let line = conns::encode(&rejected);
                self.conns.send(conn, line);
                self.settle(now);
            }
            Input::Line { conn, line: Ok(frame) } => {
                let reply = self.serve(conn, frame, now);
                // Leases first, then (the first batch of) the writes, the reply, the events.
                let events = self.apply_effects();
                if let Some(reply) = reply {
                    self.conns.send(conn, reply);
                }
                self.deliver(events, now);
            }
            Input::Upcall(u) => self.upcall(u, now),
            Input::Kernel(ev) => self.kernel(ev, now),
            Input::LinkLookedUp { ifindex, dev } => self.looked_up(ifindex, dev, now),
            Input::Tick => self.tick(now),
            Input::Metrics { done } => {
                let _ = done.send(self.sample());
            }
            Input::Reload { done } => {
                let _ = done.send(self.reload(now));
                self.settle(now);
            }
        }
    }

    /// Background work between inputs: a step of the releases under way, MFEs and requests
    /// still due, one batch of queued fast-path writes.
    pub fn background(&mut self, now: Duration) {
        self.writer.set_now(now);
        if self.jobs_may_step(now) {
            self.step_jobs(now);
        }
        if self.manager.has_due(now) {
            self.manager.tick(now);
            self.settle(now);
        }
        let applied = self.writer.drain(WRITE_BATCH);
        self.applied(applied);
        self.handle_ready(now);
    }

    /// Whether [`Daemon::background`] has work it can do now.
    pub fn has_background_work(&self, now: Duration) -> bool {
        self.writer.pending() > 0 || self.jobs_may_step(now) || self.manager.has_due(now)
    }

    /// Fast-path writes not applied yet.
    pub fn pending_writes(&self) -> usize {
        self.writer.pending()
    }

    /// What the kernel should do: next hops to resolve, messages to send.
    pub fn take_for_kernel(&mut self) -> Vec<ToKernel> {
        std::mem::take(&mut self.to_kernel)
    }

    /// Attaches the fast path to `dev` and makes it usable as an outgoing interface.
    pub fn manage(&mut self, dev: NetDev) -> anyhow::Result<()> {
        if self.links.is_managed(dev.ifindex) {
            return Ok(());
        }
        let boundary = self.boundaries.get(&dev.name).copied();
        self.writer.manage(&dev, boundary)?;
        info!(ifname = %dev.name, ifindex = dev.ifindex, mac = %crate::kernel::fmt_mac(&dev.mac), boundary = boundary.map(|b| b.to_string()), "managing interface");
        self.links.set_managed(dev);
        self.reconcile_all();
        Ok(())
    }

    /// Scope boundaries by interface name, drawn as each interface is managed (by the
    /// configuration, a restart or a client).
    pub fn set_boundaries(&mut self, boundaries: &[Boundary]) {
        self.boundaries = boundaries.iter().map(|b| (b.interface.clone(), b.scope)).collect();
    }

    /// Manages the kernel's interface named `name` (from the configuration).
    pub fn manage_by_name(&mut self, name: &str) -> anyhow::Result<()> {
        let dev = self.links.by_name(name).cloned();
        let dev = dev.ok_or_else(|| anyhow::anyhow!("no interface named {name:?}"))?;
        self.manage(dev)
    }

    /// Answers every link lookup asked so far: no such link (tests and fuzzing, whose links
    /// all come from their snapshot). The other effects stay for [`Daemon::take_for_kernel`].
    #[cfg(any(test, feature = "testing"))]
    pub fn answer_lookups(&mut self, now: Duration) {
        let mut lookups = Vec::new();
        self.to_kernel.retain(|e| match e {
            ToKernel::LookUpLink(i) => {
                lookups.push(*i);
                false
            }
            _ => true,
        });
        for ifindex in lookups {
            self.handle(now, Input::LinkLookedUp { ifindex, dev: None });
        }
    }

    /// Whether a request naming `ifindex` must wait for the kernel's answer: a link created
    /// just before the request, whose notification is not read yet (asked once per request:
    /// its second turn takes the answer).
    fn must_look_up(&mut self, ifindex: u32) -> bool {
        let known = self.links.is_managed(ifindex) || self.links.device(ifindex).is_some();
        !known && !self.looked_up.remove(&ifindex)
    }

    /// Parks `conn`'s request `line` until the kernel says whether `ifindex` exists (the
    /// lookup is the run loop's, off this thread).
    fn look_up(&mut self, conn: ConnId, ifindex: u32, line: Input) {
        self.hold_conn(conn);
        self.busy.entry(conn).or_default().push_front(line);
        let waiting = self.lookups.entry(ifindex).or_default();
        if waiting.is_empty() {
            self.to_kernel.push(ToKernel::LookUpLink(ifindex));
        }
        waiting.insert(conn);
    }

    /// The kernel's answer about `ifindex`: the link is known (or is not), and the requests
    /// that waited for it go again.
    fn looked_up(&mut self, ifindex: u32, dev: Option<NetDev>, now: Duration) {
        if let Some(dev) = dev
            && self.links.device(ifindex).is_none()
        {
            self.kernel(KernelEvent::Link(dev), now);
        }
        let Some(waiting) = self.lookups.remove(&ifindex) else { return };
        self.looked_up.insert(ifindex);
        for conn in waiting {
            self.resume(conn);
        }
    }

    /// Manages `ifindex` if it is not yet (a client took it).
    fn ensure_managed(&mut self, ifindex: u32) -> Result<(), WireError> {
        if self.links.is_managed(ifindex) {
            return Ok(());
        }
        let dev = self.links.device(ifindex).cloned().ok_or_else(|| {
            WireError::new(
                ErrorCode::InvalidParameter,
                format!("no interface with index {ifindex}"),
            )
        })?;
        self.manage(dev).map_err(|e| WireError::new(ErrorCode::CanNotComplete, format!("{e:#}")))
    }

    /// Installs a static MFE named by interfaces.
    pub fn add_static(&mut self, spec: &StaticMfe) -> Result<(), WireError> {
        spec.validate().map_err(|why| WireError::new(ErrorCode::InvalidParams, why))?;
        let by_name = |n: &str| {
            self.links.managed_by_name(n).ok_or_else(|| {
                WireError::new(
                    ErrorCode::NoSuchInterface,
                    format!("{n:?} is not a managed interface (start mgmd with --iface {n})"),
                )
            })
        };
        let iif = by_name(&spec.iif)?;
        let oifs = spec.oifs.iter().map(|n| by_name(n)).collect::<Result<Vec<_>, _>>()?;
        let key = Sg::new(spec.source, spec.group);
        let limit = self.limits.static_mfes;
        if !self.writer.is_static(&key) && self.writer.static_count() >= limit {
            return Err(over_limit("static MFEs", limit, "--max-static-mfes"));
        }
        self.writer.add_static(key, iif, &oifs)?;
        self.fit_core();
        self.hold.forget(&key);
        // One line per entry only when asked for: a file of 100,000 statics would otherwise
        // write 100,000 lines (the start and every reload log a summary).
        debug!(source = %spec.source, group = %spec.group, iif = %spec.iif, oifs = ?spec.oifs, "static mfe installed");
        Ok(())
    }

    /// The core's effects since the last call: lease changes and writes happen now; the
    /// callbacks are returned for delivery after the reply.
    fn apply_effects(&mut self) -> Vec<Effect> {
        let effects = self.manager.take_effects();
        let (killed, applied) = self.writer.queue(&effects);
        for ifindex in killed {
            self.end_adopted_leases(Some(ifindex));
        }
        self.applied(applied);
        effects
    }

    /// What follows a write reaching the fast path: held packets go, trackers forget.
    fn applied(&mut self, applied: Vec<Applied>) {
        for a in applied {
            match a {
                Applied::Installed(k) => {
                    self.hold.forget(&k);
                    for (ifindex, frame) in self.first.take(&k) {
                        self.replay(ifindex, frame);
                    }
                }
                Applied::Removed(k) => {
                    self.hold.forget(&k);
                    self.first.abandon(&k);
                    self.sweep.forget(&k);
                }
            }
        }
        self.resolve_neighbours();
    }

    /// Callbacks to their clients (and monitors); then the clients whose connection failed
    /// meanwhile are released, which may cause more.
    fn deliver(&mut self, effects: Vec<Effect>, now: Duration) {
        for e in effects {
            if let Effect::Notify { to, event } = e {
                self.conns.deliver(&EventFrame { handle: to, event });
            }
        }
        for (conn, handles, why) in self.conns.take_closed() {
            self.release_handles(conn, handles, why, now);
        }
    }

    /// Applies and delivers what the core's last calls caused.
    fn settle(&mut self, now: Duration) {
        let events = self.apply_effects();
        self.deliver(events, now);
    }

    /// Timers: unanswered callbacks take their defaults, idle MFEs expire, traffic keeps MFEs
    /// alive, failed writes are retried, unresolved next hops are solicited.
    fn tick(&mut self, now: Duration) {
        if self.followed_once && now.saturating_sub(self.last_alive) >= ALIVE_EVERY {
            self.last_alive = now;
            self.say_alive();
        }
        if self.jobs_may_step(now) {
            self.step_jobs(now);
        }
        self.sweep.step(&mut self.manager, self.writer.mirror(), now);
        if now.saturating_sub(self.last_retry) >= RETRY_EVERY {
            self.last_retry = now;
            self.writer.retry_failed(&self.manager);
        }
        self.writer.reclaim();
        let unresolved = self.writer.mirror().unresolved_neighbours();
        self.to_kernel.extend(unresolved.into_iter().map(|(i, ip)| ToKernel::Solicit(i, ip)));
        self.manager.tick(now);
        self.settle(now);
        self.tick_hold(now);
        // Packets of flows whose creation was abandoned or never answered.
        let ttl = self.creation_grace();
        self.first.expire(now, ttl);
    }

    pub fn status(&self) -> Status {
        let m = self.writer.mirror();
        let (leases_alive, leases_released) = m.lease_counts();
        let (write_failures, retrying) = self.writer.failures();
        let (flows_refused, mfes_evicted) = self.manager.admission_counts();
        let lost = self.replay_lost.load(std::sync::atomic::Ordering::Relaxed);
        Status {
            mfes: self.manager.mfe_count(),
            installed: m.mfes().count(),
            oils: m.oil_count(),
            pending_writes: self.writer.pending(),
            leases_alive,
            leases_released,
            held: self.hold.sizes().0,
            unresolved: self.first.flows(),
            replayed: self.first.replayed.saturating_sub(lost),
            too_big_sent: self.too_big.sent,
            too_big_limited: self.too_big.limited,
            replay_dropped: self.first.dropped + lost,
            write_failures,
            retrying,
            backlog_bytes: self.conns.backlog_bytes(),
            flows_refused,
            mfes_evicted,
            releasing: self.jobs.iter().filter(|j| matches!(j, Job::Release { .. })).count(),
        }
    }
}

impl<D: Dataplane> Daemon<D> {
    /// The fast path's global counters by name (`show`, metrics).
    fn named_counters(&self) -> Result<BTreeMap<String, u64>, FastPathError> {
        let values = self.writer.dataplane().counters()?;
        Ok(mgm_common::counter::NAMES
            .iter()
            .zip(values)
            .map(|(n, v)| ((*n).to_owned(), v))
            .collect())
    }

    /// What a metrics scrape reports (see [`crate::metrics`]).
    pub fn sample(&self) -> crate::metrics::Sample {
        let fp = self.writer.dataplane();
        let fastpath = match self.named_counters() {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "reading the fast path's counters");
                BTreeMap::new()
            }
        };
        let ports = fp.port_stats().unwrap_or_else(|e| {
            warn!(error = %e, "reading the interfaces' counters");
            BTreeMap::new()
        });
        let interfaces = self
            .links
            .managed()
            .map(|d| {
                let p = ports.get(&d.ifindex).copied().unwrap_or_default();
                crate::metrics::InterfaceSample {
                    name: d.name.clone(),
                    copies: p.copies,
                    bytes: p.bytes,
                    drops: p.drops,
                }
            })
            .collect();
        crate::metrics::Sample {
            status: self.status(),
            fastpath,
            mfe_capacity: u64::from(fp.mfe_capacity()),
            oil_capacity: u64::from(mgm_common::MAX_OILS),
            lease_capacity: u64::from(mgm_common::MAX_LEASES),
            statics: self.writer.static_count() as u64,
            static_capacity: self.limits.static_mfes as u64,
            clients: self.manager.clients().len() as u64,
            connections: self.conns.count() as u64,
            interfaces,
        }
    }
}

impl From<FastPathError> for WireError {
    fn from(e: FastPathError) -> Self {
        let code = match e {
            // A table at capacity: the call that needed the slot fails and changes nothing.
            FastPathError::Full { .. } => {
                return WireError::mgm(crate::manager::MgmError::NotEnoughMemory, e.to_string());
            }
            FastPathError::OilTooLong(_) | FastPathError::TooManyLeases(_) => ErrorCode::Full,
            FastPathError::UnknownPort(_) | FastPathError::PortInUse(..) => {
                ErrorCode::NoSuchInterface
            }
            FastPathError::UnknownLease(_)
            | FastPathError::Family(..)
            | FastPathError::Map { .. } => ErrorCode::FastPath,
        };
        WireError::new(code, e.to_string())
    }
}

/// How many MFEs the core may hold: the fast path's capacity less the static entries.
fn manager_room<F: FastPath>(fp: &F, statics: usize) -> usize {
    (fp.mfe_capacity() as usize).saturating_sub(statics)
}

/// A reply line of method `M`: its reply, or an error.
fn reply_line<M: crate::proto::Method>(id: u64, r: Result<M::Reply, WireError>) -> String {
    let body = match r {
        Ok(v) => ReplyBody::Result(v),
        Err(e) => {
            tracing::debug!(id, code = ?e.code, error = %e.message, "request failed");
            ReplyBody::Error(e)
        }
    };
    conns::encode(&ReplyFrame { id: Some(id), body })
}

#[cfg(test)]
mod tests;
