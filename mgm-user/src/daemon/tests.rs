// SPDX-License-Identifier: MIT OR Apache-2.0
//! The router against the in-memory fast path: request handling, handle isolation, reply and
//! event ordering, and what a dropped connection leaves behind.

use serde_json::Value;

use super::*;
use crate::{fastpath::MemFastPath, proto::parse_request};

struct Harness {
    r: Router<MemFastPath>,
    outs: BTreeMap<ConnId, crate::server::OutboundRx>,
    next_id: u64,
    bytes: usize,
}

impl Harness {
    fn new() -> Self {
        Self::with_capacity(64, 16 << 10)
    }

    /// A router whose fast path holds `mfes` entries and whose connections queue `bytes`.
    fn with_capacity(mfes: u32, bytes: usize) -> Self {
        let mut r = Router::new(MemFastPath::with_capacity(mfes), Config::default());
        for (name, ifindex) in [("in", 1), ("o1", 2), ("o2", 3)] {
            r.manage(NetDev {
                name: name.into(),
                ifindex,
                mac: [2, 0, 0, 0, 0, ifindex as u8],
                mtu: 1500,
            })
            .unwrap();
        }
        Self { r, outs: BTreeMap::new(), next_id: 1, bytes }
    }

    fn connect(&mut self, conn: ConnId) {
        let (tx, rx) = Outbound::channel(self.bytes);
        self.r.on_cmd(Cmd::Connected { conn, tx, peer: None });
        self.outs.insert(conn, rx);
    }

    /// Sends a request line; returns every line the connection got back, in order.
    fn call(&mut self, conn: ConnId, mut req: Value) -> Vec<Value> {
        req["id"] = json!(self.next_id);
        self.next_id += 1;
        let line = parse_request(&req.to_string());
        self.r.on_cmd(Cmd::Line { conn, line });
        self.drain(conn)
    }

    fn drain(&mut self, conn: ConnId) -> Vec<Value> {
        let rx = self.outs.get_mut(&conn).unwrap();
        let mut out = Vec::new();
        while let Some(l) = rx.try_recv() {
            out.push(serde_json::from_str(&l).unwrap());
        }
        out
    }

    /// The reply among the lines a call produced (events may precede it).
    fn reply(&mut self, conn: ConnId, req: Value) -> Value {
        let lines = self.call(conn, req.clone());
        let replies: Vec<&Value> = lines.iter().filter(|l| l.get("id").is_some()).collect();
        assert_eq!(replies.len(), 1, "{req} -> {lines:?}");
        replies[0].clone()
    }

    fn ok(&mut self, conn: ConnId, req: Value) -> Value {
        let r = self.reply(conn, req.clone());
        assert!(r.get("result").is_some(), "{req} -> {r}");
        r["result"].clone()
    }

    fn err(&mut self, conn: ConnId, req: Value) -> String {
        let r = self.reply(conn, req.clone());
        r["error"]["code"].as_str().unwrap_or_else(|| panic!("{req} -> {r}")).into()
    }

    /// On connection 1: PIM owns ifindexes 1..=3 with (*,239.1.1.1) on `members`, and
    /// (10.0.0.1, 239.1.1.1) arrived on 1. Nobody answers the RPF and creation alert, so the
    /// MFE is created with the defaults once their deadlines pass.
    fn pim_with_mfe(&mut self, members: &[u32]) -> u64 {
        let pim = self.register(1, 103);
        for i in 1..=3 {
            self.ok(1, json!({"method": "take_interface", "handle": pim, "ifindex": i}));
        }
        for i in members {
            self.ok(1, json!({"method": "add_membership", "handle": pim, "group": "239.1.1.1", "ifindex": i}));
        }
        self.r.new_packet("10.0.0.1".parse().unwrap(), "239.1.1.1".parse().unwrap(), 1, b"");
        let events = self.drain(1);
        assert_eq!(events[0]["event"], "rpf", "{events:?}");
        for secs in [3600, 7200] {
            self.r.manager.tick(Duration::from_secs(secs));
            self.r.queue_effects();
        }
        self.drain(1);
        pim
    }

    fn register(&mut self, conn: ConnId, protocol: u32) -> u64 {
        self.ok(conn, json!({"method": "register", "protocol": protocol, "component": 1}))["handle"]
            .as_u64()
            .unwrap()
    }
}

#[test]
fn handles_work_only_on_the_connection_that_registered_them() {
    let mut h = Harness::new();
    h.connect(1);
    h.connect(2);
    let pim = h.register(1, 103);
    let take = json!({"method": "take_interface", "handle": pim, "ifindex": 2});
    assert_eq!(h.err(2, take.clone()), "invalid_parameter");
    assert_eq!(h.err(2, json!({"method": "deregister", "handle": pim})), "invalid_parameter");
    h.ok(1, take);
    let owner = h.ok(2, json!({"method": "get_protocol_on_interface", "ifindex": 2}));
    assert_eq!(owner, json!({"protocol": 103, "component": 1}));
}

#[test]
fn a_closed_connection_releases_what_its_clients_owned_and_frees_the_fast_path() {
    let mut h = Harness::new();
    h.connect(1);
    h.pim_with_mfe(&[2]);
    assert_eq!(h.r.mirror.fast_path().mfes.len(), 1, "created with the defaults");
    h.r.on_cmd(Cmd::Disconnected { conn: 1 });
    assert!(h.r.mirror.fast_path().mfes.is_empty(), "its MFE went with its IIF");
    assert!(h.r.manager.clients().is_empty());
    assert!(h.r.manager.owners().is_empty());
}

#[test]
fn the_reply_comes_before_the_events_it_causes() {
    let mut h = Harness::new();
    h.connect(1);
    let pim = h.register(1, 103);
    let igmp = h.register(1, crate::manager::PROTO_IP_IGMP);
    h.ok(1, json!({"method": "take_interface", "handle": igmp, "ifindex": 2}));
    let lines = h.call(1, json!({"method": "take_interface", "handle": pim, "ifindex": 2}));
    assert!(lines[0].get("result").is_some());
    assert_eq!(lines[1]["event"], "disable_igmp");
    assert_eq!(lines[1]["handle"], json!(igmp));
    assert_eq!(lines[2]["event"], "enable_igmp");
}

#[test]
fn static_mfes_are_not_overridden_by_mgm_entries() {
    let mut h = Harness::new();
    h.connect(1);
    h.ok(1, json!({"method": "add_mfe", "source": "10.0.0.1", "group": "239.1.1.1", "iif": "in", "oifs": ["o1"]}));
    let pim = h.register(1, 103);
    h.ok(1, json!({"method": "take_interface", "handle": pim, "ifindex": 1}));
    h.ok(1, json!({"method": "take_interface", "handle": pim, "ifindex": 3}));
    h.ok(1, json!({"method": "add_membership", "handle": pim, "group": "239.1.1.1", "ifindex": 3}));
    h.r.new_packet("10.0.0.1".parse().unwrap(), "239.1.1.1".parse().unwrap(), 1, b"");
    let key = MfeKey::new([10, 0, 0, 1], [239, 1, 1, 1]);
    assert_eq!(h.r.mirror.get(&key).unwrap().oifs(), vec![2], "the static entry stands");
    let show = h.ok(1, json!({"method": "show"}));
    assert_eq!(show["mfes"][0]["origin"], "static");
    assert_eq!(show["protocols"].as_array().unwrap().len(), 1);
    assert_eq!(show["memberships"].as_array().unwrap().len(), 1);
}

#[test]
fn mgm_errors_reach_the_wire_with_their_codes() {
    let mut h = Harness::new();
    h.connect(1);
    h.connect(2);
    let a = h.register(1, 103);
    assert_eq!(
        h.err(1, json!({"method": "register", "protocol": 103, "component": 1})),
        "already_exists"
    );
    h.ok(1, json!({"method": "take_interface", "handle": a, "ifindex": 2}));
    let b = h.register(2, 104);
    assert_eq!(
        h.err(2, json!({"method": "take_interface", "handle": b, "ifindex": 2})),
        "already_exists"
    );
    assert_eq!(h.err(1, json!({"method": "deregister", "handle": a})), "can_not_complete");
    assert_eq!(
        h.err(1, json!({"method": "get_mfe", "source": "10.0.0.1", "group": "239.1.1.1"})),
        "not_found"
    );
    let lines = h.call(1, json!({"method": "get_first_mfe", "max_entries": 5}));
    assert_eq!(lines[0]["result"], json!({"status": "no_more_items", "entries": []}));
    let r = h.call(1, json!({"method": "release_interface", "handle": a, "ifindex": 3}));
    assert_eq!(r[0]["error"]["win32"], json!(87));
}

#[test]
fn a_client_that_does_not_read_is_disconnected_and_released() {
    let mut h = Harness::new();
    h.connect(1);
    let pim = h.register(1, 103);
    h.ok(1, json!({"method": "take_interface", "handle": pim, "ifindex": 2}));
    // Fill the 16 KiB queue without reading: 300 replies of ~60 bytes.
    for i in 0..300 {
        let line = parse_request(&json!({"id": 1, "method": "hello"}).to_string());
        h.r.on_cmd(Cmd::Line { conn: 1, line });
        if i == 100 {
            assert!(h.r.conns.contains_key(&1), "7 KiB queued is within the limit");
        }
    }
    assert!(h.r.manager.owners().is_empty(), "its interface was released");
    assert!(!h.r.conns.contains_key(&1));
}

#[test]
fn an_interface_removed_from_the_kernel_is_released_and_its_owner_told() {
    let mut h = Harness::new();
    h.connect(1);
    h.pim_with_mfe(&[2, 3]);
    let key = MfeKey::new([10, 0, 0, 1], [239, 1, 1, 1]);
    assert_eq!(h.r.mirror.get(&key).unwrap().oifs(), vec![2, 3]);
    h.drain(1);
    // Unplug ifindex 3.
    h.r.mirror.fast_path_mut().ports.get_mut(&3).unwrap().mac = [0xff; 6];
    h.r.check_links(Duration::from_secs(7201));
    let events = h.drain(1);
    assert!(
        events.iter().any(|e| e["event"] == "interface_gone" && e["iface"]["ifindex"] == 3),
        "{events:?}"
    );
    assert_eq!(h.r.mirror.get(&key).unwrap().oifs(), vec![2], "the MFE lost the interface");
    assert!(!h.r.mirror.fast_path().ports.contains_key(&3), "and so did the fast path");
    assert!(!h.r.interfaces.contains_key(&3));
    assert_eq!(h.err(1, json!({"method": "get_protocol_on_interface", "ifindex": 3})), "not_found");
}

#[test]
fn a_release_stops_copies_before_its_reply_and_the_rewrite_follows_in_the_background() {
    let n = 3 * WRITE_BATCH as u32;
    let mut h = Harness::with_capacity(n, 4096 * n as usize);
    h.connect(1);
    let pim = h.register(1, 103);
    for i in 1..=3 {
        h.ok(1, json!({"method": "take_interface", "handle": pim, "ifindex": i}));
    }
    for i in [2, 3] {
        h.ok(
            1,
            json!({"method": "add_membership", "handle": pim, "group": "239.1.1.1", "ifindex": i}),
        );
    }
    let keys: Vec<MfeKey> =
        (0..n).map(|s| MfeKey::new((0x0a00_0000 + s).to_be_bytes(), [239, 1, 1, 1])).collect();
    for k in &keys {
        h.r.new_packet(k.source.into(), k.group.into(), 1, b"");
    }
    // Nobody answers: RPF and creation alerts take their defaults.
    for secs in [3600, 7200] {
        h.r.manager.tick(Duration::from_secs(secs));
        h.r.queue_effects();
    }
    h.r.drain(usize::MAX);
    h.drain(1);
    assert_eq!(h.r.mirror.mfes().count(), n as usize);

    let status = h.call(1, json!({"method": "release_interface", "handle": pim, "ifindex": 2}));
    assert!(status[0].get("result").is_some(), "{status:?}");
    // At the reply: not every MFE has been rewritten, yet none sends a copy to 2 any more,
    // and every one still sends to 3.
    let s = h.r.status();
    assert!(s.pending_writes > 0, "the rewrite is in the background: {s:?}");
    assert_eq!(s.leases_released, 1);
    let fp = h.r.mirror.fast_path();
    assert!(keys.iter().all(|k| !fp.forwards(k, 2)), "a copy to the released interface");
    assert!(keys.iter().all(|k| fp.forwards(k, 3)), "a copy to 3 stopped");

    h.r.drain(usize::MAX);
    let s = h.r.status();
    assert_eq!((s.pending_writes, s.leases_released, s.oils), (0, 0, 1), "{s:?}");
    assert!(h.r.mirror.mfes().all(|(_, m)| m.oifs() == vec![3]));
}

#[test]
fn the_first_packets_of_a_flow_wait_for_its_mfe_within_bounds() {
    use mgm_common::{UPCALL_F_EVENT, UPCALL_F_QUEUED, UPCALL_NO_MFE, Upcall};
    let mut h = Harness::new();
    h.connect(1);
    let pim = h.register(1, 103);
    for i in 1..=3 {
        h.ok(1, json!({"method": "take_interface", "handle": pim, "ifindex": i}));
    }
    h.ok(1, json!({"method": "add_membership", "handle": pim, "group": "239.1.1.1", "ifindex": 2}));
    let upcall = |source: [u8; 4], first: bool| Upcall {
        source,
        group: [239, 1, 1, 1],
        ifindex: 1,
        kind: UPCALL_NO_MFE,
        flags: UPCALL_F_QUEUED | if first { UPCALL_F_EVENT } else { 0 },
        frame_len: 1,
    };
    for i in 0..6u8 {
        h.r.upcall(&upcall([10, 0, 0, 1], i == 0), &[i]);
    }
    // Nobody owns the interface of this one: the kernel had its packet, mgm keeps nothing.
    h.r.upcall(&Upcall { ifindex: 9, ..upcall([10, 0, 0, 2], true) }, &[7]);
    let s = h.r.status();
    assert_eq!((s.unresolved, s.replay_dropped), (1, 2), "4 kept, 2 over the bound: {s:?}");
    assert!(h.r.mirror.fast_path().replayed.is_empty(), "no MFE yet");
    for secs in [3600, 7200] {
        h.r.manager.tick(Duration::from_secs(secs));
        h.r.queue_effects();
    }
    let replayed: Vec<(u32, Vec<u8>)> = (0..4).map(|i| (1, vec![i])).collect();
    assert_eq!(h.r.mirror.fast_path().replayed, replayed, "in order, once the MFE is in");
    assert_eq!((h.r.status().unresolved, h.r.status().replayed), (0, 4));
    // A straggler that missed the new MFE goes straight through.
    h.r.upcall(&upcall([10, 0, 0, 1], false), &[9]);
    assert_eq!(h.r.mirror.fast_path().replayed.last(), Some(&(1, vec![9])));
}

#[test]
fn a_failed_fast_path_write_is_retried_from_the_core_state() {
    let mut h = Harness::new();
    h.connect(1);
    h.r.mirror.fast_path_mut().fail_mfe_writes = true;
    h.pim_with_mfe(&[2]);
    let key = MfeKey::new([10, 0, 0, 1], [239, 1, 1, 1]);
    assert!(h.r.mirror.get(&key).is_none(), "the write failed");
    let s = h.r.status();
    assert_eq!((s.mfes, s.retrying), (1, 1), "{s:?}");
    assert!(s.write_failures >= 1);
    // Still failing: it stays in the retry set.
    h.r.retry_failed_writes();
    h.r.drain(usize::MAX);
    assert_eq!(h.r.status().retrying, 1);
    // The table has room again: the next retry installs what the core has.
    h.r.mirror.fast_path_mut().fail_mfe_writes = false;
    h.r.retry_failed_writes();
    h.r.drain(usize::MAX);
    assert_eq!(h.r.mirror.get(&key).unwrap().oifs(), vec![2]);
    assert_eq!(h.r.status().retrying, 0);
    assert!(h.r.mirror.fast_path().forwards(&key, 2), "with a live lease");
}
