// SPDX-License-Identifier: MIT OR Apache-2.0
//! A fresh Debian 12 booted with systemd as its PID 1 (systemd-nspawn), for the package as an
//! operator runs it: installed with dpkg, driven with systemctl, read with journalctl.
//!
//! Each container is the test's own: its root unpacked from the cached fresh Debian
//! (`MGM_FRESH_DEBIAN`, made by `cargo xtask test`), its own network namespace (also
//! attached under a unique name, so the test's namespaces can be wired to it with veth pairs)
//! and its own bpffs, mounted in a mount namespace that ends with the container. Dropping it
//! kills its PID 1, which ends every process in it, and removes its files.

use super::*;

/// The package under test: `MGM_DEB`, else the newest in target/debian (`cargo xtask
/// package`).
pub fn package() -> PathBuf {
    let path = std::env::var_os("MGM_DEB").map(PathBuf::from).unwrap_or_else(|| built("mgm"));
    assert!(path.is_file(), "no package: build it with `cargo xtask package` (or set MGM_DEB)");
    path
}

/// The newest `NAME_*.deb` in target/debian (`cargo xtask package` builds mgm, libmgm0 and
/// libmgm-dev there).
pub fn built(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debian");
    let mut debs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let file = p.file_name().unwrap_or_default().to_string_lossy();
            file.starts_with(&format!("{name}_")) && file.ends_with(".deb")
        })
        .collect();
    debs.sort_by_key(|p| p.metadata().and_then(|m| m.modified()).ok());
    let deb = debs.pop().unwrap_or_default();
    assert!(
        deb.is_file(),
        "no {name} package in {}: build it with `cargo xtask package`",
        dir.display()
    );
    deb
}

/// A booted container.
pub struct Container {
    /// Its network namespace, attached as `/run/netns/<name>`.
    pub net: Netns,
    init: u32,
    nspawn: Child,
    dir: TempDir,
}

impl Container {
    /// Unpacks the fresh Debian and boots it; returns once systemd says the system is up.
    pub fn boot(tag: &str) -> anyhow::Result<Self> {
        require_root();
        let tar = std::env::var_os("MGM_FRESH_DEBIAN").map(PathBuf::from).context(
            "no fresh Debian: `cargo xtask test` makes one (or set MGM_FRESH_DEBIAN to a \
             debootstrap tarball with systemd, dbus and iproute2)",
        )?;
        let dir = TempDir::new(tag);
        let root = dir.0.join("root");
        let bpffs = dir.0.join("bpffs");
        std::fs::create_dir_all(&root)?;
        std::fs::create_dir_all(&bpffs)?;
        run("tar", &["-xf", &tar.to_string_lossy(), "-C", &root.to_string_lossy()])?;
        // The boot record in utmp and the remount of a root that is a directory here are
        // nothing of mgm's, and each unit failed once with five containers booting at once
        // (the boot then reads "degraded"): masked.
        for unit in ["systemd-update-utmp.service", "systemd-remount-fs.service"] {
            std::os::unix::fs::symlink("/dev/null", root.join("etc/systemd/system").join(unit))?;
        }
        let name = unique(tag);
        let console = File::create(dir.0.join("console.log"))?;
        // nspawn's defaults leave out what mgmd needs: CAP_BPF and CAP_PERFMON, the bpf()
        // system call (its seccomp filter answers EPERM), a bpffs.
        let script = "mount -t bpf -o mode=700 bpf \"$1\" && shift && exec systemd-nspawn \"$@\"";
        let nspawn = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", script, "sh"])
            .arg(&bpffs)
            .arg("-D")
            .arg(&root)
            .args([
                "--boot",
                "--register=no",
                "--keep-unit",
                "--console=pipe",
                "--private-network",
                "--capability=CAP_BPF,CAP_PERFMON",
                "--system-call-filter=bpf",
            ])
            .arg(format!("--machine={name}"))
            .arg(format!("--bind={}:/sys/fs/bpf", bpffs.display()))
            .stdin(Stdio::null())
            .stdout(console.try_clone()?)
            .stderr(console)
            .spawn()
            .context("starting systemd-nspawn (Debian's systemd-container)")?;
        let nspawn_pid = nspawn.id();
        let console_log = dir.0.join("console.log");
        let said = || std::fs::read_to_string(&console_log).unwrap_or_default();
        let deadline = Instant::now() + patience(Duration::from_secs(60));
        // unshare and sh exec into nspawn: its child is the container's PID 1.
        let init: u32 = loop {
            let children =
                std::fs::read_to_string(format!("/proc/{nspawn_pid}/task/{nspawn_pid}/children"))
                    .unwrap_or_default();
            if let Some(pid) = children.split_whitespace().next().and_then(|p| p.parse().ok())
                && std::fs::read_link(format!("/proc/{pid}/exe"))
                    .is_ok_and(|e| e.ends_with("systemd"))
            {
                break pid;
            }
            ensure!(
                Instant::now() < deadline,
                "the container's systemd never started:\n{}",
                said()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        run("ip", &["netns", "attach", &name, &init.to_string()])?;
        let c = Self { net: Netns { name }, init, nspawn, dir };
        loop {
            let state = c.sh("systemctl is-system-running")?;
            let state = state.stdout.trim();
            if state == "running" {
                break;
            }
            if state == "degraded" {
                let failed = c.ok("systemctl --failed")?;
                let why = c.sh(
                    "for u in $(systemctl --failed --plain --no-legend | cut -d' ' -f1); do \
                     journalctl -b --no-pager -o short-monotonic -u \"$u\"; done",
                )?;
                bail!("the container booted degraded:\n{failed}\n{}", why.stdout);
            }
            ensure!(
                Instant::now() < deadline,
                "the container's systemd is still {state:?} after a minute:\n{}",
                said()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(c)
    }

    /// The container's network namespace under another name of its own (dropping it
    /// removes the name, not the namespace).
    pub fn netns(&self, tag: &str) -> anyhow::Result<Netns> {
        let name = unique(tag);
        run("ip", &["netns", "attach", &name, &self.init.to_string()])?;
        Ok(Netns { name })
    }

    /// The container's root directory, seen from the host.
    pub fn root(&self) -> PathBuf {
        self.dir.0.join("root")
    }

    /// Runs `cmd` (sh) in the container as root, in all of its namespaces.
    pub fn sh(&self, cmd: &str) -> anyhow::Result<Output> {
        let out = self.command(cmd).stdin(Stdio::null()).output()?;
        Ok(Output {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// `cmd` (sh) to run in the container, in all its namespaces, as root, in a clean
    /// environment.
    pub fn command(&self, cmd: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.args(["-t", &self.init.to_string(), "-a", "--", "sh", "-c", cmd])
            .env_clear()
            .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .env("SYSTEMD_COLORS", "0")
            .env("SYSTEMD_PAGER", "")
            .env("LANG", "C.UTF-8");
        c
    }

    /// [`Container::sh`], failing with what it printed unless it succeeded.
    pub fn ok(&self, cmd: &str) -> anyhow::Result<String> {
        let out = self.sh(cmd)?;
        if !out.status.success() && cmd.contains("systemctl") {
            // A unit that failed says why in the journal, not on systemctl's output.
            let log = self.sh("journalctl -q -n 60 -o short-monotonic --no-pager")?;
            bail!(
                "in the container, `{cmd}`: {}\n{out}\nthe journal's end:\n{}",
                out.status,
                log.stdout
            );
        }
        ensure!(out.status.success(), "in the container, `{cmd}`: {}\n{out}", out.status);
        Ok(out.stdout)
    }

    /// Copies a host file into the container (its /tmp is a tmpfs of its own: use /var/tmp).
    pub fn copy_in(&self, from: &Path, to: &str) -> anyhow::Result<()> {
        let dest = self.root().join(to.trim_start_matches('/'));
        std::fs::copy(from, &dest)
            .with_context(|| format!("copying {} to {}", from.display(), dest.display()))?;
        Ok(())
    }

    /// Writes a file in the container.
    pub fn write(&self, path: &str, contents: &str) -> anyhow::Result<()> {
        let dest = self.root().join(path.trim_start_matches('/'));
        std::fs::write(&dest, contents).with_context(|| format!("writing {}", dest.display()))
    }

    /// Installs (or reinstalls: an upgrade to the same version) the package under test, as
    /// an operator would: `dpkg -i`. Returns what dpkg said.
    pub fn install(&self) -> anyhow::Result<String> {
        self.copy_in(&package(), "/var/tmp/mgm.deb")?;
        self.ok("dpkg -i /var/tmp/mgm.deb 2>&1")
    }

    /// A unit's main process id (0: not running).
    pub fn main_pid(&self, unit: &str) -> anyhow::Result<u32> {
        let out = self.ok(&format!("systemctl show -P MainPID {unit}"))?;
        Ok(out.trim().parse()?)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // The end of its PID 1 ends every process of its PID namespace, nsenter's too; the
        // bpffs and its pins go with nspawn's mount namespace.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.init as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.nspawn.wait();
    }
}

/// What a command in the container printed.
pub struct Output {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.stdout, self.stderr)
    }
}
