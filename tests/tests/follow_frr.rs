// SPDX-License-Identifier: MIT OR Apache-2.0
//! `mgmd --follow-kernel` under FRR: PIM-SM on three routers (first hop, rendezvous point,
//! last hop), each running zebra and pimd unchanged and an mgmd following its kernel's table.
//! Needs root and FRR (`cargo xtask setup`).
//!
//! ```text
//! src s0 ── f0 FHR f1 ── p0 RP p1 ── l0 LHR l1 ── r0 rcv
//!   10.0.1.0/24   10.0.2.0/24   10.0.3.0/24   10.0.5.0/24     RP address 10.0.2.2
//! ```
//!
//! Every test here needs the kernel's multicast routing (ipmr and ip6mr): `needs_ipmr` in
//! their names makes `cargo xtask test` run them where the kernel has it, a guest if not here.

mod needs_ipmr {
    use std::{
        collections::BTreeSet,
        net::UdpSocket,
        sync::{
            Arc,
            atomic::{AtomicBool, AtomicU64, Ordering},
        },
        time::{Duration, Instant},
    };

    use mgm_tests::{Ctl, Frr, Mgmd, Netns, PacketSocket, gaps_between, udp_frame, veth};

    const S: &str = "10.0.1.1";
    const G: &str = "239.1.1.1";
    /// FRR's keepalive in this test. pimd checks whether an (S,G) still runs every 31 s, so a
    /// keepalive shorter than that would expire flows on a kernel-only router too.
    const KAT_SECS: u64 = 35;

    /// Field order is drop order: pimd exits first, then mgmd, then the namespace goes.
    struct Router {
        _frr: Frr,
        mgmd: Mgmd,
        ns: Netns,
    }

    impl Router {
        fn ctl(&self) -> Ctl {
            self.mgmd.ctl().unwrap()
        }

        /// The kernel's counters of the (S,G) (`ip -s mroute`): packets (what pimd's keepalive
        /// reads), and those that arrived on the wrong interface.
        fn kernel_counts(&self) -> (u64, u64) {
            let out = self.ns.exec("ip", &["-s", "mroute", "show"]).unwrap();
            let mut lines = out.lines();
            while let Some(l) = lines.next() {
                if l.starts_with(&format!("({S},{G})")) {
                    let stats = lines.next().unwrap_or_default();
                    let field = |suffix: &str| {
                        stats
                            .split(", ")
                            .find_map(|f| f.trim().strip_suffix(suffix))
                            .map_or(0, |n| n.trim().parse().unwrap())
                    };
                    return (field(" packets"), field(" arrived on wrong iif."));
                }
            }
            (0, 0)
        }
    }

    fn frr_conf(name: &str, ifaces: &[&str], igmp: Option<&str>) -> String {
        let mut c = format!(
            "hostname {name}\nip pim rp 10.0.2.2 224.0.0.0/4\nip pim keep-alive-timer {KAT_SECS}\n"
        );
        for i in ifaces {
            c.push_str(&format!("interface {i}\n ip pim\n"));
            if igmp == Some(*i) {
                c.push_str(" ip igmp\n");
            }
        }
        c
    }

    fn router(
        ns: Netns,
        ifaces: [&str; 2],
        addrs: [&str; 2],
        routes: &[(&str, &str)],
        igmp: Option<&str>,
    ) -> Router {
        for (i, a) in ifaces.iter().zip(addrs) {
            ns.exec("ip", &["addr", "add", a, "dev", i]).unwrap();
        }
        for (to, via) in routes {
            ns.exec("ip", &["route", "add", to, "via", via]).unwrap();
        }
        for k in ["all", "default"] {
            ns.exec("sysctl", &["-qw", &format!("net.ipv4.conf.{k}.rp_filter=0")]).unwrap();
        }
        ns.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"]).unwrap();
        let args =
            ["--iface", ifaces[0], "--iface", ifaces[1], "--follow-kernel"].map(String::from);
        let mgmd = Mgmd::start(&ns, &args).unwrap();
        let frr = Frr::start(&ns, &frr_conf(&ns.name, &ifaces, igmp)).unwrap();
        Router { _frr: frr, mgmd, ns }
    }

    /// The receiver's numbers, and the sender's: a paced numbered flow S → G:5000.
    struct Flow {
        stop: Arc<AtomicBool>,
        last: Arc<AtomicU64>,
        tx: Option<std::thread::JoinHandle<()>>,
        rx: Option<std::thread::JoinHandle<BTreeSet<u64>>>,
    }

    impl Drop for Flow {
        /// A failed test stops its threads too.
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
        }
    }

    impl Flow {
        fn start(src: &Netns, rcv: &Netns) -> Self {
            let stop = Arc::new(AtomicBool::new(false));
            let last = Arc::new(AtomicU64::new(0));
            let r = rcv
                .enter(|| {
                    let s = UdpSocket::bind("0.0.0.0:5000")?;
                    s.join_multicast_v4(&G.parse()?, &"10.0.5.2".parse()?)?;
                    s.set_read_timeout(Some(Duration::from_millis(50)))?;
                    Ok(s)
                })
                .unwrap();
            let t = src
                .enter(|| {
                    let s = UdpSocket::bind((S, 0))?;
                    s.set_multicast_ttl_v4(16)?;
                    Ok(s)
                })
                .unwrap();
            let rx = {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut seen = BTreeSet::new();
                    let mut buf = [0u8; 64];
                    while !stop.load(Ordering::Relaxed) {
                        if let Ok(n) = r.recv(&mut buf)
                            && let Some(v) =
                                std::str::from_utf8(&buf[..n]).ok().and_then(|s| s.parse().ok())
                        {
                            seen.insert(v);
                        }
                    }
                    seen
                })
            };
            let tx = {
                let (stop, last) = (stop.clone(), last.clone());
                std::thread::spawn(move || {
                    let mut seq = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        seq += 1;
                        last.store(seq, Ordering::SeqCst);
                        let _ = t.send_to(seq.to_string().as_bytes(), (G, 5000));
                        std::thread::sleep(Duration::from_millis(5));
                    }
                })
            };
            Self { stop, last, tx: Some(tx), rx: Some(rx) }
        }

        fn last(&self) -> u64 {
            self.last.load(Ordering::SeqCst)
        }

        fn finish(mut self) -> (u64, BTreeSet<u64>) {
            let last = self.last();
            std::thread::sleep(Duration::from_millis(300));
            self.stop.store(true, Ordering::Relaxed);
            self.tx.take().unwrap().join().unwrap();
            (last, self.rx.take().unwrap().join().unwrap())
        }
    }

    /// Receivers join by IGMP at the last hop, the source sends, PIM builds the tree (register
    /// to the RP, then the shortest path tree: here the same links), and every router forwards
    /// the (S,G) in XDP. The (S,G) outlives FRR's keepalive (the heartbeat keeps the kernel's
    /// counters moving): the same fast-path entries count the whole flow, and nothing is lost.
    /// A wrong-interface packet still reaches the kernel, which counts it for pimd.
    #[test]
    fn frr_pim_sm_on_three_routers_is_forwarded_in_xdp_past_the_keepalive() {
        mgm_tests::needs(&[mgm_tests::Need::Ipmr]);
        let src = Netns::new("fsrc").unwrap();
        let (fhr, rp, lhr) =
            (Netns::new("ffhr").unwrap(), Netns::new("frp").unwrap(), Netns::new("flhr").unwrap());
        let rcv = Netns::new("frcv").unwrap();
        veth(&src, "s0", &fhr, "f0").unwrap();
        veth(&fhr, "f1", &rp, "p0").unwrap();
        veth(&rp, "p1", &lhr, "l0").unwrap();
        veth(&lhr, "l1", &rcv, "r0").unwrap();
        src.exec("ip", &["addr", "add", "10.0.1.1/24", "dev", "s0"]).unwrap();
        src.exec("ip", &["route", "add", "default", "via", "10.0.1.254"]).unwrap();
        // XDP cannot finish a partial checksum (see Topology::add_addresses).
        src.exec("ethtool", &["-K", "s0", "tx", "off"]).unwrap();
        rcv.exec("ip", &["addr", "add", "10.0.5.2/24", "dev", "r0"]).unwrap();
        rcv.exec("ip", &["route", "add", "default", "via", "10.0.5.1"]).unwrap();
        // Frames XDP redirects into a veth need its peer to run XDP or GRO.
        rcv.exec("ethtool", &["-K", "r0", "gro", "on"]).unwrap();

        let routers = [
            router(
                fhr,
                ["f0", "f1"],
                ["10.0.1.254/24", "10.0.2.1/24"],
                &[("10.0.3.0/24", "10.0.2.2"), ("10.0.5.0/24", "10.0.2.2")],
                None,
            ),
            router(
                rp,
                ["p0", "p1"],
                ["10.0.2.2/24", "10.0.3.1/24"],
                &[("10.0.1.0/24", "10.0.2.1"), ("10.0.5.0/24", "10.0.3.2")],
                None,
            ),
            router(
                lhr,
                ["l0", "l1"],
                ["10.0.3.2/24", "10.0.5.1/24"],
                &[("10.0.1.0/24", "10.0.3.1"), ("10.0.2.0/24", "10.0.3.1")],
                Some("l1"),
            ),
        ];
        let mut ctls: Vec<Ctl> = routers.iter().map(Router::ctl).collect();
        let flow = Flow::start(&src, &rcv);

        // PIM: neighbours, the IGMP join, register, the (S,G) joins; then each router mirrors
        // its (S,G).
        let deadline = Instant::now() + Duration::from_secs(60);
        for (r, ctl) in routers.iter().zip(&mut ctls) {
            loop {
                let m = ctl.mfe(S, G).unwrap();
                if m.as_ref().is_some_and(|m| {
                    m.origin == mgm::proto::Origin::Kernel && !m.mfe.oifs.is_empty()
                }) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{}: (S,G) not mirrored: {m:?}\n{}",
                    r.ns.name,
                    r.ns.exec("ip", &["mroute"]).unwrap()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        std::thread::sleep(Duration::from_secs(1));
        let mark = flow.last();
        let start: Vec<u64> =
            ctls.iter_mut().map(|c| c.mfe(S, G).unwrap().unwrap().counters().in_packets).collect();
        let kernel_start: Vec<u64> = routers.iter().map(|r| r.kernel_counts().0).collect();

        // Past the keepalive (and a running check after it).
        std::thread::sleep(Duration::from_secs(KAT_SECS + 15));
        let sent = flow.last() - mark;
        for (((r, ctl), before), kernel_before) in
            routers.iter().zip(&mut ctls).zip(&start).zip(&kernel_start)
        {
            // What pimd reads moved: the heartbeat (about one packet a second per CPU).
            let moved = r.kernel_counts().0 - kernel_before;
            assert!(moved >= KAT_SECS / 2, "{}: the kernel counted {moved} packets", r.ns.name);
            let m = ctl.mfe(S, G).unwrap().unwrap_or_else(|| panic!("{}: (S,G) gone", r.ns.name));
            // The same entry counted (nearly) every packet: a re-created one would start at 0.
            let counted = m.counters().in_packets.saturating_sub(*before);
            assert!(
                counted >= sent * 9 / 10,
                "{}: XDP forwarded {counted} of {sent} since the mark: {m:?}",
                r.ns.name
            );
        }

        // A packet of the flow arriving at the RP on the wrong interface: the kernel gets it.
        let rp = &routers[1];
        let wrong_before = rp.kernel_counts().1;
        let passed = ctls[1].counter("pass_kernel").unwrap();
        let lhr_mac = routers[2].ns.mac("l0").unwrap();
        let tx = PacketSocket::open(&routers[2].ns, "l0").unwrap();
        let frame = udp_frame(lhr_mac, [10, 0, 1, 1], [239, 1, 1, 1], 16, b"wrong way");
        for _ in 0..3 {
            tx.send(&frame).unwrap();
        }
        std::thread::sleep(Duration::from_millis(300));
        assert!(ctls[1].counter("pass_kernel").unwrap() >= passed + 3, "left to the kernel");
        assert!(
            rp.kernel_counts().1 > wrong_before,
            "the kernel counted no wrong-interface packet"
        );

        let (last, seen) = flow.finish();
        let lost = gaps_between(&seen, mark, last.saturating_sub(20));
        assert!(lost.is_empty(), "lost {} of the flow: {lost:?}", lost.len());
    }
}
