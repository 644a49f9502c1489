// SPDX-License-Identifier: MIT OR Apache-2.0
//! Reloading mgmd's configuration (`mgmctl reload`, SIGHUP): what changed in the file is
//! applied, what did not is not touched (a numbered flow through an unchanged entry loses
//! nothing), and a file that cannot be applied changes nothing. Needs root.

use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use mgm::proto::Reloaded;
use mgm_tests::{Family, Mgmd, SeqFlow, TempDir, Topology, gaps_between, mgmctl};

fn mfe(source: IpAddr, group: &str, iif: &str, oifs: &[&str]) -> String {
    let oifs: Vec<String> = oifs.iter().map(|o| format!("{o:?}")).collect();
    format!(
        "[[mfe]]\nsource = \"{source}\"\ngroup = \"{group}\"\niif = \"{iif}\"\noifs = [{}]\n",
        oifs.join(", ")
    )
}

/// The managed interfaces' names, and the static MFEs as (group, outgoing ifindexes).
fn state(d: &Mgmd) -> (Vec<String>, Vec<(IpAddr, Vec<u32>)>) {
    let s = d.ctl().unwrap().show().unwrap();
    let names = s.interfaces.into_iter().map(|i| i.name).collect();
    let statics = s
        .mfes
        .into_iter()
        .filter(|m| m.origin == mgm::proto::Origin::Static)
        .map(|m| (m.mfe.group, m.oif_indexes()))
        .collect();
    (names, statics)
}

#[test]
fn a_reload_applies_what_changed_and_an_unchanged_flow_loses_nothing() {
    let family = Family::V4;
    let mut t = Topology::new(2).unwrap();
    t.add_addresses_for(family).unwrap();
    let (s, g) = (family.source(), family.group().to_string());
    let dir = TempDir::new("reload");
    let config = dir.0.join("mgmd.toml");
    let write = |text: String| std::fs::write(&config, text).unwrap();
    let ifs = |names: &[&str]| format!("interfaces = {names:?}\n");

    // v1: the flow's entry (to r1) and another.
    write(
        ifs(&["rin", "r1", "r2"])
            + &mfe(s, &g, "rin", &["r1"])
            + &mfe(s, "239.1.1.2", "rin", &["r1"]),
    );
    let args = vec!["--config".to_owned(), config.display().to_string()];
    t.mgmd = Some(Mgmd::start(&t.router, &args).unwrap());
    let d = t.mgmd.as_ref().unwrap();
    let (r1, r2) = (t.router.ifindex("r1").unwrap(), t.router.ifindex("r2").unwrap());
    let flow = SeqFlow::start_for(&t, family, 1, 2_000).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let established = flow.last_sent();
    assert!(established > 100, "the flow started");

    // v2: the flow's entry as it was (its outgoing list written in another order would be
    // the same); the other moves to r2; a third is added; r2 gets a scope boundary.
    write(
        ifs(&["rin", "r1", "r2"])
            + &mfe(s, &g, "rin", &["r1"])
            + &mfe(s, "239.1.1.2", "rin", &["r2"])
            + &mfe(s, "239.1.1.3", "rin", &["r1", "r2"])
            + "[[scope_boundary]]\ninterface = \"r2\"\nscope = \"site\"\n",
    );
    let (code, out, err) = mgmctl(&d.socket, &["--json", "reload"]);
    assert_eq!(code, Some(0), "{err}");
    let r: Reloaded = serde_json::from_str(&out).unwrap();
    let want = Reloaded {
        mfes_added: 1,
        mfes_changed: 1,
        mfes_unchanged: 1,
        boundaries_changed: 1,
        ..Reloaded::default()
    };
    assert_eq!(r, want);
    let (names, statics) = state(d);
    assert_eq!(names, ["rin", "r1", "r2"]);
    let g2: IpAddr = "239.1.1.2".parse().unwrap();
    assert!(statics.contains(&(g2, vec![r2])), "{statics:?}");
    assert_eq!(statics.len(), 3, "{statics:?}");
    assert!(t.router.exec("ip", &["link", "show", "r2"]).unwrap().contains("xdp"));

    // v3, by SIGHUP: r2 is no longer named and nothing uses it any more.
    write(ifs(&["rin", "r1"]) + &mfe(s, &g, "rin", &["r1"]));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let (names, statics) = loop {
        let (names, statics) = state(d);
        if names.len() == 2 || Instant::now() > deadline {
            break (names, statics);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(names, ["rin", "r1"]);
    assert_eq!(statics, [(family.group(), vec![r1])]);
    // Its programs are detached.
    assert!(!t.router.exec("ip", &["link", "show", "r2"]).unwrap().contains("xdp"));

    // Files that cannot be applied whole change nothing.
    write("interfaces = [\"rin\"\n".into());
    let (code, _, err) = mgmctl(&d.socket, &["reload"]);
    assert_eq!(code, Some(5), "a syntax error is refused: {err}");
    assert!(err.contains("mgmd.toml"), "the message names the file: {err}");
    write(ifs(&["rin", "r1", "nosuch0"]) + &mfe(s, "239.1.1.4", "rin", &["r1"]));
    let (code, _, err) = mgmctl(&d.socket, &["reload"]);
    assert_eq!(code, Some(4), "an interface that does not exist: {err}");
    assert!(err.contains("nosuch0"), "{err}");
    assert_eq!(state(d), (names, statics));

    std::thread::sleep(Duration::from_millis(300));
    let (sent, seen) = flow.finish();
    let lost = gaps_between(&seen[0], established, sent);
    assert!(lost.is_empty(), "the unchanged entry lost {} packets across 4 reloads", lost.len());
    println!("reload: r1 got every one of {} packets across 4 reloads", sent - established + 1);
    assert!(d.log().contains("configuration reloaded"), "{}", d.log());
}

#[test]
fn a_reload_leaves_run_time_statics_and_owned_interfaces_alone() {
    let family = Family::V4;
    let mut t = Topology::new(2).unwrap();
    t.add_addresses_for(family).unwrap();
    let s = family.source();
    let dir = TempDir::new("reload-keep");
    let config = dir.0.join("mgmd.toml");
    std::fs::write(&config, "interfaces = [\"rin\", \"r1\", \"r2\"]\n").unwrap();
    let args = vec!["--config".to_owned(), config.display().to_string()];
    t.mgmd = Some(Mgmd::start(&t.router, &args).unwrap());
    let d = t.mgmd.as_ref().unwrap();
    // An operator's run-time entry, and a routing protocol owning r1.
    let spec = format!("{s},239.1.1.9,rin,r2");
    assert_eq!(mgmctl(&d.socket, &["add-mfe", &spec]).0, Some(0));
    let mut pim = d.ctl().unwrap();
    let h = pim.register(103).unwrap();
    pim.take(h, t.router.ifindex("r1").unwrap()).unwrap();

    // The file now names only rin: r1 (owned) and r2 (used by the run-time entry) stay.
    std::fs::write(&config, "interfaces = [\"rin\"]\n").unwrap();
    let (code, out, err) = mgmctl(&d.socket, &["--json", "reload"]);
    assert_eq!(code, Some(0), "{err}");
    let r: Reloaded = serde_json::from_str(&out).unwrap();
    assert_eq!(r.interfaces_kept, ["r1", "r2"]);
    assert!(r.interfaces_removed.is_empty() && r.mfes_removed == 0, "{r:?}");
    let (names, statics) = state(d);
    assert_eq!(names, ["rin", "r1", "r2"]);
    assert_eq!(statics.len(), 1, "the run-time entry stays: {statics:?}");

    // Once nobody uses them, they are not the file's to remove any more: a later reload
    // leaves them managed (a restart would not manage them).
    pim.release(h, t.router.ifindex("r1").unwrap()).unwrap();
    let (code, out, _) = mgmctl(&d.socket, &["--json", "reload"]);
    assert_eq!(code, Some(0));
    let r: Reloaded = serde_json::from_str(&out).unwrap();
    assert_eq!(r, Reloaded::default(), "nothing changed in the file");
}

#[test]
fn mgmd_without_a_configuration_file_refuses_a_reload() {
    let mut t = Topology::new(1).unwrap();
    let d = t.start(&[]).unwrap();
    let (code, _, err) = mgmctl(&d.socket, &["reload"]);
    assert_eq!(code, Some(5), "{err}");
    assert!(err.contains("--config"), "{err}");
}

/// mgmd's resident memory in KiB (`VmRSS`).
fn rss_kib(d: &Mgmd) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Hostile configuration files: each reload is refused at once with a short reason, nothing
/// changes, mgmd does not grow and goes on serving; a FIFO given at start is refused too (it
/// blocked mgmd as long as its writer held it).
#[test]
fn hostile_configuration_files_are_refused_quickly_and_cost_nothing() {
    let mut t = Topology::new(1).unwrap();
    let dir = TempDir::new("hostile-cfg");
    let config = dir.0.join("mgmd.toml");
    std::fs::write(&config, "interfaces = [\"rin\", \"r1\"]\n").unwrap();
    let d = t.start(&["--config", config.to_str().unwrap()]).unwrap();
    let before = state(d);
    let rss = rss_kib(d);
    let reload = |d: &Mgmd| {
        let start = Instant::now();
        let (code, out, err) = mgmctl(&d.socket, &["reload"]);
        (code, format!("{out}{err}"), start.elapsed())
    };
    let write = |text: &str| std::fs::write(&config, text).unwrap();

    // 20 MB on one line with a syntax error: the reason is short, and so is the log.
    write(&format!("interfaces = [\"{}", "x".repeat(20 << 20)));
    let (code, why, _) = reload(d);
    assert_eq!(code, Some(5), "{why}");
    assert!(why.contains("larger than"), "{why}");
    // A syntax error in a long line within the bound: the position and a short quote.
    write(&format!("interfaces = [\"{}", "x".repeat(3 << 20)));
    let (code, why, _) = reload(d);
    assert_eq!(code, Some(5), "{why}");
    assert!(why.contains("line 1, column") && why.len() < 1024, "{} bytes: {why:.300}", why.len());
    // 200,000 interface names (none exists): refused in one linear pass.
    let names: Vec<String> = (0..200_000).map(|i| format!("\"n{i}\"")).collect();
    write(&format!("interfaces = [{}]\n", names.join(",")));
    let (code, why, took) = reload(d);
    assert_eq!(code, Some(4), "{why}");
    assert!(why.contains("no interface named \"n0\""), "{why}");
    assert!(took < Duration::from_secs(10), "stalled {took:?}");
    // A FIFO in the file's place: refused without waiting for a writer.
    std::fs::remove_file(&config).unwrap();
    nix::unistd::mkfifo(&config, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let (code, why, _) = reload(d);
    assert_eq!(code, Some(5), "{why}");
    assert!(why.contains("not a regular file"), "{why}");

    assert_eq!(state(d), before, "nothing changed");
    let grown = rss_kib(d).saturating_sub(rss);
    assert!(grown < 64 << 10, "mgmd grew by {grown} KiB");
    let log = d.log();
    let longest = log.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 4096, "a log line of {longest} bytes");

    // And at start: the FIFO is refused, not waited on.
    let other = mgm_tests::Netns::new("fifo").unwrap();
    let err = Mgmd::start(&other, &["--config".into(), config.to_str().unwrap().into()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a regular file"), "{err}");
}

/// `--check-config` checks what a start checks: more statics than allowed, and an interface
/// this namespace lacks, are refused (both were "OK").
#[test]
fn check_config_checks_what_a_start_checks() {
    let dir = TempDir::new("check-cfg");
    let config = dir.0.join("mgmd.toml");
    let statics: String = (1..=3)
        .map(|i| mfe(format!("10.0.0.{i}").parse().unwrap(), "239.1.1.1", "lo", &["lo"]))
        .collect();
    std::fs::write(&config, &statics).unwrap();
    let check = |extra: &[&str]| {
        let out = std::process::Command::new(mgm_tests::bin("mgmd"))
            .args(["--check-config", "--config", config.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    assert_eq!(check(&[]).0, Some(0), "{}", check(&[]).1);
    // 78 (EX_CONFIG), as a start with the same configuration exits.
    let (code, err) = check(&["--max-static-mfes", "2"]);
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("3 static MFEs, more than the 2"), "{err}");
    let (code, err) = check(&["--iface", "nosuch0"]);
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("no interface named \"nosuch0\""), "{err}");
}
