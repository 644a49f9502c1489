// SPDX-License-Identifier: MIT OR Apache-2.0
//! mgmd under test: started in a namespace with its own socket and pins, its log kept, and `Ctl`,
//! the tests' client of its socket (mgm-client's blocking client).

use super::*;

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

    /// Deletes (*,`group`) on `ifindex`.
    pub fn leave(&mut self, handle: Handle, group: &str, ifindex: u32) -> anyhow::Result<()> {
        self.call(proto::DeleteMembership(membership(handle, group, ifindex))).map(drop)
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
    pub fn mfe(&mut self, source: &str, group: &str) -> anyhow::Result<Option<MfeReply>> {
        let (s, g): (std::net::IpAddr, std::net::IpAddr) = (source.parse()?, group.parse()?);
        Ok(self.show()?.mfes.into_iter().find(|m| m.mfe.source == s && m.mfe.group == g))
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
