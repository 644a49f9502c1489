// SPDX-License-Identifier: MIT OR Apache-2.0
//! Forwarding rate, side by side in one run and one topology (a sender, a router, 8
//! receivers, each in its own namespace, veth pairs): mgm (XDP, static MFE), the kernel's
//! ipmr driven by smcroute (what an operator runs instead), and two ceilings of this path: a
//! bare XDP broadcast with no parsing or lookup, and the same broadcast writing only what a
//! correct router's copy must carry at layer 2 (the group's MAC as destination, the port's
//! own as source, per copy). At fan-out 4, the IGMP proxies too: mgm-igmpd on mgmd and
//! igmpproxy on ipmr, with the receivers joined by their own sockets. Run through
//! `cargo xtask bench`.
//!
//! The router's own cost, apart from the generator that shares the CPUs: after each rate,
//! a second pass with BPF run-time statistics on (BPF_ENABLE_STATS; they cost two clock
//! reads per run, so rates are measured with them off) gives the ns per packet in (the
//! ingress program) and per copy out (the devmap program) of mgm and both ceilings. mgm
//! makes the copy of a single-interface MFE in its ingress program (no devmap program runs:
//! "ns/cp" is "-", the copy's cost is in "ns in").
//!
//! Traffic: BPF_PROG_TEST_RUN with live frames on the sender's veth, an `XDP_TX` program
//! (what xdp-trafficgen does; xdp-trafficgen itself does not load on this kernel); where the
//! kernel refuses live frames, a packet socket on the same veth sending batches (sendmmsg,
//! bypassing the qdisc), which offers less. Each receiver counts and drops in XDP.
//!
//! Contenders are measured where the kernel has what they need: ipmr, ip6mr, mgm following
//! smcroute, and the IGMP proxies need multicast routing. On a kernel without it they are
//! left out of this run (and said so); `cargo xtask bench` then runs this benchmark again in
//! a QEMU guest booting a Debian kernel, with mgm measured beside them there, so every ratio
//! compares figures of one kernel and one run. `--place` names where it runs (the report and
//! the JSON carry it and the kernel release). The generator alone, into an XDP counter on the router,
//! is measured too: every router result must stay below it, or the numbers would measure
//! the generator. Generator and router share the machine's CPUs, so a costlier router also
//! slows the generator down: "offered" is what the generator managed next to each contender,
//! "delivered" what the receivers got; the comparison is the delivered rates.
//!
//! IPv6: mgm (static MFE) against the kernel's ip6mr driven by smcroute's IPv6 route, and
//! the same two ceilings, with frames carrying a 64-byte UDP payload (130 bytes on the
//! wire); IPv4 mgm with the same payload (110 bytes) is measured beside them, for the
//! comparison of the two families.

use std::{
    collections::BTreeMap,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
use mgm_tests::{Family, GROUP, Igmpd, Igmpproxy, Mgmd, Netns, Smcroute, Topology, arg};
use serde_json::json;

#[path = "bench/mod.rs"]
mod bench;
use bench::*;

const FANOUTS: [usize; 3] = [1, 4, 8];
/// Frame sizes on the wire (the 4-byte FCS included).
const SIZES: [usize; 2] = [64, 512];
/// A 64-byte UDP payload: the IPv6 frame (130 bytes on the wire) and the IPv4 one (110).
const PAYLOAD64_V6: usize = 14 + 40 + 8 + 64 + 4;
const PAYLOAD64_V4: usize = 14 + 20 + 8 + 64 + 4;

/// The IGMP proxies, receivers joined with sockets on r1..rN: mgm-igmpd on mgmd (whose
/// arguments are `mgmd_args`) and igmpproxy on the kernel's ipmr. The first frames create the
/// route (an MFE through mgm-igmpd's RPF answer; an MFC entry through igmpproxy's upcall),
/// then the rate is measured.
fn igmp_contenders(
    t: &Topology,
    p: &Programs,
    rx: &[u32],
    fanout: usize,
    size: usize,
    secs: f64,
    mgmd_args: &[String],
) -> anyhow::Result<Vec<Point>> {
    let outs: Vec<String> = (1..=fanout).map(|i| format!("r{i}")).collect();
    let join = || -> anyhow::Result<Vec<std::net::UdpSocket>> {
        (0..fanout).map(|i| t.udp_receiver(i, GROUP, 5000)).collect()
    };
    let mut points = Vec::new();

    let mgmd = Mgmd::start(&t.router, &mgmd_args[..2 + 2 * fanout])?;
    let mut args = vec!["--upstream", "rin"];
    for o in &outs {
        args.extend(["--iface", o.as_str()]);
    }
    let igmpd = Igmpd::start(&t.router, &mgmd, &args)?;
    let socks = join()?;
    igmpd.wait(Duration::from_secs(10), |v| {
        v["interfaces"]
            .as_array()
            .is_some_and(|ps| ps.iter().all(|p| p["groups"].to_string().contains("239.1.1.1")))
    })?;
    let mut ctl = mgmd.ctl()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while ctl.mfe("10.1.0.1", "239.1.1.1")?.is_none_or(|m| m.mfe.oifs.len() != fanout) {
        ensure!(Instant::now() < deadline, "mgm-igmpd's MFE did not appear");
        measure(t, p, rx, (Family::V4, fanout, size), 0.1)?;
    }
    let r = contender(t, p, rx, "mgm-igmpd", (Family::V4, fanout, size), secs, MGM_PROGS);
    drop((socks, igmpd, mgmd));
    points.push(r?);

    let proxy = Igmpproxy::start(
        &t.router,
        "rin",
        &outs.iter().map(String::as_str).collect::<Vec<_>>(),
        "10.1.0.0/24",
    )?;
    // The receivers join once igmpproxy listens on every downstream link (its joins of the
    // all-routers groups come last): a report sent earlier would wait for its next query,
    // minutes away.
    let ready = format!("Joining group 224.0.0.22 on interface r{fanout}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !proxy.log().contains(&ready) {
        ensure!(Instant::now() < deadline, "igmpproxy did not start:\n{}", proxy.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let socks = join()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let routes = t.router.exec("ip", &["mroute", "show"])?;
        let line = routes.lines().find(|l| l.contains("239.1.1.1")).unwrap_or("");
        if outs.iter().all(|o| line.contains(&format!("{o}(")) || line.contains(&format!("{o} ")))
            && !line.is_empty()
        {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "igmpproxy installed no route: {routes}\n{}",
            proxy.log()
        );
        measure(t, p, rx, (Family::V4, fanout, size), 0.1)?;
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = contender(t, p, rx, "igmpproxy", (Family::V4, fanout, size), secs, None);
    drop((socks, proxy));
    points.push(r?);
    Ok(points)
}

fn smcrouted(router: &Netns, fanout: usize) -> anyhow::Result<Smcroute> {
    smcrouted_for(router, Family::V4, fanout)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let secs: f64 = arg(&args, "--secs").unwrap_or(if quick { 1.0 } else { 3.0 });
    let fanouts: Vec<usize> = if quick { vec![4] } else { FANOUTS.to_vec() };
    let sizes: Vec<usize> = if quick { vec![64] } else { SIZES.to_vec() };

    let kernel = mgm::features::KernelFeatures::running();
    let place: String = arg(&args, "--place").unwrap_or_else(|| "this machine".into());
    // What needs the kernel's multicast routing is measured where it has it.
    let (ipmr, ip6mr) = (kernel.ipmr && kernel.ip6mr, kernel.ip6mr);
    let mut left_out = Vec::new();
    if !ipmr {
        left_out.extend(["ipmr", "mgm-follow", "mgm-igmpd", "igmpproxy"]);
    }
    if !ip6mr {
        left_out.push("ip6mr");
    }
    let t = Topology::new(8)?;
    // ipmr wants addresses on its interfaces and no reverse-path filter for this source.
    t.router.exec("ip", &["addr", "add", "10.1.0.254/24", "dev", "rin"])?;
    for i in 1..=8 {
        t.router
            .exec("ip", &["addr", "add", &format!("10.2.{i}.1/24"), "dev", &format!("r{i}")])?;
    }
    // The generator's frames arrive as XDP frames: without a program on rin (ipmr's run), a
    // veth only takes them with GRO on (docs/building.md).
    t.router.exec("ethtool", &["-K", "rin", "gro", "on"])?;
    for k in ["all", "default", "rin"] {
        t.router.exec("sysctl", &["-qw", &format!("net.ipv4.conf.{k}.rp_filter=0")])?;
    }
    // Receivers' addresses: the IGMP contenders' receivers are ordinary sockets.
    for (i, ns) in t.receivers.iter().enumerate() {
        ns.exec("ip", &["addr", "add", &format!("10.2.{}.2/24", i + 1), "dev", "eth0"])?;
    }
    let mut p = Programs::load()?;
    let rx: Vec<u32> = t.receivers.iter().map(|ns| ns.ifindex("eth0")).collect::<Result<_, _>>()?;
    let distinct: std::collections::BTreeSet<u32> = rx.iter().copied().collect();
    ensure!(distinct.len() == rx.len(), "receiver ifindexes collide: {rx:?}");
    for ns in &t.receivers {
        attach(ns, "eth0", &p.pinned("mgm_bench_rx"))?;
    }

    // The generator alone: what reaches the router's port when nothing forwards.
    let rin = t.router.ifindex("rin")?;
    attach(&t.router, "rin", &p.pinned("mgm_bench_rx"))?;
    let mut generator = BTreeMap::new();
    for &size in &sizes {
        let (offered, arrived) = measure(&t, &p, &[rin], (Family::V4, 1, size), secs)?;
        ensure!(arrived[0] > 0.0, "the generator's frames never reached the router");
        generator.insert(size, (offered, arrived[0]));
    }
    for (family, size) in [(Family::V4, PAYLOAD64_V4), (Family::V6, PAYLOAD64_V6)] {
        let (offered, arrived) = measure(&t, &p, &[rin], (family, 1, size), secs)?;
        ensure!(arrived[0] > 0.0, "the generator's frames never reached the router");
        generator.insert(size, (offered, arrived[0]));
    }
    detach(&t.router, "rin");

    let mut points = Vec::new();
    for &fanout in &fanouts {
        for &size in &sizes {
            // mgm: mgmd with one static MFE rin -> r1..rN.
            let outs: Vec<String> = (1..=fanout).map(|i| format!("r{i}")).collect();
            let mut a = vec!["--iface".to_owned(), "rin".to_owned()];
            for o in &outs {
                a.extend(["--iface".to_owned(), o.clone()]);
            }
            a.extend(["--mfe".to_owned(), format!("10.1.0.1,239.1.1.1,rin,{}", outs.join("+"))]);
            let mgmd = Mgmd::start(&t.router, &a)?;
            let pt = contender(&t, &p, &rx, "mgm", (Family::V4, fanout, size), secs, MGM_PROGS)?;
            drop(mgmd);
            points.push(pt);

            if ipmr {
                points.extend(kernel_contenders(&t, &p, &rx, fanout, size, secs, &a)?);
            }

            // The ceilings: a bare broadcast redirect to r1..rN, then the same with the
            // layer-2 rewrite a correct copy needs.
            for (name, prog, l2, progs) in [
                ("ceiling", "mgm_bench_broadcast", false, Some(("mgm_bench_broadcast", None))),
                (
                    "ceiling-l2",
                    "mgm_bench_l2",
                    true,
                    Some(("mgm_bench_l2", Some("mgm_bench_l2out"))),
                ),
            ] {
                p.set_ports(&t.router, &outs, l2)?;
                attach(&t.router, "rin", &p.pinned(prog))?;
                let r = contender(&t, &p, &rx, name, (Family::V4, fanout, size), secs, progs);
                detach(&t.router, "rin");
                points.push(r?);
            }
        }
    }

    // IPv6, with IPv4 at the same payload beside it.
    ipv6_on_router(&t.router, 8)?;
    for &fanout in &fanouts {
        let outs: Vec<String> = (1..=fanout).map(|i| format!("r{i}")).collect();
        let mut ifaces = vec!["--iface".to_owned(), "rin".to_owned()];
        for o in &outs {
            ifaces.extend(["--iface".to_owned(), o.clone()]);
        }
        for (family, size) in [(Family::V4, PAYLOAD64_V4), (Family::V6, PAYLOAD64_V6)] {
            let mfe = format!("{},{},rin,{}", family.source(), family.group(), outs.join("+"));
            let mgmd = Mgmd::start(&t.router, &[&ifaces[..], &["--mfe".into(), mfe]].concat())?;
            let r = contender(&t, &p, &rx, "mgm", (family, fanout, size), secs, MGM_PROGS);
            drop(mgmd);
            points.push(r?);
        }
        let at = (Family::V6, fanout, PAYLOAD64_V6);
        if ip6mr {
            let smc = smcrouted_for(&t.router, Family::V6, fanout)?;
            let r = contender(&t, &p, &rx, "ip6mr", at, secs, None);
            drop(smc);
            points.push(r?);
        }
        for (name, prog, l2, progs) in [
            ("ceiling", "mgm_bench_broadcast", false, Some(("mgm_bench_broadcast", None))),
            ("ceiling-l2", "mgm_bench_l2", true, Some(("mgm_bench_l2", Some("mgm_bench_l2out")))),
        ] {
            p.set_ports(&t.router, &outs, l2)?;
            attach(&t.router, "rin", &p.pinned(prog))?;
            let r = contender(&t, &p, &rx, name, at, secs, progs);
            detach(&t.router, "rin");
            points.push(r?);
        }
    }

    let run =
        Run { place, kernel: kernel.release.clone(), generator: p.generator.describe(), left_out };
    report(&args, quick, secs, &run, &generator, &points)
}

/// Where and how a run measured.
struct Run {
    place: String,
    kernel: String,
    generator: &'static str,
    /// Contenders this kernel cannot run (no multicast routing).
    left_out: Vec<&'static str>,
}

/// The contenders on the kernel's multicast routing: ipmr through smcroute, mgm following
/// smcroute's route, and (at fan-out 4) the IGMP proxies. `a`: mgmd's arguments for mgm's
/// own point (interfaces first).
fn kernel_contenders(
    t: &Topology,
    p: &Programs,
    rx: &[u32],
    fanout: usize,
    size: usize,
    secs: f64,
    a: &[String],
) -> anyhow::Result<Vec<Point>> {
    let mut points = Vec::new();
    // The kernel's ipmr through smcroute, same route.
    let smc = smcrouted(&t.router, fanout)?;
    let r = contender(t, p, rx, "ipmr", (Family::V4, fanout, size), secs, None);
    drop(smc);
    points.push(r?);

    // smcroute again, unchanged, with mgmd following the kernel's table: the same route,
    // mirrored into the fast path (and one packet a second per CPU left to the kernel, the
    // heartbeat).
    let mut a: Vec<String> = a[..2 + 2 * fanout].to_vec();
    a.push("--follow-kernel".into());
    let mgmd = Mgmd::start(&t.router, &a)?;
    let smc = smcrouted(&t.router, fanout)?;
    let mut ctl = mgmd.ctl()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while ctl.mfe("10.1.0.1", "239.1.1.1")?.is_none_or(|m| m.mfe.oifs.len() != fanout) {
        ensure!(Instant::now() < deadline, "mgmd did not mirror smcroute's route");
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = contender(t, p, rx, "mgm-follow", (Family::V4, fanout, size), secs, MGM_PROGS);
    drop(smc);
    drop(mgmd);
    points.push(r?);

    if fanout == 4 {
        points.extend(igmp_contenders(t, p, rx, fanout, size, secs, &a)?);
    }
    Ok(points)
}

fn report(
    args: &[String],
    quick: bool,
    secs: f64,
    run: &Run,
    generator: &BTreeMap<usize, (f64, f64)>,
    points: &[Point],
) -> anyhow::Result<()> {
    let mpps = |v: f64| v / 1e6;
    println!(
        "forwarding rate, delivered packets/s ({secs} s per point; 1 sender -> router -> N receivers)"
    );
    println!("  kernel {} ({}); traffic from {}", run.kernel, run.place, run.generator);
    if !run.left_out.is_empty() {
        println!(
            "  not measured on this kernel (no multicast routing): {}; `cargo xtask bench` \
             measures them in a guest that has it, with mgm beside them",
            run.left_out.join(", ")
        );
    }
    for (size, (offered, arrived)) in generator {
        println!(
            "  generator alone, {size}-byte frames: offered {:.2} Mpps, {:.2} Mpps reach the router",
            mpps(*offered),
            mpps(*arrived)
        );
    }
    println!(
        "  {:<10} {:>3} {:>2} {:>5} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>6}",
        "WHO",
        "IP",
        "N",
        "BYTES",
        "OFFERED",
        "TOTAL",
        "RX min",
        "RX max",
        "vs peer",
        "vs ceil",
        "vs c-l2",
        "ns in",
        "ns/cp"
    );
    println!(
        "  {:<10} {:>3} {:>2} {:>5} {:>8} {:>8} {:>8} {:>8}",
        "", "", "", "", "Mpps", "Mpps", "Mpps", "Mpps"
    );
    let find = |c: &str, f: Family, n: usize, s: usize| {
        points.iter().find(|p| p.contender == c && p.family == f && p.fanout == n && p.size == s)
    };
    // The kernel's own forwarding of the family: ipmr, ip6mr.
    let peer = |f: Family| if f == Family::V4 { "ipmr" } else { "ip6mr" };
    let ip = |f: Family| if f == Family::V4 { "v4" } else { "v6" };
    let mut failed = Vec::new();
    let mut rows = Vec::new();
    for pt in points {
        let min = pt.per_receiver_pps.iter().copied().fold(f64::INFINITY, f64::min);
        let max = pt.per_receiver_pps.iter().copied().fold(0.0, f64::max);
        let vs = |c: &str| {
            find(c, pt.family, pt.fanout, pt.size).map(|p| pt.total() / p.total().max(1.0))
        };
        let (ipmr, ceiling, ceiling_l2) = (vs(peer(pt.family)), vs("ceiling"), vs("ceiling-l2"));
        let ns = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0}"));
        let x = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2}x"));
        if min <= 0.0 {
            failed.push(format!(
                "{} N={} {} B: a receiver got nothing",
                pt.contender, pt.fanout, pt.size
            ));
        }
        println!(
            "  {:<10} {:>3} {:>2} {:>5} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8} {:>8} {:>8} {:>6} {:>6}",
            pt.contender,
            ip(pt.family),
            pt.fanout,
            pt.size,
            mpps(pt.offered_pps),
            mpps(pt.total()),
            mpps(min),
            mpps(max),
            x(ipmr),
            x(ceiling),
            x(ceiling_l2),
            ns(pt.ns_in),
            ns(pt.ns_copy),
        );
        let gen_arrived = generator.get(&pt.size).map_or(0.0, |g| g.1);
        // Each receiver gets at most what the router receives.
        if max > gen_arrived * 1.05 {
            failed.push(format!(
                "{} N={}: {:.2} Mpps per receiver exceeds the generator's {:.2}",
                pt.contender,
                pt.fanout,
                mpps(max),
                mpps(gen_arrived)
            ));
        }
        rows.push(json!({
            "contender": pt.contender, "family": ip(pt.family), "fanout": pt.fanout,
            "frame_bytes": pt.size,
            "offered_pps": pt.offered_pps, "delivered_pps_total": pt.total(),
            "delivered_pps_per_receiver": pt.per_receiver_pps,
            "vs_kernel": ipmr, "vs_ceiling": ceiling, "vs_ceiling_l2": ceiling_l2,
            "bpf_ns_per_packet_in": pt.ns_in, "bpf_ns_per_copy_out": pt.ns_copy,
        }));
    }
    // IPv6 against IPv4, mgm, the same 64-byte payload.
    let mut families = Vec::new();
    for v6 in points.iter().filter(|p| p.contender == "mgm" && p.family == Family::V6) {
        if let Some(v4) = find("mgm", Family::V4, v6.fanout, PAYLOAD64_V4) {
            let ratio = v6.total() / v4.total().max(1.0);
            println!(
                "  mgm IPv6 / IPv4 at N={} (64-byte UDP payload): {:.3} / {:.3} Mpps = {ratio:.2}",
                v6.fanout,
                mpps(v6.total()),
                mpps(v4.total())
            );
            families.push(json!({"fanout": v6.fanout, "ipv6_over_ipv4": ratio}));
        }
    }
    let report = json!({
        "benchmark": "forwarding_rate",
        "commit": arg::<String>(args, "--commit").unwrap_or_default(),
        "kernel": run.kernel,
        "place": run.place,
        "generator_kind": run.generator,
        "left_out": run.left_out,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": mgm_tests::cpu_model(),
        "seconds_per_point": secs,
        "quick": quick,
        "generator": generator.iter().map(|(s, (o, a))| json!({"frame_bytes": s, "offered_pps": o, "reaching_router_pps": a})).collect::<Vec<_>>(),
        "points": rows,
        "mgm_ipv6_over_ipv4": families,
    });
    if let Some(path) = arg::<String>(args, "--json") {
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {path}"))?;
    }
    if let Some(path) = arg::<String>(args, "--png") {
        chart(Path::new(&path), points).with_context(|| format!("drawing {path}"))?;
    }
    if !failed.is_empty() {
        bail!("a contender could not be measured: {}", failed.join("; "));
    }
    Ok(())
}

/// Delivered rate (all receivers) against fan-out, 64-byte frames, one line per contender.
fn chart(path: &Path, points: &[Point]) -> anyhow::Result<()> {
    use plotters::prelude::*;
    register_font()?;
    let size = 64;
    let max = points.iter().filter(|p| p.size == size).map(|p| p.total()).fold(0.0, f64::max) / 1e6;
    let root = BitMapBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Delivered packets/s vs fan-out (64-byte frames)", ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0usize..9usize, 0f64..max * 1.15)?;
    chart.configure_mesh().x_desc("receivers (N)").y_desc("Mpps, all receivers").draw()?;
    let grey = RGBColor(140, 140, 140);
    let orange = RGBColor(230, 140, 0);
    for (name, color) in [
        ("mgm", RED),
        ("mgm-follow", orange),
        ("ipmr", BLUE),
        ("ceiling", grey),
        ("ceiling-l2", BLACK),
    ] {
        let series: Vec<(usize, f64)> = points
            .iter()
            .filter(|p| p.contender == name && p.size == size)
            .map(|p| (p.fanout, p.total() / 1e6))
            .collect();
        chart
            .draw_series(LineSeries::new(series.clone(), color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(series.iter().map(|&(x, y)| Circle::new((x, y), 4, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()?;
    root.present()?;
    Ok(())
}
