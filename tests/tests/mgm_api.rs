// SPDX-License-Identifier: MIT OR Apache-2.0
//! The MGM API end to end: several clients on their own connections to a real mgmd, real UDP
//! traffic creating an MFE through the RPF and creation-alert callbacks, and the fast path
//! checked after every step (including release and a client that disappears). Needs root.

use std::{net::UdpSocket, time::Duration};

use mgm::proto::{self, ErrorCode, MfeReply, OifStatsReply};
use mgm_tests::{Family, GROUP, Mgmd, Topology, request_id};
use serde_json::{Value, json};

const S: &str = "10.1.0.1";
const G: &str = "239.1.1.1";
/// How soon mgmd follows a change in the kernel (links, MTUs, neighbours).
const REACT: Duration = Duration::from_millis(100);
const WAIT: Duration = Duration::from_secs(5);

/// Sends `n` datagrams tagged `tag`, returns how many each receiver got.
fn burst(tx: &UdpSocket, rx: &[UdpSocket], tag: &str, n: u32) -> Vec<usize> {
    // The sender's family says the group's.
    let family = if tx.local_addr().unwrap().is_ipv4() { Family::V4 } else { Family::V6 };
    for i in 0..n {
        tx.send_to(format!("{tag}-{i}").as_bytes(), (family.group(), 5000)).unwrap();
    }
    rx.iter()
        .map(|s| {
            let mut got = 0;
            let mut buf = [0u8; 512];
            while let Ok(len) = s.recv(&mut buf) {
                if buf[..len].starts_with(tag.as_bytes()) {
                    got += 1;
                }
            }
            got
        })
        .collect()
}

/// GetMfe (S, G), with or without counters.
fn get_mfe(stats: bool) -> proto::GetMfe {
    proto::GetMfe { source: S.parse().unwrap(), group: G.parse().unwrap(), max_entries: 1, stats }
}

fn on(ifindex: u32) -> proto::GetProtocolOnInterface {
    proto::GetProtocolOnInterface { ifindex, nexthop: std::net::Ipv4Addr::UNSPECIFIED.into() }
}

fn oifs(m: &MfeReply) -> Vec<u32> {
    m.mfe.oifs.iter().map(|o| o.ifindex).collect()
}

#[test]
fn clients_drive_forwarding_through_the_socket_from_creation_to_release() {
    let mut t = Topology::new(3).unwrap();
    t.add_addresses().unwrap();
    // No --iface: taking ownership is what makes mgm manage an interface.
    t.mgmd = Some(Mgmd::start(&t.router, &[]).unwrap());
    let idx = |n: &str| t.router.ifindex(n).unwrap();
    let (rin, r1, r2, r3) = (idx("rin"), idx("r1"), idx("r2"), idx("r3"));
    let mut pim = t.ctl().unwrap();
    let mut igmp = t.ctl().unwrap();
    let mut rival = t.ctl().unwrap();
    let hp = pim.register(103).unwrap();
    let hi = igmp.register(10).unwrap();
    let hr = rival.register(104).unwrap();

    // IGMP is on r2 first; PIM taking r2 makes IGMP stop and restart there.
    igmp.take(hi, r2).unwrap();
    for i in [rin, r1, r2, r3] {
        pim.take(hp, i).unwrap();
    }
    let (ev, _) = igmp.wait_event("disable_igmp", WAIT).unwrap();
    assert_eq!(ev["iface"]["ifindex"], json!(r2));
    igmp.wait_event("enable_igmp", WAIT).unwrap();

    // Contention and isolation.
    let nexthop = std::net::Ipv4Addr::UNSPECIFIED.into();
    let take = proto::TakeInterface { handle: hr, ifindex: r1, nexthop };
    assert_eq!(rival.call_err(take).unwrap(), ErrorCode::AlreadyExists);
    let release = proto::ReleaseInterface { handle: hp, ifindex: r1, nexthop };
    assert_eq!(
        igmp.call_err(release).unwrap(),
        ErrorCode::InvalidParameter,
        "PIM's handle is not usable from IGMP's connection"
    );
    let owner = rival.call(on(r2)).unwrap();
    assert_eq!((owner.protocol, owner.component), (103, 1));

    // Receivers: PIM joins on r1, IGMP reports on r2 (a local join for PIM); r3 has nobody.
    pim.join(hp, G, r1).unwrap();
    let (ev, _) = rival.wait_event("join_alert", WAIT).unwrap();
    assert_eq!(ev["entry"]["group"], json!(G));
    igmp.join(hi, G, r2).unwrap();
    let (ev, _) = pim.wait_event("local_join", WAIT).unwrap();
    assert_eq!(ev["iface"]["ifindex"], json!(r2));

    let rx: Vec<UdpSocket> = (0..3).map(|i| t.udp_receiver(i, GROUP, 5000).unwrap()).collect();
    let tx = t.udp_sender(8).unwrap();

    // The first packet has no MFE: the upcall reaches the core, which asks PIM (owner of rin).
    tx.send_to(b"first", (G, 5000)).unwrap();
    let (rpf, _) = pim.wait_event("rpf", WAIT).unwrap();
    assert_eq!((rpf["source"].clone(), rpf["iif"]["ifindex"].clone()), (json!(S), json!(rin)));
    assert_eq!(rpf["header"].as_array().unwrap().len(), 28, "IP header + 8 bytes of data");
    let request = request_id(&rpf).unwrap();
    let (nexthop, upstream) = (std::net::Ipv4Addr::UNSPECIFIED, std::net::Ipv4Addr::UNSPECIFIED);
    pim.call(proto::AnswerRpf {
        handle: hp,
        request,
        ifindex: rin,
        nexthop: Some(nexthop.into()),
        upstream: Some(upstream.into()),
    })
    .unwrap();
    let (alert, _) = pim.wait_event("creation_alert", WAIT).unwrap();
    let mut offered: Vec<u64> = alert["oifs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["iface"]["ifindex"].as_u64().unwrap())
        .collect();
    offered.sort();
    assert_eq!(offered, vec![u64::from(r1), u64::from(r2)]);
    let request = request_id(&alert).unwrap();
    pim.call(proto::AnswerCreation { handle: hp, request, disabled: vec![] }).unwrap();
    assert_eq!(pim.call(get_mfe(false)).unwrap().mfe.iif.ifindex, rin);

    assert_eq!(burst(&tx, &rx, "created", 20), vec![20, 20, 0], "r1 (PIM) and r2 (IGMP), not r3");
    let stats = pim.call(get_mfe(true)).unwrap().stats.expect("stats asked for");
    assert!(stats.in_packets >= 20, "{stats:?}");

    // Release r1: from the reply on, nothing more reaches r1; r2 keeps receiving.
    pim.release(hp, r1).unwrap();
    assert_eq!(burst(&tx, &rx, "released", 20), vec![0, 20, 0]);
    assert_eq!(oifs(&igmp.call(get_mfe(false)).unwrap()), vec![r2]);

    // PIM's connection dies: everything it owned is released, its MFE (IIF rin) goes.
    drop(pim);
    let (ev, _) = igmp.wait_event("mfe_deleted", WAIT).unwrap();
    assert_eq!((ev["group"].clone(), ev["reason"].clone()), (json!(G), json!("released")));
    assert_eq!(igmp.call_err(get_mfe(false)).unwrap(), ErrorCode::NotFound);
    assert_eq!(rival.call_err(on(rin)).unwrap(), ErrorCode::NotFound);
    let owner = rival.call(on(r2)).unwrap();
    assert_eq!((owner.protocol, owner.component), (10, 1), "IGMP still holds r2");
    assert_eq!(burst(&tx, &rx, "gone", 10), vec![0, 0, 0]);
    assert_eq!(rival.show().unwrap().protocols.len(), 2, "PIM deregistered");
}

#[test]
fn a_client_that_never_answers_still_gets_its_mfe_after_the_timeout() {
    let mut t = Topology::new(1).unwrap();
    t.add_addresses().unwrap();
    t.mgmd = Some(Mgmd::start(&t.router, &[]).unwrap());
    let (rin, r1) = (t.router.ifindex("rin").unwrap(), t.router.ifindex("r1").unwrap());
    let mut pim = t.ctl().unwrap();
    pim.protocol_with(103, &[rin, r1], &[r1], G).unwrap();
    let rx = vec![t.udp_receiver(0, GROUP, 5000).unwrap()];
    let tx = t.udp_sender(8).unwrap();
    tx.send_to(b"first", (G, 5000)).unwrap();
    pim.wait_event("rpf", WAIT).unwrap(); // ignored
    pim.wait_event("creation_alert", WAIT).unwrap(); // after the 2 s RPF timeout; ignored
    let deadline = std::time::Instant::now() + WAIT;
    while pim.call(get_mfe(false)).is_err() {
        assert!(std::time::Instant::now() < deadline, "MFE not created after the timeouts");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(burst(&tx, &rx, "defaults", 10), vec![10]);
}

/// `mgmctl session`: every MGM function as a command line, on one connection.
#[test]
fn mgmctl_session_runs_mgm_functions_as_commands() {
    use std::io::Write as _;
    let mut t = Topology::new(1).unwrap();
    t.mgmd = Some(Mgmd::start(&t.router, &[]).unwrap());
    let (rin, r1) = (t.router.ifindex("rin").unwrap(), t.router.ifindex("r1").unwrap());
    let script = format!(
        "register 103 1\n\
         take-interface 2 {rin}\n\
         take-interface 2 {r1}\n\
         add-membership 2 239.1.1.1 {r1}\n\
         protocol-on {r1}\n\
         enum-start 2 all-sources\n\
         enum-next 2 3 10\n\
         enum-end 2 3\n\
         deregister 2\n\
         delete-membership 2 239.1.1.1 {r1}\n\
         release-interface 2 {r1}\n\
         release-interface 2 {rin}\n\
         get-first-mfe 5\n\
         deregister 2\n\
         bogus-command 1\n"
    );
    let mut child = std::process::Command::new(mgm_tests::bin("mgmctl"))
        .arg("--socket")
        .arg(&t.mgmd.as_ref().unwrap().socket)
        .arg("session")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let replies: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &Value| v.get("id").is_some())
        .collect();
    let r = |i: usize| replies[i].clone();
    assert_eq!(r(0)["result"], json!({"handle": 2}));
    assert_eq!(r(4)["result"], json!({"protocol": 103, "component": 1}));
    assert_eq!(r(5)["result"], json!({"enum_handle": 3}));
    assert_eq!(r(6)["result"]["status"], json!("no_more_items"));
    assert_eq!(r(6)["result"]["entries"][0]["group"], json!(G));
    assert_eq!(r(8)["error"]["code"], json!("can_not_complete"), "still owns interfaces");
    assert_eq!(r(12)["result"], json!({"status": "no_more_items", "entries": []}));
    assert!(r(13).get("result").is_some(), "deregistered once everything was released");
    assert_eq!(replies.len(), 14, "{replies:?}");
    assert!(!out.status.success(), "the bogus line fails the script");
    assert!(String::from_utf8_lossy(&out.stderr).contains("bogus-command"));
}

/// A veth deleted while owned: its owner hears of it, the interface leaves every MFE, and
/// forwarding to the others goes on.
#[test]
fn a_deleted_interface_is_released_and_its_owner_told() {
    let mut t = Topology::new(2).unwrap();
    t.add_addresses().unwrap();
    t.mgmd = Some(Mgmd::start(&t.router, &[]).unwrap());
    let idx = |n: &str| t.router.ifindex(n).unwrap();
    let (rin, r1, r2) = (idx("rin"), idx("r1"), idx("r2"));
    let mut pim = t.ctl().unwrap();
    let h = pim.protocol_with(103, &[rin, r1, r2], &[r1, r2], G).unwrap();
    let rx: Vec<UdpSocket> = (0..2).map(|i| t.udp_receiver(i, GROUP, 5000).unwrap()).collect();
    let tx = t.udp_sender(8).unwrap();
    tx.send_to(b"first", (G, 5000)).unwrap();
    pim.answer_creation(h, WAIT).unwrap();
    assert_eq!(burst(&tx, &rx, "before", 10), vec![10, 10]);

    // mgmd hears of it from the kernel's link notifications, not by polling: its owner is
    // told within 100 ms.
    t.router.exec("ip", &["link", "del", "r2"]).unwrap();
    let (ev, _) = pim.wait_event("interface_gone", REACT).unwrap();
    assert_eq!(ev["iface"]["ifindex"], json!(r2));
    assert_eq!(oifs(&pim.call(get_mfe(false)).unwrap()), vec![r1]);
    assert_eq!(pim.call_err(on(r2)).unwrap(), ErrorCode::NotFound);
    assert_eq!(burst(&tx, &rx[..1], "after", 10), vec![10], "r1 still gets the flow");

    // r2 comes back (same name, new ifindex): nothing of the old one applies to it.
    mgm_tests::veth(&t.router, "r2", &t.receivers[1], "eth1").unwrap();
    let r2b = idx("r2");
    assert_ne!(r2b, r2);
    assert_eq!(pim.call_err(on(r2b)).unwrap(), ErrorCode::NotFound);
    let listed: Vec<u32> = pim.show().unwrap().interfaces.iter().map(|i| i.ifindex).collect();
    assert!(!listed.contains(&r2), "the old ifindex is gone: {listed:?}");
    assert!(!listed.contains(&r2b), "the new one is not managed until taken");
    // Taking it starts from nothing; a membership there puts it in the MFE's list again.
    pim.take(h, r2b).unwrap();
    pim.join(h, G, r2b).unwrap();
    assert_eq!(oifs(&pim.call(get_mfe(false)).unwrap()), vec![r1, r2b]);
}

#[test]
fn stats_count_each_outgoing_interface_and_mtu_drops() {
    let mut t = Topology::new(2).unwrap();
    t.add_addresses().unwrap();
    t.mgmd = Some(Mgmd::start(&t.router, &[]).unwrap());
    let idx = |n: &str| t.router.ifindex(n).unwrap();
    let (r1, r2) = (idx("r1"), idx("r2"));
    let mut pim = t.ctl().unwrap();
    pim.protocol_with(103, &[idx("rin"), r1, r2], &[r1, r2], G).unwrap();
    let rx: Vec<UdpSocket> = (0..2).map(|i| t.udp_receiver(i, GROUP, 5000).unwrap()).collect();
    let tx = t.udp_sender(8).unwrap();
    tx.send_to(b"first", (G, 5000)).unwrap();
    // Unanswered callbacks: the MFE comes with the defaults; "first" was held for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    while pim.call(get_mfe(false)).is_err() {
        assert!(std::time::Instant::now() < deadline, "no MFE");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(burst(&tx, &rx, "small", 10), vec![10, 10]);
    let oif_stats = |pim: &mut mgm_tests::Ctl| -> Vec<OifStatsReply> {
        pim.call(get_mfe(true)).unwrap().stats.expect("stats asked for").oifs
    };
    let o = oif_stats(&mut pim);
    let ifs: Vec<u32> = o.iter().map(|x| x.ifindex).collect();
    assert_eq!(ifs, vec![r1, r2]);
    // The held first packet too, where the kernel lets mgmd forward it (live frames).
    let replayed = pim.status().unwrap().replayed;
    for x in &o {
        assert_eq!(x.out_packets, 10 + replayed, "10, and {replayed} held: {x:?}");
        assert_eq!(x.frag_needed, 0);
    }

    // r2's MTU shrinks under 1,228-byte packets: mgmd follows at once, and the copies to r2
    // are dropped and counted instead of vanishing in the driver.
    t.router.exec("ip", &["link", "set", "r2", "mtu", "1000"]).unwrap();
    std::thread::sleep(REACT);
    let big = "big-".to_owned() + &"x".repeat(1196);
    for _ in 0..5 {
        tx.send_to(big.as_bytes(), (G, 5000)).unwrap();
    }
    let got: Vec<usize> = rx
        .iter()
        .map(|s| {
            let mut buf = [0u8; 2048];
            std::iter::from_fn(|| s.recv(&mut buf).ok()).filter(|n| *n == 1200).count()
        })
        .collect();
    assert_eq!(got, vec![5, 0]);
    let o = oif_stats(&mut pim);
    assert_eq!((o[0].out_packets, o[0].frag_needed), (15 + replayed, 0));
    assert_eq!((o[1].out_packets, o[1].frag_needed), (10 + replayed, 5));
}

/// mgmd forwards the held first packets of a new flow through the ingress program with
/// live frames, which not every kernel runs.
mod needs_live_frames {
    use super::*;
    use mgm_tests::{Need, needs};

    #[test]
    fn the_first_packets_of_a_new_flow_are_held_and_forwarded_once_its_mfe_exists() {
        first_packets_are_held(Family::V4);
    }

    #[test]
    fn the_first_ipv6_packets_of_a_new_flow_are_held_and_forwarded_once_its_mfe_exists() {
        first_packets_are_held(Family::V6);
    }

    fn first_packets_are_held(family: Family) {
        needs(&[Need::LiveFrames]);
        let mut t = Topology::new(2).unwrap();
        t.add_addresses_for(family).unwrap();
        t.mgmd = Some(Mgmd::start(&t.router, &[]).unwrap());
        let idx = |n: &str| t.router.ifindex(n).unwrap();
        let mut pim = t.ctl().unwrap();
        let (rin, r1, r2) = (idx("rin"), idx("r1"), idx("r2"));
        let g = family.group();
        let hp = pim.protocol_with(103, &[rin, r1, r2], &[r1, r2], &g.to_string()).unwrap();
        let rx: Vec<UdpSocket> =
            (0..2).map(|i| t.udp_receiver_for(family, i, 5000).unwrap()).collect();
        let tx = t.udp_sender_for(family, 8).unwrap();

        // Ten packets before any MFE exists; PIM then takes its time to answer.
        for i in 0..10 {
            tx.send_to(format!("first-{i}").as_bytes(), (g, 5000)).unwrap();
        }
        let (rpf, _) = pim.wait_event("rpf", WAIT).unwrap();
        assert_eq!(pim.status().unwrap().unresolved, 1, "its packets are held");
        std::thread::sleep(Duration::from_millis(300));
        // The family's "none": the upstream and next hop of a directly connected source.
        let any = match family {
            Family::V4 => std::net::IpAddr::from(std::net::Ipv4Addr::UNSPECIFIED),
            Family::V6 => std::net::Ipv6Addr::UNSPECIFIED.into(),
        };
        let request = request_id(&rpf).unwrap();
        let ifindex = idx("rin");
        pim.call(proto::AnswerRpf {
            handle: hp,
            request,
            ifindex,
            nexthop: Some(any),
            upstream: Some(any),
        })
        .unwrap();
        let (alert, _) = pim.wait_event("creation_alert", WAIT).unwrap();
        let request = request_id(&alert).unwrap();
        pim.call(proto::AnswerCreation { handle: hp, request, disabled: vec![] }).unwrap();

        // Like the kernel's ipmr (and ip6mr), a few first packets are kept (4), in order, and forwarded once
        // the MFE exists; the others went to the kernel as before.
        let want: Vec<String> = (0..4).map(|i| format!("first-{i}")).collect();
        for s in &rx {
            let mut got = Vec::new();
            let mut buf = [0u8; 512];
            while let Ok(len) = s.recv(&mut buf) {
                got.push(String::from_utf8_lossy(&buf[..len]).into_owned());
            }
            let (st, counters) = (pim.status().unwrap(), pim.show().unwrap().counters);
            assert_eq!(got, want, "{st:?}\n{counters:?}");
        }
        let st = pim.status().unwrap();
        assert_eq!((st.unresolved, st.replayed), (0, 4), "{st:?}");
        assert_eq!(burst(&tx, &rx, "after", 10), vec![10, 10]);
    }
}
