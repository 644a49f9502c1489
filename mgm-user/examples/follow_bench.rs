// SPDX-License-Identifier: MIT OR Apache-2.0
//! How fast `mgmd --follow-kernel` follows the kernel's table, run by `cargo xtask bench`:
//! this program is the routing daemon (it owns the router's mroute socket, as smcroute or
//! FRR would: MRT_INIT, a VIF per interface), installs 1k or 10k (S,G) routes, then times
//! single changes from the moment its MRT_ADD_MFC / MRT_DEL_MFC returns until the entry is
//! in (or gone from) the fast path's MFE map, read from mgmd's pinned map in a busy loop.
//! Once an entry is in the map the next packet of its flow is forwarded in XDP.

use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use aya::maps::{HashMap, Map, MapData};
use mgm_common::{MfeKey, MfeValue, maps};
use mgm_tests::{Mgmd, Topology, arg};
use serde_json::json;

#[path = "bench/mod.rs"]
mod bench;
use bench::Mrouted;

/// The route's (S,G) as the mroute socket takes it.
fn sg(k: MfeKey) -> ([u8; 4], [u8; 4]) {
    (k.source, k.group)
}

fn key(i: usize) -> MfeKey {
    let i = i as u32;
    MfeKey::new([10, 1, (i >> 8) as u8, i as u8], [239, 2, (i >> 8) as u8, i as u8])
}

/// Busy-waits until the fast path has (or has not) `k`; the time since `t0`.
fn until(
    map: &HashMap<MapData, MfeKey, MfeValue>,
    k: &MfeKey,
    present: bool,
    t0: Instant,
) -> anyhow::Result<Duration> {
    loop {
        if map.get(k, 0).is_ok() == present {
            return Ok(t0.elapsed());
        }
        ensure!(t0.elapsed() < Duration::from_secs(2), "not followed within 2 s");
        std::hint::spin_loop();
    }
}

fn percentile(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1e6
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let samples: usize = arg(&args, "--samples").unwrap_or(if quick { 50 } else { 300 });
    let sizes: Vec<usize> = if quick { vec![1_000] } else { vec![1_000, 10_000] };
    println!("follow-kernel: MRT_ADD_MFC / MRT_DEL_MFC to the fast path's map ({samples} each)");
    println!(
        "  {:>7} {:>9} {:>9} {:>9} {:>9}",
        "ROUTES", "add p50", "add p99", "del p50", "del p99"
    );
    let mut rows = Vec::new();
    for &n in &sizes {
        let t = Topology::new(1)?;
        let ifaces = [t.router.ifindex("rin")?, t.router.ifindex("r1")?];
        let args: Vec<String> =
            ["--iface", "rin", "--iface", "r1", "--follow-kernel", "--max-mfes", "65536"]
                .map(String::from)
                .to_vec();
        let mgmd = Mgmd::start(&t.router, &args)?;
        let mrouted = Mrouted::open(&t.router, &ifaces)?;
        let map: HashMap<MapData, MfeKey, MfeValue> = HashMap::try_from(Map::HashMap(
            MapData::from_pin(mgmd.pin_dir.join("maps").join(maps::MFES))
                .context("mgmd's pinned MFE map")?,
        ))?;
        for i in 0..n {
            mrouted.mfc(true, sg(key(i)), &[1])?;
        }
        until(&map, &key(n - 1), true, Instant::now())?;
        let mut ctl = mgmd.ctl()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while ctl.status()?.installed < n {
            ensure!(Instant::now() < deadline, "mgmd did not mirror {n} routes in 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        let (mut add, mut del) = (Vec::new(), Vec::new());
        for s in 0..samples {
            let k = key(n + s);
            let t0 = Instant::now();
            mrouted.mfc(true, sg(k), &[1])?;
            add.push(until(&map, &k, true, t0)?);
            let t0 = Instant::now();
            mrouted.mfc(false, sg(k), &[1])?;
            del.push(until(&map, &k, false, t0)?);
        }
        let (a50, a99) = (percentile(&mut add, 0.5), percentile(&mut add, 0.99));
        let (d50, d99) = (percentile(&mut del, 0.5), percentile(&mut del, 0.99));
        println!("  {n:>7} {a50:>7.0}µs {a99:>7.0}µs {d50:>7.0}µs {d99:>7.0}µs");
        rows.push(json!({
            "routes": n, "samples": samples,
            "install_us_p50": a50, "install_us_p99": a99,
            "removal_us_p50": d50, "removal_us_p99": d99,
        }));
        drop(mrouted);
        drop(mgmd);
    }
    let report = json!({
        "benchmark": "follow_kernel_latency",
        "commit": arg::<String>(&args, "--commit").unwrap_or_default(),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "quick": quick,
        "points": rows,
    });
    if let Some(path) = arg::<String>(&args, "--json") {
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {path}"))?;
    }
    Ok(())
}
