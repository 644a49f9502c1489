// SPDX-License-Identifier: MIT OR Apache-2.0
//! Builds the eBPF objects (`mgm-ebpf`) into OUT_DIR: `mgm`, which `dataplane` embeds, and
//! `mgm-bench`, which the benchmarks embed.
//!
//! These machines have no rust-src, so `-Z build-std` is impossible. The working route (see
//! docs/building.md and `cargo xtask setup`) is Debian's rustc with a prebuilt `core` for
//! bpfel-unknown-none, linked as the rustup toolchain `debian-bpf`.
use std::env;

use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

/// Crates that use unstable features (aya-ebpf's `asm_experimental_arch`). Listing crates
/// instead of `RUSTC_BOOTSTRAP=1` matters: aya-build 0.2 adds `-Z build-std=core` (which needs
/// rust-src) when the variable is `1` or equals the package name.
const BOOTSTRAP_CRATES: &str =
    "aya_ebpf,aya_ebpf_bindings,aya_ebpf_cty,aya_log_ebpf,aya_log_common,mgm_ebpf,mgm";

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

    // SAFETY: build scripts are single-threaded; the child cargo inherits this.
    unsafe { env::set_var("RUSTC_BOOTSTRAP", BOOTSTRAP_CRATES) };
    let toolchain = env::var("MGM_EBPF_TOOLCHAIN").unwrap_or_else(|_| "debian-bpf".into());
    aya_build::build_ebpf(
        [Package { name: "mgm-ebpf", root_dir: &root_dir, ..Default::default() }],
        Toolchain::Custom(&toolchain),
    )
    .with_context(|| {
        format!(
            "building the eBPF object with toolchain `{toolchain}` failed; \
             run `cargo xtask setup` (installs Debian's rustc-web, bpf-linker, links `debian-bpf`)"
        )
    })
}
