// SPDX-License-Identifier: MIT OR Apache-2.0
//! `mgm-igmpd --mld` against the Linux kernel's own host-side MLD: receivers are ordinary
//! IPv6 sockets in their namespaces (`IPV6_JOIN_GROUP`, `MCAST_JOIN_SOURCE_GROUP`; MLDv2 by
//! default, MLDv1 with `force_mld_version`), traffic is IPv6 UDP from the sender's link
//! through mgmd's XDP program, and what reaches a receiver's link is captured there. Timers
//! as in `igmpd.rs` (`mgm_tests::igmpd`): last listener query time 0.4 s.

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv6Addr, SocketAddrV6, UdpSocket},
    os::fd::AsRawFd as _,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use mgm_tests::{
    Igmpd, Netns, PacketSocket, Topology,
    igmpd::{LMQT, SLACK, TIMERS, capture_for, group},
    ipv6_listener, ipv6_on, magic, udp6_frame, veth, with_magic,
};
use serde_json::Value;

const S1: &str = "2001:db8:1::1";
const S2: &str = "2001:db8:1::2";

fn ip6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// IPv6 on the router's and receivers' links, mgmd, and mgm-igmpd speaking MLD on rin and
/// every r<i> (the source's link too: traffic arriving on an interface no client owns is not
/// mgm's to route).
fn router(t: &mut Topology, extra: &[&str]) -> anyhow::Result<Igmpd> {
    ipv6_on(&t.router, "rin")?;
    let mut args = vec!["--mld", "--iface", "rin"];
    let names: Vec<String> = (1..=t.receivers.len()).map(|i| format!("r{i}")).collect();
    for (n, rx) in names.iter().zip(&t.receivers) {
        ipv6_on(&t.router, n)?;
        ipv6_on(rx, "eth0")?;
        args.extend(["--iface", n]);
    }
    t.start(&[])?;
    args.extend(TIMERS);
    args.extend(extra);
    Igmpd::start(&t.router, t.mgmd.as_ref().context("mgmd")?, &args)
}

/// How many of `n` datagrams from `source` to `group` reach the link `cap` captures.
fn copies(t: &Topology, cap: &PacketSocket, source: &str, group: Ipv6Addr, n: usize) -> usize {
    let m = magic("mld");
    let frame = udp6_frame(t.sender_mac, ip6(source).octets(), group.octets(), 16, &m);
    for _ in 0..n {
        t.tx.send(&frame).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    let frames = cap.drain(Duration::from_millis(150)).unwrap();
    with_magic(&frames, &m).len()
}

/// Sends until copies reach `cap` (`arrive`) or stop reaching it; how long that took.
fn until(
    t: &Topology,
    cap: &PacketSocket,
    source: &str,
    group: Ipv6Addr,
    arrive: bool,
    within: Duration,
) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    while (copies(t, cap, source, group, 3) > 0) != arrive {
        let what = if arrive { "no copy" } else { "copies still" };
        anyhow::ensure!(t0.elapsed() < within, "{what} of ({source}, {group}) after {within:?}");
    }
    Ok(t0.elapsed())
}

/// A socket in receiver 1 joined to `g` on eth0 by IPV6_JOIN_GROUP (any source).
fn join(t: &Topology, g: Ipv6Addr) -> UdpSocket {
    ipv6_listener(&t.receivers[0], g, 5000).unwrap()
}

/// A socket in receiver 1 joined to (`source`, `g`) on eth0 by MCAST_JOIN_SOURCE_GROUP.
fn join_source(t: &Topology, source: Ipv6Addr, g: Ipv6Addr) -> UdpSocket {
    t.receivers[0]
        .enter(move || {
            let s = UdpSocket::bind("[::]:5001")?;
            let ifindex = nix::net::if_::if_nametoindex("eth0")?;
            let storage =
                |a: Ipv6Addr| socket2::SockAddr::from(SocketAddrV6::new(a, 0, 0, 0)).as_storage();
            let req = libc::group_source_req {
                gsr_interface: ifindex,
                gsr_group: storage(g),
                gsr_source: storage(source),
            };
            // SAFETY: a valid group_source_req of the size given, on an open socket.
            let r = unsafe {
                libc::setsockopt(
                    s.as_raw_fd(),
                    libc::IPPROTO_IPV6,
                    libc::MCAST_JOIN_SOURCE_GROUP,
                    (&req as *const libc::group_source_req).cast(),
                    size_of::<libc::group_source_req>() as libc::socklen_t,
                )
            };
            anyhow::ensure!(r == 0, "MCAST_JOIN_SOURCE_GROUP: {}", std::io::Error::last_os_error());
            Ok(s)
        })
        .unwrap()
}

/// MCAST_JOIN_SOURCE_GROUP: only the joined source's traffic reaches the listener.
#[test]
fn a_source_specific_mld_join_forwards_only_that_source() {
    let mut t = Topology::new(1).unwrap();
    let mld = router(&mut t, &[]).unwrap();
    let cap = PacketSocket::open(&t.receivers[0], "eth0").unwrap();
    let g = ip6("ff3e::4000:1");
    let sock = join_source(&t, ip6(S1), g);
    until(&t, &cap, S1, g, true, SLACK).unwrap();
    assert_eq!(copies(&t, &cap, S2, g, 10), 0, "a source nobody asked for");
    let v = mld.view().unwrap();
    let st = group(&v, "r1", g).expect("the group is in the view");
    assert_eq!(st["mode"], "include", "{st}");
    assert_eq!(st["sources"][0][0], S1, "{st}");
    drop(sock);
    until(&t, &cap, S1, g, false, LMQT + SLACK).unwrap();
}

/// Two MLD routers on one link: the lower link-local address queries, the other listens;
/// when the querier dies, the other takes over after the other-querier-present interval.
#[test]
fn mld_querier_election_by_lowest_link_local_address() {
    mgm_tests::require_root();
    let lan = Netns::new("lan6").unwrap();
    lan.exec("ip", &["link", "add", "br0", "type", "bridge", "mcast_snooping", "0"]).unwrap();
    lan.exec("ip", &["link", "set", "br0", "up"]).unwrap();
    let host = Netns::new("host6").unwrap();
    veth(&lan, "ph", &host, "eth0").unwrap();
    lan.exec("ip", &["link", "set", "ph", "master", "br0"]).unwrap();
    let mut routers = Vec::new();
    for (name, addr) in [("ra6", "fe80::1/64"), ("rb6", "fe80::2/64")] {
        let ns = Netns::new(name).unwrap();
        veth(&lan, &format!("p{name}"), &ns, "lan0").unwrap();
        lan.exec("ip", &["link", "set", &format!("p{name}"), "master", "br0"]).unwrap();
        ipv6_on(&ns, "lan0").unwrap();
        ns.exec("ip", &["-6", "addr", "add", addr, "dev", "lan0"]).unwrap();
        let mgmd = mgm_tests::Mgmd::start(&ns, &["--iface".into(), "lan0".into()]).unwrap();
        routers.push((ns, mgmd));
    }
    let cap = PacketSocket::open(&host, "eth0").unwrap();
    let mut args = vec!["--mld", "--iface", "lan0"];
    args.extend(TIMERS);
    let iface = |v: &Value| v["interfaces"][0].clone();
    // B first: it queries until A appears.
    let b = Igmpd::start(&routers[1].0, &routers[1].1, &args).unwrap();
    b.wait(SLACK, |v| iface(v)["is_querier"] == true).unwrap();
    assert_eq!(iface(&b.view().unwrap())["address"], "fe80::2/64", "its lowest link-local");
    let mut a = Igmpd::start(&routers[0].0, &routers[0].1, &args).unwrap();
    b.wait(SLACK, |v| iface(v)["querier"] == "fe80::1").unwrap();
    assert_eq!(iface(&b.view().unwrap())["is_querier"], false);
    assert_eq!(iface(&a.view().unwrap())["is_querier"], true);

    // Only A's queries (ICMPv6 130 after an 8-byte Hop-by-Hop header) reach the host now.
    let queriers = |frames: &[Vec<u8>]| -> BTreeSet<Ipv6Addr> {
        frames
            .iter()
            .filter(|f| f.len() > 62 && f[12..14] == [0x86, 0xdd] && f[20] == 0 && f[62] == 130)
            .map(|f| Ipv6Addr::from(<[u8; 16]>::try_from(&f[22..38]).unwrap()))
            .collect()
    };
    cap.drain(Duration::from_millis(20)).unwrap();
    let frames = capture_for(&cap, Duration::from_millis(3500));
    assert_eq!(queriers(&frames), [ip6("fe80::1")].into(), "only the querier queries");

    let killed = Instant::now();
    a.kill().unwrap();
    b.wait(Duration::from_secs(10), |v| iface(v)["is_querier"] == true).unwrap();
    let took = killed.elapsed();
    assert!(took >= Duration::from_secs(3), "B took over before A could have timed out: {took:?}");
    cap.drain(Duration::from_millis(20)).unwrap();
    let frames = capture_for(&cap, Duration::from_millis(3500));
    assert!(queriers(&frames).contains(&ip6("fe80::2")), "B queries now");
}

/// MLD proxy: two downstream links, an upstream link with an MLD querier (another
/// mgm-igmpd --mld, standing for the upstream network's router). The upstream querier hears
/// the merged reports the proxy's host stack sends (any-source and source-specific); traffic
/// from upstream reaches exactly the downstream listeners.
#[test]
fn mld_proxy_merges_downstream_and_forwards_from_upstream() {
    let mut t = Topology::new(2).unwrap();
    ipv6_on(&t.sender, "s0").unwrap();
    ipv6_on(&t.router, "rin").unwrap();
    for (i, rx) in t.receivers.iter().enumerate() {
        ipv6_on(&t.router, &format!("r{}", i + 1)).unwrap();
        ipv6_on(rx, "eth0").unwrap();
    }
    t.start(&[]).unwrap();
    let mut args = vec!["--mld", "--upstream", "rin", "--iface", "r1", "--iface", "r2"];
    args.extend(TIMERS);
    let proxy = Igmpd::start(&t.router, t.mgmd.as_ref().unwrap(), &args).unwrap();
    let mut up_args = vec!["--mld", "--iface", "s0"];
    up_args.extend(TIMERS);
    let nowhere = std::env::temp_dir().join(mgm_tests::unique("no-mgmd.sock"));
    let upstream = Igmpd::spawn(&t.sender, &nowhere, &up_args).unwrap();

    let caps = t.captures().unwrap();
    let (g1, g2, g3) = (ip6("ff3e::6:1"), ip6("ff3e::6:2"), ip6("ff3e::6:3"));
    let join_on = |i: usize, g, port| ipv6_listener(&t.receivers[i], g, port).unwrap();
    let _a1 = join_on(0, g1, 5000);
    let _b1 = join_on(1, g1, 5000);
    let b2 = join_on(1, g2, 5001);
    let _a3 = join_source(&t, ip6(S1), g3);

    let v = upstream
        .wait(SLACK * 2, |v| [g1, g2, g3].iter().all(|g| group(v, "s0", *g).is_some()))
        .unwrap();
    assert_eq!(group(&v, "s0", g1).unwrap()["mode"], "exclude");
    let st3 = group(&v, "s0", g3).unwrap();
    assert_eq!((st3["mode"].as_str(), &st3["sources"][0][0]), (Some("include"), &Value::from(S1)));
    let held = &proxy.view().unwrap()["upstream"]["groups"];
    assert_eq!(held[g3.to_string()]["sources"][0], S1, "{held}");

    for (g, want) in [(g1, [true, true]), (g2, [false, true]), (g3, [true, false])] {
        until(&t, &caps[usize::from(!want[0])], S1, g, true, SLACK).unwrap();
        for (i, w) in want.iter().enumerate() {
            assert_eq!(copies(&t, &caps[i], S1, g, 10) > 0, *w, "{g} to receiver {}", i + 1);
        }
    }
    assert_eq!(copies(&t, &caps[0], S2, g3, 10), 0, "(S2, {g3}) is nobody's");

    drop(b2);
    until(&t, &caps[1], S1, g2, false, LMQT + SLACK).unwrap();
    upstream.wait(LMQT + SLACK * 2, |v| group(v, "s0", g2).is_none()).unwrap();
}

/// The matrix runs these on this machine and in every guest (Debian 12's 6.1 and 6.12, 7.x):
/// what must hold on every kernel mgm supports.
mod every_kernel {
    use super::*;

    /// An MLDv2 host joins and leaves (copies start within a report's way, stop within the last
    /// listener query time); then an MLDv1 host (forced) does the same with a report and a done.
    #[test]
    fn mld_joins_and_leaves_from_real_sockets_drive_forwarding() {
        let mut t = Topology::new(1).unwrap();
        let mld = router(&mut t, &[]).unwrap();
        let cap = PacketSocket::open(&t.receivers[0], "eth0").unwrap();
        let g = ip6("ff3e::8000:1");
        assert_eq!(copies(&t, &cap, S1, g, 10), 0, "no listener, no copy");

        let sock = join(&t, g);
        let joined = until(&t, &cap, S1, g, true, SLACK).unwrap();
        eprintln!("join to first copy: {joined:?}");
        let v = mld.view().unwrap();
        assert_eq!(v["protocol"], "MLD");
        let st = group(&v, "r1", g).expect("the group is in the view");
        assert_eq!(
            (st["mode"].as_str(), st["compat"].as_u64()),
            (Some("exclude"), Some(2)),
            "{st}"
        );
        let r1 = v["interfaces"].as_array().unwrap().iter().find(|p| p["name"] == "r1").unwrap();
        assert_eq!(r1["is_querier"], true, "the only router on the link queries: {r1}");
        assert!(r1["address"].as_str().unwrap().starts_with("fe80:"), "speaks from link-local");
        // mgmd holds it on the IPv6 side of r1.
        let mut ctl = t.ctl().unwrap();
        let show = ctl.show().unwrap();
        let ifindex = t.router.ifindex("r1").unwrap();
        assert!(
            show.memberships.iter().any(|m| m.entry.group == IpAddr::V6(g)
                && m.iface.ifindex == ifindex
                && m.iface.nexthop == IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
            "{:?}",
            show.memberships
        );

        drop(sock);
        let left = until(&t, &cap, S1, g, false, LMQT + SLACK).unwrap();
        eprintln!("leave to last copy: {left:?}");
        mld.wait(SLACK, |v| group(v, "r1", g).is_none()).unwrap();

        // MLDv1: a report to the group, a done to ff02::2.
        t.receivers[0].exec("sysctl", &["-qw", "net.ipv6.conf.eth0.force_mld_version=1"]).unwrap();
        let g1 = ip6("ff3e::8000:2");
        let sock = join(&t, g1);
        until(&t, &cap, S1, g1, true, SLACK).unwrap();
        let v = mld.view().unwrap();
        assert_eq!(group(&v, "r1", g1).expect("v1 group")["compat"], 1, "an MLDv1 host");
        drop(sock);
        until(&t, &cap, S1, g1, false, LMQT + SLACK).unwrap();
        let text = mld.show(false).unwrap();
        assert!(text.contains("MLDv2") && text.contains("querier: this router"), "{text}");
    }
}
