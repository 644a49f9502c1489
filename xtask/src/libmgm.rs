// SPDX-License-Identifier: MIT OR Apache-2.0
//! libmgm's Debian packages, as Debian lays out a C library: `libmgm0` (the shared library
//! under its soname, with a symbols file, a shlibs file and the ldconfig trigger) and
//! `libmgm-dev` (mgm.h, the link-time `libmgm.so`, the static library, the pkg-config file,
//! libmgm(3) and the example daemon). Built with dpkg-deb from staged trees: cargo-deb packs
//! one program package and knows no symbols file.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, ensure};

use crate::{cargo, sh, step, workspace_root};

const TRIPLET: &str = "x86_64-linux-gnu";
const ARCH: &str = "amd64";
const MAINTAINER: &str = "mgm developers <mgm@example.org>";
/// Both packages' description (lines within 80 columns, as Debian wants them).
const DESCRIPTION: &str = "libmgm is the C library of mgmd, mgm's multicast forwarding daemon:\n \
    routing daemons (PIM, IGMP, static routes) install their multicast forwarding\n \
    state through RRAS's Multicast Group Manager API (mgm.h: the same names,\n \
    structures, callbacks and result codes, in Linux types), and mgmd forwards\n \
    from it with XDP.";
/// The soname's major version: a change to the ABI of mgm.h (mgm-user/capi/abi/) raises it.
const SONAME_MAJOR: u32 = 0;

/// Builds both packages into target/debian/; their paths (libmgm0's first).
pub fn packages() -> anyhow::Result<Vec<PathBuf>> {
    step("building libmgm (release)");
    cargo(&["build", "--release", "-p", "mgm-capi"])?;
    let root = workspace_root();
    let capi = root.join("mgm-user/capi");
    let version = env!("CARGO_PKG_VERSION");
    let debver = format!("{version}-1");
    let stage = root.join("target/libmgm-debs");
    let _ = std::fs::remove_dir_all(&stage);
    let out = root.join("target/debian");
    std::fs::create_dir_all(&out)?;
    let libdir = format!("usr/lib/{TRIPLET}");
    let soname = format!("libmgm.so.{SONAME_MAJOR}");
    let real = format!("libmgm.so.{version}");

    step("packing libmgm0 and libmgm-dev (dpkg-deb)");
    // libmgm0: the library under its soname.
    let lib0 = stage.join("libmgm0");
    let dir = lib0.join(&libdir);
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(root.join("target/release/libmgm.so"), dir.join(&real))?;
    sh(Command::new("strip")
        .args(["--strip-unneeded", "--remove-section=.comment"])
        .arg(dir.join(&real)))?;
    // A shared library is not a program (Debian: 0644).
    let mode = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o644);
    std::fs::set_permissions(dir.join(&real), mode)?;
    std::os::unix::fs::symlink(&real, dir.join(&soname))?;
    docs(&lib0, "libmgm0", &capi)?;
    let debian = lib0.join("DEBIAN");
    std::fs::create_dir_all(&debian)?;
    std::fs::copy(capi.join("debian/libmgm0.symbols"), debian.join("symbols"))?;
    std::fs::write(
        debian.join("shlibs"),
        format!("libmgm {SONAME_MAJOR} libmgm0 (>= {version})\n"),
    )?;
    std::fs::write(debian.join("triggers"), "activate-noawait ldconfig\n")?;
    control(
        &lib0,
        "libmgm0",
        &debver,
        "libs",
        "libc6 (>= 2.34), libgcc-s1 (>= 4.2)",
        "Multi-Arch: same\n",
        "MGM API of mgmd for C routing daemons (shared library)",
        DESCRIPTION.to_owned() + "\n .\n This package has the shared library.",
    )?;

    // libmgm-dev: what compiling and linking against it needs.
    let dev = stage.join("libmgm-dev");
    let dir = dev.join(&libdir);
    std::fs::create_dir_all(dir.join("pkgconfig"))?;
    std::os::unix::fs::symlink(&soname, dir.join("libmgm.so"))?;
    std::fs::copy(root.join("target/release/libmgm.a"), dir.join("libmgm.a"))?;
    sh(Command::new("strip")
        .args(["--strip-debug", "--enable-deterministic-archives"])
        .arg(dir.join("libmgm.a")))?;
    let pc = std::fs::read_to_string(capi.join("mgm.pc.in"))?
        .replace("@PREFIX@", "/usr")
        .replace("@LIBDIR@", &format!("${{prefix}}/lib/{TRIPLET}"))
        .replace("@VERSION@", version);
    std::fs::write(dir.join("pkgconfig/mgm.pc"), pc)?;
    let include = dev.join("usr/include");
    std::fs::create_dir_all(&include)?;
    std::fs::copy(capi.join("include/mgm.h"), include.join("mgm.h"))?;
    let man = dev.join("usr/share/man/man3");
    std::fs::create_dir_all(&man)?;
    gzip(&capi.join("man/libmgm.3"), &man.join("libmgm.3.gz"))?;
    docs(&dev, "libmgm-dev", &capi)?;
    let examples = dev.join("usr/share/doc/libmgm-dev/examples");
    std::fs::create_dir_all(&examples)?;
    std::fs::copy(capi.join("examples/mgm-static.c"), examples.join("mgm-static.c"))?;
    control(
        &dev,
        "libmgm-dev",
        &debver,
        "libdevel",
        &format!("libmgm0 (= {debver})"),
        "Multi-Arch: same\n",
        "MGM API of mgmd for C routing daemons (development files)",
        DESCRIPTION.to_owned()
            + "\n .\n This package has mgm.h, the static library, the pkg-config file (mgm),\n \
               the manual page libmgm(3) and an example daemon.",
    )?;

    let mut debs = Vec::new();
    for (name, tree) in [("libmgm0", &lib0), ("libmgm-dev", &dev)] {
        md5sums(tree)?;
        let deb = out.join(format!("{name}_{debver}_{ARCH}.deb"));
        sh(Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "--build"])
            .arg(tree)
            .arg(&deb))?;
        debs.push(deb);
    }
    Ok(debs)
}

/// copyright and changelog.Debian.gz in /usr/share/doc/NAME.
fn docs(tree: &Path, name: &str, capi: &Path) -> anyhow::Result<()> {
    let doc = tree.join("usr/share/doc").join(name);
    std::fs::create_dir_all(&doc)?;
    std::fs::copy(capi.join("debian/copyright"), doc.join("copyright"))?;
    gzip(&capi.join("debian/changelog"), &doc.join("changelog.Debian.gz"))
}

fn gzip(from: &Path, to: &Path) -> anyhow::Result<()> {
    let out = Command::new("gzip").args(["-9n", "-c"]).arg(from).output().context("gzip")?;
    ensure!(out.status.success(), "gzip {}", from.display());
    std::fs::write(to, out.stdout)?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn control(
    tree: &Path,
    name: &str,
    version: &str,
    section: &str,
    depends: &str,
    extra: &str,
    summary: &str,
    description: String,
) -> anyhow::Result<()> {
    let size = Command::new("du").args(["-sk", "--exclude=DEBIAN"]).arg(tree).output()?;
    let kib =
        String::from_utf8_lossy(&size.stdout).split_whitespace().next().unwrap_or("0").to_owned();
    let text = format!(
        "Package: {name}\nSource: mgm\nVersion: {version}\nArchitecture: {ARCH}\n\
         Maintainer: {MAINTAINER}\nInstalled-Size: {kib}\nDepends: {depends}\n{extra}\
         Section: {section}\nPriority: optional\nDescription: {summary}\n {description}\n"
    );
    std::fs::create_dir_all(tree.join("DEBIAN"))?;
    std::fs::write(tree.join("DEBIAN/control"), text)?;
    Ok(())
}

/// DEBIAN/md5sums of every regular file of the tree.
fn md5sums(tree: &Path) -> anyhow::Result<()> {
    let out = Command::new("sh")
        .arg("-c")
        .arg("find . -path ./DEBIAN -prune -o -type f -printf '%P\\0' | sort -z | xargs -0 -r md5sum")
        .current_dir(tree)
        .output()?;
    ensure!(out.status.success(), "md5sum in {}", tree.display());
    std::fs::write(tree.join("DEBIAN/md5sums"), out.stdout)?;
    Ok(())
}
