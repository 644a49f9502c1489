// SPDX-License-Identifier: MIT OR Apache-2.0
//! QEMU guests booting Debian's own kernels, for the tests this machine's kernel cannot run
//! (it may lack multicast routing, say) and for the kernels users run.
//!
//! A kernel is fetched from Debian's archive with apt (`apt-get download` under a private
//! state, never installed here) and cached under [`CACHE`]. The guest sees this machine's
//! root filesystem read-only over 9p under a tmpfs overlay, so it has the same binaries,
//! test programs and routing daemons; a second 9p share, read-write, carries the script it
//! runs and its results. It has no network device. A small initramfs (static busybox and
//! the kernel's own 9p and overlay modules) mounts all that and hands over to the script.
//! KVM is used when a guest boots with it; otherwise QEMU emulates (TCG), and says so.

use std::{
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};

use crate::{apt_install, sh, step};

/// Where fetched kernels and their initramfs live between runs.
const CACHE: &str = "/var/cache/mgm-test/kernels";

/// What the guests need on this machine.
pub const PACKAGES: &[&str] = &["qemu-system-x86", "busybox-static", "kmod", "xz-utils", "zstd"];

/// Modules the initramfs loads (with their dependencies) to reach the root filesystem; a
/// name the kernel has built in is simply not found as a file.
const BOOT_MODULES: &[&str] = &["virtio_pci", "9pnet_virtio", "9p", "overlay"];

/// Modules the tests use, loaded in the guest before they run (others load on demand).
const TEST_MODULES: &[&str] = &["veth", "bridge", "sch_ingress", "cls_bpf", "act_bpf"];

/// A Debian kernel the matrix boots: the `linux-image-amd64` of one suite.
#[derive(Clone, Copy, Debug)]
pub struct Suite {
    /// The archive suite (`bookworm`, `bookworm-backports`, `trixie-backports`).
    pub name: &'static str,
    /// What users know it as.
    pub label: &'static str,
}

/// The Debian kernels the project knows how to boot.
pub const SUITES: [Suite; 3] = [
    Suite { name: "bookworm", label: "Debian 12" },
    Suite { name: "bookworm-backports", label: "Debian 12 backports" },
    Suite { name: "trixie-backports", label: "Debian 13 backports" },
];

/// A fetched kernel: its image, its modules (with `modules.dep`), its release.
#[derive(Clone, Debug)]
pub struct Kernel {
    pub suite: Suite,
    /// The package version (`7.3.4-1~bpo13+1`).
    pub version: String,
    /// `uname -r` in the guest (`7.3.4+deb13-amd64`).
    pub release: String,
    pub vmlinuz: PathBuf,
    pub modules: PathBuf,
    pub initramfs: PathBuf,
}

/// How QEMU runs the guests here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    /// Multi-threaded TCG: each vCPU a host thread.
    Tcg,
    /// TCG with every vCPU on one host thread, in turn: code the guest's kernel patches is
    /// never run stale (see [`KernelDied::of_emulation`]), at half the speed.
    TcgOneThread,
}

impl Accel {
    pub fn describe(self) -> &'static str {
        match self {
            Accel::Kvm => "KVM",
            Accel::Tcg => "TCG, software emulation: timings are not comparable with the host's",
            Accel::TcgOneThread => {
                "TCG on one host thread, software emulation: timings are not comparable with \
                 the host's"
            }
        }
    }

    /// For a run that swaps XDP programs at every step and cannot go on from where a dead
    /// kernel left it (the benchmarks): TCG on one thread, which does not kill the kernel
    /// when it patches its XDP dispatcher.
    pub fn without_stale_code(self) -> Self {
        match self {
            Accel::Tcg => Accel::TcgOneThread,
            other => other,
        }
    }
}

/// The mirror apt already uses on this machine (Debian's archive, not the security one).
pub fn debian_mirror() -> anyhow::Result<String> {
    let sources = std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources")
        .unwrap_or_default()
        + &std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    sources
        .lines()
        .filter_map(|l| {
            l.strip_prefix("URIs:").map(|u| u.trim().to_owned()).or_else(|| {
                l.strip_prefix("deb ").map(|r| r.split_whitespace().next().unwrap_or("").to_owned())
            })
        })
        .find(|m| m.contains("debian") && !m.contains("security"))
        .context("no Debian mirror in apt's sources")
}

/// apt under a private state for one suite: its own sources list, package lists and cache,
/// so nothing of this machine's apt configuration changes and no dpkg lock is taken.
struct PrivateApt {
    dir: PathBuf,
}

impl PrivateApt {
    fn new(dir: PathBuf, mirror: &str, suite: &str) -> anyhow::Result<Self> {
        for sub in ["lists/partial", "cache/archives/partial", "debs"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        std::fs::write(dir.join("sources.list"), format!("deb {mirror} {suite} main\n"))?;
        Ok(Self { dir })
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        let d = self.dir.display();
        for o in [
            format!("Dir::Etc::sourcelist={d}/sources.list"),
            "Dir::Etc::sourceparts=-".into(),
            format!("Dir::State::Lists={d}/lists"),
            format!("Dir::Cache={d}/cache"),
            "Dir::State::status=/dev/null".into(),
            // Downloads land in a directory of root's; apt's sandbox user cannot write there.
            "APT::Sandbox::User=root".into(),
        ] {
            cmd.arg("-o").arg(o);
        }
        cmd
    }

    fn update(&self) -> anyhow::Result<()> {
        let out = self.command("apt-get").args(["-qq", "update"]).output()?;
        ensure!(
            out.status.success(),
            "apt-get update ({}): {}",
            self.dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(())
    }

    /// A field of the (only) candidate of `package` in this suite.
    fn field(&self, package: &str, field: &str) -> anyhow::Result<String> {
        let out = self.command("apt-cache").args(["show", package]).output()?;
        ensure!(out.status.success(), "apt-cache show {package}: not in the suite");
        let text = String::from_utf8_lossy(&out.stdout);
        let prefix = format!("{field}:");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix).map(|v| v.trim().to_owned()))
            .with_context(|| format!("{package} has no {field}"))
    }

    /// `linux-image-amd64` and the kernel packages it depends on, down to the image and the
    /// modules (Debian 12 ships both in linux-image-VERSION; Debian 13's kernels split them
    /// into linux-binary-VERSION and linux-modules-VERSION).
    fn kernel_packages(&self) -> anyhow::Result<Vec<String>> {
        let mut todo = vec!["linux-image-amd64".to_owned()];
        let mut all = Vec::new();
        while let Some(p) = todo.pop() {
            if all.contains(&p) {
                continue;
            }
            let depends = self.field(&p, "Depends").unwrap_or_default();
            for dep in depends.split(',') {
                let name = dep.trim().split([' ', '|']).next().unwrap_or("");
                if ["linux-image-", "linux-binary-", "linux-modules-"]
                    .iter()
                    .any(|k| name.starts_with(k))
                {
                    todo.push(name.to_owned());
                }
            }
            all.push(p);
        }
        Ok(all)
    }

    fn download(&self, packages: &[String]) -> anyhow::Result<Vec<PathBuf>> {
        let debs = self.dir.join("debs");
        let _ = std::fs::remove_dir_all(&debs);
        std::fs::create_dir_all(&debs)?;
        let out = self
            .command("apt-get")
            .current_dir(&debs)
            .args(["-qq", "download"])
            .args(packages)
            .output()?;
        ensure!(
            out.status.success(),
            "apt-get download {}: {}",
            packages.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(std::fs::read_dir(&debs)?.flatten().map(|e| e.path()).collect())
    }
}

/// The kernel of `suite`: fetched and unpacked once, again when the archive has a newer
/// one. With the archive out of reach, the cached one serves.
pub fn kernel(suite: Suite) -> anyhow::Result<Kernel> {
    apt_install(PACKAGES, true)?;
    let dir = Path::new(CACHE).join(suite.name);
    let apt = PrivateApt::new(dir.join("apt"), &debian_mirror()?, suite.name)?;
    let cached = std::fs::read_to_string(dir.join("version")).ok();
    let wanted = match apt.update().and_then(|_| apt.field("linux-image-amd64", "Version")) {
        Ok(v) => v,
        Err(e) => match &cached {
            Some(v) => {
                println!("note: {} not reachable ({e:#}); using the cached kernel {v}", suite.name);
                v.trim().to_owned()
            }
            None => return Err(e.context(format!("fetching the {} kernel", suite.name))),
        },
    };
    let root = dir.join("root");
    if cached.as_deref().map(str::trim) != Some(wanted.as_str()) || !root.is_dir() {
        step(&format!("fetching the {} kernel {wanted} from Debian's archive", suite.name));
        let debs = apt.download(&apt.kernel_packages()?)?;
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root)?;
        for deb in &debs {
            sh(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&root))?;
        }
        let _ = std::fs::remove_dir_all(apt.dir.join("debs"));
        let (release, base) = modules_base(&root)?;
        // Debian runs depmod at install time; the packages ship no modules.dep.
        let out = Command::new("depmod").arg("-b").arg(&base).arg(&release).output()?;
        ensure!(out.status.success(), "depmod: {}", String::from_utf8_lossy(&out.stderr));
        let _ = std::fs::remove_file(dir.join("initramfs.cpio"));
        std::fs::write(dir.join("version"), &wanted)?;
    }
    let (release, base) = modules_base(&root)?;
    let modules = base.join("lib/modules").join(&release);
    let vmlinuz = [root.join(format!("boot/vmlinuz-{release}")), modules.join("vmlinuz")]
        .into_iter()
        .find(|p| p.is_file())
        .with_context(|| format!("no vmlinuz for {release} in {}", root.display()))?;
    let initramfs = dir.join("initramfs.cpio");
    if !initramfs.is_file() {
        build_initramfs(&modules, &initramfs)?;
    }
    Ok(Kernel { suite, version: wanted, release, vmlinuz, modules, initramfs })
}

/// The kernel release the packages unpacked in `root` hold, and the directory whose
/// `lib/modules/RELEASE` has its modules (`root`, or `root/usr` where the package puts
/// them under /usr).
fn modules_base(root: &Path) -> anyhow::Result<(String, PathBuf)> {
    for base in [root.to_path_buf(), root.join("usr")] {
        let Ok(entries) = std::fs::read_dir(base.join("lib/modules")) else { continue };
        if let Some(e) = entries.flatten().find(|e| e.path().join("kernel").is_dir()) {
            return Ok((e.file_name().to_string_lossy().into_owned(), base));
        }
    }
    bail!("no lib/modules/RELEASE/kernel under {}", root.display())
}

/// `name`'s module file and the dependencies to load before it, in order, from modules.dep
/// (empty when the kernel has it built in).
fn module_closure(modules: &Path, dep: &str, name: &str, out: &mut Vec<PathBuf>) {
    let norm = |s: &str| s.replace('-', "_");
    let stem = |path: &str| {
        let file = path.rsplit('/').next().unwrap_or(path);
        norm(file.split(".ko").next().unwrap_or(file))
    };
    let Some(line) =
        dep.lines().find(|l| l.split(':').next().is_some_and(|p| stem(p) == norm(name)))
    else {
        return;
    };
    let (path, deps) = line.split_once(':').unwrap_or((line, ""));
    for d in deps.split_whitespace() {
        module_closure(modules, dep, &stem(d), out);
    }
    let file = modules.join(path);
    if !out.contains(&file) {
        out.push(file);
    }
}

/// The initramfs: static busybox, the boot modules (uncompressed: busybox's insmod reads
/// plain ELF) in load order, and `/init`.
fn build_initramfs(modules: &Path, out: &Path) -> anyhow::Result<()> {
    let dep = std::fs::read_to_string(modules.join("modules.dep")).context("modules.dep")?;
    let mut files = Vec::new();
    for m in BOOT_MODULES {
        module_closure(modules, &dep, m, &mut files);
    }
    let tree = out.with_extension("d");
    let _ = std::fs::remove_dir_all(&tree);
    std::fs::create_dir_all(tree.join("bin"))?;
    std::fs::create_dir_all(tree.join("modules"))?;
    std::fs::copy("/bin/busybox", tree.join("bin/busybox")).context("copying busybox")?;
    let mut order = String::new();
    for f in &files {
        let name = f.file_name().unwrap_or_default().to_string_lossy().into_owned();
        let plain = name.split(".ko").next().unwrap_or(&name).to_owned() + ".ko";
        let bytes = match name.rsplit('.').next() {
            Some("xz") => Command::new("xz").arg("-dc").arg(f).output()?.stdout,
            Some("zst") => Command::new("zstd").arg("-dc").arg(f).output()?.stdout,
            _ => std::fs::read(f)?,
        };
        ensure!(!bytes.is_empty(), "could not read module {}", f.display());
        std::fs::write(tree.join("modules").join(&plain), bytes)?;
        order.push_str(&plain);
        order.push('\n');
    }
    std::fs::write(tree.join("modules/order"), order)?;
    let init = tree.join("init");
    std::fs::write(&init, INIT)?;
    std::fs::set_permissions(&init, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let partial = out.with_extension("partial");
    let list = Command::new("find").arg(".").current_dir(&tree).output()?.stdout;
    let mut cpio = Command::new("busybox")
        .args(["cpio", "-o", "-H", "newc"])
        .current_dir(&tree)
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(&partial)?)
        .stderr(Stdio::null())
        .spawn()?;
    cpio.stdin.take().expect("piped").write_all(&list)?;
    ensure!(cpio.wait()?.success(), "busybox cpio failed");
    std::fs::rename(&partial, out)?;
    let _ = std::fs::remove_dir_all(&tree);
    Ok(())
}

/// The initramfs's /init: mount this machine's root read-only (9p) under a tmpfs overlay,
/// the results share, then run the script the host left there.
const INIT: &str = r#"#!/bin/busybox sh
B=/bin/busybox
$B mkdir -p /proc /sys /dev /host /rw /newroot
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
$B mount -t devtmpfs devtmpfs /dev
for m in $($B cat /modules/order); do $B insmod /modules/$m || echo "mgm-guest: insmod $m failed"; done
fail() { echo "mgm-guest: $*"; echo o > /proc/sysrq-trigger; $B sleep 30; }
$B mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /host || fail "mounting the host's root"
$B mount -t tmpfs -o mode=755 tmpfs /rw
$B mkdir -p /rw/upper /rw/work
$B mount -t overlay overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work /newroot || fail "the overlay"
$B mkdir -p /newroot/run/mgm-guest
$B mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 results /newroot/run/mgm-guest || fail "the results share"
$B mount --move /proc /newroot/proc
$B mount --move /sys /newroot/sys
$B mount --move /dev /newroot/dev
exec $B switch_root /newroot /bin/bash /run/mgm-guest/run.sh
"#;

/// What a guest run left: its script's exit status, and what it wrote to the results share.
#[derive(Debug)]
pub struct Run {
    pub exit: Option<i32>,
    pub dir: PathBuf,
    /// Why the run was repeated (the guest's kernel died under the first), if it was.
    pub repeated: Option<String>,
}

/// Where the guests' results shares live, one directory per run name.
fn scratch() -> PathBuf {
    crate::workspace_root().join("target/guests")
}

/// Boots `kernel` and runs `script` (bash) in it as root, with `target/guests/NAME` as the
/// results share (made anew; `Run::dir`). The script's output goes to the console, which is
/// echoed here prefixed with the release. Gives up after `limit`.
pub fn run(
    kernel: &Kernel,
    accel: Accel,
    script: &str,
    name: &str,
    limit: Duration,
) -> anyhow::Result<Run> {
    let dir = scratch().join(name);
    // A guest that never reached its script (a boot that hung or oopsed) is booted again.
    // Once the script started, a run is repeated only if the guest's kernel died of
    // emulation, at most EMULATION_DEATHS times, and the matrix says so: under multi-threaded
    // TCG a vCPU now and then runs a stale translation of kernel text another vCPU has just
    // patched (an int3 of text_poke's protocol, after the patch was done). It oopsed guests
    // while booting, and the XDP dispatcher (patched at each program attach) under the
    // restart tests' traffic. The repeat keeps the results share, so a script that records
    // its steps there (the matrix's does) goes on from the step the death interrupted. Any
    // other death, and a test that fails, is never repeated.
    let mut died: Vec<String> = Vec::new();
    let mut boots_failed = 0;
    loop {
        match boot(kernel, accel, script, &dir, limit, true, died.is_empty()) {
            Err(e) if boots_failed + 1 < BOOT_TRIES && !dir.join("started").exists() => {
                boots_failed += 1;
                println!("the guest did not reach its script ({e:#}); booting it again");
            }
            Err(e)
                if died.len() < EMULATION_DEATHS
                    && e.downcast_ref::<KernelDied>().is_some_and(KernelDied::of_emulation) =>
            {
                println!(
                    "the guest's kernel died of emulation under its script ({e:#}); \
                     booting it again to go on"
                );
                died.push(format!("{e:#}"));
            }
            Ok(mut run) => {
                run.repeated = (!died.is_empty()).then(|| died.join("; then "));
                return Ok(run);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Deaths of emulation a run survives (see [`run`]).
const EMULATION_DEATHS: usize = 3;

/// Boots tried before a guest that never reached its script counts as failed.
const BOOT_TRIES: u32 = 3;

/// The guest's kernel panicked: what its console said of it.
#[derive(Debug)]
pub struct KernelDied(pub String);

impl KernelDied {
    /// The death multi-threaded TCG causes (see [`run`]): a trap on an int3 that text_poke's
    /// protocol had already removed. A kernel killed by anything else (a bad pointer in a
    /// program, a BUG) did not die of the emulation.
    pub fn of_emulation(&self) -> bool {
        self.0.contains("Oops: int3:")
    }
}

impl std::fmt::Display for KernelDied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the guest's kernel died: {}", self.0)
    }
}

impl std::error::Error for KernelDied {}

/// The lines of a console that tell of a kernel's death: the oops's first line, where it
/// was (`RIP`), and the panic; None if the kernel did not die.
fn kernel_death(console: &[String]) -> Option<String> {
    let panic = console.iter().position(|l| l.contains("Kernel panic - not syncing"))?;
    let said: Vec<&str> = console[..=panic]
        .iter()
        .filter(|l| ["Oops:", "BUG:", "RIP: 0010:", "Kernel panic"].iter().any(|k| l.contains(k)))
        .map(|l| l.trim())
        .collect();
    Some(said.join(" / "))
}

/// [`run`], echoing the console or not.
fn boot(
    kernel: &Kernel,
    accel: Accel,
    script: &str,
    dir: &Path,
    limit: Duration,
    echo_console: bool,
    fresh: bool,
) -> anyhow::Result<Run> {
    if fresh {
        let _ = std::fs::remove_dir_all(dir);
    } else {
        // Going on after a death: what the script recorded stays; this boot's marks do not.
        for mark in ["started", "exit"] {
            let _ = std::fs::remove_file(dir.join(mark));
        }
    }
    std::fs::create_dir_all(dir)?;
    // The script is a file of its own: whatever it does (a syntax error included), the
    // guest records its status and powers off.
    std::fs::write(dir.join("script.sh"), script)?;
    let wrapped = format!(
        "#!/bin/bash\n{PRELUDE}\nmodules={modules}\n{SETUP}\nfor m in {test_modules}; do modprobe -q $m; done\n\
         touch /run/mgm-guest/started\nbash /run/mgm-guest/script.sh\necho $? > /run/mgm-guest/exit\nsync\necho o > /proc/sysrq-trigger\nsleep 60\n",
        modules = shell_quote(&kernel.modules.to_string_lossy()),
        test_modules = TEST_MODULES.join(" "),
    );
    std::fs::write(dir.join("run.sh"), wrapped)?;
    let started = Instant::now();
    // QEMU's own messages and the guest's console, in the order they come.
    let (stdout, writer) = std::io::pipe()?;
    let mut cmd = qemu(kernel, accel, dir);
    cmd.stdin(Stdio::null()).stdout(writer.try_clone()?).stderr(writer);
    let mut child = cmd.spawn().context("starting qemu-system-x86_64")?;
    // Only the child holds the pipe's write end now: the reader sees its end.
    drop(cmd);
    let release = kernel.release.clone();
    // A guest KVM cannot run stops early with this; waiting longer would not help.
    let kvm_failed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let failed = kvm_failed.clone();
    let echo = std::thread::spawn(move || {
        let mut tail = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("KVM internal error") {
                failed.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            // The guest's terminal escapes (SeaBIOS clears the screen) are noise here.
            let line: String = line.chars().filter(|c| !c.is_control() || *c == '\t').collect();
            if echo_console {
                println!("[{release}] {line}");
            }
            tail.push(line);
            if tail.len() > 200 {
                tail.remove(0);
            }
        }
        tail
    });
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if started.elapsed() > limit || kvm_failed.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let tail = echo.join().unwrap_or_default();
    let exit = std::fs::read_to_string(dir.join("exit")).ok().and_then(|s| s.trim().parse().ok());
    if exit.is_none() {
        if let Some(death) = kernel_death(&tail) {
            return Err(KernelDied(death).into());
        }
        let why = match status {
            None => format!("did not finish within {} s", limit.as_secs()),
            Some(s) => format!("stopped ({s}) before its script finished"),
        };
        bail!(
            "the {} guest ({}) {why}; its last console lines:\n{}",
            kernel.suite.name,
            kernel.release,
            tail.iter().rev().take(30).rev().cloned().collect::<Vec<_>>().join("\n")
        );
    }
    Ok(Run { exit, dir: dir.to_path_buf(), repeated: None })
}

/// The guest's environment: what a root shell on this machine has.
const PRELUDE: &str = "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
                       HOME=/root LANG=C.UTF-8 TMPDIR=/tmp";

/// Before the script: the kernel's own modules where modprobe looks, bpffs, loopback up
/// (then the test modules are loaded). /tmp stays the host's, under the overlay: the
/// workspace may be there.
const SETUP: &str = r#"rel=$(uname -r)
mkdir -p /usr/lib/modules/$rel && mount --bind "$modules" /usr/lib/modules/$rel
mount -t bpf bpf /sys/fs/bpf
hostname mgm-guest
ip link set lo up
echo "mgm-guest: $rel up, $(nproc) CPUs, $(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo) MiB""#;

/// `s` as one word of a shell command line.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn qemu(kernel: &Kernel, accel: Accel, results: &Path) -> Command {
    let mut cmd = Command::new("qemu-system-x86_64");
    match accel {
        Accel::Kvm => cmd.args(["-accel", "kvm", "-cpu", "host"]),
        // Multi-threaded: each vCPU a host thread. (Single-threaded TCG, which runs them in
        // turn, slices them 100 ms at a time: the guests took half as long again and a
        // 4000 pps flow lost bursts to the starved vCPU's full veth rings.)
        Accel::Tcg => cmd.args(["-accel", "tcg,thread=multi", "-cpu", "max"]),
        Accel::TcgOneThread => cmd.args(["-accel", "tcg,thread=single", "-cpu", "max"]),
    };
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get()).min(4);
    cmd.args(["-smp", &cpus.to_string(), "-m", "4G"])
        .args(["-nographic", "-no-reboot", "-nic", "none"])
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(&kernel.initramfs)
        .args(["-append", "console=ttyS0 panic=-1 quiet"])
        .arg("-virtfs")
        .arg("local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap")
        .arg("-virtfs")
        .arg(format!(
            "local,path={},mount_tag=results,security_model=none,multidevs=remap",
            results.display()
        ));
    cmd
}

/// KVM if a guest boots with it here, else TCG; found out once per run (a guest that
/// cannot use KVM hangs or stops with "KVM internal error" early in its boot).
pub fn accel(kernel: &Kernel) -> Accel {
    static ACCEL: OnceLock<Accel> = OnceLock::new();
    *ACCEL.get_or_init(|| {
        if std::fs::File::options().read(true).write(true).open("/dev/kvm").is_err() {
            println!("guests: no usable /dev/kvm: QEMU emulates (TCG)");
            return Accel::Tcg;
        }
        let dir = scratch().join("kvm-probe");
        // Quietly: a failed probe's register dump is not news.
        match boot(kernel, Accel::Kvm, "true", &dir, Duration::from_secs(45), false, true) {
            Ok(r) if r.exit == Some(0) => {
                println!("guests: KVM works here");
                Accel::Kvm
            }
            _ => {
                println!(
                    "guests: a KVM guest does not boot on this machine (no nested \
                     virtualisation): QEMU emulates (TCG)"
                );
                Accel::Tcg
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kernel_that_died_is_told_from_its_console_and_one_that_did_not_is_not() {
        let console: Vec<String> = [
            "test every_kernel::x ... ok",
            "[  150.7] Oops: int3: 0000 [#1] SMP NOPTI",
            "[  150.7] RIP: 0010:bpf_dispatcher_xdp_func+0xa/0x10",
            "[  150.7]  dev_map_bpf_prog_run+0x13d/0x320",
            "[  150.7] RIP: 0033:0x7fa956954d0c",
            "[  150.7] Kernel panic - not syncing: Fatal exception in interrupt",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            kernel_death(&console).unwrap(),
            "[  150.7] Oops: int3: 0000 [#1] SMP NOPTI / [  150.7] RIP: \
             0010:bpf_dispatcher_xdp_func+0xa/0x10 / [  150.7] Kernel panic - not syncing: Fatal \
             exception in interrupt"
        );
        assert_eq!(kernel_death(&console[..4]), None, "an oops the kernel survived");
        // Only the int3 of text_poke's protocol is the emulation's doing; a run is not
        // repeated for a kernel a program's bad pointer killed.
        assert!(KernelDied(kernel_death(&console).unwrap()).of_emulation());
        let fault = [
            "[  88.1] BUG: unable to handle page fault for address: ffffc90000a3d000",
            "[  88.1] Oops: 0000 [#1] PREEMPT SMP NOPTI",
            "[  88.1] RIP: 0010:bpf_prog_6deef7357e7b4530_mgm_xdp_ingress+0x1c2/0x9a0",
            "[  88.1] Kernel panic - not syncing: Fatal exception in interrupt",
        ]
        .map(String::from);
        assert!(!KernelDied(kernel_death(&fault).unwrap()).of_emulation());
    }
}
