// SPDX-License-Identifier: MIT OR Apache-2.0
//! libmgm as a C programmer has it: mgm.h, libmgm.so.0 and libmgm.a, and a pkg-config file,
//! staged once per test process from this build (the package installs the same files
//! under /usr), and C programs compiled against them with the system's `cc`.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    process::ChildStdin,
    sync::{OnceLock, mpsc},
};

use super::*;

/// valgrind as the C tests run their programs under it: a memory error, or memory the
/// program lost for good, makes it exit 99.
pub const VALGRIND: &[&str] = &[
    "valgrind",
    "--quiet",
    "--error-exitcode=99",
    "--leak-check=full",
    "--errors-for-leak-kinds=definite",
    "--show-leak-kinds=definite",
];

static STAGED: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// The staged prefix (`include/`, `lib/`, `lib/pkgconfig/mgm.pc`), removed with what the
/// tests compiled into it when the test process exits.
pub fn libmgm() -> anyhow::Result<&'static Path> {
    STAGED
        .get_or_init(|| {
            // SAFETY: registers a plain function; it only reads a set OnceLock.
            unsafe { libc::atexit(remove_staged) };
            stage().map_err(|e| format!("{e:#}"))
        })
        .as_deref()
        .map_err(|e| anyhow::anyhow!("{e}"))
}

extern "C" fn remove_staged() {
    if let Some(Ok(prefix)) = STAGED.get() {
        let _ = std::fs::remove_dir_all(prefix);
    }
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

/// The example's routes file: the flow's (S,G) from rin to r1 and r2.
pub const EXAMPLE_ROUTES: &str = "# S G IIF OIF...\n10.1.0.1 239.1.1.1 rin r1 r2\n";

/// A C daemon run as `cmd`, its output read line by line, its standard input written to.
/// Killed when dropped (a failed test leaves no process).
pub struct CDaemon {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    said: Vec<String>,
}

impl CDaemon {
    pub fn spawn(mut cmd: Command) -> anyhow::Result<Self> {
        let mut child =
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
        let stdin = child.stdin.take().expect("piped");
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self { child, stdin, lines, said: Vec::new() })
    }

    /// The next line starting with `prefix` (within 10 s), the lines before it kept.
    pub fn until(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(l) => {
                    self.said.push(l.clone());
                    if l.starts_with(prefix) {
                        return l;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    let mut err = String::new();
                    if let Some(mut e) = self.child.stderr.take() {
                        let _ = std::io::Read::read_to_string(&mut e, &mut err);
                    }
                    panic!("no {prefix:?} from the daemon; it said {:#?}\n{err}", self.said)
                }
            }
        }
    }

    pub fn send(&mut self, line: &str) {
        self.stdin.write_all(format!("{line}\n").as_bytes()).expect("the daemon's stdin");
    }

    /// Waits for it to exit; its status and standard error.
    pub fn wait(mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().expect("waiting for the daemon");
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        (status, err)
    }
}

impl Drop for CDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The example daemon (mgm-static, with [`EXAMPLE_ROUTES`]) started as `cmd`, against an
/// mgmd of `t`'s router that manages nothing yet: it registers and takes rin, r1 and r2
/// (printed), a numbered flow raises its RPF callback (answered: rin) and creation alert
/// (r1 and r2) and reaches both receivers through XDP; its release of r1 is atomic (no
/// number sent after the call returned reaches r1; r2 misses none), and `quit` releases
/// the rest and deregisters.
pub fn drive_example(t: &Topology, cmd: Command) {
    let mut d = CDaemon::spawn(cmd).unwrap();
    assert_eq!(d.until("ready"), "ready: 1 routes on 3 interfaces");
    let flow = SeqFlow::start(t, 2, 4_000).unwrap();
    assert_eq!(d.until("rpf"), "rpf 10.1.0.1 239.1.1.1 -> rin");
    assert_eq!(d.until("creation"), "creation 10.1.0.1 239.1.1.1: r1 r2");
    // Numbers sent while the MFE was being made are not all forwarded (the first few are
    // held, later ones are not, as with ipmr): r2's count starts once it is surely in place.
    std::thread::sleep(Duration::from_millis(500));
    let established = flow.last_sent() + 1;
    d.send("release r1");
    d.until("released r1");
    let last_sent_at_reply = flow.last_sent();
    std::thread::sleep(Duration::from_millis(300));
    let (sent, seen) = flow.finish();
    assert!(!seen[0].is_empty(), "r1 received nothing before the release");
    let max_at_r1 = *seen[0].last().expect("not empty");
    assert!(
        max_at_r1 <= last_sent_at_reply,
        "r1 saw {max_at_r1} > {last_sent_at_reply}, the last number sent before the release returned"
    );
    let missing = gaps_between(&seen[1], established, sent);
    assert!(
        missing.is_empty(),
        "r2 missed {} of the numbers {established}..={sent}, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    println!(
        "mgm-static (C, libmgm): r1 got {} numbers up to {max_at_r1}, the release returned after \
         {last_sent_at_reply}; r2 got all {} from {established}",
        seen[0].len(),
        sent - established + 1
    );
    d.send("quit");
    assert_eq!(d.until("deregistered"), "deregistered (0)");
    let (status, err) = d.wait();
    assert!(status.success(), "{status}: {err}");
}
