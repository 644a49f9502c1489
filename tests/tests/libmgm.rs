// SPDX-License-Identifier: MIT OR Apache-2.0
//! libmgm from C: a program compiled with the system's `cc -Wall -Wextra -Werror` against
//! mgm.h and `pkg-config --cflags --libs mgm` calls every function of the API against a live
//! mgmd in a namespace router, with real traffic raising the RPF and creation callbacks, in
//! both callback modes (the program's own poll loop, the library's thread) and under
//! valgrind; then mgmd restarting, stopping, missing, forbidding, and the C daemon killed in
//! the middle of a call. The program is mgm-user/capi/tests/c/api.c; its checks are there.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use mgm::proto::{self, ErrorCode};
use mgm_tests::{Family, Mgmd, Netns, Topology, libmgm};

/// The C test program, compiled once per test process.
fn api() -> &'static Path {
    static API: OnceLock<PathBuf> = OnceLock::new();
    API.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let out = libmgm::libmgm().unwrap().join("api");
        libmgm::compile_c(&[&root.join("mgm-user/capi/tests/c/api.c")], &out).unwrap();
        out
    })
}

const CALLER: u32 = 0;
const THREAD: u32 = 1;

/// One run of the C program in `ns`: it asks (`ask WHAT`), `on_ask` does it, the program
/// goes on; its stdout when it exited 0, else an error with its stderr.
struct Run<'a> {
    ns: &'a Netns,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
    wrapper: Vec<String>,
}

impl<'a> Run<'a> {
    fn new(ns: &'a Netns, scenario: &str, socket: &Path, mode: u32) -> Self {
        let args = vec![scenario.to_owned(), socket.display().to_string(), mode.to_string()];
        Self { ns, args, env: Vec::new(), wrapper: Vec::new() }
    }

    fn interfaces(mut self, t: &Topology) -> Self {
        for name in ["rin", "r1", "r2"] {
            self.args.push(t.router.ifindex(name).unwrap().to_string());
        }
        self
    }

    /// Under valgrind: any memory error, or memory the program lost for good, fails it.
    fn valgrind(mut self) -> Self {
        self.wrapper.extend(libmgm::VALGRIND.iter().map(|s| (*s).to_owned()));
        self
    }

    fn go(self, mut on_ask: impl FnMut(&str, &mut Child)) -> anyhow::Result<String> {
        let mut child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.ns.name))
            .args(&self.wrapper)
            .arg(api())
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut said = String::new();
        for line in stdout.lines() {
            let line = line?;
            said.push_str(&line);
            said.push('\n');
            if let Some(what) = line.strip_prefix("ask ") {
                on_ask(what, &mut child);
                if let Some(stdin) = child.stdin.as_mut() {
                    let _ = stdin.write_all(b"done\n");
                }
            }
        }
        let out = child.wait_with_output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        anyhow::ensure!(
            out.status.success(),
            "{:?} exited with {}:\n{said}{err}",
            self.args,
            out.status
        );
        Ok(said)
    }
}

/// A router with two receivers, mgmd allowing 4 handles per connection (the program
/// reaches ERROR_NOT_ENOUGH_MEMORY with a fifth).
fn router() -> Topology {
    let mut t = Topology::new(2).unwrap();
    t.add_addresses().unwrap();
    t.add_addresses_for(Family::V6).unwrap();
    t.mgmd = Some(Mgmd::start(&t.router, &["--max-handles-per-conn".into(), "4".into()]).unwrap());
    t
}

fn every_function(mode: u32) {
    let t = router();
    let socket = t.mgmd.as_ref().unwrap().socket.clone();
    let tx = t.udp_sender(8).unwrap();
    let tx6 = t.udp_sender_for(Family::V6, 8).unwrap();
    // Receiver 1 is on r1, which the program keeps; receiver 2 on r2, which its creation
    // alert keeps out of every MFE.
    let rx: Vec<_> = (0..2).map(|i| t.udp_receiver(i, [239, 1, 1, 1], 5000).unwrap()).collect();
    let mut got = [0usize; 2];
    let said = Run::new(&t.router, "calls", &socket, mode)
        .interfaces(&t)
        .valgrind()
        .go(|what, _| {
            if what == "wrongif" {
                // The flow's (S,G) from receiver 1's side: into r1.
                let rx1 = &t.receivers[0];
                let tap = mgm_tests::PacketSocket::open(rx1, "eth0").unwrap();
                let frame = mgm_tests::udp_frame(
                    rx1.mac("eth0").unwrap(),
                    mgm_tests::SOURCE,
                    [239, 1, 1, 1],
                    8,
                    b"wrong",
                );
                for _ in 0..3 {
                    tap.send(&frame).unwrap();
                }
                return;
            }
            if what == "traffic6" {
                for i in 0..20 {
                    tx6.send_to(format!("c6-{i}").as_bytes(), (Family::V6.group(), 5000)).unwrap();
                    std::thread::sleep(Duration::from_millis(20));
                }
                return;
            }
            assert_eq!(what, "traffic");
            for i in 0..20 {
                for g in ["239.1.1.1", "239.1.1.2"] {
                    tx.send_to(format!("c-{i}").as_bytes(), (g, 5000)).unwrap();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let mut buf = [0u8; 64];
            for (i, r) in rx.iter().enumerate() {
                while r.recv(&mut buf).is_ok() {
                    got[i] += 1;
                }
            }
        })
        .unwrap();
    assert!(said.ends_with("ok calls\n"), "{said}");
    assert!(got[0] >= 10, "the receiver on r1 got {} of 40 packets of 239.1.1.1", got[0]);
    assert_eq!(got[1], 0, "the receiver on r2 got 239.1.1.1 though the creation alert kept r2 out");
    // Everything the program held is gone with its deregistrations.
    let mut ctl = t.ctl().unwrap();
    let show = ctl.show().unwrap();
    assert!(show.protocols.is_empty() && show.memberships.is_empty(), "{show:?}");
}

#[test]
fn every_function_from_c_with_callbacks_on_the_programs_loop() {
    every_function(CALLER);
}

#[test]
fn every_function_from_c_with_callbacks_on_the_librarys_thread() {
    every_function(THREAD);
}

fn restart(mode: u32) {
    let mut t = router();
    let socket = t.mgmd.as_ref().unwrap().socket.clone();
    let said = Run::new(&t.router, "restart", &socket, mode)
        .interfaces(&t)
        .valgrind()
        .go(|what, _| {
            assert_eq!(what, "restart");
            let m = t.mgmd.as_mut().unwrap();
            m.stop().unwrap();
            m.restart().unwrap();
        })
        .unwrap();
    assert!(said.ends_with("ok restart\n"), "{said}");
}

#[test]
fn after_mgmd_restarts_a_call_fails_clearly_once_and_registering_again_works() {
    restart(CALLER);
    restart(THREAD);
}

/// A call to an mgmd that stopped answering returns ERROR_TIMEOUT (after
/// $MGM_REPLY_TIMEOUT_MS), not never.
#[test]
fn a_silent_mgmd_is_a_timeout_not_a_hang() {
    let t = router();
    let m = t.mgmd.as_ref().unwrap();
    let pid = m.pid().to_string();
    let mut run = Run::new(&t.router, "timeout", &m.socket, CALLER).interfaces(&t).valgrind();
    run.env.push(("MGM_REPLY_TIMEOUT_MS", "500".into()));
    let started = Instant::now();
    let said = run
        .go(|what, _| {
            let sig = if what == "stop" { "-STOP" } else { "-CONT" };
            mgm_tests::run("kill", &[sig, &pid]).unwrap();
        })
        .unwrap();
    assert!(said.ends_with("ok timeout\n"), "{said}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

/// No mgmd at the socket is ERROR_CONNECTION_REFUSED; a socket this user may not use is
/// ERROR_ACCESS_DENIED.
#[test]
fn no_mgmd_is_refused_and_a_forbidden_socket_is_denied() {
    let t = router();
    let m = t.mgmd.as_ref().unwrap();
    let nowhere = m.socket.with_file_name("no-such.sock");
    let said = Run::new(&t.router, "refused", &nowhere, CALLER).valgrind().go(|_, _| {}).unwrap();
    assert!(said.ends_with("ok refused\n"), "{said}");
    // mgmd's socket is root's (0660): nobody may not connect.
    let mut run = Run::new(&t.router, "denied", &m.socket, CALLER);
    run.wrapper =
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"].map(str::to_owned).to_vec();
    let said = run.go(|_, _| {}).unwrap();
    assert!(said.ends_with("ok denied\n"), "{said}");
}

/// A C daemon killed while a call of its waits on mgmd: mgmd releases everything it held,
/// as for any client that disappears.
#[test]
fn a_c_daemon_killed_mid_call_is_released_by_mgmd() {
    let t = router();
    let m = t.mgmd.as_ref().unwrap();
    let pid = m.pid().to_string();
    let r1 = t.router.ifindex("r1").unwrap();
    let mut ctl = t.ctl().unwrap();
    let on_r1 = proto::GetProtocolOnInterface { ifindex: r1, nexthop: [0, 0, 0, 0].into() };
    let res = Run::new(&t.router, "killed", &m.socket, CALLER).interfaces(&t).go(|what, child| {
        assert_eq!(what, "kill");
        assert_eq!(ctl.call(on_r1.clone()).unwrap().protocol, 103, "the program owns r1");
        // It is in MgmTakeInterfaceOwnership, waiting for a stopped mgmd, when it dies.
        mgm_tests::run("kill", &["-STOP", &pid]).unwrap();
        child.stdin.as_mut().unwrap().write_all(b"done\n").unwrap();
        std::thread::sleep(Duration::from_millis(300));
        child.kill().unwrap();
        mgm_tests::run("kill", &["-CONT", &pid]).unwrap();
    });
    assert!(res.is_err(), "the program was killed");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match ctl.call_err(on_r1.clone()) {
            Ok(ErrorCode::NotFound) => break,
            r if Instant::now() > deadline => panic!("r1 still owned after the kill: {r:?}"),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    let show = ctl.show().unwrap();
    assert!(show.protocols.is_empty() && show.memberships.is_empty(), "{show:?}");
}

/// The example daemon of libmgm(3) (mgm-user/capi/examples/mgm-static.c), compiled as its
/// comment says, routes a numbered flow through XDP, answering the callbacks, and releases
/// atomically ([`libmgm::drive_example`]). The installed library: installed.rs.
#[test]
fn the_example_c_daemon_forwards_and_releases_atomically() {
    let mut t = Topology::new(2).unwrap();
    t.add_addresses().unwrap();
    t.mgmd = Some(Mgmd::start(&t.router, &[]).unwrap());
    let m = t.mgmd.as_ref().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let dir = libmgm::libmgm().unwrap();
    let exe = dir.join(mgm_tests::unique("mgm-static"));
    libmgm::compile_c(&[&root.join("mgm-user/capi/examples/mgm-static.c")], &exe).unwrap();
    let routes = dir.join(mgm_tests::unique("routes"));
    std::fs::write(&routes, libmgm::EXAMPLE_ROUTES).unwrap();
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net=/run/netns/{}", t.router.name))
        .arg(&exe)
        .arg("-s")
        .arg(&m.socket)
        .arg(&routes);
    libmgm::drive_example(&t, cmd);
    let show = t.ctl().unwrap().show().unwrap();
    assert!(
        show.protocols.is_empty() && show.memberships.is_empty() && show.ownership.is_empty(),
        "{show:?}"
    );
}

/// libmgm.so exports exactly the functions its symbols file (libmgm0's) lists, under the
/// soname libmgm.so.0: a function removed, or one added without its line (and the version
/// that added it), fails here.
#[test]
fn the_library_exports_exactly_its_symbols_file_under_its_soname() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let so = libmgm::libmgm().unwrap().join("lib/libmgm.so.0");
    let out = |cmd: &str, args: &[&str]| {
        let o = Command::new(cmd).args(args).arg(&so).output().unwrap();
        assert!(o.status.success(), "{cmd}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let exported: std::collections::BTreeSet<String> = out("nm", &["-D", "--defined-only"])
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
        .collect();
    let file = std::fs::read_to_string(root.join("mgm-user/capi/debian/libmgm0.symbols")).unwrap();
    let listed: std::collections::BTreeSet<String> = file
        .lines()
        .filter(|l| l.starts_with(' '))
        .map(|l| l.split_whitespace().next().unwrap().trim_end_matches("@Base").to_owned())
        .collect();
    assert_eq!(exported, listed, "nm -D of libmgm.so against debian/libmgm0.symbols");
    let header = std::fs::read_to_string(root.join("mgm-user/capi/include/mgm.h")).unwrap();
    for f in &exported {
        assert!(header.contains(&format!("{f}(")), "{f} is exported but not declared in mgm.h");
    }
    assert!(out("readelf", &["-d"]).contains("Library soname: [libmgm.so.0]"));
}
