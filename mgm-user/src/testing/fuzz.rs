// SPDX-License-Identifier: MIT OR Apache-2.0
//! The bodies of the fuzz targets (`mgm-user/fuzz`, run by `cargo xtask fuzz`), here so the
//! normal test suite runs them too (on the committed seeds and on random input). Each one
//! panics exactly when it finds a bug.

use std::{collections::BTreeMap, time::Duration};

use serde_json::Value;

use super::MemFastPath;
use crate::{
    daemon::{Daemon, Input},
    dataplane::upcall::{Kind, Upcall},
    kernel::{KernelEvent, Neighbours, NetDev},
    manager::{Settings, Sg},
    proto::is_event,
    proto::parse_request,
    server::{ConnId, Outbound, OutboundRx},
};

/// The wire decoder: every line of `data` is either a request that survives a round trip
/// through its own serialisation, or an error reply that names no other request's id.
pub fn decode(data: &[u8]) {
    for line in data.split(|b| *b == b'\n') {
        let text = String::from_utf8_lossy(line);
        match parse_request(&text) {
            Ok(frame) => {
                let again = serde_json::to_string(&frame).expect("requests serialize");
                assert_eq!(parse_request(&again).ok().as_ref(), Some(&frame), "{again}");
            }
            Err(rejected) => {
                let id = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v.get("id").and_then(Value::as_u64));
                assert!(rejected.id.is_none() || rejected.id == id, "{rejected:?} for {text}");
            }
        }
    }
}

/// A daemon on the in-memory fast path whose kernel has interfaces 1 ("in"), 2 ("a") and 3
/// ("b"), all managed.
pub fn daemon(capacity: u32) -> Daemon<MemFastPath> {
    let mut d = Daemon::new(MemFastPath::with_capacity(capacity), Settings::default());
    let links = ["in", "a", "b"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let ifindex = i as u32 + 1;
            let mac = [2, 0, 0, 0, 0, ifindex as u8];
            NetDev { name: (*name).into(), ifindex, mac, mtu: 1500, up: true }
        })
        .collect::<Vec<_>>();
    let snapshot = KernelEvent::Snapshot { links: links.clone(), neighbours: Neighbours::new() };
    d.handle(Duration::ZERO, Input::Kernel(snapshot));
    for dev in links {
        d.manage(dev).expect("in-memory ports");
    }
    d
}

/// The dispatcher against a live core (in-memory fast path): the lines of `data` are requests
/// from three connections (the first byte of a line picks one), with upcalls, kernel events
/// and time passing mixed in. Each request gets exactly one reply, in order, on its own
/// connection; nothing panics; the core and the fast-path mirror stay consistent (checked on
/// every write by `MemFastPath`).
pub fn dispatch(data: &[u8]) {
    let mut d = daemon(256);
    let mut now = Duration::ZERO;
    let mut outs: BTreeMap<ConnId, OutboundRx> = BTreeMap::new();
    for conn in 1..=3 {
        // Big enough that the policy for slow readers never kicks in here.
        let (tx, rx) = Outbound::channel(usize::MAX / 2);
        d.handle(now, Input::Connected { conn, tx, peer: None });
        outs.insert(conn, rx);
    }
    let mut next_id = 1u64;
    let mut expected: BTreeMap<ConnId, Vec<Option<u64>>> = BTreeMap::new();
    for line in data.split(|b| *b == b'\n') {
        let Some((&sel, rest)) = line.split_first() else { continue };
        let arg = rest.first().copied().unwrap_or(1);
        match sel % 8 {
            // An upcall: a packet without MFE for one of a few (S,G)s.
            5 => {
                let upcall = Upcall {
                    kind: Kind::NoMfe,
                    sg: Sg::v4([10, 0, 0, arg % 4], [239, 1, 1, 1]),
                    ifindex: 1 + u32::from(arg % 3),
                    event: true,
                    queued: true,
                    frame: rest.to_vec(),
                };
                d.handle(now, Input::Upcall(upcall));
            }
            // Time passes (callback deadlines, expiry, the hold): up to a few minutes, or a
            // century at once.
            6 => {
                let step = match arg {
                    255 => Duration::from_secs(100 * 365 * 86_400),
                    _ => Duration::from_millis(u64::from(arg) * u64::from(arg) * 10),
                };
                now = now.saturating_add(step);
                d.handle(now, Input::Tick);
                // And a step of background work (releases under way, writes, expiry).
                if d.has_background_work(now) {
                    d.background(now);
                }
            }
            // The kernel: an interface goes or changes its MTU.
            7 => {
                let ifindex = 1 + u32::from(arg % 4);
                let ev = if arg & 0x80 != 0 {
                    KernelEvent::LinkGone(ifindex)
                } else {
                    let mac = [2, 0, 0, 0, 0, ifindex as u8];
                    let mtu = 576 + u16::from(arg);
                    let up = arg & 0x40 == 0;
                    KernelEvent::Link(NetDev {
                        name: format!("if{ifindex}"),
                        ifindex,
                        mac,
                        mtu,
                        up,
                    })
                };
                d.handle(now, Input::Kernel(ev));
            }
            _ => {
                let conn = ConnId::from(sel % 3 + 1);
                let text = String::from_utf8_lossy(rest);
                // Ids are made unique so replies can be matched to requests.
                let (line, id) = match serde_json::from_str::<Value>(&text) {
                    Ok(mut v) if v.is_object() && v.get("id").is_some() => {
                        v["id"] = Value::from(next_id);
                        next_id += 1;
                        let id = v["id"].as_u64();
                        (parse_request(&v.to_string()), id)
                    }
                    _ => (parse_request(&text), None),
                };
                let id = match &line {
                    Ok(f) => Some(f.id),
                    Err(r) => r.id.or(id),
                };
                expected.entry(conn).or_default().push(id);
                d.handle(now, Input::Line { conn, line });
                d.answer_lookups(now);
            }
        }
    }
    // Releases under way are answered once their steps are done.
    while d.has_background_work(now) {
        d.background(now);
    }
    for (conn, rx) in &mut outs {
        let mut replies = Vec::new();
        while let Some(l) = rx.try_recv() {
            if !is_event(&l) {
                let v: Value = serde_json::from_str(&l).expect("mgmd writes JSON");
                replies.push(v.get("id").and_then(Value::as_u64));
            }
        }
        let want = expected.remove(conn).unwrap_or_default();
        assert_eq!(replies, want, "connection {conn}: replies out of order or missing");
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The committed seeds (mgm-user/fuzz/seeds), through both targets.
    #[test]
    fn the_seed_corpus_passes() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds");
        let mut n = 0;
        for e in std::fs::read_dir(dir).expect("seed corpus") {
            let data = std::fs::read(e.unwrap().path()).unwrap();
            decode(&data);
            dispatch(&data);
            n += 1;
        }
        assert!(n >= 5, "only {n} seeds");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Any byte stream: requests or error replies, never a panic.
        #[test]
        fn any_bytes_decode_or_fail_cleanly(data in prop::collection::vec(any::<u8>(), 0..2048)) {
            decode(&data);
            dispatch(&data);
        }

        /// Lines that look like requests (known methods, odd parameters) reach deeper.
        #[test]
        fn request_shaped_lines_dispatch_cleanly(
            lines in prop::collection::vec((0u8..8, request_line()), 0..40)
        ) {
            let mut data = Vec::new();
            for (sel, l) in lines {
                data.push(sel);
                data.extend(l.bytes());
                data.push(b'\n');
            }
            dispatch(&data);
        }
    }

    fn request_line() -> impl Strategy<Value = String> {
        let names: Vec<String> = crate::proto::MethodName::ALL
            .iter()
            .map(|m| serde_json::to_value(m).unwrap().as_str().unwrap().to_owned())
            .collect();
        let method = prop::sample::select(names);
        let value = prop_oneof![
            Just("1".to_owned()),
            Just("2".to_owned()),
            Just("\"239.1.1.1\"".to_owned()),
            Just("\"0.0.0.0\"".to_owned()),
            Just("\"10.0.0.1\"".to_owned()),
            Just("3".to_owned()),
            Just("null".to_owned()),
            Just("[]".to_owned()),
            Just("-1".to_owned()),
            // Every numeric parameter at its extremes.
            Just("0".to_owned()),
            Just(u64::MAX.to_string()),
            Just((u64::MAX - 30).to_string()),
            Just(u32::MAX.to_string()),
            Just((u64::from(u32::MAX) + 1).to_string()),
            Just(i64::MIN.to_string()),
            Just("1e300".to_owned()),
        ];
        let key = prop::sample::select(vec![
            "handle",
            "protocol",
            "component",
            "ifindex",
            "nexthop",
            "group",
            "source",
            "source_mask",
            "group_mask",
            "flags",
            "request",
            "max_entries",
            "iif",
            "enum_type",
            "enum_handle",
            "timeout_secs",
            "stats",
            "disabled",
        ]);
        (method, prop::collection::vec((key, value), 0..5)).prop_map(|(m, kv)| {
            let mut s = format!("{{\"id\":1,\"method\":\"{m}\"");
            for (k, v) in kv {
                s.push_str(&format!(",\"{k}\":{v}"));
            }
            s.push('}');
            s
        })
    }
}
