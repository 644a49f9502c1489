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
    let (status, _, body) = get_as(ns, ADDR, path, None);
    (status, body)
}

/// The same to `addr`, with an `Accept` header if any: the status line, the content type,
/// the body.
fn get_as(ns: &Netns, addr: &str, path: &str, accept: Option<&str>) -> (String, String, String) {
    try_get_as(ns, addr, path, accept).unwrap()
}

/// [`get_as`], or why the exchange failed.
fn try_get_as(
    ns: &Netns,
    addr: &str,
    path: &str,
    accept: Option<&str>,
) -> anyhow::Result<(String, String, String)> {
    let accept = accept.map(|a| format!("Accept: {a}\r\n")).unwrap_or_default();
    let request = format!("GET {path} HTTP/1.1\r\nHost: mgmd\r\n{accept}Connection: close\r\n\r\n");
    let addr = addr.to_owned();
    let text = ns.enter(move || {
        let mut s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(request.as_bytes())?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    })?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let ctype = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-type: ").map(str::to_owned))
        .unwrap_or_default();
    Ok((head.lines().next().unwrap_or("").to_owned(), ctype, body.to_owned()))
}

/// What Prometheus 2 sends.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/\
    openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// `promtool check metrics` on a text-format body: its exit status and what it said.
fn promtool(body: &str) -> (bool, String) {
    use std::io::Write as _;
    let mut p = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus; `cargo xtask test` installs it)");
    p.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = p.wait_with_output().unwrap();
    let said =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), said)
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
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let before = now().as_secs_f64();
    t.start(&["--mfe", &mfe, "--metrics", ADDR]).unwrap();
    let after = now().as_secs_f64();
    let mut pim = t.ctl().unwrap();
    pim.register(103).unwrap();
    let flow = SeqFlow::start_for(&t, family, 2, 1_000).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let (sent, seen) = flow.finish();
    std::thread::sleep(Duration::from_millis(200));

    // What Prometheus asks for first: OpenMetrics; a scraper that says nothing (or prefers
    // it): the text format, which promtool finds nothing to say about.
    let (status, ctype, open) = get_as(&t.router, ADDR, "/metrics", Some(PROMETHEUS_ACCEPT));
    assert_eq!(status, "HTTP/1.1 200 OK", "{open}");
    assert!(ctype.starts_with("application/openmetrics-text; version=1.0.0"), "{ctype}");
    assert!(open.ends_with("# EOF\n"), "OpenMetrics text ends with # EOF");
    let (status, ctype, body) = get_as(&t.router, ADDR, "/metrics", None);
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert_eq!(ctype, "text/plain; version=0.0.4; charset=utf-8");
    assert!(!body.contains("# EOF"));
    let (clean, said) = promtool(&body);
    assert!(clean && said.trim().is_empty(), "promtool check metrics: {said}\n{body}");
    let m = samples(&body);
    let v = |k: &str| *m.get(k).unwrap_or_else(|| panic!("no {k} in\n{body}")) as u64;
    let om = samples(&open);
    assert_eq!(m.keys().collect::<Vec<_>>(), om.keys().collect::<Vec<_>>(), "the same samples");

    // The fast path's counters are mgmctl's, each in one family: packets the XDP program
    // saw, copies, frames of the TC program, upcalls.
    let snap = pim.show().unwrap();
    let families =
        ["mgm_fastpath_packets_total", "mgm_fastpath_copies_total", "mgm_tc_frames_total"];
    for (reason, n) in &snap.counters {
        let keys: Vec<String> =
            families.iter().map(|f| format!("{f}{{reason=\"{reason}\"}}")).collect();
        let found: Vec<&String> = keys.iter().filter(|k| m.contains_key(k.as_str())).collect();
        if reason.starts_with("upcall_") {
            assert!(found.is_empty(), "{reason} has families of its own");
            continue;
        }
        assert_eq!(found.len(), 1, "{reason} is in one family: {found:?}");
        let scraped = v(found[0]);
        // Packets the kernel still sends on its own (IPv6 router solicitations, ARP) may
        // arrive between the two reads: never fewer in the later one.
        assert!(scraped <= *n && *n <= scraped + 5, "{reason}: scraped {scraped}, then {n}");
    }
    // A sum over the copies' reasons is the copies made: each interface's, all together.
    let copies: u64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("mgm_fastpath_copies_total{"))
        .map(|(_, v)| *v as u64)
        .sum();
    let out: u64 = m
        .iter()
        .filter(|(k, _)| k.starts_with("mgm_interface_copies_total{"))
        .map(|(_, v)| *v as u64)
        .sum();
    assert!(copies >= out && out > 0, "copies by reason {copies}, sent out {out}");
    assert_eq!(v(&format!("mgm_build_info{{version=\"{}\"}}", env!("CARGO_PKG_VERSION"))), 1);
    let pid = t.mgmd.as_ref().unwrap().pid();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count() as u64;
    assert!(
        v("process_open_fds").abs_diff(fds) <= 4,
        "open fds {} vs {fds}",
        v("process_open_fds")
    );
    assert!(v("process_resident_memory_bytes") > 1 << 20);
    // A restart shows: the start time is mgmd's (to the second: the kernel gives the boot
    // time in whole seconds, the start in clock ticks after it).
    let start = *m.get("process_start_time_seconds").unwrap();
    assert!(before - 1.0 <= start && start <= after, "start {start}, not in [{before}, {after}]");
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

/// Percent-encodes a query for a URL (everything but RFC 3986's unreserved characters).
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A PromQL query through Prometheus's HTTP API inside `ns`: its result vector.
fn query(ns: &Netns, promql: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let path = format!("/api/v1/query?query={}", url_encode(promql));
    let (status, _, body) = try_get_as(ns, PROMETHEUS, &path, None)?;
    let v: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| anyhow::anyhow!("{status}: {e}: {body}"))?;
    anyhow::ensure!(v["status"] == "success", "{promql}: {body}");
    Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
}

/// The first value of a query's result, if any.
fn first_value(r: &[serde_json::Value]) -> Option<f64> {
    r.first()?["value"][1].as_str()?.parse().ok()
}

const PROMETHEUS: &str = "127.0.0.1:9090";

/// The shipped Grafana dashboard.
const DASHBOARD: &str = include_str!("../../docs/grafana/mgm-dashboard.json");

/// A real Prometheus server (Debian's) scrapes mgmd in the router's namespace: it takes
/// mgmd's OpenMetrics (`up` is 1), a counter queried through its HTTP API is mgmd's own, and
/// every query of the shipped Grafana dashboard runs and finds series, each metric it names
/// being one mgmd exports.
#[test]
fn prometheus_scrapes_mgmd_and_every_dashboard_query_finds_its_series() {
    let mut t = Topology::new(2).unwrap();
    t.add_addresses().unwrap();
    let mfe = format!("{},{},rin,r1+r2", Family::V4.source(), Family::V4.group());
    t.start(&["--mfe", &mfe, "--metrics", ADDR]).unwrap();
    let flow = SeqFlow::start(&t, 2, 200).unwrap();

    let dir = mgm_tests::TempDir::new("prom");
    let config = dir.0.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  \
             - job_name: mgmd\n    static_configs:\n      - targets: ['{ADDR}']\n"
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.0.join("prometheus.log")).unwrap();
    let prometheus = std::process::Command::new("ip")
        .args(["netns", "exec", &t.router.name, "prometheus"])
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.0.join("data").display()))
        .arg(format!("--web.listen-address={PROMETHEUS}"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("prometheus (Debian's; `cargo xtask test` installs it)");
    let _prometheus = mgm_tests::Kill(prometheus);
    let said = || std::fs::read_to_string(dir.0.join("prometheus.log")).unwrap_or_default();

    let deadline = Instant::now() + mgm_tests::patience(Duration::from_secs(60));
    let forwarded = "mgm_fastpath_packets_total{job=\"mgmd\",reason=\"forwarded\"}";
    // Three scrapes at least, so that every rate() has two samples in its window.
    loop {
        let up = query(&t.router, "up{job=\"mgmd\"}").ok().and_then(|r| first_value(&r));
        let scrapes = query(&t.router, &format!("count_over_time({forwarded}[1m])"))
            .ok()
            .and_then(|r| first_value(&r));
        if up == Some(1.0) && scrapes.is_some_and(|n| n >= 3.0) {
            break;
        }
        assert!(Instant::now() < deadline, "up {up:?}, {scrapes:?} scrapes:\n{}", said());
        std::thread::sleep(Duration::from_millis(500));
    }
    let (_, seen) = flow.finish();
    let before = query(&t.router, forwarded).unwrap();
    let counted = t.ctl().unwrap().counter("forwarded").unwrap() as f64;
    let queried = first_value(&before).unwrap();
    assert!(queried > 0.0 && queried <= counted, "Prometheus has {queried}, mgmd {counted}");
    assert!(seen.iter().all(|r| !r.is_empty()));

    // The dashboard's queries, as Grafana would send them for all instances.
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).unwrap();
    let mut exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_owned))
        .collect();
    assert!(exprs.len() >= 10, "{exprs:?}");
    for v in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["definition"].as_str() {
            exprs.push(q.to_owned());
        }
    }
    let (_, _, body) = get_as(&t.router, ADDR, "/metrics", None);
    let exported: std::collections::BTreeSet<&str> = body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    for expr in &exprs {
        for name in expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("mgm_") || w.starts_with("process_"))
        {
            assert!(
                exported.contains(name),
                "the dashboard names {name}, which mgmd does not export"
            );
        }
        // Grafana's label_values() is its own; the metric is checked above.
        if expr.starts_with("label_values(") {
            continue;
        }
        let promql = expr.replace("$__rate_interval", "10s").replace("$instance", ".*");
        let result = query(&t.router, &promql).unwrap();
        assert!(!result.is_empty(), "no series for the dashboard's {promql}");
    }
}
