// SPDX-License-Identifier: MIT OR Apache-2.0
//! mgmd as a service runs it: with only the capabilities mgmd(8) documents (as root with a
//! bounded set, and as another user with ambient ones), each of them needed, and telling the
//! service manager (sd_notify) when it is ready, reloading and stopping. Needs root.

use std::{
    os::unix::net::UnixDatagram,
    path::Path,
    time::{Duration, Instant},
};

use mgm_tests::{Family, Launch, Mgmd, Netns, SeqFlow, TempDir, Topology, unique, veth};

/// What mgmd(8) says it needs; `setpriv` names.
const CAPS: [&str; 4] = ["bpf", "net_admin", "perfmon", "net_raw"];

/// `setpriv` keeping root's uid but only `caps` (the bounding set decides what root gets
/// at exec).
fn only(caps: &[&str]) -> Vec<String> {
    let set: Vec<String> = caps.iter().map(|c| format!("+{c}")).collect();
    vec![
        "setpriv".into(),
        format!("--bounding-set=-all,{}", set.join(",")),
        "--inh-caps=-all".into(),
        "--".into(),
    ]
}

/// The effective capabilities of a process, from /proc.
fn cap_eff(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:")).unwrap().trim();
    u64::from_str_radix(hex, 16).unwrap()
}

/// The capabilities' bits (linux/capability.h).
fn mask(caps: &[&str]) -> u64 {
    caps.iter()
        .map(|c| match *c {
            "net_admin" => 1u64 << 12,
            "net_raw" => 1 << 13,
            "perfmon" => 1 << 38,
            "bpf" => 1 << 39,
            other => panic!("{other}?"),
        })
        .fold(0, |a, b| a | b)
}

#[test]
fn each_capability_is_needed() {
    let ns = Netns::new("caps").unwrap();
    veth(&ns, "va", &ns, "vb").unwrap();
    let args: Vec<String> = ["--iface", "va", "--iface", "vb"].map(String::from).to_vec();
    for missing in ["bpf", "net_admin", "perfmon"] {
        let caps: Vec<&str> = CAPS.iter().copied().filter(|c| *c != missing).collect();
        let launch = Launch { wrapper: only(&caps), ..Launch::default() };
        let err = Mgmd::start_with(&ns, &args, launch).expect_err(missing).to_string();
        assert!(err.contains("exited"), "without {missing}: {err}");
        assert!(err.contains("loading the XDP fast path"), "without {missing}: {err}");
    }
    // Without CAP_NET_RAW mgmd forwards, but cannot send ICMPv6 Packet Too Big: it says so.
    let caps = &CAPS[..3];
    let mgmd =
        Mgmd::start_with(&ns, &args, Launch { wrapper: only(caps), ..Launch::default() }).unwrap();
    assert_eq!(cap_eff(mgmd.pid()), mask(caps));
    assert!(mgmd.log().contains("no ICMPv6 socket"), "{}", mgmd.log());
}

#[test]
fn mgmd_runs_as_another_user_with_ambient_capabilities() {
    let ns = Netns::new("user").unwrap();
    veth(&ns, "va", &ns, "vb").unwrap();
    // The socket's directory belongs to the user, as systemd's RuntimeDirectory= would.
    let dir = std::env::temp_dir().join(unique("mgmd-nobody"));
    std::fs::create_dir_all(&dir).unwrap();
    nix::unistd::chown(&dir, Some(65534.into()), Some(65534.into())).unwrap();
    let set = CAPS.map(|c| format!("+{c}")).join(",");
    let wrapper = vec![
        "setpriv".into(),
        "--reuid=65534".into(),
        "--regid=65534".into(),
        "--clear-groups".into(),
        format!("--inh-caps=-all,{set}"),
        format!("--ambient-caps=-all,{set}"),
        format!("--bounding-set=-all,{set}"),
        "--".into(),
    ];
    // Unpinned: the pin directory's lock lives in /run/mgm, which is root's here.
    let args: Vec<String> =
        ["--iface", "va", "--iface", "vb", "--no-pin"].map(String::from).to_vec();
    let launch = Launch { wrapper, dir: Some(dir), ..Launch::default() };
    let mgmd = Mgmd::start_with(&ns, &args, launch).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{}/status", mgmd.pid())).unwrap();
    assert!(status.lines().any(|l| l.starts_with("Uid:") && l.contains("65534")), "{status}");
    assert_eq!(cap_eff(mgmd.pid()), mask(&CAPS));
    let names: Vec<String> =
        mgmd.ctl().unwrap().show().unwrap().interfaces.into_iter().map(|i| i.name).collect();
    assert_eq!(sorted(names), ["va", "vb"]);
}

/// Messages on a notify socket, one datagram each.
fn next_notification(sock: &UnixDatagram, deadline: Instant) -> String {
    let mut buf = [0u8; 4096];
    loop {
        match sock.recv(&mut buf) {
            Ok(n) => return String::from_utf8_lossy(&buf[..n]).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "no notification in time");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn mgmd_tells_the_service_manager_when_it_is_ready_reloading_and_stopping() {
    let ns = Netns::new("notify").unwrap();
    veth(&ns, "va", &ns, "vb").unwrap();
    let dir = TempDir::new("mgmd-notify");
    let notify = dir.0.join("notify.sock");
    let sock = UnixDatagram::bind(&notify).unwrap();
    sock.set_nonblocking(true).unwrap();
    let config = dir.0.join("mgmd.toml");
    std::fs::write(&config, "interfaces = [\"va\"]\n").unwrap();
    let launch = Launch {
        env: vec![("NOTIFY_SOCKET".into(), notify.display().to_string())],
        ..Launch::default()
    };
    let args = vec!["--config".to_owned(), config.display().to_string()];
    let mut mgmd = Mgmd::start_with(&ns, &args, launch).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let ready = next_notification(&sock, deadline);
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    // READY=1 is sent once the socket is served: a client started then gets answers.
    assert!(Path::new(&mgmd.socket).exists());

    std::fs::write(&config, "interfaces = [\"va\", \"vb\"]\n").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(mgmd.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let reloading = next_notification(&sock, deadline);
    assert!(reloading.lines().any(|l| l == "RELOADING=1"), "{reloading:?}");
    assert!(reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")), "{reloading:?}");
    let again = next_notification(&sock, deadline);
    assert!(again.lines().any(|l| l == "READY=1"), "{again:?}");
    // The reload was applied before READY=1.
    let names: Vec<String> =
        mgmd.ctl().unwrap().show().unwrap().interfaces.into_iter().map(|i| i.name).collect();
    assert_eq!(sorted(names), ["va", "vb"]);

    assert!(mgmd.stop().unwrap().success());
    let stopping = next_notification(&sock, deadline);
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn mgm_igmpd_runs_with_only_cap_net_raw() {
    let ns = Netns::new("igmpcap").unwrap();
    veth(&ns, "va", &ns, "vb").unwrap();
    ns.exec("ip", &["addr", "add", "10.77.0.1/24", "dev", "va"]).unwrap();
    let args: Vec<String> = ["--iface", "va", "--iface", "vb"].map(String::from).to_vec();
    let mgmd = Mgmd::start(&ns, &args).unwrap();
    let log = mgmd.socket.with_file_name("igmpd.log");
    let mut igmpd = std::process::Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", ns.name))
        .args(only(&["net_raw"]))
        .arg(mgm_tests::bin("mgm-igmpd"))
        .arg("--socket")
        .arg(&mgmd.socket)
        .args(["--iface", "va"])
        .stdout(std::fs::File::create(log.with_extension("out")).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let registered = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("registered with mgmd") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let caps = cap_eff(igmpd.id());
    let _ = igmpd.kill();
    let _ = igmpd.wait();
    assert!(registered.contains("registered with mgmd"), "{registered}");
    assert!(!registered.contains("ERROR"), "{registered}");
    assert_eq!(caps, mask(&["net_raw"]));
}

/// Following the kernel's table is part of what the service does, so this one needs
/// multicast routing.
mod needs_ipmr {
    use super::*;
    use mgm_tests::{Need, needs};

    #[test]
    fn mgmd_forwards_with_only_its_capabilities() {
        needs(&[Need::Ipmr]);
        let family = Family::V4;
        let mut t = Topology::new(1).unwrap();
        t.add_addresses_for(family).unwrap();
        let mfe = format!("{},{},rin,r1", family.source(), family.group());
        let launch = Launch { wrapper: only(&CAPS), ..Launch::default() };
        // Pinned (the default) and following the kernel: everything the service does.
        t.start_with(&["--mfe", &mfe, "--follow-kernel"], launch).unwrap();
        let pid = t.mgmd.as_ref().unwrap().pid();
        assert_eq!(cap_eff(pid), mask(&CAPS), "mgmd runs with exactly the four");
        let flow = SeqFlow::start_for(&t, family, 1, 1_000).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let mgmd = t.mgmd.as_mut().unwrap();
        // A restart takes the pinned fast path over with the same four (its outgoing lists'
        // maps are reopened from their pins: reading them by id would take CAP_SYS_ADMIN).
        assert!(mgmd.stop().unwrap().success());
        mgmd.restart().unwrap();
        assert!(mgmd.log().contains("took over the pinned fast path"), "{}", mgmd.log());
        let mut ctl = mgmd.ctl().unwrap();
        let spec = format!("{},239.1.1.7,rin,r1", family.source());
        ctl.call(spec.parse::<mgm::config::StaticMfe>().unwrap()).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let (sent, seen) = flow.finish();
        assert!(seen[0].len() as u64 > sent * 9 / 10, "forwarded {} of {sent}", seen[0].len());
        let log = mgmd.log();
        assert!(!log.contains("WARN"), "no capability missing means no warning:\n{log}");
    }
}
