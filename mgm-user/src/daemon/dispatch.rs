// SPDX-License-Identifier: MIT OR Apache-2.0
//! One request, one typed reply. Each arm names its method's type, so the reply it builds
//! must be that method's `Reply` (the client decodes exactly that type).

use std::{net::IpAddr, time::Duration};

use tracing::info;

use super::{Daemon, Input, follow::Decision, over_limit, reply_line};
use crate::{
    dataplane::Dataplane,
    fastpath::InstalledMfe,
    kernel::fmt_mac,
    manager::{Family, Iface, MfeView, MgmError, Page, Pattern, Progress, Sg},
    proto::{
        self, Done, EnumStarted, ErrorCode, HelloInfo, InterfaceInfo, KernelOif, KernelRouteInfo,
        Method, MfeReply, MfeStatsReply, OifStatsReply, Origin, PROTOCOL_VERSION, PageReply,
        PageStatus, ProtocolOnInterface, Registered, Request, RequestFrame, Snapshot, WireError,
    },
    server::ConnId,
};

type Reply<M> = Result<<M as Method>::Reply, WireError>;

/// Serves the request `m` with `serve` and gives its reply line. The reply's type is
/// `m`'s method's: an arm that returned another method's reply would not compile.
fn answer<M: Method>(id: u64, m: M, serve: impl FnOnce(M) -> Reply<M>) -> String {
    reply_line::<M>(id, serve(m))
}

impl<D: Dataplane> Daemon<D> {
    /// Serves one request; returns its reply line. Fast-path writes of the core's effects
    /// happen after (see [`Daemon::handle`]).
    /// `None`: the reply comes later (a release done in steps, or a request naming a link
    /// the kernel is asked about first).
    pub(super) fn serve(
        &mut self,
        conn: ConnId,
        frame: RequestFrame,
        now: Duration,
    ) -> Option<String> {
        let id = frame.id;
        if let Request::TakeInterface(m) = &frame.request
            && self.must_look_up(m.ifindex)
        {
            let ifindex = m.ifindex;
            self.look_up(conn, ifindex, Input::Line { conn, line: Ok(frame) });
            return None;
        }
        let line = match frame.request {
            Request::Hello(m) => answer(id, m, |m| self.hello(m)),
            Request::Show(m) => answer(id, m, |m| self.show(m, now)),
            Request::Status(m) => answer(id, m, |m| self.get_status(m)),
            Request::Watch(m) => answer(id, m, |m| self.watch(conn, m)),
            Request::AddMfe(m) => answer(id, m, |m| self.add_mfe(m)),
            Request::DelMfe(m) => answer(id, m, |m| self.del_mfe(m)),
            Request::Reload(m) => answer(id, m, |m| self.reload_request(m, now)),
            Request::Register(m) => answer(id, m, |m| self.register(conn, m)),
            Request::Deregister(m) => answer(id, m, |m| self.deregister(conn, m, now)),
            Request::TakeInterface(m) => answer(id, m, |m| self.take(conn, m)),
            Request::ReleaseInterface(m) => match self.release(conn, id, m, now) {
                Some(r) => reply_line::<proto::ReleaseInterface>(id, r),
                None => return None,
            },
            Request::GetProtocolOnInterface(m) => answer(id, m, |m| self.protocol_on(m)),
            Request::AddMembership(m) => answer(id, m, |m| self.add_membership(conn, m, now)),
            Request::DeleteMembership(m) => answer(id, m, |m| self.delete_membership(conn, m, now)),
            Request::GetMfe(m) => answer(id, m, |m| self.get_mfe(m, now)),
            Request::GetFirstMfe(m) => answer(id, m, |m| self.get_first_mfe(m, now)),
            Request::GetNextMfe(m) => answer(id, m, |m| self.get_next_mfe(m, now)),
            Request::SetMfe(m) => answer(id, m, |m| self.set_mfe(conn, m, now)),
            Request::GroupEnumStart(m) => answer(id, m, |m| self.enum_start(conn, m)),
            Request::GroupEnumNext(m) => answer(id, m, |m| self.enum_next(conn, m)),
            Request::GroupEnumEnd(m) => answer(id, m, |m| self.enum_end(conn, m)),
            Request::AnswerRpf(m) => answer(id, m, |m| self.answer_rpf(conn, m, now)),
            Request::AnswerCreation(m) => answer(id, m, |m| self.answer_creation(conn, m, now)),
            Request::AnswerPrune(m) => answer(id, m, |m| self.answer_prune(conn, m, now)),
        };
        Some(line)
    }

    fn hello(&self, _: proto::Hello) -> Reply<proto::Hello> {
        Ok(HelloInfo {
            protocol: PROTOCOL_VERSION,
            server: format!("mgmd {}", env!("CARGO_PKG_VERSION")),
            max_memberships: Some(self.limits.memberships_per_conn as u64),
        })
    }

    fn get_status(&self, _: proto::GetStatus) -> Reply<proto::GetStatus> {
        Ok(self.status())
    }

    fn watch(&mut self, conn: ConnId, _: proto::Watch) -> Reply<proto::Watch> {
        self.conns.watch(conn);
        Ok(Done {})
    }

    fn add_mfe(&mut self, m: crate::config::StaticMfe) -> Reply<crate::config::StaticMfe> {
        self.add_static(&m)?;
        info!(source = %m.source, group = %m.group, iif = %m.iif, oifs = ?m.oifs, "static mfe installed");
        Ok(Done {})
    }

    fn del_mfe(&mut self, m: proto::DelMfe) -> Reply<proto::DelMfe> {
        if !self.remove_static(Sg::new(m.source, m.group))? {
            let what = format!("no static MFE ({}, {})", m.source, m.group);
            return Err(WireError::new(ErrorCode::NotFound, what));
        }
        info!(source = %m.source, group = %m.group, "static mfe removed");
        Ok(Done {})
    }

    fn reload_request(&mut self, _: proto::Reload, now: Duration) -> Reply<proto::Reload> {
        Daemon::reload(self, now)
    }

    /// Removes the static MFE of `k`; false if there was none.
    pub(super) fn remove_static(&mut self, k: Sg) -> Result<bool, WireError> {
        if !self.writer.remove_static(&k, &self.manager)? {
            return Ok(false);
        }
        // A followed kernel entry of that (S,G) takes its place.
        self.reconcile([k]);
        self.fit_core();
        Ok(true)
    }

    fn register(&mut self, conn: ConnId, m: proto::Register) -> Reply<proto::Register> {
        let limit = self.limits.handles_per_conn;
        if self.conns.handles(conn).count() >= limit {
            return Err(over_limit(
                "registrations per connection",
                limit,
                "--max-handles-per-conn",
            ));
        }
        let h = self.manager.register(m.protocol, m.component)?;
        self.conns.bind(conn, h);
        info!(
            conn,
            protocol = m.protocol,
            component = m.component,
            handle = h.0,
            "protocol registered"
        );
        Ok(Registered { handle: h })
    }

    fn deregister(
        &mut self,
        conn: ConnId,
        m: proto::Deregister,
        now: Duration,
    ) -> Reply<proto::Deregister> {
        let h = self.conns.own(conn, m.handle)?;
        self.manager.deregister(h, now)?;
        self.conns.unbind(h);
        Ok(Done {})
    }

    fn take(&mut self, conn: ConnId, m: proto::TakeInterface) -> Reply<proto::TakeInterface> {
        let h = self.conns.own(conn, m.handle)?;
        if !self.manager.is_registered(h) {
            return Err(MgmError::InvalidParameter.into());
        }
        self.ensure_managed(m.ifindex)?;
        let iface = Iface::new(m.ifindex, m.nexthop);
        let owned = self.manager.owns(h, iface);
        if !owned {
            let limit = self.limits.interfaces_per_conn;
            let held: usize = self
                .conns
                .quota_handles(conn)
                .into_iter()
                .map(|x| self.manager.owned_count(x))
                .sum();
            if held >= limit {
                let flag = "--max-interfaces-per-conn";
                return Err(over_limit("interfaces per user", limit, flag));
            }
            self.writer.reserve_lease(iface, h)?;
        }
        if let Err(e) = self.manager.take_interface(h, iface) {
            if !owned {
                self.writer.end_lease(iface, h);
            }
            return Err(e.into());
        }
        Ok(Done {})
    }

    /// The fast path stops copying there at once, in one write; the core's entries go in
    /// steps. A release that takes more than one is answered when its last is done (its
    /// connection waits; the others are served in between): `None` here.
    fn release(
        &mut self,
        conn: ConnId,
        id: u64,
        m: proto::ReleaseInterface,
        now: Duration,
    ) -> Option<Reply<proto::ReleaseInterface>> {
        let h = match self.conns.own(conn, m.handle) {
            Ok(h) => h,
            Err(e) => return Some(Err(e)),
        };
        let iface = Iface::new(m.ifindex, m.nexthop);
        if self.manager.owns(h, iface) {
            self.end_adopted_leases(Some(m.ifindex));
            self.writer.end_lease(iface, h);
        }
        let mut budget = super::RELEASE_BATCH;
        match self.manager.release_step(h, iface, &mut budget, now) {
            Ok(Progress::Done) => Some(Ok(Done {})),
            Err(e) => Some(Err(e.into())),
            Ok(Progress::More) => {
                self.jobs.push_back(super::Job::Release { h, iface, reply: Some((conn, id)) });
                self.hold_conn(conn);
                None
            }
        }
    }

    fn protocol_on(
        &self,
        m: proto::GetProtocolOnInterface,
    ) -> Reply<proto::GetProtocolOnInterface> {
        let (protocol, component) =
            self.manager.protocol_on_interface(Iface::new(m.ifindex, m.nexthop))?;
        Ok(ProtocolOnInterface { protocol, component })
    }

    fn add_membership(
        &mut self,
        conn: ConnId,
        m: proto::AddMembership,
        now: Duration,
    ) -> Reply<proto::AddMembership> {
        let a = m.0;
        let h = self.conns.own(conn, a.handle)?;
        let pattern = Pattern::of(&a)?;
        if !self.manager.has_membership(h, pattern, a.iface()) {
            let limit = self.limits.memberships_per_conn;
            let held: usize = (self.conns.quota_handles(conn).into_iter())
                .map(|x| self.manager.membership_count(x))
                .sum();
            if held >= limit {
                let flag = "--max-memberships-per-conn";
                return Err(over_limit("memberships per user", limit, flag));
            }
        }
        self.manager.add_membership(h, pattern, a.iface(), a.flags, now)?;
        Ok(Done {})
    }

    fn delete_membership(
        &mut self,
        conn: ConnId,
        m: proto::DeleteMembership,
        now: Duration,
    ) -> Reply<proto::DeleteMembership> {
        let a = m.0;
        let h = self.conns.own(conn, a.handle)?;
        self.manager.delete_membership(h, Pattern::of(&a)?, a.iface(), a.flags, now)?;
        Ok(Done {})
    }

    fn get_mfe(&self, m: proto::GetMfe, now: Duration) -> Reply<proto::GetMfe> {
        let v = self.manager.get_mfe(Sg::new(m.source, m.group), m.max_entries, now)?;
        Ok(self.mfe_reply(v, m.stats))
    }

    fn get_first_mfe(&self, m: proto::GetFirstMfe, now: Duration) -> Reply<proto::GetFirstMfe> {
        let p = self.manager.get_mfes(None, m.max_entries, now)?;
        Ok(self.page(p, m.stats))
    }

    fn get_next_mfe(&self, m: proto::GetNextMfe, now: Duration) -> Reply<proto::GetNextMfe> {
        let after = Some(Sg::new(m.source, m.group));
        let p = self.manager.get_mfes(after, m.max_entries, now)?;
        Ok(self.page(p, m.stats))
    }

    fn set_mfe(&mut self, conn: ConnId, m: proto::SetMfe, now: Duration) -> Reply<proto::SetMfe> {
        let h = self.conns.own(conn, m.handle)?;
        if !self.links.is_managed(m.iif) {
            let why = format!("ifindex {} is not managed by mgm", m.iif);
            return Err(WireError::mgm(MgmError::InvalidParameter, why));
        }
        let sg = Sg::new(m.source, m.group);
        let none = sg.family().any();
        let iface = Iface::new(m.iif, m.iif_nexthop.unwrap_or(none));
        self.manager.set_mfe(h, sg, iface, m.upstream.unwrap_or(none), now)?;
        Ok(Done {})
    }

    fn enum_start(
        &mut self,
        conn: ConnId,
        m: proto::GroupEnumStart,
    ) -> Reply<proto::GroupEnumStart> {
        let h = self.conns.own(conn, m.handle)?;
        let limit = self.limits.enums_per_conn;
        if self.conns.handles(conn).map(|x| self.manager.enum_count(x)).sum::<usize>() >= limit {
            let flag = "--max-enums-per-conn";
            return Err(over_limit("open group enumerations per connection", limit, flag));
        }
        Ok(EnumStarted { enum_handle: self.manager.enum_start(h, m.enum_type)? })
    }

    fn enum_next(&mut self, conn: ConnId, m: proto::GroupEnumNext) -> Reply<proto::GroupEnumNext> {
        let h = self.conns.own(conn, m.handle)?;
        let p = self.manager.enum_next(h, m.enum_handle, m.max_entries)?;
        Ok(PageReply { status: page_status(p.more), entries: p.entries })
    }

    fn enum_end(&mut self, conn: ConnId, m: proto::GroupEnumEnd) -> Reply<proto::GroupEnumEnd> {
        let h = self.conns.own(conn, m.handle)?;
        self.manager.enum_end(h, m.enum_handle)?;
        Ok(Done {})
    }

    fn answer_rpf(
        &mut self,
        conn: ConnId,
        m: proto::AnswerRpf,
        now: Duration,
    ) -> Reply<proto::AnswerRpf> {
        let h = self.conns.own(conn, m.handle)?;
        // Omitted addresses are "none" of the request's own family.
        let none = self.manager.request_family(m.request).unwrap_or(Family::Ipv4).any();
        let iif = Iface::new(m.ifindex, m.nexthop.unwrap_or(none));
        self.manager.answer_rpf(h, m.request, iif, m.upstream.unwrap_or(none), now)?;
        Ok(Done {})
    }

    fn answer_creation(
        &mut self,
        conn: ConnId,
        m: proto::AnswerCreation,
        now: Duration,
    ) -> Reply<proto::AnswerCreation> {
        let h = self.conns.own(conn, m.handle)?;
        self.manager.answer_creation(h, m.request, &m.disabled, now)?;
        Ok(Done {})
    }

    fn answer_prune(
        &mut self,
        conn: ConnId,
        m: proto::AnswerPrune,
        now: Duration,
    ) -> Reply<proto::AnswerPrune> {
        let h = self.conns.own(conn, m.handle)?;
        let t = Duration::from_secs(m.timeout_secs);
        self.manager.answer_prune(h, m.request, t, now)?;
        Ok(Done {})
    }

    fn stats(&self, sg: Sg) -> MfeStatsReply {
        let m = self.writer.mirror();
        let oifs = m.oif_stats(&sg).unwrap_or_default();
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
        match m.stats(&sg) {
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
        MfeReply { mfe: v, origin: Origin::Mgm, stats: s }
    }

    /// An entry of the fast path in the protocol's one shape, with its counters: the core's
    /// view of an MGM entry (as `get_mfe` gives it), else (static, followed, or held after a
    /// restart until its client re-creates it) what the fast path has, with no upstream
    /// neighbour or times.
    fn installed(&self, sg: Sg, x: &InstalledMfe, now: Duration) -> MfeReply {
        let origin = if self.writer.is_static(&sg) {
            Origin::Static
        } else if self.writer.is_kernel(&sg) {
            Origin::Kernel
        } else {
            Origin::Mgm
        };
        let f = sg.family();
        let iface = |ifindex, hop: IpAddr| {
            Iface::new(ifindex, if hop.is_unspecified() { f.any() } else { hop })
        };
        let core = (origin == Origin::Mgm).then(|| self.manager.get_mfe(sg, 1, now).ok());
        let mfe = core.flatten().unwrap_or_else(|| MfeView {
            source: sg.source,
            group: sg.group,
            iif: iface(x.iif, f.any()),
            upstream: f.any(),
            oifs: x.legs.iter().map(|l| iface(l.ifindex, l.nexthop)).collect(),
            uptime_secs: 0,
            expiry_secs: 0,
            timeout_secs: 0,
        });
        MfeReply { mfe, origin, stats: Some(self.stats(sg)) }
    }

    fn page(&self, p: Page<MfeView>, stats: bool) -> PageReply<MfeReply> {
        let entries = p.entries.into_iter().map(|v| self.mfe_reply(v, stats)).collect();
        PageReply { status: page_status(p.more), entries }
    }

    fn show(&self, req: proto::Show, now: Duration) -> Reply<proto::Show> {
        let interfaces = self
            .links
            .managed()
            .map(|d| InterfaceInfo {
                name: d.name.clone(),
                ifindex: d.ifindex,
                mac: fmt_mac(&d.mac),
                mtu: d.mtu,
                up: d.up,
            })
            .collect();
        let m = self.writer.mirror();
        let mfes =
            m.mfes().take(req.max_entries).map(|(k, x)| self.installed(*k, x, now)).collect();
        let (kernel_routes, more_kernel_routes) = self.kernel_routes(req.max_entries);
        let (memberships, more_memberships) = self.manager.memberships(req.max_entries);
        let counters = self.named_counters()?;
        Ok(Snapshot {
            interfaces,
            mfes,
            counters,
            protocols: self.manager.clients(),
            ownership: self.manager.owners(),
            memberships,
            more_mfes: m.mfes().nth(req.max_entries).is_some(),
            more_memberships,
            kernel_routes,
            more_kernel_routes,
        })
    }

    /// The followed kernel table, each entry with what the fast path does with it.
    fn kernel_routes(&self, max: usize) -> (Vec<KernelRouteInfo>, bool) {
        let Some(f) = &self.follow else { return (Vec::new(), false) };
        let managed = |i| self.links.is_managed(i);
        let routes = f
            .entries()
            .take(max)
            .map(|(k, e)| {
                let reason = match f.decide(k, managed) {
                    Some(_) if self.writer.is_static(k) => {
                        Some("a static MFE of the same (S,G) takes precedence".into())
                    }
                    // Mirroring can fail (table full): then the kernel forwards it.
                    Some(Decision::Mirror { .. }) if self.writer.is_kernel(k) => None,
                    Some(Decision::Mirror { .. }) => {
                        Some("not in the fast path (a write failed; retried)".into())
                    }
                    Some(Decision::Kernel(why)) => Some(why),
                    None => Some("gone".into()),
                };
                KernelRouteInfo {
                    source: e.source,
                    group: e.group,
                    iif: e.iif,
                    oifs: e
                        .oifs
                        .iter()
                        .map(|&(ifindex, ttl_threshold)| KernelOif { ifindex, ttl_threshold })
                        .collect(),
                    accelerated: reason.is_none(),
                    reason,
                }
            })
            .collect();
        (routes, f.entries().nth(max).is_some())
    }
}

fn page_status(more: bool) -> PageStatus {
    if more { PageStatus::MoreData } else { PageStatus::NoMoreItems }
}
