// SPDX-License-Identifier: MIT OR Apache-2.0
//! Control-plane costs through mgmd's socket (release build), run by `cargo xtask bench`:
//! - MFE installs (`add_mfe`) and membership adds (`add_membership`) per second, from one
//!   client and from 8 concurrent clients, with 10k, 100k and 1M entries already in place;
//! - memory: mgmd's resident set and the BPF maps' memory (their `memlock`), per MFE;
//! - release: time to the reply and to the end of the background rewrite, with 1, 1k and
//!   100k MFEs (created by traffic, as a router gets them) forwarding to the interface;
//! - release and disconnect of a client with 10k / 100k / 1M join-state memberships: time
//!   to the reply, until another protocol has read every prune alert, and the longest a third
//!   client waited for a reply meanwhile;
//! - a spray of new sources beside a real flow: the MFE creation rate, the real flow's
//!   delivery.

use std::{
    io::BufRead as _,
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, ensure};
use mgm::{
    config::StaticMfe,
    manager::Handle,
    proto::{self, MembershipArgs, Request},
};
use mgm_tests::{GROUP, Mgmd, Topology, arg, fix_ipv4_checksum, membership, udp_frame};
use serde_json::json;

#[path = "bench/mod.rs"]
mod bench;
use bench::Pipe;

/// Entries added per measurement.
const SAMPLE: usize = 4_000;
const CLIENTS: usize = 8;

fn add_mfe(i: usize) -> Request {
    StaticMfe {
        source: std::net::Ipv4Addr::from(0x0a40_0000 + i as u32).into(),
        group: "239.2.2.2".parse().expect("an address"),
        iif: "rin".into(),
        oifs: vec!["r1".into()],
    }
    .into()
}

/// Forward state only (flags 2): a join-state entry would also send a join alert to each of
/// the other 7 protocols, which measures their connections, not the core.
fn add_membership(h: Handle, ifindex: u32, i: usize) -> Request {
    let source = Some(std::net::Ipv4Addr::from(0x0a40_0000 + i as u32).into());
    let m = MembershipArgs { source, flags: 2, ..membership(h, "239.3.3.3", ifindex) };
    proto::AddMembership(m).into()
}

/// Join and forward state (flags 3) on a new (*,G) each: the first join state for the group,
/// so each add also sends a join alert to every other registered routing protocol.
fn join_membership(h: Handle, ifindex: u32, i: usize) -> Request {
    let group = std::net::Ipv4Addr::from(0xe850_0000 + i as u32).into();
    proto::AddMembership(MembershipArgs { group, ..membership(h, "239.0.0.1", ifindex) }).into()
}

/// Requests per second of `pipes` side by side, each sending `SAMPLE / pipes.len()` requests
/// one at a time; `make(client, i)` builds client `c`'s i-th request.
fn concurrent_rate(
    pipes: &mut [Pipe],
    make: &(dyn Fn(usize, usize) -> Request + Sync),
) -> anyhow::Result<f64> {
    let per = SAMPLE / pipes.len();
    let t = Instant::now();
    std::thread::scope(|s| -> anyhow::Result<()> {
        let hs: Vec<_> = pipes
            .iter_mut()
            .enumerate()
            .map(|(c, p)| s.spawn(move || p.sequential((0..per).map(|i| make(c, i)))))
            .collect();
        for h in hs {
            h.join().expect("client thread")?;
        }
        Ok(())
    })?;
    Ok((per * pipes.len()) as f64 / t.elapsed().as_secs_f64())
}

/// `add_mfe` rate of one sequential client, and of `CLIENTS` concurrent ones (each on its
/// own connection), adding `SAMPLE` new entries each from index `base` on.
fn mfe_rates(socket: &Path, base: usize) -> anyhow::Result<(f64, f64)> {
    let mut one = [Pipe::connect(socket)?];
    let single = concurrent_rate(&mut one, &|_, i| add_mfe(base + i))?;
    let mut pipes: Vec<Pipe> =
        (0..CLIENTS).map(|_| Pipe::connect(socket)).collect::<Result<_, _>>()?;
    let per = SAMPLE / CLIENTS;
    let multi = concurrent_rate(&mut pipes, &|c, i| add_mfe(base + SAMPLE + c * per + i))?;
    Ok((single, multi))
}

/// `add_membership` rate of client 0 alone, then of all clients at once, each on the
/// interface it owns, adding `SAMPLE` new (S,G) entries each from index `base` on.
fn membership_rates(
    owners: &mut [Pipe],
    handles: &[Handle],
    ifs: &[u32],
    base: usize,
) -> anyhow::Result<(f64, f64)> {
    let single =
        concurrent_rate(&mut owners[..1], &|_, i| add_membership(handles[0], ifs[0], base + i))?;
    let per = SAMPLE / CLIENTS;
    let multi = concurrent_rate(owners, &|c, i| {
        add_membership(handles[c], ifs[c], base + SAMPLE + c * per + i)
    })?;
    Ok((single, multi))
}

/// mgmd's resident set and the memory of the BPF maps it holds, in bytes.
fn memory(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .context("VmRSS")?
        * 1024;
    // By map id: a map open through two fds (the grace-period thread's own fd of the outer
    // OIL map) is counted once.
    let mut maps = std::collections::BTreeMap::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))? {
        let info = std::fs::read_to_string(fd?.path()).unwrap_or_default();
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        if let (Some(id), Some(memlock)) = (field("map_id:"), field("memlock:")) {
            maps.insert(id, memlock);
        }
    }
    Ok((rss, maps.values().sum()))
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let levels: Vec<usize> = if quick { vec![10_000] } else { vec![10_000, 100_000, 1_000_000] };
    let releases: Vec<usize> = if quick { vec![1, 1_000] } else { vec![1, 1_000, 100_000] };
    let mut out = json!({
        "benchmark": "control_plane",
        "commit": arg::<String>(&args, "--commit").unwrap_or_default(),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": mgm_tests::cpu_model(),
        "sample": SAMPLE, "clients": CLIENTS,
    });

    // Installs and memberships at increasing table sizes.
    let mut t = Topology::new(CLIENTS)?;
    let cap = (levels.last().copied().unwrap_or(0) + 4 * SAMPLE).next_power_of_two();
    // Static MFEs are measured up to the largest level: they may fill the table here.
    let (cap_s, statics) = (cap.to_string(), cap.to_string());
    t.start(&["--max-mfes", &cap_s, "--max-static-mfes", &statics, "--restart-hold-secs", "0"])?;
    let mgmd: &Mgmd = t.mgmd.as_ref().expect("started");
    let socket = mgmd.socket.clone();
    let ifs: Vec<u32> =
        (1..=CLIENTS).map(|i| t.router.ifindex(&format!("r{i}"))).collect::<Result<_, _>>()?;
    let (rss0, maps0) = memory(mgmd.pid())?;
    let mut filler = Pipe::connect(&socket)?;
    // One routing protocol per interface: client c owns r<c+1> and adds memberships there.
    let mut handles = Vec::new();
    let mut owners = Vec::new();
    for (c, ifindex) in ifs.iter().enumerate() {
        let mut ctl = Pipe::connect(&socket)?;
        let h = ctl.call(proto::Register { protocol: 200 + c as u32, component: 1 })?.handle;
        let nexthop = std::net::Ipv4Addr::UNSPECIFIED.into();
        ctl.call(proto::TakeInterface { handle: h, ifindex: *ifindex, nexthop })?;
        handles.push(h);
        owners.push(ctl);
    }
    let (mut mfes_in, mut members_in, mut joins_in) = (0usize, 0usize, 0usize);
    let mut rows = Vec::new();
    println!("control plane through the socket ({SAMPLE} new entries per sample, release build)");
    println!(
        "  {:>9} {:>16} {:>16} {:>18} {:>18} {:>18} {:>11} {:>11}",
        "ENTRIES",
        "add_mfe 1 cl/s",
        "add_mfe 8 cl/s",
        "membership 1 cl/s",
        "membership 8 cl/s",
        "join-state 1 cl/s",
        "RSS MiB",
        "MAPS MiB"
    );
    for &level in &levels {
        let fill = Instant::now();
        filler.run((mfes_in..level).map(add_mfe))?;
        let h0 = handles[0];
        owners[0].run((members_in..level).map(|i| add_membership(h0, ifs[0], i)))?;
        let fill_rate = 2.0 * (level - mfes_in) as f64 / fill.elapsed().as_secs_f64();
        mfes_in = level;
        members_in = level;
        let (m1, m8) = mfe_rates(&socket, mfes_in)?;
        mfes_in += 2 * SAMPLE;
        let (g1, g8) = membership_rates(&mut owners, &handles, &ifs, members_in)?;
        members_in += 2 * SAMPLE;
        // Join state with 8 protocols registered: 7 join alerts per add (the others do not
        // read them here; they wait in their queues).
        let (h0, if0) = (handles[0], ifs[0]);
        let j1 = concurrent_rate(&mut owners[..1], &|_, i| join_membership(h0, if0, joins_in + i))?;
        joins_in += SAMPLE;
        let (rss, maps) = memory(mgmd.pid())?;
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        println!(
            "  {:>9} {:>16.0} {:>16.0} {:>18.0} {:>18.0} {:>18.0} {:>11.1} {:>11.1}",
            level,
            m1,
            m8,
            g1,
            g8,
            j1,
            mib(rss),
            mib(maps)
        );
        rows.push(json!({
            "entries": level, "pipelined_fill_per_s": fill_rate,
            "add_mfe_per_s_1_client": m1, "add_mfe_per_s_8_clients": m8,
            "add_membership_per_s_1_client": g1, "add_membership_per_s_8_clients": g8,
            "join_state_membership_per_s_1_client_8_protocols": j1,
            "mgmd_rss_bytes": rss, "bpf_map_bytes": maps,
            "mgmd_rss_bytes_per_entry": (rss.saturating_sub(rss0)) as f64 / (mfes_in + members_in) as f64,
            "bpf_map_bytes_per_mfe": (maps.saturating_sub(maps0)) as f64 / mfes_in as f64,
        }));
    }
    println!(
        "  (map memory is preallocated for --max-mfes {cap}: it does not grow with the entries; \
         RSS at start {:.1} MiB, maps {:.1} MiB)",
        rss0 as f64 / (1 << 20) as f64,
        maps0 as f64 / (1 << 20) as f64
    );
    let join =
        |r: &serde_json::Value| r["join_state_membership_per_s_1_client_8_protocols"].as_f64();
    if let (Some(first), Some(last)) = (rows.first().and_then(join), rows.last().and_then(join)) {
        println!("  join-state adds at the largest table / at the smallest: {:.2}", last / first);
    }
    out["levels"] = json!(rows);
    drop(owners);
    drop(filler);
    t.mgmd = None;
    drop(t);

    // Release cost.
    println!("release of one interface with N MFEs forwarding to it (time to reply, to cleanup)");
    let mut rel = Vec::new();
    for &n in &releases {
        let (reply, cleanup) = release(n)?;
        println!(
            "  {:>7} MFEs: reply {:>8.2} ms, background rewrite done {:>8.2} ms",
            n,
            reply.as_secs_f64() * 1e3,
            cleanup.as_secs_f64() * 1e3
        );
        rel.push(json!({"mfes": n, "reply_ms": reply.as_secs_f64() * 1e3, "cleanup_ms": cleanup.as_secs_f64() * 1e3}));
    }
    out["release"] = json!(rel);

    // A client releasing its interface, or leaving, with N join-state memberships while
    // another reads its alerts and a third keeps asking.
    for how in [Leave::Release, Leave::Disconnect] {
        println!(
            "{} of a client with N join-state memberships (another daemon reads every alert)",
            how.name()
        );
        let mut rows = Vec::new();
        for &n in &levels {
            let r = leave(n, how)?;
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            let reply =
                r.reply.map_or_else(|| "      -".to_string(), |d| format!("{:>7.1}", ms(d)));
            println!(
                "  {:>7} memberships: reply {reply} ms; every prune alert read after {:>8.1} ms; longest wait of a third client {:>6.1} ms",
                n,
                ms(r.all_read),
                ms(r.worst)
            );
            rows.push(json!({"memberships": n, "reply_ms": r.reply.map(ms), "all_alerts_read_ms": ms(r.all_read), "longest_wait_ms": ms(r.worst)}));
        }
        out[how.name()] = json!(rows);
    }

    // A sender spraying new sources on a routing protocol's interface, beside a real flow.
    let s = spray(if quick { 20_000 } else { 100_000 })?;
    println!(
        "spray: {} one-packet flows in {:.1} s beside a real flow at 100/s: MFEs created {:.0}/s \
         (limit 1000/s per interface), real flow delivered {} of {} during the spray, \
         {} write failures",
        s.flows, s.secs, s.created_per_s, s.delivered, s.sent, s.write_failures
    );
    out["spray"] = json!({
        "flows": s.flows, "spray_secs": s.secs, "mfes_created_per_s": s.created_per_s,
        "flows_refused": s.refused, "real_delivered": s.delivered,
        "real_sent": s.sent, "write_failures": s.write_failures,
    });
    if let Some(path) = arg::<String>(&args, "--json") {
        std::fs::write(&path, serde_json::to_string_pretty(&out)?)?;
    }
    Ok(())
}

/// n MFEs created by traffic (n sources to one group), forwarding to r1 and r2; r1 released.
fn release(n: usize) -> anyhow::Result<(Duration, Duration)> {
    let mut t = Topology::new(2)?;
    let cap = (n + 1024).next_power_of_two().to_string();
    t.start(&["--max-mfes", &cap, "--flow-creation-rate", "10000000"])?;
    let idx = |name: &str| t.router.ifindex(name);
    let (rin, r1, r2) = (idx("rin")?, idx("r1")?, idx("r2")?);
    let mut pim = t.ctl()?;
    let h = pim.protocol_with(103, &[rin, r1, r2], &[r1, r2], "239.1.1.1")?;
    let frames: Vec<Vec<u8>> = (0..n as u32)
        .map(|i| {
            let mut f = udp_frame(t.sender_mac, (0x0a03_0000 + i).to_be_bytes(), GROUP, 8, b"x");
            fix_ipv4_checksum(&mut f);
            f
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        for chunk in frames.chunks(1000) {
            for f in chunk {
                t.tx.send(f)?;
            }
            pim.status()?;
            pim.drop_events();
        }
        let mut have = 0;
        for _ in 0..60 {
            std::thread::sleep(Duration::from_millis(100));
            have = pim.status()?.mfes;
            pim.drop_events();
            if have == n {
                break;
            }
        }
        if have == n {
            break;
        }
        ensure!(Instant::now() < deadline, "only {have} of {n} MFEs created");
    }
    while pim.status()?.pending_writes != 0 {
        pim.drop_events();
        std::thread::sleep(Duration::from_millis(5));
    }
    let t0 = Instant::now();
    pim.release(h, r1)?;
    let reply = t0.elapsed();
    while pim.status()?.pending_writes != 0 {
        pim.drop_events();
    }
    Ok((reply, t0.elapsed()))
}

#[derive(Clone, Copy)]
enum Leave {
    Release,
    Disconnect,
}

impl Leave {
    fn name(self) -> &'static str {
        match self {
            Self::Release => "release",
            Self::Disconnect => "disconnect",
        }
    }
}

struct Left {
    /// Until the release was answered (a disconnect has no reply).
    reply: Option<Duration>,
    /// Until B had read every prune alert.
    all_read: Duration,
    /// The longest a third client waited for a reply meanwhile.
    worst: Duration,
}

/// Client A takes r1 and adds `n` (*,G) join-state memberships; B (another routing protocol)
/// reads everything on its connection; A releases r1, or disconnects.
fn leave(n: usize, how: Leave) -> anyhow::Result<Left> {
    let mut t = Topology::new(1)?;
    t.start(&[])?;
    let socket = t.mgmd.as_ref().expect("started").socket.clone();
    let r1 = t.router.ifindex("r1")?;
    let mut a = Pipe::connect(&socket)?;
    let ha = a.call(proto::Register { protocol: 103, component: 1 })?.handle;
    let nexthop = std::net::Ipv4Addr::UNSPECIFIED.into();
    a.call(proto::TakeInterface { handle: ha, ifindex: r1, nexthop })?;
    let mut b = Pipe::connect(&socket)?;
    b.call(proto::Register { protocol: 104, component: 1 })?;
    // B reads on its own thread from now on: the join alerts, then the n prune alerts.
    let reader = std::thread::spawn(move || -> anyhow::Result<Instant> {
        let mut prunes = 0;
        loop {
            let mut line = String::new();
            ensure!(b.r.read_line(&mut line)? > 0, "mgmd closed B's connection");
            if line.contains(r#""event":"prune_alert""#) {
                prunes += 1;
                if prunes == n {
                    return Ok(Instant::now());
                }
            }
        }
    });
    a.run((0..n).map(|i| join_membership(ha, r1, i)))?;
    let mut c = mgm_tests::Ctl::connect(&socket)?;
    let t0 = Instant::now();
    // A waits for its reply on its own thread.
    let a = std::thread::spawn(move || -> anyhow::Result<Option<Instant>> {
        match how {
            Leave::Release => {
                a.call(proto::ReleaseInterface { handle: ha, ifindex: r1, nexthop })?;
                Ok(Some(Instant::now()))
            }
            Leave::Disconnect => Ok(None),
        }
    });
    let mut worst = Duration::ZERO;
    while !reader.is_finished() || !a.is_finished() {
        let t = Instant::now();
        c.call(proto::Hello {})?;
        worst = worst.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(2));
        ensure!(t0.elapsed() < Duration::from_secs(300), "B never got every alert");
    }
    let done = reader.join().expect("reader thread")?;
    let replied = a.join().expect("client thread")?;
    Ok(Left { reply: replied.map(|r| r - t0), all_read: done - t0, worst })
}

struct Spray {
    flows: usize,
    secs: f64,
    created_per_s: f64,
    refused: u64,
    delivered: usize,
    sent: usize,
    write_failures: u64,
}

/// A real flow (100 packets a second) runs on a PIM-owned interface; then `n` one-packet
/// flows with distinct sources arrive there at 20,000 a second beside it. Nobody answers the
/// callbacks, so every flow admitted gets an MFE with the defaults. Measured: the MFEs created
/// per second of spray (the admission rate), and how much of the real flow is delivered while
/// the spray lasts.
fn spray(n: usize) -> anyhow::Result<Spray> {
    const PPS: usize = 20_000;
    let mut t = Topology::new(1)?;
    t.start(&["--max-mfes", "16384"])?;
    let (rin, r1) = (t.router.ifindex("rin")?, t.router.ifindex("r1")?);
    let mut pim = t.ctl()?;
    pim.protocol_with(103, &[rin, r1], &[r1], "239.1.1.1")?;
    let cap = mgm_tests::PacketSocket::open(&t.receivers[0], "eth0")?;
    let tag = mgm_tests::magic("real");
    let real = t.frame(8, &tag);
    // The real flow first: its MFE is created (defaults after 4 s) and proven by traffic.
    for _ in 0..700 {
        t.tx.send(&real)?;
        std::thread::sleep(Duration::from_millis(10));
        pim.drop_events();
    }
    ensure!(pim.status()?.mfes == 1, "the real flow has no MFE");
    cap.drain(Duration::from_millis(1))?;
    let frames: Vec<Vec<u8>> = (0..n as u32)
        .map(|i| {
            let mut f = udp_frame(t.sender_mac, (0x0ac8_0000 + i).to_be_bytes(), GROUP, 8, b"s");
            fix_ipv4_checksum(&mut f);
            f
        })
        .collect();
    let t0 = Instant::now();
    let mut sent = 0;
    // 200 frames every 10 ms, and one of the real flow.
    for (i, chunk) in frames.chunks(PPS / 100).enumerate() {
        for f in chunk {
            t.tx.send(f)?;
        }
        t.tx.send(&real)?;
        sent += 1;
        pim.drop_events();
        let next = t0 + Duration::from_millis(10 * (i as u64 + 1));
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let secs = t0.elapsed().as_secs_f64();
    let delivered = mgm_tests::with_magic(&cap.drain(Duration::from_millis(200))?, &tag).len();
    // Flows admitted late in the spray get their MFE 4 s after it.
    std::thread::sleep(Duration::from_secs(5));
    pim.drop_events();
    let s = pim.status()?;
    let created = s.mfes + s.mfes_evicted as usize - 1;
    Ok(Spray {
        flows: n,
        secs,
        created_per_s: created as f64 / secs,
        refused: s.flows_refused,
        delivered,
        sent,
        write_failures: s.write_failures,
    })
}
