// SPDX-License-Identifier: MIT OR Apache-2.0
//! The run loop and the tasks that feed it: the control socket's connections, the upcall ring,
//! the kernel monitor and a ticker all become [`Input`]s on one channel; [`run`] hands them to
//! the daemon one at a time and applies queued fast-path writes in between.

use std::{future::Future, path::PathBuf, time::Duration};

use anyhow::Context as _;
use aya::maps::{MapData, RingBuf};
use sd_notify::NotifyState;
use tokio::{
    io::{Interest, unix::AsyncFd},
    sync::mpsc,
    time::{Instant, MissedTickBehavior},
};
use tracing::{error, info, warn};

use super::{Daemon, Input, Limits, TICK, ToKernel};
use crate::{
    config::Config,
    dataplane::{BpfFastPath, Dataplane, LoadOptions, ProgramLogger, upcall},
    kernel::{self, Monitor},
    manager::Settings,
    server,
};

/// Inputs waiting for the daemon at most; a source that gets ahead waits (the upcall ring
/// and the kernel socket then buffer, and count what they drop).
const INPUT_QUEUE: usize = 1024;

/// Feeds `daemon` from `inputs` until `shutdown` resolves or every sender is gone: a tick
/// every [`TICK`], background work (queued fast-path writes, releases in steps, what falls due) a
/// step at a time between inputs, and what it asks of the kernel handed to `kernel`.
pub async fn run<D: Dataplane>(
    daemon: &mut Daemon<D>,
    inputs: &mut mpsc::Receiver<Input>,
    mut kernel: impl FnMut(ToKernel),
    shutdown: impl Future<Output = ()>,
) {
    let start = Instant::now();
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        let input = tokio::select! {
            () = &mut shutdown => break,
            i = inputs.recv() => match i {
                Some(i) => i,
                None => break,
            },
            _ = ticker.tick() => Input::Tick,
            () = std::future::ready(()), if daemon.has_background_work(start.elapsed()) => {
                daemon.background(start.elapsed());
                // Let the connections' tasks run between steps: a reply or a client reading
                // its alerts must not wait for the whole of the background work.
                tokio::task::yield_now().await;
                continue;
            }
        };
        daemon.handle(start.elapsed(), input);
        for r in daemon.take_for_kernel() {
            kernel(r);
        }
    }
}

/// How mgmd runs (from its command line and configuration file).
#[derive(Debug)]
pub struct Options {
    pub socket: PathBuf,
    pub socket_mode: u32,
    /// The group whose members may use the socket.
    pub socket_group: Option<u32>,
    /// Connections one (non-root) user may have open.
    pub conns_per_uid: usize,
    /// Bytes of replies and events a client may leave unread.
    pub queue_bytes: usize,
    /// The configuration file, which SIGHUP and `reload` read again.
    pub config_file: Option<PathBuf>,
    /// That file as read at start (its settings are already in these options).
    pub file: Option<Config>,
    /// The command line's interfaces, static MFEs and boundaries (kept across reloads).
    pub cmdline: Config,
    /// Checks the file's settings (its start-time options) as a start would: a reload
    /// refuses a file the next start would refuse.
    pub check_settings: fn(&std::path::Path, &Config) -> anyhow::Result<()>,
    pub load: LoadOptions,
    /// How long adopted MFEs are held after a restart.
    pub restart_hold: Duration,
    pub limits: Limits,
    /// New MFEs one incoming interface may start per second.
    pub flow_creation_rate: u32,
    /// Where to serve Prometheus metrics (`--metrics`), if anywhere.
    pub metrics: Option<std::net::SocketAddr>,
    /// Follow these kernel multicast routing tables, with this heartbeat (`--follow-kernel`).
    pub follow: Option<(super::follow::Tables, Duration)>,
}

/// mgmd: takes the socket's lock, loads (or takes over) the fast path, follows the kernel,
/// serves the socket until SIGTERM or SIGINT. Forwarding stays in place after it returns
/// when the fast path is pinned.
pub async fn mgmd(mut opts: Options) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let config = Config::with_cmdline(opts.file.take(), &opts.cmdline)?;
    // First of all: one mgmd per socket (and so per pin directory and fast path).
    let lock = server::lock(&opts.socket)?;
    let _pins = opts.load.pin_dir.as_deref().map(server::lock_pins).transpose()?;
    // What this kernel lacks is said now, not found out later as a failure.
    let kernel = crate::features::KernelFeatures::running();
    info!("{kernel}");
    if opts.follow.is_some() {
        if let Some(why) = kernel.cannot_follow() {
            anyhow::bail!(why);
        }
        kernel.follow_gaps().iter().for_each(|gap| warn!("{gap}"));
    }
    kernel.fast_path_gaps().iter().for_each(|gap| info!("{gap}"));
    let (mut fp, logger) = BpfFastPath::load(&opts.load).map_err(|e| {
        let hint = if e.needs_capability() {
            format!(" ({})", crate::dataplane::permission_hint())
        } else {
            String::new()
        };
        anyhow::Error::new(e).context(format!("loading the XDP fast path{hint}"))
    })?;
    fp.verified().iter().for_each(|v| info!("{v}"));
    match logger {
        Some(l) => spawn_logger(l)?,
        None => warn!("no eBPF logger map: program log records are not available"),
    }
    let ring = fp.take_upcalls().context("the eBPF object has no upcall ring")?;
    let adopted = fp.pinned_state().context("reading the pinned fast path")?;

    // Subscribe before the dump, so no change falls between them.
    let monitor = Monitor::open(opts.follow.is_some())
        .context("subscribing to the kernel's link, neighbour (and multicast route) events")?;
    let snapshot = Monitor::snapshot().context("reading the kernel's links and neighbours")?;
    let start = Instant::now();
    let settings = Settings { creations_per_sec: opts.flow_creation_rate, ..Settings::default() };
    let liveness = fp.liveness().context("opening the configuration map for the liveness stamp")?;
    let replayer = fp.replayer();
    let mut daemon = Daemon::new(fp, settings);
    if let Some(r) = &replayer {
        daemon.count_replay_losses(r.dropped());
    }
    daemon.set_limits(opts.limits);
    daemon.handle(start.elapsed(), Input::Kernel(snapshot));
    // Before anything is installed (a restart's entries included).
    daemon.set_boundaries(&config.boundaries);
    if let Some(a) = adopted {
        daemon
            .adopt(a, start.elapsed(), opts.restart_hold)
            .context("taking over the pinned fast path")?;
    }
    daemon.apply_config(&config, start.elapsed()).map_err(|e| crate::config::Refused(e.message))?;
    info!(
        interfaces = config.all_interfaces().len(),
        static_mfes = config.mfes.len(),
        boundaries = config.boundaries.len(),
        "configuration applied"
    );
    if let Some(path) = opts.config_file.clone() {
        let (cmdline, check) = (opts.cmdline.clone(), opts.check_settings);
        let running = config.settings.clone();
        daemon.set_config_source(Box::new(move || {
            let cfg = Config::resolve(Some(&path), &cmdline)?;
            check(&path, &cfg)?;
            // Each key once, in order, whichever side has it.
            let keys = running.keys().chain(cfg.settings.keys());
            let changed: std::collections::BTreeSet<&String> =
                keys.filter(|k| running.get(*k) != cfg.settings.get(*k)).collect();
            if !changed.is_empty() {
                warn!(
                    ?changed,
                    "settings changed in the file apply at the next start (systemctl restart mgmd)"
                );
            }
            Ok(cfg)
        }));
    }
    if opts.follow.is_none() {
        daemon.drop_followed();
    }
    if let Some((tables, heartbeat)) = opts.follow {
        daemon.follow_kernel(tables, heartbeat).context("following the kernel's table")?;
        let mfc = Monitor::mfc_snapshot().context("reading the kernel's multicast routes")?;
        daemon.handle(start.elapsed(), Input::Kernel(mfc));
        info!(
            table = tables.ipv4,
            table6 = tables.ipv6,
            heartbeat_ms = heartbeat.as_millis() as u64,
            "following the kernel's multicast routing table"
        );
    }

    let listener = server::bind(&opts.socket, &lock, opts.socket_mode)?;
    if let Some(gid) = opts.socket_group {
        // Without CAP_CHOWN (the unit's case) only to a group mgmd is a member of.
        nix::unistd::chown(&opts.socket, None, Some(nix::unistd::Gid::from_raw(gid))).map_err(
            |e| {
                let hint = if e == nix::errno::Errno::EPERM {
                    ": mgmd must be a member of the group (SupplementaryGroups= in its unit: \
                     systemctl edit mgmd) or have CAP_CHOWN"
                } else {
                    ""
                };
                anyhow::anyhow!("giving {} to group {gid}: {e}{hint}", opts.socket.display())
            },
        )?;
    }
    match server::raise_fd_limit() {
        Ok(n) => info!(max_open_files = n, "file descriptor limit raised"),
        Err(e) => warn!(error = %e, "could not raise the file descriptor limit"),
    }
    let access = server::Access {
        group: opts.socket_group,
        queue_bytes: opts.queue_bytes,
        conns_per_uid: opts.conns_per_uid,
    };
    let metrics = match opts.metrics {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("serving metrics on {addr}"))?,
        ),
        None => None,
    };
    let (tx, mut rx) = mpsc::channel::<Input>(INPUT_QUEUE);
    if let Some(listener) = metrics {
        info!(addr = %listener.local_addr()?, "serving Prometheus metrics on /metrics");
        tokio::spawn(crate::metrics::serve(listener, tx.clone()));
    }
    tokio::spawn(server::serve(listener, tx.clone(), access));
    tokio::spawn(read_upcalls(ring, tx.clone()));
    if opts.follow.is_some() {
        tokio::spawn(watch_local_groups(tx.clone()));
    }
    tokio::spawn(reload_on_hangup(tx.clone())?);
    tokio::spawn(follow_kernel(monitor, tx.clone()));
    info!(socket = %opts.socket.display(), "mgmd ready");
    // Only now: clients started after mgmd (`After=mgmd.service`) find the socket served.
    mgm_util::notify_service_manager(&[NotifyState::Ready, NotifyState::Status("serving")]);

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    };
    let icmp6 = kernel::Icmp6::open();
    let to_kernel = |r| match r {
        ToKernel::Solicit(ifindex, ip) => kernel::solicit(ifindex, ip),
        ToKernel::PacketTooBig { to, message } => icmp6.send(to, &message),
        ToKernel::Replay { ifindex, frame } => {
            if let Some(r) = &replayer {
                r.send(ifindex, frame);
            }
        }
        ToKernel::SayAlive => {
            if let Err(e) = liveness.write() {
                warn!(error = %e, "writing the liveness stamp");
            }
        }
        ToKernel::LookUpLink(ifindex) => {
            // A netlink round trip: off the loop, answered as an input.
            let tx = tx.clone();
            tokio::task::spawn_blocking(move || {
                let dev = kernel::link(ifindex).ok().flatten();
                let _ = tx.blocking_send(Input::LinkLookedUp { ifindex, dev });
            });
        }
    };
    run(&mut daemon, &mut rx, to_kernel, shutdown).await;
    mgm_util::notify_service_manager(&[NotifyState::Stopping]);
    match &opts.load.pin_dir {
        None => info!("shutting down: detaching XDP programs"),
        Some(dir) => {
            info!(pin_dir = %dir.display(), "shutting down; forwarding stays in place (pinned); `mgmd --cleanup` removes it")
        }
    }
    if let Err(e) = std::fs::remove_file(&opts.socket) {
        error!(error = %e, "removing the socket");
    }
    Ok(())
}

/// SIGHUP: the configuration is read again and what changed is applied, with the service
/// manager told (`RELOADING=1`, then `READY=1` once it is done, applied or not).
fn reload_on_hangup(
    tx: mpsc::Sender<Input>,
) -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    Ok(async move {
        while hup.recv().await.is_some() {
            info!("SIGHUP: reloading the configuration");
            let mut state = vec![NotifyState::Reloading];
            state.extend(NotifyState::monotonic_usec_now().ok());
            mgm_util::notify_service_manager(&state);
            let (done, outcome) = tokio::sync::oneshot::channel();
            if tx.send(Input::Reload { done }).await.is_err() {
                return;
            }
            let _ = outcome.await;
            mgm_util::notify_service_manager(&[NotifyState::Ready]);
        }
    })
}

/// aya-log records from the programs reach our log through the logger's fd, which must be
/// polled for as long as the programs run.
fn spawn_logger(logger: ProgramLogger) -> anyhow::Result<()> {
    // SAFETY: the logger owns its ring buffer's fd, which stays open and unchanged until the
    // logger (moved into the AsyncFd) is dropped.
    let mut fd = unsafe { AsyncFd::register_with_interest(logger, Interest::READABLE) }
        .map_err(|e| e.into_parts().1)?;
    tokio::spawn(async move {
        while let Ok(mut guard) = fd.readable_mut().await {
            guard.get_inner_mut().flush();
            guard.clear_ready();
        }
    });
    Ok(())
}

/// The upcall ring, as inputs. A record that does not hold what its header says is logged
/// and skipped.
async fn read_upcalls(ring: RingBuf<MapData>, tx: mpsc::Sender<Input>) {
    // SAFETY: the ring buffer owns its fd, which stays open until the AsyncFd drops it.
    let fd = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) };
    let mut fd = match fd.map_err(|e| e.into_parts().1) {
        Ok(fd) => fd,
        Err(e) => return error!(error = %e, "cannot poll the upcall ring: no upcalls"),
    };
    loop {
        let Ok(mut guard) = fd.readable_mut().await else { return };
        // The ring is drained before waiting again (its readiness is edge-triggered).
        let mut batch = Vec::new();
        while let Some(item) = guard.get_inner_mut().next() {
            match upcall::decode(&item) {
                Some(u) => batch.push(Input::Upcall(u)),
                None => warn!(len = item.len(), "malformed upcall record"),
            }
        }
        guard.clear_ready();
        for input in batch {
            if tx.send(input).await.is_err() {
                return;
            }
        }
    }
}

/// How often the router's own group memberships are read (no event announces them).
const LOCAL_GROUPS_EVERY: Duration = Duration::from_millis(500);

/// The groups the router itself has joined, as inputs (the follower keeps the entries of
/// those groups in the kernel, which delivers them locally too).
async fn watch_local_groups(tx: mpsc::Sender<Input>) {
    let mut every = tokio::time::interval(LOCAL_GROUPS_EVERY);
    loop {
        every.tick().await;
        match kernel::local_delivery() {
            Ok(ev) => {
                if tx.send(Input::Kernel(ev)).await.is_err() {
                    return;
                }
            }
            Err(e) => warn!(error = %e, "reading /proc/net/igmp"),
        }
    }
}

/// The kernel's link and neighbour events, as inputs.
async fn follow_kernel(mut monitor: Monitor, tx: mpsc::Sender<Input>) {
    loop {
        match monitor.next().await {
            Ok(events) => {
                for e in events {
                    if tx.send(Input::Kernel(e)).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                error!(error = %e, "reading kernel events; trying again in a second");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
