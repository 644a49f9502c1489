// SPDX-License-Identifier: MIT OR Apache-2.0
//! The peers: smcroute, igmpproxy, FRR and mgm-igmpd, each in a namespace with its own
//! configuration, socket and pid file, stopped by pid when dropped.

use super::*;

/// smcrouted in a namespace, with its own configuration, socket and pid file (the Debian
/// package `smcroute`); stopped by pid when dropped.
pub struct Smcroute {
    child: std::process::Child,
    dir: std::path::PathBuf,
    ns: String,
}

impl Smcroute {
    /// Starts smcrouted in `ns` with `ifaces` enabled and the configuration lines `routes`.
    pub fn start(ns: &Netns, ifaces: &[&str], routes: &str) -> anyhow::Result<Self> {
        Self::start_with(ns, ifaces, routes, &[])
    }

    /// The same, with more smcrouted options (`-c SECS`: how often learned routes idle
    /// for that long are flushed).
    pub fn start_with(
        ns: &Netns,
        ifaces: &[&str],
        routes: &str,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        use std::process::{Command, Stdio};
        needs(&[Need::Ipmr]);
        let dir = std::env::temp_dir().join(unique("smcroute"));
        std::fs::create_dir_all(&dir)?;
        let mut conf: String = ifaces.iter().map(|i| format!("phyint {i} enable\n")).collect();
        conf.push_str(routes);
        std::fs::write(dir.join("smcroute.conf"), conf)?;
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "smcrouted", "-n", "-N", "-l", "err", "-f"])
            .arg(dir.join("smcroute.conf"))
            .arg("-u")
            .arg(dir.join("smcroute.sock"))
            .arg("-P")
            .arg(dir.join("smcroute.pid"))
            .args(extra)
            .stdin(Stdio::null())
            .spawn()
            .context("starting smcrouted (apt install smcroute, or cargo xtask setup)")?;
        Ok(Self { child, dir, ns: ns.name.clone() })
    }

    /// Runs `smcroutectl` against this instance.
    pub fn ctl(&self, args: &[&str]) -> anyhow::Result<()> {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &self.ns, "smcroutectl", "-u"])
            .arg(self.dir.join("smcroute.sock"))
            .args(args)
            .output()?;
        anyhow::ensure!(out.status.success(), "smcroutectl {args:?}: {out:?}");
        Ok(())
    }
}

impl Drop for Smcroute {
    fn drop(&mut self) {
        terminate(&mut self.child);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// igmpproxy running in a namespace with its own configuration (foreground, its log in a
/// temporary directory); stopped by pid on drop.
pub struct Igmpproxy {
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl Igmpproxy {
    /// Starts igmpproxy in `ns` with `upstream` and `downstream` interfaces; sources on
    /// `altnet` are accepted upstream.
    pub fn start(
        ns: &Netns,
        upstream: &str,
        downstream: &[&str],
        altnet: &str,
    ) -> anyhow::Result<Self> {
        use std::process::{Command, Stdio};
        needs(&[Need::Ipmr]);
        let dir = std::env::temp_dir().join(unique("igmpproxy"));
        std::fs::create_dir_all(&dir)?;
        let mut conf = format!("quickleave\nphyint {upstream} upstream ratelimit 0 threshold 1\n");
        conf.push_str(&format!("  altnet {altnet}\n"));
        for d in downstream {
            conf.push_str(&format!("phyint {d} downstream ratelimit 0 threshold 1\n"));
        }
        std::fs::write(dir.join("igmpproxy.conf"), conf)?;
        let log = File::create(dir.join("igmpproxy.log"))?;
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "igmpproxy", "-d", "-v"])
            .arg(dir.join("igmpproxy.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting igmpproxy (apt install igmpproxy, or cargo xtask setup)")?;
        Ok(Self { child, dir })
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("igmpproxy.log")).unwrap_or_default()
    }
}

impl Drop for Igmpproxy {
    fn drop(&mut self) {
        terminate(&mut self.child);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Stops a peer daemon by pid (SIGTERM, as its service would) and reaps it.
fn terminate(child: &mut std::process::Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let _ = child.wait();
}

/// FRR's zebra and pimd running in a namespace with their own configuration, vty and zebra
/// sockets and pid files in a temporary directory (in the foreground, logging there); both
/// stopped by pid on drop.
pub struct Frr {
    children: Vec<std::process::Child>,
    pub dir: std::path::PathBuf,
    ns: String,
}

impl Frr {
    /// Starts zebra, then pimd, in `ns` with the configuration `conf` (both read it).
    pub fn start(ns: &Netns, conf: &str) -> anyhow::Result<Self> {
        use std::{os::unix::fs::PermissionsExt as _, process::Command};
        needs(&[Need::Ipmr]);
        let dir = std::env::temp_dir().join(unique("frr"));
        std::fs::create_dir_all(&dir)?;
        // The daemons drop to the frr user, which must write its sockets and pid files here.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))?;
        std::fs::write(dir.join("frr.conf"), conf)?;
        let mut frr = Self { children: Vec::new(), dir, ns: ns.name.clone() };
        for daemon in ["zebra", "pimd"] {
            let child = Command::new("ip")
                .args(["netns", "exec", &ns.name])
                .arg(format!("/usr/lib/frr/{daemon}"))
                .arg("-f")
                .arg(frr.dir.join("frr.conf"))
                .arg("-i")
                .arg(frr.dir.join(format!("{daemon}.pid")))
                .arg("--vty_socket")
                .arg(&frr.dir)
                .arg("-z")
                .arg(frr.dir.join("zserv.api"))
                .args(["-P", "0", "--log"])
                .arg(format!("file:{}", frr.dir.join(format!("{daemon}.log")).display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| format!("starting FRR's {daemon} (apt install frr)"))?;
            frr.children.push(child);
        }
        Ok(frr)
    }

    /// Runs a `vtysh` command against this instance.
    pub fn vtysh(&self, cmd: &str) -> anyhow::Result<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns, "vtysh", "--vty_socket"])
            .arg(&self.dir)
            .args(["-c", cmd])
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        // pimd first: its exit (MRT_DONE) flushes its routes, as on a real router.
        self.children.iter_mut().rev().for_each(terminate);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// mgm-igmpd running in a namespace against an mgmd's socket, with its own control socket
/// and log in a temporary directory; stopped (SIGTERM) on drop, its log shown if the test
/// failed.
pub struct Igmpd {
    child: Child,
    dir: PathBuf,
    pub control: PathBuf,
}

impl Igmpd {
    /// Starts mgm-igmpd in `ns` on `mgmd`'s socket with these arguments, and waits until it
    /// has registered.
    pub fn start(ns: &Netns, mgmd: &Mgmd, args: &[&str]) -> anyhow::Result<Self> {
        let d = Self::spawn(ns, &mgmd.socket, args)?;
        d.wait(Duration::from_secs(10), |v| v["mgmd"].is_object())
            .context("mgm-igmpd did not register with mgmd")?;
        Ok(d)
    }

    /// Starts it without waiting for mgmd (which may not be there).
    pub fn spawn(ns: &Netns, mgmd_socket: &Path, args: &[&str]) -> anyhow::Result<Self> {
        Self::spawn_logging(ns, mgmd_socket, args, "debug")
    }

    /// The same with `RUST_LOG` at `level` (`info`: what a service logs).
    pub fn spawn_logging(
        ns: &Netns,
        mgmd_socket: &Path,
        args: &[&str],
        level: &str,
    ) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(unique("igmpd"));
        std::fs::create_dir_all(&dir)?;
        let control = dir.join("igmpd.sock");
        let log = File::create(dir.join("igmpd.log"))?;
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", ns.name))
            .arg(bin("mgm-igmpd"))
            .arg("--socket")
            .arg(mgmd_socket)
            .arg("--control")
            .arg(&control)
            .args(args)
            .env("RUST_LOG", level)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawning mgm-igmpd")?;
        let mut d = Self { child, dir, control };
        let deadline = Instant::now() + patience(Duration::from_secs(10));
        while d.view().is_err() {
            if let Some(status) = d.child.try_wait()? {
                bail!("mgm-igmpd exited with {status}:\n{}", d.log());
            }
            ensure!(Instant::now() < deadline, "mgm-igmpd did not start:\n{}", d.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(d)
    }

    /// Its view, as `mgm-igmpd show --json` prints it.
    pub fn view(&self) -> anyhow::Result<Value> {
        let mut s = UnixStream::connect(&self.control)?;
        let mut out = String::new();
        std::io::Read::read_to_string(&mut s, &mut out)?;
        Ok(serde_json::from_str(&out)?)
    }

    /// Waits up to `timeout` for the view to satisfy `pred`; the view then.
    pub fn wait(&self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.view()?;
            if pred(&v) {
                return Ok(v);
            }
            ensure!(Instant::now() < deadline, "condition not met within {timeout:?}; view: {v:#}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `mgm-igmpd show` (text, or `--json`) against this instance.
    pub fn show(&self, json: bool) -> anyhow::Result<String> {
        let mut cmd = Command::new(bin("mgm-igmpd"));
        cmd.arg("show").arg("--control").arg(&self.control);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output()?;
        ensure!(out.status.success(), "show: {}", String::from_utf8_lossy(&out.stderr));
        Ok(String::from_utf8(out.stdout)?)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("igmpd.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: the router dies.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Igmpd {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            terminate(&mut self.child);
        }
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- last lines of mgm-igmpd's log ({}) ---", self.dir.display());
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What the mgm-igmpd tests (IGMP and MLD) share: short timers, the time they allow, the
/// view's group lookup, captures over a span.
pub mod igmpd {
    use std::time::{Duration, Instant};

    use serde_json::Value;

    use crate::PacketSocket;

    /// Query interval 3 s, response 1 s, last member query interval 0.2 s, robustness 2.
    pub const TIMERS: [&str; 8] = [
        "--query-interval",
        "3",
        "--query-response-interval",
        "1",
        "--last-member-query-interval",
        "0.2",
        "--robustness",
        "2",
    ];
    /// Group membership interval (3 × 2 + 1) and last member query time (0.2 × 2).
    pub const GMI: Duration = Duration::from_secs(7);
    pub const LMQT: Duration = Duration::from_millis(400);
    /// One report's way through mgm-igmpd and mgmd into the fast path, with room for a
    /// loaded machine.
    pub const SLACK: Duration = Duration::from_millis(1500);

    /// The group's entry in interface `iface`'s view, if it has state there.
    pub fn group<'a>(v: &'a Value, iface: &str, g: impl std::fmt::Display) -> Option<&'a Value> {
        let p = v["interfaces"].as_array()?.iter().find(|p| p["name"] == iface)?;
        p["groups"].as_array()?.iter().find(|x| x["group"] == g.to_string())
    }

    /// Every frame `cap` gets for `d` (what was queued before included).
    pub fn capture_for(cap: &PacketSocket, d: Duration) -> Vec<Vec<u8>> {
        let t0 = Instant::now();
        let mut out = Vec::new();
        loop {
            out.extend(cap.drain(Duration::from_millis(20)).expect("capture"));
            if t0.elapsed() >= d {
                return out;
            }
        }
    }
}
