// SPDX-License-Identifier: MIT OR Apache-2.0
//! The daemon fed inputs directly, against the in-memory fast path: request handling, handle
//! isolation, reply and event ordering, kernel events, what a dropped connection leaves
//! behind, and the run loop itself.

use std::{
    collections::BTreeMap,
    net::{IpAddr, Ipv4Addr},
    time::Duration,
};

use super::*;
use crate::config::Config;
use crate::{
    client::Session,
    dataplane::upcall::Kind,
    kernel::Neighbours,
    manager::{Event, Handle, PROTO_IP_IGMP},
    proto::{self, ErrorCode, MembershipArgs, Method, Request, is_event},
    server::OutboundRx,
    testing::{MemFastPath, fuzz},
};

const G: &str = "239.1.1.1";

struct Harness {
    d: Daemon<MemFastPath>,
    outs: BTreeMap<ConnId, OutboundRx>,
    /// Each connection's client side (mgm-client's session: ids, typed replies, events).
    sessions: BTreeMap<ConnId, Session>,
    bytes: usize,
    now: Duration,
}

impl Harness {
    fn new() -> Self {
        Self::with_capacity(64, 16 << 10)
    }

    /// Interfaces 1 ("in"), 2 ("a"), 3 ("b"), managed; a fast path of `mfes` entries;
    /// connections that queue `bytes`.
    fn with_capacity(mfes: u32, bytes: usize) -> Self {
        Self {
            d: fuzz::daemon(mfes),
            outs: BTreeMap::new(),
            sessions: BTreeMap::new(),
            bytes,
            now: Duration::ZERO,
        }
    }

    /// One input; a link lookup it asks for is answered at once: no such link (the
    /// harness's links all come from its snapshot).
    fn input(&mut self, input: Input) {
        self.d.handle(self.now, input);
        self.d.answer_lookups(self.now);
    }

    fn connect(&mut self, conn: ConnId) {
        self.connect_as(conn, None);
    }

    /// A connection of user `uid` (as the socket's peer credentials give it).
    fn connect_as(&mut self, conn: ConnId, uid: Option<u32>) {
        let (tx, rx) = Outbound::channel(self.bytes);
        self.input(Input::Connected { conn, tx, peer: uid.map(|u| (u, u, 1)) });
        self.outs.insert(conn, rx);
    }

    /// Sends a request; returns its typed reply and the events that came with it.
    fn call<M: Method>(
        &mut self,
        conn: ConnId,
        m: M,
    ) -> (Result<M::Reply, WireError>, Vec<EventFrame>) {
        let session = self.sessions.entry(conn).or_default();
        let (id, line) = session.encode(m).expect("a request within the frame limit");
        self.input(Input::Line { conn, line: proto::parse_request(&line) });
        let mut reply = None;
        loop {
            for line in self.lines(conn) {
                let session = self.sessions.get_mut(&conn).expect("the connection's session");
                if let Some(r) = session.accept::<M>(id, &line).expect("a reply or an event") {
                    assert!(reply.is_none(), "two replies: {line}");
                    reply = Some(r);
                }
            }
            // A release done in steps is answered when its last step is.
            if reply.is_some() || !self.d.has_background_work(self.now) {
                break;
            }
            self.d.background(self.now);
        }
        let session = self.sessions.get_mut(&conn).expect("the connection's session");
        let events = std::iter::from_fn(|| session.next_queued_event()).collect();
        (reply.expect("a reply"), events)
    }

    fn ok<M: Method>(&mut self, conn: ConnId, m: M) -> M::Reply {
        self.call(conn, m).0.expect("success")
    }

    fn err<M: Method>(&mut self, conn: ConnId, m: M) -> ErrorCode {
        match self.call(conn, m).0 {
            Ok(r) => panic!("succeeded: {r:?}"),
            Err(e) => e.code,
        }
    }

    fn lines(&mut self, conn: ConnId) -> Vec<String> {
        let rx = self.outs.get_mut(&conn).unwrap();
        std::iter::from_fn(|| rx.try_recv()).collect()
    }

    fn events(&mut self, conn: ConnId) -> Vec<Event> {
        let lines = self.lines(conn);
        lines.iter().map(|l| serde_json::from_str::<EventFrame>(l).unwrap().event).collect()
    }

    fn register(&mut self, conn: ConnId, protocol: u32) -> Handle {
        self.ok(conn, proto::Register { protocol, component: 1 }).handle
    }

    fn take(&mut self, conn: ConnId, handle: Handle, ifindex: u32) {
        self.ok(conn, proto::TakeInterface { handle, ifindex, nexthop: ANY });
    }

    fn join(&mut self, conn: ConnId, handle: Handle, ifindex: u32) {
        self.ok(conn, proto::AddMembership(membership(handle, ifindex)));
    }

    /// Time passes by `secs` (callback deadlines, expiry), with a tick.
    /// Time passes: a tick, and what it leaves due is done as the run loop would.
    fn wait(&mut self, secs: u64) {
        self.now += Duration::from_secs(secs);
        self.input(Input::Tick);
        while self.d.manager.has_due(self.now) {
            self.d.background(self.now);
        }
    }

    fn packet(&mut self, source: [u8; 4], ifindex: u32) {
        self.input(Input::Upcall(upcall(source, ifindex, true, 0)));
    }

    /// On connection 1: PIM owns 1..=3 with (*,G) on `members`, and (10.0.0.1, G) arrived
    /// on 1. Nobody answers the RPF and creation alert, so the MFE is created with the defaults
    /// once their deadlines pass.
    fn pim_with_mfe(&mut self, members: &[u32]) -> Handle {
        let pim = self.register(1, 103);
        for i in 1..=3 {
            self.take(1, pim, i);
        }
        for &i in members {
            self.join(1, pim, i);
        }
        self.packet([10, 0, 0, 1], 1);
        assert!(matches!(self.events(1)[0], Event::Rpf { .. }));
        self.wait(3);
        self.wait(3);
        self.lines(1);
        pim
    }

    /// The held packets the daemon has had forwarded since the last call (its
    /// `ToKernel::Replay` effects; the others stay).
    fn replayed(&mut self) -> Vec<(u32, Vec<u8>)> {
        let mut out = Vec::new();
        self.d.to_kernel.retain(|e| match e {
            ToKernel::Replay { ifindex, frame } => {
                out.push((*ifindex, frame.clone()));
                false
            }
            _ => true,
        });
        out
    }

    fn fp(&self) -> &MemFastPath {
        self.d.writer.mirror().fast_path()
    }
}

fn membership(handle: Handle, ifindex: u32) -> MembershipArgs {
    MembershipArgs {
        handle,
        source: None,
        source_mask: None,
        group: G.parse().unwrap(),
        group_mask: None,
        ifindex,
        nexthop: None,
        flags: 3,
    }
}

/// A packet of (`source`, 239.1.1.1) without MFE on `ifindex`, held by the fast path; the
/// core hears of it if it is the `first` (its frame is one byte, `frame`).
fn upcall(source: [u8; 4], ifindex: u32, first: bool, frame: u8) -> Upcall {
    Upcall {
        kind: Kind::NoMfe,
        sg: Sg::v4(source, [239, 1, 1, 1]),
        ifindex,
        event: first,
        queued: true,
        frame: vec![frame],
    }
}

const KEY: Sg = Sg::v4([10, 0, 0, 1], [239, 1, 1, 1]);
/// No next hop (IPv4).
const ANY: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

#[test]
fn handles_work_only_on_the_connection_that_registered_them() {
    let mut h = Harness::new();
    h.connect(1);
    h.connect(2);
    let pim = h.register(1, 103);
    let take = proto::TakeInterface { handle: pim, ifindex: 2, nexthop: ANY };
    assert_eq!(h.err(2, take.clone()), ErrorCode::InvalidParameter);
    assert_eq!(h.err(2, proto::Deregister { handle: pim }), ErrorCode::InvalidParameter);
    h.ok(1, take);
    let owner = h.ok(2, proto::GetProtocolOnInterface { ifindex: 2, nexthop: ANY });
    assert_eq!((owner.protocol, owner.component), (103, 1));
}

#[test]
fn a_closed_connection_releases_what_its_clients_owned_and_frees_the_fast_path() {
    let mut h = Harness::new();
    h.connect(1);
    h.pim_with_mfe(&[2]);
    assert_eq!(h.fp().mfes.len(), 1, "created with the defaults");
    h.input(Input::Disconnected { conn: 1 });
    assert!(h.fp().mfes.is_empty(), "its MFE went with its IIF");
    assert!(h.d.manager.clients().is_empty());
    assert!(h.d.manager.owners().is_empty());
}

#[test]
fn the_reply_comes_before_the_events_it_causes() {
    let mut h = Harness::new();
    h.connect(1);
    let pim = h.register(1, 103);
    let igmp = h.register(1, PROTO_IP_IGMP);
    h.take(1, igmp, 2);
    h.input(Input::Line {
        conn: 1,
        line: Ok(RequestFrame {
            id: 99,
            request: proto::TakeInterface { handle: pim, ifindex: 2, nexthop: ANY }.into(),
        }),
    });
    let lines = h.lines(1);
    assert!(!is_event(&lines[0]) && lines[0].contains(r#""id":99"#), "{lines:?}");
    let ev: Vec<EventFrame> = lines[1..].iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(matches!(ev[0].event, Event::DisableIgmp { .. }) && ev[0].handle == igmp, "{ev:?}");
    assert!(matches!(ev[1].event, Event::EnableIgmp { .. }), "{ev:?}");
}

#[test]
fn static_mfes_are_not_overridden_by_mgm_entries() {
    let mut h = Harness::new();
    h.connect(1);
    let spec = StaticMfe {
        source: "10.0.0.1".parse().unwrap(),
        group: G.parse().unwrap(),
        iif: "in".into(),
        oifs: vec!["a".into()],
    };
    h.ok(1, spec);
    let pim = h.register(1, 103);
    h.take(1, pim, 1);
    h.take(1, pim, 3);
    h.join(1, pim, 3);
    h.packet([10, 0, 0, 1], 1);
    assert_eq!(h.d.writer.mirror().get(&KEY).unwrap().oifs(), vec![2], "the static entry stands");
    let show = h.ok(1, proto::Show::default());
    assert_eq!(show.mfes[0].origin, proto::Origin::Static);
    assert_eq!((show.protocols.len(), show.memberships.len()), (1, 1));
}

/// A static MFE put over an (S,G) the core has, then removed: the core's entry is back in the
/// fast path at once (not blackholed until it expires).
#[test]
fn removing_a_static_mfe_restores_what_the_core_holds() {
    let mut h = Harness::new();
    h.connect(1);
    h.pim_with_mfe(&[2]);
    let static_mfe = StaticMfe {
        source: "10.0.0.1".parse().unwrap(),
        group: G.parse().unwrap(),
        iif: "in".into(),
        oifs: vec!["b".into()],
    };
    h.ok(1, static_mfe);
    assert!(h.fp().forwards(&KEY, 3) && !h.fp().forwards(&KEY, 2), "the static one wins");
    h.ok(1, proto::DelMfe { source: "10.0.0.1".parse().unwrap(), group: G.parse().unwrap() });
    assert!(h.fp().forwards(&KEY, 2) && !h.fp().forwards(&KEY, 3), "the core's is back");
    let del = proto::DelMfe { source: "10.0.0.1".parse().unwrap(), group: G.parse().unwrap() };
    assert_eq!(h.err(1, del), ErrorCode::NotFound, "no static left");
    assert!(h.fp().forwards(&KEY, 2), "and the core's entry is not a static one");
}

/// A reload applies the file's difference whatever was done over the socket meanwhile: an
/// entry of the file the operator removed comes back, one the file drops after the operator
/// removed it is not counted twice (nor against the limit), a run-time entry stays.
#[test]
fn a_reload_after_run_time_changes_applies_the_file() {
    let mut h = Harness::new();
    let m = |group: &str, oifs: &[&str]| StaticMfe {
        source: "10.0.0.1".parse().unwrap(),
        group: group.parse().unwrap(),
        iif: "in".into(),
        oifs: oifs.iter().map(|o| (*o).into()).collect(),
    };
    let cfg = |mfes: Vec<StaticMfe>| Config { mfes, ..Config::default() };
    h.d.set_limits(Limits { static_mfes: 2, ..Limits::default() });
    let r = h.d.apply_config(&cfg(vec![m(G, &["a"]), m("239.1.1.2", &["a"])]), h.now).unwrap();
    assert_eq!(r.mfes_added, 2);
    h.connect(1);
    let del =
        |g: &str| proto::DelMfe { source: "10.0.0.1".parse().unwrap(), group: g.parse().unwrap() };
    h.ok(1, del(G));
    h.ok(1, del("239.1.1.2"));
    h.ok(1, m("239.1.1.3", &["b"]));
    // The file still has G, no longer 239.1.1.2.
    let r = h.d.apply_config(&cfg(vec![m(G, &["a"])]), h.now).unwrap();
    assert_eq!((r.mfes_added, r.mfes_removed, r.mfes_changed, r.mfes_unchanged), (1, 0, 0, 0));
    assert!(h.fp().forwards(&KEY, 2), "the file's entry is back");
    assert_eq!(h.d.writer.static_count(), 2, "with the run-time one");
    // Over the limit: refused whole, nothing changed.
    let e = h.d.apply_config(&cfg(vec![m(G, &["a"]), m("239.1.1.4", &["a"])]), h.now);
    assert_eq!(e.unwrap_err().code, ErrorCode::NotEnoughMemory);
    assert_eq!(h.d.writer.static_count(), 2);
    // An interface that does not exist: refused whole too.
    let mut bad = cfg(vec![m(G, &["b"])]);
    bad.interfaces.push("nosuch".into());
    assert_eq!(h.d.apply_config(&bad, h.now).unwrap_err().code, ErrorCode::NoSuchInterface);
    assert!(h.fp().forwards(&KEY, 2) && !h.fp().forwards(&KEY, 3), "unchanged");
}

/// Every per-connection limit answers NOT_ENOUGH_MEMORY (Win32 8) and changes nothing; what
/// one connection holds does not count against another; freeing makes room again.
#[test]
fn limits_refuse_with_not_enough_memory_and_change_nothing() {
    let mut h = Harness::new();
    h.d.set_limits(Limits {
        handles_per_conn: 2,
        interfaces_per_conn: 2,
        memberships_per_conn: 2,
        enums_per_conn: 1,
        static_mfes: 1,
    });
    h.connect(1);
    h.connect(2);
    let a = h.register(1, 103);
    h.register(1, 104);
    let (e, _) = h.call(1, proto::Register { protocol: 105, component: 1 });
    let e = e.unwrap_err();
    assert_eq!((e.code, e.win32), (ErrorCode::NotEnoughMemory, Some(8)), "{e:?}");
    assert_eq!(h.d.manager.clients().len(), 2);
    h.register(2, 105); // another connection's quota

    h.take(1, a, 1);
    h.take(1, a, 2);
    h.take(1, a, 2); // owned already: no new interface
    let take = proto::TakeInterface { handle: a, ifindex: 3, nexthop: ANY };
    assert_eq!(h.err(1, take.clone()), ErrorCode::NotEnoughMemory);
    assert_eq!(h.d.manager.owned_count(a), 2);
    assert_eq!(h.d.status().leases_alive, 2, "no lease for the refused take");

    h.join(1, a, 1);
    h.join(1, a, 2);
    h.join(1, a, 2); // exists already: allowed
    let third = MembershipArgs { group: "239.9.9.9".parse().unwrap(), ..membership(a, 1) };
    assert_eq!(h.err(1, proto::AddMembership(third.clone())), ErrorCode::NotEnoughMemory);
    assert_eq!(h.d.manager.membership_count(a), 2);

    h.ok(1, proto::GroupEnumStart { handle: a, enum_type: crate::manager::EnumType::AnySource });
    let again = proto::GroupEnumStart { handle: a, enum_type: crate::manager::EnumType::AnySource };
    assert_eq!(h.err(1, again), ErrorCode::NotEnoughMemory);

    let spec = |g: &str| StaticMfe {
        source: "10.0.0.9".parse().unwrap(),
        group: g.parse().unwrap(),
        iif: "in".into(),
        oifs: vec!["a".into()],
    };
    h.ok(2, spec("239.5.5.1"));
    h.ok(2, spec("239.5.5.1")); // replacing an existing static: allowed
    assert_eq!(h.err(2, spec("239.5.5.2")), ErrorCode::NotEnoughMemory);

    // Room again once something is given back.
    h.ok(1, proto::DeleteMembership(membership(a, 2)));
    h.ok(1, proto::AddMembership(third));
    h.ok(1, proto::ReleaseInterface { handle: a, ifindex: 2, nexthop: ANY });
    h.ok(1, take);
}

/// One user's connections share its quotas of interfaces and memberships (16 connections of
/// one user filled the 65,535-lease table when the cap was per connection); another user, and
/// root's connections (each on its own), keep theirs.
#[test]
fn one_users_connections_share_its_quotas() {
    let mut h = Harness::new();
    h.d.set_limits(Limits { interfaces_per_conn: 2, memberships_per_conn: 2, ..Limits::default() });
    for (conn, uid) in [(1, 1000), (2, 1000), (3, 1001), (4, 0), (5, 0)] {
        h.connect_as(conn, Some(uid));
    }
    let hs: Vec<Handle> = (1..=5).map(|c| h.register(c, 100 + c as u32)).collect();
    // Connection c takes interface `ifindex` towards next hop 10.0.0.c (each its own).
    let take = |c: u64, ifindex| proto::TakeInterface {
        handle: hs[c as usize - 1],
        ifindex,
        nexthop: Ipv4Addr::new(10, 0, 0, c as u8).into(),
    };
    h.ok(1, take(1, 2));
    h.ok(2, take(2, 2));
    assert_eq!(h.err(2, take(2, 3)), ErrorCode::NotEnoughMemory, "uid 1000 holds 2");
    assert_eq!(h.err(1, take(1, 3)), ErrorCode::NotEnoughMemory);
    for c in [3, 4, 5] {
        h.ok(c, take(c, 2));
        h.ok(c, take(c, 3));
    }
    assert_eq!(h.d.status().leases_alive, 8);
    let join = |c: u64, group: &str| {
        let m = membership(hs[c as usize - 1], 2);
        let nexthop = Some(Ipv4Addr::new(10, 0, 0, c as u8).into());
        proto::AddMembership(MembershipArgs { group: group.parse().unwrap(), nexthop, ..m })
    };
    h.ok(1, join(1, "239.1.1.1"));
    h.ok(2, join(2, "239.1.1.2"));
    assert_eq!(h.err(2, join(2, "239.1.1.3")), ErrorCode::NotEnoughMemory);
    h.ok(3, join(3, "239.1.1.3"));
    // Room again when one of the user's connections goes.
    h.input(Input::Disconnected { conn: 1 });
    h.ok(2, take(2, 3));
}

/// A full lease table (65,535 owners of interfaces in all) refuses the next take with
/// NOT_ENOUGH_MEMORY, instead of answering success for an owner whose copies never flow.
#[test]
fn a_full_lease_table_refuses_the_take_that_needs_a_lease() {
    let mut h = Harness::new();
    let per = Limits::default().interfaces_per_conn as u32;
    let conns = (mgm_common::MAX_LEASES - 1).div_ceil(per) as u64;
    let mut taken = 0u32;
    for conn in 1..=conns {
        h.connect(conn);
        let c = h.register(conn, 1000 + conn as u32);
        for i in 0..per {
            if taken == mgm_common::MAX_LEASES - 1 {
                break;
            }
            let nexthop = Ipv4Addr::from(0x0a00_0000 + taken);
            let line = Ok(RequestFrame {
                id: 1,
                request: proto::TakeInterface { handle: c, ifindex: 2, nexthop: nexthop.into() }
                    .into(),
            });
            h.input(Input::Line { conn, line });
            let reply = h.lines(conn).pop().unwrap();
            assert!(reply.contains("result"), "take {i} on {conn}: {reply}");
            taken += 1;
        }
    }
    assert_eq!(h.d.status().leases_alive as u32, mgm_common::MAX_LEASES - 1);
    h.connect(99);
    let late = h.register(99, 99);
    let take = proto::TakeInterface { handle: late, ifindex: 3, nexthop: ANY };
    assert_eq!(h.err(99, take.clone()), ErrorCode::NotEnoughMemory);
    assert_eq!(h.d.manager.owned_count(late), 0, "nothing changed");
    // A connection leaves: its leases are free again once no list names them.
    h.input(Input::Disconnected { conn: 1 });
    h.d.background(h.now);
    h.ok(99, take);
}

#[test]
fn mgm_errors_reach_the_wire_with_their_codes() {
    let mut h = Harness::new();
    h.connect(1);
    h.connect(2);
    let a = h.register(1, 103);
    assert_eq!(h.err(1, proto::Register { protocol: 103, component: 1 }), ErrorCode::AlreadyExists);
    h.take(1, a, 2);
    let b = h.register(2, 104);
    let take = proto::TakeInterface { handle: b, ifindex: 2, nexthop: ANY };
    assert_eq!(h.err(2, take), ErrorCode::AlreadyExists);
    assert_eq!(h.err(1, proto::Deregister { handle: a }), ErrorCode::CanNotComplete);
    let get = proto::GetMfe {
        source: "10.0.0.1".parse().unwrap(),
        group: G.parse().unwrap(),
        max_entries: 1,
        stats: false,
    };
    assert_eq!(h.err(1, get), ErrorCode::NotFound);
    let page = h.ok(1, proto::GetFirstMfe { max_entries: 5, stats: false });
    assert_eq!((page.status, page.entries.len()), (proto::PageStatus::NoMoreItems, 0));
    let release = proto::ReleaseInterface { handle: a, ifindex: 3, nexthop: ANY };
    assert_eq!(h.call(1, release).0.unwrap_err().win32, Some(87));
}

#[test]
fn a_client_that_does_not_read_is_disconnected_and_released() {
    let mut h = Harness::new();
    h.connect(1);
    let pim = h.register(1, 103);
    h.take(1, pim, 2);
    // Fill the 16 KiB queue and 4 times that waiting, without reading: replies of ~60 bytes.
    for i in 0..1500 {
        let line = Ok(RequestFrame { id: 1, request: proto::Hello {}.into() });
        h.input(Input::Line { conn: 1, line });
        if i == 600 {
            assert!(h.d.conns.is_open(1), "36 KiB: over the queue, waiting within bounds");
            assert!(h.d.status().backlog_bytes > 0);
        }
    }
    assert!(h.d.manager.owners().is_empty(), "its interface was released");
    assert!(!h.d.conns.is_open(1));
}

/// An alert storm bigger than a reading client's queue waits and goes as it reads: every
/// alert arrives, in order, and the client keeps its connection.
#[test]
fn an_alert_storm_to_a_reading_client_is_paced_not_cut_off() {
    let mut h = Harness::new(); // 16 KiB queues
    h.connect(1);
    h.connect(2);
    let a = h.register(1, 103);
    let b = h.register(2, 104);
    h.take(1, a, 2);
    let groups = 200u32;
    for i in 0..groups {
        let group = std::net::Ipv4Addr::from(0xef01_0000 + i);
        h.ok(1, proto::AddMembership(MembershipArgs { group: group.into(), ..membership(a, 2) }));
    }
    // The join alerts (more than a queue too): B reads them as they come.
    while h.d.status().backlog_bytes > 0 {
        h.lines(2);
        h.input(Input::Tick);
    }
    h.lines(2);
    // A leaves: B gets a prune alert per group at once, ~45 KiB.
    h.input(Input::Disconnected { conn: 1 });
    assert!(h.d.status().backlog_bytes > 0, "more than the queue holds");
    let mut got = Vec::new();
    for _ in 0..100 {
        got.extend(h.events(2)); // B reads...
        h.input(Input::Tick); // ...and the rest follows
        if got.len() == groups as usize {
            break;
        }
    }
    assert_eq!(got.len(), groups as usize);
    assert!(got.iter().all(|e| matches!(e, Event::PruneAlert { member_delete: true, .. })));
    assert!(h.d.conns.is_open(2), "B kept its connection");
    assert_eq!(h.d.status().backlog_bytes, 0);
    h.ok(2, proto::Deregister { handle: b });
}

/// A client leaving with more entries than one step takes is taken down in steps: its copies
/// stop at once, other clients are served between the steps, and the alerts it causes go at
/// the pace their reader reads (all of them, without cutting it off).
#[test]
fn a_big_client_leaving_is_taken_down_in_steps_at_its_readers_pace() {
    let mut h = Harness::with_capacity(64, 512 << 10);
    let a = h.owner_and_watcher();
    let n = 3 * RELEASE_BATCH as u32;
    for i in 0..n {
        let group = std::net::Ipv4Addr::from(0xef10_0000 + i);
        let m = proto::AddMembership(MembershipArgs { group: group.into(), ..membership(a, 2) });
        h.input(Input::Line { conn: 1, line: Ok(RequestFrame { id: 1, request: m.into() }) });
        h.lines(1);
        h.lines(2); // B reads its join alerts
        while h.d.status().backlog_bytes > 0 {
            h.input(Input::Tick);
            h.lines(2);
        }
    }
    assert_eq!(h.d.manager.membership_count(a), n as usize);
    h.input(Input::Disconnected { conn: 1 });
    assert_eq!(h.d.status().leases_alive, 0, "its copies stopped at once");
    assert!(!h.d.jobs.is_empty(), "more than one step");
    assert!(h.d.manager.membership_count(a) > 0);
    // B is served while A goes, and reads its prune alerts as they come.
    let mut alerts = 0;
    let mut steps = 0;
    while !h.d.jobs.is_empty() {
        // A request of B's is answered (behind the alerts it has not read yet).
        let hello = Ok(RequestFrame { id: 7, request: proto::Hello {}.into() });
        h.input(Input::Line { conn: 2, line: hello });
        let mut answered = false;
        while !answered {
            assert!(h.d.conns.is_open(2), "B was cut off");
            for l in h.lines(2) {
                if is_event(&l) {
                    alerts += 1;
                } else {
                    answered = true;
                }
            }
            h.input(Input::Tick);
        }
        h.now += Duration::from_millis(1);
        h.d.background(h.now);
        steps += 1;
        assert!(steps < 10_000, "teardown does not progress");
    }
    loop {
        let n = h.events(2).len();
        alerts += n;
        if n == 0 && h.d.status().backlog_bytes == 0 {
            break;
        }
        h.input(Input::Tick);
    }
    assert_eq!(alerts, n as usize, "one prune alert per group, none lost");
    assert!(h.d.conns.is_open(2), "B kept its connection");
    assert!(h.d.manager.clients().iter().all(|c| c.handle != a), "A is gone");
}

#[test]
fn an_interface_removed_from_the_kernel_is_released_and_its_owner_told() {
    let mut h = Harness::new();
    h.connect(1);
    h.pim_with_mfe(&[2, 3]);
    assert_eq!(h.d.writer.mirror().get(&KEY).unwrap().oifs(), vec![2, 3]);
    h.input(Input::Kernel(KernelEvent::LinkGone(3)));
    let events = h.events(1);
    assert!(
        events.iter().any(|e| matches!(e, Event::InterfaceGone { iface } if iface.ifindex == 3)),
        "{events:?}"
    );
    assert_eq!(h.d.writer.mirror().get(&KEY).unwrap().oifs(), vec![2], "the MFE lost it");
    assert!(!h.fp().ports.contains_key(&3), "and so did the fast path");
    assert!(!h.fp().attached.contains(&3));
    assert!(!h.d.links.is_managed(3));
    let on = proto::GetProtocolOnInterface { ifindex: 3, nexthop: ANY };
    assert_eq!(h.err(1, on), ErrorCode::NotFound);
    // A snapshot without interface 2 (notifications were lost) does the same for 2.
    let links = vec![NetDev {
        name: "in".into(),
        ifindex: 1,
        mac: [2, 0, 0, 0, 0, 1],
        mtu: 1500,
        up: true,
    }];
    h.input(Input::Kernel(KernelEvent::Snapshot { links, neighbours: Neighbours::new() }));
    assert!(h.d.writer.mirror().get(&KEY).unwrap().oifs().is_empty());
    assert!(!h.d.links.is_managed(2));
}

#[test]
fn mtu_and_mac_changes_reach_the_fast_path_and_other_links_are_ignored() {
    let mut h = Harness::new();
    let dev = |ifindex, mac: u8, mtu| NetDev {
        name: "a".into(),
        ifindex,
        mac: [2, 0, 0, 0, 0, mac],
        mtu,
        up: true,
    };
    h.input(Input::Kernel(KernelEvent::Link(dev(2, 2, 9000))));
    assert_eq!((h.fp().ports[&2].mtu, h.fp().ports[&2].mac), (9000, [2, 0, 0, 0, 0, 2]));
    h.input(Input::Kernel(KernelEvent::Link(dev(2, 0x22, 9000))));
    assert_eq!(h.fp().ports[&2].mac, [2, 0, 0, 0, 0, 0x22]);
    let writes = h.fp().log.len();
    h.input(Input::Kernel(KernelEvent::Link(dev(2, 0x22, 9000))));
    h.input(Input::Kernel(KernelEvent::Link(dev(7, 7, 1400))));
    assert_eq!(h.fp().log.len(), writes, "no change, and an unmanaged link: no write");
    // A client may take the new link by index: it is known from the event.
    h.connect(1);
    let pim = h.register(1, 103);
    h.take(1, pim, 7);
    assert_eq!(h.fp().ports[&7].mtu, 1400);
    let show = h.ok(1, proto::Show::default());
    assert!(show.interfaces.iter().any(|i| i.ifindex == 2 && i.mtu == 9000 && i.up), "{show:?}");
    // Down: shown, and nothing is written (copies to a down link are the kernel's to drop).
    let writes = h.fp().log.len();
    h.input(Input::Kernel(KernelEvent::Link(NetDev { up: false, ..dev(2, 0x22, 9000) })));
    assert_eq!(h.fp().log.len(), writes);
    let show = h.ok(1, proto::Show::default());
    assert!(show.interfaces.iter().any(|i| i.ifindex == 2 && !i.up), "{show:?}");
}

#[test]
fn a_next_hop_gets_its_mac_from_neighbour_events_and_is_solicited_until_then() {
    let mut h = Harness::new();
    h.connect(1);
    let pim = h.register(1, 103);
    let hop: IpAddr = "10.9.0.2".parse().unwrap();
    h.take(1, pim, 1);
    h.ok(1, proto::TakeInterface { handle: pim, ifindex: 2, nexthop: hop });
    h.ok(1, proto::AddMembership(MembershipArgs { nexthop: Some(hop), ..membership(pim, 2) }));
    h.pim_mfe_defaults();
    assert!(h.d.writer.mirror().has_unresolved_neighbours());
    h.wait(1);
    assert!(
        h.d.take_for_kernel().contains(&ToKernel::Solicit(2, hop)),
        "asked the kernel to resolve it"
    );
    let mac = [2, 0, 0, 0, 9, 2];
    h.input(Input::Kernel(KernelEvent::Neighbour { ifindex: 2, ip: hop, mac: Some(mac) }));
    assert!(!h.d.writer.mirror().has_unresolved_neighbours());
    let legs = &h.fp().oils[&h.fp().mfes[&KEY].oil];
    assert_eq!(legs[0].mac, mac, "{legs:?}");
    // A changed MAC is followed; a neighbour the kernel drops keeps its last MAC.
    let mac2 = [2, 0, 0, 0, 9, 3];
    h.input(Input::Kernel(KernelEvent::Neighbour { ifindex: 2, ip: hop, mac: Some(mac2) }));
    h.input(Input::Kernel(KernelEvent::Neighbour { ifindex: 2, ip: hop, mac: None }));
    assert_eq!(h.fp().oils[&h.fp().mfes[&KEY].oil][0].mac, mac2);
    h.wait(1);
    assert!(h.d.take_for_kernel().is_empty());
}

impl Harness {
    /// A routing protocol on connection 1 owning interface 2 (returned), and another on
    /// connection 2 that hears its join and prune alerts.
    fn owner_and_watcher(&mut self) -> Handle {
        self.connect(1);
        self.connect(2);
        let a = self.register(1, 103);
        self.register(2, 104);
        self.take(1, a, 2);
        a
    }

    /// (10.0.0.1, G) arrives on 1 and takes its defaults.
    fn pim_mfe_defaults(&mut self) {
        self.packet([10, 0, 0, 1], 1);
        self.wait(3);
        self.wait(3);
        self.lines(1);
        assert!(self.fp().mfes.contains_key(&KEY));
    }
}

#[test]
fn a_release_stops_copies_when_it_is_read_and_the_rest_follows_in_steps() {
    let n = 3 * WRITE_BATCH as u32;
    let mut h = Harness::with_capacity(n, 4096 * n as usize);
    h.connect(1);
    let pim = h.register(1, 103);
    for i in 1..=3 {
        h.take(1, pim, i);
    }
    h.join(1, pim, 2);
    h.join(1, pim, 3);
    let sources: Vec<[u8; 4]> = (0..n).map(|s| (0x0a00_0000 + s).to_be_bytes()).collect();
    let keys: Vec<Sg> = sources.iter().map(|s| Sg::v4(*s, [239, 1, 1, 1])).collect();
    // Flows start at the interface's creation rate (1,000 a second).
    for chunk in sources.chunks(1000) {
        for s in chunk {
            h.packet(*s, 1);
        }
        h.now += Duration::from_secs(1);
    }
    // Nobody answers: RPF and creation alerts take their defaults.
    h.wait(3);
    h.wait(3);
    while h.d.has_background_work(h.now) {
        h.d.background(h.now);
    }
    h.lines(1);
    assert_eq!(h.d.writer.mirror().mfes().count(), n as usize);

    let release = proto::ReleaseInterface { handle: pim, ifindex: 2, nexthop: ANY };
    h.input(Input::Line { conn: 1, line: Ok(RequestFrame { id: 50, request: release.into() }) });
    // As soon as the request is read: not every MFE has been rewritten, yet none sends a copy
    // to 2 any more, and every one still sends to 3.
    let s = h.d.status();
    assert!(s.pending_writes > 0 || !h.d.jobs.is_empty(), "all done at once: {s:?}");
    assert_eq!(s.leases_released, 1);
    assert!(keys.iter().all(|k| !h.fp().forwards(k, 2)), "a copy to the released interface");
    assert!(keys.iter().all(|k| h.fp().forwards(k, 3)), "a copy to 3 stopped");
    // The reply comes once the core's entries are done; the rewrite may go on after it.
    let mut replied = false;
    while h.d.has_background_work(h.now) {
        h.d.background(h.now);
        replied |= h.lines(1).iter().any(|l| l.contains(r#""id":50"#));
        assert!(keys.iter().all(|k| !h.fp().forwards(k, 2)));
        assert!(keys.iter().all(|k| h.fp().forwards(k, 3)));
    }
    assert!(replied);
    let s = h.d.status();
    assert_eq!((s.pending_writes, s.leases_released, s.oils), (0, 0, 1), "{s:?}");
    assert!(h.d.writer.mirror().mfes().all(|(_, m)| m.oifs() == vec![3]));
}

/// PIM owning interfaces 1 to 3 with a member on 2, and six packets of a new flow from
/// 10.0.0.1 arriving on 1 (the first of them the event).
fn six_first_packets(h: &mut Harness) {
    h.connect(1);
    let pim = h.register(1, 103);
    for i in 1..=3 {
        h.take(1, pim, i);
    }
    h.join(1, pim, 2);
    for i in 0..6u8 {
        h.input(Input::Upcall(upcall([10, 0, 0, 1], 1, i == 0, i)));
    }
}

#[test]
fn the_first_packets_of_a_flow_wait_for_its_mfe_within_bounds() {
    let mut h = Harness::new();
    six_first_packets(&mut h);
    // Nobody owns the interface of this one: the kernel had its packet, mgm keeps nothing.
    let other = Upcall { ifindex: 9, ..upcall([10, 0, 0, 2], 1, true, 7) };
    h.input(Input::Upcall(other));
    let s = h.d.status();
    assert_eq!((s.unresolved, s.replay_dropped), (1, 2), "4 kept, 2 over the bound: {s:?}");
    assert!(h.replayed().is_empty(), "no MFE yet");
    h.wait(3);
    h.wait(3);
    let replayed: Vec<(u32, Vec<u8>)> = (0..4).map(|i| (1, vec![i])).collect();
    assert_eq!(h.replayed(), replayed, "in order, once the MFE is in");
    assert_eq!((h.d.status().unresolved, h.d.status().replayed), (0, 4));
    // A straggler that missed the new MFE goes straight through.
    h.input(Input::Upcall(upcall([10, 0, 0, 1], 1, false, 9)));
    assert_eq!(h.replayed(), [(1, vec![9])]);
    // What the replay thread could not queue counts as dropped, not replayed.
    let lost = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(2));
    h.d.count_replay_losses(lost);
    let s = h.d.status();
    assert_eq!((s.replayed, s.replay_dropped), (3, 4), "{s:?}");
}

/// A kernel that cannot replay held packets (no XDP live-frame test runs): nothing is held
/// for a new flow, whose first packets the kernel had, and none is counted as lost.
#[test]
fn without_replay_the_first_packets_are_not_held() {
    let mut h = Harness::new();
    h.d.writer.dataplane_mut().cannot_replay = true;
    six_first_packets(&mut h);
    let s = h.d.status();
    assert_eq!((s.unresolved, s.replay_dropped), (0, 0), "{s:?}");
    h.wait(3);
    h.wait(3);
    assert!(h.d.writer.mirror().get(&KEY).is_some(), "the MFE is installed all the same");
    // A straggler that missed the new MFE went to the kernel too: not lost either.
    h.input(Input::Upcall(upcall([10, 0, 0, 1], 1, false, 9)));
    assert!(h.replayed().is_empty());
    let s = h.d.status();
    assert_eq!((s.replayed, s.replay_dropped), (0, 0), "{s:?}");
}

#[test]
fn a_failed_fast_path_write_is_retried_from_the_core_state() {
    let mut h = Harness::new();
    h.connect(1);
    h.d.writer.dataplane_mut().fail_mfe_writes = true;
    h.pim_with_mfe(&[2]);
    assert!(h.d.writer.mirror().get(&KEY).is_none(), "the write failed");
    let s = h.d.status();
    assert_eq!((s.mfes, s.retrying), (1, 1), "{s:?}");
    assert!(s.write_failures >= 1);
    // Still failing a second later: it stays in the retry set.
    h.wait(1);
    assert_eq!(h.d.status().retrying, 1);
    // The table has room again: the next retry installs what the core has.
    h.d.writer.dataplane_mut().fail_mfe_writes = false;
    h.wait(1);
    assert_eq!(h.d.writer.mirror().get(&KEY).unwrap().oifs(), vec![2]);
    assert_eq!(h.d.status().retrying, 0);
    assert!(h.fp().forwards(&KEY, 2), "with a live lease");
}

/// The run loop itself: inputs from a channel, replies out, ticks applying the callbacks'
/// defaults, background writes drained, what the kernel should do handed out, and an end
/// when the senders are gone.
#[tokio::test(start_paused = true)]
async fn the_run_loop_serves_inputs_ticks_and_background_writes() {
    let mut d = fuzz::daemon(64);
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let (out, mut out_rx) = Outbound::channel(1 << 20);
    let feeder = async move {
        tx.send(Input::Connected { conn: 1, tx: out, peer: None }).await.unwrap();
        let mut next_id = 0;
        let mut call = async |request: Request| {
            next_id += 1;
            let line = Ok(RequestFrame { id: next_id, request });
            tx.send(Input::Line { conn: 1, line }).await.unwrap();
            out_rx.recv().await.unwrap()
        };
        let reply = call(proto::Register { protocol: 103, component: 1 }.into()).await;
        let r: ReplyFrame<proto::Registered> = serde_json::from_str(&reply).unwrap();
        let ReplyBody::Result(proto::Registered { handle }) = r.body else { panic!("{reply}") };
        for ifindex in [1, 2] {
            let take = proto::TakeInterface { handle, ifindex, nexthop: ANY };
            assert!(call(take.into()).await.contains("result"));
        }
        assert!(call(proto::AddMembership(membership(handle, 2)).into()).await.contains("result"));
        tx.send(Input::Upcall(upcall([10, 0, 0, 1], 1, true, 0))).await.unwrap();
        // Nobody answers: the ticks of the next 5 s apply the defaults.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let lines: Vec<String> = std::iter::from_fn(|| out_rx.try_recv()).collect();
        assert!(lines.iter().any(|l| l.contains(r#""event":"rpf""#)), "{lines:?}");
        // tx drops here: the loop ends.
    };
    let mut solicited = Vec::new();
    let ((), ()) =
        tokio::join!(feeder, run(&mut d, &mut rx, |ip| solicited.push(ip), std::future::pending()));
    assert!(d.writer.mirror().fast_path().forwards(&KEY, 2), "created with the defaults");
    assert_eq!(d.pending_writes(), 0);
    // Handed out: the held first packet, once its MFE existed; nothing to solicit.
    assert_eq!(solicited, [ToKernel::Replay { ifindex: 1, frame: vec![0] }]);
}

/// A release of more entries than a step takes is answered when its last step is done: the
/// client's next request waits behind it (and its connection is not read meanwhile), other
/// clients are served between the steps, and every alert goes out.
#[test]
fn a_big_release_is_answered_after_its_steps_and_others_are_served_between_them() {
    let mut h = Harness::with_capacity(64, 64 << 20);
    let a = h.owner_and_watcher();
    let n = 3 * RELEASE_BATCH as u32;
    for i in 0..n {
        let group = std::net::Ipv4Addr::from(0xef20_0000 + i);
        h.ok(1, proto::AddMembership(MembershipArgs { group: group.into(), ..membership(a, 2) }));
    }
    h.lines(2);
    let line = |id, request: proto::Request| Input::Line {
        conn: 1,
        line: Ok(RequestFrame { id, request }),
    };
    let release = proto::ReleaseInterface { handle: a, ifindex: 2, nexthop: ANY };
    h.input(line(100, release.clone().into()));
    h.input(line(101, proto::Hello {}.into()));
    assert!(h.lines(1).is_empty(), "answered before its steps are done");
    assert!(!h.outs[&1].reading(), "its connection is read while it waits");
    assert_eq!(h.d.status().leases_alive, 0, "copies stopped at once");
    let mut steps = 0;
    let mut alerts = 0;
    while !h.d.jobs.is_empty() {
        // B is served between the steps (behind the alerts that came so far).
        let (hello, events) = h.call(2, proto::Hello {});
        assert!(hello.is_ok());
        alerts += events.len();
        h.d.background(h.now);
        steps += 1;
    }
    alerts += h.events(2).len();
    assert!(steps >= 2, "{steps} steps");
    assert_eq!(alerts, n as usize, "a prune alert per group");
    let ids: Vec<Option<u64>> = h
        .lines(1)
        .iter()
        .map(|l| serde_json::from_str::<ReplyFrame<serde_json::Value>>(l).unwrap().id)
        .collect();
    assert_eq!(ids, vec![Some(100), Some(101)], "answered, then the request behind it");
    assert!(h.outs[&1].reading());
    assert_eq!(h.d.manager.membership_count(a), 0);
    assert!(!h.d.manager.owns(a, Iface::new(2, Ipv4Addr::UNSPECIFIED)));
    // A release that fits one step is answered at once.
    h.take(1, a, 2);
    h.ok(1, release);
}

/// A client that goes away while its release is under way: the release ends, then the rest
/// of what it held, and nothing it sent after the release is served.
#[test]
fn a_client_leaving_during_its_release_is_taken_down_after_it() {
    let mut h = Harness::with_capacity(64, 64 << 20);
    h.connect(1);
    let a = h.register(1, 103);
    h.take(1, a, 2);
    h.take(1, a, 3);
    for i in 0..3 * RELEASE_BATCH as u32 {
        let group = std::net::Ipv4Addr::from(0xef30_0000 + i);
        h.ok(1, proto::AddMembership(MembershipArgs { group: group.into(), ..membership(a, 2) }));
        h.ok(1, proto::AddMembership(MembershipArgs { group: group.into(), ..membership(a, 3) }));
    }
    let release = proto::ReleaseInterface { handle: a, ifindex: 2, nexthop: ANY };
    h.input(Input::Line { conn: 1, line: Ok(RequestFrame { id: 9, request: release.into() }) });
    h.input(Input::Disconnected { conn: 1 });
    assert!(h.d.manager.is_registered(a));
    while h.d.has_background_work(h.now) {
        h.d.background(h.now);
    }
    assert!(!h.d.manager.is_registered(a), "taken down");
    assert_eq!(h.d.manager.membership_count(a), 0);
    assert!(h.d.busy.is_empty());
}

/// `--follow-kernel`: the liveness stamp starts only once the table has been read whole;
/// `show` lists every followed entry, accelerated or with the reason it is not; a static MFE
/// wins over a followed entry and, removed, gives its place back to it; an entry the table no
/// longer has leaves the fast path with the next dump; without following, followed entries go.
#[test]
fn followed_kernel_entries_are_mirrored_explained_and_yield_to_statics() {
    use crate::kernel::KernelMfc;
    let mut h = Harness::new();
    h.connect(1);
    h.d.follow_kernel(follow::Tables::default(), Duration::from_secs(1)).unwrap();
    assert!(!h.d.take_for_kernel().contains(&ToKernel::SayAlive), "not before the table is read");
    let mfc = |source: &str, oifs: &[(u32, u8)]| KernelMfc {
        table: follow::DEFAULT_TABLE,
        source: source.parse().unwrap(),
        group: G.parse().unwrap(),
        iif: 1,
        oifs: oifs.to_vec(),
        unresolved: false,
    };
    let (a, b) = (mfc("10.0.0.1", &[(2, 1), (3, 1)]), mfc("10.0.0.2", &[(2, 1), (9, 1)]));
    h.input(Input::Kernel(KernelEvent::MfcSnapshot(vec![a.clone(), b.clone()])));
    assert!(h.d.take_for_kernel().contains(&ToKernel::SayAlive), "alive once it is read");
    assert!(h.fp().forwards(&KEY, 2) && h.fp().forwards(&KEY, 3));
    let b_key = Sg::new(Ipv4Addr::new(10, 0, 0, 2), KEY.group);
    assert!(h.d.writer.mirror().get(&b_key).is_none(), "9 is not managed");

    let show = h.ok(1, proto::Show::default());
    let routes = &show.kernel_routes;
    assert_eq!(routes.len(), 2, "{routes:?}");
    assert!(routes[0].accelerated && routes[0].reason.is_none(), "{routes:?}");
    assert_eq!(routes[0].oifs.len(), 2);
    let why = routes[1].reason.as_deref().unwrap();
    assert!(!routes[1].accelerated && why.contains("outgoing interface 9"), "{why}");
    assert_eq!(show.mfes[0].origin, proto::Origin::Kernel);

    let spec = StaticMfe {
        source: "10.0.0.1".parse().unwrap(),
        group: G.parse().unwrap(),
        iif: "in".into(),
        oifs: vec!["b".into()],
    };
    h.ok(1, spec);
    assert!(h.fp().forwards(&KEY, 3) && !h.fp().forwards(&KEY, 2), "the static one wins");
    let show = h.ok(1, proto::Show::default());
    assert!(show.kernel_routes[0].reason.as_deref().unwrap().contains("static"));
    h.ok(1, proto::DelMfe { source: "10.0.0.1".parse().unwrap(), group: G.parse().unwrap() });
    assert!(h.fp().forwards(&KEY, 2) && h.fp().forwards(&KEY, 3), "the followed one is back");
    assert_eq!(h.ok(1, proto::Show::default()).mfes[0].origin, proto::Origin::Kernel);

    // The table changed while no message said so (a VIF went): the dump has it.
    h.input(Input::Kernel(KernelEvent::MfcSnapshot(vec![b])));
    assert!(h.d.writer.mirror().get(&KEY).is_none(), "gone with the next dump");
    h.input(Input::Kernel(KernelEvent::Mfc(a)));
    assert!(h.fp().forwards(&KEY, 2));
    h.d.drop_followed();
    assert!(h.d.writer.mirror().get(&KEY).is_none(), "nobody follows it now");
}

/// A link created just before a request names it (its notification not read yet): the kernel
/// is asked off the loop, and the request, and the connection's next ones, wait for its
/// answer; a link the kernel does not have is refused as before.
#[test]
fn a_link_named_before_its_notification_waits_for_the_kernels_answer() {
    let mut h = Harness::new();
    h.connect(1);
    let pim = h.register(1, 103);
    let take = |id, ifindex| {
        let request = proto::TakeInterface { handle: pim, ifindex, nexthop: ANY }.into();
        Input::Line { conn: 1, line: Ok(RequestFrame { id, request }) }
    };
    h.d.handle(h.now, take(100, 7));
    assert_eq!(h.d.take_for_kernel(), vec![ToKernel::LookUpLink(7)]);
    h.d.handle(h.now, take(101, 8));
    assert!(h.d.take_for_kernel().is_empty(), "one question at a time per connection");
    assert!(h.lines(1).is_empty(), "nothing is answered before the kernel is");
    let dev =
        NetDev { name: "new0".into(), ifindex: 7, mac: [2, 0, 0, 0, 0, 7], mtu: 1500, up: true };
    h.d.handle(h.now, Input::LinkLookedUp { ifindex: 7, dev: Some(dev) });
    // 100 took the new link; 101 names another unknown one: asked in turn.
    assert_eq!(h.d.take_for_kernel(), vec![ToKernel::LookUpLink(8)]);
    h.d.handle(h.now, Input::LinkLookedUp { ifindex: 8, dev: None });
    let lines = h.lines(1);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].contains(r#""id":100,"result""#), "{lines:?}");
    assert!(lines[1].contains(r#""id":101,"error""#) && lines[1].contains("invalid_parameter"));
    assert!(h.d.links.is_managed(7));
    assert_eq!(h.ok(1, proto::GetProtocolOnInterface { ifindex: 7, nexthop: ANY }).protocol, 103);
}

/// An MFE has one wire shape: `show` lists an MGM entry exactly as `get_mfe` with `stats`
/// gives it, and a static one in the same shape, marked static, with no upstream or times.
#[test]
fn show_lists_mfes_in_get_mfes_shape() {
    let mut h = Harness::new();
    h.connect(1);
    h.pim_with_mfe(&[2, 3]);
    let (source, group) = (KEY.source, KEY.group);
    let got = h.ok(1, proto::GetMfe { source, group, max_entries: 1, stats: true });
    let show = h.ok(1, proto::Show::default());
    assert_eq!(show.mfes, vec![got.clone()]);
    assert_eq!(got.origin, proto::Origin::Mgm);
    assert_eq!(got.oif_indexes(), [2, 3]);
    let line = serde_json::to_value(&show.mfes[0]).unwrap();
    assert_eq!(line["iif"], serde_json::json!({"ifindex": 1, "nexthop": "0.0.0.0"}));
    let spec = StaticMfe {
        source: "10.9.9.9".parse().unwrap(),
        group: G.parse().unwrap(),
        iif: "in".into(),
        oifs: vec!["a".into()],
    };
    h.ok(1, spec);
    let show = h.ok(1, proto::Show::default());
    let s = show.mfes.iter().find(|m| m.mfe.source == "10.9.9.9".parse::<IpAddr>().unwrap());
    let s = s.expect("the static MFE is listed");
    assert_eq!((s.origin, s.oif_indexes(), s.mfe.iif.ifindex), (proto::Origin::Static, vec![2], 1));
    assert!(s.mfe.upstream.is_unspecified() && s.mfe.timeout_secs == 0 && s.stats.is_some());
}
