// SPDX-License-Identifier: MIT OR Apache-2.0
//! The Debian package (`cargo xtask package`, MGM_DEB): what it holds and lintian's verdict.
//! How it runs once installed, under systemd: installed.rs.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use mgm_tests::TempDir;

fn deb() -> PathBuf {
    mgm_tests::container::package()
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
        "/usr/lib/systemd/system/mgm-igmpd@.service",
        "/etc/mgm/mgmd.toml",
        "/etc/mgm/igmpd.toml",
        "/etc/mgm/igmpd-mld.toml",
        "/usr/share/doc/mgm/README.md",
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
    assert_eq!(conffiles, ["/etc/mgm/igmpd-mld.toml", "/etc/mgm/igmpd.toml", "/etc/mgm/mgmd.toml"]);

    // The documentation's links lead somewhere in the installed documentation.
    let doc = root.join("usr/share/doc/mgm");
    let mut pages = vec![doc.join("README.md")];
    pages.extend(std::fs::read_dir(doc.join("docs")).unwrap().flatten().map(|e| e.path()));
    let mut followed = 0;
    for page in pages.iter().filter(|p| p.extension().is_some_and(|e| e == "md")) {
        let text = std::fs::read_to_string(page).unwrap();
        let links = text
            .split("](")
            .skip(1)
            .filter_map(|l| l.split(')').next())
            .filter(|l| !l.contains("://") && !l.starts_with('#'))
            .map(|l| l.split('#').next().unwrap());
        for l in links {
            let target = page.parent().unwrap().join(l);
            assert!(
                target.exists(),
                "{} links to {l}, which the package does not have",
                page.display()
            );
            followed += 1;
        }
    }
    assert!(followed >= 5, "{followed} links followed");
    assert!(files.contains(&"/usr/share/mgm/grafana/mgm-dashboard.json"));

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
