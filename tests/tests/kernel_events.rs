// SPDX-License-Identifier: MIT OR Apache-2.0
//! mgmd follows the kernel's links from its notifications (rtnetlink), not by polling: an MTU
//! change reaches the fast path within 100 ms, and a link going down or up is seen as fast.
//! (An interface removal is in `mgm_api.rs`, a neighbour's new MAC in `next_hops.rs`, both
//! with the same bound.) Needs root.

use std::time::Duration;

use mgm::proto::Snapshot;
use mgm_tests::{Topology, magic, with_magic};

/// How soon mgmd follows a change in the kernel.
const REACT: Duration = Duration::from_millis(100);
const IDLE: Duration = Duration::from_millis(300);

fn mtu(show: &Snapshot, name: &str) -> u16 {
    let i = show.interfaces.iter().find(|i| i.name == name);
    i.unwrap_or_else(|| panic!("no {name} in {show:?}")).mtu
}

/// A datagram whose IP packet is `ip_len` bytes long, marked with `tag`.
fn frame_of(t: &Topology, tag: &[u8], ip_len: usize) -> Vec<u8> {
    let mut payload = tag.to_vec();
    payload.resize(ip_len - 28, 0xab);
    t.frame(8, &payload)
}

#[test]
fn an_mtu_change_reaches_the_fast_path_within_100_ms() {
    let mut t = Topology::new(2).unwrap();
    t.start(&["--mfe", "10.1.0.1,239.1.1.1,rin,r1+r2"]).unwrap();
    let mut ctl = t.ctl().unwrap();
    assert_eq!(mtu(&ctl.show().unwrap(), "r1"), 1500);
    let caps = t.captures().unwrap();
    // `n` datagrams of 1,450 bytes; how many each receiver got.
    let mut forwarded = 0;
    let mut burst = |ctl: &mut mgm_tests::Ctl, name: &str, n: u64| -> Vec<usize> {
        let tag = magic(name);
        for _ in 0..n {
            t.tx.send(&frame_of(&t, &tag, 1450)).unwrap();
        }
        forwarded += n;
        ctl.wait_counters(&["forwarded"], forwarded).unwrap();
        caps.iter().map(|c| with_magic(&c.drain(IDLE).unwrap(), &tag).len()).collect()
    };
    assert_eq!(burst(&mut ctl, "fits", 3), vec![3, 3], "1,450 bytes fit both links");

    t.router.exec("ip", &["link", "set", "r1", "mtu", "1400"]).unwrap();
    std::thread::sleep(REACT);
    assert_eq!(mtu(&ctl.show().unwrap(), "r1"), 1400, "mgmd saw the change");
    let too_big = ctl.counter("egress_too_big").unwrap();
    assert_eq!(burst(&mut ctl, "big", 3), vec![0, 3], "too big for r1 now, still fine for r2");
    assert_eq!(ctl.counter("egress_too_big").unwrap() - too_big, 3, "and counted");

    // Back up: copies to r1 resume.
    t.router.exec("ip", &["link", "set", "r1", "mtu", "1500"]).unwrap();
    std::thread::sleep(REACT);
    assert_eq!(burst(&mut ctl, "again", 1), vec![1, 1]);
}

#[test]
fn a_link_going_down_and_up_is_seen_within_100_ms() {
    let mut t = Topology::new(1).unwrap();
    t.start(&[]).unwrap();
    let mut ctl = t.ctl().unwrap();
    let up = |ctl: &mut mgm_tests::Ctl| {
        let show = ctl.show().unwrap();
        show.interfaces.iter().find(|i| i.name == "r1").expect("r1 managed").up
    };
    assert!(up(&mut ctl));
    t.router.exec("ip", &["link", "set", "r1", "down"]).unwrap();
    std::thread::sleep(REACT);
    assert!(!up(&mut ctl), "down");
    t.router.exec("ip", &["link", "set", "r1", "up"]).unwrap();
    std::thread::sleep(REACT);
    assert!(up(&mut ctl), "up again");
}

/// Five datagrams of the flow; how many each receiver got.
fn burst(t: &Topology, caps: &[mgm_tests::PacketSocket], name: &str) -> Vec<usize> {
    let tag = magic(name);
    for _ in 0..5 {
        t.tx.send(&t.frame(8, &tag)).unwrap();
    }
    caps.iter().map(|c| with_magic(&c.drain(IDLE).unwrap(), &tag).len()).collect()
}

/// Only the kernel speaks for the kernel: a process with CAP_NET_ADMIN in the namespace
/// multicasts "link deleted" for the live interfaces of a static flow to rtnetlink's link
/// group; mgmd ignores it (sender port id not 0) and the flow goes on.
#[test]
fn a_link_deletion_not_from_the_kernel_is_ignored() {
    let mut t = Topology::new(2).unwrap();
    t.start(&["--mfe", "10.1.0.1,239.1.1.1,rin,r1"]).unwrap();
    let mut ctl = t.ctl().unwrap();
    let caps = t.captures().unwrap();
    assert_eq!(burst(&t, &caps, "before"), vec![5, 0]);
    for name in ["rin", "r1"] {
        let forged = mgm_tests::forge::del_link(t.router.ifindex(name).unwrap());
        mgm_tests::forge::multicast(&t.router, libc::RTNLGRP_LINK, forged).unwrap();
    }
    std::thread::sleep(REACT);
    let show = ctl.show().unwrap();
    for name in ["rin", "r1"] {
        assert!(show.interfaces.iter().any(|i| i.name == name), "{name} still managed: {show:?}");
    }
    assert_eq!(burst(&t, &caps, "after"), vec![5, 0], "{:?}", show.counters);
}

mod needs_ipmr {
    use super::*;

    /// The same for a route: a forged ipmr entry (for a flow no daemon asked for) is not
    /// followed, and is never forwarded.
    #[test]
    fn a_route_not_from_the_kernel_is_ignored() {
        mgm_tests::needs(&[mgm_tests::Need::Ipmr]);
        let mut t = Topology::new(2).unwrap();
        t.start(&["--follow-kernel"]).unwrap();
        let mut ctl = t.ctl().unwrap();
        let caps = t.captures().unwrap();
        let idx = |n: &str| t.router.ifindex(n).unwrap();
        let route = mgm_tests::forge::ipmr_route(
            [10, 1, 0, 1],
            [239, 1, 1, 1],
            idx("rin"),
            &[idx("r1"), idx("r2")],
        );
        mgm_tests::forge::multicast(&t.router, libc::RTNLGRP_IPV4_MROUTE, route).unwrap();
        std::thread::sleep(REACT);
        let show = ctl.show().unwrap();
        assert!(show.mfes.is_empty(), "no entry from a forged route: {:?}", show.mfes);
        assert_eq!(burst(&t, &caps, "forged"), vec![0, 0]);
    }
}
