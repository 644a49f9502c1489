// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the forwarding benchmarks share (fwd_bench, scale_bench): the benchmark programs,
//! the generator, a contender's measurement with its BPF costs, the charts' font, a raw
//! mgmd connection, and the kernel's mroute socket (follow_bench, scale_bench too).
// Each benchmark uses part of it.
#![allow(dead_code)]

use std::{
    io::{BufRead as _, BufReader, Write as _},
    os::{
        fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::net::UnixStream,
    },
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuHashMap, PerCpuValues, xdp::DevMapHash},
    programs::{ProgramFd, SchedClassifier, Xdp, loaded_programs},
    sys::{Stats, enable_stats},
    util::nr_cpus,
};
use mgm::dataplane::{BPF_F_TEST_XDP_LIVE_FRAMES, prog_test_run, xdp_ctx};
use mgm::proto::{Method, ReplyBody, ReplyFrame, Request, RequestFrame, is_event};
use mgm_common::{MfeKey, bench::flow};
use mgm_tests::{Family, GROUP, Netns, SOURCE, Smcroute, Topology, udp_frame, udp6_frame, unique};
use serde::de::IgnoredAny;

/// The benchmark programs (built with mgmd's object, never loaded by mgmd).
pub static BENCH_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/mgm-bench"));

pub const SOURCE6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub const GROUP6: [u8; 16] = [0xff, 0x3e, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80, 0, 0, 1];
/// Frames per BPF_PROG_TEST_RUN call: each call costs ~16 ms besides the frames.
pub const REPEAT: u32 = 1_000_000;

/// The benchmark programs, pinned so `ip -n NS link set ... pinned` can attach them in any
/// namespace.
pub struct Programs {
    pub _ebpf: Ebpf,
    pub dir: PathBuf,
    pub generator: Generator,
    pub rx_counts: PerCpuHashMap<MapData, u32, u64>,
    pub ports: Option<DevMapHash<MapData>>,
    pub l2_ports: Option<DevMapHash<MapData>>,
    pub macs: Option<HashMap<MapData, u32, [u8; 6]>>,
    pub l2out: ProgramFd,
    /// The TC ceiling's outputs (entry 0: how many).
    pub tc_ports: Array<MapData, u32>,
    /// The generator's flow count, and its table of flow numbers.
    pub gen_flows: Array<MapData, u32>,
    pub flow_table: Array<MapData, u32>,
    /// The lookup ceiling's table, and the flows it holds (`0..n`, or the frame's own (S,G)
    /// alone when `n` is 1).
    pub lookup_table: PerCpuHashMap<MapData, MfeKey, [u64; 2]>,
    pub lookup_flows: u32,
    /// The CPUs the generator runs on, one thread pinned to each (live frames only); empty:
    /// one thread, wherever the scheduler puts it.
    pub cpus: Vec<usize>,
    /// Rate passes per point: the one with the median total counts (noise on a shared
    /// machine is mostly one-sided: a pass the neighbours slowed).
    pub runs: usize,
}

impl Programs {
    pub fn load() -> anyhow::Result<Self> {
        let mut ebpf = EbpfLoader::new().load(BENCH_OBJECT)?;
        let dir = Path::new("/sys/fs/bpf").join(unique("bench"));
        std::fs::create_dir_all(&dir)?;
        let mut tx = None;
        for name in [
            "mgm_bench_tx",
            "mgm_bench_rx",
            "mgm_bench_broadcast",
            "mgm_bench_l2",
            "mgm_bench_l2_lookup",
        ] {
            let p: &mut Xdp = ebpf.program_mut(name).context(name)?.try_into()?;
            p.load()?;
            p.pin(dir.join(name))?;
            if name == "mgm_bench_tx" {
                tx = Some(p.fd()?.as_fd().try_clone_to_owned()?);
            }
        }
        let tc: &mut SchedClassifier =
            ebpf.program_mut("mgm_bench_tc_clone").context("tc_clone")?.try_into()?;
        tc.load()?;
        tc.pin(dir.join("mgm_bench_tc_clone"))?;
        let l2out: &mut Xdp = ebpf.program_mut("mgm_bench_l2out").context("l2out")?.try_into()?;
        l2out.load()?;
        let l2out = l2out.fd()?.try_clone()?;
        let map = |ebpf: &mut Ebpf, name: &str| ebpf.take_map(name).context(name.to_owned());
        let tx = tx.expect("loaded");
        let generator = if mgm::features::KernelFeatures::running().xdp_live_frames {
            Generator::LiveFrames(tx)
        } else {
            Generator::PacketSocket
        };
        Ok(Self {
            generator,
            rx_counts: PerCpuHashMap::try_from(map(&mut ebpf, "MGM_BENCH_RX")?)?,
            ports: Some(DevMapHash::try_from(map(&mut ebpf, "MGM_BENCH_PORTS")?)?),
            l2_ports: Some(DevMapHash::try_from(map(&mut ebpf, "MGM_BENCH_L2_PORTS")?)?),
            macs: Some(HashMap::try_from(map(&mut ebpf, "MGM_BENCH_MACS")?)?),
            l2out,
            tc_ports: Array::try_from(map(&mut ebpf, "MGM_BENCH_TC_PORTS")?)?,
            gen_flows: Array::try_from(map(&mut ebpf, "MGM_BENCH_GEN")?)?,
            flow_table: Array::try_from(map(&mut ebpf, "MGM_BENCH_FLOWS")?)?,
            lookup_table: PerCpuHashMap::try_from(map(&mut ebpf, "MGM_BENCH_TABLE")?)?,
            lookup_flows: 0,
            cpus: Vec::new(),
            runs: 1,
            _ebpf: ebpf,
            dir,
        })
    }

    /// Points a ceiling's devmap (and, for the second ceiling, the ports' MACs) at `outs`.
    /// Devmap entries name devices of the caller's namespace: filled from the router's.
    pub fn set_ports(&mut self, router: &Netns, outs: &[String], l2: bool) -> anyhow::Result<()> {
        let ifs: Vec<(u32, [u8; 6])> = outs
            .iter()
            .map(|o| Ok((router.ifindex(o)?, router.mac(o)?)))
            .collect::<anyhow::Result<_>>()?;
        let slot = if l2 { &mut self.l2_ports } else { &mut self.ports };
        let ports = slot.take().expect("present");
        let prog = if l2 { Some(self.l2out.try_clone()?) } else { None };
        let keys: Vec<u32> = ifs.iter().map(|(i, _)| *i).collect();
        let ports = router.enter(move || {
            let mut ports = ports;
            for k in ports.keys().collect::<Result<Vec<u32>, _>>()? {
                ports.remove(k)?;
            }
            for i in keys {
                ports.insert(i, i, prog.as_ref(), 0)?;
            }
            Ok(ports)
        })?;
        *slot = Some(ports);
        if l2 {
            let macs = self.macs.as_mut().expect("present");
            for (i, mac) in ifs {
                macs.insert(i, mac, 0)?;
            }
        }
        Ok(())
    }

    /// Points the TC ceiling at `outs` (ifindexes and MACs from the router's namespace).
    pub fn set_tc_ports(&mut self, router: &Netns, outs: &[String]) -> anyhow::Result<()> {
        let macs = self.macs.as_mut().expect("present");
        for (i, o) in outs.iter().enumerate() {
            let ifindex = router.ifindex(o)?;
            macs.insert(ifindex, router.mac(o)?, 0)?;
            self.tc_ports.set(i as u32 + 1, ifindex, 0)?;
        }
        self.tc_ports.set(0, outs.len() as u32, 0)?;
        Ok(())
    }

    /// The generator's flows: `flows` of them (0: the frame's own (S,G) only), frame after
    /// frame in the order of `table` (flow numbers below `flows`; repeated to fill the
    /// generator's table).
    pub fn set_flows(&mut self, flows: u32, table: &[u32]) -> anyhow::Result<()> {
        if flows > 1 {
            ensure!(!table.is_empty(), "a table of flow numbers");
            for i in 0..mgm_common::bench::FLOW_TABLE {
                self.flow_table.set(i, table[i as usize % table.len()], 0)?;
            }
        }
        self.gen_flows.set(0, flows, 0)?;
        Ok(())
    }

    /// Makes the lookup ceiling's table hold the flows the generator sends when told `n`:
    /// flows `0..n`, or the frame's own (S,G) when `n` is 1 (as mgm's MFE table would).
    pub fn set_lookup_table(&mut self, n: u32) -> anyhow::Result<()> {
        let keys = |n: u32| -> Vec<MfeKey> {
            match n {
                0 => Vec::new(),
                1 => vec![MfeKey::new(SOURCE, GROUP)],
                n => (0..n).map(|f| MfeKey::new(flow(f).0, flow(f).1)).collect(),
            }
        };
        let (had, want) = (keys(self.lookup_flows), keys(n.max(1)));
        // Flows 0..m are a prefix of flows 0..n: only the difference is written.
        let same = if had.len() > 1 && want.len() > 1 { had.len().min(want.len()) } else { 0 };
        for k in &had[same..] {
            self.lookup_table.remove(k)?;
        }
        self.lookup_flows = 0;
        let cpus = nr_cpus().map_err(|(_, e)| e)?;
        for k in &want[same..] {
            self.lookup_table.insert(k, PerCpuValues::try_from(vec![[0u64; 2]; cpus])?, 0)?;
        }
        self.lookup_flows = n.max(1);
        Ok(())
    }

    pub fn pinned(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    pub fn count(&self, ifindex: u32) -> u64 {
        self.rx_counts.get(&ifindex, 0).map(|v| v.iter().sum()).unwrap_or(0)
    }
}

impl Drop for Programs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `ip link set ... xdp`, through nsenter: `ip netns exec` and `ip -n` remount /sys, hiding
/// the bpffs the programs are pinned on.
pub fn ip_link_xdp(ns: &Netns, args: &[&str]) -> anyhow::Result<()> {
    let netns = format!("--net=/run/netns/{}", ns.name);
    let mut all = vec![netns.as_str(), "ip", "link", "set", "dev"];
    all.extend(args);
    mgm_tests::run("nsenter", &all)?;
    Ok(())
}

pub fn attach(ns: &Netns, ifname: &str, prog: &str) -> anyhow::Result<()> {
    ip_link_xdp(ns, &[ifname, "xdpdrv", "pinned", prog])
}

pub fn detach(ns: &Netns, ifname: &str) {
    let _ = ip_link_xdp(ns, &[ifname, "xdpdrv", "off"]);
}

/// `tc` in `ns` through nsenter (so the pinned programs are in sight).
fn tc(ns: &Netns, args: &[&str]) -> anyhow::Result<()> {
    let netns = format!("--net=/run/netns/{}", ns.name);
    let mut all = vec![netns.as_str(), "tc"];
    all.extend(args);
    mgm_tests::run("nsenter", &all)?;
    Ok(())
}

/// Attaches the pinned TC program `prog` to `ifname`'s ingress (a clsact qdisc of its own).
pub fn attach_tc(ns: &Netns, ifname: &str, prog: &str) -> anyhow::Result<()> {
    tc(ns, &["qdisc", "add", "dev", ifname, "clsact"])?;
    tc(ns, &["filter", "add", "dev", ifname, "ingress", "bpf", "da", "object-pinned", prog])
}

pub fn detach_tc(ns: &Netns, ifname: &str) {
    let _ = tc(ns, &["qdisc", "del", "dev", ifname, "clsact"]);
}

/// How the sender offers traffic.
pub enum Generator {
    /// BPF_PROG_TEST_RUN with live frames of the `XDP_TX` program: the fastest.
    LiveFrames(OwnedFd),
    /// A packet socket on the sender's veth (kernels that refuse live frames).
    PacketSocket,
}

impl Generator {
    pub fn describe(&self) -> &'static str {
        match self {
            Generator::LiveFrames(_) => "XDP live frames (BPF_PROG_TEST_RUN, XDP_TX)",
            Generator::PacketSocket => "a packet socket (sendmmsg, qdisc bypassed)",
        }
    }
}

/// Runs the generator from the sender's namespace for `secs`; returns (frames, seconds).
/// With `cpus`, one thread pinned to each (live frames only): a veth's XDP frames go to the
/// peer's receive queue of the sending CPU, so each CPU drives its own queue, as RSS spreads
/// flows over a NIC's queues.
pub fn generate(
    sender: &Netns,
    generator: &Generator,
    frame: Vec<u8>,
    secs: f64,
    cpus: &[usize],
) -> anyhow::Result<(u64, f64)> {
    let tx = match generator {
        Generator::LiveFrames(tx) => tx,
        Generator::PacketSocket if cpus.is_empty() => {
            return generate_socket(sender, frame, secs);
        }
        Generator::PacketSocket => bail!("the generator runs on chosen CPUs with live frames only"),
    };
    let one = |cpu: Option<usize>| -> anyhow::Result<(u64, f64)> {
        let fd = tx.try_clone()?;
        let frame = frame.clone();
        sender.enter(move || {
            if let Some(cpu) = cpu {
                let mut set = nix::sched::CpuSet::new();
                set.set(cpu)?;
                nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
                    .with_context(|| format!("pinning the generator to CPU {cpu}"))?;
            }
            let ifindex = nix::net::if_::if_nametoindex("s0")?;
            let start = Instant::now();
            let mut sent = 0u64;
            while start.elapsed().as_secs_f64() < secs {
                prog_test_run(
                    fd.as_fd(),
                    &frame,
                    &xdp_ctx(&frame, ifindex),
                    REPEAT,
                    BPF_F_TEST_XDP_LIVE_FRAMES,
                    None,
                    None,
                )
                .context("BPF_PROG_TEST_RUN live frames")?;
                sent += u64::from(REPEAT);
            }
            Ok((sent, start.elapsed().as_secs_f64()))
        })
    };
    if cpus.is_empty() {
        return one(None);
    }
    std::thread::scope(|s| {
        let runs: Vec<_> = cpus.iter().map(|&c| s.spawn(move || one(Some(c)))).collect();
        let mut total = (0, 0f64);
        for r in runs {
            let (sent, secs) = r.join().expect("generator thread")?;
            total = (total.0 + sent, total.1.max(secs));
        }
        Ok(total)
    })
}

pub struct Point {
    pub contender: &'static str,
    pub family: Family,
    pub fanout: usize,
    pub size: usize,
    pub offered_pps: f64,
    pub per_receiver_pps: Vec<f64>,
    /// BPF ns per packet in and per copy out (None: no BPF program there).
    pub ns_in: Option<f64>,
    pub ns_copy: Option<f64>,
}

/// The packet-socket generator: batches of the same frame on s0, past the qdisc, until
/// `secs` passed; a batch the device could not take (ENOBUFS) is not counted.
pub fn generate_socket(sender: &Netns, frame: Vec<u8>, secs: f64) -> anyhow::Result<(u64, f64)> {
    use std::os::fd::AsRawFd as _;
    const BATCH: usize = 256;
    let sock = mgm_tests::PacketSocket::open(sender, "s0")?;
    mgm_tests::setsockopt_int(
        &sock,
        libc::SOL_PACKET,
        libc::PACKET_QDISC_BYPASS,
        1,
        "PACKET_QDISC_BYPASS",
    )?;
    let mut iov = libc::iovec { iov_base: frame.as_ptr() as *mut _, iov_len: frame.len() };
    // SAFETY: zeroed mmsghdr is valid; each points at the one iovec (the socket is bound).
    let mut msgs: Vec<libc::mmsghdr> = (0..BATCH)
        .map(|_| {
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = &mut iov;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        // SAFETY: BATCH valid mmsghdrs pointing at a live frame.
        let n = unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), BATCH as u32, 0) };
        if n > 0 {
            sent += n as u64;
        } else {
            let e = std::io::Error::last_os_error();
            ensure!(
                matches!(e.raw_os_error(), Some(libc::ENOBUFS | libc::EAGAIN | libc::EINTR)),
                "sendmmsg on s0: {e}"
            );
        }
    }
    Ok((sent, start.elapsed().as_secs_f64()))
}

/// mgmd's programs: (ingress, per-copy). Kernel program names are cut at 15 characters.
pub const MGM_PROGS: Option<(&str, Option<&str>)> =
    Some(("mgm_xdp_ingress", Some("mgm_xdp_egress")));

/// Run time and runs, summed over the loaded programs called `name` (as the kernel keeps it:
/// the first 15 characters).
pub fn bpf_runs(name: &str) -> anyhow::Result<(u64, u64)> {
    let name = &name.as_bytes()[..name.len().min(15)];
    let mut sum = (0, 0);
    for info in loaded_programs() {
        let info = info?;
        if info.name() == name {
            sum.0 += info.run_time().as_nanos() as u64;
            sum.1 += info.run_count();
        }
    }
    Ok(sum)
}

/// One contender at one point: the delivered rate with BPF statistics off, then (when it has
/// BPF programs: ingress, and per-copy if any) a second, shorter pass with them on for the ns
/// per packet in and copy out.
#[allow(clippy::too_many_arguments)]
pub fn contender(
    t: &Topology,
    p: &Programs,
    rx: &[u32],
    name: &'static str,
    (family, fanout, size): (Family, usize, usize),
    secs: f64,
    progs: Option<(&str, Option<&str>)>,
) -> anyhow::Result<Point> {
    let at = (family, fanout, size);
    let mut passes = (0..p.runs.max(1))
        .map(|_| measure(t, p, rx, at, secs))
        .collect::<anyhow::Result<Vec<_>>>()?;
    passes.sort_by(|a, b| a.1.iter().sum::<f64>().total_cmp(&b.1.iter().sum::<f64>()));
    let (offered_pps, got) = passes.swap_remove(passes.len() / 2);
    let (mut ns_in, mut ns_copy) = (None, None);
    if let Some((ingress, per_copy)) = progs {
        let per_run = |(t0, n0): (u64, u64), (t1, n1): (u64, u64)| {
            (n1 > n0).then(|| (t1 - t0) as f64 / (n1 - n0) as f64)
        };
        let stats = enable_stats(Stats::RunTime).context("BPF_ENABLE_STATS")?;
        let before = (bpf_runs(ingress)?, per_copy.map(bpf_runs).transpose()?);
        measure(t, p, rx, at, secs.min(1.0))?;
        let after = (bpf_runs(ingress)?, per_copy.map(bpf_runs).transpose()?);
        drop(stats);
        ns_in = per_run(before.0, after.0);
        ns_copy = match (before.1, after.1) {
            (Some(b), Some(a)) => per_run(b, a),
            _ => Some(0.0),
        };
    }
    Ok(Point {
        contender: name,
        family,
        fanout,
        size,
        offered_pps,
        per_receiver_pps: got,
        ns_in,
        ns_copy,
    })
}

impl Point {
    pub fn total(&self) -> f64 {
        self.per_receiver_pps.iter().sum()
    }
}

/// Offers traffic (the family's flow, frames of `size` bytes on the wire) and reads what
/// receivers 0..fanout counted.
pub fn measure(
    t: &Topology,
    p: &Programs,
    rx: &[u32],
    (family, fanout, size): (Family, usize, usize),
    secs: f64,
) -> anyhow::Result<(f64, Vec<f64>)> {
    let frame = match family {
        Family::V4 => udp_frame(t.sender_mac, SOURCE, GROUP, 64, &vec![0u8; size - 4 - 42]),
        Family::V6 => udp6_frame(t.sender_mac, SOURCE6, GROUP6, 64, &vec![0u8; size - 4 - 62]),
    };
    let before: Vec<u64> = rx.iter().map(|i| p.count(*i)).collect();
    let (sent, elapsed) = generate(&t.sender, &p.generator, frame, secs, &p.cpus)?;
    std::thread::sleep(Duration::from_millis(100));
    let got: Vec<f64> =
        rx.iter().zip(&before).map(|(i, b)| (p.count(*i) - b) as f64 / elapsed).collect();
    Ok((sent as f64 / elapsed, got[..fanout].to_vec()))
}

/// A raw connection that pipelines: writes many requests, then reads their replies.
pub struct Pipe {
    pub w: UnixStream,
    pub r: BufReader<UnixStream>,
    pub next: u64,
    pub last: Option<String>,
}

impl Pipe {
    pub fn connect(socket: &Path) -> anyhow::Result<Self> {
        let w = UnixStream::connect(socket)?;
        w.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Self { r: BufReader::new(w.try_clone()?), w, next: 1, last: None })
    }

    /// One request; its result.
    pub fn call<M: Method>(&mut self, m: M) -> anyhow::Result<M::Reply> {
        self.run(std::iter::once(m.into()))?;
        let line = self.last.take().context("no reply")?;
        match serde_json::from_str::<ReplyFrame<M::Reply>>(&line)?.body {
            ReplyBody::Result(r) => Ok(r),
            ReplyBody::Error(e) => anyhow::bail!("{e}"),
        }
    }

    /// Sends `reqs` in chunks of 1,000 and checks every reply; events are skipped.
    pub fn run(&mut self, reqs: impl Iterator<Item = Request>) -> anyhow::Result<usize> {
        let mut n = 0;
        let reqs: Vec<Request> = reqs.collect();
        for chunk in reqs.chunks(1000) {
            let mut buf = Vec::new();
            for r in chunk {
                let frame = RequestFrame { id: self.next, request: r.clone() };
                self.next += 1;
                serde_json::to_writer(&mut buf, &frame)?;
                buf.push(b'\n');
            }
            self.w.write_all(&buf)?;
            let mut replies = 0;
            while replies < chunk.len() {
                let mut line = String::new();
                ensure!(self.r.read_line(&mut line)? > 0, "mgmd closed the connection");
                if is_event(&line) {
                    continue;
                }
                let reply: ReplyFrame<IgnoredAny> = serde_json::from_str(&line)?;
                ensure!(matches!(reply.body, ReplyBody::Result(_)), "request failed: {line}");
                self.last = Some(line);
                replies += 1;
            }
            n += chunk.len();
        }
        Ok(n)
    }

    /// One request at a time (a client that waits for each reply).
    pub fn sequential(&mut self, reqs: impl Iterator<Item = Request>) -> anyhow::Result<usize> {
        let mut n = 0;
        for r in reqs {
            n += self.run(std::iter::once(r))?;
        }
        Ok(n)
    }
}

/// Turns IPv6 on for the router's rin and r1..=`outs`: ip6mr forwards only between links
/// with IPv6 on. Called after the IPv4 points, which run without it (no neighbour discovery
/// or MLD of the router's own on the links).
pub fn ipv6_on_router(router: &Netns, outs: usize) -> anyhow::Result<()> {
    for dev in std::iter::once("rin".to_owned()).chain((1..=outs).map(|i| format!("r{i}"))) {
        mgm_tests::ipv6_on(router, &dev)?;
    }
    Ok(())
}

/// smcrouted with the family's route rin -> r1..rN, once the kernel has it.
pub fn smcrouted_for(router: &Netns, family: Family, fanout: usize) -> anyhow::Result<Smcroute> {
    let outs: Vec<String> = (1..=fanout).map(|i| format!("r{i}")).collect();
    let mut ifaces = vec!["rin"];
    ifaces.extend(outs.iter().map(String::as_str));
    let (s, g) = (family.source(), family.group());
    let route = format!("mroute from rin source {s} group {g} to {}\n", outs.join(" "));
    let smc = Smcroute::start(router, &ifaces, &route)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let ip = if family == Family::V4 { "-4" } else { "-6" };
    while !router.exec("ip", &[ip, "mroute", "show"])?.contains(&g.to_string()) {
        ensure!(Instant::now() < deadline, "smcrouted installed no route in 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(smc)
}

/// The charts' font, "sans-serif" (plotters draws no text without one).
pub fn register_font() -> anyhow::Result<()> {
    use plotters::style::FontStyle;
    let font = std::fs::read("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
        .context("the DejaVu font (apt install fonts-dejavu-core)")?;
    let font: &'static [u8] = Box::leak(font.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, font)
        .map_err(|_| anyhow::anyhow!("font"))
}

/// linux/mroute.h
const MRT_INIT: i32 = 200;
const MRT_ADD_VIF: i32 = 202;
const MRT_ADD_MFC: i32 = 204;
const MRT_DEL_MFC: i32 = 205;
const VIFF_USE_IFINDEX: u8 = 0x8;
const MAXVIFS: usize = 32;

#[repr(C)]
struct VifCtl {
    vifi: u16,
    flags: u8,
    threshold: u8,
    rate_limit: u32,
    /// With VIFF_USE_IFINDEX: the ifindex (a union with the local address).
    lcl_ifindex: i32,
    rmt_addr: u32,
}

#[repr(C)]
struct MfcCtl {
    origin: [u8; 4],
    group: [u8; 4],
    parent: u16,
    ttls: [u8; MAXVIFS],
    pkt_cnt: u32,
    byte_cnt: u32,
    wrong_if: u32,
    expire: i32,
}

/// A routing daemon's end of ipmr: the router's mroute socket (MRT_INIT), one VIF per
/// interface given, VIF 0 first. Closing it (drop) empties the kernel's table.
pub struct Mrouted(OwnedFd);

impl Mrouted {
    pub fn open(router: &Netns, ifaces: &[u32]) -> anyhow::Result<Self> {
        let fd = router.enter(|| {
            // SAFETY: a plain socket call; the fd is owned at once.
            let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_IGMP) };
            ensure!(fd >= 0, "raw IGMP socket: {}", std::io::Error::last_os_error());
            // SAFETY: a fresh fd nobody else owns.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        })?;
        let m = Self(fd);
        m.set(MRT_INIT, &1i32).context("MRT_INIT (does this kernel have CONFIG_IP_MROUTE?)")?;
        for (vifi, &ifindex) in ifaces.iter().enumerate() {
            let v = VifCtl {
                vifi: vifi as u16,
                flags: VIFF_USE_IFINDEX,
                threshold: 1,
                rate_limit: 0,
                lcl_ifindex: ifindex as i32,
                rmt_addr: 0,
            };
            m.set(MRT_ADD_VIF, &v)?;
        }
        Ok(m)
    }

    fn set<T>(&self, opt: i32, v: &T) -> anyhow::Result<()> {
        // SAFETY: `v` is a live value of the size given.
        let r = unsafe {
            libc::setsockopt(
                self.0.as_raw_fd(),
                libc::IPPROTO_IP,
                opt,
                (v as *const T).cast(),
                size_of::<T>() as u32,
            )
        };
        ensure!(r == 0, "setsockopt {opt}: {}", std::io::Error::last_os_error());
        Ok(())
    }

    /// Adds (or deletes) the route (S,G) from VIF 0 to the VIFs `outs`.
    pub fn mfc(&self, add: bool, (s, g): ([u8; 4], [u8; 4]), outs: &[usize]) -> anyhow::Result<()> {
        let mut ttls = [0u8; MAXVIFS];
        for &o in outs {
            ttls[o] = 1;
        }
        let c = MfcCtl {
            origin: s,
            group: g,
            parent: 0,
            ttls,
            pkt_cnt: 0,
            byte_cnt: 0,
            wrong_if: 0,
            expire: 0,
        };
        self.set(if add { MRT_ADD_MFC } else { MRT_DEL_MFC }, &c)
    }
}
