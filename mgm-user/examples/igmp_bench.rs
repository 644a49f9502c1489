// SPDX-License-Identifier: MIT OR Apache-2.0
//! IGMP latencies (`cargo xtask bench` runs it): how long after a receiver's socket joins does
//! its first copy arrive, and how long after it leaves does the last one, for mgm-igmpd +
//! mgmd (proxy mode) against igmpproxy + the kernel's ipmr, on the same topology in the same
//! run, both at the RFC's timers (igmpproxy's are fixed there: query interval 125 s, last
//! member query interval 1 s, count 2).
//!
//! A stream (a datagram every 200 µs from 10.1.0.1) is already flowing when the receiver
//! joins, as on a real network where the source does not wait for listeners. Each sample
//! uses a group of its own.
//!
//! Options: `--quick` (3 samples instead of 10), `--json PATH`, `--commit C`.

use std::{
    net::Ipv4Addr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use mgm_tests::{Igmpd, Igmpproxy, Mgmd, PacketSocket, Topology, arg, magic, with_magic};

struct Sample {
    join: Duration,
    leave: Duration,
}

/// A paced stream to `group` until dropped.
struct Stream {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Stream {
    fn start(t: &Topology, group: Ipv4Addr, payload: Vec<u8>) -> anyhow::Result<Self> {
        let tx = t.udp_sender(8)?;
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let _ = tx.send_to(&payload, (group, 5000));
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        Ok(Self { stop, thread: Some(thread) })
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One join and leave of `group` by receiver 1.
fn sample(t: &Topology, group: Ipv4Addr) -> anyhow::Result<Sample> {
    let m = magic("igmp-bench");
    let _stream = Stream::start(t, group, m.clone())?;
    std::thread::sleep(Duration::from_millis(500));
    let cap = PacketSocket::open(&t.receivers[0], "eth0")?;
    let t0 = Instant::now();
    let sock = t.udp_receiver(0, group.octets(), 5000)?;
    let mut buf = [0u8; 2048];
    let join = loop {
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(60), "no copy of {group} in 60 s");
        if let Ok(n) = sock.recv(&mut buf)
            && buf[..n].starts_with(&m)
        {
            break t0.elapsed();
        }
    };
    cap.drain(Duration::ZERO)?;
    let t1 = Instant::now();
    drop(sock);
    let mut last = t1;
    // Done when 5 s pass without a copy (more than the last member query time).
    while last.elapsed() < Duration::from_secs(5) {
        anyhow::ensure!(t1.elapsed() < Duration::from_secs(120), "copies of {group} never stop");
        if !with_magic(&cap.drain(Duration::from_millis(5))?, &m).is_empty() {
            last = Instant::now();
        }
    }
    Ok(Sample { join, leave: last - t1 })
}

fn quantile(mut v: Vec<Duration>, q: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let samples: usize = arg(&args, "--samples").unwrap_or(if quick { 3 } else { 10 });
    let t = Topology::new(1)?;
    t.add_addresses()?;
    t.router.exec("ip", &["addr", "add", "10.1.0.254/24", "dev", "rin"])?;
    t.router.exec("ip", &["addr", "add", "10.2.1.1/24", "dev", "r1"])?;
    for k in ["all", "default", "rin"] {
        t.router.exec("sysctl", &["-qw", &format!("net.ipv4.conf.{k}.rp_filter=0")])?;
    }
    let mut results = Vec::new();
    for (c, name) in ["mgm-igmpd", "igmpproxy"].into_iter().enumerate() {
        // Each contender starts afresh: mgmd and mgm-igmpd, or igmpproxy alone.
        let (mgmd, igmpd, proxy);
        if c == 0 {
            let a: Vec<String> =
                ["--iface", "rin", "--iface", "r1"].iter().map(|s| (*s).to_owned()).collect();
            mgmd = Some(Mgmd::start(&t.router, &a)?);
            let m = mgmd.as_ref().context("mgmd")?;
            igmpd = Some(Igmpd::start(&t.router, m, &["--upstream", "rin", "--iface", "r1"])?);
            proxy = None;
        } else {
            (mgmd, igmpd) = (None, None);
            proxy = Some(Igmpproxy::start(&t.router, "rin", &["r1"], "10.1.0.0/24")?);
            std::thread::sleep(Duration::from_secs(1));
        }
        let mut got = Vec::new();
        for i in 0..samples {
            let group = Ipv4Addr::new(239, 20, c as u8, i as u8 + 1);
            let s = sample(&t, group).with_context(|| format!("{name}, sample {i}"))?;
            eprintln!("  {name}: join {:.1} ms, leave {:.1} ms", ms(s.join), ms(s.leave));
            got.push(s);
        }
        drop((igmpd, mgmd, proxy));
        results.push((name, got));
    }

    println!("\nIGMP latencies, {samples} samples each (one join and leave of a new group)");
    println!("  CONTENDER    JOIN→FIRST COPY p50 / max    LEAVE→LAST COPY p50 / max");
    let mut json = Vec::new();
    for (name, got) in &results {
        let join: Vec<Duration> = got.iter().map(|s| s.join).collect();
        let leave: Vec<Duration> = got.iter().map(|s| s.leave).collect();
        let (j50, jmax, l50, lmax) = (
            quantile(join.clone(), 0.5),
            quantile(join, 1.0),
            quantile(leave.clone(), 0.5),
            quantile(leave, 1.0),
        );
        println!(
            "  {name:<12} {:>10.1} / {:>7.1} ms {:>17.1} / {:>7.1} ms",
            ms(j50),
            ms(jmax),
            ms(l50),
            ms(lmax)
        );
        json.push(serde_json::json!({
            "contender": name,
            "join_ms": got.iter().map(|s| ms(s.join)).collect::<Vec<_>>(),
            "leave_ms": got.iter().map(|s| ms(s.leave)).collect::<Vec<_>>(),
            "join_p50_ms": ms(j50), "join_max_ms": ms(jmax),
            "leave_p50_ms": ms(l50), "leave_max_ms": ms(lmax),
        }));
    }
    if let Some(path) = arg::<String>(&args, "--json") {
        let doc = serde_json::json!({
            "benchmark": "igmp",
            "commit": arg::<String>(&args, "--commit"),
            "cpu": mgm_tests::cpu_model(),
            "samples": samples,
            "results": json,
        });
        std::fs::write(&path, serde_json::to_string_pretty(&doc)?)?;
    }
    Ok(())
}
