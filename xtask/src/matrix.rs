// SPDX-License-Identifier: MIT OR Apache-2.0
//! The kernel matrix: every test runs on a kernel that has what it needs, on this machine's
//! kernel where it can, in a QEMU guest booting a Debian kernel where it cannot. None passes
//! by being skipped: a test sent to a kernel that lacks what it needs fails there, with the
//! reason (`mgm_tests::needs`).
//!
//! A test says what it needs by the module it lives in (`needs_ipmr::...`); everything else
//! runs on any kernel mgm runs on. A test in a module `every_kernel` runs on this machine and
//! in every guest too: what must hold whatever the kernel offers. What a kernel has is what `mgmd --check-kernel` finds
//! there, the same probe mgmd runs at start.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};

use crate::guest::{self, Suite};

/// The guest that runs the benchmarks this machine's kernel cannot: Debian's newest kernel,
/// which has every feature a benchmark may need.
pub const OVERFLOW: Suite = guest::SUITES[2];

/// The guests every test run boots, oldest kernel first: Debian 12's 6.1, its backports'
/// 6.12, and Debian 13's backports' 7.x. Each runs what this machine's kernel cannot and the
/// `every_kernel` tests.
pub const GUESTS: [Suite; 3] = guest::SUITES;

/// This machine's column.
pub const HOST: &str = "this machine";

/// The module of the tests every kernel of the matrix runs.
const EVERY_KERNEL: &str = "every_kernel";

/// How long one guest may take, boot to power-off.
const GUEST_LIMIT: Duration = Duration::from_secs(40 * 60);

/// What a test can need of a kernel, by the name of the module it lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Need {
    Ipmr,
    LiveFrames,
}

impl Need {
    const ALL: [Need; 2] = [Need::Ipmr, Need::LiveFrames];

    fn module(self) -> &'static str {
        match self {
            Need::Ipmr => "needs_ipmr",
            Need::LiveFrames => "needs_live_frames",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Need::Ipmr => "multicast routing (ipmr, ip6mr)",
            Need::LiveFrames => "held first packets (XDP live frames delivering every copy)",
        }
    }

    /// The `mgmd --check-kernel` features it takes.
    fn features(self) -> &'static [&'static str] {
        match self {
            Need::Ipmr => &["ipmr", "ip6mr"],
            Need::LiveFrames => &["held first packets"],
        }
    }
}

/// The needs in a test's name (`needs_ipmr::smcroute_routes_are_followed`); an unknown
/// `needs_` module is an error, so a typo cannot send a test nowhere.
pub fn needs_of(test: &str) -> anyhow::Result<Vec<Need>> {
    let mut out = Vec::new();
    // Modules only: the last segment is the test function's own name.
    let modules = test.rsplit_once("::").map_or("", |(m, _)| m);
    for seg in modules.split("::").filter(|s| s.starts_with("needs_")) {
        let need = Need::ALL.into_iter().find(|n| n.module() == seg).with_context(|| {
            format!(
                "test {test}: unknown module {seg} (known: {})",
                Need::ALL.map(Need::module).join(", ")
            )
        })?;
        out.push(need);
    }
    Ok(out)
}

/// A kernel's features as `mgmd --check-kernel` reports them.
#[derive(Clone, Debug, Default)]
pub struct Features {
    /// Its first line: `kernel RELEASE: ipmr yes, ip6mr no, ...`.
    pub line: String,
    pub release: String,
    has: BTreeMap<String, bool>,
    /// How its verifier took each program: `program NAME: verified, N instructions
    /// processed in T s` (or the rejection).
    pub programs: Vec<String>,
}

impl Features {
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let line = text.lines().next().unwrap_or_default().trim().to_owned();
        let (head, list) = line
            .split_once(": ")
            .with_context(|| format!("not what mgmd --check-kernel prints: {line:?}"))?;
        let release = head.strip_prefix("kernel ").unwrap_or(head).to_owned();
        let has = list
            .split(", ")
            .filter_map(|f| f.rsplit_once(' '))
            .map(|(name, v)| (name.to_owned(), v == "yes"))
            .collect();
        let programs = text
            .lines()
            .filter(|l| l.starts_with("program ") || l.starts_with("programs"))
            .map(str::to_owned)
            .collect();
        Ok(Self { line, release, has, programs })
    }

    /// What `mgmd --check-kernel` finds on this machine.
    pub fn of_host(mgmd: &Path) -> anyhow::Result<Self> {
        let out =
            Command::new(mgmd).arg("--check-kernel").output().context("mgmd --check-kernel")?;
        ensure!(
            out.status.success(),
            "mgmd --check-kernel: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self::parse(&String::from_utf8_lossy(&out.stdout))
    }

    pub fn has(&self, need: Need) -> bool {
        need.features().iter().all(|f| self.has.get(*f).copied().unwrap_or(false))
    }

    /// Why this kernel cannot run `test` ("needs ..."), if it cannot.
    pub fn cannot_run(&self, test: &str) -> anyhow::Result<Option<String>> {
        let lacking: Vec<&str> =
            needs_of(test)?.into_iter().filter(|n| !self.has(*n)).map(Need::describe).collect();
        Ok((!lacking.is_empty()).then(|| format!("needs {}", lacking.join(", "))))
    }
}

/// A test executable cargo built, and the tests in it.
#[derive(Clone, Debug)]
pub struct TestBin {
    pub exe: PathBuf,
    /// Its package's directory: cargo runs tests there.
    pub dir: PathBuf,
    pub tests: Vec<String>,
}

/// Builds the workspace's tests (as `cargo test` would) and lists each executable's tests.
pub fn test_binaries(cargo: &str) -> anyhow::Result<Vec<TestBin>> {
    let out = Command::new(cargo)
        .args(["test", "--workspace", "--exclude", "mgm-ebpf", "--no-run"])
        .args(["--message-format", "json-render-diagnostics"])
        .stderr(Stdio::inherit())
        .output()
        .context("cargo test --no-run")?;
    ensure!(out.status.success(), "building the tests failed");
    let mut bins = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let (Some(exe), Some(manifest)) =
            (msg["executable"].as_str(), msg["manifest_path"].as_str())
        else {
            continue;
        };
        if msg["profile"]["test"] != true {
            continue;
        }
        let list = Command::new(exe).args(["--list", "--format", "terse"]).output()?;
        ensure!(list.status.success(), "{exe} --list failed");
        let tests = String::from_utf8_lossy(&list.stdout)
            .lines()
            .filter_map(|l| l.strip_suffix(": test"))
            .map(str::to_owned)
            .collect();
        let dir = Path::new(manifest).parent().context("manifest path")?.to_path_buf();
        bins.push(TestBin { exe: exe.into(), dir, tests });
    }
    Ok(bins)
}

/// Tests, each with why it did not run on a kernel.
pub type Reasons = Vec<(String, String)>;

/// One kernel's column of the matrix.
#[derive(Debug, Default)]
pub struct Column {
    /// `this machine`, or the suite and how QEMU ran it.
    pub place: String,
    pub features: Features,
    pub passed: Vec<String>,
    pub failed: Vec<String>,
    /// Tests this kernel did not run, each with why.
    pub elsewhere: Reasons,
    pub elapsed: Duration,
    /// A reason the whole column failed (the guest did not boot, say).
    pub broken: Option<String>,
    /// Why the guest's run was repeated, if it was.
    pub repeated: Option<String>,
}

/// Reads libtest's `test NAME ... ok|FAILED` lines.
pub fn parse_results(log: &str, col: &mut Column) {
    for line in log.lines() {
        let Some(rest) = line.strip_prefix("test ") else { continue };
        let Some((name, verdict)) = rest.rsplit_once(" ... ") else { continue };
        match verdict.trim() {
            "ok" => col.passed.push(name.to_owned()),
            "FAILED" => col.failed.push(name.to_owned()),
            _ => {}
        }
    }
}

/// What the guests run: the tests this machine's kernel cannot run (and for each why), and
/// the `every_kernel` ones, by executable.
pub fn for_guests(bins: &[TestBin], host: &Features) -> anyhow::Result<(Vec<TestBin>, Reasons)> {
    let mut moved = Vec::new();
    let mut why = Vec::new();
    for b in bins {
        let mut tests = Vec::new();
        for t in &b.tests {
            if let Some(reason) = host.cannot_run(t)? {
                why.push((t.clone(), reason));
                tests.push(t.clone());
            } else if t.split("::").any(|m| m == EVERY_KERNEL) {
                tests.push(t.clone());
            }
        }
        if !tests.is_empty() {
            moved.push(TestBin { tests, ..b.clone() });
        }
    }
    Ok((moved, why))
}

/// The `--skip` filters that keep the host's `cargo test` off what its kernel lacks.
pub fn host_skips(host: &Features) -> Vec<String> {
    Need::ALL
        .into_iter()
        .filter(|n| !host.has(*n))
        .flat_map(|n| ["--skip".to_owned(), format!("{}::", n.module())])
        .collect()
}

/// Runs `bins` in a guest booting `suite`'s kernel; its column of the matrix.
pub fn run_in_guest(suite: Suite, bins: &[TestBin], env: &[(String, String)]) -> Column {
    let mut col = Column {
        place: format!("QEMU guest, {} ({})", suite.name, suite.label),
        ..Column::default()
    };
    let started = Instant::now();
    let result = (|| -> anyhow::Result<()> {
        let kernel = guest::kernel(suite)?;
        let accel = guest::accel(&kernel);
        col.place = format!("QEMU guest, {} {} ({})", suite.name, kernel.version, accel.describe());
        let mgmd = crate::workspace_root().join("target/debug/mgmd");
        let mut script = String::new();
        writeln!(script, "{} --check-kernel > /run/mgm-guest/kernel.txt", shell(&mgmd))?;
        // Each step (a test binary's tests that need the same things) records its output and
        // status in the results share, and a step already recorded is not run again: a guest
        // booted again after its kernel died of emulation goes on from the interrupted step
        // (`guest::run`).
        script.push_str(
            "r=/run/mgm-guest\nt() { local n=$1 dir=$2; shift 2; [ -e $r/step$n.rc ] && return; \
             (cd \"$dir\" && \"$@\") 2>&1 | tee $r/step$n.log; \
             echo \"${PIPESTATUS[0]}\" > $r/step$n.rc; }\n",
        );
        let mut steps = 0;
        // Emulated, mgmd's program load alone takes seconds: the harness waits longer
        // (`mgm_tests::patience`); what the tests assert about time is unchanged.
        let slowdown = if accel == guest::Accel::Tcg { "4" } else { "1" };
        let vars: String = env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain([("MGM_TEST_SLOWDOWN", slowdown)])
            .map(|(k, v)| format!("{k}={} ", shell(Path::new(v))))
            .collect();
        for b in bins {
            // A test runs where the guest's kernel has what it needs (what the guest's own
            // `mgmd --check-kernel` found); the others are listed with the reason below.
            let mut by_needs: BTreeMap<Vec<Need>, Vec<String>> = BTreeMap::new();
            for t in &b.tests {
                by_needs.entry(needs_of(t)?).or_default().push(shell(Path::new(t)));
            }
            for (needs, names) in by_needs {
                let cond: Vec<String> = needs
                    .iter()
                    .flat_map(|n| n.features())
                    .map(|f| format!("grep -q '{f} yes' /run/mgm-guest/kernel.txt && "))
                    .collect();
                steps += 1;
                writeln!(
                    script,
                    "{}t {steps} {} env {vars}{} --exact {} --test-threads=2",
                    cond.concat(),
                    shell(&b.dir),
                    shell(&b.exe),
                    names.join(" ")
                )?;
            }
        }
        // The steps' output in order, and the run's status: 1 if any step failed.
        writeln!(
            script,
            "status=0\nfor n in $(seq 1 {steps}); do [ -e $r/step$n.log ] && cat $r/step$n.log; \
             [ ! -e $r/step$n.rc ] || [ \"$(cat $r/step$n.rc)\" = 0 ] || status=1; \
             done > $r/tests.log\nexit $status"
        )?;
        let run = guest::run(&kernel, accel, &script, suite.name, GUEST_LIMIT)?;
        col.repeated = run.repeated.clone();
        let kernel_txt = std::fs::read_to_string(run.dir.join("kernel.txt")).unwrap_or_default();
        col.features = Features::parse(&kernel_txt).unwrap_or_default();
        let mut wanted = 0;
        for t in bins.iter().flat_map(|b| &b.tests) {
            match col.features.cannot_run(t)? {
                Some(reason) => col.elsewhere.push((t.clone(), reason)),
                None => wanted += 1,
            }
        }
        let log = std::fs::read_to_string(run.dir.join("tests.log")).unwrap_or_default();
        parse_results(&log, &mut col);
        let ran = col.passed.len() + col.failed.len();
        if run.exit != Some(0) && col.failed.is_empty() || ran < wanted {
            bail!(
                "the guest's tests exited with {:?} having reported {ran} of {wanted}: see {}",
                run.exit,
                run.dir.join("tests.log").display()
            );
        }
        Ok(())
    })();
    if let Err(e) = result {
        col.broken = Some(format!("{e:#}"));
    }
    col.elapsed = started.elapsed();
    col
}

fn shell(p: &Path) -> String {
    guest::shell_quote(&p.to_string_lossy())
}

/// The matrix as printed at the end of `cargo xtask test`, and kept in
/// `target/kernel-matrix.txt`.
pub fn render(columns: &[Column]) -> String {
    let mut out = String::from("kernel matrix (what ran where, and why anything did not)\n");
    for c in columns {
        let release = if c.features.release.is_empty() { "?" } else { &c.features.release };
        let _ = writeln!(
            out,
            "  {release} — {}: {} ran, {} passed, {} failed ({:.0} s)",
            c.place,
            c.passed.len() + c.failed.len(),
            c.passed.len(),
            c.failed.len(),
            c.elapsed.as_secs_f64()
        );
        if !c.features.line.is_empty() {
            let _ = writeln!(out, "      {}", c.features.line);
        }
        for p in &c.features.programs {
            let _ = writeln!(out, "      {p}");
        }
        if let Some(b) = &c.broken {
            let _ = writeln!(out, "      BROKEN: {b}");
        }
        if let Some(r) = &c.repeated {
            let _ = writeln!(out, "      REPEATED (these results are the second run's): {r}");
        }
        for f in &c.failed {
            let _ = writeln!(out, "      FAILED {f}");
        }
        let mut reasons: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (t, why) in &c.elsewhere {
            reasons.entry(why).or_default().push(t);
        }
        // This machine sends what it cannot run to the guests; a guest runs what it can.
        let whither = if c.place == HOST { "sent to the guests" } else { "not run on this kernel" };
        for (why, tests) in reasons {
            let _ = writeln!(out, "      not run here ({why}), {whither}: {}", tests.len());
            for t in tests {
                let _ = writeln!(out, "        {t}");
            }
        }
    }
    out
}

/// Runs a command echoing its standard output line by line; returns all of it.
pub fn run_echoed(cmd: &mut Command) -> anyhow::Result<(std::process::ExitStatus, String)> {
    let mut child = cmd.stdout(Stdio::piped()).spawn().with_context(|| format!("{cmd:?}"))?;
    let mut all = String::new();
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line?;
        println!("{line}");
        all.push_str(&line);
        all.push('\n');
    }
    Ok((child.wait()?, all))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_come_from_module_names() {
        assert_eq!(needs_of("needs_ipmr::smcroute_routes_are_followed").unwrap(), vec![Need::Ipmr]);
        assert_eq!(
            needs_of("a::needs_live_frames::b").unwrap(),
            vec![Need::LiveFrames],
            "at any depth"
        );
        assert!(needs_of("forwards_to_one_receiver").unwrap().is_empty());
        assert!(needs_of("tests::needs_come_from_names").unwrap().is_empty(), "a function");
        assert!(needs_of("needs_ipmrr::x").is_err(), "a typo is an error, not a test sent nowhere");
    }

    #[test]
    fn features_are_read_from_check_kernel() {
        let f = Features::parse(
            "kernel 6.18.44-fc: ipmr no, ip6mr no, XDP metadata no, XDP live frames yes, held \
             first packets yes, TCX yes\n  this kernel ...\nprogram mgm_xdp_egress: verified, 876 \
             instructions processed in 0.001 s",
        )
        .unwrap();
        assert_eq!(f.release, "6.18.44-fc");
        assert!(!f.has(Need::Ipmr));
        assert!(f.has(Need::LiveFrames));
        assert_eq!(
            f.programs,
            ["program mgm_xdp_egress: verified, 876 instructions processed in 0.001 s"]
        );
        let old =
            Features::parse("kernel 6.1.0: XDP live frames yes, held first packets no").unwrap();
        assert!(!old.has(Need::LiveFrames), "live frames that lose copies hold nothing");
        let half = Features::parse("kernel 7.3: ipmr yes, ip6mr no").unwrap();
        assert!(!half.has(Need::Ipmr), "both families");
        assert!(Features::parse("garbage").is_err());
        assert_eq!(host_skips(&f), vec!["--skip", "needs_ipmr::"]);
    }

    #[test]
    fn results_are_read_per_test() {
        let mut c = Column::default();
        parse_results(
            "running 3 tests\ntest needs_ipmr::a ... ok\ntest b ... FAILED\ntest c ... ignored\n\
             test result: FAILED. 1 passed; 1 failed",
            &mut c,
        );
        assert_eq!(c.passed, vec!["needs_ipmr::a"]);
        assert_eq!(c.failed, vec!["b"]);
    }
}
