// SPDX-License-Identifier: MIT OR Apache-2.0
//! Developer tasks. `cargo xtask setup` installs the eBPF toolchain on a fresh machine (and is a
//! no-op in about a second when everything is there); every other task runs it first.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
use clap::{Parser, Subcommand};

mod guest;
mod libmgm;
mod matrix;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building and testing need: Debian's rustc with a prebuilt BPF core,
    /// bpf-linker, the `debian-bpf` rustup toolchain, bpffs. Idempotent.
    Setup,
    /// Build mgmd and mgmctl (release), eBPF object included.
    Build,
    /// rustfmt and clippy (host crates, and the eBPF crate for its own target).
    Lint,
    /// The whole suite: setup, lint, unit tests, namespace tests with real packets, each on
    /// a kernel that has what it needs (this machine's, or a QEMU guest booting a Debian
    /// kernel); prints the kernel matrix. Needs root.
    Test {
        /// Only the tests whose names contain this (no lint, no package built), on the
        /// kernels they need.
        filter: Option<String>,
    },
    /// Boot a QEMU guest on a Debian suite's kernel (bookworm, bookworm-backports,
    /// trixie-backports) with this machine's root filesystem, run a shell command in it as
    /// root, print what it printed. For looking at how a kernel takes mgm.
    Guest {
        /// The suite whose `linux-image-amd64` to boot.
        suite: String,
        /// The command (bash), run from the workspace.
        command: String,
    },
    /// Build the Debian package (cargo-deb): mgmd, mgmctl, mgm-igmpd, systemd units, the
    /// default configuration, manual pages and completions, into target/debian/.
    Package,
    /// Build, create a namespace topology, forward multicast through mgmd, print what arrived.
    Demo,
    /// Benchmarks (not run by CI). Results go to bench-results/.
    Bench {
        /// Fewer repetitions, for iteration.
        #[arg(long)]
        quick: bool,
    },
    /// Coverage-guided fuzzing (libFuzzer, AddressSanitizer) of the control socket's decoder
    /// and of the dispatcher against a live core. Not run by CI; the test suite runs the same
    /// bodies on the seed corpus and on random input.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 300)]
        secs: u64,
    },
    /// The load test at full scale (release build): 100 clients churning memberships, 1M
    /// MFEs, traffic and take/release cycles for a minute. The suite runs it small.
    Load {
        #[arg(long, default_value_t = 100)]
        clients: u64,
        #[arg(long, default_value_t = 1_000_000)]
        mfes: u64,
        #[arg(long, default_value_t = 60)]
        secs: u64,
    },
}

const CARGO_FUZZ_VERSION: &str = "0.13.2";
const FUZZ_TARGETS: [&str; 2] = ["decode", "dispatch"];

/// Debian packages: the toolchain (see docs/building.md) and the test tools.
const APT_PACKAGES: &[&str] = &[
    "rustc-web",
    "cargo-web",
    "libstd-rust-web-dev-bpf",
    "llvm-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    "rust-web-clippy",
    "iproute2",
    "ethtool",
];
const BPF_LINKER_VERSION: &str = "0.13.0";
const CARGO_DEB_VERSION: &str = "3.8.0";
/// What the package test needs: lintian, and a fresh Debian to install the package into.
const PACKAGE_TEST_PACKAGES: &[&str] =
    &["lintian", "debootstrap", "man-db", "systemd-container", "prometheus"];
/// What libmgm's C tests compile and check with: the system's compiler, pkg-config,
/// valgrind, binutils (nm, readelf).
const C_TEST_PACKAGES: &[&str] = &["gcc", "libc6-dev", "pkgconf", "valgrind", "binutils"];
/// The rustup name under which Debian's compiler (/usr) is linked; mgm-user/build.rs uses it.
const TOOLCHAIN: &str = "debian-bpf";
/// Crates allowed unstable features when building or linting the eBPF crate (see build.rs).
const BOOTSTRAP_CRATES: &str =
    "aya_ebpf,aya_ebpf_bindings,aya_ebpf_cty,aya_log_ebpf,aya_log_common,mgm_ebpf,mgm,mgm_bench";

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let root = workspace_root();
    std::env::set_current_dir(&root)?;
    match args.task {
        Task::Setup => setup(),
        Task::Build => {
            setup()?;
            cargo(&["build", "--release", "--bins"])
        }
        Task::Lint => {
            setup()?;
            lint()
        }
        Task::Test { filter } => {
            setup()?;
            sweep_stale_namespaces();
            if filter.is_none() {
                lint()?;
            }
            test(filter.as_deref())
        }
        Task::Guest { suite, command } => {
            let suite =
                guest::SUITES.iter().find(|s| s.name == suite).copied().with_context(|| {
                    let names: Vec<&str> = guest::SUITES.iter().map(|s| s.name).collect();
                    format!("no suite {suite:?} (known: {})", names.join(", "))
                })?;
            let kernel = guest::kernel(suite)?;
            // A one-off command cannot go on from a kernel that died of emulation.
            let accel = guest::accel(&kernel).without_stale_code();
            let script = format!("cd {}\n{command}", guest::shell_quote(&root.to_string_lossy()));
            let run = guest::run(&kernel, accel, &script, "command", Duration::from_secs(3600))?;
            ensure!(run.exit == Some(0), "the command exited with {:?}", run.exit);
            Ok(())
        }
        Task::Package => {
            setup()?;
            let deb = package()?;
            println!("{}", deb.display());
            for deb in libmgm::packages()? {
                println!("{}", deb.display());
            }
            Ok(())
        }
        Task::Fuzz { secs } => fuzz(secs),
        Task::Load { clients, mfes, secs } => {
            setup()?;
            sweep_stale_namespaces();
            cargo(&["build", "--release", "--bins"])?;
            sh(Command::new(env!("CARGO"))
                .args(["test", "--release", "-p", "mgm-tests", "--test", "load", "--"])
                .arg("--nocapture")
                .env("MGM_BIN_DIR", root.join("target/release"))
                .env("MGM_LOAD_CLIENTS", clients.to_string())
                .env("MGM_LOAD_MFES", mfes.to_string())
                .env("MGM_LOAD_SECS", secs.to_string()))
        }
        Task::Bench { quick } => {
            setup()?;
            sweep_stale_namespaces();
            bench(quick)
        }
        Task::Demo => {
            setup()?;
            sweep_stale_namespaces();
            cargo(&["build", "--release", "--bins"])?;
            cargo(&["build", "--release", "-p", "mgm-user", "--example", "demo"])?;
            sh(Command::new(root.join("target/release/examples/demo"))
                .arg(root.join("target/release")))
        }
    }
}

pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").into()
}

pub(crate) fn step(what: &str) {
    println!("==> {what}");
}

/// Runs a command, failing with the command line when it fails.
pub(crate) fn sh(cmd: &mut Command) -> anyhow::Result<()> {
    let desc = format!("{cmd:?}");
    let status = cmd.status().with_context(|| format!("spawning {desc}"))?;
    ensure!(status.success(), "{desc} failed ({status})");
    Ok(())
}

fn cargo(args: &[&str]) -> anyhow::Result<()> {
    sh(Command::new(env!("CARGO")).args(args))
}

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The real routing daemons the follow-kernel tests drive mgm with (their services are not
/// started; the tests run their own instances in namespaces).
const PEERS: &[&str] = &["smcroute", "igmpproxy", "frr"];

fn setup() -> anyhow::Result<()> {
    let started = Instant::now();
    let is_root = nix_is_root();

    // 1. Debian packages, and the routing daemons the tests run mgm under.
    apt_install(APT_PACKAGES, is_root)?;
    apt_install(PEERS, is_root)?;
    ensure!(
        Path::new("/usr/lib/rustlib/bpfel-unknown-none").is_dir(),
        "/usr/lib/rustlib/bpfel-unknown-none is missing although libstd-rust-web-dev-bpf is \
         installed: reinstall it (apt-get install --reinstall libstd-rust-web-dev-bpf)"
    );

    // 2. Debian's compiler as a rustup toolchain (offline, instant).
    let toolchains = output("rustup", &["toolchain", "list"]).context("rustup not found")?;
    if !toolchains.lines().any(|l| l.split_whitespace().next() == Some(TOOLCHAIN)) {
        step(&format!("linking Debian's rustc as rustup toolchain `{TOOLCHAIN}`"));
        sh(Command::new("rustup").args(["toolchain", "link", TOOLCHAIN, "/usr"]))?;
    }

    // 3. bpf-linker, built against Debian's LLVM 22.
    let have_linker = output("bpf-linker", &["--version"])
        .is_some_and(|v| v.split_whitespace().any(|w| w == BPF_LINKER_VERSION));
    if !have_linker {
        step(&format!("building bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (about a minute)"));
        // Without LLVM_PREFIX its build script looks in /usr/lib64 and fails with
        // "unable to find library -lLLVM".
        sh(Command::new(env!("CARGO"))
            .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION, "--locked"])
            .args(["--no-default-features", "--features", "llvm-22"])
            .env("LLVM_PREFIX", "/usr/lib/llvm-22"))
        .context("cargo install bpf-linker failed (needs llvm-22-dev, libzstd-dev, zlib1g-dev)")?;
        ensure!(
            output("bpf-linker", &["--version"]).is_some(),
            "bpf-linker was installed but is not on PATH: add ~/.cargo/bin to PATH"
        );
    }

    // 4. bpffs, for pinned maps (mounted once; not mounted at boot on these machines).
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    if !mounts.lines().any(|l| l.split_whitespace().nth(1) == Some("/sys/fs/bpf")) {
        if is_root {
            step("mounting bpffs on /sys/fs/bpf");
            sh(Command::new("mount").args(["-t", "bpf", "bpf", "/sys/fs/bpf"]))?;
        } else {
            println!("note: bpffs is not mounted (needs root: mount -t bpf bpf /sys/fs/bpf)");
        }
    }
    println!("setup: toolchain ready ({:.1} s)", started.elapsed().as_secs_f64());
    Ok(())
}

fn nix_is_root() -> bool {
    output("id", &["-u"]).is_some_and(|s| s.trim() == "0")
}

fn lint() -> anyhow::Result<()> {
    step("cargo fmt --check");
    cargo(&["fmt", "--all", "--check"]).context("run `cargo fmt --all`")?;
    step("clippy (host crates)");
    cargo(&[
        "clippy",
        "--workspace",
        "--exclude",
        "mgm-ebpf",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    step("clippy (eBPF crate, bpfel-unknown-none)");
    sh(Command::new("rustup")
        .args(["run", TOOLCHAIN, "cargo", "clippy", "-p", "mgm-ebpf", "--bins", "--release"])
        .args(["--target", "bpfel-unknown-none", "--target-dir", "target/ebpf-clippy"])
        .args(["--", "-D", "warnings"])
        .env("RUSTC_BOOTSTRAP", BOOTSTRAP_CRATES)
        .env("CARGO_ENCODED_RUSTFLAGS", "--cfg=bpf_target_arch=\"x86_64\"")
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER"))
}

/// Test and benchmark namespaces are named `mgm<pid>-<n>-<tag>` and removed by their owner;
/// a process that was killed (SIGKILL, CI timeout) cannot. Remove those whose pid is gone.
/// Removes what killed test processes left: namespaces and bpffs pin directories named
/// `mgm<pid>-...` whose process is gone.
fn sweep_stale_namespaces() {
    let dead = |name: &str| {
        name.strip_prefix("mgm")
            .and_then(|r| r.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
    };
    if let Some(list) = output("ip", &["netns", "list"]) {
        for name in list.lines().filter_map(|l| l.split_whitespace().next()).filter(|n| dead(n)) {
            println!("removing stale namespace {name} (its test process is gone)");
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
    for entry in std::fs::read_dir("/sys/fs/bpf").into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if dead(&name) {
            println!("removing stale pins /sys/fs/bpf/{name} (its test process is gone)");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn bench(quick: bool) -> anyhow::Result<()> {
    if !nix_is_root() {
        bail!("benchmarks load XDP programs and create namespaces: run as root");
    }
    let started = Instant::now();
    std::fs::create_dir_all("bench-results")?;
    step("building the benchmark (release)");
    cargo(&["build", "--release", "-p", "mgm-user", "--example", "prog_bench"])?;
    step("per-packet cost of the XDP program, path by path (BPF_PROG_TEST_RUN)");
    let repeat = if quick { "200000" } else { "1000000" };
    let commit = output("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_default();
    let json = "bench-results/prog_test_run.json";
    sh(Command::new("target/release/examples/prog_bench").args([
        "--repeat",
        repeat,
        "--json",
        json,
        "--commit",
        commit.trim(),
    ]))?;
    step(
        "forwarding rate: mgm (static; following smcroute; mgm-igmpd at fan-out 4) vs the kernel's ipmr (smcroute; igmpproxy), IPv6 mgm vs ip6mr (smcroute), vs two XDP ceilings, BPF ns",
    );
    // The peers (ipmr's user-space halves) and the chart's font.
    apt_install(&["smcroute", "igmpproxy", "fonts-dejavu-core"], true)?;
    cargo(&["build", "--release", "--bins"])?;
    let host = matrix::Features::of_host(&workspace_root().join("target/release/mgmd"))?;
    println!("this machine: {}", host.line);
    let json = ["--json", "bench-results/forwarding.json"];
    bench_example(
        "fwd_bench",
        &[&json[..], &["--png", "bench-results/forwarding.png", "--place", "this machine"]]
            .concat(),
        &commit,
        quick,
    )?;
    step("control plane: installs and memberships per second, memory, release cost");
    bench_example("ctl_bench", &["--json", "bench-results/control_plane.json"], &commit, quick)?;
    step(
        "forwarding at scale: fan-out to 128 (mgm, XDP and TC ceilings), 1 to 100k flows, 1k to 1M MFEs, frame sizes, 1 and 2 cores, tables of up to 100k installed",
    );
    let scale = ["--out", "bench-results", "--place", "this machine"];
    bench_example("scale_bench", &scale, &commit, quick)?;
    // What needs the kernel's multicast routing, here or in a guest that has it.
    let kernel_benches = [
        ("fwd_bench", "forwarding.json", "the contenders on ipmr and ip6mr, with mgm beside them"),
        (
            "follow_bench",
            "follow_kernel.json",
            "a routing daemon's MRT_ADD_MFC / MRT_DEL_MFC to the fast path",
        ),
        (
            "igmp_bench",
            "igmp.json",
            "join-to-first-copy and leave-to-last-copy, mgm-igmpd vs igmpproxy",
        ),
    ];
    if host.has(matrix::Need::Ipmr) {
        for (name, json, what) in &kernel_benches[1..] {
            step(what);
            bench_example(name, &["--json", &format!("bench-results/{json}")], &commit, quick)?;
        }
    } else {
        for (name, _, _) in &kernel_benches {
            cargo(&["build", "--release", "-p", "mgm-user", "--example", name])?;
        }
        let kernel = guest::kernel(matrix::OVERFLOW)?;
        // Every point attaches other XDP programs: under multi-threaded TCG the guest's
        // kernel died within a minute of the fan-out curve (its patched XDP dispatcher run
        // stale), and a benchmark cannot go on from a dead kernel as the matrix's steps do.
        let accel = guest::accel(&kernel).without_stale_code();
        let place =
            format!("QEMU guest, {} {} ({})", kernel.suite.name, kernel.version, accel.describe());
        step(&format!(
            "this kernel has no multicast routing: the benchmarks that need it run in a {place}"
        ));
        let root = workspace_root();
        let q = guest::shell_quote;
        let mut script = format!("cd {}\nstatus=0\n", q(&root.to_string_lossy()));
        for (name, json, what) in &kernel_benches {
            script.push_str(&format!(
                "echo {}\nMGM_BIN_DIR={} target/release/examples/{name} --json \
                 /run/mgm-guest/{json} --place {} --commit {} {} || status=1\n",
                q(&format!("==> {what}")),
                q(&root.join("target/release").to_string_lossy()),
                q(&place),
                q(commit.trim()),
                if quick { "--quick" } else { "" },
            ));
        }
        // ipmr's and ip6mr's fan-out beside mgm's and the ceilings', up to their 31
        // outgoing interfaces (one pass per point: emulated, a pass takes several times as
        // long), and ipmr's MRT_ADD_MFC installs beside mgm's.
        cargo(&["build", "--release", "-p", "mgm-user", "--example", "scale_bench"])?;
        script.push_str(&format!(
            "echo '==> fan-out and installs: ipmr and ip6mr beside mgm'\nMGM_BIN_DIR={} \
             target/release/examples/scale_bench --curve fanout,installs --runs 1 \
             --out /run/mgm-guest \
             --place {} --commit {} {} || status=1\n",
            q(&root.join("target/release").to_string_lossy()),
            q(&place),
            q(commit.trim()),
            if quick { "--quick" } else { "" },
        ));
        script.push_str("exit $status");
        let run = guest::run(&kernel, accel, &script, "bench", Duration::from_secs(90 * 60))?;
        let into = Path::new("bench-results/guest").join(&kernel.release);
        std::fs::create_dir_all(&into)?;
        let scale =
            ["scale_fanout.json", "scale_fanout.png", "scale_installs.json", "scale_installs.png"];
        for name in kernel_benches.iter().map(|(_, json, _)| *json).chain(scale) {
            let _ = std::fs::copy(run.dir.join(name), into.join(name));
        }
        ensure!(run.exit == Some(0), "a benchmark failed in the guest (exit {:?})", run.exit);
        println!(
            "the guest's results (emulated: compare ratios within them only): {}",
            into.display()
        );
    }
    println!(
        "results in bench-results/: prog_test_run.json, forwarding.json, forwarding.png, \
         control_plane.json, scale_{{fanout,flows,table,sizes,cores,installs}}.{{json,png}}, and \
         follow_kernel.json and igmp.json here or under guest/ ({:.0} s)",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Builds and runs one benchmark example (release), with the release binaries for mgmd.
fn bench_example(name: &str, args: &[&str], commit: &str, quick: bool) -> anyhow::Result<()> {
    cargo(&["build", "--release", "-p", "mgm-user", "--example", name])?;
    let mut cmd = Command::new(format!("target/release/examples/{name}"));
    cmd.env("MGM_BIN_DIR", workspace_root().join("target/release"))
        .args(args)
        .args(["--commit", commit.trim()]);
    if quick {
        cmd.arg("--quick");
    }
    sh(&mut cmd)
}

/// Runs each fuzz target for `secs`, with a working corpus in mgm-user/fuzz/corpus (kept
/// between runs, not committed) seeded from mgm-user/fuzz/seeds (committed).
fn fuzz(secs: u64) -> anyhow::Result<()> {
    cargo_subcommand("fuzz", CARGO_FUZZ_VERSION)?;
    let dir = workspace_root().join("mgm-user");
    let mut summary = Vec::new();
    for target in FUZZ_TARGETS {
        step(&format!("fuzzing {target} for {secs} s"));
        let corpus = format!("fuzz/corpus/{target}");
        std::fs::create_dir_all(dir.join(&corpus))?;
        let started = Instant::now();
        // cargo-fuzz passes -Z flags (sanitizer): RUSTC_BOOTSTRAP lets the stable compiler take
        // them. The fuzz build does not load BPF: the eBPF object is left out.
        let out = Command::new(env!("CARGO"))
            .current_dir(&dir)
            .env("RUSTC_BOOTSTRAP", "1")
            .env("MGM_SKIP_EBPF", "1")
            .args(["fuzz", "run", target, &corpus, "fuzz/seeds", "--"])
            .arg(format!("-max_total_time={secs}"))
            .args([
                "-rss_limit_mb=2048",
                "-malloc_limit_mb=512",
                "-timeout=10",
                "-print_final_stats=1",
            ])
            .stderr(Stdio::piped())
            .output()
            .context("running cargo fuzz")?;
        let log = String::from_utf8_lossy(&out.stderr);
        let runs = log.lines().find_map(|l| l.strip_prefix("stat::number_of_executed_units:"));
        let runs = runs.map_or("?".into(), |r| r.trim().to_owned());
        if !out.status.success() {
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
            bail!("fuzz target {target} failed: see the artifact under mgm-user/fuzz/artifacts");
        }
        let line = format!(
            "{target}: {runs} executions in {:.0} s, no crash, hang or oversized allocation",
            started.elapsed().as_secs_f64()
        );
        println!("{line}");
        summary.push(line);
    }
    println!("{}", summary.join("\n"));
    Ok(())
}

/// Installs the Debian packages of `pkgs` that are missing (a no-op when none is).
pub(crate) fn apt_install(pkgs: &[&str], is_root: bool) -> anyhow::Result<()> {
    let missing: Vec<&str> = pkgs
        .iter()
        .copied()
        .filter(|p| {
            !output("dpkg-query", &["-W", "-f=${Status}", p])
                .is_some_and(|s| s.contains("install ok installed"))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    step(&format!("installing Debian packages: {}", missing.join(" ")));
    ensure!(is_root, "installing {} needs root (apt-get)", missing.join(" "));
    apt_get(&["update", "-qq"])
        .context("apt-get update failed: is the Debian mirror reachable?")?;
    // The routing daemons' packages start their services on install; the tests run their own
    // instances in namespaces, so none may start here (policy-rc.d says no, if the machine
    // has no policy of its own).
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let own_policy = !policy.exists();
    if own_policy {
        std::fs::write(policy, "#!/bin/sh\nexit 101\n")?;
        std::fs::set_permissions(policy, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    }
    let args = [&["install", "-y", "-qq", "--no-install-recommends"], &missing[..]].concat();
    let r = apt_get(&args).with_context(|| format!("apt-get install {} failed", missing.join(" ")));
    if own_policy {
        let _ = std::fs::remove_file(policy);
    }
    r
}

/// How long apt may wait for another apt or dpkg (unattended upgrades, a second run) to let
/// go of its locks.
const APT_LOCK_WAIT: Duration = Duration::from_secs(600);

/// Runs apt-get, waiting for the dpkg and package-list locks instead of failing on them:
/// dpkg's own wait (`DPkg::Lock::Timeout`) for the frontend lock, and retries for the rest.
fn apt_get(args: &[&str]) -> anyhow::Result<()> {
    let deadline = Instant::now() + APT_LOCK_WAIT;
    loop {
        let out = Command::new("apt-get")
            .arg("-o")
            .arg(format!("DPkg::Lock::Timeout={}", APT_LOCK_WAIT.as_secs()))
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::inherit())
            .output()
            .context("running apt-get")?;
        if out.status.success() {
            return Ok(());
        }
        let err = String::from_utf8_lossy(&out.stderr);
        let locked = err.contains("Could not get lock") || err.contains("Unable to lock");
        if !locked || Instant::now() > deadline {
            bail!("apt-get {} ({}): {}", args.join(" "), out.status, err.trim());
        }
        println!("apt is busy elsewhere (a lock is held); waiting");
        std::thread::sleep(Duration::from_secs(5));
    }
}

/// Installs `cargo NAME` (the crate cargo-NAME) at `version`, unless that version is there.
fn cargo_subcommand(name: &str, version: &str) -> anyhow::Result<()> {
    if output("cargo", &[name, "--version"]).is_none_or(|v| !v.contains(version)) {
        let krate = format!("cargo-{name}");
        step(&format!("installing {krate} {version}"));
        cargo(&["install", &krate, "--locked", "--version", version])?;
    }
    Ok(())
}

/// Builds the release binaries, asks them for their manual pages and completions, and packs
/// it all with cargo-deb; returns the package's path.
fn package() -> anyhow::Result<PathBuf> {
    cargo_subcommand("deb", CARGO_DEB_VERSION)?;
    step("building the release binaries");
    cargo(&["build", "--release", "-p", "mgm-user", "-p", "mgm-igmpd", "--bins"])?;
    step("rendering manual pages and completions from the programs' command lines");
    let assets = Path::new("target/package-assets");
    let _ = std::fs::remove_dir_all(assets);
    for bin in ["mgmd", "mgmctl", "mgm-igmpd"] {
        sh(Command::new(Path::new("target/release").join(bin)).arg("--generate").arg(assets))?;
    }
    let unit = std::fs::read_to_string("mgm-user/debian/mgm-igmpd.service")?;
    std::fs::write(assets.join("mgm-igmpd@.service"), igmpd_template(&unit)?)?;
    step("packing (cargo deb)");
    let out = Command::new(env!("CARGO"))
        .args(["deb", "-p", "mgm-user", "--no-build", "--output", "target/debian/"])
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo deb")?;
    ensure!(out.status.success(), "cargo deb failed ({})", out.status);
    // It prints the package's path last.
    let path = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_owned();
    let deb = workspace_root().join(path.trim());
    ensure!(deb.is_file(), "cargo deb did not say where the package is (said {path:?})");
    Ok(deb)
}

/// `mgm-igmpd@NAME.service`, from mgm-igmpd.service (one sandbox, written once): the same
/// daemon with its own file, /etc/mgm/igmpd-NAME.toml; `mgm-igmpd@mld` runs MLD beside IGMP.
fn igmpd_template(unit: &str) -> anyhow::Result<String> {
    let mut out = String::from(
        "# mgm-igmpd@NAME: a further mgm-igmpd with its own file, /etc/mgm/igmpd-NAME.toml.\n\
         # MLD beside IGMP: name the interfaces in /etc/mgm/igmpd-mld.toml (mld = true), then\n\
         # `systemctl enable --now mgm-igmpd@mld`. Made from mgm-igmpd.service when packed.\n",
    );
    let mut replaced = 0;
    for line in unit.lines().skip_while(|l| l.starts_with('#')) {
        let line = if line.starts_with("Description=") {
            replaced += 1;
            "Description=mgm IGMP/MLD querier and proxy %i (a client of mgmd)".to_owned()
        } else if line.starts_with("ExecStart=") {
            replaced += 1;
            "ExecStart=/usr/sbin/mgm-igmpd --config /etc/mgm/igmpd-%i.toml".to_owned()
        } else {
            line.to_owned()
        };
        out.push_str(&line);
        out.push('\n');
    }
    ensure!(replaced == 2, "mgm-igmpd.service has no Description= or ExecStart= to template");
    Ok(out)
}

/// What the fresh Debian has besides debootstrap's minimal base: systemd and what a router
/// booting it has (dbus for systemctl, iproute2 for its links), and man-db for the manuals.
const FRESH_DEBIAN_PACKAGES: &[&str] = &["systemd", "dbus", "iproute2", "man-db", "procps"];

/// A fresh Debian 12 (debootstrap's minimal base with [`FRESH_DEBIAN_PACKAGES`]), packed
/// once into a cache that the package tests unpack (and boot) for each run; made again only
/// when missing. Its name says what it holds, so a changed list makes a new one.
fn fresh_debian() -> anyhow::Result<PathBuf> {
    let include = FRESH_DEBIAN_PACKAGES.join(",");
    let tar = PathBuf::from(format!(
        "/var/cache/mgm-test/bookworm-{}.tar",
        FRESH_DEBIAN_PACKAGES.join("+")
    ));
    if tar.is_file() {
        return Ok(tar);
    }
    std::fs::create_dir_all(tar.parent().expect("a directory"))?;
    apt_install(&["debootstrap"], true)?;
    let mirror = guest::debian_mirror()?;
    step("making a fresh Debian 12 for the package tests (debootstrap, once)");
    let dir = tar.with_extension("d");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    sh(Command::new("debootstrap")
        .args(["--variant=minbase", &format!("--include={include}"), "bookworm"])
        .arg(&dir)
        .arg(&mirror))?;
    let partial = tar.with_extension("partial");
    sh(Command::new("tar").arg("-cf").arg(&partial).arg("-C").arg(&dir).arg("."))?;
    std::fs::rename(&partial, &tar)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(tar)
}

fn test(filter: Option<&str>) -> anyhow::Result<()> {
    if !nix_is_root() {
        bail!("the namespace tests need root (network namespaces, XDP): run as root");
    }
    // The real routing daemons the follow-kernel tests run (quick when installed).
    apt_install(PEERS, true)?;
    apt_install(PACKAGE_TEST_PACKAGES, true)?;
    apt_install(C_TEST_PACKAGES, true)?;
    apt_install(guest::PACKAGES, true)?;
    step("building mgmd, mgmctl and libmgm");
    cargo(&["build", "--bins"])?;
    // libmgm.so and libmgm.a, which `cargo build --bins` leaves out (the C tests link them).
    cargo(&["build", "-p", "mgm-capi"])?;
    let root = workspace_root();
    let host = matrix::Features::of_host(&root.join("target/debug/mgmd"))?;
    println!("this machine: {}", host.line);
    step("building the tests");
    let mut bins = matrix::test_binaries(env!("CARGO"))?;
    if let Some(f) = filter {
        bins.iter_mut().for_each(|b| b.tests.retain(|t| t.contains(f)));
    }
    // The package and the fresh Debian its tests install it into, when one of them runs.
    let mut env = Vec::new();
    let packaged = |b: &&matrix::TestBin| {
        let name = b.exe.file_name().unwrap_or_default().to_string_lossy();
        ["package-", "installed-"].iter().any(|p| name.starts_with(p)) && !b.tests.is_empty()
    };
    if bins.iter().any(|b| packaged(&b)) {
        env.push(("MGM_DEB".to_owned(), package()?.display().to_string()));
        libmgm::packages()?;
        env.push(("MGM_FRESH_DEBIAN".to_owned(), fresh_debian()?.display().to_string()));
    }
    let (moved, why) = matrix::for_guests(&bins, &host)?;

    step("unit and namespace tests on this machine's kernel");
    let started = Instant::now();
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["test", "--workspace", "--exclude", "mgm-ebpf", "--"])
        .args(filter)
        .args(matrix::host_skips(&host))
        .envs(env.iter().cloned());
    let (status, log) = matrix::run_echoed(&mut cmd)?;
    let mut here = matrix::Column {
        place: matrix::HOST.into(),
        features: host,
        elsewhere: why,
        elapsed: started.elapsed(),
        ..Default::default()
    };
    matrix::parse_results(&log, &mut here);
    // cargo's own per-target totals: the closing line must agree with them.
    let (mut passed, mut failed) = (0u64, 0u64);
    for (p, f) in log.lines().filter_map(parse_test_result) {
        passed += p;
        failed += f;
    }
    if !status.success() && failed == 0 {
        here.broken =
            Some(format!("cargo test exited with {status} (a build or a harness failed)"));
    }
    let mut columns = vec![here];

    if !moved.is_empty() {
        let n: usize = moved.iter().map(|b| b.tests.len()).sum();
        for suite in matrix::GUESTS {
            step(&format!(
                "{n} tests in a QEMU guest booting {} ({})'s kernel: those this kernel cannot \
                 run, and those every kernel runs",
                suite.name, suite.label
            ));
            let col = matrix::run_in_guest(suite, &moved, &env);
            passed += col.passed.len() as u64;
            failed += col.failed.len() as u64;
            columns.push(col);
        }
    }

    let report = matrix::render(&columns);
    println!("{report}");
    std::fs::write(root.join("target/kernel-matrix.txt"), &report)?;
    println!("tests took {:.1} s", started.elapsed().as_secs_f64());
    println!("{passed} passed, {failed} failed");
    ensure!(
        columns.iter().all(|c| c.broken.is_none()),
        "a kernel of the matrix did not run its tests"
    );
    ensure!(failed == 0, "{failed} tests failed");
    ensure!(passed > 0, "cargo test ran no test");
    Ok(())
}

/// Reads `test result: ok. 9 passed; 0 failed; ...` into (9, 0).
fn parse_test_result(line: &str) -> Option<(u64, u64)> {
    let rest = line.strip_prefix("test result: ")?;
    let count = |word: &str| -> Option<u64> {
        rest.split(';').find_map(|part| {
            let mut it = part.split_whitespace().rev();
            (it.next()? == word).then_some(())?;
            it.next()?.parse().ok()
        })
    };
    Some((count("passed")?, count("failed")?))
}

#[cfg(test)]
mod tests {
    use super::parse_test_result;

    /// What a routing daemon's author pulls in with `mgm-client`, as `cargo tree -p
    /// mgm-client` shows it: the protocol and a socket, none of mgmd's BPF, HTTP, netlink or
    /// command-line crates, and no build script of mgm's (the eBPF object's).
    #[test]
    fn the_client_crate_pulls_in_no_daemon() {
        let cargo = |args: &[&str]| {
            let out = std::process::Command::new(env!("CARGO"))
                .args(args)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .output()
                .expect("running cargo");
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap()
        };
        let tree = cargo(&["tree", "-p", "mgm-client", "-e", "normal", "--prefix", "none"]);
        let mut names: Vec<&str> = tree.lines().filter_map(|l| l.split(' ').next()).collect();
        names.sort();
        names.dedup();
        for banned in ["aya", "hyper", "netlink", "clap", "prometheus", "mgm-user", "mgm-ebpf"] {
            assert!(!names.iter().any(|n| n.starts_with(banned)), "{banned} in {names:?}");
        }
        assert!(names.contains(&"mgm-proto") && names.len() < 40, "{names:?}");
        let meta = cargo(&["metadata", "--format-version", "1", "--no-deps", "--offline"]);
        let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
        for p in meta["packages"].as_array().unwrap() {
            let name = p["name"].as_str().unwrap();
            let build = p["targets"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["kind"].as_array().unwrap().iter().any(|k| k == "custom-build"));
            assert!(!(build && names.contains(&name)), "{name} has a build script");
        }
        // libmgm (C) is the client without its async side: no runtime in a C daemon.
        let tree = cargo(&["tree", "-p", "mgm-capi", "-e", "normal", "--prefix", "none"]);
        for banned in ["tokio", "futures", "aya", "hyper", "netlink", "clap", "mgm-user"] {
            assert!(!tree.lines().any(|l| l.starts_with(banned)), "{banned} in libmgm:\n{tree}");
        }
        assert!(tree.lines().any(|l| l.starts_with("mgm-client")), "{tree}");
    }

    #[test]
    fn test_result_lines_are_counted() {
        let ok = "test result: ok. 9 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; \
                  finished in 6.70s";
        assert_eq!(parse_test_result(ok), Some((9, 0)));
        let bad = "test result: FAILED. 22 passed; 1 failed; 0 ignored; 0 measured";
        assert_eq!(parse_test_result(bad), Some((22, 1)));
        assert_eq!(parse_test_result("test foo ... ok"), None);
    }
}
