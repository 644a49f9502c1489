// SPDX-License-Identifier: MIT OR Apache-2.0
//! Per-packet cost of the XDP ingress program, path by path, measured by the kernel with
//! BPF_PROG_TEST_RUN. Run through `cargo xtask bench`.
//!
//! The program runs against live maps holding one MFE (S,G) from `in` to `out`, inside a
//! network namespace of its own with veth pairs (the kernel needs real ingress devices).
//! Nothing is transmitted: redirects are only reported. Each path's action is checked on
//! every call, so a number is never reported for a path that did something else.

use anyhow::{Context as _, ensure};
use mgm::manager::Sg;
use mgm::{
    dataplane::{BpfFastPath, LoadOptions},
    fastpath::Mirror,
};
use mgm_common::counter;
use mgm_tests::{Netns, arg, fix_ipv4_checksum, udp_frame, veth};

/// The kernel does not reset the frame between the runs of one BPF_PROG_TEST_RUN call, so a
/// forwarded frame loses one TTL per run: the hit path runs CHUNK at a time from TTL 255.
/// Each call also costs ~16 ms of wall time here (not CPU), so paths that leave the frame alone
/// run a whole round in one call, and the hit path is capped at HIT_CALLS calls per round.
const CHUNK: u32 = 250;
const HIT_CALLS: u32 = 100;
const ROUNDS: usize = 5;
const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const XDP_REDIRECT: u32 = 4;

struct Path {
    name: &'static str,
    frame: Vec<u8>,
    on_in: bool,
    expect: u32,
    /// Changes the frame (forwarding decrements the TTL).
    modifies: bool,
}

struct Measured {
    name: &'static str,
    median: u32,
    min: u32,
    max: u32,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let repeat: u32 = arg(&args, "--repeat").unwrap_or(1_000_000).max(CHUNK);
    let ns = Netns::new("bench")?;
    let peer = Netns::new("benchp")?;
    veth(&ns, "in", &peer, "pin")?;
    veth(&ns, "out", &peer, "pout")?;
    let (ifin, ifout) = (ns.ifindex("in")?, ns.ifindex("out")?);
    let (mac_in, mac_out) = (ns.mac("in")?, ns.mac("out")?);
    let results = ns.enter(move || measure(repeat, (ifin, mac_in), (ifout, mac_out)))?;
    drop(peer);
    drop(ns);

    let reference = results.iter().find(|r| r.name == "not multicast").map_or(1, |r| r.median);
    println!(
        "XDP ingress program, BPF_PROG_TEST_RUN, 64-byte frames, {repeat} runs per round, \
         {ROUNDS} rounds (median, min, max)"
    );
    println!("  {:<18} {:>8} {:>8} {:>8} {:>14}", "PATH", "NS/PKT", "MIN", "MAX", "VS NOT-MCAST");
    let mut paths = Vec::new();
    for r in &results {
        let ratio = f64::from(r.median) / f64::from(reference.max(1));
        println!("  {:<18} {:>8} {:>8} {:>8} {:>13.2}x", r.name, r.median, r.min, r.max, ratio);
        paths.push(serde_json::json!({
            "path": r.name, "ns_per_packet": r.median, "min": r.min, "max": r.max,
            "vs_not_multicast": ratio,
        }));
    }
    let report = serde_json::json!({
        "benchmark": "xdp_prog_test_run",
        "commit": arg::<String>(&args, "--commit").unwrap_or_default(),
        "repeat": repeat,
        "rounds": ROUNDS,
        "frame_bytes": 64,
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": mgm_tests::cpu_model(),
        "paths": paths,
    });
    if let Some(path) = arg::<String>(&args, "--json") {
        std::fs::write(&path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {path}"))?;
    }
    Ok(())
}

fn measure(
    repeat: u32,
    (ifin, mac_in): (u32, [u8; 6]),
    (ifout, mac_out): (u32, [u8; 6]),
) -> anyhow::Result<Vec<Measured>> {
    let (fp, _logger) = BpfFastPath::load(&LoadOptions::default())?;
    let mut m = Mirror::new(fp);
    m.add_port(ifin, mgm_common::PortValue::new(mac_in, 1500))?;
    m.add_port(ifout, mgm_common::PortValue::new(mac_out, 1500))?;
    let (src, grp) = ([10, 1, 0, 1], [239, 1, 1, 1]);
    m.install_static(Sg::v4(src, grp), ifin, &[ifout])?;
    let sender = [2, 0, 0, 0, 0, 1];
    let payload = [0u8; 18]; // 14 + 20 + 8 + 18 = 60 bytes, 64 on the wire with the FCS
    let hit = udp_frame(sender, src, grp, 255, &payload);
    let mut bad_csum = hit.clone();
    bad_csum[25] ^= 0xff;
    let mut unicast = hit.clone();
    unicast[30..34].copy_from_slice(&[10, 1, 0, 99]);
    fix_ipv4_checksum(&mut unicast);
    let paths = [
        Path {
            name: "hit (forward)",
            frame: hit.clone(),
            on_in: true,
            expect: XDP_REDIRECT,
            modifies: true,
        },
        Path {
            name: "wrong interface",
            frame: hit,
            on_in: false,
            expect: XDP_DROP,
            modifies: false,
        },
        Path {
            name: "ttl expired",
            frame: udp_frame(sender, src, grp, 1, &payload),
            on_in: true,
            expect: XDP_DROP,
            modifies: false,
        },
        Path {
            name: "miss (no MFE)",
            frame: udp_frame(sender, src, [239, 9, 9, 9], 255, &payload),
            on_in: true,
            expect: XDP_PASS,
            modifies: false,
        },
        Path {
            name: "not multicast",
            frame: unicast,
            on_in: true,
            expect: XDP_PASS,
            modifies: false,
        },
        Path {
            name: "bad checksum",
            frame: bad_csum,
            on_in: true,
            expect: XDP_PASS,
            modifies: false,
        },
    ];
    let mut out = Vec::new();
    for p in paths {
        let ifindex = if p.on_in { ifin } else { ifout };
        // Warm-up; for the miss path it also takes the one upcall out of the measurement.
        let first = m.fast_path().test_run(&p.frame, ifindex, CHUNK).context(p.name)?;
        let counters = m.fast_path().counters()?;
        ensure!(
            first.action == p.expect,
            "{}: action {} instead of {}; counters {:?}",
            p.name,
            first.action,
            p.expect,
            counter::NAMES.iter().zip(counters).filter(|c| c.1 > 0).collect::<Vec<_>>()
        );
        let mut rounds = Vec::new();
        for _ in 0..ROUNDS {
            let (calls, per_call) =
                if p.modifies { ((repeat / CHUNK).min(HIT_CALLS), CHUNK) } else { (1, repeat) };
            let (mut ns, mut runs) = (0u64, 0u64);
            for _ in 0..calls {
                let r = m.fast_path().test_run(&p.frame, ifindex, per_call)?;
                ensure!(r.action == p.expect, "{}: action changed to {}", p.name, r.action);
                ns += u64::from(r.ns_per_run) * u64::from(per_call);
                runs += u64::from(per_call);
            }
            rounds.push((ns / runs) as u32);
        }
        rounds.sort_unstable();
        out.push(Measured {
            name: p.name,
            median: rounds[ROUNDS / 2],
            min: rounds[0],
            max: rounds[ROUNDS - 1],
        });
    }
    Ok(out)
}
