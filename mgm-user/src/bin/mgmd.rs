// SPDX-License-Identifier: MIT OR Apache-2.0
//! mgmd: loads the XDP fast path, attaches it to the managed interfaces, installs static MFEs
//! and serves the control socket.

use std::path::PathBuf;

use anyhow::Context as _;
use aya::programs::XdpMode;
use clap::{Parser, ValueEnum};
use mgm::{
    config::{Config, StaticMfe},
    daemon::{Router, WRITE_BATCH},
    dataplane::{BpfFastPath, LoadOptions, parse_upcall},
    manager::Config as ManagerConfig,
    netdev,
    proto::DEFAULT_SOCKET,
    server::{self, Cmd},
};
use tokio::{
    io::{Interest, unix::AsyncFd},
    signal::unix::{SignalKind, signal},
    sync::mpsc,
};
use tracing::{error, info, warn};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    /// Let the kernel choose (native where the driver supports it).
    Default,
    /// Native (driver) XDP only.
    Driver,
    /// Generic XDP in the kernel stack: works on every interface, slower.
    Skb,
}

/// The mgm daemon.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Control socket path.
    #[arg(long, env = "MGM_SOCKET", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Socket file mode (octal). The default lets only the owner (root) connect; with
    /// --socket-group it defaults to 660.
    #[arg(long, value_parser = parse_mode)]
    socket_mode: Option<u32>,
    /// A group (name or number) whose members may use the socket: the file's group, and the
    /// peer-credential check (root and mgmd's own user always may).
    #[arg(long)]
    socket_group: Option<String>,
    /// Bytes of replies and events a client may leave unread before it is disconnected.
    #[arg(long, default_value_t = server::OUTBOUND_BYTES)]
    client_queue_bytes: usize,
    /// TOML file with `interfaces` and `[[mfe]]` entries.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// An interface to manage (repeatable).
    #[arg(long = "iface", short = 'i')]
    interfaces: Vec<String>,
    /// A static MFE: SOURCE,GROUP,IIF,OIF[+OIF...] (repeatable).
    #[arg(long = "mfe")]
    mfes: Vec<StaticMfe>,
    /// XDP attach mode.
    #[arg(long, value_enum, default_value = "default")]
    xdp_mode: Mode,
    /// Capacity of the MFE table.
    #[arg(long, default_value_t = mgm_common::DEFAULT_MAX_MFES)]
    max_mfes: u32,
    /// bpffs directory where maps and XDP links are pinned: forwarding survives a stop or a
    /// crash of mgmd, and the next mgmd takes over from where it left. One per mgmd instance.
    #[arg(long, default_value = "/sys/fs/bpf/mgm")]
    pin_dir: PathBuf,
    /// Pin nothing: forwarding stops when mgmd exits.
    #[arg(long, conflicts_with = "cleanup")]
    no_pin: bool,
    /// After a restart, how long forwarding entries taken over from the previous mgmd are
    /// kept as they were while clients reconnect and re-create their state.
    #[arg(long, default_value_t = 60)]
    restart_hold_secs: u64,
    /// Remove everything pinned in --pin-dir (detaching XDP from every interface) and exit.
    /// Refused while an mgmd runs on --socket.
    #[arg(long)]
    cleanup: bool,
}

fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 8).map_err(|e| format!("{s:?} is not an octal mode: {e}"))
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut cfg = match &args.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    cfg.interfaces.extend(args.interfaces.iter().cloned());
    cfg.mfes.extend(args.mfes.iter().cloned());
    // First of all: one mgmd per socket (and so per pin directory and fast path).
    let lock = server::lock(&args.socket)?;
    if args.cleanup {
        let removed = mgm::dataplane::remove_pins(&args.pin_dir)
            .with_context(|| format!("removing {}", args.pin_dir.display()))?;
        let what = if removed { "removed" } else { "nothing pinned in" };
        info!(dir = %args.pin_dir.display(), "{what}; XDP detached");
        return Ok(());
    }
    let mode = match args.xdp_mode {
        Mode::Default => XdpMode::Default,
        Mode::Driver => XdpMode::Driver,
        Mode::Skb => XdpMode::Skb,
    };

    let (mut fp, logger) = BpfFastPath::load(&LoadOptions {
        max_mfes: args.max_mfes,
        xdp_mode: mode,
        pin_dir: (!args.no_pin).then(|| args.pin_dir.clone()),
    })
    .context("loading the XDP fast path (needs root, or CAP_BPF + CAP_NET_ADMIN)")?;
    if let Some(logger) = logger {
        // aya-log records from the programs reach our log through this fd.
        // SAFETY: the logger owns its ring buffer's fd, which stays open and unchanged until
        // the logger (moved into the AsyncFd) is dropped.
        let mut fd = unsafe { AsyncFd::register_with_interest(logger, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        tokio::spawn(async move {
            loop {
                let Ok(mut guard) = fd.readable_mut().await else {
                    break;
                };
                guard.get_inner_mut().flush();
                guard.clear_ready();
            }
        });
    } else {
        warn!("no eBPF logger map: program log records are not available");
    }

    let ring = fp.take_upcalls().context("the eBPF object has no upcall ring")?;
    // SAFETY: the ring buffer owns its fd, which stays open until the AsyncFd drops it.
    let mut upcalls = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .map_err(|e| e.into_parts().1)?;
    let adopted = fp.pinned_state().context("reading the pinned fast path")?;
    let mut router = Router::new(fp, ManagerConfig::default());
    if let Some(a) = adopted {
        let hold = std::time::Duration::from_secs(args.restart_hold_secs);
        router.adopt(a, hold).context("taking over the pinned fast path")?;
    }
    for name in cfg.all_interfaces() {
        let dev = netdev::by_name(&name)?;
        router.manage(dev).with_context(|| format!("managing {name}"))?;
    }
    for m in &cfg.mfes {
        router.add_mfe(m).with_context(|| format!("static MFE {m:?}"))?;
    }

    let group = match &args.socket_group {
        None => None,
        Some(g) => Some(match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => nix::unistd::Group::from_name(g)?
                .with_context(|| format!("no group named {g:?}"))?
                .gid
                .as_raw(),
        }),
    };
    let mode = args.socket_mode.unwrap_or(if group.is_some() { 0o660 } else { 0o600 });
    let listener = server::bind(&args.socket, &lock, mode)?;
    if let Some(gid) = group {
        nix::unistd::chown(&args.socket, None, Some(nix::unistd::Gid::from_raw(gid)))
            .with_context(|| format!("giving {} to group {gid}", args.socket.display()))?;
    }
    let access = server::Access { group, queue_bytes: args.client_queue_bytes };
    let (tx, mut rx) = mpsc::channel::<Cmd>(1024);
    tokio::spawn(server::serve(listener, tx, access));
    // Callback deadlines and MFE expiry are checked at this granularity.
    let mut ticker = tokio::time::interval(std::time::Duration::from_millis(250));
    info!(socket = %args.socket.display(), "mgmd ready");

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            Some(cmd) = rx.recv() => router.on_cmd(cmd),
            guard = upcalls.readable_mut() => {
                let mut guard = guard?;
                while let Some(item) = guard.get_inner_mut().next() {
                    match parse_upcall(&item) {
                        Some((u, frame)) => router.upcall(&u, frame),
                        None => warn!(len = item.len(), "malformed upcall record"),
                    }
                }
                guard.clear_ready();
            }
            _ = ticker.tick() => router.tick(),
            // Background fast-path writes, a batch at a time between the other branches.
            _ = std::future::ready(()), if router.pending_writes() > 0 => {
                router.drain(WRITE_BATCH);
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    if args.no_pin {
        info!("shutting down: detaching XDP programs");
    } else {
        info!(pin_dir = %args.pin_dir.display(), "shutting down; forwarding stays in place (pinned); `mgmd --cleanup` removes it");
    }
    if let Err(e) = std::fs::remove_file(&args.socket) {
        error!(error = %e, "removing the socket");
    }
    let _ = std::fs::remove_file(server::lock_path(&args.socket));
    drop(router);
    Ok(())
}
