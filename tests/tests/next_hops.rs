// SPDX-License-Identifier: MIT OR Apache-2.0
//! Next hops on a point-to-multipoint interface: two receivers sit behind one router port (a
//! bridge in a "switch" namespace). Each (port, next hop) owned and joined gets its own copy,
//! addressed to that neighbour's MAC (from the kernel's neighbour table), and releasing one
//! next hop leaves the other's copies flowing; in both families (IPv6 next hops are link-local
//! addresses, their MACs from the kernel's Neighbour Discovery). Needs root.

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use mgm::proto::{self, MembershipArgs};
use mgm_tests::{Family, Netns, PacketSocket, Topology, magic, veth};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(5);

/// Frames carrying `tag` and addressed to `mac`.
fn count_to(frames: &[Vec<u8>], tag: &[u8], mac: [u8; 6]) -> usize {
    mgm_tests::with_magic(frames, tag).iter().filter(|f| f[..6] == mac).count()
}

fn next_hops(family: Family) {
    let g = family.group().to_string();
    let g = g.as_str();
    // The router's address on the LAN, and the two neighbours'.
    let (router, a, b) = match family {
        Family::V4 => ("10.5.0.1/24", "10.5.0.2", "10.5.0.3"),
        Family::V6 => ("fe80::1/64", "fe80::2", "fe80::3"),
    };
    let mut t = Topology::new(0).unwrap();
    let sw = Netns::new("sw").unwrap();
    let (ra, rb) = (Netns::new("rxa").unwrap(), Netns::new("rxb").unwrap());
    veth(&t.router, "rlan", &sw, "up0").unwrap();
    veth(&sw, "pa", &ra, "eth0").unwrap();
    veth(&sw, "pb", &rb, "eth0").unwrap();
    sw.exec("ip", &["link", "add", "br0", "type", "bridge"]).unwrap();
    for p in ["up0", "pa", "pb"] {
        sw.exec("ip", &["link", "set", p, "master", "br0"]).unwrap();
    }
    sw.exec("ip", &["link", "set", "br0", "up"]).unwrap();
    let prefix = &router[router.find('/').unwrap()..];
    for (ns, dev, addr) in [
        (&t.router, "rlan", router.to_owned()),
        (&ra, "eth0", format!("{a}{prefix}")),
        (&rb, "eth0", format!("{b}{prefix}")),
    ] {
        if family == Family::V6 {
            mgm_tests::ipv6_on(ns, dev).unwrap();
            ns.exec("ip", &["-6", "addr", "add", &addr, "dev", dev, "nodad"]).unwrap();
        } else {
            ns.exec("ip", &["addr", "add", &addr, "dev", dev]).unwrap();
        }
    }
    let (mac_a, mac_b) = (ra.mac("eth0").unwrap(), rb.mac("eth0").unwrap());
    t.start(&[]).unwrap();

    let idx = |n: &str| t.router.ifindex(n).unwrap();
    let (rin, rlan) = (idx("rin"), idx("rlan"));
    let mut pim = t.ctl().unwrap();
    let h = pim.protocol_with(103, &[rin], &[], g).unwrap();
    for nh in [a, b] {
        let nexthop: std::net::IpAddr = nh.parse().unwrap();
        pim.call(proto::TakeInterface { handle: h, ifindex: rlan, nexthop }).unwrap();
        let m = MembershipArgs { nexthop: Some(nexthop), ..mgm_tests::membership(h, g, rlan) };
        pim.call(proto::AddMembership(m)).unwrap();
    }

    // The first packet creates the MFE; PIM answers its callbacks.
    let caps = [PacketSocket::open(&ra, "eth0").unwrap(), PacketSocket::open(&rb, "eth0").unwrap()];
    // The flow's datagrams, TTL (hop limit) 8.
    let frame = |tag: &[u8]| match (family.source(), family.group()) {
        (IpAddr::V6(s), IpAddr::V6(g)) => {
            mgm_tests::udp6_frame(t.sender_mac, s.octets(), g.octets(), 8, tag)
        }
        _ => mgm_tests::udp_frame(t.sender_mac, mgm_tests::SOURCE, mgm_tests::GROUP, 8, tag),
    };
    let send = |tag: &[u8], n: usize| {
        for _ in 0..n {
            t.tx.send(&frame(tag)).unwrap();
        }
    };
    send(b"create", 1);
    let (_, alert) = pim.answer_creation(h, WAIT).unwrap();
    let offered: Vec<Value> =
        alert["oifs"].as_array().unwrap().iter().map(|o| o["iface"]["nexthop"].clone()).collect();
    assert_eq!(offered, vec![json!(a), json!(b)]);
    // mgmd resolves both neighbours (ARP or ND through the bridge) within a few ticks.
    let deadline = Instant::now() + WAIT;
    loop {
        let tag = magic("probe");
        send(&tag, 1);
        let got: Vec<Vec<Vec<u8>>> =
            caps.iter().map(|c| c.drain(Duration::from_millis(100)).unwrap()).collect();
        if count_to(&got[0], &tag, mac_a) == 1 && count_to(&got[1], &tag, mac_b) == 1 {
            break;
        }
        let c = pim.show().unwrap().counters;
        assert!(Instant::now() < deadline, "next hops never resolved: {c:?}");
    }

    let tag = magic("both");
    send(&tag, 20);
    let got: Vec<Vec<Vec<u8>>> =
        caps.iter().map(|c| c.drain(Duration::from_millis(300)).unwrap()).collect();
    // One copy per next hop, each to its neighbour's MAC; the bridge delivers each to its
    // owner only.
    assert_eq!((count_to(&got[0], &tag, mac_a), count_to(&got[0], &tag, mac_b)), (20, 0));
    assert_eq!((count_to(&got[1], &tag, mac_b), count_to(&got[1], &tag, mac_a)), (20, 0));
    let f = mgm_tests::with_magic(&got[0], &tag)[0].clone();
    assert_eq!(f[6..12], t.router.mac("rlan").unwrap(), "source: the router port");
    if family == Family::V4 {
        assert_eq!(f[14 + 8], 7, "TTL decremented");
        let mut check = f.clone();
        mgm_tests::fix_ipv4_checksum(&mut check);
        assert_eq!(check, f, "IPv4 checksum still valid");
    } else {
        assert_eq!(f[14 + 7], 7, "hop limit decremented");
    }

    // Every frame the TC program sees leaves it counted (the frames XDP passed: each
    // counted there too): the flow's originals consumed after their copies, the rest passed
    // untouched (a frame of another EtherType, one sent to a unicast MAC).
    let exits = ["tc_pass", "tc_consumed", "tc_drop_failed"];
    let before = tc_and_xdp(&mut pim, &exits);
    let tag = magic("exits");
    send(&tag, 20);
    let mut other = frame(&tag);
    other[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    let mut unicast = frame(&tag);
    unicast[..6].copy_from_slice(&t.router.mac("rin").unwrap());
    for f in [&other, &unicast].repeat(5) {
        t.tx.send(f).unwrap();
    }
    let deadline = Instant::now() + WAIT;
    let (c, seen_by_tc, passed_by_xdp) = loop {
        let (c, tc, xdp) = tc_and_xdp(&mut pim, &exits);
        let (tc, xdp) = (tc - before.1, xdp - before.2);
        if (tc == xdp && xdp >= 30) || Instant::now() > deadline {
            break (c, tc, xdp);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(seen_by_tc, passed_by_xdp, "every frame XDP passed left TC counted: {c:?}");
    assert_eq!(c["tc_consumed"] - before.0["tc_consumed"], 20, "{c:?}");
    assert!(c["tc_pass"] - before.0["tc_pass"] >= 10, "{c:?}");
    assert_eq!(c["tc_drop_failed"], 0, "{c:?}");
    let got: Vec<Vec<Vec<u8>>> =
        caps.iter().map(|c| c.drain(Duration::from_millis(300)).unwrap()).collect();
    assert_eq!(count_to(&got[0], &tag, mac_a) + count_to(&got[1], &tag, mac_b), 40);

    // A neighbour's MAC changes (new NIC): mgmd follows the kernel's neighbour notifications
    // within 100 ms.
    let new_b = [0x02, 0, 0, 0, 0x0b, 0x0b];
    let new_b_s = "02:00:00:00:0b:0b";
    rb.exec("ip", &["link", "set", "eth0", "address", new_b_s]).unwrap();
    t.router
        .exec("ip", &["neigh", "replace", b, "lladdr", new_b_s, "dev", "rlan", "nud", "permanent"])
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let tag = magic("moved");
    send(&tag, 20);
    let got: Vec<Vec<Vec<u8>>> =
        caps.iter().map(|c| c.drain(Duration::from_millis(300)).unwrap()).collect();
    assert_eq!(count_to(&got[1], &tag, new_b), 20, "copies follow the new MAC");
    assert_eq!(count_to(&got[0], &tag, mac_a), 20);
    let mac_b = new_b;

    // Release one next hop: its copies stop at once, the other's go on.
    let nexthop = a.parse().unwrap();
    pim.call(proto::ReleaseInterface { handle: h, ifindex: rlan, nexthop }).unwrap();
    let tag = magic("one");
    send(&tag, 20);
    let got: Vec<Vec<Vec<u8>>> =
        caps.iter().map(|c| c.drain(Duration::from_millis(300)).unwrap()).collect();
    assert_eq!(count_to(&got[0], &tag, mac_a), 0);
    assert_eq!(count_to(&got[1], &tag, mac_b), 20);
}

/// The global counters, the sum of the TC program's `exits` and the sum of XDP's passes (the
/// `pass_` counters: the frames the TC program sees next).
fn tc_and_xdp(
    ctl: &mut mgm_tests::Ctl,
    exits: &[&str],
) -> (std::collections::BTreeMap<String, u64>, u64, u64) {
    let c = ctl.show().unwrap().counters;
    let tc = exits.iter().map(|n| c.get(*n).copied().unwrap_or(0)).sum();
    let xdp = c.iter().filter(|(n, _)| n.starts_with("pass_")).map(|(_, v)| v).sum();
    (c, tc, xdp)
}

/// The matrix runs these on this machine and in every guest (Debian 12's 6.1 and 6.12, 7.x):
/// what must hold on every kernel mgm supports.
mod every_kernel {
    use super::*;

    #[test]
    fn each_next_hop_gets_its_own_copy_and_releases_separately() {
        next_hops(Family::V4);
    }

    #[test]
    fn each_ipv6_next_hop_gets_its_own_copy_and_releases_separately() {
        next_hops(Family::V6);
    }
}
