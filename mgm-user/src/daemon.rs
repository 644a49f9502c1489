// SPDX-License-Identifier: MIT OR Apache-2.0
//! mgmd's router: the one task that owns the MGM core ([`Manager`]), the fast-path mirror
//! (and through it the BPF objects) and the table of connections.
//!
//! ```text
//!  client ─┐                                 ┌───────────── router task ─────────────┐
//!  client ─┼─ connection tasks ─ mpsc<Cmd> ─▶│ Manager ─effects─▶ Mirror<BpfFastPath> │
//!  client ─┘    ◀── per-connection queue ────│   replies, then callbacks as events   │
//!                                            └───────────────────────────────────────┘
//! ```
//! For each request: the core call, then its fast-path writes, then the reply, then the
//! callbacks it caused. Fast-path writes go through a FIFO: up to [`WRITE_BATCH`] of them are
//! applied before the reply, the rest in the background between requests, so a client leaving
//! with 100k entries does not stall the socket. Releases do not wait for that queue: each
//! (interface, next hop, owner) holds a lease in the fast path, and the lease dies before the
//! reply, which stops every copy it kept alive at once (see [`crate::fastpath`]). Handles
//! belong to the connection that registered them; a connection that goes away releases
//! everything its clients owned.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque},
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use mgm_common::{
    MfeKey, PortValue, UPCALL_F_EVENT, UPCALL_F_QUEUED, UPCALL_NO_MFE, UPCALL_QUEUE, Upcall,
    counter,
};
use serde::Serialize;
use serde_json::{Value, json};
use tracing::{debug, error, info, warn};

use crate::{
    config::StaticMfe,
    dataplane::BpfFastPath,
    fastpath::{Adopted, FastPath, FastPathError, MemFastPath, Mirror, Oif},
    manager::{Config, Effect, Handle, Iface, Manager, MfeView, Page, Sg},
    netdev::{self, NetDev},
    proto::{
        ErrorCode, EventFrame, InterfaceInfo, MfeInfo, MfeReply, MfeStatsReply, OifStatsReply,
        PROTOCOL_VERSION, PageReply, PageStatus, ReplyBody, ReplyFrame, Request, Snapshot, Status,
        WireError,
    },
    server::{Cmd, ConnId, Outbound, PushError},
};

impl From<&FastPathError> for ErrorCode {
    fn from(e: &FastPathError) -> Self {
        match e {
            FastPathError::Full { .. }
            | FastPathError::OilTooLong(_)
            | FastPathError::TooManyLeases(_) => ErrorCode::Full,
            FastPathError::UnknownLease(_) => ErrorCode::FastPath,
            FastPathError::UnknownPort(_) | FastPathError::PortInUse(..) => {
                ErrorCode::NoSuchInterface
            }
            FastPathError::Map { .. } | FastPathError::XdpMap { .. } => ErrorCode::FastPath,
        }
    }
}

impl From<FastPathError> for WireError {
    fn from(e: FastPathError) -> Self {
        WireError::new(ErrorCode::from(&e), e.to_string())
    }
}

/// What the router needs from the data plane beyond map writes.
pub trait Dataplane: FastPath {
    /// Global counters, indexed by `mgm_common::counter`.
    fn counters(&self) -> Result<[u64; counter::COUNT as usize], FastPathError>;
    /// Starts forwarding on `dev` (attach XDP).
    fn manage(&mut self, dev: &NetDev) -> anyhow::Result<()>;
    /// Forgets an interface that disappeared (its XDP link went with it).
    fn forget(&mut self, ifindex: u32);
    /// The interface indexes the kernel has now.
    fn present_links(&self) -> anyhow::Result<BTreeSet<u32>>;
    /// The kernel's interface with this index.
    fn device(&self, ifindex: u32) -> anyhow::Result<NetDev>;
    /// The interface's MTU now, if it can be read.
    fn mtu(&self, dev: &NetDev) -> Option<u16>;
    /// The kernel's neighbour table.
    fn neighbours(&self) -> anyhow::Result<crate::neigh::Table>;
    /// Asks the kernel to resolve a next hop.
    fn solicit(&self, ip: Ipv4Addr);
    /// Forwards a packet held while its MFE was being created, as if it arrived on `ifindex`
    /// now; false if it had to be dropped.
    fn replay(&mut self, ifindex: u32, frame: Vec<u8>) -> bool;
}

impl Dataplane for BpfFastPath {
    fn counters(&self) -> Result<[u64; counter::COUNT as usize], FastPathError> {
        BpfFastPath::counters(self)
    }
    fn manage(&mut self, dev: &NetDev) -> anyhow::Result<()> {
        Ok(self.attach(dev.ifindex, self.mode())?)
    }
    fn forget(&mut self, ifindex: u32) {
        // The kernel removed the link with the device; detaching can only fail now.
        let _ = self.detach(ifindex);
    }
    fn present_links(&self) -> anyhow::Result<BTreeSet<u32>> {
        Ok(netdev::present()?)
    }
    fn device(&self, ifindex: u32) -> anyhow::Result<NetDev> {
        Ok(netdev::by_index(ifindex)?)
    }
    fn replay(&mut self, ifindex: u32, frame: Vec<u8>) -> bool {
        BpfFastPath::replay(self, ifindex, frame)
    }
    fn mtu(&self, dev: &NetDev) -> Option<u16> {
        netdev::mtu(&dev.name).ok()
    }
    fn neighbours(&self) -> anyhow::Result<crate::neigh::Table> {
        Ok(crate::neigh::dump()?)
    }
    fn solicit(&self, ip: Ipv4Addr) {
        crate::neigh::solicit(ip);
    }
}

/// The in-memory data plane as a router's: for unit tests and the dispatcher fuzz target. Its
/// "kernel" has exactly the ports it holds, minus those whose MAC a test set to all-ones.
impl Dataplane for MemFastPath {
    fn counters(&self) -> Result<[u64; counter::COUNT as usize], FastPathError> {
        Ok([0; counter::COUNT as usize])
    }
    fn manage(&mut self, _dev: &NetDev) -> anyhow::Result<()> {
        Ok(())
    }
    fn forget(&mut self, _ifindex: u32) {}
    fn present_links(&self) -> anyhow::Result<BTreeSet<u32>> {
        Ok(self.ports.iter().filter(|(_, p)| p.mac != [0xff; 6]).map(|(i, _)| *i).collect())
    }
    fn mtu(&self, dev: &NetDev) -> Option<u16> {
        Some(dev.mtu)
    }
    fn neighbours(&self) -> anyhow::Result<crate::neigh::Table> {
        Ok(self.neighbours.clone())
    }
    fn solicit(&self, _ip: Ipv4Addr) {}
    fn replay(&mut self, ifindex: u32, frame: Vec<u8>) -> bool {
        self.replayed.push((ifindex, frame));
        true
    }
    fn device(&self, ifindex: u32) -> anyhow::Result<NetDev> {
        let p = self.ports.get(&ifindex).filter(|p| p.mac != [0xff; 6]);
        let p = p.ok_or_else(|| anyhow::anyhow!("no interface {ifindex}"))?;
        Ok(NetDev { name: format!("if{ifindex}"), ifindex, mac: p.mac, mtu: p.mtu })
    }
}

struct Conn {
    tx: Outbound,
    handles: BTreeSet<Handle>,
    /// Gets a copy of every event (`watch`).
    monitor: bool,
}

/// How often the managed interfaces are checked against the kernel's.
const LINKS_EVERY: Duration = Duration::from_secs(1);
/// Fast-path writes applied per step: before a reply, and per background step.
pub const WRITE_BATCH: usize = 512;
/// MFEs whose packet counters are read per tick to keep active ones alive: at least this
/// many, and enough that a sweep of the whole table takes at most `REFRESH_SLICES` ticks
/// (5 s at mgmd's 250 ms tick).
const REFRESH_BATCH: usize = 2_000;
const REFRESH_SLICES: usize = 20;

/// (S,G)s whose first packets mgmd holds while their MFE is created, at most (the kernel's
/// ipmr holds 64 unresolved entries per table by default).
const MAX_UNRESOLVED: usize = 1024;

/// First packets of a flow without MFE, held until the core installs one.
#[derive(Debug)]
struct Unresolved {
    since: Duration,
    /// (ingress ifindex, frame), oldest first, at most `UPCALL_QUEUE`.
    frames: Vec<(u32, Vec<u8>)>,
}

/// A fast-path write waiting its turn, with leases already resolved: a lease released after
/// the write was queued stays named, so the copy it justified stays dropped.
#[derive(Debug)]
enum Pending {
    Install { key: MfeKey, iif: u32, oifs: Vec<Oif> },
    Remove { key: MfeKey },
}

/// The state owner.
pub struct Router<F: Dataplane = BpfFastPath> {
    mirror: Mirror<F>,
    manager: Manager,
    /// Managed interfaces by ifindex.
    interfaces: BTreeMap<u32, NetDev>,
    /// (S,G)s installed by `add_mfe`/configuration, outside the MGM API; they win over MGM.
    statics: BTreeSet<MfeKey>,
    conns: BTreeMap<ConnId, Conn>,
    conn_of: HashMap<Handle, ConnId>,
    start: Instant,
    last_links: Duration,
    last_packets: HashMap<MfeKey, u64>,
    /// Where the counter sweep continues.
    refresh_cursor: Option<Sg>,
    /// The fast path's lease for each (interface, owner).
    leases: BTreeMap<(Iface, Handle), u32>,
    /// The core's ownership epoch `leases` was last brought in line with.
    leases_synced: Option<u64>,
    pending: VecDeque<Pending>,
    /// When the current backlog of writes started, and how large it grew.
    backlog: Option<(Instant, usize)>,
    /// After a restart: MFEs adopted from the pinned maps that the core has not re-created.
    held: BTreeSet<MfeKey>,
    /// Adopted leases still alive, by lease id, with their interface.
    held_leases: BTreeMap<u32, u32>,
    hold: HoldStage,
    unresolved: HashMap<MfeKey, Unresolved>,
    /// MFEs whose last fast-path write failed (table full, kernel error): rewritten from the
    /// core's state every second until it takes.
    retry: BTreeSet<MfeKey>,
    write_failures: u64,
    /// Held packets handed to the fast path / dropped (queue full or never resolved).
    replayed: u64,
    replay_dropped: u64,
}

/// Where the restart hold is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HoldStage {
    /// Clients reconnect and re-create their state; adopted MFEs keep forwarding.
    Until(Duration),
    /// Adopted MFEs were handed to the core as if their traffic had just arrived; those it
    /// does not re-create by this time go.
    Revalidating(Duration),
    Done,
}

fn key(sg: Sg) -> MfeKey {
    MfeKey::new(sg.source.octets(), sg.group.octets())
}

impl<F: Dataplane> Router<F> {
    pub fn new(fp: F, config: Config) -> Self {
        Self {
            mirror: Mirror::new(fp),
            manager: Manager::new(config),
            interfaces: BTreeMap::new(),
            statics: BTreeSet::new(),
            conns: BTreeMap::new(),
            conn_of: HashMap::new(),
            start: Instant::now(),
            last_links: Duration::ZERO,
            last_packets: HashMap::new(),
            refresh_cursor: None,
            leases: BTreeMap::new(),
            leases_synced: None,
            pending: VecDeque::new(),
            backlog: None,
            held: BTreeSet::new(),
            held_leases: BTreeMap::new(),
            hold: HoldStage::Done,
            unresolved: HashMap::new(),
            retry: BTreeSet::new(),
            write_failures: 0,
            replayed: 0,
            replay_dropped: 0,
        }
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// Attaches the fast path to `dev` and makes it usable as an outgoing interface.
    pub fn manage(&mut self, dev: NetDev) -> anyhow::Result<()> {
        if self.interfaces.contains_key(&dev.ifindex) {
            return Ok(());
        }
        self.mirror.fast_path_mut().manage(&dev)?;
        self.mirror.add_port(dev.ifindex, PortValue::new(dev.mac, dev.mtu))?;
        info!(ifname = %dev.name, ifindex = dev.ifindex, mac = %netdev::fmt_mac(&dev.mac), "managing interface");
        self.interfaces.insert(dev.ifindex, dev);
        Ok(())
    }

    /// Takes over what a previous mgmd left in the pinned maps (a restart): forwarding goes
    /// on unchanged; the adopted MFEs are held for `hold` while clients reconnect and
    /// re-create their state, then re-validated through the core (see docs/mgm-api.md).
    pub fn adopt(&mut self, a: Adopted, hold: Duration) -> anyhow::Result<()> {
        let keys = self.mirror.adopt(a)?;
        let ports: Vec<u32> = self.mirror.ports().map(|(i, _)| i).collect();
        for ifindex in ports {
            match self.mirror.fast_path().device(ifindex) {
                Ok(dev) => self.manage(dev)?,
                Err(_) => {
                    // Gone while mgmd was away: so are the MFEs using it.
                    let users: Vec<MfeKey> = self
                        .mirror
                        .mfes()
                        .filter(|(_, m)| m.iif == ifindex || m.oifs().contains(&ifindex))
                        .map(|(k, _)| *k)
                        .collect();
                    for k in users {
                        self.mirror.remove(&k)?;
                    }
                    self.mirror.remove_port(ifindex)?;
                }
            }
        }
        self.held = keys.into_iter().filter(|k| self.mirror.get(k).is_some()).collect();
        self.held_leases = self.mirror.live_leases();
        self.hold = HoldStage::Until(self.now() + hold);
        info!(
            mfes = self.held.len(),
            leases = self.held_leases.len(),
            hold_secs = hold.as_secs(),
            "took over the pinned fast path; forwarding continues"
        );
        Ok(())
    }

    /// Kills the adopted leases on `ifindex`: a release or removal there during the hold
    /// stops the held copies too (conservative: they may be another next hop's).
    fn end_held_leases(&mut self, ifindex: Option<u32>) {
        let ids: Vec<u32> = self
            .held_leases
            .iter()
            .filter(|(_, i)| ifindex.is_none_or(|x| x == **i))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.held_leases.remove(&id);
            if let Err(e) = self.mirror.kill_lease(id) {
                error!(lease = id, error = %e, "releasing an adopted lease failed");
            }
        }
    }

    /// The restart hold: see [`Router::adopt`].
    fn tick_hold(&mut self, now: Duration) {
        match self.hold {
            HoldStage::Until(t) if now >= t => {
                let keys: Vec<MfeKey> = self.held.iter().copied().collect();
                for k in keys {
                    let sg = Sg::new(k.source.into(), k.group.into());
                    if self.manager.knows(sg) {
                        continue; // its Install is queued or coming
                    }
                    let Some(iif) = self.mirror.get(&k).map(|m| m.iif) else { continue };
                    self.manager.new_packet(sg, iif, &[], now);
                    if !self.manager.knows(sg) {
                        // Nobody owns its incoming interface any more.
                        self.held.remove(&k);
                        self.pending.push_back(Pending::Remove { key: k });
                    }
                }
                self.flush();
                let grace = 2 * self.manager.answer_timeout() + Duration::from_secs(1);
                self.hold = HoldStage::Revalidating(now + grace);
            }
            HoldStage::Revalidating(t) if now >= t || self.held.is_empty() => {
                for k in std::mem::take(&mut self.held) {
                    self.pending.push_back(Pending::Remove { key: k });
                }
                self.drain(WRITE_BATCH);
                self.end_held_leases(None);
                self.hold = HoldStage::Done;
                info!("restart hold over: the fast path is the core's again");
            }
            _ => {}
        }
    }

    fn ensure_managed(&mut self, ifindex: u32) -> Result<(), WireError> {
        if self.interfaces.contains_key(&ifindex) {
            return Ok(());
        }
        let dev = self
            .mirror
            .fast_path()
            .device(ifindex)
            .map_err(|e| WireError::new(ErrorCode::InvalidParameter, e.to_string()))?;
        self.manage(dev).map_err(|e| WireError::new(ErrorCode::CanNotComplete, format!("{e:#}")))
    }

    fn ifindex_by_name(&self, name: &str) -> Result<u32, WireError> {
        self.interfaces.values().find(|d| d.name == name).map(|d| d.ifindex).ok_or_else(|| {
            WireError::new(
                ErrorCode::NoSuchInterface,
                format!("{name:?} is not a managed interface (start mgmd with --iface {name})"),
            )
        })
    }

    /// Installs a static MFE named by interfaces.
    pub fn add_mfe(&mut self, spec: &StaticMfe) -> Result<(), WireError> {
        spec.validate().map_err(|why| WireError::new(ErrorCode::InvalidParams, why))?;
        let iif = self.ifindex_by_name(&spec.iif)?;
        let oifs =
            spec.oifs.iter().map(|n| self.ifindex_by_name(n)).collect::<Result<Vec<_>, _>>()?;
        let key = MfeKey::new(spec.source.octets(), spec.group.octets());
        self.mirror.install_static(key, iif, &oifs)?;
        self.statics.insert(key);
        self.held.remove(&key);
        info!(source = %spec.source, group = %spec.group, iif = %spec.iif, oifs = ?spec.oifs, "static mfe installed");
        Ok(())
    }

    /// Handles one command from a connection task.
    pub fn on_cmd(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Connected { conn, tx, peer } => {
                info!(conn, peer = ?peer, "client connected (uid, gid, pid)");
                self.conns.insert(conn, Conn { tx, handles: BTreeSet::new(), monitor: false });
            }
            Cmd::Disconnected { conn } => self.drop_conn(conn, "disconnected"),
            // A connection the router already dropped (a slow client): its remaining lines
            // are not served.
            Cmd::Line { conn, .. } if !self.conns.contains_key(&conn) => {}
            Cmd::Line { conn, line } => {
                let reply = match line {
                    Err(reply) => reply,
                    Ok(frame) => {
                        let body = match self.handle(conn, frame.request) {
                            Ok(v) => ReplyBody::Result(v),
                            Err(e) => {
                                debug!(conn, code = ?e.code, error = %e.message, "request failed");
                                ReplyBody::Error(e)
                            }
                        };
                        ReplyFrame { id: Some(frame.id), body }
                    }
                };
                // Leases first, then (the first batch of) the writes, the reply, the events.
                let effects = self.queue_effects();
                self.send(conn, &reply);
                self.deliver(effects);
            }
        }
    }

    /// Timers: unanswered callbacks take their defaults, idle MFEs expire, and traffic keeps
    /// MFEs alive.
    pub fn tick(&mut self) {
        let now = self.now();
        // A slice of the MFEs per tick, so a large table costs a steady trickle of map reads
        // rather than a stall every REFRESH_EVERY.
        let n = REFRESH_BATCH.max(self.manager.mfe_count().div_ceil(REFRESH_SLICES));
        let keys = self.manager.mfe_keys_after(self.refresh_cursor, n);
        self.refresh_cursor = if keys.len() < n { None } else { keys.last().copied() };
        for sg in keys {
            let k = key(sg);
            if let Ok(Some(s)) = self.mirror.stats(&k)
                && self.last_packets.insert(k, s.packets) != Some(s.packets)
            {
                self.manager.refresh(sg, now);
            }
        }
        let second = now.saturating_sub(self.last_links) >= LINKS_EVERY;
        if second {
            self.last_links = now;
            self.check_links(now);
            self.retry_failed_writes();
        }
        // Every second, and every tick while a copy waits for its next hop's MAC.
        if second || self.mirror.unresolved_neighbours() {
            self.refresh_neighbours();
        }
        self.manager.tick(now);
        self.flush();
        self.tick_hold(now);
        // Packets of flows whose creation was abandoned or never answered.
        let ttl = 2 * self.manager.answer_timeout() + Duration::from_secs(1);
        let before: usize = self.unresolved.values().map(|u| u.frames.len()).sum();
        self.unresolved.retain(|_, u| now.saturating_sub(u.since) < ttl);
        let after: usize = self.unresolved.values().map(|u| u.frames.len()).sum();
        self.replay_dropped += (before - after) as u64;
    }

    /// Keeps the MACs of the next hops MFEs send to in line with the kernel's neighbour table
    /// (a changed MAC rewrites the lists using it); asks the kernel to resolve missing ones.
    /// A next hop that disappears from the table keeps its last MAC until it is back.
    fn refresh_neighbours(&mut self) {
        let wanted = self.mirror.wanted_neighbours();
        if wanted.is_empty() {
            return;
        }
        let table = match self.mirror.fast_path().neighbours() {
            Ok(t) => t,
            Err(e) => return warn!(error = %e, "reading the neighbour table"),
        };
        for (ifindex, ip) in wanted {
            match table.get(&(ifindex, ip)) {
                Some(mac) => {
                    if let Err(e) = self.mirror.set_neighbour(ifindex, ip, *mac) {
                        warn!(ifindex, %ip, error = %e, "updating a next hop's MAC");
                    }
                }
                None => self.mirror.fast_path().solicit(ip),
            }
        }
    }

    /// Interfaces that left the kernel: owners are told and released there, MFEs arriving
    /// there go, and the interface leaves the fast path. A later interface that reuses the
    /// name gets a new ifindex and starts from nothing.
    fn check_links(&mut self, now: Duration) {
        let present = match self.mirror.fast_path().present_links() {
            Ok(p) => p,
            Err(e) => return warn!(error = %e, "listing interfaces"),
        };
        let gone: Vec<u32> =
            self.interfaces.keys().copied().filter(|i| !present.contains(i)).collect();
        for ifindex in gone {
            let name = self.interfaces.remove(&ifindex).map(|d| d.name).unwrap_or_default();
            info!(ifindex, ifname = %name, "interface removed from the kernel");
            self.manager.interface_gone(ifindex, now);
            self.flush();
            // The port can only go once no queued write names it.
            self.drain(usize::MAX);
            // Static entries naming it can no longer forward: drop them too.
            let dead: Vec<MfeKey> = self
                .mirror
                .mfes()
                .filter(|(_, m)| m.iif == ifindex || m.oifs().contains(&ifindex))
                .map(|(k, _)| *k)
                .filter(|k| self.statics.contains(k) || self.held.contains(k))
                .collect();
            self.end_held_leases(Some(ifindex));
            for k in dead {
                warn!(source = %Ipv4Addr::from(k.source), group = %Ipv4Addr::from(k.group), "static or held mfe used a removed interface; removed");
                self.statics.remove(&k);
                self.held.remove(&k);
                let _ = self.mirror.remove(&k);
            }
            if let Err(e) = self.mirror.remove_port(ifindex) {
                warn!(ifindex, error = %e, "interface still referenced in the fast path");
            }
            self.mirror.fast_path_mut().forget(ifindex);
        }
        // MTU changes: the egress program drops (and counts) copies that would not fit.
        let changed: Vec<(u32, u16)> = self
            .interfaces
            .values()
            .filter_map(|d| {
                let mtu = self.mirror.fast_path().mtu(d)?;
                (mtu != d.mtu).then_some((d.ifindex, mtu))
            })
            .collect();
        for (ifindex, mtu) in changed {
            let Some(dev) = self.interfaces.get_mut(&ifindex) else { continue };
            info!(ifname = %dev.name, mtu, "interface MTU changed");
            dev.mtu = mtu;
            if let Err(e) = self.mirror.add_port(ifindex, PortValue::new(dev.mac, mtu)) {
                warn!(ifindex, error = %e, "updating the MTU in the fast path");
            }
        }
    }

    fn drop_conn(&mut self, conn: ConnId, why: &str) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        let now = self.now();
        for h in &c.handles {
            self.conn_of.remove(h);
            self.manager.client_gone(*h, now);
        }
        info!(conn, handles = c.handles.len(), why, "client gone; its state is released");
        self.flush();
    }

    fn send(&mut self, conn: ConnId, msg: &impl Serialize) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let line = serde_json::to_string(msg).expect("messages serialize");
        match c.tx.push(line) {
            Ok(()) => {}
            Err(PushError::Full) => {
                // Documented policy: a client that does not read its replies and events loses
                // its connection (and so its state) rather than stalling the router.
                warn!(conn, "client does not read; disconnecting it");
                c.tx.kill();
                self.drop_conn(conn, "outbound queue full");
            }
            Err(PushError::Closed) => self.drop_conn(conn, "closed"),
        }
    }

    /// Applies what the core's last calls caused: fast-path writes first, then callbacks.
    fn flush(&mut self) {
        let effects = self.queue_effects();
        self.deliver(effects);
    }

    /// Takes the core's effects: lease changes happen now, writes join the queue (and its
    /// first batch is applied); the callbacks are returned for delivery.
    fn queue_effects(&mut self) -> Vec<Effect> {
        let effects = self.manager.take_effects();
        self.sync_leases();
        for e in &effects {
            let p = match e {
                Effect::Install { sg, iif, oifs } => self.pending_install(*sg, *iif, oifs),
                Effect::Remove { sg } => Pending::Remove { key: key(*sg) },
                Effect::Notify { .. } => continue,
            };
            self.pending.push_back(p);
        }
        self.drain(WRITE_BATCH);
        if !self.pending.is_empty() && self.backlog.is_none() {
            self.backlog = Some((Instant::now(), self.pending.len()));
        }
        effects
    }

    /// An install with the leases of the clients behind each outgoing interface resolved now.
    fn pending_install(&self, sg: Sg, iif: Iface, oifs: &crate::manager::Oil) -> Pending {
        let oifs = oifs
            .iter()
            .map(|(iface, by)| {
                let leases = by.iter().filter_map(|h| self.leases.get(&(*iface, *h))).copied();
                Oif::new(iface.ifindex, iface.nexthop, leases.collect())
            })
            .collect();
        Pending::Install { key: key(sg), iif: iif.ifindex, oifs }
    }

    /// Queues again, from the core's current state, the MFEs whose last write failed.
    fn retry_failed_writes(&mut self) {
        for k in std::mem::take(&mut self.retry) {
            let sg = Sg::new(k.source.into(), k.group.into());
            let p = match self.manager.mfe_state(sg) {
                Some((iif, oil)) => self.pending_install(sg, iif, &oil),
                None => Pending::Remove { key: k },
            };
            self.pending.push_back(p);
        }
    }

    /// Gives every current owner of an interface a live lease, and kills the leases of
    /// owners that are gone: this is the moment a release takes effect in the fast path.
    /// Runs only when ownership changed since the last complete pass (it is called after
    /// every request and upcall).
    fn sync_leases(&mut self) {
        let epoch = self.manager.ownership_epoch();
        if self.leases_synced == Some(epoch) {
            return;
        }
        let mut complete = true;
        let owners: BTreeSet<(Iface, Handle)> = self
            .manager
            .owners()
            .into_iter()
            .flat_map(|o| [o.routing, o.igmp].into_iter().flatten().map(move |h| (o.iface, h)))
            .collect();
        let gone: Vec<(Iface, Handle)> =
            self.leases.keys().filter(|k| !owners.contains(k)).copied().collect();
        for k in gone {
            self.end_held_leases(Some(k.0.ifindex));
            let id = self.leases.remove(&k).expect("listed above");
            if let Err(e) = self.mirror.kill_lease(id) {
                // The copies it kept stop only when the queued rewrites land.
                error!(ifindex = k.0.ifindex, lease = id, error = %e, "releasing a lease failed");
            }
        }
        for k in owners {
            if self.leases.contains_key(&k) {
                continue;
            }
            match self.mirror.open_lease() {
                Ok(id) => {
                    self.leases.insert(k, id);
                }
                Err(e) => {
                    // Tried again after the next request.
                    complete = false;
                    error!(ifindex = k.0.ifindex, error = %e, "opening a lease failed");
                }
            }
        }
        self.leases_synced = complete.then_some(epoch);
    }

    /// Fast-path writes not applied yet.
    pub fn pending_writes(&self) -> usize {
        self.pending.len()
    }

    /// Applies up to `budget` queued writes, in order.
    pub fn drain(&mut self, budget: usize) {
        for _ in 0..budget {
            let Some(p) = self.pending.pop_front() else { break };
            let r = match &p {
                // Static entries win over the MGM clients' (see docs/mgm-api.md).
                Pending::Install { key, .. } | Pending::Remove { key }
                    if self.statics.contains(key) =>
                {
                    Ok(())
                }
                Pending::Install { key, iif, oifs } => {
                    self.held.remove(key);
                    let r = self.mirror.install(*key, *iif, oifs);
                    if r.is_ok() {
                        self.release_held_packets(key);
                    }
                    r
                }
                Pending::Remove { key } => {
                    self.held.remove(key);
                    if let Some(u) = self.unresolved.remove(key) {
                        self.replay_dropped += u.frames.len() as u64;
                    }
                    self.last_packets.remove(key);
                    self.mirror.remove(key).map(drop)
                }
            };
            let k = match &p {
                Pending::Install { key, .. } | Pending::Remove { key } => *key,
            };
            if let Err(err) = r {
                self.write_failures += 1;
                self.retry.insert(k);
                warn!(write = ?p, error = %err, "fast-path write failed; retried every second");
            } else {
                self.retry.remove(&k);
            }
        }
        if self.pending.is_empty() {
            // Nothing queued names a released lease any more: ids no OIL names are free.
            self.mirror.reap_leases();
            if let Some((since, size)) = self.backlog.take() {
                info!(
                    writes = size,
                    elapsed_ms = since.elapsed().as_millis() as u64,
                    "fast path caught up with the core"
                );
            }
        }
    }

    fn deliver(&mut self, effects: Vec<Effect>) {
        for e in effects {
            let Effect::Notify { to, event } = e else { continue };
            let frame = EventFrame { handle: to, event };
            let owner = self.conn_of.get(&to).copied();
            let monitors: Vec<ConnId> = self
                .conns
                .iter()
                .filter(|(id, c)| c.monitor && Some(**id) != owner)
                .map(|(id, _)| *id)
                .collect();
            if let Some(conn) = owner {
                self.send(conn, &frame);
            }
            for conn in monitors {
                self.send(conn, &frame);
            }
        }
    }

    /// A handle is usable only on the connection that registered it.
    fn own(&self, conn: ConnId, h: Handle) -> Result<Handle, WireError> {
        if self.conn_of.get(&h) == Some(&conn) {
            Ok(h)
        } else {
            Err(WireError::new(
                ErrorCode::InvalidParameter,
                format!("no handle {} on this connection", h.0),
            )
            .with_win32(87))
        }
    }

    fn stats(&self, sg: Sg) -> MfeStatsReply {
        let oifs = self.mirror.oif_stats(&key(sg)).unwrap_or_default();
        let oifs = oifs
            .into_iter()
            .map(|(ifindex, o)| OifStatsReply {
                ifindex,
                out_packets: o.out_packets,
                out_octets: o.out_bytes,
                frag_needed: o.frag_needed,
                out_discards: o.out_discards,
                ttl_too_low: 0,
            })
            .collect();
        match self.mirror.stats(&key(sg)) {
            Ok(Some(s)) => MfeStatsReply {
                in_packets: s.packets,
                in_octets: s.bytes,
                wrong_interface: s.wrong_iif,
                ttl_expired: s.ttl_expired,
                oifs,
            },
            _ => MfeStatsReply::default(),
        }
    }

    fn mfe_reply(&self, v: MfeView, stats: bool) -> MfeReply {
        let s = stats.then(|| self.stats(Sg::new(v.source, v.group)));
        MfeReply { mfe: v, stats: s }
    }

    fn page(&self, p: Page<MfeView>, stats: bool) -> Value {
        let status = if p.more { PageStatus::MoreData } else { PageStatus::NoMoreItems };
        let entries = p.entries.into_iter().map(|v| self.mfe_reply(v, stats)).collect();
        json!(PageReply { status, entries })
    }

    /// One request. Fast-path writes of the core's effects happen in `on_cmd`.
    pub fn handle(&mut self, conn: ConnId, req: Request) -> Result<Value, WireError> {
        let now = self.now();
        let m = &mut self.manager;
        let done = || json!({});
        Ok(match req {
            Request::Watch => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.monitor = true;
                }
                done()
            }
            Request::Hello => json!({
                "protocol": PROTOCOL_VERSION,
                "server": format!("mgmd {}", env!("CARGO_PKG_VERSION")),
            }),
            Request::Show => json!(self.snapshot()?),
            Request::Status => json!(self.status()),
            Request::AddMfe(spec) => {
                self.add_mfe(&spec)?;
                done()
            }
            Request::DelMfe { source, group } => {
                let k = MfeKey::new(source.octets(), group.octets());
                if !self.statics.remove(&k) || !self.mirror.remove(&k)? {
                    return Err(WireError::new(
                        ErrorCode::NotFound,
                        format!("no static MFE ({source}, {group})"),
                    ));
                }
                info!(%source, %group, "static mfe removed");
                done()
            }
            Request::Register { protocol, component } => {
                let h = m.register(protocol, component)?;
                self.conn_of.insert(h, conn);
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.handles.insert(h);
                }
                info!(conn, protocol, component, handle = h.0, "protocol registered");
                json!({ "handle": h })
            }
            Request::Deregister { handle } => {
                let h = self.own(conn, handle)?;
                self.manager.deregister(h, now)?;
                self.conn_of.remove(&h);
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.handles.remove(&h);
                }
                done()
            }
            Request::TakeInterface { handle, ifindex, nexthop } => {
                let h = self.own(conn, handle)?;
                if !self.manager.is_registered(h) {
                    return Err(crate::manager::MgmError::InvalidParameter.into());
                }
                self.ensure_managed(ifindex)?;
                self.manager.take_interface(h, Iface::new(ifindex, nexthop))?;
                done()
            }
            Request::ReleaseInterface { handle, ifindex, nexthop } => {
                let h = self.own(conn, handle)?;
                let iface = Iface::new(ifindex, nexthop);
                // The fast path stops first, in one write, before the core walks the entries
                // (which takes time proportional to their number).
                if self.manager.owns(h, iface) {
                    self.end_held_leases(Some(ifindex));
                    if let Some(id) = self.leases.remove(&(iface, h))
                        && let Err(e) = self.mirror.kill_lease(id)
                    {
                        error!(ifindex, lease = id, error = %e, "releasing a lease failed");
                    }
                }
                self.manager.release_interface(h, iface, now)?;
                done()
            }
            Request::GetProtocolOnInterface { ifindex, nexthop } => {
                let (protocol, component) =
                    m.protocol_on_interface(Iface::new(ifindex, nexthop))?;
                json!({ "protocol": protocol, "component": component })
            }
            Request::AddMembership(a) => {
                let h = self.own(conn, a.handle)?;
                self.manager.add_membership(h, a.pattern()?, a.iface(), a.flags, now)?;
                done()
            }
            Request::DeleteMembership(a) => {
                let h = self.own(conn, a.handle)?;
                self.manager.delete_membership(h, a.pattern()?, a.iface(), a.flags, now)?;
                done()
            }
            Request::GetMfe { source, group, max_entries, stats } => {
                let v = m.get_mfe(Sg::new(source, group), max_entries, now)?;
                json!(self.mfe_reply(v, stats))
            }
            Request::GetFirstMfe { max_entries, stats } => {
                let p = m.get_mfes(None, max_entries, now)?;
                self.page(p, stats)
            }
            Request::GetNextMfe { source, group, max_entries, stats } => {
                let p = m.get_mfes(Some(Sg::new(source, group)), max_entries, now)?;
                self.page(p, stats)
            }
            Request::SetMfe { handle, source, group, iif, iif_nexthop, upstream } => {
                let h = self.own(conn, handle)?;
                if !self.interfaces.contains_key(&iif) {
                    return Err(WireError::new(
                        ErrorCode::InvalidParameter,
                        format!("ifindex {iif} is not managed by mgm"),
                    )
                    .with_win32(87));
                }
                let iface = Iface::new(iif, iif_nexthop);
                self.manager.set_mfe(h, Sg::new(source, group), iface, upstream, now)?;
                done()
            }
            Request::GroupEnumStart { handle, enum_type } => {
                let h = self.own(conn, handle)?;
                json!({ "enum_handle": self.manager.enum_start(h, enum_type)? })
            }
            Request::GroupEnumNext { handle, enum_handle, max_entries } => {
                let h = self.own(conn, handle)?;
                let p = self.manager.enum_next(h, enum_handle, max_entries)?;
                let status = if p.more { PageStatus::MoreData } else { PageStatus::NoMoreItems };
                json!(PageReply { status, entries: p.entries })
            }
            Request::GroupEnumEnd { handle, enum_handle } => {
                let h = self.own(conn, handle)?;
                self.manager.enum_end(h, enum_handle)?;
                done()
            }
            Request::AnswerRpf { handle, request, ifindex, nexthop, upstream } => {
                let h = self.own(conn, handle)?;
                self.manager.answer_rpf(h, request, Iface::new(ifindex, nexthop), upstream, now)?;
                done()
            }
            Request::AnswerCreation { handle, request, disabled } => {
                let h = self.own(conn, handle)?;
                self.manager.answer_creation(h, request, &disabled, now)?;
                done()
            }
            Request::AnswerPrune { handle, request, timeout_secs } => {
                let h = self.own(conn, handle)?;
                let t = Duration::from_secs(timeout_secs);
                self.manager.answer_prune(h, request, t, now)?;
                done()
            }
        })
    }

    /// An upcall from the fast path: the core hears of the packet (if the record is an
    /// event), and the first packets of a flow without MFE are held until it has one.
    pub fn upcall(&mut self, u: &Upcall, frame: &[u8]) {
        let key = MfeKey::new(u.source, u.group);
        if self.statics.contains(&key) {
            return; // a static route: not the MGM clients' business
        }
        let now = self.now();
        let sg = Sg::new(u.source.into(), u.group.into());
        if u.flags & UPCALL_F_EVENT != 0 {
            // The callbacks carry the IPv4 header and the first 8 bytes of data.
            let ip = frame.get(14..).unwrap_or_default();
            self.manager.new_packet(sg, u.ifindex, &ip[..ip.len().min(28)], now);
        }
        if u.flags & UPCALL_F_QUEUED != 0 && u.kind == UPCALL_NO_MFE {
            self.hold_packet(key, sg, u.ifindex, frame, now);
        }
        self.flush();
    }

    /// Keeps a packet that found no MFE until the core has one for it. A packet that missed
    /// an MFE installed since goes at once; one the core will not create an MFE for is not
    /// kept (the kernel got it).
    fn hold_packet(&mut self, key: MfeKey, sg: Sg, ifindex: u32, frame: &[u8], now: Duration) {
        if self.mirror.get(&key).is_some() && !self.unresolved.contains_key(&key) {
            self.replay(ifindex, frame.to_vec());
            return;
        }
        if !self.manager.knows(sg) {
            return;
        }
        if !self.unresolved.contains_key(&key) && self.unresolved.len() >= MAX_UNRESOLVED {
            self.replay_dropped += 1;
            return;
        }
        let u = self.unresolved.entry(key).or_insert(Unresolved { since: now, frames: vec![] });
        if u.frames.len() < UPCALL_QUEUE as usize {
            u.frames.push((ifindex, frame.to_vec()));
        } else {
            self.replay_dropped += 1;
        }
    }

    /// The MFE for `key` is in the fast path: the packets held for it go through it now.
    fn release_held_packets(&mut self, key: &MfeKey) {
        if let Some(u) = self.unresolved.remove(key) {
            for (ifindex, frame) in u.frames {
                self.replay(ifindex, frame);
            }
        }
    }

    fn replay(&mut self, ifindex: u32, frame: Vec<u8>) {
        if self.mirror.fast_path_mut().replay(ifindex, frame) {
            self.replayed += 1;
        } else {
            self.replay_dropped += 1;
        }
    }

    /// Feeds the core a packet the fast path could not forward (no MFE, or wrong interface).
    pub fn new_packet(&mut self, source: Ipv4Addr, group: Ipv4Addr, ifindex: u32, header: &[u8]) {
        if self.statics.contains(&MfeKey::new(source.octets(), group.octets())) {
            return; // a static route: not the MGM clients' business
        }
        let now = self.now();
        self.manager.new_packet(Sg::new(source, group), ifindex, header, now);
        self.flush();
    }

    pub fn status(&self) -> Status {
        let (leases_alive, leases_released) = self.mirror.lease_counts();
        Status {
            mfes: self.manager.mfe_count(),
            installed: self.mirror.mfes().count(),
            oils: self.mirror.oil_count(),
            pending_writes: self.pending.len(),
            leases_alive,
            leases_released,
            held: self.held.len(),
            unresolved: self.unresolved.len(),
            replayed: self.replayed,
            replay_dropped: self.replay_dropped,
            write_failures: self.write_failures,
            retrying: self.retry.len(),
        }
    }

    fn snapshot(&self) -> Result<Snapshot, WireError> {
        let interfaces = self
            .interfaces
            .values()
            .map(|d| InterfaceInfo {
                name: d.name.clone(),
                ifindex: d.ifindex,
                mac: netdev::fmt_mac(&d.mac),
            })
            .collect();
        let mut mfes = Vec::new();
        for (k, m) in self.mirror.mfes() {
            let s = self.mirror.fast_path().mfe_stats(m.slot)?;
            mfes.push(MfeInfo {
                source: k.source.into(),
                group: k.group.into(),
                iif: m.iif,
                oifs: m.oifs(),
                packets: s.packets,
                bytes: s.bytes,
                wrong_iif: s.wrong_iif,
                ttl_expired: s.ttl_expired,
                origin: if self.statics.contains(k) { "static" } else { "mgm" }.into(),
            });
        }
        let values = self.mirror.fast_path().counters()?;
        let counters =
            counter::NAMES.iter().zip(values).map(|(n, v)| ((*n).to_owned(), v)).collect();
        Ok(Snapshot {
            interfaces,
            mfes,
            counters,
            protocols: self.manager.clients(),
            ownership: self.manager.owners(),
            memberships: self.manager.memberships(),
        })
    }
}

impl WireError {
    fn with_win32(mut self, v: u32) -> Self {
        self.win32 = Some(v);
        self
    }
}

#[cfg(test)]
mod tests;
