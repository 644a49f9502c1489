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
//! [`conns`] (connections and handles), [`writer`] (the mirror, queued writes, leases, retries,
//! static MFEs), [`hold`] (the restart hold), [`first_packets`] (flows waiting for their
//! MFE), [`sweep`] (counters keeping MFEs alive), [`links`] (the kernel's view).

mod conns;
mod dispatch;
pub mod first_packets;
pub mod follow;
pub mod hold;
pub mod links;
pub mod reload;
pub mod run;
pub mod sweep;
pub mod too_big;
pub mod writer;

use std::{
    collections::{BTreeMap, BTreeSet, VecDeque},
    net::{IpAddr, Ipv6Addr},
    time::Duration,
};

use mgm_common::PortValue;
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
use crate::{
    config::StaticMfe,
    dataplane::{
        BpfFastPath, Dataplane,
        upcall::{self, Upcall},
    },
    fastpath::{Adopted, FastPath, FastPathError},
    kernel::{KernelEvent, NetDev},
    manager::{Effect, Handle, Iface, Manager, Progress, Settings, Sg},
    proto::{
        ErrorCode, EventFrame, Rejected, Reloaded, ReplyBody, ReplyFrame, RequestFrame, Status,
        WireError,
    },
    scope::{Boundary, Scope},
    server::{ConnId, Outbound},
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
    /// Time passed: callback deadlines, expiry, retries, the restart hold.
    Tick,
    /// Read the configuration again and apply what changed (SIGHUP); the outcome goes to
    /// `done`.
    Reload { done: tokio::sync::oneshot::Sender<Result<Reloaded, WireError>> },
    /// A metrics scrape: the counters and sizes go to `done`.
    Metrics { done: tokio::sync::oneshot::Sender<crate::metrics::Sample> },
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
/// Entries (memberships, MFEs) a release removes per step: a client with a million is
/// released, or taken down when it leaves, between other inputs, not in one stall.
const RELEASE_BATCH: usize = 512;
/// How long release steps wait for congested clients to read, at most.
const RELEASE_PATIENCE: Duration = Duration::from_secs(2);

/// Work done in steps between inputs, in order.
#[derive(Debug)]
enum Job {
    /// A release: asked for (answered with `reply` when done), or of a departed client.
    Release { h: Handle, iface: Iface, reply: Option<(ConnId, u64)> },
    /// A departed client whose releases are done: deregistered.
    Forget(Handle),
}

/// What the daemon asks of the kernel, carried out by the run loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToKernel {
    /// Resolve this next hop on this interface (ARP, or IPv6 Neighbour Discovery).
    Solicit(u32, IpAddr),
    /// Send this ICMPv6 message (a Packet Too Big, checksum left to the kernel) to `to`.
    PacketTooBig { to: Ipv6Addr, message: Vec<u8> },
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
    /// Asks the kernel for a link a request names before its notification was read.
    lookup: fn(u32) -> Option<NetDev>,
    limits: Limits,
    /// Releases (asked for, or of departed clients) being done a step at a time.
    jobs: VecDeque<Job>,
    /// Connections waiting for a release to finish: their next inputs wait here, in order,
    /// and they are not read meanwhile (so this holds at most what was already in flight).
    busy: BTreeMap<ConnId, VecDeque<Input>>,
    /// When the last release step ran; steps so far and the longest (wall time), for the log.
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

/// How often the liveness stamp is written, and how stale it may get before the programs
/// leave every followed entry to the kernel.
const ALIVE_EVERY: Duration = Duration::from_millis(500);
const ALIVE_STALE: Duration = Duration::from_secs(3);

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
            lookup: |_| None,
            limits: Limits::default(),
            jobs: VecDeque::new(),
            busy: BTreeMap::new(),
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

    /// Follows the kernel's multicast routing tables `tables`: their forwardable entries are
    /// mirrored, one packet per `heartbeat` of each goes to the kernel (0: none), and the
    /// programs leave followed entries to the kernel when this daemon stops saying it is
    /// alive. The table itself arrives as kernel events.
    pub fn follow_kernel(&mut self, tables: Tables, heartbeat: Duration) -> anyhow::Result<()> {
        let fp = self.writer.mirror_mut().fast_path_mut();
        fp.set_config(mgm_common::config::HEARTBEAT_NS, heartbeat.as_nanos() as u64)?;
        fp.set_config(mgm_common::config::STALE_NS, ALIVE_STALE.as_nanos() as u64)?;
        // Not alive yet: entries adopted from a previous run may be stale until the first
        // dump of the table has been reconciled (then the stamp starts).
        self.follow = Some(Follow::new(tables));
        Ok(())
    }

    /// Not following the kernel: entries a previous run followed are nobody's now (the
    /// kernel forwards them anyway), so they leave the fast path.
    pub fn drop_followed(&mut self) {
        let keys: Vec<Sg> = self.writer.kernel_keys().collect();
        if !keys.is_empty() {
            info!(entries = keys.len(), "not following the kernel: its entries left to it");
        }
        for k in keys {
            if let Err(e) = self.writer.remove_kernel(&k, &self.manager) {
                warn!(error = %e, "removing a followed entry");
            }
        }
    }

    /// Makes the fast path equal to the followed table for `keys`.
    fn reconcile(&mut self, keys: impl IntoIterator<Item = Sg>) {
        let Some(f) = &self.follow else { return };
        for k in keys {
            let d = f.decide(&k, |i| self.links.is_managed(i));
            let (s, g) = (k.source, k.group);
            let r = match d {
                Some(Decision::Mirror { iif, oifs, local }) => {
                    self.writer.add_kernel(k, iif, &oifs, local).map(|()| "accelerated")
                }
                Some(Decision::Kernel(why)) => {
                    if self.writer.is_kernel(&k) {
                        info!(source = %s, group = %g, why, "kernel entry left to the kernel");
                    }
                    self.writer.remove_kernel(&k, &self.manager).map(|()| "kernel")
                }
                None => self.writer.remove_kernel(&k, &self.manager).map(|()| "gone"),
            };
            match r {
                Ok(what) => tracing::debug!(source = %s, group = %g, what, "kernel entry"),
                // Left to the kernel, which holds it anyway: slower, nothing lost.
                Err(e) => warn!(source = %s, group = %g, error = %e, "mirroring a kernel entry"),
            }
        }
    }

    /// Every followed entry again (the managed interfaces changed).
    fn reconcile_all(&mut self) {
        let Some(f) = &self.follow else { return };
        let mut keys: BTreeSet<Sg> = f.keys().collect();
        keys.extend(self.writer.kernel_keys());
        self.reconcile(keys);
    }

    fn say_alive(&mut self) {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: a valid timespec to fill; the same clock as bpf_ktime_get_coarse_ns.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
        let ns = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
        let fp = self.writer.mirror_mut().fast_path_mut();
        if let Err(e) = fp.set_config(mgm_common::config::ALIVE_NS, ns) {
            warn!(error = %e, "writing the liveness stamp");
        }
    }

    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// How to ask the kernel for one link directly (see [`crate::kernel::link`]); without it
    /// only links announced by kernel events are known.
    pub fn set_link_lookup(&mut self, lookup: fn(u32) -> Option<NetDev>) {
        self.lookup = lookup;
    }

    /// One input, at monotonic time `now`.
    pub fn handle(&mut self, now: Duration, input: Input) {
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
            Input::Tick => self.tick(now),
            Input::Metrics { done } => {
                let _ = done.send(self.sample());
            }
            Input::Reload { done } => {
                let r = self.reload(now);
                if let Err(e) = &r {
                    warn!(error = %e.message, "configuration not reloaded; the running one stays");
                }
                let _ = done.send(r);
                self.settle(now);
            }
        }
    }

    /// Background work between inputs: a step of the releases under way, MFEs and requests
    /// still due, one batch of queued fast-path writes.
    pub fn background(&mut self, now: Duration) {
        if self.jobs_may_step(now) {
            self.step_jobs(now);
        }
        if self.manager.has_due(now) {
            self.manager.tick(now);
            self.settle(now);
        }
        let applied = self.writer.drain(WRITE_BATCH);
        self.applied(applied);
    }

    /// Whether [`Daemon::background`] has work it can do now.
    pub fn has_background_work(&self, now: Duration) -> bool {
        self.writer.pending() > 0 || self.jobs_may_step(now) || self.manager.has_due(now)
    }

    /// Releases go at the pace their alerts are read: they wait while a client has more
    /// waiting than its queue holds, for a while (a client that does not read at all is cut
    /// off by its own limit).
    fn jobs_may_step(&self, now: Duration) -> bool {
        !self.jobs.is_empty()
            && (!self.conns.congested() || now.saturating_sub(self.last_step) >= RELEASE_PATIENCE)
    }

    /// Up to [`RELEASE_BATCH`] entries of the releases under way; a release done is answered
    /// (its connection's next requests are served), a departed client with nothing left is
    /// deregistered.
    fn step_jobs(&mut self, now: Duration) {
        self.last_step = now;
        let started = std::time::Instant::now();
        let mut budget = RELEASE_BATCH;
        let mut answered = Vec::new();
        while budget > 0
            && let Some(job) = self.jobs.front()
        {
            match *job {
                Job::Release { h, iface, reply } => {
                    // An error: it is no longer the client's (its interface left the
                    // kernel meanwhile), which is what was asked.
                    let r = self.manager.release_step(h, iface, &mut budget, now);
                    if r == Ok(Progress::More) {
                        break;
                    }
                    answered.extend(reply);
                }
                Job::Forget(h) => self.manager.client_gone(h, now),
            }
            self.jobs.pop_front();
        }
        let events = self.apply_effects();
        for &(conn, id) in &answered {
            self.conns.send(
                conn,
                reply_line::<crate::proto::ReleaseInterface>(id, Ok(crate::proto::Done {})),
            );
        }
        self.deliver(events, now);
        for (conn, _) in answered {
            self.resume(conn, now);
        }
        let (steps, longest) = &mut self.steps;
        *steps += 1;
        *longest = (*longest).max(started.elapsed());
        if self.jobs.is_empty() && *steps > 1 {
            let longest_ms = longest.as_secs_f64() * 1e3;
            info!(steps = *steps, longest_ms, "releases done in steps");
            self.steps = (0, Duration::ZERO);
        }
    }

    /// A release of `conn`'s is under way: its next inputs wait, and it is not read.
    fn hold_conn(&mut self, conn: ConnId) {
        self.busy.entry(conn).or_default();
        self.conns.pause_reading(conn, true);
    }

    /// `conn`'s release is answered: the inputs that waited are handled, in order, until one
    /// starts another release.
    fn resume(&mut self, conn: ConnId, now: Duration) {
        let Some(mut waiting) = self.busy.remove(&conn) else { return };
        while let Some(input) = waiting.pop_front() {
            self.handle(now, input);
            if let Some(again) = self.busy.get_mut(&conn) {
                again.extend(waiting);
                return;
            }
        }
        self.conns.pause_reading(conn, false);
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
        self.writer.mirror_mut().fast_path_mut().manage(&dev)?;
        self.writer.mirror_mut().add_port(dev.ifindex, PortValue::new(dev.mac, dev.mtu))?;
        let boundary = self.boundaries.get(&dev.name).copied();
        self.writer.mirror_mut().set_boundary(dev.ifindex, boundary)?;
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

    /// Manages `ifindex` if it is not yet (a client took it).
    fn ensure_managed(&mut self, ifindex: u32) -> Result<(), WireError> {
        if self.links.is_managed(ifindex) {
            return Ok(());
        }
        // A link created just before the request: its notification may still be unread.
        let dev = self.links.device(ifindex).cloned().or_else(|| (self.lookup)(ifindex));
        let dev = dev.ok_or_else(|| {
            WireError::new(
                ErrorCode::InvalidParameter,
                format!("no interface with index {ifindex}"),
            )
        })?;
        self.manage(dev).map_err(|e| WireError::new(ErrorCode::CanNotComplete, format!("{e:#}")))
    }

    /// Takes over what a previous mgmd left in the pinned maps (a restart): forwarding goes
    /// on unchanged; the adopted MFEs are held for `hold` while clients reconnect and
    /// re-create their state, then re-validated through the core (see docs/mgm-api.md).
    /// The kernel's links must be known first (a [`KernelEvent::Snapshot`]).
    pub fn adopt(&mut self, a: Adopted, now: Duration, hold: Duration) -> anyhow::Result<()> {
        let keys = self.writer.mirror_mut().adopt(a)?;
        let ports: Vec<u32> = self.writer.mirror().ports().map(|(i, _)| i).collect();
        for ifindex in ports {
            match self.links.device(ifindex).cloned() {
                Some(dev) => self.manage(dev)?,
                None => {
                    // Gone while mgmd was away: so are the MFEs using it.
                    let m = self.writer.mirror_mut();
                    let users: Vec<Sg> =
                        m.mfes().filter(|(_, x)| x.uses(ifindex)).map(|(k, _)| *k).collect();
                    for k in users {
                        m.remove(&k)?;
                    }
                    m.remove_port(ifindex)?;
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
            self.hold.end_leases(Some(ifindex), self.writer.mirror_mut());
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

    fn close(&mut self, conn: ConnId, why: &'static str, now: Duration) {
        if let Some(handles) = self.conns.close(conn) {
            self.release_handles(conn, handles, why, now);
        }
    }

    fn release_handles(
        &mut self,
        conn: ConnId,
        handles: BTreeSet<crate::manager::Handle>,
        why: &str,
        now: Duration,
    ) {
        // Lines still waiting behind a release of its own are not served (as for any
        // connection that is dropped).
        self.busy.remove(&conn);
        for &h in &handles {
            // The fast path stops copying for it at once, whatever it owned.
            for iface in self.manager.owned_ifaces(h) {
                self.hold.end_leases(Some(iface.ifindex), self.writer.mirror_mut());
                self.writer.end_lease(iface, h);
                self.jobs.push_back(Job::Release { h, iface, reply: None });
            }
            self.jobs.push_back(Job::Forget(h));
        }
        info!(conn, handles = handles.len(), why, "client gone; its state is released");
        // A first step at once: a client with few entries is gone before the next input.
        self.step_jobs(now);
    }

    /// An upcall from the fast path: the core hears of the packet (if the record is an
    /// event), and the first packets of a flow without MFE are held until it has one.
    fn upcall(&mut self, u: Upcall, now: Duration) {
        let key = u.sg;
        if u.kind == upcall::Kind::TooBig {
            // Whoever owns the entry: the source must lower its path MTU.
            self.packet_too_big(&key, u.ip(), now);
            return;
        }
        if self.writer.is_outside_core(&key) {
            // A static route, or the kernel's (which queues and forwards its first packets
            // itself): not the MGM clients' business.
            return;
        }
        if u.event {
            self.manager.new_packet(key, u.ifindex, u.header(), now);
        }
        // A kernel that cannot replay: the packet went to the kernel, as without mgm; nothing
        // is held, forwarded again or counted as lost.
        let can_replay = self.writer.mirror().fast_path().can_replay();
        if u.queued && u.kind == upcall::Kind::NoMfe && can_replay {
            if self.writer.mirror().get(&key).is_some() && !self.first.is_waiting(&key) {
                // It missed an MFE installed since: it goes at once.
                self.replay(u.ifindex, u.frame);
            } else if self.manager.knows(key) {
                // (One the core will not create an MFE for is not kept: the kernel got it.)
                self.first.hold(key, u.ifindex, &u.frame, now);
            }
        }
        self.settle(now);
    }

    /// Tells the source of an IPv6 packet too long for its entry's smallest link that MTU.
    fn packet_too_big(&mut self, key: &Sg, ip: &[u8], now: Duration) {
        let Some(mtu) = self.writer.mirror().path_mtu(key) else { return };
        let Some((to, message)) = too_big::message(ip, mtu) else {
            return;
        };
        if self.too_big.allow(now) {
            self.to_kernel.push(ToKernel::PacketTooBig { to, message });
        }
    }

    fn replay(&mut self, ifindex: u32, frame: Vec<u8>) {
        if self.writer.mirror_mut().fast_path_mut().replay(ifindex, frame) {
            self.first.replayed += 1;
        } else {
            self.first.dropped += 1;
        }
    }

    /// A kernel event: an interface gone is released everywhere; MTU and MAC changes reach
    /// the fast path; a neighbour's MAC reaches the copies sent to it.
    fn kernel(&mut self, ev: KernelEvent, now: Duration) {
        if let Some(f) = &mut self.follow {
            let keys = f.apply(&ev);
            if let (KernelEvent::LocalGroups(_), Some(ports)) = (&ev, f.local_ports())
                && let Err(e) = self.writer.mirror_mut().fast_path_mut().set_local_ports(ports)
            {
                warn!(error = %e, "writing the local UDP ports to the fast path");
            }
            if matches!(ev, KernelEvent::MfcSnapshot(_)) {
                // Also what was mirrored and is in no table now (adopted after a restart).
                let keys: BTreeSet<Sg> =
                    keys.into_iter().chain(self.writer.kernel_keys()).collect();
                self.reconcile(keys);
                if !self.followed_once {
                    self.followed_once = true;
                    self.say_alive();
                }
            } else {
                self.reconcile(keys);
            }
        }
        for change in self.links.apply(ev) {
            match change {
                Change::Gone(dev) => {
                    self.interface_gone(dev, now);
                    self.reconcile_all();
                }
                Change::Port(dev) => {
                    info!(ifname = %dev.name, mtu = dev.mtu, mac = %crate::kernel::fmt_mac(&dev.mac), "interface changed");
                    let port = PortValue::new(dev.mac, dev.mtu);
                    if let Err(e) = self.writer.mirror_mut().add_port(dev.ifindex, port) {
                        warn!(ifindex = dev.ifindex, error = %e, "updating the interface in the fast path");
                    }
                }
                Change::State(dev) => {
                    let state = if dev.up { "up" } else { "down" };
                    info!(ifname = %dev.name, ifindex = dev.ifindex, "interface {state}");
                }
                Change::Neighbour(ifindex, ip, mac) => {
                    if self.writer.mirror().wants_neighbour(ifindex, ip)
                        && let Err(e) = self.writer.mirror_mut().set_neighbour(ifindex, ip, mac)
                    {
                        warn!(ifindex, %ip, error = %e, "updating a next hop's MAC");
                    }
                }
            }
        }
    }

    /// Gives next hops that have no MAC yet the one the kernel knows; the others are solicited
    /// at the next tick.
    fn resolve_neighbours(&mut self) {
        if !self.writer.mirror().has_unresolved_neighbours() {
            return;
        }
        for (ifindex, ip) in self.writer.mirror().unresolved_neighbours() {
            if let Some(mac) = self.links.neighbour(ifindex, ip)
                && let Err(e) = self.writer.mirror_mut().set_neighbour(ifindex, ip, mac)
            {
                warn!(ifindex, %ip, error = %e, "updating a next hop's MAC");
            }
        }
    }

    /// An interface that left the kernel: owners are told and released there, MFEs arriving
    /// there go, and the interface leaves the fast path. A later interface that reuses the
    /// name gets a new ifindex and starts from nothing.
    fn interface_gone(&mut self, dev: NetDev, now: Duration) {
        self.release_port(dev, now, "interface removed from the kernel");
    }

    /// Everything of `dev` leaves the core and the fast path, and its programs are detached
    /// (it left the kernel, or the configuration).
    fn release_port(&mut self, dev: NetDev, now: Duration, why: &str) {
        let ifindex = dev.ifindex;
        info!(ifindex, ifname = %dev.name, "{why}");
        self.manager.interface_gone(ifindex, now);
        self.settle(now);
        // The port can only go once no queued write names it.
        let applied = self.writer.drain(usize::MAX);
        self.applied(applied);
        // Static and held entries naming it can no longer forward: they go too.
        let dead: Vec<Sg> =
            self.writer.mirror().mfes().filter(|(_, m)| m.uses(ifindex)).map(|(k, _)| *k).collect();
        self.hold.end_leases(Some(ifindex), self.writer.mirror_mut());
        for k in dead {
            let (s, g) = (k.source, k.group);
            warn!(source = %s, group = %g, "static or held mfe used a removed interface; removed");
            self.hold.forget(&k);
            let _ = self.writer.remove_static(&k, &self.manager);
            let _ = self.writer.mirror_mut().remove(&k);
        }
        self.fit_core();
        let m = self.writer.mirror_mut();
        if let Err(e) = m.remove_port(ifindex) {
            warn!(ifindex, error = %e, "interface still referenced in the fast path");
        }
        m.fast_path_mut().forget(ifindex);
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
        let unresolved = self.writer.mirror().unresolved_neighbours();
        self.to_kernel.extend(unresolved.into_iter().map(|(i, ip)| ToKernel::Solicit(i, ip)));
        self.manager.tick(now);
        self.settle(now);
        self.tick_hold(now);
        // Packets of flows whose creation was abandoned or never answered.
        let ttl = self.creation_grace();
        self.first.expire(now, ttl);
    }

    /// How long an MFE's creation may take: both callbacks unanswered, and a second.
    fn creation_grace(&self) -> Duration {
        self.manager.answer_timeout().saturating_mul(2).saturating_add(Duration::from_secs(1))
    }

    /// The restart hold: see [`Daemon::adopt`].
    fn tick_hold(&mut self, now: Duration) {
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
                self.hold.end_leases(None, self.writer.mirror_mut());
                info!("restart hold over: the fast path is the core's again");
            }
        }
    }

    /// The core's room: the fast path's less what static entries take.
    pub(crate) fn fit_core(&mut self) {
        let room = manager_room(self.writer.mirror().fast_path(), self.writer.static_count());
        self.manager.set_max_mfes(room);
    }

    pub fn status(&self) -> Status {
        let m = self.writer.mirror();
        let (leases_alive, leases_released) = m.lease_counts();
        let (write_failures, retrying) = self.writer.failures();
        let (flows_refused, mfes_evicted) = self.manager.admission_counts();
        Status {
            mfes: self.manager.mfe_count(),
            installed: m.mfes().count(),
            oils: m.oil_count(),
            pending_writes: self.writer.pending(),
            leases_alive,
            leases_released,
            held: self.hold.sizes().0,
            unresolved: self.first.flows(),
            replayed: self.first.replayed,
            too_big_sent: self.too_big.sent,
            too_big_limited: self.too_big.limited,
            replay_dropped: self.first.dropped,
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
        let values = self.writer.mirror().fast_path().counters()?;
        Ok(mgm_common::counter::NAMES
            .iter()
            .zip(values)
            .map(|(n, v)| ((*n).to_owned(), v))
            .collect())
    }

    /// What a metrics scrape reports (see [`crate::metrics`]).
    pub fn sample(&self) -> crate::metrics::Sample {
        let fp = self.writer.mirror().fast_path();
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
