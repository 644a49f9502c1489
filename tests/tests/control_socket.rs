// SPDX-License-Identifier: MIT OR Apache-2.0
//! mgmd's control socket against bad input: every bad line gets a precise error reply, and the
//! connection, other connections and the state are unaffected. Needs root (mgmd loads XDP).

use std::os::unix::fs::PermissionsExt as _;

use mgm::proto;
use mgm_tests::{Mgmd, Netns, require_root};
use serde_json::json;

fn code(reply: &serde_json::Value) -> &str {
    reply["error"]["code"].as_str().unwrap_or_else(|| panic!("not an error: {reply}"))
}

#[test]
fn bad_requests_get_error_replies_and_change_nothing() {
    require_root();
    let ns = Netns::new("ctl").unwrap();
    let d = Mgmd::start(&ns, &[]).unwrap();
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "socket is root-only by default");

    let mut c = d.ctl().unwrap();
    let mut other = d.ctl().unwrap();
    let r = c.raw(b"this is not json").unwrap();
    assert_eq!(code(&r), "malformed");
    assert_eq!(r["id"], json!(null));
    let r = c.raw(br#"{"id":7,"method":"format_disk"}"#).unwrap();
    assert_eq!((code(&r), &r["id"]), ("unknown_method", &json!(7)));
    let r = c.raw(br#"{"id":8,"method":"add_mfe","source":"10.0.0.1"}"#).unwrap();
    assert_eq!(code(&r), "invalid_params");
    let r = c
        .raw(br#"{"id":9,"method":"add_mfe","source":"10.0.0.1","group":"239.1.1.1","iif":"nope","oifs":[]}"#)
        .unwrap();
    assert_eq!(code(&r), "no_such_interface");
    let r = c.raw(&[0xff, 0xfe, b'{']).unwrap();
    assert_eq!(code(&r), "malformed");
    let big = vec![b'x'; 100 * 1024];
    let r = c.raw(&big).unwrap();
    assert_eq!(code(&r), "too_large");

    // Same connection, and another one, still work; nothing was installed.
    assert!(c.show().unwrap().mfes.is_empty());
    assert_eq!(other.call(proto::Hello {}).unwrap().protocol, mgm::proto::PROTOCOL_VERSION);
    assert!(d.log().contains("mgmd ready"));
}

#[test]
fn a_second_instance_on_the_same_socket_is_refused() {
    require_root();
    let ns = Netns::new("dup").unwrap();
    let d = Mgmd::start(&ns, &[]).unwrap();
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(mgm_tests::bin("mgmd"))
        .arg("--socket")
        .arg(&d.socket)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another mgmd"), "{err}");
    // The first one is untouched.
    assert_eq!(
        d.ctl().unwrap().call(proto::Hello {}).unwrap().protocol,
        mgm::proto::PROTOCOL_VERSION
    );
}

/// A namespace with a veth pair d0/d1, d0 up (for mgmd to manage).
fn netns_with_d0(tag: &str) -> Netns {
    let ns = Netns::new(tag).unwrap();
    ns.exec("ip", &["link", "add", "d0", "type", "veth", "peer", "name", "d1"]).unwrap();
    ns.exec("ip", &["link", "set", "d0", "up"]).unwrap();
    ns
}

/// `mgmctl hello` as user and group nobody (65534), without supplementary groups.
fn hello_as_nobody(d: &Mgmd) -> std::process::Output {
    std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(mgm_tests::bin("mgmctl"))
        .arg("--socket")
        .arg(&d.socket)
        .arg("hello")
        .output()
        .unwrap()
}

#[test]
fn peers_are_checked_by_credentials_and_the_socket_group() {
    require_root();
    let ns = Netns::new("cred").unwrap();
    // World-writable by mistake: the SO_PEERCRED check still turns nobody away.
    let d = Mgmd::start(&ns, &["--socket-mode".into(), "666".into()]).unwrap();
    std::fs::set_permissions(
        d.socket.parent().unwrap(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let out = hello_as_nobody(&d);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not allowed to use this socket"),
        "{out:?}"
    );
    assert!(d.log().contains("connection refused"));
    // Root still gets in, and the refused connection left nothing behind.
    assert_eq!(
        d.ctl().unwrap().call(proto::Hello {}).unwrap().protocol,
        mgm::proto::PROTOCOL_VERSION
    );
    drop(d);

    // With --socket-group, its members may: the file is root:65534, mode 660.
    let d = Mgmd::start(&ns, &["--socket-group".into(), "65534".into()]).unwrap();
    std::fs::set_permissions(
        d.socket.parent().unwrap(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let meta = std::fs::metadata(&d.socket).unwrap();
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    assert_eq!((meta.gid(), meta.permissions().mode() & 0o777), (65534, 0o660));
    let out = hello_as_nobody(&d);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn a_flooding_client_that_never_reads_cannot_stall_the_others() {
    require_root();
    let ns = Netns::new("flood").unwrap();
    let d = Mgmd::start(&ns, &["--client-queue-bytes".into(), "65536".into()]).unwrap();
    let mut good = d.ctl().unwrap();
    let h = good.register(103).unwrap();
    // The flooder writes requests as fast as it can and reads nothing.
    let sock = d.socket.clone();
    let flooder = std::thread::spawn(move || {
        use std::io::Write as _;
        let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
        let line = b"{\"id\":1,\"method\":\"show\"}\n".repeat(100);
        let mut sent = 0;
        // Until mgmd hangs up on it (or 2 million requests).
        while sent < 2_000_000 && s.write_all(&line).is_ok() {
            sent += 100;
        }
        sent
    });
    let mut worst = std::time::Duration::ZERO;
    for _ in 0..200 {
        let t = std::time::Instant::now();
        good.status().unwrap();
        worst = worst.max(t.elapsed());
    }
    let sent = flooder.join().unwrap();
    assert!(sent < 2_000_000, "the flooder was never disconnected");
    assert!(d.log().contains("client does not read; disconnecting it"));
    assert!(worst < std::time::Duration::from_millis(500), "a request waited {worst:?}");
    // The well-behaved client kept its session.
    good.call(proto::Deregister { handle: h }).unwrap();
}

/// mgmctl's exit status says what went wrong, for scripts: 0 done, 2 a bad command line, 3 no
/// mgmd on the socket, 4 not found, 5 refused by mgmd.
#[test]
fn mgmctl_exit_statuses_tell_the_outcomes_apart() {
    require_root();
    let ns = netns_with_d0("ctlexit");
    let args = ["--iface", "d0", "--max-static-mfes", "1"].map(String::from);
    let d = Mgmd::start(&ns, &args).unwrap();
    let mgmctl = |socket: &std::path::Path, args: &[&str]| {
        let (code, _, err) = mgm_tests::mgmctl(socket, args);
        (code, err)
    };
    assert_eq!(mgmctl(&d.socket, &["hello"]).0, Some(0));
    assert_eq!(mgmctl(&d.socket, &["frobnicate"]).0, Some(2));
    let absent = d.socket.with_file_name("absent.sock");
    for cmd in [&["status"][..], &["session"][..]] {
        let (code, err) = mgmctl(&absent, cmd);
        assert_eq!(code, Some(3), "{cmd:?}: {err}");
    }
    let (code, err) = mgmctl(&d.socket, &["del-mfe", "10.1.0.1", "239.1.1.1"]);
    assert_eq!(code, Some(4), "{err}");
    assert!(err.contains("no static MFE"), "{err}");
    let (code, err) = mgmctl(&d.socket, &["add-mfe", "10.1.0.1,239.1.1.1,nosuch,d0"]);
    assert_eq!(code, Some(4), "{err}");
    assert_eq!(mgmctl(&d.socket, &["add-mfe", "10.1.0.1,239.1.1.1,d0,d0"]).0, Some(0));
    // Over --max-static-mfes: refused.
    let (code, err) = mgmctl(&d.socket, &["add-mfe", "10.1.0.2,239.1.1.1,d0,d0"]);
    assert_eq!(code, Some(5), "{err}");
    assert_eq!(err.matches("limit reached").count(), 1, "the reason, once: {err}");
}

/// `mgmctl show` narrowed to parts, as `smcroutectl show` is: tables or JSON fields of
/// those parts only; every part without a name; an unknown part is a bad command line.
#[test]
fn show_can_be_narrowed_to_parts() {
    require_root();
    let ns = netns_with_d0("ctlshow");
    let args = ["--iface", "d0", "--mfe", "10.1.0.1,239.1.1.1,d0,d0"].map(String::from);
    let d = Mgmd::start(&ns, &args).unwrap();
    let mgmctl = |args: &[&str]| {
        let (code, out, _) = mgm_tests::mgmctl(&d.socket, args);
        (code, out)
    };
    let sections = |text: &str| -> Vec<String> {
        text.lines().filter(|l| !l.starts_with(' ')).map(str::to_owned).collect()
    };
    let (code, all) = mgmctl(&["show"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        sections(&all),
        ["INTERFACES", "PROTOCOLS", "OWNERSHIP", "MEMBERSHIPS", "MFES", "COUNTERS"]
    );
    let (_, some) = mgmctl(&["show", "routes", "counters"]);
    assert_eq!(sections(&some), ["MFES", "COUNTERS"]);
    assert!(some.contains("239.1.1.1"), "{some}");
    let (_, json) = mgmctl(&["--json", "show", "interfaces", "groups"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["interfaces", "memberships", "more_memberships"]);
    assert_eq!(v["interfaces"][0]["name"], "d0");
    assert_eq!(mgmctl(&["show", "bogus"]).0, Some(2));
}

/// mgmd run alone, outside any namespace, with a socket of its own and nothing pinned (for
/// the runs that must fail before touching an interface); its exit code and standard error.
fn mgmd_fails(args: &[&str], pre_exec: Option<fn() -> std::io::Result<()>>) -> (i32, String) {
    use std::os::unix::process::CommandExt as _;
    let dir = mgm_tests::TempDir::new("fails");
    let mut cmd = std::process::Command::new(mgm_tests::bin("mgmd"));
    cmd.arg("--socket").arg(dir.0.join("mgmd.sock")).args(args);
    if let Some(f) = pre_exec {
        // SAFETY: `f` makes only async-signal-safe calls (prctl).
        unsafe { cmd.pre_exec(f) };
    }
    let out = cmd.output().expect("running mgmd");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().expect("mgmd exited"), stderr)
}

/// Limits that cannot work are refused as such by the command line, before anything is
/// loaded, not reported later as something else (a missing capability, clients all
/// disconnected).
#[test]
fn limits_that_cannot_work_are_refused_by_the_command_line() {
    for (flag, value) in [
        ("--max-mfes", "0"),
        ("--max-mfes", "4294967295"),
        ("--client-queue-bytes", "0"),
        ("--client-queue-bytes", "1000"),
        ("--restart-hold-secs", "18446744073709551615"),
    ] {
        let (code, stderr) = mgmd_fails(&[flag, value, "--no-pin"], None);
        assert_eq!(code, 2, "{flag} {value}: a usage error\n{stderr}");
        assert!(stderr.contains(flag), "{flag} {value}: names the option\n{stderr}");
        assert!(!stderr.contains("CAP_BPF"), "{flag} {value}: not a capability\n{stderr}");
    }
}

/// A start refused by a policy, not by missing capabilities, says so: root (with every
/// capability) under a seccomp filter that answers bpf() with EPERM (as systemd's
/// SystemCallFilter= does), and a pin directory on a read-only bpffs.
#[test]
fn a_failed_start_names_the_policy_in_the_way() {
    require_root();
    fn deny_bpf() -> std::io::Result<()> {
        const BPF: u32 = 321; // x86_64
        // Classic BPF: load the syscall number; bpf() → EPERM; everything else allowed.
        let filter = [
            libc::sock_filter { code: 0x20, jt: 0, jf: 0, k: 0 }, // ld [nr]
            libc::sock_filter { code: 0x15, jt: 0, jf: 1, k: BPF }, // jeq BPF
            libc::sock_filter { code: 0x06, jt: 0, jf: 0, k: 0x0005_0000 | libc::EPERM as u32 },
            libc::sock_filter { code: 0x06, jt: 0, jf: 0, k: 0x7fff_0000 }, // allow
        ];
        let prog =
            libc::sock_fprog { len: filter.len() as u16, filter: filter.as_ptr().cast_mut() };
        // SAFETY: a filter program that lives until the call returns (the kernel copies it).
        let rc = unsafe {
            libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog as *const _)
        };
        if rc != 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
    }
    let (code, stderr) = mgmd_fails(&["--no-pin"], Some(deny_bpf));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("seccomp"), "names the policy: {stderr}");
    assert!(!stderr.contains("lacks"), "root lacks no capability: {stderr}");

    // A bpffs of its own, mounted read-only.
    let dir = mgm_tests::TempDir::new("robpf");
    let mnt = dir.0.join("bpf");
    std::fs::create_dir(&mnt).unwrap();
    mgm_tests::run("mount", &["-t", "bpf", "-o", "ro", "bpf", mnt.to_str().unwrap()]).unwrap();
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = mgm_tests::run("umount", &[self.0.to_str().unwrap()]);
        }
    }
    let _unmount = Unmount(mnt.clone());
    let pins = mnt.join("mgm");
    let (code, stderr) = mgmd_fails(&["--pin-dir", pins.to_str().unwrap()], None);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("read-only"), "{stderr}");
    assert!(!stderr.contains("CAP_BPF") && !stderr.contains("is bpffs mounted"), "{stderr}");
    let lock = mgm::server::pins_lock_path(&pins);
    assert!(!lock.exists(), "a failed start leaves no lock file: {}", lock.display());
}

/// Statics are logged as a count, not one line each (100,000 statics wrote 23 MB of log);
/// the operator's own `add_mfe` over the socket is still logged.
#[test]
fn statics_are_logged_as_a_summary() {
    require_root();
    let ns = netns_with_d0("statics");
    ns.exec("ip", &["link", "set", "d1", "up"]).unwrap();
    let mut args: Vec<String> = ["--iface", "d0", "--iface", "d1"].map(String::from).to_vec();
    for i in 0..300 {
        args.extend(["--mfe".into(), format!("10.0.{}.{},239.1.1.1,d0,d1", i / 250, i % 250 + 1)]);
    }
    let d = Mgmd::start(&ns, &args).unwrap();
    let log = d.log();
    assert_eq!(log.matches("static mfe installed").count(), 0, "{log}");
    assert!(log.contains("static_mfes=300") && log.contains("configuration applied"), "{log}");
    let (code, _, err) = mgm_tests::mgmctl(&d.socket, &["add-mfe", "10.9.9.9,239.1.1.1,d0,d1"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(d.log().matches("static mfe installed").count(), 1);
}

/// The matrix runs these on this machine and in every guest (Debian 12's 6.1 and 6.12, 7.x):
/// what must hold on every kernel mgm supports.
mod every_kernel {
    use super::*;

    #[test]
    fn shutdown_leaves_forwarding_pinned_until_cleanup() {
        require_root();
        let ns = netns_with_d0("stop");
        let mut d = Mgmd::start(&ns, &["--iface".into(), "d0".into()]).unwrap();
        let xdp = || ns.exec("ip", &["link", "show", "d0"]).unwrap().contains("xdp");
        // Kernels without TCX carry the TC program as mgm's cls_bpf filter: it goes and stays
        // with the XDP link.
        let filter = || {
            let f = ns.exec("tc", &["filter", "show", "dev", "d0", "ingress"]).unwrap_or_default();
            f.contains("handle 0x4d47")
        };
        let tcx = !d.log().contains("has no TCX links");
        assert!(xdp());
        assert_eq!(filter(), !tcx, "{}", d.log());
        let status = d.stop().unwrap();
        assert!(status.success(), "mgmd exits 0 on SIGTERM: {status}\n{}", d.log());
        assert!(!d.socket.exists());
        assert!(xdp(), "the pinned link keeps the fast path attached");
        assert_eq!(filter(), !tcx, "the TC filter stays with it");
        assert!(d.pin_dir.join("maps/MGM_MFES").exists());
        d.cleanup().unwrap();
        assert!(!xdp(), "--cleanup detaches");
        assert!(!filter(), "--cleanup deletes the TC filter");
        assert!(!d.pin_dir.exists(), "and removes the pins");
        let locks = [mgm::server::pins_lock_path(&d.pin_dir), mgm::server::lock_path(&d.socket)];
        for lock in locks {
            assert!(!lock.exists(), "--cleanup leaves no lock file: {}", lock.display());
        }
    }

    #[test]
    fn cleanup_is_refused_while_mgmd_runs_and_no_pin_detaches_on_exit() {
        require_root();
        let ns = netns_with_d0("nopin");
        let mut d = Mgmd::start(&ns, &["--iface".into(), "d0".into(), "--no-pin".into()]).unwrap();
        let err = d.cleanup().unwrap_err().to_string();
        assert!(err.contains("another mgmd"), "{err}");
        assert!(!d.pin_dir.exists(), "--no-pin pins nothing");
        let filters =
            || ns.exec("tc", &["filter", "show", "dev", "d0", "ingress"]).unwrap_or_default();
        assert_eq!(filters().contains("handle 0x4d47"), d.log().contains("has no TCX links"));
        assert!(d.stop().unwrap().success());
        assert!(!ns.exec("ip", &["link", "show", "d0"]).unwrap().contains("xdp"), "XDP detached");
        assert!(!filters().contains("handle 0x4d47"), "and the TC filter of kernels without TCX");
    }
}
