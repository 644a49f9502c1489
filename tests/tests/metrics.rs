// SPDX-License-Identifier: MIT OR Apache-2.0
//! The Prometheus endpoint (`mgmd --metrics`): scraped over HTTP inside the router's
//! namespace, its values are what mgmctl reports (fast-path counters by reason, table sizes,
//! clients), its per-interface copies are the copies the receivers got, and scrapers that
//! do not speak do not keep a scraper out. Needs root.

use std::{
    collections::BTreeMap,
    io::{Read as _, Write as _},
    net::TcpStream,
    time::{Duration, Instant},
};

use mgm_tests::{Family, Netns, SeqFlow, Topology};

const ADDR: &str = "127.0.0.1:9750";

/// One HTTP exchange inside `ns`: the status line and the body.
fn get(ns: &Netns, path: &str) -> (String, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: mgmd\r\nConnection: close\r\n\r\n");
    let text = ns
        .enter(move || {
            let mut s = TcpStream::connect(ADDR)?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            s.write_all(request.as_bytes())?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        })
        .unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.lines().next().unwrap_or("").to_owned(), body.to_owned())
}

/// The samples of an OpenMetrics text: `name{labels}` → value.
fn samples(body: &str) -> BTreeMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

#[test]
fn a_scrape_reports_what_mgmctl_reports_and_the_copies_receivers_got() {
    let family = Family::V4;
    let mut t = Topology::new(2).unwrap();
    t.add_addresses_for(family).unwrap();
    let mfe = format!("{},{},rin,r1+r2", family.source(), family.group());
    t.start(&["--mfe", &mfe, "--metrics", ADDR]).unwrap();
    let mut pim = t.ctl().unwrap();
    pim.register(103).unwrap();
    let flow = SeqFlow::start_for(&t, family, 2, 1_000).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let (sent, seen) = flow.finish();
    std::thread::sleep(Duration::from_millis(200));

    let (status, body) = get(&t.router, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert!(body.ends_with("# EOF\n"), "OpenMetrics text ends with # EOF");
    let m = samples(&body);
    let v = |k: &str| *m.get(k).unwrap_or_else(|| panic!("no {k} in\n{body}")) as u64;

    // The fast path's counters, by reason, are mgmctl's.
    let snap = pim.show().unwrap();
    for (reason, n) in &snap.counters {
        let scraped = v(&format!("mgm_fastpath_packets_total{{reason=\"{reason}\"}}"));
        // Packets the kernel still sends on its own (IPv6 router solicitations, ARP) may
        // arrive between the two reads: never fewer in the later one.
        assert!(scraped <= *n && *n <= scraped + 5, "{reason}: scraped {scraped}, then {n}");
    }
    assert!(v("mgm_fastpath_packets_total{reason=\"forwarded\"}") >= sent * 9 / 10);
    assert_eq!(v("mgm_upcalls_total"), snap.counters["upcall_sent"]);
    assert_eq!(v("mgm_upcalls_lost_total"), snap.counters["upcall_lost"]);
    let s = pim.status().unwrap();
    assert_eq!(v("mgm_fastpath_mfes"), s.installed as u64);
    assert_eq!(v("mgm_mfes"), s.mfes as u64);
    assert_eq!(v("mgm_oils"), s.oils as u64);
    assert_eq!(v("mgm_pending_writes"), s.pending_writes as u64);
    assert_eq!(v("mgm_write_failures_total"), s.write_failures);
    assert_eq!(v("mgm_static_mfes"), 1);
    assert_eq!(v("mgm_clients"), snap.protocols.len() as u64);
    assert_eq!(v("mgm_clients"), 1);
    assert!(v("mgm_connections") >= 1);
    assert_eq!(v("mgm_interfaces"), snap.interfaces.len() as u64);
    assert_eq!(v("mgm_fastpath_mfes_capacity"), 65_536);

    // Each interface's copies: one per packet the MFE forwarded (it is the interfaces'
    // only MFE), and what its receiver got.
    let mfe = snap.mfes.iter().find(|m| m.mfe.group == family.group()).expect("the static MFE");
    let forwarded = mfe.counters().in_packets - mfe.counters().ttl_expired;
    for (i, name) in ["r1", "r2"].iter().enumerate() {
        let copies = v(&format!("mgm_interface_copies_total{{interface=\"{name}\"}}"));
        let bytes = v(&format!("mgm_interface_copy_bytes_total{{interface=\"{name}\"}}"));
        assert_eq!(copies, forwarded, "{name}");
        assert_eq!(bytes, mfe.counters().in_octets, "{name}");
        let got = seen[i].len() as u64;
        assert!((got..=got + 20).contains(&copies), "{name}: received {got}, counted {copies}");
        assert_eq!(v(&format!("mgm_interface_copy_drops_total{{interface=\"{name}\"}}")), 0);
    }
    assert_eq!(v("mgm_interface_copies_total{interface=\"rin\"}"), 0);

    assert_eq!(get(&t.router, "/other").0, "HTTP/1.1 404 Not Found");
}

#[test]
fn scrapers_that_do_not_speak_do_not_keep_a_scraper_out() {
    let mut t = Topology::new(1).unwrap();
    t.start(&["--metrics", ADDR]).unwrap();
    // Eight connections that never send a request, held open meanwhile.
    let idle = t
        .router
        .enter(|| Ok((0..8).map(|_| TcpStream::connect(ADDR)).collect::<Result<Vec<_>, _>>()?))
        .unwrap();
    let start = Instant::now();
    let (status, body) = get(&t.router, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(samples(&body).contains_key("mgm_interfaces"));
    assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
    // The daemon's clients are not kept waiting either.
    assert!(t.ctl().unwrap().status().is_ok());
    drop(idle);
}

/// 64 clients that send half a request and reconnect as soon as they are closed (all the
/// endpoint's places, taken again at once) do not keep a real scraper out: each of its
/// scrapes is answered, in well under the request deadline.
#[test]
fn clients_that_send_half_a_request_and_reconnect_do_not_keep_a_scraper_out() {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    };
    let mut t = Topology::new(1).unwrap();
    t.start(&["--metrics", ADDR]).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let connects = Arc::new(AtomicU64::new(0));
    let hostile: Vec<_> = (0..64)
        .map(|_| {
            let (stop, connects) = (stop.clone(), connects.clone());
            let ns = t.router.name.clone();
            std::thread::spawn(move || {
                let file = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
                nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut s) = TcpStream::connect(ADDR) else { continue };
                    connects.fetch_add(1, Ordering::Relaxed);
                    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: mgmd\r\n");
                    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                    let mut buf = [0u8; 64];
                    // Until mgmd closes it (or half a second, to check `stop`).
                    while !stop.load(Ordering::Relaxed) && s.read(&mut buf).is_err() {}
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let mut answered = 0;
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let start = Instant::now();
        let (status, body) = get(&t.router, "/metrics");
        slowest = slowest.max(start.elapsed());
        if status == "HTTP/1.1 200 OK" && samples(&body).contains_key("mgm_interfaces") {
            answered += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    hostile.into_iter().for_each(|h| h.join().unwrap());
    let n = connects.load(Ordering::Relaxed);
    eprintln!("{answered} of 20 scrapes answered, slowest {slowest:?}; {n} hostile connects");
    assert!(n >= 64, "the hostile clients connected {n} times");
    assert_eq!(answered, 20, "scrapes answered (slowest {slowest:?}, {n} hostile connects)");
    assert!(slowest < Duration::from_secs(2), "slowest scrape {slowest:?}");
}
