// SPDX-License-Identifier: MIT OR Apache-2.0
//! libmgm as a C programmer has it: mgm.h, libmgm.so.0 and libmgm.a, and a pkg-config file,
//! staged once per test process from this build (the package installs the same files
//! under /usr), and C programs compiled against them with the system's `cc`.

use std::sync::OnceLock;

use super::*;

/// The staged prefix (`include/`, `lib/`, `lib/pkgconfig/mgm.pc`).
pub fn libmgm() -> anyhow::Result<&'static Path> {
    static STAGED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    STAGED
        .get_or_init(|| stage().map_err(|e| format!("{e:#}")))
        .as_deref()
        .map_err(|e| anyhow::anyhow!("{e}"))
}

fn stage() -> anyhow::Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace").to_owned();
    let built = bin("mgmd").parent().expect("target dir").to_owned();
    let so = built.join("libmgm.so");
    ensure!(
        so.is_file(),
        "{} not found: build libmgm first (`cargo build -p mgm-capi`, or use `cargo xtask test`)",
        so.display()
    );
    let prefix = std::env::temp_dir().join(unique("libmgm"));
    let lib = prefix.join("lib");
    std::fs::create_dir_all(lib.join("pkgconfig"))?;
    std::fs::create_dir_all(prefix.join("include"))?;
    std::fs::copy(root.join("mgm-user/capi/include/mgm.h"), prefix.join("include/mgm.h"))?;
    std::fs::copy(&so, lib.join("libmgm.so.0"))?;
    std::os::unix::fs::symlink("libmgm.so.0", lib.join("libmgm.so"))?;
    std::fs::copy(built.join("libmgm.a"), lib.join("libmgm.a"))?;
    let pc = std::fs::read_to_string(root.join("mgm-user/capi/mgm.pc.in"))?
        .replace("@PREFIX@", &prefix.display().to_string())
        .replace("@LIBDIR@", "${prefix}/lib")
        .replace("@VERSION@", env!("CARGO_PKG_VERSION"));
    std::fs::write(lib.join("pkgconfig/mgm.pc"), pc)?;
    Ok(prefix)
}

/// What `pkg-config` says for mgm (`--cflags --libs`, or with `--static`).
pub fn pkg_config(args: &[&str]) -> anyhow::Result<Vec<String>> {
    let out = Command::new("pkg-config")
        .args(args)
        .arg("mgm")
        .env("PKG_CONFIG_PATH", libmgm()?.join("lib/pkgconfig"))
        .output()
        .context("running pkg-config")?;
    ensure!(out.status.success(), "pkg-config: {}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8(out.stdout)?.split_whitespace().map(str::to_owned).collect())
}

/// Compiles C `sources` against libmgm with `cc -Wall -Wextra -Werror` and pkg-config's
/// flags, into `out` (found at run time through an rpath to the staged library; the
/// package's is in the linker's default path).
pub fn compile_c(sources: &[&Path], out: &Path) -> anyhow::Result<()> {
    let flags = pkg_config(&["--cflags", "--libs"])?;
    let rpath = format!("-Wl,-rpath,{}", libmgm()?.join("lib").display());
    let res = Command::new("cc")
        .args(["-Wall", "-Wextra", "-Werror", "-o"])
        .arg(out)
        .args(sources)
        .args(&flags)
        .arg(rpath)
        .output()
        .context("running cc")?;
    ensure!(res.status.success(), "cc failed:\n{}", String::from_utf8_lossy(&res.stderr));
    Ok(())
}
