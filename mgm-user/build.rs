// SPDX-License-Identifier: MIT OR Apache-2.0
//! Builds the eBPF objects (`mgm-ebpf`) into OUT_DIR: `mgm`, which `dataplane` embeds, and
//! `mgm-bench`, which the benchmarks embed.
//!
//! These machines have no rust-src, so `-Z build-std` is impossible. The working route (see
//! docs/building.md and `cargo xtask setup`) is Debian's rustc with a prebuilt `core` for
//! bpfel-unknown-none, linked as the rustup toolchain `debian-bpf`.
use std::env;

use anyhow::{Context as _, anyhow};

/// Crates that use unstable features (aya-ebpf's `asm_experimental_arch`). Listing crates
/// instead of `RUSTC_BOOTSTRAP=1` matters: that would enable them for every crate, and aya's
/// own build helpers take it as a request for `-Z build-std=core`, which needs rust-src.
const BOOTSTRAP_CRATES: &str =
    "aya_ebpf,aya_ebpf_bindings,aya_ebpf_cty,aya_log_ebpf,aya_log_common,mgm_ebpf,mgm,mgm_bench";

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=MGM_SKIP_EBPF");
    println!("cargo:rerun-if-env-changed=MGM_EBPF_TOOLCHAIN");
    let out_dir = env::var("OUT_DIR").context("OUT_DIR not set")?;

    if env::var_os("MGM_SKIP_EBPF").is_some_and(|v| v == "1") {
        // Host-only checks (clippy, doc) without bpf-linker: an empty object that fails to
        // load with a clear error at run time.
        std::fs::write(format!("{out_dir}/mgm"), b"")?;
        std::fs::write(format!("{out_dir}/mgm-bench"), b"")?;
        return Ok(());
    }

    let metadata =
        cargo_metadata::MetadataCommand::new().no_deps().exec().context("cargo metadata")?;
    let ebpf = metadata
        .packages
        .into_iter()
        .find(|p| p.name.as_str() == "mgm-ebpf")
        .ok_or_else(|| anyhow!("mgm-ebpf package not found"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("mgm-ebpf manifest has no parent"))?
        .as_str()
        .to_owned();

    // Cargo rebuilds us when the eBPF crate's library changes (a build-dependency); this
    // covers its binaries too.
    println!("cargo:rerun-if-changed={root_dir}");
    let toolchain = env::var("MGM_EBPF_TOOLCHAIN").unwrap_or_else(|_| "debian-bpf".into());
    build_ebpf(&toolchain, std::path::Path::new(&out_dir)).with_context(|| {
        format!(
            "building the eBPF object with toolchain `{toolchain}` failed; \
             run `cargo xtask setup` (installs Debian's rustc-web, bpf-linker, links `debian-bpf`)"
        )
    })
}

/// Builds mgm-ebpf's programs for bpfel-unknown-none and copies them into `out_dir`. The
/// inner cargo's progress is kept to itself (shown only if it fails); the compiler's
/// warnings are passed on as warnings.
fn build_ebpf(toolchain: &str, out_dir: &std::path::Path) -> anyhow::Result<()> {
    use std::process::Command;
    let target_dir = out_dir.join("ebpf-target");
    let arch = env::var("CARGO_CFG_TARGET_ARCH").context("CARGO_CFG_TARGET_ARCH not set")?;
    // What aya's programs expect: the target architecture (for its helpers' register
    // access), BTF for the maps (debuginfo, and the linker told to emit it).
    let rustflags = [
        format!("--cfg=bpf_target_arch=\"{arch}\""),
        "-Cdebuginfo=2".into(),
        "-Clink-arg=--btf".into(),
    ]
    .join("\x1f");
    let out = Command::new("rustup")
        .args(["run", toolchain, "cargo", "build", "--package", "mgm-ebpf", "--bins", "--release"])
        .args(["--target", "bpfel-unknown-none", "--message-format=json-render-diagnostics"])
        .arg("--target-dir")
        .arg(&target_dir)
        .env("RUSTC_BOOTSTRAP", BOOTSTRAP_CRATES)
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags)
        // The outer build's compiler is not the one for this target.
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .output()
        .context("running rustup")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        anyhow::bail!("cargo build of mgm-ebpf failed ({}):\n{stderr}", out.status);
    }
    let mut copied = 0;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        match msg["reason"].as_str() {
            Some("compiler-artifact") => {
                if let (Some(exe), Some(name)) =
                    (msg["executable"].as_str(), msg["target"]["name"].as_str())
                {
                    std::fs::copy(exe, out_dir.join(name))
                        .with_context(|| format!("copying {exe}"))?;
                    copied += 1;
                }
            }
            Some("compiler-message") => {
                for l in msg["message"]["rendered"].as_str().unwrap_or("").lines() {
                    println!("cargo:warning={l}");
                }
            }
            _ => {}
        }
    }
    anyhow::ensure!(copied > 0, "cargo built no eBPF program:\n{stderr}");
    Ok(())
}
