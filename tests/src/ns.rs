// SPDX-License-Identifier: MIT OR Apache-2.0
//! Namespaces, processes and scratch directories: unique names, commands, the kernel a test needs,
//! veth pairs, where the binaries are.

use super::*;

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

/// A process killed (and reaped) when the test ends, passed or failed.
pub struct Kill(pub Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
