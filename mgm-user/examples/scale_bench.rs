// SPDX-License-Identifier: MIT OR Apache-2.0
//! Forwarding at the scale routers carry, run by `cargo xtask bench` (one JSON and one chart
//! per curve in `--out`, default bench-results/):
//! - **fan-out**: one (S,G) to 1 … 128 outgoing interfaces (mgm's widest list): copies/s
//!   delivered and the cost per copy, for mgm, the two XDP ceilings of fwd_bench (a bare
//!   devmap broadcast; the broadcast with the layer-2 rewrite a correct copy needs), a TC
//!   ceiling making the same copies by `bpf_clone_redirect` (as Cilium replicates), and,
//!   where the kernel has multicast routing, ipmr through smcroute up to its limit (MAXVIFS
//!   is 32 interfaces, the incoming one included: 31 outgoing), then IPv6 to as many: mgm
//!   and ip6mr (smcroute; MAXMIFS is 32 too);
//! - **flows**: 1 … 100k concurrent (S,G) flows through one router at fan-out 4, their
//!   packets interleaved uniformly or Zipf-like (s = 1: a few flows carry most packets), each
//!   flow's MFE installed (static, over the socket): delivered packets/s and BPF ns per packet,
//!   against the ceilings, which look nothing up (the two XDP ones and the TC one), and the
//!   lookup ceiling: the layer-2 ceiling with the least any router does with a table of
//!   flows (find the packet's (S,G) in a hash of as many entries and count it there);
//! - **table**: 1k active flows among 1k, 100k and 1M installed MFEs: what a large, cold table
//!   costs per packet, mgm's and the lookup ceiling's, beside the other ceilings;
//! - **sizes**: frames of 64, 512 and 1500 bytes and 3412, the largest the live-frame
//!   generator makes (3408 bytes and the FCS; one XDP buffer on veth carries up to 3520, at
//!   an MTU of 3506, and a 9000-byte MTU cannot take XDP programs without multi-buffer
//!   support, mgm's included) at fan-out 4: each copy is a new page and a memcpy of the frame
//!   in the devmap broadcast, outside any BPF program, so the delivered rate shows what a size
//!   costs;
//! - **installs**: tables of 1k, 10k and 100k (S,G) routes at fan-out 4 filled through
//!   mgm's socket by 1 and by 8 clients (each pipelining its requests) until every entry
//!   forwards, and, where the kernel has multicast routing, by MRT_ADD_MFC from 1 and 8
//!   threads on ipmr's one mroute socket (the kernel allows one per table), in the same run;
//! - **cores**: 1k flows at fan-out 4 with the generator on one CPU, then on two, every veth
//!   with two queues: a veth's XDP frames go to its peer's receive queue of the sending CPU,
//!   so each CPU drives its own queue of the router and of each receiver, as RSS spreads
//!   flows over a NIC's queues. On a two-core machine the generator cannot be kept off the
//!   measured cores: on each core it shares the CPU with the router and the receivers, in the
//!   same proportion at one core and at two, so the ratio of the two is the scaling, and the
//!   BPF ns per packet (timed inside the programs, not counting the generator) says whether a
//!   packet costs more when both cores forward at once.
//!
//! Traffic: the generator program (BPF_PROG_TEST_RUN live frames, `XDP_TX` on the sender's
//! veth) writes each frame's flow from its table (`mgm_common::bench::flow`); receivers count
//! in XDP. Generator, router and receivers share this machine's CPUs: "delivered" is what the
//! receivers counted, and every figure of a curve comes from one run on one kernel.

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{Context as _, bail, ensure};
use mgm::config::StaticMfe;
use mgm_tests::{Family, Mgmd, Topology, arg};
use serde_json::json;

#[path = "bench/mod.rs"]
mod bench;
use bench::*;

const FANOUTS: [usize; 7] = [1, 4, 8, 16, 32, 64, 128];
const QUICK_FANOUTS: [usize; 3] = [1, 16, 128];
/// ipmr's most outgoing interfaces: MAXVIFS (32) counts the incoming one.
const IPMR_MAX_OUT: usize = 31;
const FLOWS: [u32; 5] = [1, 100, 1_000, 10_000, 100_000];
const QUICK_FLOWS: [u32; 3] = [1, 1_000, 10_000];
const TABLES: [u32; 3] = [1_000, 100_000, 1_000_000];
const QUICK_TABLES: [u32; 2] = [1_000, 100_000];
/// Flows with traffic in the table curve.
const ACTIVE: u32 = 1_000;
/// The flows and table curves' fan-out.
const FLOW_FANOUT: usize = 4;
/// Frames on the wire (the FCS included): the smallest.
const SIZE: usize = 64;
/// The IPv6 frames' size: the IPv4 frames' payload behind a header 20 bytes longer.
const SIZE6: usize = SIZE + 20;
/// The sizes curve: the largest is the most a live frame holds on x86-64 with 4 KiB pages
/// (the kernel's TEST_MAX_PKT_SIZE, 3408 bytes, plus the FCS).
const SIZES: [usize; 4] = [64, 512, 1500, 3412];
const QUICK_SIZES: [usize; 2] = [64, 1500];
/// Every link's MTU when the sizes curve runs: the most a veth with an XDP program takes.
const SIZES_MTU: usize = 3506;
/// Tables the installs curve fills, and its concurrent writers (mgm's clients; threads on
/// ipmr's one mroute socket, which the kernel allows one of per table).
const INSTALLS: [u32; 3] = [1_000, 10_000, 100_000];
const QUICK_INSTALLS: [u32; 2] = [1_000, 100_000];
const WRITERS: [usize; 2] = [1, 8];
/// Flows in the cores curve (uniformly mixed), and the queues every veth gets for it.
const CORE_FLOWS: u32 = 1_000;
const QUEUES: usize = 2;

/// One measured point of a curve.
struct Sample {
    contender: &'static str,
    /// The curve's variable: outgoing interfaces, active flows, installed MFEs, or frame bytes.
    x: u64,
    /// How the flows' packets are mixed ("uniform", "zipf"; "-" for one flow).
    mix: &'static str,
    point: Point,
}

impl Sample {
    /// Copies delivered per second, all receivers.
    fn copies(&self) -> f64 {
        self.point.total()
    }

    /// Packets the router forwarded per second (each made `fanout` copies).
    fn packets(&self) -> f64 {
        self.copies() / self.point.fanout as f64
    }

    /// Gbit/s delivered, all receivers (frames on the wire, the FCS included).
    fn gbit_per_s(&self) -> f64 {
        self.copies() * self.point.size as f64 * 8.0 / 1e9
    }

    /// BPF ns per packet: the ingress program, plus the per-copy program for each copy.
    fn bpf_per_packet(&self) -> Option<f64> {
        let copies = self.point.fanout as f64;
        self.point.ns_in.map(|i| i + copies * self.point.ns_copy.unwrap_or(0.0))
    }
}

/// One filled table of the installs curve.
struct Install {
    contender: &'static str,
    writers: usize,
    entries: u32,
    /// From the first request until every entry forwards: mgm's background writes done
    /// (`pending_writes` 0) with all of them installed; ipmr's last MRT_ADD_MFC returned.
    secs: f64,
}

impl Install {
    fn rate(&self) -> f64 {
        self.entries as f64 / self.secs
    }

    fn label(&self) -> String {
        let who = if self.contender == "mgm" { "client" } else { "thread" };
        format!(
            "{}, {} {who}{}",
            self.contender,
            self.writers,
            if self.writers > 1 { "s" } else { "" }
        )
    }
}

/// Splits `0..n` among `writers` threads, runs `write(w, range)` on each at once; the time
/// until the last is done.
fn split_among<W: Send>(
    writers: &mut [W],
    n: u32,
    write: impl Fn(&mut W, std::ops::Range<u32>) -> anyhow::Result<()> + Sync,
) -> anyhow::Result<std::time::Duration> {
    let per = n.div_ceil(writers.len() as u32);
    let t0 = Instant::now();
    std::thread::scope(|s| -> anyhow::Result<()> {
        let write = &write;
        let hs: Vec<_> = writers
            .iter_mut()
            .enumerate()
            .map(|(i, w)| {
                let from = (i as u32 * per).min(n);
                s.spawn(move || write(w, from..(from + per).min(n)))
            })
            .collect();
        hs.into_iter().try_for_each(|h| h.join().expect("writer thread"))
    })?;
    Ok(t0.elapsed())
}

/// Flow `f`'s route at fan-out [`FLOW_FANOUT`], as mgm's static MFE.
fn static_mfe(f: u32, outs: &[String]) -> mgm::proto::Request {
    let (source, group) = mgm_common::bench::flow(f);
    StaticMfe {
        source: std::net::Ipv4Addr::from(source).into(),
        group: std::net::Ipv4Addr::from(group).into(),
        iif: "rin".into(),
        oifs: outs.to_vec(),
    }
    .into()
}

/// Waits until mgmd has `n` MFEs installed and no write left for the fast path.
fn until_installed(mgmd: &Mgmd, n: u32) -> anyhow::Result<()> {
    let mut ctl = mgmd.ctl()?;
    let deadline = Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let s = ctl.status()?;
        if s.pending_writes == 0 && s.installed as u64 >= n as u64 {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "{n} MFEs asked, after 120 s: {s:?}");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

struct Bench {
    t: Topology,
    p: Programs,
    rx: Vec<u32>,
    secs: f64,
    ipmr: bool,
    /// The frames' size on the wire (the sizes curve changes it).
    size: usize,
}

impl Bench {
    fn outs(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("r{i}")).collect()
    }

    /// mgmd managing rin and r1..rN, with `extra` arguments.
    fn mgmd(&self, n: usize, extra: &[String]) -> anyhow::Result<Mgmd> {
        let mut a = vec!["--iface".to_owned(), "rin".to_owned()];
        for o in Self::outs(n) {
            a.extend(["--iface".to_owned(), o]);
        }
        a.extend(extra.iter().cloned());
        Mgmd::start(&self.t.router, &a)
    }

    fn measure(
        &self,
        name: &'static str,
        fanout: usize,
        progs: Option<(&str, Option<&str>)>,
    ) -> anyhow::Result<Point> {
        let at = (Family::V4, fanout, self.size);
        contender(&self.t, &self.p, &self.rx, name, at, self.secs, progs)
    }

    /// One (S,G) of IPv6 (frames of [`SIZE6`]) to `n` interfaces through mgm, then ip6mr.
    fn ipv6_contenders(&mut self, n: usize) -> anyhow::Result<Vec<Sample>> {
        let at = (Family::V6, n, SIZE6);
        let (s, g) = (Family::V6.source(), Family::V6.group());
        let mfe = format!("{s},{g},rin,{}", Self::outs(n).join("+"));
        let mgmd = self.mgmd(n, &["--mfe".into(), mfe])?;
        let mgm = contender(&self.t, &self.p, &self.rx, "mgm6", at, self.secs, MGM_PROGS);
        drop(mgmd);
        let smc = smcrouted_for(&self.t.router, Family::V6, n)?;
        let ip6mr = contender(&self.t, &self.p, &self.rx, "ip6mr", at, self.secs, None);
        drop(smc);
        let sample = |contender, point| Sample { contender, x: n as u64, mix: "-", point };
        Ok(vec![sample("mgm6", mgm?), sample("ip6mr", ip6mr?)])
    }

    /// The XDP ceilings at fan-out `n`: the bare broadcast, then with the layer-2 rewrite.
    fn xdp_ceilings(&mut self, n: usize) -> anyhow::Result<Vec<Point>> {
        let bare = self.xdp_ceiling(n, false)?;
        Ok(vec![bare, self.xdp_ceiling(n, true)?])
    }

    fn l2_ceiling(&mut self, n: usize) -> anyhow::Result<Point> {
        self.xdp_ceiling(n, true)
    }

    fn xdp_ceiling(&mut self, n: usize, l2: bool) -> anyhow::Result<Point> {
        if l2 {
            self.on_rin("ceiling-l2", n, "mgm_bench_l2", Some("mgm_bench_l2out"))
        } else {
            self.on_rin("ceiling", n, "mgm_bench_broadcast", None)
        }
    }

    /// The layer-2 ceiling at fan-out `n` that also finds each packet's flow in a table of
    /// `flows` entries and counts it there: the part of a large table's cost any router pays.
    fn lookup_ceiling(&mut self, n: usize, flows: u32) -> anyhow::Result<Point> {
        self.p.set_lookup_table(flows)?;
        self.on_rin("ceiling-lookup", n, "mgm_bench_l2_lookup", Some("mgm_bench_l2out"))
    }

    /// A ceiling's benchmark program `prog` on rin, copying to `n` ports (each copy through
    /// `out`, the layer-2 rewrite, when given), measured as `name`.
    fn on_rin(
        &mut self,
        name: &'static str,
        n: usize,
        prog: &'static str,
        out: Option<&'static str>,
    ) -> anyhow::Result<Point> {
        self.p.set_ports(&self.t.router, &Self::outs(n), out.is_some())?;
        attach(&self.t.router, "rin", &self.p.pinned(prog))?;
        let r = self.measure(name, n, Some((prog, out)));
        detach(&self.t.router, "rin");
        r
    }

    /// The TC ceiling at fan-out `n`.
    fn tc_ceiling(&mut self, n: usize) -> anyhow::Result<Point> {
        self.p.set_tc_ports(&self.t.router, &Self::outs(n))?;
        attach_tc(&self.t.router, "rin", &self.p.pinned("mgm_bench_tc_clone"))?;
        let r = self.measure("tc-clone", n, Some(("mgm_bench_tc_clone", None)));
        detach_tc(&self.t.router, "rin");
        r
    }

    /// The ceilings that read no flow, the bare broadcast and the TC clones, at fan-out
    /// [`FLOW_FANOUT`] on the traffic set now, as the point (`x`, `mix`) of their curves.
    fn flowless_ceilings(&mut self, x: u64, mix: &'static str) -> anyhow::Result<Vec<Sample>> {
        let bare = self.xdp_ceiling(FLOW_FANOUT, false)?;
        let tc = self.tc_ceiling(FLOW_FANOUT)?;
        Ok(vec![
            Sample { contender: "ceiling", x, mix, point: bare },
            Sample { contender: "tc-clone", x, mix, point: tc },
        ])
    }

    fn fanout(&mut self, fanouts: &[usize]) -> anyhow::Result<Vec<Sample>> {
        self.p.set_flows(0, &[])?;
        let mut out = Vec::new();
        for &n in fanouts {
            out.extend(self.every_contender(n, n)?);
        }
        if self.ipmr {
            ipv6_on_router(&self.t.router, IPMR_MAX_OUT.min(self.rx.len()))?;
            for &n in fanouts.iter().filter(|&&n| n <= IPMR_MAX_OUT) {
                out.extend(self.ipv6_contenders(n)?);
            }
        }
        Ok(out)
    }

    /// Every contender at fan-out [`FLOW_FANOUT`] for each frame size.
    fn sizes(&mut self, sizes: &[usize]) -> anyhow::Result<Vec<Sample>> {
        self.p.set_flows(0, &[])?;
        let mut out = Vec::new();
        for &size in sizes {
            self.size = size;
            out.extend(self.every_contender(FLOW_FANOUT, size)?);
        }
        self.size = SIZE;
        Ok(out)
    }

    /// One (S,G) to `n` interfaces through each contender: mgm (a static MFE), the XDP
    /// ceilings, the TC ceiling, and ipmr where the kernel has it and `n` is within its
    /// limit; each sample at `x` on its curve.
    fn every_contender(&mut self, n: usize, x: usize) -> anyhow::Result<Vec<Sample>> {
        let sample = |contender, point| Sample { contender, x: x as u64, mix: "-", point };
        let mut out = Vec::new();
        let mfe = format!("10.1.0.1,239.1.1.1,rin,{}", Self::outs(n).join("+"));
        let mgmd = self.mgmd(n, &["--mfe".into(), mfe])?;
        let r = self.measure("mgm", n, MGM_PROGS);
        drop(mgmd);
        out.push(sample("mgm", r?));
        for pt in self.xdp_ceilings(n)? {
            out.push(sample(pt.contender, pt));
        }
        out.push(sample("tc-clone", self.tc_ceiling(n)?));
        if self.ipmr && n <= IPMR_MAX_OUT {
            let smc = smcrouted_for(&self.t.router, Family::V4, n)?;
            let r = self.measure("ipmr", n, None);
            drop(smc);
            out.push(sample("ipmr", r?));
        }
        Ok(out)
    }

    /// mgm and the ceilings on [`CORE_FLOWS`] flows with the generator on 1..=N CPUs.
    fn cores(&mut self, counts: &[usize]) -> anyhow::Result<Vec<Sample>> {
        let mut out = Vec::new();
        let mut rng = Rng::new(0x636f_7265);
        let table: Vec<u32> = (0..FLOW_TABLE_DRAWN).map(|_| rng.below(CORE_FLOWS)).collect();
        // Two queues only here: with them, the other curves' generator would share its CPU
        // with the router's softirq work wherever the scheduler put it.
        set_queues(&self.t, QUEUES)?;
        let mgmd = self.mgmd_with_flows(CORE_FLOWS)?;
        self.p.set_flows(CORE_FLOWS, &table)?;
        for &n in counts {
            self.p.cpus = (0..n).collect();
            let pt = self.measure("mgm", FLOW_FANOUT, MGM_PROGS)?;
            out.push(Sample { contender: "mgm", x: n as u64, mix: "uniform", point: pt });
        }
        drop(mgmd);
        for &n in counts {
            self.p.cpus = (0..n).collect();
            let pt = self.l2_ceiling(FLOW_FANOUT)?;
            out.push(Sample { contender: "ceiling-l2", x: n as u64, mix: "uniform", point: pt });
            out.extend(self.flowless_ceilings(n as u64, "uniform")?);
        }
        self.p.cpus.clear();
        self.p.set_flows(0, &[])?;
        set_queues(&self.t, 1)?;
        Ok(out)
    }

    /// mgmd at fan-out [`FLOW_FANOUT`] with flows `0..installed` as static MFEs (added over
    /// the socket, pipelined), or the generator's own (S,G) alone when `installed` is 1.
    fn mgmd_with_flows(&self, installed: u32) -> anyhow::Result<Mgmd> {
        let cap = (installed + 1024).to_string();
        let outs = Self::outs(FLOW_FANOUT);
        let mut extra = vec!["--max-mfes".to_owned(), cap.clone(), "--max-static-mfes".into(), cap];
        if installed <= 1 {
            extra.extend(["--mfe".into(), format!("10.1.0.1,239.1.1.1,rin,{}", outs.join("+"))]);
        }
        let mgmd = self.mgmd(FLOW_FANOUT, &extra)?;
        if installed > 1 {
            let started = Instant::now();
            let mut pipe = Pipe::connect(&mgmd.socket)?;
            pipe.run((0..installed).map(|f| static_mfe(f, &outs)))?;
            until_installed(&mgmd, installed)?;
            println!("  {installed} MFEs installed in {:.1} s", started.elapsed().as_secs_f64());
        }
        Ok(mgmd)
    }

    /// Tables of each size filled at fan-out [`FLOW_FANOUT`] by each count of writers:
    /// through mgm's socket (each client pipelining its requests, as a daemon installing a
    /// table would), and, where the kernel has it, by MRT_ADD_MFC on ipmr's mroute socket.
    fn installs(&mut self, sizes: &[u32]) -> anyhow::Result<Vec<Install>> {
        let outs = Self::outs(FLOW_FANOUT);
        let mut vifs = vec![self.t.router.ifindex("rin")?];
        for o in &outs {
            vifs.push(self.t.router.ifindex(o)?);
        }
        let mut out = Vec::new();
        for &n in sizes {
            for writers in WRITERS {
                let cap = (n + 1024).to_string();
                let extra = ["--max-mfes", &cap, "--max-static-mfes", &cap].map(String::from);
                let mgmd = self.mgmd(FLOW_FANOUT, &extra)?;
                let mut pipes: Vec<Pipe> =
                    (0..writers).map(|_| Pipe::connect(&mgmd.socket)).collect::<Result<_, _>>()?;
                let t0 = Instant::now();
                split_among(&mut pipes, n, |p, range| {
                    p.run(range.map(|f| static_mfe(f, &outs))).map(drop)
                })?;
                until_installed(&mgmd, n)?;
                let secs = t0.elapsed().as_secs_f64();
                out.push(Install { contender: "mgm", writers, entries: n, secs });
                drop(mgmd);
                if self.ipmr {
                    let mrouted = Mrouted::open(&self.t.router, &vifs)?;
                    let all: Vec<usize> = (1..=FLOW_FANOUT).collect();
                    let mut threads = vec![&mrouted; writers];
                    let took = split_among(&mut threads, n, |m, range| {
                        range
                            .into_iter()
                            .try_for_each(|f| m.mfc(true, mgm_common::bench::flow(f), &all))
                    })?;
                    let routes = self.t.router.exec("cat", &["/proc/net/ip_mr_cache"])?;
                    let held = routes.lines().skip(1).count();
                    ensure!(held == n as usize, "ipmr holds {held} routes of {n} added");
                    let secs = took.as_secs_f64();
                    out.push(Install { contender: "ipmr", writers, entries: n, secs });
                }
            }
        }
        Ok(out)
    }

    fn flows(&mut self, counts: &[u32]) -> anyhow::Result<Vec<Sample>> {
        let mut out = Vec::new();
        let mut rng = Rng::new(0x6d67_6d00);
        for &n in counts {
            let mixes: Vec<(&'static str, Vec<u32>)> = if n <= 1 {
                vec![("-", Vec::new())]
            } else {
                let uniform = (0..FLOW_TABLE_DRAWN).map(|_| rng.below(n)).collect();
                vec![("uniform", uniform), ("zipf", zipf_table(&mut rng, n))]
            };
            let mgmd = self.mgmd_with_flows(n)?;
            for (mix, table) in &mixes {
                self.p.set_flows(n, table)?;
                let pt = self.measure("mgm", FLOW_FANOUT, MGM_PROGS)?;
                out.push(Sample { contender: "mgm", x: n as u64, mix, point: pt });
            }
            // The ceiling on the same traffic, once mgmd's programs are off rin.
            drop(mgmd);
            for (mix, table) in &mixes {
                self.p.set_flows(n, table)?;
                let pt = self.l2_ceiling(FLOW_FANOUT)?;
                out.push(Sample { contender: "ceiling-l2", x: n as u64, mix, point: pt });
                let pt = self.lookup_ceiling(FLOW_FANOUT, n)?;
                out.push(Sample { contender: "ceiling-lookup", x: n as u64, mix, point: pt });
                // Neither reads the flow: one mix is enough.
                if *mix != "zipf" {
                    out.extend(self.flowless_ceilings(n as u64, mix)?);
                }
            }
        }
        self.p.set_flows(0, &[])?;
        self.p.set_lookup_table(0)?;
        Ok(out)
    }

    fn table(&mut self, sizes: &[u32]) -> anyhow::Result<Vec<Sample>> {
        let mut out = Vec::new();
        let mut rng = Rng::new(0x7461_626c);
        for &n in sizes {
            let mgmd = self.mgmd_with_flows(n)?;
            // ACTIVE flows spread over the whole table, their packets uniformly mixed.
            let active: Vec<u32> = (0..ACTIVE.min(n)).map(|_| rng.below(n)).collect();
            let table: Vec<u32> = (0..FLOW_TABLE_DRAWN)
                .map(|_| active[rng.below(active.len() as u32) as usize])
                .collect();
            self.p.set_flows(n, &table)?;
            let pt = self.measure("mgm", FLOW_FANOUT, MGM_PROGS)?;
            drop(mgmd);
            out.push(Sample { contender: "mgm", x: n as u64, mix: "uniform", point: pt });
            // The ceiling looks nothing up: the same traffic, beside each size.
            let pt = self.l2_ceiling(FLOW_FANOUT)?;
            out.push(Sample { contender: "ceiling-l2", x: n as u64, mix: "uniform", point: pt });
            let pt = self.lookup_ceiling(FLOW_FANOUT, n)?;
            out.push(Sample {
                contender: "ceiling-lookup",
                x: n as u64,
                mix: "uniform",
                point: pt,
            });
            out.extend(self.flowless_ceilings(n as u64, "uniform")?);
        }
        self.p.set_flows(0, &[])?;
        self.p.set_lookup_table(0)?;
        Ok(out)
    }
}

/// Every veth of the topology, both ends: (namespace, device).
fn links(t: &Topology) -> Vec<(&mgm_tests::Netns, String)> {
    let mut links = vec![(&t.sender, "s0".to_owned()), (&t.router, "rin".to_owned())];
    links.extend((1..=t.receivers.len()).map(|i| (&t.router, format!("r{i}"))));
    links.extend(t.receivers.iter().map(|ns| (ns, "eth0".to_owned())));
    links
}

/// Gives every veth `n` receive and transmit queues. A veth refuses more transmit queues than
/// its peer has receive queues while the peer runs XDP (the receivers' counters do): the
/// receivers' ends change first on the way up, last on the way down.
fn set_queues(t: &Topology, n: usize) -> anyhow::Result<()> {
    let mut order = links(t);
    if n > 1 {
        order.reverse();
    }
    let n = n.to_string();
    for (ns, dev) in order {
        ns.exec("ethtool", &["-L", &dev, "rx", &n, "tx", &n])?;
    }
    Ok(())
}

/// Flow numbers drawn per mix (the generator's table repeats them).
const FLOW_TABLE_DRAWN: u32 = 1 << 18;

/// xorshift64*: reproducible draws, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in 0..n.
    fn below(&mut self, n: u32) -> u32 {
        (((self.next() >> 32) * n as u64) >> 32) as u32
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Flow numbers with Zipf-like frequencies (s = 1: flow k carries 1/(k+1) of the first's).
fn zipf_table(rng: &mut Rng, n: u32) -> Vec<u32> {
    let mut cdf = Vec::with_capacity(n as usize);
    let mut sum = 0.0;
    for k in 0..n {
        sum += 1.0 / (k as f64 + 1.0);
        cdf.push(sum);
    }
    (0..FLOW_TABLE_DRAWN)
        .map(|_| {
            let u = rng.unit() * sum;
            cdf.partition_point(|&c| c < u).min(n as usize - 1) as u32
        })
        .collect()
}

const CURVES: [&str; 6] = ["fanout", "flows", "table", "sizes", "cores", "installs"];

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let secs: f64 = arg(&args, "--secs").unwrap_or(if quick { 0.5 } else { 2.0 });
    let runs: usize = arg(&args, "--runs").unwrap_or(if quick { 1 } else { 3 });
    let out: PathBuf = arg::<String>(&args, "--out").unwrap_or("bench-results".into()).into();
    let curves: Vec<String> = match arg::<String>(&args, "--curve") {
        Some(c) => c.split(',').map(str::to_owned).collect(),
        None => CURVES.map(str::to_owned).to_vec(),
    };
    for c in &curves {
        ensure!(CURVES.contains(&c.as_str()), "unknown curve {c} (curves: {})", CURVES.join(","));
    }
    let kernel = mgm::features::KernelFeatures::running();
    let place: String = arg(&args, "--place").unwrap_or_else(|| "this machine".into());
    let receivers = if curves.iter().any(|c| c == "fanout") {
        *if quick { &QUICK_FANOUTS[..] } else { &FANOUTS[..] }.last().expect("some")
    } else {
        FLOW_FANOUT
    };
    let started = Instant::now();
    let t = Topology::new(receivers)?;
    // ipmr wants addresses on its interfaces and no reverse-path filter for this source.
    t.router.exec("ip", &["addr", "add", "10.1.0.254/24", "dev", "rin"])?;
    for i in 1..=receivers {
        t.router
            .exec("ip", &["addr", "add", &format!("10.2.{i}.1/24"), "dev", &format!("r{i}")])?;
    }
    // Without a program on rin (ipmr's and the TC ceiling's runs) a veth takes the
    // generator's XDP frames only with GRO on.
    t.router.exec("ethtool", &["-K", "rin", "gro", "on"])?;
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let core_counts: Vec<usize> = (1..=cpus.min(QUEUES)).collect();
    if curves.iter().any(|c| c == "cores") {
        ensure!(cpus >= 2, "the cores curve needs two CPUs; this machine has {cpus}");
    }
    if curves.iter().any(|c| c == "sizes") {
        // Before any XDP program: a veth with one takes no MTU above one buffer's worth.
        let mtu = SIZES_MTU.to_string();
        for (ns, dev) in links(&t) {
            ns.exec("ip", &["link", "set", &dev, "mtu", &mtu])?;
        }
    }
    for k in ["all", "default", "rin"] {
        t.router.exec("sysctl", &["-qw", &format!("net.ipv4.conf.{k}.rp_filter=0")])?;
    }
    let mut p = Programs::load()?;
    p.runs = runs;
    if !matches!(p.generator, Generator::LiveFrames(_)) {
        bail!("this kernel refuses XDP live-frame test runs: the many-flow generator needs them");
    }
    let rx: Vec<u32> = t.receivers.iter().map(|ns| ns.ifindex("eth0")).collect::<Result<_, _>>()?;
    for ns in &t.receivers {
        attach(ns, "eth0", &p.pinned("mgm_bench_rx"))?;
    }
    println!(
        "forwarding at scale: kernel {} ({place}), {receivers} receivers ready in {:.1} s; \
         each point the median of {runs} passes of {secs} s",
        kernel.release,
        started.elapsed().as_secs_f64()
    );
    let mut b = Bench { t, p, rx, secs, ipmr: kernel.ipmr, size: SIZE };
    std::fs::create_dir_all(&out)?;
    let run = json!({
        "commit": arg::<String>(&args, "--commit").unwrap_or_default(),
        "kernel": kernel.release, "place": place, "quick": quick,
        "seconds_per_pass": secs, "passes_per_point": runs, "cpus": cpus,
        "cpu_model": mgm_tests::cpu_model(), "frame_bytes": SIZE,
    });
    for c in &curves {
        let t0 = Instant::now();
        if c == "installs" {
            let installs = b.installs(if quick { &QUICK_INSTALLS } else { &INSTALLS })?;
            report_installs(&installs, &run, &out, b.ipmr)?;
            println!("  ({c}: {:.0} s)", t0.elapsed().as_secs_f64());
            continue;
        }
        let samples = match c.as_str() {
            "fanout" => b.fanout(if quick { &QUICK_FANOUTS } else { &FANOUTS })?,
            "flows" => b.flows(if quick { &QUICK_FLOWS } else { &FLOWS })?,
            "table" => b.table(if quick { &QUICK_TABLES } else { &TABLES })?,
            "cores" => b.cores(&core_counts)?,
            _ => b.sizes(if quick { &QUICK_SIZES } else { &SIZES })?,
        };
        report(c, &samples, &run, &out, b.ipmr)?;
        println!("  ({c}: {:.0} s)", t0.elapsed().as_secs_f64());
    }
    Ok(())
}

/// Prints a curve, writes its JSON and its chart.
fn report(
    curve: &str,
    samples: &[Sample],
    run: &serde_json::Value,
    out: &Path,
    ipmr: bool,
) -> anyhow::Result<()> {
    let x_name = match curve {
        "fanout" => "N out",
        "flows" => "flows",
        "sizes" => "bytes",
        "cores" => "CPUs",
        _ => "MFEs",
    };
    println!(
        "\n{curve}: {}",
        match curve {
            "fanout" => "one (S,G) to N interfaces",
            "flows" => "concurrent flows at fan-out 4",
            "sizes" => "frame sizes on the wire at fan-out 4",
            "cores" => "1k flows at fan-out 4, the generator on 1 and 2 CPUs",
            _ => "1k active flows among the installed MFEs, fan-out 4",
        }
    );
    println!(
        "  {:<14} {:>8} {:>7} {:>9} {:>9} {:>9} {:>8} {:>9} {:>9}",
        "WHO", x_name, "MIX", "COPIES/s", "PKTS/s", "OFFERED", "vs c-l2", "BPF ns/p", "BPF ns/c"
    );
    let find = |c: &str, x: u64, mix: &str| {
        samples.iter().find(|s| s.contender == c && s.x == x && s.mix == mix)
    };
    let mut rows = Vec::new();
    for s in samples {
        let vs = find("ceiling-l2", s.x, s.mix).map(|c| s.copies() / c.copies().max(1.0));
        let per_copy = s.bpf_per_packet().map(|b| b / s.point.fanout as f64);
        let f = |v: Option<f64>, d: usize| v.map_or("-".into(), |v| format!("{v:.d$}"));
        println!(
            "  {:<14} {:>8} {:>7} {:>8.3}M {:>8.3}M {:>8.3}M {:>8} {:>9} {:>9}",
            s.contender,
            s.x,
            s.mix,
            s.copies() / 1e6,
            s.packets() / 1e6,
            s.point.offered_pps / 1e6,
            vs.map_or("-".into(), |v| format!("{v:.2}x")),
            f(s.bpf_per_packet(), 0),
            f(per_copy, 1),
        );
        rows.push(json!({
            "contender": s.contender, "x": s.x, "mix": s.mix, "fanout": s.point.fanout,
            "offered_pps": s.point.offered_pps, "delivered_copies_per_s": s.copies(),
            "forwarded_packets_per_s": s.packets(),
            "delivered_per_receiver": s.point.per_receiver_pps,
            "vs_ceiling_l2": vs, "bpf_ns_per_packet": s.bpf_per_packet(),
            "bpf_ns_per_copy": per_copy, "frame_bytes": s.point.size,
            "delivered_gbit_per_s": s.gbit_per_s(),
            "bpf_ns_in": s.point.ns_in, "bpf_ns_per_copy_out": s.point.ns_copy,
        }));
    }
    if curve == "table" || curve == "flows" {
        // What the table costs mgm per packet against what it costs the lookup ceiling.
        let ns = |who: &str, x: u64, mix: &str| find(who, x, mix).and_then(Sample::bpf_per_packet);
        let first = samples.iter().map(|s| s.x).min().unwrap_or(0);
        for s in samples.iter().filter(|s| s.contender == "mgm") {
            let (Some(m), Some(l)) = (ns("mgm", s.x, s.mix), ns("ceiling-lookup", s.x, s.mix))
            else {
                continue;
            };
            let growth = |who| {
                let base = ns(who, first, "uniform").or(ns(who, first, "-"))?;
                Some(format!("{:+.0}%", (ns(who, s.x, s.mix)? / base - 1.0) * 100.0))
            };
            println!(
                "  {x_name} {} {}: BPF ns/packet mgm {m:.0} ({} over {first}), lookup ceiling {l:.0} ({}); mgm delivers {:.2}x the lookup ceiling",
                s.x,
                s.mix,
                growth("mgm").unwrap_or("-".into()),
                growth("ceiling-lookup").unwrap_or("-".into()),
                s.copies() / find("ceiling-lookup", s.x, s.mix).map_or(f64::NAN, Sample::copies),
            );
        }
    }
    if curve == "cores" {
        for who in ["mgm", "ceiling-l2", "ceiling", "tc-clone"] {
            let (Some(one), Some(two)) = (find(who, 1, "uniform"), find(who, 2, "uniform")) else {
                continue;
            };
            println!("  {who}: 2 CPUs forward {:.2}x what 1 does", two.copies() / one.copies());
        }
    }
    if curve == "fanout" {
        let widest = samples.iter().map(|s| s.x).max().unwrap_or(0);
        if !ipmr {
            println!("  ipmr, ip6mr: not measured (this kernel has no multicast routing)");
        } else if widest as usize > IPMR_MAX_OUT {
            println!(
                "  ipmr, ip6mr: at most {IPMR_MAX_OUT} outgoing interfaces (MAXVIFS and MAXMIFS 32, the incoming one included); beyond, they cannot"
            );
        }
        for (mgm, kernel) in [("mgm", "ipmr"), ("mgm6", "ip6mr")] {
            for k in samples.iter().filter(|s| s.contender == kernel) {
                let Some(m) = find(mgm, k.x, k.mix) else { continue };
                let ratio = m.copies() / k.copies().max(1.0);
                println!("  N {}: {mgm} delivers {ratio:.2}x {kernel}", k.x);
            }
        }
    }
    let mut doc = run.clone();
    doc["benchmark"] = json!(format!("scale_{curve}"));
    doc["points"] = json!(rows);
    let json = out.join(format!("scale_{curve}.json"));
    std::fs::write(&json, serde_json::to_string_pretty(&doc)?)
        .with_context(|| format!("writing {}", json.display()))?;
    let png = out.join(format!("scale_{curve}.png"));
    chart(curve, samples, &png).with_context(|| format!("drawing {}", png.display()))?;
    println!("  wrote {} and {}", json.display(), png.display());
    let nothing: Vec<String> = samples
        .iter()
        .filter(|s| s.point.per_receiver_pps.iter().any(|&v| v <= 0.0))
        .map(|s| format!("{} at {} {}", s.contender, s.x, s.mix))
        .collect();
    ensure!(nothing.is_empty(), "a receiver got nothing: {}", nothing.join(", "));
    Ok(())
}

/// Prints the installs curve, writes its JSON and its chart (rate and time against the
/// table's size, one line per contender and count of writers).
fn report_installs(
    installs: &[Install],
    run: &serde_json::Value,
    out: &Path,
    ipmr: bool,
) -> anyhow::Result<()> {
    println!("\ninstalls: tables of (S,G) routes at fan-out 4, until every entry forwards");
    println!(
        "  {:<18} {:>8} {:>9} {:>11} {:>8}",
        "WHO", "ENTRIES", "SECONDS", "INSTALLS/s", "vs ipmr"
    );
    let mut rows = Vec::new();
    for i in installs {
        let kernel = installs
            .iter()
            .find(|k| k.contender == "ipmr" && k.entries == i.entries && k.writers == i.writers);
        let vs = kernel.filter(|_| i.contender != "ipmr").map(|k| i.rate() / k.rate());
        println!(
            "  {:<18} {:>8} {:>9.3} {:>11.0} {:>8}",
            i.label(),
            i.entries,
            i.secs,
            i.rate(),
            vs.map_or("-".into(), |v| format!("{v:.2}x"))
        );
        rows.push(json!({
            "contender": i.contender, "writers": i.writers, "entries": i.entries,
            "fanout": FLOW_FANOUT, "seconds": i.secs, "installs_per_s": i.rate(),
            "vs_ipmr_same_writers": vs,
        }));
    }
    if !ipmr {
        println!("  ipmr: not measured (this kernel has no multicast routing)");
    }
    let mut doc = run.clone();
    doc["benchmark"] = json!("scale_installs");
    doc["points"] = json!(rows);
    let json = out.join("scale_installs.json");
    std::fs::write(&json, serde_json::to_string_pretty(&doc)?)
        .with_context(|| format!("writing {}", json.display()))?;
    let png = out.join("scale_installs.png");
    chart_installs(installs, &png).with_context(|| format!("drawing {}", png.display()))?;
    println!("  wrote {} and {}", json.display(), png.display());
    Ok(())
}

fn chart_installs(installs: &[Install], path: &Path) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let mut labels: Vec<String> = Vec::new();
    for i in installs {
        if !labels.contains(&i.label()) {
            labels.push(i.label());
        }
    }
    let color = |label: &str| match label {
        l if l.starts_with("mgm, 1 ") => RED,
        l if l.starts_with("mgm") => RGBColor(230, 140, 0),
        l if l.starts_with("ipmr, 1 ") => BLUE,
        _ => RGBColor(100, 160, 255),
    };
    let panel = |value: &dyn Fn(&Install) -> f64| -> Vec<Line> {
        labels
            .iter()
            .map(|label| Line {
                label: label.clone(),
                color: color(label),
                points: installs
                    .iter()
                    .filter(|i| i.label() == *label)
                    .map(|i| (i.entries as f64, value(i)))
                    .collect(),
            })
            .collect()
    };
    two_panels(
        path,
        "Installing (S,G) routes at fan-out 4: mgm's socket vs the kernel's MRT_ADD_MFC",
        "routes in the table",
        distinct(installs.iter().map(|i| i.entries as u64)),
        [
            ("thousand installs/s", panel(&|i| i.rate() / 1e3)),
            ("seconds to fill the table", panel(&|i| i.secs)),
        ],
        SeriesLabelPosition::UpperLeft,
    )
}

/// One line of a chart's panel.
struct Line {
    label: String,
    color: plotters::style::RGBColor,
    points: Vec<(f64, f64)>,
}

/// A chart of two panels side by side, each a y description and its lines, against the same
/// x values (log scale, marked at `xs`: a log scale's own marks between 1 and 2 CPUs are
/// only "1"), each point circled.
fn two_panels(
    path: &Path,
    title: &str,
    x_desc: &str,
    xs: Vec<f64>,
    panels: [(&str, Vec<Line>); 2],
    legend: plotters::chart::SeriesLabelPosition,
) -> anyhow::Result<()> {
    use plotters::prelude::*;
    register_font()?;
    let (min_x, max_x) = (xs[0], xs[xs.len() - 1].max(xs[0] * 2.0));
    let root = BitMapBackend::new(path, (1200, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 22))?;
    let (left, right) = root.split_horizontally(600);
    for (area, (desc, lines)) in [&left, &right].into_iter().zip(panels) {
        let max_y = lines.iter().flat_map(|l| &l.points).map(|p| p.1).fold(0.0, f64::max);
        let mut chart = ChartBuilder::on(area)
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(
                (min_x / 1.3..max_x * 1.3).log_scale().with_key_points(xs.clone()),
                0f64..max_y.max(0.001) * 1.15,
            )?;
        chart
            .configure_mesh()
            .x_label_formatter(&|x| format!("{x:.0}"))
            .x_desc(x_desc)
            .y_desc(desc)
            .draw()?;
        for line in lines {
            let color = line.color;
            chart
                .draw_series(LineSeries::new(line.points.clone(), color.stroke_width(2)))?
                .label(line.label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart.draw_series(
                line.points.iter().map(|&(x, y)| Circle::new((x, y), 4, color.filled())),
            )?;
        }
        chart
            .configure_series_labels()
            .position(legend.clone())
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()?;
    }
    root.present()?;
    Ok(())
}

/// The distinct values, in order, as a chart's axis marks them.
fn distinct(values: impl Iterator<Item = u64>) -> Vec<f64> {
    let set: std::collections::BTreeSet<u64> = values.collect();
    set.into_iter().map(|v| v as f64).collect()
}

/// The curve's chart, two panels against its variable (log scale), one line per contender
/// and mix: what the receivers got (copies/s for fan-out, packets forwarded/s otherwise), and
/// the BPF cost (ns per copy for fan-out, per packet otherwise).
fn chart(curve: &str, samples: &[Sample], path: &Path) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let (title, x_desc, rate_desc, cost_desc) = match curve {
        "fanout" => (
            "One (S,G) to N interfaces, 64-byte frames (IPv6: mgm6, ip6mr, 84-byte)",
            "outgoing interfaces",
            "Mcopies/s delivered, all receivers",
            "BPF ns per copy",
        ),
        "cores" => (
            "1k flows, fan-out 4: the generator on 1 and 2 CPUs, 2 queues per veth",
            "CPUs",
            "Mpps forwarded",
            "BPF ns per packet (XDP; the TC clones' in the JSON)",
        ),
        "sizes" => (
            "One (S,G) to 4 interfaces by frame size (bytes on the wire)",
            "frame bytes",
            "Mcopies/s delivered, all receivers",
            "Gbit/s delivered, all receivers",
        ),
        "flows" => (
            "Concurrent (S,G) flows, fan-out 4, 64-byte frames",
            "active flows",
            "Mpps forwarded",
            "BPF ns per packet (XDP; the TC clones' in the JSON)",
        ),
        _ => (
            "1k active flows among the installed MFEs, fan-out 4, 64-byte frames",
            "installed MFEs",
            "Mpps forwarded",
            "BPF ns per packet (XDP; the TC clones' in the JSON)",
        ),
    };
    let by_copy = curve == "fanout" || curve == "sizes";
    let rate = |s: &Sample| Some(if by_copy { s.copies() } else { s.packets() } / 1e6);
    // A bigger frame costs no more BPF time (the programs read the headers); what it costs is
    // the kernel's page and memcpy per copy, seen in what gets through.
    let cost = |s: &Sample| match curve {
        "sizes" => Some(s.gbit_per_s()),
        "fanout" => s.bpf_per_packet().map(|b| b / s.point.fanout as f64),
        // Several times the XDP programs' cost: on the same axis it would flatten theirs.
        _ if s.contender == "tc-clone" => None,
        _ => s.bpf_per_packet(),
    };
    // One colour per contender (as in fwd_bench's chart), a lighter one for its Zipf mix.
    let color = |who: &str, mix: &str| {
        let zipf = mix == "zipf";
        match who {
            "mgm" if zipf => RGBColor(230, 140, 0),
            "mgm" => RED,
            "ceiling" => RGBColor(140, 140, 140),
            "ceiling-l2" if zipf => RGBColor(110, 110, 110),
            "ceiling-l2" => BLACK,
            "tc-clone" => RGBColor(0, 150, 0),
            "ceiling-lookup" if zipf => RGBColor(190, 130, 220),
            "ceiling-lookup" => RGBColor(130, 40, 170),
            "mgm6" => RGBColor(150, 0, 60),
            "ip6mr" => RGBColor(90, 160, 230),
            _ => BLUE,
        }
    };
    let mut lines: Vec<(&str, &str)> = Vec::new();
    for s in samples {
        // One flow ("-") starts each mix's line rather than being a line of its own.
        let starts_a_mix =
            s.mix == "-" && samples.iter().any(|o| o.contender == s.contender && o.mix != "-");
        if !starts_a_mix && !lines.contains(&(s.contender, s.mix)) {
            lines.push((s.contender, s.mix));
        }
    }
    let panel = |value: &dyn Fn(&Sample) -> Option<f64>| -> Vec<Line> {
        lines
            .iter()
            .map(|&(who, mix)| Line {
                label: if mix == "-" { who.to_string() } else { format!("{who} ({mix})") },
                color: color(who, mix),
                points: samples
                    .iter()
                    .filter(|s| s.contender == who && (s.mix == mix || s.mix == "-"))
                    .filter_map(|s| Some((s.x as f64, value(s)?)))
                    .collect(),
            })
            .collect()
    };
    two_panels(
        path,
        title,
        x_desc,
        distinct(samples.iter().map(|s| s.x.max(1))),
        [(rate_desc, panel(&rate)), (cost_desc, panel(&cost))],
        SeriesLabelPosition::LowerLeft,
    )
}
