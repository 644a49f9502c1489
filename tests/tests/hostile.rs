// SPDX-License-Identifier: MIT OR Apache-2.0
//! mgmd against careless and hostile clients, with the real daemon and sockets: nothing a client
//! sends, at any value and at any later time, takes mgmd down or costs another client its
//! service. Needs root.

use std::time::Duration;

use mgm::proto::{self, ErrorCode};
use mgm_tests::{GROUP, Mgmd, Topology, request_id, udp_frame};

const G: &str = "239.1.1.1";
const WAIT: Duration = Duration::from_secs(5);

/// Every numeric parameter of `answer_prune` at its extremes: refused or saturated, never a
/// panic, neither at once nor when traffic later refreshes the MFE.
#[test]
fn extreme_numbers_are_refused_or_saturated_and_never_crash_mgmd() {
    let mut t = Topology::new(1).unwrap();
    t.mgmd = Some(Mgmd::start(&t.router, &[]).unwrap());
    let idx = |n: &str| t.router.ifindex(n).unwrap();
    let (rin, r1) = (idx("rin"), idx("r1"));
    let mut pim = t.ctl().unwrap();
    let h = pim.protocol_with(103, &[rin, r1], &[r1], G).unwrap();
    let send = |n| {
        for _ in 0..n {
            t.tx.send(&udp_frame(t.sender_mac, mgm_tests::SOURCE, GROUP, 8, b"x")).unwrap();
        }
    };
    send(1);
    pim.answer_creation(h, WAIT).unwrap();
    // The last member leaves: the MFE's list is empty, PIM is asked for its timeout.
    let del = proto::DeleteMembership(mgm_tests::membership(h, G, r1));
    pim.call(del).unwrap();
    let (alert, _) = pim.wait_event("prune_alert", WAIT).unwrap();
    let request = request_id(&alert).unwrap();
    for timeout_secs in [u64::MAX, u64::MAX - 30, u64::from(u32::MAX) + 1] {
        let answer = proto::AnswerPrune { handle: h, request, timeout_secs };
        assert_eq!(pim.call_err(answer).unwrap(), ErrorCode::InvalidParameter, "{timeout_secs}");
    }
    let answer = proto::AnswerPrune { handle: h, request, timeout_secs: u64::from(u32::MAX) };
    pim.call(answer).unwrap();
    // Traffic refreshes the MFE (the sweep reads its counters within 5 s).
    for _ in 0..12 {
        send(5);
        std::thread::sleep(Duration::from_millis(500));
    }
    let mfe = pim.call(proto::GetMfe {
        source: "10.1.0.1".parse().unwrap(),
        group: G.parse().unwrap(),
        max_entries: 1,
        stats: false,
    });
    assert_eq!(mfe.unwrap().mfe.timeout_secs, u64::from(u32::MAX));
    assert_eq!(
        pim.call(proto::Hello {}).unwrap().protocol,
        mgm::proto::PROTOCOL_VERSION,
        "mgmd is alive"
    );
    let log = t.mgmd.as_ref().unwrap().log();
    assert!(!log.contains("panicked"), "{log}");
}

/// A client that sends its requests and then shuts down its sending side (as `nc -N` and
/// `socat` do) gets every reply before the connection closes.
#[test]
fn a_half_closed_client_gets_every_reply() {
    use std::io::{Read as _, Write as _};
    let ns = mgm_tests::Netns::new("half").unwrap();
    let d = Mgmd::start(&ns, &[]).unwrap();
    for attempt in 0..20 {
        let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut script = String::new();
        for id in 1..=10 {
            script.push_str(&format!("{{\"id\":{id},\"method\":\"status\"}}\n"));
        }
        s.write_all(script.as_bytes()).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let ids: Vec<u64> = out
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_u64().unwrap())
            .collect();
        assert_eq!(ids, (1..=10).collect::<Vec<_>>(), "attempt {attempt}: {out}");
    }
}

/// A second mgmd on another socket but the same pin directory is refused before it touches
/// anything: it would take over the first one's fast path.
#[test]
fn a_second_mgmd_on_the_same_pin_directory_is_refused() {
    let ns = mgm_tests::Netns::new("pins").unwrap();
    let d = Mgmd::start(&ns, &[]).unwrap();
    let other = std::env::temp_dir().join(mgm_tests::unique("other")).join("mgmd.sock");
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", ns.name))
        .arg(mgm_tests::bin("mgmd"))
        .arg("--socket")
        .arg(&other)
        .arg("--pin-dir")
        .arg(&d.pin_dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the second mgmd started: {err}");
    assert!(err.contains("pin directory"), "{err}");
    assert!(!other.exists(), "it bound no socket");
    assert_eq!(
        d.ctl().unwrap().call(proto::Hello {}).unwrap().protocol,
        mgm::proto::PROTOCOL_VERSION
    );
    // And `--cleanup` of a pin directory in use is refused the same way.
    let out = std::process::Command::new(mgm_tests::bin("mgmd"))
        .arg("--socket")
        .arg(&other)
        .arg("--cleanup")
        .arg("--pin-dir")
        .arg(&d.pin_dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(other.parent().unwrap());
    assert!(!out.status.success());
    assert!(d.pin_dir.exists(), "pins kept");
}

/// One client taking next hops without end runs into its interface limit (not_enough_memory,
/// Win32 8), long before the fast path's lease table is full; another client still takes,
/// joins and gets its traffic.
#[test]
fn one_client_cannot_take_every_lease_from_the_others() {
    let mut t = Topology::new(2).unwrap();
    t.mgmd =
        Some(Mgmd::start(&t.router, &["--max-interfaces-per-conn".into(), "500".into()]).unwrap());
    let idx = |n: &str| t.router.ifindex(n).unwrap();
    let (rin, r1, r2) = (idx("rin"), idx("r1"), idx("r2"));
    let mut greedy = t.ctl().unwrap();
    let a = greedy.register(200).unwrap();
    let takes = (0..600u32).map(|i| proto::TakeInterface {
        handle: a,
        ifindex: r1,
        nexthop: std::net::Ipv4Addr::from(0x0a09_0000 + i).into(),
    });
    let results = greedy.pipeline(takes).unwrap();
    let refused: Vec<&proto::WireError> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 500);
    assert_eq!(refused.len(), 100);
    assert!(refused.iter().all(|e| e.code == ErrorCode::NotEnoughMemory && e.win32 == Some(8)));
    assert_eq!(greedy.status().unwrap().leases_alive, 500, "nothing for the refused ones");

    let mut pim = t.ctl().unwrap();
    let h = pim.protocol_with(103, &[rin, r2], &[r2], G).unwrap();
    let caps = t.captures().unwrap();
    let tag = mgm_tests::magic("fair");
    t.tx.send(&t.frame(8, &tag)).unwrap();
    pim.answer_creation(h, WAIT).unwrap();
    for _ in 0..20 {
        t.tx.send(&t.frame(8, &tag)).unwrap();
    }
    pim.wait_counters(&["forwarded"], 20).unwrap();
    let got =
        mgm_tests::with_magic(&caps[1].drain(Duration::from_millis(300)).unwrap(), &tag).len();
    assert!(got >= 20, "r2 got {got} of 20");
}

/// Static MFEs may fill only their share of the MFE table (half by default): a client adding
/// them without end is refused with not_enough_memory, and traffic-created entries still get
/// in.
#[test]
fn static_mfes_cannot_fill_the_table_traffic_needs() {
    let mut t = Topology::new(1).unwrap();
    t.mgmd = Some(
        Mgmd::start(
            &t.router,
            &[
                "--iface".into(),
                "rin".into(),
                "--iface".into(),
                "r1".into(),
                "--max-mfes".into(),
                "1024".into(),
            ],
        )
        .unwrap(),
    );
    let mut filler = t.ctl().unwrap();
    let statics = (0..600u32).map(|i| mgm::config::StaticMfe {
        source: std::net::Ipv4Addr::from(0x0a08_0000 + i).into(),
        group: "239.8.8.8".parse().unwrap(),
        iif: "rin".into(),
        oifs: vec!["r1".into()],
    });
    let results = filler.pipeline(statics).unwrap();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 512, "half of 1,024");
    let e = results.last().unwrap().as_ref().unwrap_err();
    assert_eq!((e.code, e.win32), (ErrorCode::NotEnoughMemory, Some(8)));

    let (rin, r1) = (t.router.ifindex("rin").unwrap(), t.router.ifindex("r1").unwrap());
    let mut pim = t.ctl().unwrap();
    let h = pim.protocol_with(103, &[rin, r1], &[r1], G).unwrap();
    t.tx.send(&t.frame(8, b"traffic")).unwrap();
    pim.answer_creation(h, WAIT).unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while pim.status().unwrap().installed < 513 {
        assert!(std::time::Instant::now() < deadline, "the traffic-created MFE never got in");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(pim.status().unwrap().write_failures, 0);
}

/// Idle connections of one user cannot lock the others out: past its limit a user gets one
/// `too_many_connections` line; root still gets in; a slot given back is usable again. And
/// mgmd raised its open-files limit, so 1,500 idle root connections do not exhaust it.
#[test]
fn connections_are_capped_per_user_and_root_always_gets_in() {
    let ns = mgm_tests::Netns::new("conns").unwrap();
    let args: Vec<String> =
        ["--socket-group", "65534", "--max-conns-per-uid", "3"].map(Into::into).to_vec();
    let d = Mgmd::start(&ns, &args).unwrap();
    std::fs::set_permissions(
        d.socket.parent().unwrap(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let as_nobody = |cmd: &str| {
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(mgm_tests::bin("mgmctl"))
            .arg("--socket")
            .arg(&d.socket)
            .arg(cmd)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Three idle connections of nobody's (each `mgmctl watch` holds one open).
    let mut watchers: Vec<std::process::Child> = (0..3).map(|_| as_nobody("watch")).collect();
    let deadline = std::time::Instant::now() + WAIT;
    while d.log().matches("Some((65534").count() < 3 {
        assert!(std::time::Instant::now() < deadline, "watchers did not connect");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let out = as_nobody("hello").wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("too_many_connections"), "{out:?}");
    // Root is not counted: a thousand and a half idle root connections, and one more works
    // (this test process needs the file descriptors for its side too).
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    let idle: Vec<std::os::unix::net::UnixStream> =
        (0..1500).map(|_| std::os::unix::net::UnixStream::connect(&d.socket).unwrap()).collect();
    assert_eq!(
        d.ctl().unwrap().call(proto::Hello {}).unwrap().protocol,
        mgm::proto::PROTOCOL_VERSION
    );
    drop(idle);
    // A watcher leaves: nobody may connect again.
    let mut w = watchers.pop().unwrap();
    w.kill().unwrap();
    w.wait().unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let out = as_nobody("hello").wait_with_output().unwrap();
        if out.status.success() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the slot never came back: {out:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    for mut w in watchers {
        let _ = w.kill();
        let _ = w.wait();
    }
}

/// Big reads are bounded: `show` lists the first `max_entries` MFEs and says there are more,
/// and a reply larger than the client's whole queue is still delivered (a reply is never a
/// reason to cut its reader off).
#[test]
fn big_reads_are_paged_and_never_cut_their_reader_off() {
    let ns = mgm_tests::Netns::new("big").unwrap();
    mgm_tests::veth(&ns, "b0", &ns, "b1").unwrap();
    let args = ["--iface", "b0", "--iface", "b1", "--client-queue-bytes", "65536"];
    let d = Mgmd::start(&ns, &args.map(Into::into)).unwrap();
    let mut c = d.ctl().unwrap();
    let n = 3000u32;
    let statics = (0..n).map(|i| mgm::config::StaticMfe {
        source: std::net::Ipv4Addr::from(0x0a0a_0000 + i).into(),
        group: "239.10.10.10".parse().unwrap(),
        iif: "b0".into(),
        oifs: vec!["b1".into()],
    });
    assert!(c.pipeline(statics).unwrap().iter().all(Result::is_ok));
    let show = c.show().unwrap();
    assert_eq!((show.mfes.len(), show.more_mfes), (proto::SHOW_ENTRIES, true));
    // All of them in one reply, about 8 times the client's queue: still delivered.
    let all = c.call(proto::Show { max_entries: n as usize }).unwrap();
    assert_eq!((all.mfes.len(), all.more_mfes), (n as usize, false));
    assert_eq!(c.status().unwrap().installed, n as usize);
}

/// A sender spraying one-packet flows with distinct sources on a routing protocol's interface
/// cannot fill the MFE table against a real flow: creations are rate-limited per interface,
/// the table never holds more than the fast path does (no write fails), entries that never
/// saw traffic beyond their first packets are evicted for new ones, and the real flow is
/// forwarded.
#[test]
fn a_source_spray_does_not_starve_a_real_flow() {
    let mut t = Topology::new(1).unwrap();
    t.start(&["--max-mfes", "1024"]).unwrap();
    let (rin, r1) = (t.router.ifindex("rin").unwrap(), t.router.ifindex("r1").unwrap());
    let mut pim = t.ctl().unwrap();
    // Nobody answers the callbacks: every flow gets its MFE with the defaults after 4 s.
    pim.protocol_with(103, &[rin, r1], &[r1], G).unwrap();
    let cap = mgm_tests::PacketSocket::open(&t.receivers[0], "eth0").unwrap();
    let tag = mgm_tests::magic("real");
    let spray: Vec<Vec<u8>> = (0..6000u32)
        .map(|i| {
            let mut f =
                udp_frame(t.sender_mac, (0x0ac8_0000 + i).to_be_bytes(), GROUP, 8, b"spray");
            mgm_tests::fix_ipv4_checksum(&mut f);
            f
        })
        .collect();
    let real = t.frame(8, &tag);
    // The real flow at 100 packets a second for 9 s; the spray in its first second.
    let mut last_second = 0;
    for tick in 0..900 {
        t.tx.send(&real).unwrap();
        if tick < 100 {
            for f in &spray[tick * 60..tick * 60 + 60] {
                t.tx.send(f).unwrap();
            }
        }
        if tick == 800 {
            cap.drain(Duration::from_millis(1)).unwrap();
        }
        std::thread::sleep(Duration::from_millis(10));
        if tick == 899 {
            last_second =
                mgm_tests::with_magic(&cap.drain(Duration::from_millis(200)).unwrap(), &tag).len();
        }
        if tick % 100 == 0 {
            pim.drop_events();
            pim.status().unwrap();
        }
    }
    let s = pim.status().unwrap();
    assert!(s.installed <= 1024, "{s:?}");
    assert_eq!(s.write_failures, 0, "the core never outgrew the fast path: {s:?}");
    assert!(s.flows_refused > 0, "the spray was held back: {s:?}");
    assert!(last_second >= 80, "the real flow got {last_second} of the last 100: {s:?}");
}

/// A routing daemon with a large join-state table (another protocol registered, so every add
/// and delete is an alert to it): its adds stay cheap, and releasing the interface, then
/// leaving, are done in steps. A third client is served while they are under way (it sees
/// them in `status`), the protocol reading the alerts gets every one and keeps its
/// connection, and the release is answered only once all of its entries are gone.
#[test]
fn a_big_join_state_table_is_released_and_taken_down_in_steps_while_others_are_served() {
    const N: u32 = 150_000;
    let mut t = Topology::new(1).unwrap();
    t.start(&[]).unwrap();
    let r1 = t.router.ifindex("r1").unwrap();
    let mut a = t.ctl().unwrap();
    let ha = a.register(103).unwrap();
    let mut b = t.ctl().unwrap();
    b.register(104).unwrap();
    // B reads everything: N join alerts per fill, N prune alerts per release.
    let alerts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = alerts.clone();
    let reader = std::thread::spawn(move || {
        while let Ok(e) = b.next_event(Duration::from_secs(60)) {
            if e["event"] == "prune_alert" {
                count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    let prunes = || alerts.load(std::sync::atomic::Ordering::Relaxed);
    let fill = |a: &mut mgm_tests::Ctl| {
        a.take(ha, r1).unwrap();
        let adds = (0..N).map(|i| {
            let group = std::net::Ipv4Addr::from(0xef40_0000 + i).to_string();
            proto::AddMembership(mgm_tests::membership(ha, &group, r1))
        });
        assert!(a.pipeline(adds).unwrap().iter().all(Result::is_ok));
        a.drop_events();
    };
    let mut c = t.ctl().unwrap();
    // A third client's requests are answered between the steps of `work`.
    let served_meanwhile = |c: &mut mgm_tests::Ctl| {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if c.status().unwrap().releasing > 0 {
                return true;
            }
            if std::time::Instant::now() > deadline {
                return false;
            }
        }
    };

    fill(&mut a);
    let id = a.send(proto::ReleaseInterface { handle: ha, ifindex: r1, nexthop: [0; 4].into() });
    assert!(served_meanwhile(&mut c), "no request of C's was answered during the release");
    a.reply::<proto::ReleaseInterface>(id.unwrap()).unwrap();
    assert_eq!(c.show().unwrap().memberships.len(), 0, "answered before its entries were gone");
    let wait_prunes = |n: usize| {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while prunes() < n && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        prunes()
    };
    assert_eq!(wait_prunes(N as usize), N as usize, "B got a prune alert per group");

    fill(&mut a);
    drop(a);
    assert!(served_meanwhile(&mut c), "no request of C's was answered during the teardown");
    assert_eq!(wait_prunes(2 * N as usize), 2 * N as usize);
    while c.status().unwrap().releasing > 0 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let show = c.show().unwrap();
    assert_eq!(show.protocols.len(), 1, "only B is left: {:?}", show.protocols);
    let log = t.mgmd.as_ref().unwrap().log();
    assert!(log.contains("releases done in steps"), "{log}");
    drop(t);
    reader.join().unwrap();
}

/// An operator's static MFE over an (S,G) the MGM core holds takes that flow; removing it
/// gives the flow back to the core's entry at once (not after the MGM MFE's expiry).
#[test]
fn removing_a_static_mfe_gives_its_flow_back_to_the_mgm_entry() {
    let mut t = Topology::new(2).unwrap();
    t.start(&[]).unwrap();
    let idx = |n: &str| t.router.ifindex(n).unwrap();
    let (rin, r1, r2) = (idx("rin"), idx("r1"), idx("r2"));
    let mut pim = t.ctl().unwrap();
    let h = pim.protocol_with(103, &[rin, r1, r2], &[r1], G).unwrap();
    let caps = t.captures().unwrap();
    let burst = |tag: &str| {
        let tag = mgm_tests::magic(tag);
        for _ in 0..10 {
            t.tx.send(&t.frame(8, &tag)).unwrap();
        }
        let got = |i: usize| {
            mgm_tests::with_magic(&caps[i].drain(Duration::from_millis(300)).unwrap(), &tag).len()
        };
        (got(0), got(1))
    };
    t.tx.send(&t.frame(8, b"first")).unwrap();
    pim.answer_creation(h, WAIT).unwrap();
    // The entry is in the fast path once a packet goes through (the held first one is not
    // forwarded on every kernel: a later one tells).
    let deadline = std::time::Instant::now() + WAIT;
    while pim.counter("forwarded").unwrap() == 0 {
        assert!(std::time::Instant::now() < deadline, "the MGM entry never forwarded");
        t.tx.send(&t.frame(8, b"probe")).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(burst("mgm"), (10, 0), "the MGM entry: to r1");
    let mut op = t.ctl().unwrap();
    let spec = mgm::config::StaticMfe {
        source: "10.1.0.1".parse().unwrap(),
        group: G.parse().unwrap(),
        iif: "rin".into(),
        oifs: vec!["r2".into()],
    };
    op.call(spec).unwrap();
    assert_eq!(burst("static"), (0, 10), "the operator's static entry: to r2");
    op.call(proto::DelMfe { source: "10.1.0.1".parse().unwrap(), group: G.parse().unwrap() })
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while op.status().unwrap().pending_writes > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(burst("back"), (10, 0), "the MGM entry again");
    assert!(pim.mfe("10.1.0.1", G).unwrap().is_some(), "the core kept its entry");
}

/// Two MGM rules, through the socket. A routing protocol taking an interface IGMP already
/// owns learns IGMP's receivers there (`local_join`), as it will learn of them leaving. The
/// owner of an MFE's incoming interface hears `join_alert` with `member_add: false` when
/// the MFE's outgoing list goes from empty to non-empty (the mirror of the prune alert with
/// `member_delete: false`).
#[test]
fn a_new_routing_owner_learns_igmp_receivers_and_an_mfe_gaining_receivers_is_a_join_alert() {
    let mut t = Topology::new(1).unwrap();
    t.start(&[]).unwrap();
    let (rin, r1) = (t.router.ifindex("rin").unwrap(), t.router.ifindex("r1").unwrap());
    let mut igmp = t.ctl().unwrap();
    let hi = igmp.protocol_with(mgm::manager::PROTO_IP_IGMP, &[r1], &[r1], G).unwrap();
    let mut pim = t.ctl().unwrap();
    let h = pim.protocol_with(103, &[rin, r1], &[], G).unwrap();
    let (join, _) = pim.wait_event("local_join", WAIT).unwrap();
    assert_eq!(join["entry"]["group"], G);
    assert_eq!(join["iface"]["ifindex"], r1);
    igmp.wait_event("disable_igmp", WAIT).unwrap();
    igmp.wait_event("enable_igmp", WAIT).unwrap();
    igmp.call(proto::DeleteMembership(mgm_tests::membership(hi, G, r1))).unwrap();
    let (leave, _) = pim.wait_event("local_leave", WAIT).unwrap();
    assert_eq!(leave["entry"]["group"], G);

    // A flow with nobody to forward to: its MFE is created empty (a prune alert without
    // member delete); then a receiver joins.
    t.tx.send(&t.frame(8, b"first")).unwrap();
    let (rpf, _) = pim.wait_event("rpf", WAIT).unwrap();
    let request = request_id(&rpf).unwrap();
    let answer =
        proto::AnswerRpf { handle: h, request, ifindex: rin, nexthop: None, upstream: None };
    pim.call(answer).unwrap();
    let (prune, _) = pim.wait_event("prune_alert", WAIT).unwrap();
    assert_eq!(prune["member_delete"], false);
    igmp.call(proto::AddMembership(mgm_tests::membership(hi, G, r1))).unwrap();
    let (alert, _) = pim.wait_event("join_alert", WAIT).unwrap();
    assert_eq!(alert["member_add"], false, "{alert}");
    assert_eq!(alert["entry"]["source"], "10.1.0.1", "{alert}");
}
