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

/// libmgm0 and libmgm-dev as Debian lays out a C library: the shared library under its
/// soname with symbols, shlibs and the ldconfig trigger; the header, the link-time .so, the
/// static library, pkg-config, libmgm(3) and the example. A program compiled with only what
/// libmgm-dev installs (pkg-config, as its manual says) links both ways: against
/// libmgm.so.0, and statically (`pkg-config --static`) needing no libmgm at run time.
#[test]
fn libmgm0_and_libmgm_dev_hold_a_c_library_a_programmer_builds_with() {
    let lib0 = mgm_tests::container::built("libmgm0");
    let dev = mgm_tests::container::built("libmgm-dev");
    let field = |deb: &Path, f: &str| run(Command::new("dpkg-deb").arg("--field").arg(deb).arg(f));
    let version = field(&lib0, "Version");
    assert_eq!(field(&dev, "Depends").trim(), format!("libmgm0 (= {})", version.trim()));
    assert!(field(&lib0, "Depends").contains("libc6"));
    let root = TempDir::new("libmgm-root");
    for deb in [&lib0, &dev] {
        run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root.0));
    }
    let control = TempDir::new("libmgm0-control");
    run(Command::new("dpkg-deb").arg("-e").arg(&lib0).arg(&control.0));
    let read =
        |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert!(read(&control.0.join("symbols")).starts_with("libmgm.so.0 libmgm0 #MINVER#"));
    assert!(read(&control.0.join("shlibs")).starts_with("libmgm 0 libmgm0"));
    assert!(read(&control.0.join("triggers")).contains("ldconfig"));
    let lib = root.0.join("usr/lib/x86_64-linux-gnu");
    assert_eq!(std::fs::read_link(lib.join("libmgm.so")).unwrap(), Path::new("libmgm.so.0"));
    let real = std::fs::read_link(lib.join("libmgm.so.0")).unwrap();
    assert!(real.to_string_lossy().starts_with("libmgm.so.0."), "{}", real.display());
    let mode = std::fs::metadata(lib.join(&real)).unwrap().permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o644);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("mgm-user/capi");
    assert_eq!(read(&root.0.join("usr/include/mgm.h")), read(&repo.join("include/mgm.h")));
    let man = root.0.join("usr/share/man/man3/libmgm.3.gz");
    let page = run(Command::new("man")
        .args(["--warnings", "-E", "UTF-8", "-l"])
        .arg(&man)
        .env("MANWIDTH", "80"));
    assert!(page.contains("MgmRegisterMProtocol") && page.contains("MGM_DISPATCH_CALLER"));
    let example = root.0.join("usr/share/doc/libmgm-dev/examples/mgm-static.c");

    // Compiled as libmgm(3) says, against the extracted files (pkg-config's sysroot).
    let pc = |args: &[&str]| -> Vec<String> {
        let out = run(Command::new("pkg-config")
            .args(args)
            .arg("mgm")
            .env("PKG_CONFIG_SYSROOT_DIR", &root.0)
            .env("PKG_CONFIG_LIBDIR", lib.join("pkgconfig")));
        out.split_whitespace().map(String::from).collect()
    };
    let exe = root.0.join("mgm-static");
    run(Command::new("cc")
        .args(["-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&exe)
        .arg(&example)
        .args(pc(&["--cflags", "--libs"])));
    let needed = run(Command::new("readelf").arg("-d").arg(&exe));
    assert!(needed.contains("Shared library: [libmgm.so.0]"), "{needed}");
    // Statically: the archive and its private libraries, as pkg-config --static lists them.
    let libs = pc(&["--static", "--libs"]);
    assert!(libs.iter().any(|l| l == "-lpthread"), "{libs:?}");
    let private: Vec<&String> =
        libs.iter().filter(|l| l.starts_with("-l") && *l != "-lmgm").collect();
    let exe = root.0.join("mgm-static-static");
    run(Command::new("cc")
        .args(["-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&exe)
        .arg(&example)
        .args(pc(&["--cflags"]))
        .arg(lib.join("libmgm.a"))
        .args(private));
    let needed = run(Command::new("readelf").arg("-d").arg(&exe));
    assert!(!needed.contains("libmgm"), "{needed}");
    // It runs, and says how to use it.
    let usage = Command::new(&exe).output().unwrap();
    assert_eq!(usage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&usage.stderr).contains("usage:"));

    for deb in [&lib0, &dev] {
        let lintian = Command::new("lintian").arg(deb).output().unwrap();
        let said = String::from_utf8_lossy(&lintian.stdout);
        let errors: Vec<&str> = said.lines().filter(|l| l.starts_with("E:")).collect();
        assert!(errors.is_empty(), "lintian {}: {errors:#?}", deb.display());
    }
}
