// SPDX-License-Identifier: MIT OR Apache-2.0
//! The demo (`cargo xtask demo` builds and runs it): one sender, a router running mgmd, three
//! receivers, each in its own network namespace. Ordinary UDP sockets send and receive; mgm's
//! XDP fast path forwards. Argument: the directory of the mgmd and mgmctl binaries.

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use mgm::proto::{self, Method, Request};
use mgm_tests::{Ctl, Igmpd, Mgmd, Topology, membership, request_id, with_magic};

/// Makes a call and shows it as it goes over the wire.
fn call<M: Method + Clone>(who: &str, c: &mut Ctl, m: M) -> anyhow::Result<M::Reply> {
    let req: Request = m.clone().into();
    let req = serde_json::to_string(&req)?;
    let res = c.call(m)?;
    println!("  {who:<5} {req}\n        -> {}", serde_json::to_string(&res)?);
    Ok(res)
}

const SENT: u32 = 1000;

fn step(what: &str) {
    println!("==> {what}");
}

/// Waits a little for a condition.
fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn main() -> anyhow::Result<()> {
    let dir = std::env::args().nth(1).context("usage: demo BIN_DIR (where mgmd and mgmctl are)")?;
    run(&PathBuf::from(dir))
}

fn run(bin_dir: &Path) -> anyhow::Result<()> {
    // SAFETY: no other thread exists yet; the harness reads this to find mgmd.
    unsafe { std::env::set_var("MGM_BIN_DIR", bin_dir) };
    step("creating namespaces: sender → router (mgmd) → receivers rx1, rx2, rx3");
    let mut t = Topology::new(3)?;
    t.add_addresses()?;
    let mfe = "10.1.0.1,239.1.1.1,rin,r1+r2";
    step(&format!("starting mgmd with the static MFE {mfe} (rx3 is not on the list)"));
    t.start(&["--mfe", mfe])?;
    let socks: Vec<_> =
        (0..3).map(|i| t.udp_receiver(i, [239, 1, 1, 1], 5000)).collect::<Result<_, _>>()?;
    let caps = t.captures()?;
    let tx = t.udp_sender(8)?;
    step(&format!("sending {SENT} UDP datagrams to 239.1.1.1:5000 from 10.1.0.1, TTL 8"));
    let magic = b"mgm-demo ";
    for i in 0..SENT {
        let mut p = magic.to_vec();
        p.extend_from_slice(format!("{i:06}").as_bytes());
        p.resize(512, b'.');
        tx.send_to(&p, ("239.1.1.1", 5000))?;
    }
    let mut ctl = t.ctl()?;
    let forwarded = wait_until(Duration::from_secs(5), || {
        ctl.counter("forwarded").is_ok_and(|n| n >= u64::from(SENT))
    });
    println!();
    println!("  RECEIVER  ON OIL    DATAGRAMS DELIVERED  TTL SEEN  SOURCE MAC (router port)");
    let mut delivered_all = Vec::new();
    for (i, (sock, cap)) in socks.iter().zip(&caps).enumerate() {
        let mut delivered = 0;
        let mut buf = [0u8; 2048];
        while let Ok(n) = sock.recv(&mut buf) {
            if buf[..n].starts_with(magic) {
                delivered += 1;
            }
        }
        delivered_all.push(delivered);
        let frames = cap.drain(Duration::from_millis(200))?;
        let frames = with_magic(&frames, magic);
        let (ttl, mac) = frames.first().map_or(("-".to_owned(), "-".to_owned()), |f| {
            (
                f[22].to_string(),
                f[6..12].iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":"),
            )
        });
        println!(
            "  rx{:<7} {:<7} {:>21} {:>9}  {}",
            i + 1,
            if i < 2 { "yes" } else { "no" },
            delivered,
            ttl,
            mac
        );
    }
    println!();
    step("mgmctl show");
    let socket = &t.mgmd.as_ref().context("mgmd")?.socket;
    let out =
        Command::new(bin_dir.join("mgmctl")).arg("--socket").arg(socket).arg("show").output()?;
    print!("{}", String::from_utf8_lossy(&out.stdout));
    anyhow::ensure!(
        out.status.success(),
        "mgmctl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    anyhow::ensure!(forwarded, "the fast path did not forward all {SENT} datagrams");
    step("removing the namespaces");
    drop(t);
    mgm_scenario(bin_dir)
}

/// Part two: the MGM API over the socket. A routing protocol and IGMP register, take
/// interfaces and join; traffic creates the MFE through the RPF and creation-alert callbacks;
/// a release takes an interface out.
fn mgm_scenario(bin_dir: &Path) -> anyhow::Result<()> {
    const G: &str = "239.1.1.1";
    const WAIT: Duration = Duration::from_secs(5);
    println!();
    step("part 2, the MGM API: mgmd with no configuration; clients do everything");
    let mut t = Topology::new(3)?;
    t.add_addresses()?;
    t.mgmd = Some(Mgmd::start(&t.router, &[])?);
    let idx = |n: &str| t.router.ifindex(n);
    let (rin, r1, r2, r3) = (idx("rin")?, idx("r1")?, idx("r2")?, idx("r3")?);
    let mut pim = t.ctl()?;
    let mut igmp = t.ctl()?;
    let any: std::net::IpAddr = Ipv4Addr::UNSPECIFIED.into();
    let hp = call("pim", &mut pim, proto::Register { protocol: 103, component: 1 })?.handle;
    let hi = call("igmp", &mut igmp, proto::Register { protocol: 10, component: 1 })?.handle;
    for ifindex in [rin, r1, r2, r3] {
        call("pim", &mut pim, proto::TakeInterface { handle: hp, ifindex, nexthop: any })?;
    }
    call("igmp", &mut igmp, proto::TakeInterface { handle: hi, ifindex: r2, nexthop: any })?;
    call("pim", &mut pim, proto::AddMembership(membership(hp, G, r1)))?;
    call("igmp", &mut igmp, proto::AddMembership(membership(hi, G, r2)))?;
    let (ev, _) = pim.wait_event("local_join", WAIT)?;
    println!("  pim   <- event {ev}");

    let rx: Vec<_> =
        (0..3).map(|i| t.udp_receiver(i, [239, 1, 1, 1], 5000)).collect::<Result<_, _>>()?;
    let tx = t.udp_sender(8)?;
    step("the sender starts: no MFE yet, the fast path reports the flow to mgmd");
    tx.send_to(b"first", (G, 5000))?;
    let (rpf, _) = pim.wait_event("rpf", WAIT)?;
    println!("  pim   <- event {rpf}");
    let request = request_id(&rpf)?;
    let answer = proto::AnswerRpf {
        handle: hp,
        request,
        ifindex: rin,
        nexthop: Some(any),
        upstream: Some(any),
    };
    call("pim", &mut pim, answer)?;
    let (alert, _) = pim.wait_event("creation_alert", WAIT)?;
    println!("  pim   <- event {alert}");
    let request = request_id(&alert)?;
    call("pim", &mut pim, proto::AnswerCreation { handle: hp, request, disabled: vec![] })?;

    let socket = t.mgmd.as_ref().context("mgmd")?.socket.clone();
    let show = || -> anyhow::Result<()> {
        let out = Command::new(bin_dir.join("mgmctl"))
            .arg("--socket")
            .arg(&socket)
            .arg("show")
            .output()?;
        anyhow::ensure!(out.status.success(), "mgmctl: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        // The tables an operator looks at here; the counters were shown in part 1.
        for line in text.lines().take_while(|l| *l != "COUNTERS") {
            println!("    {line}");
        }
        Ok(())
    };
    let burst = |tag: &str| -> Vec<usize> {
        for i in 0..100 {
            let _ = tx.send_to(format!("{tag}{i}").as_bytes(), (G, 5000));
        }
        rx.iter()
            .map(|s| {
                let mut n = 0;
                let mut buf = [0u8; 256];
                while let Ok(len) = s.recv(&mut buf) {
                    n += usize::from(buf[..len].starts_with(tag.as_bytes()));
                }
                n
            })
            .collect()
    };
    let got = burst("created");
    step(&format!(
        "100 datagrams: rx1 (PIM, r1) {}, rx2 (IGMP, r2) {}, rx3 (no member) {}",
        got[0], got[1], got[2]
    ));
    anyhow::ensure!(got == [100, 100, 0], "expected [100, 100, 0], got {got:?}");
    step("mgmctl show");
    show()?;

    step("PIM releases r1: once the reply is back, nothing more goes there");
    call("pim", &mut pim, proto::ReleaseInterface { handle: hp, ifindex: r1, nexthop: any })?;
    let got = burst("released");
    step(&format!("100 datagrams: rx1 {}, rx2 {}, rx3 {}", got[0], got[1], got[2]));
    anyhow::ensure!(got == [0, 100, 0], "expected [0, 100, 0], got {got:?}");
    step("mgmctl show");
    show()?;
    step("removing the namespaces");
    drop(t);
    igmp_scenario(bin_dir)
}

/// Part three: mgm-igmpd, a real routing daemon on the socket. Receivers join and leave
/// with ordinary sockets (their kernels send IGMPv3), and the traffic follows.
fn igmp_scenario(bin_dir: &Path) -> anyhow::Result<()> {
    const G: &str = "239.2.2.2";
    println!();
    step("part 3, IGMP: mgm-igmpd on the router; receivers join and leave with sockets");
    let mut t = Topology::new(3)?;
    t.add_addresses()?;
    t.router.exec("ip", &["addr", "add", "10.1.0.254/24", "dev", "rin"])?;
    for i in 1..=3 {
        t.router
            .exec("ip", &["addr", "add", &format!("10.2.{i}.1/24"), "dev", &format!("r{i}")])?;
    }
    t.start(&[])?;
    let args = [
        "--iface",
        "rin",
        "--iface",
        "r1",
        "--iface",
        "r2",
        "--iface",
        "r3",
        "--query-interval",
        "10",
        "--query-response-interval",
        "2",
        "--last-member-query-interval",
        "0.5",
    ];
    step(&format!("mgm-igmpd {}", args.join(" ")));
    let igmpd = Igmpd::start(&t.router, t.mgmd.as_ref().context("mgmd")?, &args)?;
    let group: Ipv4Addr = G.parse()?;
    step("rx1 and rx3 join 239.2.2.2 (IP_ADD_MEMBERSHIP); rx2 joins 239.9.9.9");
    let rx1 = t.udp_receiver(0, group.octets(), 5000)?;
    let rx2 = t.udp_receiver(1, [239, 9, 9, 9], 5000)?;
    let rx3 = t.udp_receiver(2, group.octets(), 5000)?;
    let two = |v: &serde_json::Value| {
        v["interfaces"].as_array().is_some_and(|ps| {
            ps.iter().filter(|p| p["groups"].to_string().contains(G)).count() == 2
        })
    };
    igmpd.wait(Duration::from_secs(5), two)?;
    let tx = t.udp_sender(8)?;
    let rx = [&rx1, &rx2];
    let burst = |tag: &str| -> anyhow::Result<Vec<usize>> {
        // The first datagram creates the MFE; the burst follows it.
        tx.send_to(b"warm-up", (G, 5000))?;
        std::thread::sleep(Duration::from_millis(300));
        for i in 0..100 {
            tx.send_to(format!("{tag}{i}").as_bytes(), (G, 5000))?;
        }
        Ok(rx
            .iter()
            .map(|s| {
                let mut n = 0;
                let mut buf = [0u8; 256];
                while let Ok(len) = s.recv(&mut buf) {
                    n += usize::from(buf[..len].starts_with(tag.as_bytes()));
                }
                n
            })
            .collect())
    };
    let got = burst("joined")?;
    let got3 = {
        let mut n = 0;
        let mut buf = [0u8; 256];
        while let Ok(len) = rx3.recv(&mut buf) {
            n += usize::from(buf[..len].starts_with(b"joined"));
        }
        n
    };
    step(&format!("100 datagrams: rx1 {}, rx2 {}, rx3 {got3}", got[0], got[1]));
    anyhow::ensure!(got == [100, 0] && got3 == 100, "expected 100, 0, 100");
    step("mgm-igmpd show");
    print!("{}", igmpd.show(false)?);
    step("rx3 closes its socket: its kernel leaves, the router asks twice, then stops");
    drop(rx3);
    let left = Instant::now();
    igmpd
        .wait(Duration::from_secs(5), |v| !v["interfaces"][3]["groups"].to_string().contains(G))?;
    step(&format!("r3 left the group {:?} after the leave", left.elapsed()));
    // rx3's socket is gone: what reaches its link is counted there.
    let cap3 = mgm_tests::PacketSocket::open(&t.receivers[2], "eth0")?;
    let got = burst("left")?;
    let on_link3 = with_magic(&cap3.drain(Duration::from_millis(200))?, b"left").len();
    step(&format!("100 datagrams: rx1 {}, rx2 {}, rx3's link {on_link3}", got[0], got[1]));
    anyhow::ensure!(
        got[..2] == [100, 0] && on_link3 == 0,
        "expected [100, 0] and none on rx3's link, got {got:?} and {on_link3}"
    );
    let socket = t.mgmd.as_ref().context("mgmd")?.socket.clone();
    let out =
        Command::new(bin_dir.join("mgmctl")).arg("--socket").arg(&socket).arg("show").output()?;
    for line in String::from_utf8_lossy(&out.stdout).lines().take_while(|l| *l != "COUNTERS") {
        println!("    {line}");
    }
    step("removing the namespaces");
    Ok(())
}
