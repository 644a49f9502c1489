// SPDX-License-Identifier: MIT OR Apache-2.0
//! mgm-igmpd's run loop: the edges around the pure IGMP (or MLD) state of each interface.
//! One loop for both families: what differs is behind [`Wire`] (IPv4 runs IGMP, IPv6 MLD,
//! with the IPv6 side `(ifindex, ::)` of each interface).
//!
//! * a packet socket per interface ([`Link`]) reads hosts' and routers' IGMP and sends queries;
//! * one connection to mgmd ([`Client`]) registers IGMP (protocol 10), takes the interfaces
//!   and holds, per interface, the memberships the IGMP state gives (a set diff after every
//!   change, so a reconnect or an enable-IGMP is the same code: everything is re-added);
//! * in proxy mode, a second client on the same connection, a routing protocol, owns the
//!   upstream interface: it answers RPF with it (traffic from upstream is forwarded to
//!   downstream members), and the merged downstream memberships (plus other protocols'
//!   joins, from join and prune alerts) are held upstream by the kernel's host stack
//!   ([`Upstream`]);
//! * a control socket answers `show` with the operator's view, as JSON.
//!
//! mgmd going away changes nothing for the hosts: queries go on and the state is kept; it is
//! all re-created in the next mgmd (which holds the previous fast path meanwhile).

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use serde::Serialize;
use tokio::{
    io::{AsyncWriteExt as _, Interest, unix::AsyncFd},
    net::UnixListener,
    signal::unix::{SignalKind, signal},
    sync::mpsc,
};
use tracing::{debug, info, warn};

use super::{
    config::Settings,
    host::{Upstream, Want, merge},
    iface::{Interface, Out, View},
    link::Link,
    packet::{Message, Reject},
    wire::{Local, Wire},
};
use mgm_client::{Client, ClientError};
use mgm_proto::{
    AddMembership, DeleteMembership, ErrorCode, EventFrame, MembershipArgs,
    types::{Event, Handle, Iface, PROTO_IP_IGMP, SourceGroupEntry},
};
use mgm_util::loglimit::LogLimit;

/// The protocol id the proxy's upstream side registers with (a routing protocol, so not 10:
/// IGMP's id is the one that co-owns). RRAS composes protocol ids as PROTOCOL_ID(type,
/// vendor, id); this is (multicast, Microsoft's vendor id, IGMP).
pub const PROTO_IGMP_PROXY: u32 = 0xC137_000A;

/// (source, group): `None` is any source.
type Member<A> = (Option<A>, A);

/// How often a lost mgmd is looked for again.
const RECONNECT: Duration = Duration::from_secs(1);
/// Changes sent to mgmd per interface in one turn of the loop.
const BATCH: usize = 256;
/// Datagrams read ahead per interface: a link sending more waits in its own socket (and
/// loses there what its buffer cannot hold), never in front of another link's.
const READ_AHEAD: usize = 64;

/// Counters of one interface (the operator's view).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    pub queries_received: u64,
    pub reports_received: u64,
    pub leaves_received: u64,
    pub queries_sent: u64,
    /// Times a routing protocol took or released the interface (disable, then enable IGMP).
    pub handovers: u64,
    /// Reports for new groups ignored: the interface had `max-groups` already.
    pub groups_refused: u64,
    /// New sources ignored: their group had `max-sources` already, or the interface its
    /// share of mgmd's memberships.
    pub sources_refused: u64,
    /// Memberships mgmd refused (its quota, an invalid one): not asked again until something
    /// changes its answer (room freed, the membership gone and back, a new mgmd).
    pub memberships_refused: u64,
    /// Memberships waiting to be sent to mgmd.
    pub memberships_pending: u64,
    /// Datagrams not acted on, by reason.
    pub rejected: BTreeMap<&'static str, u64>,
}

/// Why a datagram was rejected, as the view names it.
fn reason(r: Reject) -> &'static str {
    match r {
        Reject::Malformed => "malformed",
        Reject::IpChecksum => "ip_checksum",
        Reject::IgmpChecksum => "igmp_checksum",
        Reject::Ttl => "ttl",
        Reject::NoRouterAlert => "no_router_alert",
        Reject::Unknown => "unknown_type",
        Reject::NotLinkLocal => "not_link_local",
        Reject::InvalidSource => "invalid_source",
    }
}

/// One interface where hosts are.
struct Port<A> {
    name: String,
    addr: Local<A>,
    link: Arc<AsyncFd<Link>>,
    igmp: Interface<A>,
    /// False between disable-IGMP and enable-IGMP: memberships are left as they are.
    enabled: bool,
    /// The memberships mgmd holds for this interface.
    installed: BTreeSet<Member<A>>,
    /// Changes not yet sent to mgmd (true: add, false: delete). They go a batch at a time,
    /// every interface in turn, so a link receiving a flood never holds up another's join.
    pending: BTreeMap<Member<A>, bool>,
    /// Memberships mgmd refused for its quota: asked again as room is freed.
    over_quota: BTreeSet<Member<A>>,
    /// Memberships mgmd refused otherwise: asked again only when they go and come back, or
    /// of a new mgmd.
    refused: BTreeSet<Member<A>>,
    /// Lines a host can repeat at will (memberships, refusals, send errors), rate limited.
    log: LogLimit,
    stats: Stats,
}

impl<A: Wire> Port<A> {
    /// Everything the interface holds, to be added again (a new mgmd, IGMP enabled again).
    fn resend_all(&mut self) {
        self.installed.clear();
        self.over_quota.clear();
        self.refused.clear();
        self.pending = self.igmp.memberships().map(|m| (m, true)).collect();
    }
}

/// The proxy's upstream side.
struct Proxy<A> {
    name: String,
    ifindex: u32,
    host: Upstream<A>,
    /// Other routing protocols' receivers, as join alerts announced them.
    alerted: BTreeSet<Member<A>>,
    log: LogLimit,
}

/// The connection to mgmd and the clients registered on it.
struct Mgm {
    client: Client,
    igmp: Handle,
    proxy: Option<Handle>,
}

/// The operator's view (`mgm-igmpd show`).
#[derive(Debug, Serialize)]
pub struct Status<A> {
    /// "IGMP" or "MLD"; the versions below are this protocol's.
    pub protocol: &'static str,
    pub mgmd: Option<MgmdView>,
    pub interfaces: Vec<PortView<A>>,
    pub upstream: Option<UpstreamView<A>>,
}

#[derive(Debug, Serialize)]
pub struct MgmdView {
    pub igmp_handle: u64,
    pub proxy_handle: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct PortView<A> {
    pub name: String,
    pub ifindex: u32,
    pub address: String,
    pub enabled: bool,
    #[serde(flatten)]
    pub igmp: View<A>,
    pub stats: Stats,
}

#[derive(Debug, Serialize)]
pub struct UpstreamView<A> {
    pub name: String,
    pub ifindex: u32,
    pub groups: BTreeMap<A, Want<A>>,
}

pub struct Daemon<A> {
    s: Settings,
    epoch: Instant,
    ports: Vec<Port<A>>,
    proxy: Option<Proxy<A>>,
    mgm: Option<Mgm>,
    /// Why the last attempt to connect failed (logged when it changes).
    connect_error: Option<String>,
    /// The upstream memberships must be brought to the downstream ones.
    upstream_dirty: bool,
}

/// The address `name` speaks from (the first of its in `all`), and its index.
fn address<A: Wire>(name: &str, all: &[Local<A>]) -> anyhow::Result<Local<A>> {
    let ifindex = nix::net::if_::if_nametoindex(name)
        .with_context(|| format!("no interface named {name:?}"))?;
    all.iter()
        .find(|a| a.ifindex == ifindex)
        .copied()
        .with_context(|| format!("{name} has no address: {} queries need {}", A::NAME, A::ADDRESS))
}

impl<A: Wire> Daemon<A> {
    /// Opens the interfaces (in the calling thread's network namespace).
    pub fn new(s: Settings) -> anyhow::Result<Self> {
        let all = A::locals()?;
        let epoch = Instant::now();
        let mut ports = Vec::new();
        for name in &s.interfaces {
            let addr = address(name, &all)?;
            let link = A::open(addr.ifindex)
                .with_context(|| format!("opening a packet socket on {name}"))?;
            ports.push(Port {
                name: name.clone(),
                addr,
                // SAFETY: the link owns its fd, which stays open until the AsyncFd drops it.
                link: Arc::new(
                    unsafe { AsyncFd::register_with_interest(link, Interest::READABLE) }
                        .map_err(|e| e.into_parts().1)?,
                ),
                igmp: Interface::new(s.timers, addr.addr, Duration::ZERO),
                enabled: true,
                installed: BTreeSet::new(),
                pending: BTreeMap::new(),
                over_quota: BTreeSet::new(),
                refused: BTreeSet::new(),
                log: LogLimit::new(),
                stats: Stats::default(),
            });
        }
        let proxy = match &s.upstream {
            None => None,
            Some(name) => {
                let a = address(name, &all)?;
                Some(Proxy {
                    name: name.clone(),
                    ifindex: a.ifindex,
                    host: Upstream::new(a),
                    alerted: BTreeSet::new(),
                    log: LogLimit::new(),
                })
            }
        };
        Ok(Self { s, epoch, ports, proxy, mgm: None, connect_error: None, upstream_dirty: false })
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Runs until SIGTERM or SIGINT.
    pub async fn run(mut self) -> anyhow::Result<()> {
        let control = listen(&self.s.control)?;
        let mut links = Vec::new();
        for p in &self.ports {
            let (tx, rx) = mpsc::channel::<Vec<u8>>(READ_AHEAD);
            tokio::spawn(read_link(p.link.clone(), tx));
            links.push(rx);
        }
        let mut turn = 0;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut retry = tokio::time::interval(RECONNECT);
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        info!(
            protocol = A::NAME,
            interfaces = ?self.s.interfaces,
            upstream = ?self.s.upstream,
            version = A::protocol_version(self.s.timers.version),
            "mgm-igmpd started"
        );
        mgm_util::notify_service_manager(&[mgm_util::NotifyState::Ready]);
        loop {
            let now = self.now();
            let wake = self.ports.iter().map(|p| p.igmp.next_wakeup(now)).min();
            let wake = self.epoch + wake.unwrap_or(now + Duration::from_secs(3600));
            tokio::select! {
                got = recv_fair(&mut links, &mut turn) => match got {
                    Some((i, d)) => self.datagram(i, &d),
                    None => anyhow::bail!("every interface's socket failed"),
                },
                () = std::future::ready(()), if self.has_work() => self.flush().await,
                ev = next_event(&mut self.mgm) => match ev {
                    Ok(ev) => self.event(ev).await,
                    Err(e) => self.lost(&e),
                },
                () = tokio::time::sleep_until(wake.into()) => self.tick(),
                _ = retry.tick(), if self.mgm.is_none() => {
                    if let Err(e) = self.connect().await {
                        let e = format!("{e:#}");
                        if self.connect_error.as_ref() != Some(&e) {
                            warn!("mgmd at {}: {e} (trying again every second)", self.s.socket.display());
                        }
                        self.connect_error = Some(e);
                    }
                }
                conn = control.accept() => {
                    if let Ok((mut stream, _)) = conn {
                        let mut json = serde_json::to_vec(&self.status()).expect("serializes");
                        json.push(b'\n');
                        tokio::spawn(async move { stream.write_all(&json).await });
                    }
                }
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
        info!("stopping: mgmd releases the interfaces and memberships with the connection");
        let _ = std::fs::remove_file(&self.s.control);
        Ok(())
    }

    fn lost(&mut self, e: &ClientError) {
        if self.mgm.take().is_some() {
            warn!("lost mgmd ({e}); the {} state is kept and re-added when it is back", A::NAME);
        }
    }

    /// Connects, registers, takes the interfaces and adds every membership.
    async fn connect(&mut self) -> anyhow::Result<()> {
        let mut client = Client::connect(&self.s.socket).await?;
        // Each interface's share of what mgmd grants this connection (the upstream (*,*)
        // counted as one more): no link's hosts can use up another's.
        let quota = client.hello().await?.max_memberships;
        let links = self.ports.len() + usize::from(self.proxy.is_some());
        let share = quota.map_or(usize::MAX, |q| usize::try_from(q).unwrap_or(usize::MAX) / links);
        for p in &mut self.ports {
            p.igmp.set_max_records(share.min(self.s.timers.max_records));
        }
        let igmp = client.register(PROTO_IP_IGMP, self.s.component).await?;
        // The interfaces' side of this family: (ifindex, 0.0.0.0) or (ifindex, ::).
        let any = A::UNSPECIFIED.ip();
        for p in &self.ports {
            client
                .take_interface(igmp, p.addr.ifindex, any)
                .await
                .with_context(|| format!("taking {}", p.name))?;
        }
        let mut proxy = None;
        if let Some(up) = &self.proxy {
            let h = client.register(PROTO_IGMP_PROXY, self.s.component).await?;
            client
                .take_interface(h, up.ifindex, any)
                .await
                .with_context(|| format!("taking the upstream interface {}", up.name))?;
            if self.s.forward_upstream {
                // (*,*) on the upstream interface: what downstream sources send goes up too;
                // traffic from upstream never goes back there (the incoming interface is never
                // in its own outgoing list).
                client.add_membership(membership(h, (None, A::UNSPECIFIED), up.ifindex)).await?;
            }
            proxy = Some(h);
        }
        info!(protocol = A::NAME, handle = igmp.0, proxy = ?proxy.map(|h| h.0), "registered with mgmd");
        self.connect_error = None;
        self.mgm = Some(Mgm { client, igmp, proxy });
        for p in &mut self.ports {
            p.enabled = true;
            p.resend_all();
        }
        Ok(())
    }

    fn datagram(&mut self, i: usize, d: &[u8]) {
        let now = self.now();
        let p = &mut self.ports[i];
        let (source, msg) = match A::parse(d) {
            Ok(m) => m,
            Err(r) => {
                *p.stats.rejected.entry(reason(r)).or_default() += 1;
                debug!(iface = %p.name, "{} rejected: {}", A::NAME, reason(r));
                return;
            }
        };
        if !A::on_link(&p.addr, source) {
            *p.stats.rejected.entry("off_link").or_default() += 1;
            return;
        }
        match &msg {
            Message::Query(_) => p.stats.queries_received += 1,
            Message::Leave { .. } => p.stats.leaves_received += 1,
            Message::Report { .. } | Message::ReportV3(_) => p.stats.reports_received += 1,
        }
        debug!(iface = %p.name, from = %source, ?msg, "{}", A::NAME);
        let out = p.igmp.receive(source, &msg, now);
        self.act(i, out);
    }

    fn tick(&mut self) {
        let now = self.now();
        for i in 0..self.ports.len() {
            let out = self.ports[i].igmp.tick(now);
            if !out.is_empty() {
                self.act(i, out);
            }
        }
    }

    /// Sends the queries, and queues the membership changes for mgmd (and upstream's).
    fn act(&mut self, i: usize, out: Vec<Out<A>>) {
        let p = &mut self.ports[i];
        let now = Instant::now();
        for o in out {
            match o {
                Out::Send { to, query } => {
                    match A::send(p.link.get_ref(), p.addr.addr, to, &query) {
                        Ok(()) => p.stats.queries_sent += 1,
                        Err(e) => {
                            if let Some(more) = p.log.allow(now) {
                                warn!(iface = %p.name, suppressed = more, "sending a query: {e}");
                            }
                        }
                    }
                }
                Out::Join { source, group } | Out::Leave { source, group } => {
                    let join = matches!(o, Out::Join { .. });
                    let what = if join { "membership" } else { "membership gone" };
                    debug!(iface = %p.name, group = %group, source = ?source, "{what}");
                    let m = (source, group);
                    // Its answer may differ now: asked again.
                    p.refused.remove(&m);
                    p.over_quota.remove(&m);
                    // What mgmd holds already needs no change; anything else does.
                    if p.installed.contains(&m) == join {
                        p.pending.remove(&m);
                    } else {
                        p.pending.insert(m, join);
                    }
                    self.upstream_dirty = true;
                }
            }
        }
    }

    /// Whether the loop has changes to send.
    fn has_work(&self) -> bool {
        let sendable = |p: &Port<A>| p.enabled && !p.pending.is_empty();
        self.upstream_dirty || (self.mgm.is_some() && self.ports.iter().any(sendable))
    }

    /// Sends up to [`BATCH`] pending changes of each interface to mgmd (its deletes, then
    /// its adds, each lot in one round trip), every interface in turn; as deletes free room,
    /// memberships refused for the quota are queued again.
    async fn flush(&mut self) {
        if std::mem::take(&mut self.upstream_dirty) {
            self.sync_upstream();
        }
        let mut freed = 0;
        let mut failed = None;
        for p in &mut self.ports {
            let Some(m) = self.mgm.as_mut() else { return };
            if !p.enabled {
                continue;
            }
            let (mut dels, mut adds) = (Vec::new(), Vec::new());
            while dels.len() + adds.len() < BATCH
                && let Some((mb, add)) = p.pending.pop_first()
            {
                if add { adds.push(mb) } else { dels.push(mb) }
            }
            let ifindex = p.addr.ifindex;
            let args = |mb: &Member<A>| membership(m.igmp, *mb, ifindex);
            let deleted =
                match m.client.call_all(dels.iter().map(|mb| DeleteMembership(args(mb)))).await {
                    Ok(r) => r,
                    Err(e) => {
                        requeue(p, &dels, &adds);
                        failed = Some(e);
                        break;
                    }
                };
            for (mb, r) in dels.iter().zip(deleted) {
                p.installed.remove(mb);
                match r {
                    Ok(_) => freed += 1,
                    Err(e) => refusal(p, mb, false, &e),
                }
            }
            let added = match m.client.call_all(adds.iter().map(|mb| AddMembership(args(mb)))).await
            {
                Ok(r) => r,
                Err(e) => {
                    requeue(p, &[], &adds);
                    failed = Some(e);
                    break;
                }
            };
            for (mb, r) in adds.iter().zip(added) {
                match r {
                    Ok(_) => {
                        p.installed.insert(*mb);
                    }
                    Err(e) => refusal(p, mb, true, &e),
                }
            }
        }
        if let Some(e) = failed {
            return self.lost(&e);
        }
        // Room freed in the connection's quota: as many refused memberships asked again.
        for p in &mut self.ports {
            while freed > 0
                && let Some(mb) = p.over_quota.pop_first()
            {
                p.pending.insert(mb, true);
                freed -= 1;
            }
        }
    }

    /// Holds upstream what the downstream interfaces and other protocols' receivers want.
    fn sync_upstream(&mut self) {
        let Some(up) = self.proxy.as_mut() else { return };
        let mut all: Vec<Member<A>> =
            self.ports.iter().flat_map(|p| p.igmp.memberships()).collect();
        all.extend(up.alerted.iter().copied());
        for (group, e) in up.host.sync(&merge(&all)) {
            let Some(suppressed) = up.log.allow(Instant::now()) else { continue };
            warn!(iface = %up.name, %group, suppressed, "joining upstream: {e}");
        }
    }

    /// The port of `iface`, if it is this family's side of one of ours.
    fn port(&self, iface: Iface) -> Option<usize> {
        A::of(iface.nexthop)?;
        self.ports.iter().position(|p| p.addr.ifindex == iface.ifindex)
    }

    async fn event(&mut self, ev: EventFrame) {
        let Some(m) = self.mgm.as_ref() else { return };
        let from_proxy = Some(ev.handle) == m.proxy;
        let result = match ev.event {
            Event::DisableIgmp { iface } => {
                if let Some(i) = self.port(iface) {
                    info!(iface = %self.ports[i].name, "{} disabled: the interface changes hands", A::NAME);
                    self.ports[i].enabled = false;
                }
                Ok(())
            }
            Event::EnableIgmp { iface } => {
                if let Some(i) = self.port(iface) {
                    // Re-added through the interface's new owner (an add mgmd already holds
                    // changes nothing).
                    info!(iface = %self.ports[i].name, "{} enabled: memberships re-added", A::NAME);
                    self.ports[i].enabled = true;
                    self.ports[i].stats.handovers += 1;
                    self.ports[i].resend_all();
                }
                Ok(())
            }
            Event::PruneAlert { request: None, entry, .. } if from_proxy => {
                if let Some(mb) = member::<A>(&entry)
                    && let Some(up) = self.proxy.as_mut()
                    && up.alerted.remove(&mb)
                {
                    self.sync_upstream();
                }
                Ok(())
            }
            Event::JoinAlert { entry, member_add: true } if from_proxy => {
                // Another protocol's receivers (IGMP's own are known first-hand); (*,*)
                // cannot be asked of an IGMP querier.
                if let Some(mb) = member::<A>(&entry)
                    && mb.1 != A::UNSPECIFIED
                    && !self.ports.iter().any(|p| p.igmp.has_membership(mb))
                    && let Some(up) = self.proxy.as_mut()
                {
                    up.alerted.insert(mb);
                    self.sync_upstream();
                }
                Ok(())
            }
            Event::InterfaceGone { iface } => {
                warn!(ifindex = iface.ifindex, "an interface left the kernel");
                Ok(())
            }
            event => self.answer(EventFrame { handle: ev.handle, event }).await,
        };
        if let Err(e) = result {
            if e.server().is_some() {
                warn!("answering mgmd: {e}");
            } else {
                self.lost(&e);
            }
        }
    }

    /// The proxy's answers: RPF (only the upstream interface is the proxy's, so traffic
    /// arriving there comes from upstream: the proposal stands), creation alerts (every
    /// interface stays) and prune alerts (the default timeout).
    async fn answer(&mut self, ev: EventFrame) -> Result<(), ClientError> {
        let Some(m) = self.mgm.as_mut() else { return Ok(()) };
        let c = &mut m.client;
        match ev.event {
            Event::Rpf { request, iif, upstream, .. } => {
                c.answer_rpf(ev.handle, request, iif.ifindex, iif.nexthop, upstream).await
            }
            Event::CreationAlert { request, .. } => {
                c.answer_creation(ev.handle, request, Vec::new()).await
            }
            Event::PruneAlert { request: Some(request), timeout_secs, .. } => {
                c.answer_prune(ev.handle, request, timeout_secs).await
            }
            _ => Ok(()),
        }
    }

    pub fn status(&self) -> Status<A> {
        let now = self.now();
        Status {
            protocol: A::NAME,
            mgmd: self
                .mgm
                .as_ref()
                .map(|m| MgmdView { igmp_handle: m.igmp.0, proxy_handle: m.proxy.map(|h| h.0) }),
            interfaces: self
                .ports
                .iter()
                .map(|p| PortView {
                    name: p.name.clone(),
                    ifindex: p.addr.ifindex,
                    address: format!("{}/{}", p.addr.addr, p.addr.prefix),
                    enabled: p.enabled,
                    igmp: protocol_versions::<A>(p.igmp.view(now)),
                    stats: Stats {
                        groups_refused: p.igmp.refused_groups(),
                        sources_refused: p.igmp.refused_sources(),
                        memberships_refused: (p.over_quota.len() + p.refused.len()) as u64,
                        memberships_pending: p.pending.len() as u64,
                        ..p.stats.clone()
                    },
                })
                .collect(),
            upstream: self.proxy.as_ref().map(|u| UpstreamView {
                name: u.name.clone(),
                ifindex: u.ifindex,
                groups: u.host.held(),
            }),
        }
    }
}

/// The view's versions in the protocol's own terms (MLDv1 and v2, not the state's 2 and 3).
fn protocol_versions<A: Wire>(mut v: View<A>) -> View<A> {
    v.version = A::protocol_version(v.version);
    for g in &mut v.groups {
        g.compat = A::protocol_version(g.compat);
    }
    v
}

/// Puts back what a failed send did not settle (kept for the next mgmd's resend anyway).
fn requeue<A: Wire>(p: &mut Port<A>, dels: &[Member<A>], adds: &[Member<A>]) {
    p.pending.extend(dels.iter().map(|mb| (*mb, false)));
    p.pending.extend(adds.iter().map(|mb| (*mb, true)));
}

/// mgmd refused to add (or delete) `mb`: remembered, so it is not asked again until that
/// can change (room freed for the quota; the membership gone and back; a new mgmd), and
/// logged at a rate.
fn refusal<A: Wire>(p: &mut Port<A>, mb: &Member<A>, add: bool, e: &mgm_proto::WireError) {
    if add && e.code == ErrorCode::NotEnoughMemory {
        p.over_quota.insert(*mb);
    } else if add {
        p.refused.insert(*mb);
    }
    if let Some(more) = p.log.allow(Instant::now()) {
        let what = if add { "adding" } else { "deleting" };
        warn!(
            iface = %p.name,
            suppressed = more,
            "{what} {mb:?}: {} (not asked again until that can change)",
            e.message
        );
    }
}

/// An alert's entry as a membership of this family (the other family's is not ours).
fn member<A: Wire>(entry: &SourceGroupEntry) -> Option<Member<A>> {
    let (s, g) = (A::of(entry.source)?, A::of(entry.group)?);
    Some(((s != A::UNSPECIFIED).then_some(s), g))
}

fn membership<A: Wire>(handle: Handle, (source, group): Member<A>, ifindex: u32) -> MembershipArgs {
    MembershipArgs {
        handle,
        source: source.map(A::ip),
        source_mask: None,
        group: group.ip(),
        group_mask: None,
        ifindex,
        nexthop: None,
        flags: mgm_proto::types::MGM_JOIN_STATE_FLAG | mgm_proto::types::MGM_FORWARD_STATE_FLAG,
    }
}

/// The next event from mgmd, or never while there is no connection.
async fn next_event(mgm: &mut Option<Mgm>) -> Result<EventFrame, ClientError> {
    match mgm {
        Some(m) => m.client.next_event().await,
        None => std::future::pending().await,
    }
}

/// Reads datagrams from one interface's socket into the loop (its own queue).
async fn read_link(link: Arc<AsyncFd<Link>>, tx: mpsc::Sender<Vec<u8>>) {
    let mut buf = vec![0u8; 65536];
    loop {
        let mut guard = match link.readable().await {
            Ok(g) => g,
            Err(e) => {
                warn!(ifindex = link.get_ref().ifindex(), "IGMP socket: {e}");
                return;
            }
        };
        match guard.try_io(|l| l.get_ref().recv(&mut buf)) {
            Ok(Ok(n)) => {
                if tx.send(buf[..n].to_vec()).await.is_err() {
                    return;
                }
            }
            Ok(Err(e)) => {
                // An interface going down or away: wait rather than spin on the error.
                warn!(ifindex = link.get_ref().ifindex(), "IGMP socket: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(_would_block) => {}
        }
    }
}

/// The next datagram of any interface, the interfaces taken in turn from the one after the
/// last served: a link that always has one waiting gets one turn in as many as there are
/// links. `None` once every link's reader has stopped.
async fn recv_fair(
    links: &mut [mpsc::Receiver<Vec<u8>>],
    turn: &mut usize,
) -> Option<(usize, Vec<u8>)> {
    std::future::poll_fn(|cx| {
        let n = links.len();
        let mut closed = 0;
        for k in 0..n {
            let i = (*turn + k) % n;
            match links[i].poll_recv(cx) {
                std::task::Poll::Ready(Some(d)) => {
                    *turn = i + 1;
                    return std::task::Poll::Ready(Some((i, d)));
                }
                std::task::Poll::Ready(None) => closed += 1,
                std::task::Poll::Pending => {}
            }
        }
        if closed == n { std::task::Poll::Ready(None) } else { std::task::Poll::Pending }
    })
    .await
}

/// The control socket (a stale file from a previous run is replaced; two daemons on one
/// path are refused).
fn listen(path: &std::path::Path) -> anyhow::Result<UnixListener> {
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        anyhow::bail!("another mgm-igmpd answers on {}", path.display());
    }
    let _ = std::fs::remove_file(path);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    UnixListener::bind(path).with_context(|| format!("listening on {}", path.display()))
}

/// Asks a running mgm-igmpd for its view.
pub async fn query(path: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    use tokio::io::AsyncReadExt as _;
    let mut s = tokio::net::UnixStream::connect(path).await.with_context(|| {
        format!(
            "connecting to {} (is mgm-igmpd running, for this --socket or --control?)",
            path.display()
        )
    })?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    Ok(serde_json::from_slice(&out)?)
}
