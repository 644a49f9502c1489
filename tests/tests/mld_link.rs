// SPDX-License-Identifier: MIT OR Apache-2.0
//! MLD's link edge against a real host stack: a receiver namespace's kernel joins and leaves
//! an IPv6 group (MLDv2 by default, MLDv1 when forced), the router reads its reports below IP
//! through mgmd's XDP program, queries it, and leaves all-multicast mode when the socket
//! closes. (`tests/mld.rs` runs the whole daemon over this edge.)

use std::{net::Ipv6Addr, time::Duration};

use mgm_igmpd::{
    link::Link,
    mld::{encode_query, parse},
    packet::{Message, Query, RecordType},
};
use mgm_tests::{Topology, has_record, ipv6_listener, ipv6_on};

/// The next MLD message matching `want` within 5 s (others are skipped).
fn expect(link: &Link, want: impl Fn(&Message<Ipv6Addr>) -> bool) -> Message<Ipv6Addr> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 2048];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        assert!(!left.is_zero(), "no such MLD message within 5 s");
        let Ok(n) = link.recv_timeout(&mut buf, left) else { continue };
        let (_, m) = parse(&buf[..n]).expect("a host's MLD is valid");
        if want(&m) {
            return m;
        }
    }
}

#[test]
fn host_mld_is_read_below_ip_and_queries_are_answered() {
    let mut t = Topology::new(1).unwrap();
    t.start(&[]).unwrap();
    ipv6_on(&t.router, "r1").unwrap();
    ipv6_on(&t.receivers[0], "eth0").unwrap();
    let allmulti = || t.router.allmulti("r1").unwrap();
    let ifindex = t.router.ifindex("r1").unwrap();
    let link = t.router.enter(move || Ok(Link::open_mld(ifindex)?)).unwrap();
    assert!(allmulti(), "all-multicast while the socket is open");

    let g: Ipv6Addr = "ff05::1:3".parse().unwrap();
    let join = |g| ipv6_listener(&t.receivers[0], g, 5000).unwrap();
    // MLDv2: a join is TO_EX {}.
    let sock = join(g);
    expect(&link, |m| has_record(m, g, RecordType::ChangeToExclude));

    // A general query from a link-local source: the host answers IS_EX {}.
    let q = Query {
        version: 3,
        group: Ipv6Addr::UNSPECIFIED,
        max_resp: Duration::from_secs(1),
        suppress: false,
        qrv: 2,
        qqi: Duration::from_secs(125),
        sources: vec![],
    };
    let (me, all): (Ipv6Addr, Ipv6Addr) = ("fe80::1".parse().unwrap(), "ff02::1".parse().unwrap());
    link.send_mld(me, all, &encode_query(&q, me, all)).unwrap();
    expect(&link, |m| has_record(m, g, RecordType::ModeIsExclude));
    // The leave: TO_IN {}.
    drop(sock);
    expect(&link, |m| has_record(m, g, RecordType::ChangeToInclude));

    // An MLDv1 host: a report to the group, a done to ff02::2.
    t.receivers[0].exec("sysctl", &["-qw", "net.ipv6.conf.eth0.force_mld_version=1"]).unwrap();
    let g1: Ipv6Addr = "ff05::2:2".parse().unwrap();
    let sock = join(g1);
    expect(&link, |m| *m == Message::Report { version: 2, group: g1 });
    drop(sock);
    expect(&link, |m| *m == Message::Leave { group: g1 });

    drop(link);
    assert!(!allmulti(), "all-multicast ends with the socket");
}
