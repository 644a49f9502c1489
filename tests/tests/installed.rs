// SPDX-License-Identifier: MIT OR Apache-2.0
//! The package as an operator runs it: installed with dpkg into a Debian 12 booted with
//! systemd as PID 1 (systemd-nspawn, [`Container`]), where its units, their sandboxes and the
//! maintainer scripts really apply; driven with systemctl, read with journalctl, with real
//! packets on veth pairs between the container and the test's namespaces.
//! `cargo xtask test` builds the package (MGM_DEB) and the fresh Debian (MGM_FRESH_DEBIAN).
//! Needs root.

use std::time::{Duration, Instant};

use mgm_tests::{Container, Family, SeqFlow, Topology, gaps, ipv6_listener, ipv6_on};

/// mgmd's file for the standard topology: the flow of [`SeqFlow`] from rin to r1 and r2.
const FORWARD: &str = r#"socket-group = "mgm"
interfaces = ["rin", "r1", "r2"]

[[mfe]]
source = "10.1.0.1"
group = "239.1.1.1"
iif = "rin"
oifs = ["r1", "r2"]
"#;

const CONFIG: &str = "/etc/mgm/mgmd.toml";

/// Polls `f` until it holds, for at most `secs` seconds.
fn until(secs: u64, what: &str, mut f: impl FnMut() -> anyhow::Result<bool>) {
    let deadline = Instant::now() + mgm_tests::patience(Duration::from_secs(secs));
    loop {
        match f() {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) if Instant::now() >= deadline => panic!("{what}: {e:#}"),
            Err(_) => {}
        }
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The journal's records of `unit` as (priority, message), every one of them.
fn journal(c: &Container, unit: &str) -> Vec<(u8, String)> {
    let out =
        c.ok(&format!("journalctl -q -u {unit} -o json --output-fields=PRIORITY,MESSAGE")).unwrap();
    out.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            // A message with bytes journald cannot show as text (colour codes) is an array.
            let message = match &v["MESSAGE"] {
                serde_json::Value::String(s) => s.clone(),
                other => panic!("a journal message that is not text (colours?): {other}"),
            };
            (v["PRIORITY"].as_str().unwrap().parse().unwrap(), message)
        })
        .collect()
}

/// A container with the package installed as the router of the standard topology
/// (`receivers` receivers), mgmd reloaded with `config`.
fn installed_router(tag: &str, receivers: usize, config: &str) -> (Container, Topology) {
    let c = Container::boot(tag).unwrap();
    c.install().unwrap();
    let t = Topology::around(c.netns("rtr").unwrap(), receivers).unwrap();
    t.add_addresses().unwrap();
    c.write(CONFIG, config).unwrap();
    c.ok("systemctl reload mgmd").unwrap();
    (c, t)
}

/// What mgmd's show says, as JSON (from the packaged mgmctl, inside the container).
fn show(c: &Container, parts: &str) -> serde_json::Value {
    serde_json::from_str(&c.ok(&format!("mgmctl --json show {parts}")).unwrap()).unwrap()
}

#[test]
fn the_installed_mgmd_reloads_restarts_and_upgrades_without_losing_a_packet() {
    let c = Container::boot("svc").unwrap();
    let said = c.install().unwrap();
    assert!(said.contains("Setting up mgm"), "{said}");
    assert_eq!(c.ok("systemctl is-active mgmd").unwrap().trim(), "active");
    assert_eq!(c.ok("systemctl is-enabled mgmd").unwrap().trim(), "enabled");
    assert_eq!(c.sh("systemctl is-enabled mgm-igmpd").unwrap().stdout.trim(), "disabled");
    c.ok("systemd-analyze verify mgmd.service mgm-igmpd.service mgm-igmpd@mld.service").unwrap();
    let found = c.ok("man -w mgmd mgmctl mgm-igmpd mgmd.toml mgmctl-reload").unwrap();
    assert_eq!(found.lines().count(), 5, "{found}");
    // The shipped files are what the daemons accept (group mgm exists once installed).
    let ok = c.ok("mgmd --check-config --config /etc/mgm/mgmd.toml").unwrap();
    assert!(ok.starts_with("configuration OK"), "{ok}");

    let t = Topology::around(c.netns("rtr").unwrap(), 2).unwrap();
    t.add_addresses().unwrap();
    c.write(CONFIG, FORWARD).unwrap();
    let said = c.ok("systemctl reload mgmd && journalctl -q -u mgmd -o cat -n 3").unwrap();
    assert!(said.contains("interfaces added rin r1 r2"), "mgmctl reload says what changed: {said}");
    let routes = show(&c, "routes");
    assert_eq!(routes["mfes"][0]["group"], "239.1.1.1", "{routes}");

    let flow = SeqFlow::start(&t, 2, 500).unwrap();
    std::thread::sleep(Duration::from_millis(500));

    // Files mgmd refuses: the reload fails where the operator looks (systemctl's status,
    // the journal at error priority), --check-config says the same, and nothing changes.
    let pid = c.main_pid("mgmd").unwrap();
    let refused = [
        ("interfaces = [\"rin\", \"nosuch0\"]\n", "no interface named \"nosuch0\""),
        ("interfaces = [\"rin\"\n", "parsing /etc/mgm/mgmd.toml: line"),
        ("max-mfes = \"lots\"\n", "max-mfes = \"lots\": invalid value"),
        ("socket-group = \"nosuchgroup\"\n", "no group named \"nosuchgroup\""),
        ("metric = \"127.0.0.1:9750\"\n", "did you mean metrics?"),
    ];
    for (file, why) in refused {
        c.write(CONFIG, file).unwrap();
        let reload = c.sh("systemctl reload mgmd").unwrap();
        assert!(!reload.status.success(), "a refused file reloaded: {file}\n{reload}");
        let errors: Vec<String> =
            journal(&c, "mgmd").into_iter().filter(|(p, _)| *p <= 3).map(|(_, m)| m).collect();
        assert!(errors.iter().any(|m| m.contains(why)), "{why:?} not in the errors: {errors:#?}");
        assert!(
            errors.iter().any(|m| m.starts_with("mgmctl: ") && m.contains(why)),
            "the reload's own error (mgmctl) at error priority: {errors:#?}"
        );
        let check = c.sh(&format!("mgmd --check-config --config {CONFIG}")).unwrap();
        assert_eq!(check.status.code(), Some(78), "--check-config agrees: {file}\n{check}");
        assert!(check.stderr.contains(why), "{check}");
        assert_eq!(c.main_pid("mgmd").unwrap(), pid, "mgmd goes on");
    }
    assert_eq!(
        show(&c, "routes")["mfes"][0]["group"],
        "239.1.1.1",
        "the running configuration stays"
    );
    c.write(CONFIG, FORWARD).unwrap();
    c.ok("systemctl reload mgmd").unwrap();

    // A restart, then an upgrade (the same package again: dpkg stops nothing, its postinst
    // restarts mgmd), with the flow running: the pinned fast path forwards throughout.
    c.ok("systemctl restart mgmd").unwrap();
    let restarted = c.main_pid("mgmd").unwrap();
    assert_ne!(restarted, pid);
    std::thread::sleep(Duration::from_secs(1));
    c.install().unwrap();
    let upgraded = c.main_pid("mgmd").unwrap();
    assert!(upgraded != restarted && upgraded != 0, "the upgrade restarted mgmd");
    std::thread::sleep(Duration::from_secs(1));
    let (last, seen) = flow.finish();
    for (i, r) in seen.iter().enumerate() {
        assert!(r.first().is_some_and(|&f| f <= 50), "receiver {i} started late: {:?}", r.first());
        let lost = gaps(r, last);
        assert!(
            lost.is_empty(),
            "receiver {i} lost {} of {last}: {:?}\n{}",
            lost.len(),
            &lost[..lost.len().min(20)],
            t.receiver_drops(i)
        );
    }
    println!(
        "forwarded {last} numbered packets to 2 receivers across {} refused reloads, a restart and an upgrade: none lost",
        refused.len()
    );

    // The journal: each line at its priority, as text (no colour codes, no second time).
    let records = journal(&c, "mgmd");
    assert!(records.iter().any(|(p, _)| *p == 6), "info lines: {records:#?}");
    for (p, m) in &records {
        assert!(!m.starts_with("20") && !m.contains('\u{1b}'), "<{p}> {m}");
    }
    let warnings = c.ok("journalctl -q -u mgmd -p warning -o cat").unwrap();
    assert!(warnings.contains("configuration refused"), "{warnings}");

    for unit in ["mgmd", "mgm-igmpd"] {
        let score = c.ok(&format!("systemd-analyze security {unit} --no-pager | tail -1")).unwrap();
        println!("systemd-analyze security {unit}: {}", score.trim());
    }
}

/// A routing daemon that runs as its own user (FRR's pimd runs as frr) reaches mgmd through
/// group mgm: the packaged file gives the socket to it, under the unit's sandbox (no
/// CAP_CHOWN); a user outside the group is refused.
#[test]
fn a_routing_daemons_user_in_group_mgm_uses_the_socket_and_others_cannot() {
    let c = Container::boot("grp").unwrap();
    c.install().unwrap();
    c.ok(
        "useradd --system --no-create-home frr && adduser --quiet frr mgm || usermod -a -G mgm frr",
    )
    .unwrap();
    c.ok("useradd --system --no-create-home stranger").unwrap();
    let sock = c.ok("stat -c '%U %G %a' /run/mgm/mgmd.sock").unwrap();
    assert_eq!(sock.trim(), "root mgm 660");
    let pid = c.main_pid("mgmd").unwrap();
    let status = c.ok(&format!("grep CapEff /proc/{pid}/status")).unwrap();
    let caps = u64::from_str_radix(status.split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert_eq!(caps & (1 << 0), 0, "mgmd has no CAP_CHOWN: {status}");

    // A file mgmd cannot start with: the start fails once (status 78), and the unit does not
    // try again and again.
    c.write(CONFIG, "socket-group = \"nosuchgroup\"\n").unwrap();
    assert!(!c.sh("systemctl restart mgmd").unwrap().status.success());
    std::thread::sleep(Duration::from_secs(3));
    let show = c.ok("systemctl show -P NRestarts,ExecMainStatus,ActiveState mgmd").unwrap();
    assert_eq!(show.split_whitespace().collect::<Vec<_>>(), ["0", "78", "failed"], "{show}");
    c.write(CONFIG, "socket-group = \"mgm\"\n").unwrap();
    c.ok("systemctl start mgmd").unwrap();

    let frr = c.sh("runuser -u frr -- mgmctl --json show protocols").unwrap();
    assert!(frr.status.success(), "a member of group mgm: {frr}");
    let stranger = c.sh("runuser -u stranger -- mgmctl show protocols").unwrap();
    assert!(!stranger.status.success(), "a user outside group mgm got in: {stranger}");
    assert!(stranger.stderr.to_lowercase().contains("permission denied"), "{stranger}");
}

/// mgm-igmpd learns a real host's join, and keeps it across mgmd's restarts: it does not
/// stop with mgmd (its unit wants mgmd, it does not require it), reconnects and installs
/// its memberships again. The template unit runs MLD beside it (mgm-igmpd@mld).
#[test]
fn mgm_igmpd_keeps_a_hosts_join_across_mgmd_restarts_and_mld_runs_beside_it() {
    let (c, t) = installed_router("igmp", 1, "interfaces = [\"rin\", \"r1\"]\n");
    // The querier's own addresses. IGMP runs on both links: traffic arriving on an
    // interface no protocol owns is not forwarded (MGM's rule).
    c.ok("ip addr add 10.1.0.254/24 dev rin && ip addr add 10.2.1.1/24 dev r1").unwrap();
    c.write("/etc/mgm/igmpd.toml", "interfaces = [\"rin\", \"r1\"]\n").unwrap();
    c.write("/etc/mgm/igmpd-mld.toml", "mld = true\ninterfaces = [\"rin\", \"r1\"]\n").unwrap();
    if let Err(e) = c.ok("systemctl enable --now mgm-igmpd mgm-igmpd@mld") {
        let log = c.ok("journalctl -q -u mgm-igmpd -u mgm-igmpd@mld -o cat").unwrap();
        panic!("{e:#}\n{log}");
    }

    // Real hosts: the receiver's kernel reports its sockets' joins (IGMPv3, MLDv2).
    let _v4 = t.udp_receiver(0, [239, 1, 1, 1], 5002).unwrap();
    ipv6_on(&t.receivers[0], "eth0").unwrap();
    let g6: std::net::Ipv6Addr = Family::V6.group().to_string().parse().unwrap();
    let _v6 = ipv6_listener(&t.receivers[0], g6, 5001).unwrap();
    let joined = |g: &str| {
        let v = show(&c, "groups");
        Ok(v["memberships"].as_array().into_iter().flatten().any(|m| m["entry"]["group"] == g))
    };
    until(20, "mgm-igmpd installs the host's IGMP join", || joined("239.1.1.1"));
    until(20, "mgm-igmpd@mld installs the host's MLD join", || joined("ff3e::8000:1"));

    let igmpd = c.main_pid("mgm-igmpd").unwrap();
    let mldd = c.main_pid("mgm-igmpd@mld").unwrap();
    for how in ["systemctl restart mgmd", "systemctl stop mgmd && sleep 1 && systemctl start mgmd"]
    {
        c.ok(how).unwrap();
        assert_eq!(c.main_pid("mgm-igmpd").unwrap(), igmpd, "mgm-igmpd went with `{how}`");
        assert_eq!(c.main_pid("mgm-igmpd@mld").unwrap(), mldd, "mgm-igmpd@mld went with `{how}`");
        until(20, "the IGMP join is back in mgmd", || joined("239.1.1.1"));
        until(20, "the MLD join is back in mgmd", || joined("ff3e::8000:1"));
    }
    let flow = SeqFlow::start(&t, 1, 200).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let (last, seen) = flow.finish();
    assert!(
        seen[0].len() as u64 > last / 2,
        "the joined host gets the flow: {} of {last}",
        seen[0].len()
    );

    // Its journal: text at its priorities; a file it cannot use is an error there, and the
    // unit does not restart it again and again.
    let records = journal(&c, "mgm-igmpd");
    assert!(
        records.iter().any(|(p, m)| *p == 6 && m.contains("registered with mgmd")),
        "{records:#?}"
    );
    c.write("/etc/mgm/igmpd.toml", "interfaces = [\"r1\"]\nversion = 7\n").unwrap();
    assert!(!c.sh("systemctl restart mgm-igmpd").unwrap().status.success());
    std::thread::sleep(Duration::from_secs(3));
    let show = c.ok("systemctl show -P NRestarts,ExecMainStatus mgm-igmpd").unwrap();
    assert_eq!(show.split_whitespace().collect::<Vec<_>>(), ["0", "78"], "{show}");
    let errors: Vec<String> =
        journal(&c, "mgm-igmpd").into_iter().filter(|(p, _)| *p == 3).map(|(_, m)| m).collect();
    assert!(errors.iter().any(|m| m.contains("version")), "{errors:#?}");
}

/// `dpkg -r` takes mgm's forwarding out of the kernel (nothing would be left to manage it)
/// and `dpkg -P` leaves nothing of mgm behind.
#[test]
fn removing_the_package_takes_its_forwarding_out_and_purging_leaves_nothing() {
    let (c, t) = installed_router("rm", 2, FORWARD);
    let flow = SeqFlow::start(&t, 2, 200).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    c.ok("systemctl stop mgmd").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        c.ok("ip -d link show rin").unwrap().contains("xdp"),
        "a stopped mgmd's forwarding stays"
    );
    c.ok("dpkg -r mgm").unwrap();
    let removed_at = flow.last_sent();
    std::thread::sleep(Duration::from_secs(1));
    let (last, seen) = flow.finish();
    for (i, r) in seen.iter().enumerate() {
        let after: Vec<&u64> = r.range(removed_at + 1..).collect();
        assert!(after.is_empty(), "receiver {i} got {} packets after the removal", after.len());
        assert!(r.len() > 100, "receiver {i} got the flow before: {} of {last}", r.len());
    }
    for dev in ["rin", "r1", "r2"] {
        let link = c.ok(&format!("ip -d link show {dev}")).unwrap();
        assert!(!link.contains("xdp"), "{dev} keeps XDP after the removal: {link}");
        c.ok(&format!("ip link set dev {dev} xdp off")).unwrap();
        assert!(!c.ok(&format!("tc filter show dev {dev} ingress")).unwrap().contains("mgm"));
    }
    assert_eq!(
        c.ok("ls /sys/fs/bpf")
            .unwrap()
            .split_whitespace()
            .filter(|f| !f.ends_with(".debug"))
            .count(),
        0
    );
    assert!(c.root().join("etc/mgm/mgmd.toml").exists(), "remove keeps the configuration");

    c.ok("dpkg -P mgm").unwrap();
    // mgm's names: mgmd, mgmctl, mgm-igmpd, /etc/mgm, /run/mgm, _mgmctl (zsh), mgm.* ...
    let left = c
        .ok("find / -xdev -regextype egrep -regex '.*/_?mgm([-.][^/]*|d[^/]*|ctl[^/]*)?' -not -path /var/tmp/mgm.deb")
        .unwrap();
    assert!(left.trim().is_empty(), "purge left:\n{left}");
    assert!(!c.root().join("run/mgm").exists() && !c.root().join("etc/mgm").exists());
}

/// A C daemon compiled with only what libmgm-dev installs (its header, its pkg-config file;
/// on the build machine, as a routing daemon's package is built) runs on the router
/// against the installed libmgm0 and mgmd: the example of libmgm(3) registers, takes its
/// interfaces, answers the callbacks, forwards a numbered flow through XDP and releases
/// atomically ([`mgm_tests::libmgm::drive_example`]), and leaves nothing behind.
#[test]
fn a_c_daemon_built_against_libmgm_dev_forwards_through_the_installed_mgmd() {
    use mgm_tests::{TempDir, container::built, libmgm};
    use std::process::Command;
    let (c, t) = installed_router("capi", 2, "");
    c.copy_in(&built("libmgm0"), "/var/tmp/libmgm0.deb").unwrap();
    let said = c.ok("dpkg -i /var/tmp/libmgm0.deb 2>&1").unwrap();
    assert!(said.contains("Setting up libmgm0"), "{said}");

    let root = TempDir::new("libmgm-dev");
    for deb in [built("libmgm0"), built("libmgm-dev")] {
        let ok = Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root.0).status().unwrap();
        assert!(ok.success());
    }
    let flags = Command::new("pkg-config")
        .args(["--cflags", "--libs", "mgm"])
        .env("PKG_CONFIG_SYSROOT_DIR", &root.0)
        .env("PKG_CONFIG_LIBDIR", root.0.join("usr/lib/x86_64-linux-gnu/pkgconfig"))
        .output()
        .unwrap();
    assert!(flags.status.success());
    let exe = root.0.join("mgm-static");
    let cc = Command::new("cc")
        .args(["-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&exe)
        .arg(root.0.join("usr/share/doc/libmgm-dev/examples/mgm-static.c"))
        .args(String::from_utf8(flags.stdout).unwrap().split_whitespace())
        .output()
        .unwrap();
    assert!(cc.status.success(), "{}", String::from_utf8_lossy(&cc.stderr));
    c.copy_in(&exe, "/usr/local/bin/mgm-static").unwrap();
    c.write("/etc/mgm-static.routes", libmgm::EXAMPLE_ROUTES).unwrap();
    // Found through the package's socket and group defaults: no option.
    libmgm::drive_example(&t, c.command("exec mgm-static /etc/mgm-static.routes"));
    let left = show(&c, "protocols");
    assert!(left["protocols"].as_array().is_none_or(Vec::is_empty), "{left}");
}
