// SPDX-License-Identifier: MIT OR Apache-2.0
//! The Debian package (`cargo xtask package`): what it holds, lintian's verdict, and an
//! install into a fresh Debian 12 with systemd, where the units verify, the service is
//! enabled, and the packaged mgmd starts from its configuration and the packaged mgmctl
//! reads it. `cargo xtask test` builds the package and the fresh Debian first (MGM_DEB,
//! MGM_FRESH_DEBIAN). Needs root.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use mgm_tests::{Netns, TempDir, require_root, veth};

fn deb() -> PathBuf {
    let path = std::env::var_os("MGM_DEB").map(PathBuf::from).unwrap_or_else(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debian");
        let mut debs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "deb"))
            .collect();
        debs.sort();
        debs.pop().unwrap_or_default()
    });
    assert!(path.is_file(), "no package: build it with `cargo xtask package` (or set MGM_DEB)");
    path
}

/// Runs a command, returning its standard output; fails the test with its output when it
/// fails.
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The manual pages mgmctl's subcommands have, from its own help.
fn mgmctl_subcommands(root: &Path) -> Vec<String> {
    let help = run(Command::new(root.join("usr/bin/mgmctl")).arg("--help"));
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(String::from)
        .collect()
}

#[test]
fn the_package_holds_the_programs_units_configuration_manuals_and_completions() {
    let deb = deb();
    let field = |f: &str| run(Command::new("dpkg-deb").arg("--field").arg(&deb).arg(f));
    assert_eq!(field("Package").trim(), "mgm");
    assert_eq!(field("Architecture").trim(), "amd64");
    assert!(field("Depends").contains("libc6"), "{}", field("Depends"));
    let contents = run(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    let files: Vec<&str> = contents
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(|p| p.trim_start_matches('.'))
        .collect();
    let mut want: Vec<String> = [
        "/usr/sbin/mgmd",
        "/usr/sbin/mgm-igmpd",
        "/usr/bin/mgmctl",
        "/usr/lib/systemd/system/mgmd.service",
        "/usr/lib/systemd/system/mgm-igmpd.service",
        "/etc/mgm/mgmd.toml",
        "/etc/mgm/igmpd.toml",
        "/usr/share/man/man8/mgmd.8.gz",
        "/usr/share/man/man8/mgmctl.8.gz",
        "/usr/share/man/man8/mgm-igmpd.8.gz",
        "/usr/share/man/man5/mgmd.toml.5.gz",
        "/usr/share/man/man5/mgm-igmpd.toml.5.gz",
        "/usr/share/doc/mgm/copyright",
        "/usr/share/doc/mgm/changelog.Debian.gz",
    ]
    .map(String::from)
    .to_vec();
    for prog in ["mgmd", "mgmctl", "mgm-igmpd"] {
        want.push(format!("/usr/share/bash-completion/completions/{prog}"));
        want.push(format!("/usr/share/zsh/vendor-completions/_{prog}"));
        want.push(format!("/usr/share/fish/vendor_completions.d/{prog}.fish"));
    }
    let unpacked = TempDir::new("deb");
    let root = &unpacked.0;
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(root));
    let subs = mgmctl_subcommands(root);
    assert!(subs.len() >= 10 && subs.contains(&"reload".into()), "{subs:?}");
    for sub in &subs {
        want.push(format!("/usr/share/man/man8/mgmctl-{sub}.8.gz"));
    }
    for w in &want {
        assert!(files.contains(&w.as_str()), "{w} is not in the package:\n{contents}");
    }
    let conffiles = run(Command::new("dpkg-deb").arg("--info").arg(&deb).arg("conffiles"));
    let mut conffiles: Vec<&str> = conffiles.lines().collect();
    conffiles.sort();
    assert_eq!(conffiles, ["/etc/mgm/igmpd.toml", "/etc/mgm/mgmd.toml"]);

    // Every page renders without a warning from groff; every bash completion parses; the
    // default configurations are what the daemons accept.
    for page in files.iter().filter(|f| f.starts_with("/usr/share/man/") && f.ends_with(".gz")) {
        let out = Command::new("man")
            .args(["--warnings", "-E", "UTF-8", "-l"])
            .arg(root.join(&page[1..]))
            .env("MANWIDTH", "80")
            .stdout(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && err.trim().is_empty(), "{page}: {err}");
    }
    for prog in ["mgmd", "mgmctl", "mgm-igmpd"] {
        run(Command::new("bash")
            .arg("-n")
            .arg(root.join("usr/share/bash-completion/completions").join(prog)));
    }
    let mgmd = root.join("usr/sbin/mgmd");
    let ok = run(Command::new(&mgmd)
        .arg("--check-config")
        .arg("--config")
        .arg(root.join("etc/mgm/mgmd.toml")));
    assert!(ok.starts_with("configuration OK"), "{ok}");
    let page = run(Command::new("man")
        .arg("-l")
        .arg(root.join("usr/share/man/man8/mgmd.8.gz"))
        .env("MANWIDTH", "200"));
    for section in ["SYNOPSIS", "OPTIONS", "EXAMPLES", "SIGNALS", "CAPABILITIES", "FILES"] {
        assert!(page.lines().any(|l| l.trim() == section), "mgmd(8) has no {section}:\n{page}");
    }
    assert!(page.contains("--follow-kernel"), "options come from the command line's definition");

    let lintian = Command::new("lintian").arg(&deb).output().unwrap();
    let said = String::from_utf8_lossy(&lintian.stdout);
    let errors: Vec<&str> = said.lines().filter(|l| l.starts_with("E:")).collect();
    assert!(errors.is_empty(), "lintian: {errors:#?}");
}

/// A fresh Debian 12 unpacked for one test, removed after it: its mounts live only in its
/// commands' own mount namespaces, so only plain files are left to remove.
struct Debian {
    dir: TempDir,
}

impl Debian {
    fn new() -> Self {
        let tar = std::env::var_os("MGM_FRESH_DEBIAN")
            .map(PathBuf::from)
            .unwrap_or_else(|| "/var/cache/mgm-test/bookworm-systemd.tar".into());
        assert!(
            tar.is_file(),
            "no fresh Debian: `cargo xtask test` makes one (or set MGM_FRESH_DEBIAN)"
        );
        let dir = TempDir::new("debian");
        run(Command::new("tar").arg("-xf").arg(&tar).arg("-C").arg(&dir.0));
        Self { dir }
    }

    fn root(&self) -> &Path {
        &self.dir.0
    }

    /// `cmd` run inside it, in a mount namespace of its own with fresh /proc and /sys
    /// (gone with the process, so nothing of them outlives it or reaches the host's).
    fn command(&self, net: Option<&Netns>, cmd: &str) -> Command {
        let mut c = Command::new("nsenter");
        if let Some(ns) = net {
            c.arg(format!("--net=/run/netns/{}", ns.name));
        }
        let r = self.root().display();
        c.args(["unshare", "--mount", "--propagation", "private", "sh", "-c"]).arg(format!(
            "mount -t proc proc {r}/proc && mount -t sysfs sysfs {r}/sys && exec chroot {r} sh -c '{cmd}'"
        ));
        c
    }
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_package_installs_into_a_fresh_debian_and_runs() {
    require_root();
    let deb = deb();
    let debian = Debian::new();
    std::fs::copy(&deb, debian.root().join("tmp/mgm.deb")).unwrap();
    let install = run(&mut debian.command(None, "dpkg -i /tmp/mgm.deb"));
    assert!(install.contains("Setting up mgm"), "{install}");

    // Enabled, not started (nothing runs systemd in a chroot); the IGMP daemon waits for its
    // interfaces to be named.
    let wants = debian.root().join("etc/systemd/system/multi-user.target.wants");
    assert!(wants.join("mgmd.service").is_symlink(), "mgmd.service is enabled");
    assert!(!wants.join("mgm-igmpd.service").exists(), "mgm-igmpd.service is not enabled");
    run(&mut debian.command(
        None,
        "systemd-analyze verify /usr/lib/systemd/system/mgmd.service /usr/lib/systemd/system/mgm-igmpd.service",
    ));
    let found =
        run(&mut debian.command(None, "man -w mgmd mgmctl mgm-igmpd mgmd.toml mgmctl-reload"));
    assert_eq!(found.lines().count(), 5, "{found}");

    // The packaged mgmd, as its unit starts it (its configuration, its socket), in a
    // namespace of the test's; the packaged mgmctl reads it.
    let ns = Netns::new("deb").unwrap();
    veth(&ns, "va", &ns, "vb").unwrap();
    std::fs::write(
        debian.root().join("etc/mgm/mgmd.toml"),
        "interfaces = [\"va\", \"vb\"]\n[[mfe]]\nsource = \"10.9.0.1\"\ngroup = \"239.9.9.9\"\niif = \"va\"\noifs = [\"vb\"]\n",
    )
    .unwrap();
    let log = std::fs::File::create(debian.root().join("tmp/mgmd.log")).unwrap();
    let mgmd = debian
        .command(
            Some(&ns),
            "mkdir -p /run/mgm && exec /usr/sbin/mgmd --config /etc/mgm/mgmd.toml --socket /run/mgm/mgmd.sock --no-pin",
        )
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let _mgmd = Kill(mgmd);
    let deadline = Instant::now() + Duration::from_secs(20);
    let show = loop {
        let out = debian.command(None, "mgmctl --json show interfaces routes").output().unwrap();
        if out.status.success() {
            break String::from_utf8_lossy(&out.stdout).into_owned();
        }
        let log = std::fs::read_to_string(debian.root().join("tmp/mgmd.log")).unwrap_or_default();
        assert!(Instant::now() < deadline, "the packaged mgmd never answered:\n{log}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let v: serde_json::Value = serde_json::from_str(&show).unwrap();
    let mut names: Vec<&str> =
        v["interfaces"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["va", "vb"]);
    assert_eq!(v["mfes"][0]["group"], "239.9.9.9", "{show}");
    assert_eq!(v["mfes"][0]["origin"], "static", "{show}");
}
