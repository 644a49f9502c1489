// SPDX-License-Identifier: MIT OR Apache-2.0
//! `mgmd --follow-kernel`: a real routing daemon (smcroute) programs the kernel's ipmr table
//! through the mroute socket, unchanged; mgmd mirrors its routes into the XDP fast path and
//! leaves the rest to the kernel. Needs root and smcroute (`cargo xtask setup`).

use std::{
    net::UdpSocket,
    time::{Duration, Instant},
};

use mgm_tests::{Ctl, Smcroute, Topology};

const IFACES: [&str; 3] = ["rin", "r1", "r2"];

const S: &str = "10.1.0.1";
const G: &str = "239.1.1.1";

/// The router routes as a kernel router would: addresses on its links, no reverse-path
/// filter for the test's source.
fn kernel_router(t: &Topology) {
    t.router.exec("ip", &["addr", "add", "10.1.0.254/24", "dev", "rin"]).unwrap();
    for i in 1..=t.receivers.len() {
        let a = format!("10.2.{i}.1/24");
        t.router.exec("ip", &["addr", "add", &a, "dev", &format!("r{i}")]).unwrap();
    }
    for k in ["all", "default", "rin"] {
        t.router.exec("sysctl", &["-qw", &format!("net.ipv4.conf.{k}.rp_filter=0")]).unwrap();
    }
}

/// Sends `n` datagrams tagged `tag`; how many each receiver got.
fn burst(tx: &UdpSocket, rx: &[UdpSocket], tag: &str, n: u32) -> Vec<usize> {
    for i in 0..n {
        tx.send_to(format!("{tag}-{i}").as_bytes(), (G, 5000)).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    rx.iter()
        .map(|s| {
            let mut got = 0;
            let mut buf = [0u8; 512];
            while let Ok(len) = s.recv(&mut buf) {
                got += usize::from(buf[..len].starts_with(tag.as_bytes()));
            }
            got
        })
        .collect()
}

/// Waits until the mirrored entry for (S, G) has these outgoing interfaces (`None`: none).
fn wait_mirrored(ctl: &mut Ctl, oifs: Option<Vec<u32>>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let m = ctl.mfe(S, G).unwrap();
        let got = m.as_ref().map(|m| m.oifs.clone());
        if got == oifs {
            if let Some(m) = m {
                assert_eq!(m.origin, "kernel", "{m:?}");
            }
            return;
        }
        assert!(Instant::now() < deadline, "mirrored {m:?}, wanted oifs {oifs:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn smcroute_routes_are_forwarded_in_xdp_while_the_kernel_keeps_counting() {
    let mut t = Topology::new(2).unwrap();
    t.add_addresses().unwrap();
    kernel_router(&t);
    t.start(&["--follow-kernel", "--heartbeat-ms", "100"]).unwrap();
    let mut ctl = t.ctl().unwrap();
    let idx = |n: &str| t.router.ifindex(n).unwrap();
    let (r1, r2) = (idx("r1"), idx("r2"));
    let routes = format!("mroute from rin source {S} group {G} to r1\n");
    let smc = Smcroute::start(&t.router, &IFACES, &routes).unwrap();
    wait_mirrored(&mut ctl, Some(vec![r1]));

    let rx: Vec<UdpSocket> =
        (0..2).map(|i| t.udp_receiver(i, [239, 1, 1, 1], 5000).unwrap()).collect();
    let tx = t.udp_sender(8).unwrap();
    // Each datagram arrives once: forwarded in XDP, or (a heartbeat) left to the kernel,
    // which forwards it through the same route.
    assert_eq!(burst(&tx, &rx, "one", 100), vec![100, 0]);
    let m = ctl.mfe(S, G).unwrap().unwrap();
    let heartbeats = ctl.counter("pass_heartbeat").unwrap();
    assert!(heartbeats >= 1, "no packet left to the kernel");
    assert!(m.packets >= 100 - heartbeats, "XDP forwarded {} of 100: {m:?}", m.packets);
    // The kernel saw the heartbeats: its own counter of the route moved.
    let kernel = t.router.exec("ip", &["-s", "mroute", "show"]).unwrap();
    assert!(!kernel.contains(" 0 packets"), "kernel counters frozen: {kernel}");

    // The route grows: copies follow.
    smc.ctl(&["add", "rin", S, G, "r2"]).unwrap();
    wait_mirrored(&mut ctl, Some(vec![r1, r2]));
    assert_eq!(burst(&tx, &rx, "two", 50), vec![50, 50]);

    // Removed from the kernel: gone from the fast path, and nothing is forwarded.
    smc.ctl(&["remove", "rin", S, G]).unwrap();
    wait_mirrored(&mut ctl, None);
    assert_eq!(burst(&tx, &rx, "none", 20), vec![0, 0]);
}

#[test]
fn entries_mgm_cannot_forward_as_the_kernel_would_stay_in_the_kernel() {
    let mut t = Topology::new(2).unwrap();
    t.add_addresses().unwrap();
    kernel_router(&t);
    // r2 is not managed by mgm: a route to it stays with the kernel, which forwards it.
    t.mgmd = Some(
        mgm_tests::Mgmd::start(
            &t.router,
            &["--iface", "rin", "--iface", "r1", "--follow-kernel"].map(String::from),
        )
        .unwrap(),
    );
    let mut ctl = t.ctl().unwrap();
    let routes = format!("mroute from rin source {S} group {G} to r1 r2\n");
    let _smc = Smcroute::start(&t.router, &IFACES, &routes).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !t.router.exec("ip", &["mroute", "show"]).unwrap().contains(G) {
        assert!(Instant::now() < deadline, "smcroute installed no route");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(ctl.mfe(S, G).unwrap(), None);
    let rx: Vec<UdpSocket> =
        (0..2).map(|i| t.udp_receiver(i, [239, 1, 1, 1], 5000).unwrap()).collect();
    let tx = t.udp_sender(8).unwrap();
    assert_eq!(burst(&tx, &rx, "k", 30), vec![30, 30]);
    assert_eq!(ctl.counter("forwarded").unwrap(), 0);
}
