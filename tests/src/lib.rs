// SPDX-License-Identifier: MIT OR Apache-2.0
//! Test harness: network namespaces joined by veth pairs, mgmd started in the router namespace,
//! raw frames injected at the sender and captured at the receivers.
//!
//! ```text
//!  [sender ns] s0 ──veth── rin [router ns: mgmd + XDP] r1 ──veth── eth0 [recv ns 1]
//!                                                       r2 ──veth── eth0 [recv ns 2] ...
//! ```
//! Every namespace name carries the process id and a counter, so tests run in parallel (and
//! next to an aborted earlier run) without clashes. Everything is removed on drop, including
//! when a test panics.

use std::{
    fs::File,
    net::{IpAddr, Ipv4Addr},
    os::{
        fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::net::UnixStream,
    },
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
use mgm::{
    manager::{Handle, RequestId},
    proto::{self, ErrorCode, MembershipArgs, Method, MfeInfo, Snapshot, Status, WireError},
};
use serde_json::Value;

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// A unique prefix for names made by this test process.
pub fn unique(tag: &str) -> String {
    format!("mgm{}-{}-{tag}", std::process::id(), NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

/// Runs a command and fails with its stderr if it fails.
pub fn run(cmd: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("spawning {cmd} (is it installed?)"))?;
    ensure!(
        out.status.success(),
        "{cmd} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Panics with a clear message unless this process can create namespaces.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests create network namespaces and load XDP programs: run them as root \
         (`cargo xtask test`)"
    );
}

/// `d`, stretched by `MGM_TEST_SLOWDOWN` (a whole number, default 1) for the harness's waits
/// on mgmd and its peers: `cargo xtask test` sets it in a guest QEMU emulates, where loading
/// mgm's programs alone takes seconds. What a test asserts about time is not stretched.
pub fn patience(d: Duration) -> Duration {
    let factor = std::env::var("MGM_TEST_SLOWDOWN").ok().and_then(|v| v.parse().ok());
    d * factor.unwrap_or(1u32).max(1)
}

/// What a test needs of the kernel beyond what mgm needs everywhere. A test that needs one
/// lives in a module named after it (`mod needs_ipmr`, `mod needs_live_frames`), so its
/// name says so: `cargo xtask test` reads the names and runs each test on a kernel that has
/// what it needs (the host, or a QEMU guest). The test also calls [`needs`] first, so that
/// run anywhere else it fails at once with the reason instead of somewhere in the middle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// The kernel's multicast routing, IPv4 and IPv6 (`CONFIG_IP_MROUTE`,
    /// `CONFIG_IPV6_MROUTE`): the real routing daemons and `mgmd --follow-kernel`.
    Ipmr,
    /// XDP test runs with live frames: mgmd forwards the held first packets of a new flow.
    LiveFrames,
}

/// Fails the test with the reason unless this kernel has all of `needs`.
pub fn needs(needs: &[Need]) {
    let k = mgm::features::KernelFeatures::running();
    for need in needs {
        let (has, what) = match need {
            Need::Ipmr => {
                (k.ipmr && k.ip6mr, "multicast routing (CONFIG_IP_MROUTE, CONFIG_IPV6_MROUTE)")
            }
            Need::LiveFrames => (
                k.hold_first_packets,
                "held first packets (XDP test runs with live frames that deliver every copy)",
            ),
        };
        assert!(
            has,
            "this test needs {what}, which this kernel ({}) lacks: `cargo xtask test` runs it \
             in a QEMU guest whose kernel has it",
            k.release
        );
    }
}

/// A named network namespace, deleted on drop (which also deletes its veth ends).
#[derive(Debug)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> anyhow::Result<Self> {
        let name = unique(tag);
        run("ip", &["netns", "add", &name])?;
        let ns = Self { name };
        // No IPv6: keeps MLD/ND chatter out of the packet counts.
        ns.exec("sysctl", &["-qw", "net.ipv6.conf.all.disable_ipv6=1"])?;
        ns.exec("sysctl", &["-qw", "net.ipv6.conf.default.disable_ipv6=1"])?;
        ns.exec("ip", &["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, cmd: &str, args: &[&str]) -> anyhow::Result<String> {
        let mut all = vec!["netns", "exec", &self.name, cmd];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Runs `f` on a thread that has entered this namespace. Sockets created there stay in
    /// the namespace and can be used from any thread afterwards.
    pub fn enter<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = File::open(&path).with_context(|| format!("opening {path}"))?;
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
                .with_context(|| format!("setns {path}"))?;
            f()
        })
        .join()
        .expect("netns thread panicked")
    }

    pub fn ifindex(&self, ifname: &str) -> anyhow::Result<u32> {
        let ifname = ifname.to_owned();
        self.enter(move || Ok(nix::net::if_::if_nametoindex(ifname.as_str())?))
    }

    /// Whether `ifname` is in all-multicast mode: its count (`ip -d link`: "allmulti N"),
    /// which packet sockets hold, is above 0.
    pub fn allmulti(&self, ifname: &str) -> anyhow::Result<bool> {
        let out = self.exec("ip", &["-d", "link", "show", ifname])?;
        let mut words = out.split_whitespace();
        words.by_ref().find(|w| *w == "allmulti");
        Ok(words.next().is_some_and(|n| n != "0"))
    }

    pub fn mac(&self, ifname: &str) -> anyhow::Result<[u8; 6]> {
        let out = self.exec("cat", &[&format!("/sys/class/net/{ifname}/address")]);
        // /sys shows the namespace of whoever mounted it; `ip netns exec` remounts it.
        parse_mac(out?.trim())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

pub fn parse_mac(s: &str) -> anyhow::Result<[u8; 6]> {
    let bytes: Vec<u8> =
        s.split(':').map(|b| u8::from_str_radix(b, 16)).collect::<Result<_, _>>()?;
    bytes.try_into().map_err(|_| anyhow::anyhow!("bad MAC {s:?}"))
}

/// Creates a veth pair with one end in each namespace, both up.
pub fn veth(a: &Netns, a_name: &str, b: &Netns, b_name: &str) -> anyhow::Result<()> {
    // Temporary unique names in the caller's namespace avoid clashes between parallel tests.
    let tmp_a = unique("va");
    let tmp_b = unique("vb");
    let (tmp_a, tmp_b) =
        (&tmp_a[tmp_a.len().saturating_sub(15)..], &tmp_b[tmp_b.len().saturating_sub(15)..]);
    run("ip", &["link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b])?;
    run("ip", &["link", "set", tmp_a, "netns", &a.name, "name", a_name])?;
    run("ip", &["link", "set", tmp_b, "netns", &b.name, "name", b_name])?;
    a.exec("ip", &["link", "set", a_name, "up"])?;
    b.exec("ip", &["link", "set", b_name, "up"])?;
    Ok(())
}

/// An AF_PACKET socket bound to one interface of one namespace.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
}

const ETH_P_ALL: u16 = 0x0003;

impl PacketSocket {
    pub fn open(ns: &Netns, ifname: &str) -> anyhow::Result<Self> {
        let ifname = ifname.to_owned();
        ns.enter(move || {
            let ifindex = nix::net::if_::if_nametoindex(ifname.as_str())?;
            // SAFETY: plain socket(2); the fd is owned right away.
            let raw =
                unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, ETH_P_ALL.to_be() as i32) };
            ensure!(raw >= 0, "socket(AF_PACKET): {}", std::io::Error::last_os_error());
            // SAFETY: raw is a fresh, valid fd.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            // SAFETY: zeroed sockaddr_ll is valid; the fields we need are set below.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = ETH_P_ALL.to_be();
            sll.sll_ifindex = ifindex as i32;
            // SAFETY: sll is a valid sockaddr_ll of the given size.
            let rc = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&sll as *const libc::sockaddr_ll).cast(),
                    size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            ensure!(rc == 0, "bind(AF_PACKET, {ifname}): {}", std::io::Error::last_os_error());
            // Bursts of frames must not overflow the capture before the test drains it.
            set_rcvbuf(&fd, 8 << 20)?;
            Ok(Self { fd })
        })
    }

    pub fn send(&self, frame: &[u8]) -> anyhow::Result<()> {
        // SAFETY: frame is a valid buffer of frame.len() bytes.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        ensure!(n == frame.len() as isize, "send: {}", std::io::Error::last_os_error());
        Ok(())
    }

    /// Receives incoming frames (not our own outgoing ones) until `idle` passes without one.
    pub fn drain(&self, idle: Duration) -> anyhow::Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            let mut pfd =
                libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd.
            let rc = unsafe { libc::poll(&mut pfd, 1, idle.as_millis() as i32) };
            ensure!(rc >= 0, "poll: {}", std::io::Error::last_os_error());
            if rc == 0 {
                return Ok(out);
            }
            let (n, outgoing) = mgm_igmpd::link::recv_frame(self.fd.as_fd(), &mut buf)?;
            if !outgoing {
                out.push(buf[..n].to_vec());
            }
        }
    }
}

impl std::os::fd::AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}

/// Sets SO_RCVBUFFORCE (root may exceed net.core.rmem_max).
pub fn set_rcvbuf(s: &impl std::os::fd::AsRawFd, bytes: i32) -> anyhow::Result<()> {
    // SAFETY: setsockopt with a valid fd and a pointer to an int of the given size.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&bytes as *const i32).cast(),
            size_of::<i32>() as u32,
        )
    };
    ensure!(rc == 0, "SO_RCVBUFFORCE: {}", std::io::Error::last_os_error());
    Ok(())
}

/// The multicast MAC for an IPv4 group (RFC 1112: 01:00:5e + low 23 bits).
pub fn group_mac(group: [u8; 4]) -> [u8; 6] {
    [0x01, 0x00, 0x5e, group[1] & 0x7f, group[2], group[3]]
}

/// An Ethernet/IPv4/UDP frame carrying `payload`.
pub fn udp_frame(
    src_mac: [u8; 6],
    source: [u8; 4],
    group: [u8; 4],
    ttl: u8,
    payload: &[u8],
) -> Vec<u8> {
    let builder = etherparse::PacketBuilder::ethernet2(src_mac, group_mac(group))
        .ipv4(source, group, ttl)
        .udp(40000, 5000);
    let mut out = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut out, payload).expect("writing to a Vec cannot fail");
    out
}

/// Recomputes the IPv4 header checksum of a frame in place (after a test edited the header).
pub fn fix_ipv4_checksum(frame: &mut [u8]) {
    let ihl = ((frame[14] & 0x0f) as usize) * 4;
    frame[24] = 0;
    frame[25] = 0;
    let mut sum: u32 = 0;
    for w in frame[14..14 + ihl].chunks(2) {
        sum += u16::from_be_bytes([w[0], w[1]]) as u32;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let c = !(sum as u16);
    frame[24..26].copy_from_slice(&c.to_be_bytes());
}

/// Where the binaries under test are: `$MGM_BIN_DIR`, else the cargo target dir of this test.
pub fn bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("MGM_BIN_DIR").map(PathBuf::from).unwrap_or_else(|| {
        let exe = std::env::current_exe().expect("current_exe");
        // target/<profile>/deps/<test> → target/<profile>
        exe.parent().and_then(Path::parent).expect("target dir").to_path_buf()
    });
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} not found: build the binaries first (`cargo build --bins`, or use `cargo xtask test`), \
         or point MGM_BIN_DIR at them",
        path.display()
    );
    path
}

/// A directory of a test's own under the temporary directory, removed when the test ends,
/// passed or failed.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(unique(tag));
        std::fs::create_dir_all(&dir).expect("creating a temporary directory");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `mgmctl --socket SOCKET ARGS...`: its exit status, standard output and standard error.
pub fn mgmctl(socket: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(bin("mgmctl")).arg("--socket").arg(socket).args(args).output();
    let out = out.expect("running mgmctl");
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (out.status.code(), text(out.stdout), text(out.stderr))
}

/// mgmd running in a namespace, with its own socket and bpffs pin directory; stopped and its
/// pins removed on drop (even when the test fails).
#[derive(Debug)]
pub struct Mgmd {
    child: Child,
    pub socket: PathBuf,
    pub pin_dir: PathBuf,
    dir: PathBuf,
    ns: String,
    pub args: Vec<String>,
    launch: Launch,
}

/// How mgmd is started besides its arguments: a command it runs under (`setpriv ...`), and
/// environment variables.
#[derive(Clone, Debug, Default)]
pub struct Launch {
    pub wrapper: Vec<String>,
    pub env: Vec<(String, String)>,
    /// A directory for the socket and the log, made by the caller (for a user other than
    /// root, who must be able to create the socket there).
    pub dir: Option<PathBuf>,
}

impl Mgmd {
    pub fn start(ns: &Netns, args: &[String]) -> anyhow::Result<Self> {
        Self::start_with(ns, args, Launch::default())
    }

    pub fn start_with(ns: &Netns, args: &[String], launch: Launch) -> anyhow::Result<Self> {
        let dir = match &launch.dir {
            Some(d) => d.clone(),
            None => std::env::temp_dir().join(unique("mgmd")),
        };
        std::fs::create_dir_all(&dir)?;
        let socket = dir.join("mgmd.sock");
        let pin_dir = Path::new("/sys/fs/bpf").join(unique("pins"));
        let child = Self::spawn(&ns.name, &socket, &pin_dir, &dir, args, &launch)?;
        let ns = ns.name.clone();
        let mut d = Self { child, socket, pin_dir, dir, ns, args: args.to_vec(), launch };
        d.wait_ready()?;
        Ok(d)
    }

    fn spawn(
        ns: &str,
        socket: &Path,
        pin_dir: &Path,
        dir: &Path,
        args: &[String],
        launch: &Launch,
    ) -> anyhow::Result<Child> {
        let log = File::options().create(true).append(true).open(dir.join("mgmd.log"))?;
        // nsenter, not `ip netns exec`: that one remounts /sys, hiding the bpffs the pins
        // live on (and a fresh bpffs there would die with the process).
        Command::new("nsenter")
            .arg(format!("--net=/run/netns/{ns}"))
            .args(&launch.wrapper)
            .arg(bin("mgmd"))
            .arg("--socket")
            .arg(socket)
            .arg("--pin-dir")
            .arg(pin_dir)
            .args(args)
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawning mgmd")
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let limit = patience(Duration::from_secs(20));
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("mgmd exited with {status} during start-up:\n{}", self.log());
            }
            if let Ok(mut c) = Ctl::connect(&self.socket)
                && c.call(proto::Hello {}).is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("mgmd did not answer within {} s:\n{}", limit.as_secs(), self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts mgmd again with the same socket, pin directory and arguments (after `stop` or
    /// `kill`): a restart that takes over the pinned fast path.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        ensure!(self.child.try_wait()?.is_some(), "mgmd is still running");
        let (ns, dir) = (&self.ns, &self.dir);
        self.child = Self::spawn(ns, &self.socket, &self.pin_dir, dir, &self.args, &self.launch)?;
        self.wait_ready()
    }

    /// SIGKILL: a crash, nothing cleaned up.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Runs `mgmd --cleanup` for this instance's pins.
    pub fn cleanup(&self) -> anyhow::Result<()> {
        let out = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.ns))
            .arg(bin("mgmd"))
            .arg("--socket")
            .arg(&self.socket)
            .arg("--pin-dir")
            .arg(&self.pin_dir)
            .arg("--cleanup")
            .output()?;
        ensure!(out.status.success(), "mgmd --cleanup: {}", String::from_utf8_lossy(&out.stderr));
        Ok(())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("mgmd.log")).unwrap_or_default()
    }

    /// mgmd's process id (nsenter execs it in place).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn ctl(&self) -> anyhow::Result<Ctl> {
        Ctl::connect(&self.socket)
    }

    /// Stops mgmd with SIGTERM and returns its exit status.
    pub fn stop(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        let deadline = Instant::now() + patience(Duration::from_secs(10));
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                self.child.kill()?;
                bail!("mgmd ignored SIGTERM for 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Mgmd {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.stop();
        }
        if std::thread::panicking() {
            // The test failed: its daemon's view is the first thing to read.
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- last lines of mgmd's log ---");
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
        // Pinned links would keep XDP attached in namespaces that outlive the test; the pin
        // directory's lock file goes with it (a killed mgmd leaves it behind).
        let _ = std::fs::remove_dir_all(&self.pin_dir);
        let _ = std::fs::remove_file(mgm::server::pins_lock_path(&self.pin_dir));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The tests' client of the control socket: mgm-client's blocking client, with events as
/// JSON values (the tests match on their names) and a patience for each read.
pub struct Ctl {
    client: mgm::client::blocking::Client,
}

impl Ctl {
    pub fn connect(path: &Path) -> anyhow::Result<Self> {
        let mut client = mgm::client::blocking::Client::connect(path)?;
        client.set_timeout(Some(patience(Duration::from_secs(10))))?;
        Ok(Self { client })
    }

    /// Sends a raw line and returns the next reply object (events are set aside).
    pub fn raw(&mut self, line: &[u8]) -> anyhow::Result<Value> {
        Ok(serde_json::from_str(&self.client.raw(line)?)?)
    }

    /// The next event, waiting up to `timeout`.
    pub fn next_event(&mut self, timeout: Duration) -> anyhow::Result<Value> {
        self.client.set_timeout(Some(timeout))?;
        let ev = self.client.next_event();
        self.client.set_timeout(Some(patience(Duration::from_secs(10))))?;
        Ok(serde_json::to_value(ev.context("no event in time")?)?)
    }

    /// Waits for the next event named `name`, returning it and the events skipped on the way.
    pub fn wait_event(
        &mut self,
        name: &str,
        timeout: Duration,
    ) -> anyhow::Result<(Value, Vec<Value>)> {
        let deadline = Instant::now() + timeout;
        let mut skipped = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            ensure!(!left.is_zero(), "no {name} event within {timeout:?}; saw {skipped:?}");
            let v = self.next_event(left)?;
            if v["event"] == name {
                return Ok((v, skipped));
            }
            skipped.push(v);
        }
    }

    /// Sends a request; returns its typed result, or the server's error.
    pub fn request<M: Method>(&mut self, m: M) -> anyhow::Result<Result<M::Reply, WireError>> {
        let id = self.client.send(m)?;
        Ok(self.client.reply::<M>(id)?)
    }

    /// Sends many requests at once (a thousand per write) and returns their results in
    /// order: for loads of requests without a round trip each.
    pub fn pipeline<M: Method>(
        &mut self,
        ms: impl IntoIterator<Item = M>,
    ) -> anyhow::Result<Vec<Result<M::Reply, WireError>>> {
        let mut ms = ms.into_iter().peekable();
        let mut out = Vec::new();
        while ms.peek().is_some() {
            out.extend(self.client.call_all(ms.by_ref().take(1000))?);
        }
        Ok(out)
    }

    /// Sends a request without waiting for its reply; its id (see [`Ctl::reply`]).
    pub fn send<M: Method>(&mut self, m: M) -> anyhow::Result<u64> {
        Ok(self.client.send(m)?)
    }

    /// The reply to the request [`Ctl::send`] sent as `id` (the next reply on the connection).
    pub fn reply<M: Method>(&mut self, id: u64) -> anyhow::Result<M::Reply> {
        Ok(self.client.reply::<M>(id)??)
    }

    /// Sends a request expected to succeed.
    pub fn call<M: Method>(&mut self, m: M) -> anyhow::Result<M::Reply> {
        Ok(self.request(m)??)
    }

    /// The error code of a request expected to fail.
    pub fn call_err<M: Method>(&mut self, m: M) -> anyhow::Result<ErrorCode> {
        match self.request(m)? {
            Ok(r) => bail!("succeeded: {r:?}"),
            Err(e) => Ok(e.code),
        }
    }

    /// RegisterMProtocol (component 1).
    pub fn register(&mut self, protocol: u32) -> anyhow::Result<Handle> {
        Ok(self.call(proto::Register { protocol, component: 1 })?.handle)
    }

    /// TakeInterfaceOwnership of (`ifindex`, no next hop).
    pub fn take(&mut self, handle: Handle, ifindex: u32) -> anyhow::Result<()> {
        let nexthop = Ipv4Addr::UNSPECIFIED.into();
        self.call(proto::TakeInterface { handle, ifindex, nexthop }).map(drop)
    }

    /// ReleaseInterfaceOwnership of (`ifindex`, no next hop).
    pub fn release(&mut self, handle: Handle, ifindex: u32) -> anyhow::Result<()> {
        self.release_side(handle, ifindex, Ipv4Addr::UNSPECIFIED.into())
    }

    /// TakeInterfaceOwnership of (`ifindex`, `nexthop`): `::` for the IPv6 side.
    pub fn take_side(
        &mut self,
        handle: Handle,
        ifindex: u32,
        nexthop: IpAddr,
    ) -> anyhow::Result<()> {
        self.call(proto::TakeInterface { handle, ifindex, nexthop }).map(drop)
    }

    /// ReleaseInterfaceOwnership of (`ifindex`, `nexthop`).
    pub fn release_side(
        &mut self,
        handle: Handle,
        ifindex: u32,
        nexthop: IpAddr,
    ) -> anyhow::Result<()> {
        self.call(proto::ReleaseInterface { handle, ifindex, nexthop }).map(drop)
    }

    /// (*,`group`) on `ifindex`, join and forward state.
    pub fn join(&mut self, handle: Handle, group: &str, ifindex: u32) -> anyhow::Result<()> {
        self.call(proto::AddMembership(membership(handle, group, ifindex))).map(drop)
    }

    /// Registers a routing protocol, takes `take` (their side of `group`'s family) and adds
    /// (*,`group`) on `join`: the usual opening of a test. Returns the handle.
    pub fn protocol_with(
        &mut self,
        protocol: u32,
        take: &[u32],
        join: &[u32],
        group: &str,
    ) -> anyhow::Result<Handle> {
        let h = self.register(protocol)?;
        let side = match group.parse::<IpAddr>()? {
            IpAddr::V4(_) => Family::V4.side(),
            IpAddr::V6(_) => Family::V6.side(),
        };
        for &i in take {
            self.take_side(h, i, side)?;
        }
        for &i in join {
            self.join(h, group, i)?;
        }
        Ok(h)
    }

    /// Waits for the `rpf` and `creation_alert` callbacks of one MFE creation and answers
    /// them with the defaults (the proposed incoming interface, every interface enabled);
    /// returns both events.
    pub fn answer_creation(
        &mut self,
        handle: Handle,
        timeout: Duration,
    ) -> anyhow::Result<(Value, Value)> {
        let (rpf, _) = self.wait_event("rpf", timeout)?;
        let ifindex = rpf["iif"]["ifindex"].as_u64().context("rpf without iif")? as u32;
        let (request, nexthop, upstream) = (request_id(&rpf)?, None, None);
        self.call(proto::AnswerRpf { handle, request, ifindex, nexthop, upstream })?;
        let (alert, _) = self.wait_event("creation_alert", timeout)?;
        let request = request_id(&alert)?;
        self.call(proto::AnswerCreation { handle, request, disabled: vec![] })?;
        Ok((rpf, alert))
    }

    /// Forgets the events received so far (a test that lets thousands of callbacks take
    /// their defaults reads them only to keep its connection).
    pub fn drop_events(&mut self) {
        self.client.take_queued_events();
    }

    /// The `status` reply (table sizes, queued fast-path writes).
    pub fn status(&mut self) -> anyhow::Result<Status> {
        self.call(proto::GetStatus {})
    }

    pub fn show(&mut self) -> anyhow::Result<Snapshot> {
        self.call(proto::Show::default())
    }

    /// Global counter by name.
    pub fn counter(&mut self, name: &str) -> anyhow::Result<u64> {
        self.show()?.counters.get(name).copied().with_context(|| format!("no counter {name}"))
    }

    /// The MFE (source, group) from `show`, if present.
    pub fn mfe(&mut self, source: &str, group: &str) -> anyhow::Result<Option<MfeInfo>> {
        let (s, g): (std::net::IpAddr, std::net::IpAddr) = (source.parse()?, group.parse()?);
        Ok(self.show()?.mfes.into_iter().find(|m| m.source == s && m.group == g))
    }

    /// Waits until the sum of the named counters reaches `target`: the fast path has then
    /// handled every frame the test sent.
    pub fn wait_counters(&mut self, names: &[&str], target: u64) -> anyhow::Result<()> {
        let deadline = Instant::now() + patience(Duration::from_secs(5));
        loop {
            let counters = self.show()?.counters;
            let sum: u64 = names.iter().map(|n| counters.get(*n).copied().unwrap_or(0)).sum();
            if sum >= target {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("counters {names:?} reached {sum}, expected {target}: {counters:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Membership arguments for (*,`group`) on `ifindex`, join and forward state.
pub fn membership(handle: Handle, group: &str, ifindex: u32) -> MembershipArgs {
    MembershipArgs {
        handle,
        source: None,
        source_mask: None,
        group: group.parse().expect("a group address"),
        group_mask: None,
        ifindex,
        nexthop: None,
        flags: 3,
    }
}

/// The request id an event carries (rpf, creation and prune alerts).
pub fn request_id(event: &Value) -> anyhow::Result<RequestId> {
    event["request"].as_u64().map(RequestId).with_context(|| format!("no request in {event}"))
}

/// The standard topology: a sender, a router running mgmd, `n` receivers.
pub struct Topology {
    // Field order is drop order: mgmd goes before its namespaces.
    pub mgmd: Option<Mgmd>,
    pub sender: Netns,
    pub router: Netns,
    pub receivers: Vec<Netns>,
    pub tx: PacketSocket,
    pub sender_mac: [u8; 6],
}

pub const SOURCE: [u8; 4] = [10, 1, 0, 1];
pub const GROUP: [u8; 4] = [239, 1, 1, 1];

/// The address family a test runs in: the same flows, sockets and MGM calls over IPv4 or
/// IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// The flows' group: [`GROUP`], or ff3e::8000:1.
    pub fn group(self) -> std::net::IpAddr {
        match self {
            Self::V4 => Ipv4Addr::from(GROUP).into(),
            Self::V6 => std::net::Ipv6Addr::new(0xff3e, 0, 0, 0, 0, 0, 0x8000, 1).into(),
        }
    }

    /// The sender's address: [`SOURCE`], or 2001:db8:1::1.
    pub fn source(self) -> std::net::IpAddr {
        match self {
            Self::V4 => Ipv4Addr::from(SOURCE).into(),
            Self::V6 => std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1).into(),
        }
    }

    /// The interfaces' side of this family (the next hop of a broadcast link).
    pub fn side(self) -> std::net::IpAddr {
        match self {
            Self::V4 => Ipv4Addr::UNSPECIFIED.into(),
            Self::V6 => std::net::Ipv6Addr::UNSPECIFIED.into(),
        }
    }

    /// A UDP frame from `mac` and made-up source number `i` to the group, port `port`.
    pub fn frame_from(self, mac: [u8; 6], i: u32, port: u16, payload: &[u8]) -> Vec<u8> {
        let b = etherparse::PacketBuilder::ethernet2(mac, [0; 6]);
        let (b, dst_mac) = match self {
            Self::V4 => (b.ipv4((0x0a03_0000 + i).to_be_bytes(), GROUP, 8), group_mac(GROUP)),
            Self::V6 => {
                let mut src = [0x20, 0x01, 0x0d, 0xb8, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
                src[12..].copy_from_slice(&i.to_be_bytes());
                let std::net::IpAddr::V6(g) = self.group() else { unreachable!() };
                (b.ipv6(src, g.octets(), 8), group_mac6(&g.octets()))
            }
        };
        let b = b.udp(40000, port);
        let mut out = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut out, payload).expect("writing to a Vec cannot fail");
        out[..6].copy_from_slice(&dst_mac);
        out
    }
}

impl Topology {
    pub fn new(receivers: usize) -> anyhow::Result<Self> {
        require_root();
        let sender = Netns::new("snd")?;
        let router = Netns::new("rtr")?;
        veth(&sender, "s0", &router, "rin")?;
        let mut rx = Vec::new();
        for i in 1..=receivers {
            let ns = Netns::new(&format!("rx{i}"))?;
            veth(&router, &format!("r{i}"), &ns, "eth0")?;
            // XDP frames redirected into a veth are dropped unless its peer runs XDP or has
            // GRO on (docs/building.md).
            ns.exec("ethtool", &["-K", "eth0", "gro", "on"])?;
            rx.push(ns);
        }
        let tx = PacketSocket::open(&sender, "s0")?;
        let sender_mac = sender.mac("s0")?;
        Ok(Self { mgmd: None, sender, router, receivers: rx, tx, sender_mac })
    }

    /// Starts mgmd managing `rin` and every `r<i>`, with extra arguments.
    pub fn start(&mut self, extra: &[&str]) -> anyhow::Result<&Mgmd> {
        self.start_with(extra, Launch::default())
    }

    /// [`Topology::start`], launched as `launch` says.
    pub fn start_with(&mut self, extra: &[&str], launch: Launch) -> anyhow::Result<&Mgmd> {
        let mut args = vec!["--iface".to_owned(), "rin".to_owned()];
        for i in 1..=self.receivers.len() {
            args.push("--iface".into());
            args.push(format!("r{i}"));
        }
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        self.mgmd = Some(Mgmd::start_with(&self.router, &args, launch)?);
        Ok(self.mgmd.as_ref().expect("just set"))
    }

    pub fn ctl(&self) -> anyhow::Result<Ctl> {
        self.mgmd.as_ref().context("mgmd not started")?.ctl()
    }

    /// Gives every host an address so ordinary sockets work: the sender 10.1.0.1/24 (the
    /// [`SOURCE`]) with a multicast route out of s0, receiver i 10.2.i.2/24.
    pub fn add_addresses(&self) -> anyhow::Result<()> {
        self.sender.exec("ip", &["addr", "add", "10.1.0.1/24", "dev", "s0"])?;
        self.sender.exec("ip", &["route", "add", "224.0.0.0/4", "dev", "s0"])?;
        // veth offloads the UDP checksum (leaves it partial, to be finished by the stack), and
        // an XDP redirect cannot carry that state to the next device: receivers would count
        // InCsumErrors. A physical NIC always sends complete checksums; so does s0 now.
        self.sender.exec("ethtool", &["-K", "s0", "tx", "off"])?;
        for (i, ns) in self.receivers.iter().enumerate() {
            ns.exec("ip", &["addr", "add", &format!("10.2.{}.2/24", i + 1), "dev", "eth0"])?;
            ns.exec("ip", &["route", "add", "default", "dev", "eth0"])?;
        }
        Ok(())
    }

    /// Addresses for ordinary sockets of `family` ([`Topology::add_addresses`] for IPv4; for
    /// IPv6 the sender gets 2001:db8:1::1/64 and receiver i 2001:db8:2:i::2/64, without
    /// duplicate address detection).
    pub fn add_addresses_for(&self, family: Family) -> anyhow::Result<()> {
        if family == Family::V4 {
            return self.add_addresses();
        }
        ipv6_on(&self.sender, "s0")?;
        self.sender.exec("ip", &["-6", "addr", "add", "2001:db8:1::1/64", "dev", "s0", "nodad"])?;
        self.sender.exec("ethtool", &["-K", "s0", "tx", "off"])?;
        for (i, ns) in self.receivers.iter().enumerate() {
            ipv6_on(ns, "eth0")?;
            let a = format!("2001:db8:2:{}::2/64", i + 1);
            ns.exec("ip", &["-6", "addr", "add", &a, "dev", "eth0", "nodad"])?;
        }
        Ok(())
    }

    /// A UDP socket in receiver `i` bound to `port` and joined to `family`'s group on eth0.
    pub fn udp_receiver_for(
        &self,
        family: Family,
        i: usize,
        port: u16,
    ) -> anyhow::Result<std::net::UdpSocket> {
        let std::net::IpAddr::V6(g) = family.group() else {
            return self.udp_receiver(i, GROUP, port);
        };
        let s = ipv6_listener(&self.receivers[i], g, port)?;
        // A burst must not overflow the default ~200 KiB buffer before the test reads.
        set_rcvbuf(&s, 8 << 20)?;
        s.set_read_timeout(Some(Duration::from_millis(300)))?;
        Ok(s)
    }

    /// A UDP socket in the sender namespace bound to `family`'s source, with this hop limit.
    pub fn udp_sender_for(&self, family: Family, hops: u32) -> anyhow::Result<std::net::UdpSocket> {
        if family == Family::V4 {
            return self.udp_sender(hops);
        }
        let source = family.source();
        self.sender.enter(move || {
            let s = std::net::UdpSocket::bind((source, 0))?;
            let sock = socket2::SockRef::from(&s);
            sock.set_multicast_if_v6(nix::net::if_::if_nametoindex("s0")?)?;
            sock.set_multicast_hops_v6(hops)?;
            Ok(s)
        })
    }

    /// A UDP socket in receiver `i` (0-based) bound to `port` and joined to `group` on eth0.
    pub fn udp_receiver(
        &self,
        i: usize,
        group: [u8; 4],
        port: u16,
    ) -> anyhow::Result<std::net::UdpSocket> {
        let local: std::net::Ipv4Addr = [10, 2, i as u8 + 1, 2].into();
        self.receivers[i].enter(move || {
            let s = std::net::UdpSocket::bind(("0.0.0.0", port))?;
            s.join_multicast_v4(&group.into(), &local)?;
            // A burst must not overflow the default ~200 KiB buffer before the test reads.
            set_rcvbuf(&s, 8 << 20)?;
            s.set_read_timeout(Some(Duration::from_millis(300)))?;
            Ok(s)
        })
    }

    /// A UDP socket in the sender namespace, bound to the source address, with this TTL.
    pub fn udp_sender(&self, ttl: u32) -> anyhow::Result<std::net::UdpSocket> {
        self.sender.enter(move || {
            let s = std::net::UdpSocket::bind("10.1.0.1:0")?;
            s.set_multicast_ttl_v4(ttl)?;
            Ok(s)
        })
    }

    /// Opens a capture on every receiver (before sending).
    pub fn captures(&self) -> anyhow::Result<Vec<PacketSocket>> {
        self.receivers.iter().map(|ns| PacketSocket::open(ns, "eth0")).collect()
    }

    /// A UDP frame from the sender to `GROUP` with this payload and TTL.
    pub fn frame(&self, ttl: u8, payload: &[u8]) -> Vec<u8> {
        udp_frame(self.sender_mac, SOURCE, GROUP, ttl, payload)
    }
}

/// IPv6 multicast's destination MAC: 33:33 and the group's low 32 bits.
pub fn group_mac6(g: &[u8; 16]) -> [u8; 6] {
    [0x33, 0x33, g[12], g[13], g[14], g[15]]
}

/// An Ethernet/IPv6/UDP frame from `src_mac` and `source` to `group`.
pub fn udp6_frame(
    src_mac: [u8; 6],
    source: [u8; 16],
    group: [u8; 16],
    hop_limit: u8,
    payload: &[u8],
) -> Vec<u8> {
    let builder = etherparse::PacketBuilder::ethernet2(src_mac, group_mac6(&group))
        .ipv6(source, group, hop_limit)
        .udp(40000, 5000);
    let mut out = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut out, payload).expect("writing to a Vec cannot fail");
    out
}

/// A UDP socket in `ns` bound to `port` and joined to `group` on eth0 by IPV6_JOIN_GROUP
/// (any source): the host stack reports it with MLD.
pub fn ipv6_listener(
    ns: &Netns,
    group: std::net::Ipv6Addr,
    port: u16,
) -> anyhow::Result<std::net::UdpSocket> {
    ns.enter(move || {
        let s = std::net::UdpSocket::bind(("::", port))?;
        s.join_multicast_v6(&group, nix::net::if_::if_nametoindex("eth0")?)?;
        Ok(s)
    })
}

/// IPv6 on `dev` in `ns` (the harness turns it off everywhere), without duplicate address
/// detection, so the link-local address is there at once.
pub fn ipv6_on(ns: &Netns, dev: &str) -> anyhow::Result<()> {
    for k in ["all", "default", dev] {
        ns.exec("sysctl", &["-qw", &format!("net.ipv6.conf.{k}.accept_dad=0")])?;
        ns.exec("sysctl", &["-qw", &format!("net.ipv6.conf.{k}.disable_ipv6=0")])?;
    }
    Ok(())
}

/// One forwarded copy against the frame that was sent, in either family: the destination
/// MAC is the group's (01:00:5e or 33:33 and the group's low bits), the source MAC the
/// router's outgoing port, the TTL or hop limit one less (IPv4: the header checksum valid),
/// addresses and length unchanged, the UDP payload intact and its checksum valid.
pub fn assert_forwarded_copy(sent: &[u8], got: &[u8], out_mac: [u8; 6]) {
    use etherparse::{LinkSlice, NetSlice, SlicedPacket, TransportSlice};
    let s = SlicedPacket::from_ethernet(sent).expect("sent frame parses");
    let g = SlicedPacket::from_ethernet(got).expect("forwarded frame parses");
    let Some(LinkSlice::Ethernet2(ge)) = &g.link else {
        panic!("forwarded frame is not Ethernet: {got:02x?}");
    };
    assert_eq!(ge.source(), out_mac, "source MAC is the router's outgoing port");
    let (Some(TransportSlice::Udp(gu)), Some(TransportSlice::Udp(su))) =
        (&g.transport, &s.transport)
    else {
        panic!("not UDP: {got:02x?}");
    };
    assert_eq!(gu.payload(), su.payload(), "payload intact");
    let udp = gu.to_header();
    let (group_mac, checksum) = match (&g.net, &s.net) {
        (Some(NetSlice::Ipv4(gi)), Some(NetSlice::Ipv4(si))) => {
            let (gh, sh) = (gi.header().to_header(), si.header().to_header());
            assert_eq!(gh.time_to_live, sh.time_to_live - 1, "TTL decremented by exactly one");
            assert_eq!(gh.header_checksum, gh.calc_header_checksum(), "IPv4 header checksum valid");
            assert_eq!((gh.source, gh.destination), (sh.source, sh.destination));
            (group_mac(gh.destination), udp.calc_checksum_ipv4(&gh, gu.payload()).unwrap())
        }
        (Some(NetSlice::Ipv6(gi)), Some(NetSlice::Ipv6(si))) => {
            let (gh, sh) = (gi.header().to_header(), si.header().to_header());
            assert_eq!(gh.hop_limit, sh.hop_limit - 1, "hop limit decremented by exactly one");
            assert_eq!((gh.source, gh.destination), (sh.source, sh.destination));
            assert_eq!(gh.payload_length, sh.payload_length);
            (group_mac6(&gh.destination), udp.calc_checksum_ipv6(&gh, gu.payload()).unwrap())
        }
        _ => panic!("forwarded frame is not of the sent frame's family: {got:02x?}"),
    };
    assert_eq!(ge.destination(), group_mac, "destination MAC is the group's");
    assert_eq!(udp.checksum, checksum, "UDP checksum valid");
}

/// Frames among `frames` whose UDP payload starts with `magic`.
pub fn with_magic<'a>(frames: &'a [Vec<u8>], magic: &[u8]) -> Vec<&'a Vec<u8>> {
    frames.iter().filter(|f| f.windows(magic.len()).any(|w| w == magic)).collect()
}

/// A unique payload marker for one test.
pub fn magic(tag: &str) -> Vec<u8> {
    format!("MGMTEST-{}-", unique(tag)).into_bytes()
}

/// A paced flow of `seq:<n>` datagrams from the sender (a real UDP socket) to [`GROUP`]:5000,
/// and a thread per receiver recording every number that arrives.
pub struct SeqFlow {
    last_sent: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop_tx: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stop_rx: std::sync::Arc<std::sync::atomic::AtomicBool>,
    sender: std::thread::JoinHandle<u64>,
    receivers: Vec<std::thread::JoinHandle<std::collections::BTreeSet<u64>>>,
    /// Numbers that arrived more than once at a receiver.
    duplicates: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl SeqFlow {
    /// Starts receivers `0..receivers` (UDP sockets joined on eth0) and the sender at `pps`.
    /// Needs [`Topology::add_addresses`].
    pub fn start(t: &Topology, receivers: usize, pps: u64) -> anyhow::Result<Self> {
        Self::start_for(t, Family::V4, receivers, pps)
    }

    /// The same in `family` (addresses from [`Topology::add_addresses_for`]).
    pub fn start_for(
        t: &Topology,
        family: Family,
        receivers: usize,
        pps: u64,
    ) -> anyhow::Result<Self> {
        use std::sync::{
            Arc,
            atomic::{AtomicBool, AtomicU64, Ordering},
        };
        let stop_rx = Arc::new(AtomicBool::new(false));
        let duplicates = Arc::new(AtomicU64::new(0));
        let mut rx = Vec::new();
        for i in 0..receivers {
            let s = t.udp_receiver_for(family, i, 5000)?;
            s.set_read_timeout(Some(Duration::from_millis(50)))?;
            let stop = stop_rx.clone();
            let dups = duplicates.clone();
            rx.push(std::thread::spawn(move || {
                let mut seen = std::collections::BTreeSet::new();
                let mut buf = [0u8; 256];
                loop {
                    match s.recv(&mut buf) {
                        Ok(n) => {
                            if let Some(v) = std::str::from_utf8(&buf[..n])
                                .ok()
                                .and_then(|t| t.strip_prefix("seq:"))
                                .and_then(|t| t.parse().ok())
                                && !seen.insert(v)
                            {
                                dups.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Err(_) if stop.load(Ordering::Relaxed) => return seen,
                        Err(_) => {}
                    }
                }
            }));
        }
        let tx = t.udp_sender_for(family, 8)?;
        let group = family.group();
        let last_sent = Arc::new(AtomicU64::new(0));
        let stop_tx = Arc::new(AtomicBool::new(false));
        let sender = {
            let (last_sent, stop) = (last_sent.clone(), stop_tx.clone());
            std::thread::spawn(move || {
                let gap = Duration::from_nanos(1_000_000_000 / pps);
                let start = Instant::now();
                let mut seq = 1u64;
                while !stop.load(Ordering::Relaxed) {
                    // Published before the send: a number read after some event bounds
                    // everything sent before that event.
                    last_sent.store(seq, Ordering::SeqCst);
                    let _ = tx.send_to(format!("seq:{seq}").as_bytes(), (group, 5000));
                    seq += 1;
                    let next = start + gap * seq as u32;
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
                seq - 1
            })
        };
        Ok(Self { last_sent, stop_tx, stop_rx, sender, receivers: rx, duplicates })
    }

    /// The highest number sent so far (or being sent).
    pub fn last_sent(&self) -> u64 {
        self.last_sent.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Counts datagrams that arrive at a receiver that already had their number (read it
    /// after [`SeqFlow::finish`] for the whole flow).
    pub fn duplicates(&self) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
        self.duplicates.clone()
    }

    /// Stops the sender, lets the last packets arrive, and returns the last number sent and
    /// what each receiver saw.
    pub fn finish(self) -> (u64, Vec<std::collections::BTreeSet<u64>>) {
        use std::sync::atomic::Ordering;
        self.stop_tx.store(true, Ordering::Relaxed);
        let sent = self.sender.join().expect("sender thread");
        std::thread::sleep(Duration::from_millis(200));
        self.stop_rx.store(true, Ordering::Relaxed);
        (sent, self.receivers.into_iter().map(|r| r.join().expect("receiver thread")).collect())
    }
}

/// Numbers missing between the first one `seen` and `last`.
pub fn gaps(seen: &std::collections::BTreeSet<u64>, last: u64) -> Vec<u64> {
    let Some(&first) = seen.first() else { return (1..=last).collect() };
    gaps_between(seen, first, last)
}

/// Numbers in `from..=to` missing from `seen`.
pub fn gaps_between(seen: &std::collections::BTreeSet<u64>, from: u64, to: u64) -> Vec<u64> {
    (from..=to).filter(|s| !seen.contains(s)).collect()
}

/// The CPU model, for benchmark reports.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default()
}

/// The value after `--name` in a command line, for the benchmark examples.
pub fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1)?.parse().ok()
}

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

/// An Ethernet frame carrying the IPv4 datagram `ip` to the multicast address in it.
pub fn ip_frame(src_mac: [u8; 6], ip: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + ip.len());
    f.extend(group_mac([ip[16], ip[17], ip[18], ip[19]]));
    f.extend(src_mac);
    f.extend([0x08, 0x00]);
    f.extend(ip);
    f
}

/// Whether `m` is a v3 report (IGMPv3 or MLDv2) with a record of `kind` for `group`.
pub fn has_record<A: PartialEq>(
    m: &mgm_igmpd::packet::Message<A>,
    group: A,
    kind: mgm_igmpd::packet::RecordType,
) -> bool {
    use mgm_igmpd::packet::Message;
    matches!(m, Message::ReportV3(r) if r.iter().any(|r| r.group == group && r.kind == kind))
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

/// rtnetlink messages built byte by byte, as a hostile process would send them (the
/// kernel's layouts: `nlmsghdr`, `ifinfomsg`, `rtmsg`, `rtattr`, `rtnexthop`).
pub mod forge {
    use super::Netns;

    fn header(ty: u16, body: &[u8]) -> Vec<u8> {
        let mut m = ((16 + body.len()) as u32).to_ne_bytes().to_vec();
        m.extend(ty.to_ne_bytes());
        m.extend([0u8; 10]); // flags, sequence, port id
        m.extend(body);
        m
    }

    fn attr(ty: u16, value: &[u8]) -> Vec<u8> {
        let mut a = ((4 + value.len()) as u16).to_ne_bytes().to_vec();
        a.extend(ty.to_ne_bytes());
        a.extend(value);
        a.resize(a.len().next_multiple_of(4), 0);
        a
    }

    /// `RTM_DELLINK` for `ifindex`.
    pub fn del_link(ifindex: u32) -> Vec<u8> {
        let mut body = vec![0u8; 16];
        body[4..8].copy_from_slice(&ifindex.to_ne_bytes());
        header(libc::RTM_DELLINK, &body)
    }

    /// `RTM_NEWROUTE` of ipmr (`RTNL_FAMILY_IPMR`): (source, group) from `iif` to `oifs`.
    pub fn ipmr_route(source: [u8; 4], group: [u8; 4], iif: u32, oifs: &[u32]) -> Vec<u8> {
        // family, dst_len, src_len, tos, table, protocol, scope, type; flags
        let mut body = vec![128, 32, 32, 0, libc::RT_TABLE_DEFAULT, 0, 0, libc::RTN_MULTICAST];
        body.extend(0u32.to_ne_bytes());
        body.extend(attr(libc::RTA_SRC, &source));
        body.extend(attr(libc::RTA_DST, &group));
        body.extend(attr(libc::RTA_IIF, &iif.to_ne_bytes()));
        let hops: Vec<u8> = oifs
            .iter()
            .flat_map(|i| [8u16.to_ne_bytes().as_slice(), &[0, 1], &i.to_ne_bytes()].concat())
            .collect();
        body.extend(attr(libc::RTA_MULTIPATH, &hops));
        header(libc::RTM_NEWROUTE, &body)
    }

    /// Sends `message` from a process socket in `ns` to rtnetlink multicast `group` (needs
    /// CAP_NET_ADMIN there, as root in the namespace has).
    pub fn multicast(ns: &Netns, group: u32, message: Vec<u8>) -> anyhow::Result<()> {
        ns.enter(move || {
            // SAFETY: plain socket calls on a socket this closure owns and closes.
            unsafe {
                let fd = libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE);
                anyhow::ensure!(fd >= 0, "netlink socket: {}", std::io::Error::last_os_error());
                let mut to: libc::sockaddr_nl = std::mem::zeroed();
                to.nl_family = libc::AF_NETLINK as u16;
                to.nl_groups = 1 << (group - 1);
                let n = libc::sendto(
                    fd,
                    message.as_ptr().cast(),
                    message.len(),
                    0,
                    (&to as *const libc::sockaddr_nl).cast(),
                    size_of::<libc::sockaddr_nl>() as u32,
                );
                let err = std::io::Error::last_os_error();
                libc::close(fd);
                anyhow::ensure!(n == message.len() as isize, "netlink sendto: {err}");
            }
            Ok(())
        })
    }
}
