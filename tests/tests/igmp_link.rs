// SPDX-License-Identifier: MIT OR Apache-2.0
//! The IGMP daemon's link edge against real host stacks: a receiver namespace's kernel joins
//! and leaves groups (IGMPv3 by default, v2 when forced), the router reads its reports through
//! the fast path (mgmd's XDP program on the interface passes IGMP to the kernel), queries it,
//! and leaves the interface's all-multicast mode when the socket closes.

use std::{net::Ipv4Addr, time::Duration};

use mgm_igmpd::{
    link::Link,
    packet::{Message, Query, RecordType, encode_query, parse},
};
use mgm_tests::{Topology, has_record};

const ROUTER: Ipv4Addr = Ipv4Addr::new(10, 2, 1, 1);

/// The next IGMP message matching `want` within 5 s (others are skipped).
fn expect(link: &Link, want: impl Fn(&Message) -> bool) -> Message {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 2048];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        assert!(!left.is_zero(), "no such IGMP message within 5 s");
        let Ok(n) = link.recv_timeout(&mut buf, left) else { continue };
        let (ip, m) = parse(&buf[..n]).expect("a host's IGMP is valid");
        assert_eq!(ip.source, Ipv4Addr::new(10, 2, 1, 2), "{m:?}");
        if want(&m) {
            return m;
        }
    }
}

#[test]
fn host_reports_are_read_below_ip_and_queries_are_answered() {
    let mut t = Topology::new(1).unwrap();
    t.add_addresses().unwrap();
    t.router.exec("ip", &["addr", "add", "10.2.1.1/24", "dev", "r1"]).unwrap();
    t.start(&[]).unwrap();
    let allmulti = || t.router.allmulti("r1").unwrap();
    assert!(!allmulti());
    let ifindex = t.router.ifindex("r1").unwrap();
    let link = t.router.enter(move || Ok(Link::open(ifindex)?)).unwrap();
    assert!(allmulti(), "all-multicast while the socket is open");

    // A v3 join (unsolicited report: TO_EX {}).
    let g: Ipv4Addr = "239.1.1.1".parse().unwrap();
    let sock = t.udp_receiver(0, g.octets(), 5000).unwrap();
    expect(&link, |m| has_record(m, g, RecordType::ChangeToExclude));

    // A general query: the host answers with its current state (IS_EX {}).
    let q = Query {
        version: 3,
        group: Ipv4Addr::UNSPECIFIED,
        max_resp: Duration::from_secs(1),
        suppress: false,
        qrv: 2,
        qqi: Duration::from_secs(125),
        sources: vec![],
    };
    link.send(ROUTER, "224.0.0.1".parse().unwrap(), &encode_query(&q)).unwrap();
    expect(&link, |m| has_record(m, g, RecordType::ModeIsExclude));
    // The leave: TO_IN {}.
    drop(sock);
    expect(&link, |m| has_record(m, g, RecordType::ChangeToInclude));

    // An IGMPv2 host: a report to the group, a leave to 224.0.0.2.
    t.receivers[0].exec("sysctl", &["-qw", "net.ipv4.conf.eth0.force_igmp_version=2"]).unwrap();
    let g2: Ipv4Addr = "239.2.2.2".parse().unwrap();
    let sock = t.udp_receiver(0, g2.octets(), 5000).unwrap();
    expect(&link, |m| *m == Message::Report { version: 2, group: g2 });
    drop(sock);
    expect(&link, |m| *m == Message::Leave { group: g2 });

    drop(link);
    assert!(!allmulti(), "all-multicast ends with the socket");
}
