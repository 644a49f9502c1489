// SPDX-License-Identifier: MIT OR Apache-2.0
//! mgmd: parses its command line and configuration file and starts the daemon
//! (`mgm::daemon::run::mgmd`).

use std::{path::PathBuf, time::Duration};

use anyhow::Context as _;
use aya::programs::XdpMode;
use clap::{CommandFactory as _, FromArgMatches as _, Parser, ValueEnum};
use mgm::{
    config::{Config, ConfigError, StaticMfe},
    daemon::{
        Limits,
        follow::Tables,
        run::{Options, mgmd},
    },
    dataplane::LoadOptions,
    manager::Settings,
    proto::DEFAULT_SOCKET,
    server,
};
use mgm_util::manual::Page;
use tracing::info;

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Mode {
    /// Let the kernel choose (native where the driver supports it).
    Default,
    /// Native (driver) XDP only.
    Driver,
    /// Generic XDP in the kernel stack: works on every interface, slower.
    Skb,
}

/// The manual's examples and sections (also shown after `--help`'s options).
const PAGE: Page = Page {
    examples: &[
        ("mgmd --config /etc/mgm/mgmd.toml", "as the service runs it (mgmd.service)"),
        ("mgmd -i eth0 -i eth1 -i eth2", "manage three interfaces; routing daemons install routes"),
        (
            "mgmd -i eth0 -i eth1 --mfe 10.0.0.1,239.1.1.1,eth0,eth1",
            "and one static route, from eth0 to eth1",
        ),
        ("mgmd --follow-kernel -i eth0 -i eth1", "forward what smcroute or FRR put in ipmr"),
        ("mgmd --check-config --config /etc/mgm/mgmd.toml", "check the file and exit"),
        ("mgmd --check-kernel", "what this kernel offers mgm, and what a missing feature costs"),
        ("mgmd -c /etc/mgm/mgmd.toml --metrics 127.0.0.1:9750", "and serve Prometheus metrics"),
        ("mgmd --cleanup", "stop forwarding: remove what a stopped mgmd left pinned"),
    ],
    sections: &[
        (
            "SIGNALS",
            "SIGHUP: read the configuration file again and apply what changed: interfaces \
             to manage or no longer manage, static MFEs to add, change or remove, scope \
             boundaries. Entries and interfaces that did not change are not touched. A file \
             that cannot be applied whole (a syntax error, an interface that does not exist) \
             changes nothing. `mgmctl reload` does the same and reports what changed.\n\n\
             SIGTERM, SIGINT: stop. Forwarding stays in place when the fast path is pinned \
             (the default), and the next mgmd takes it over.",
        ),
        (
            "CAPABILITIES",
            "mgmd needs CAP_BPF (maps and programs), CAP_NET_ADMIN (attaching the XDP and TC \
             programs), CAP_PERFMON (the verifier accepts the programs' pointer arithmetic \
             only with it) and CAP_NET_RAW (the ICMPv6 Packet Too Big messages); nothing else, \
             as root or as another user. The service unit grants exactly these \
             (CapabilityBoundingSet).",
        ),
        (
            "FILES",
            "/etc/mgm/mgmd.toml: the configuration (mgmd.toml(5)).\n\n\
             /run/mgm/mgmd.sock: the control socket.\n\n\
             /sys/fs/bpf/mgm: the pinned fast path (bpffs).",
        ),
        ("SEE ALSO", "mgmctl(8), mgm-igmpd(8), mgmd.toml(5), systemctl(1)"),
    ],
};

/// mgmd, the mgm multicast forwarding daemon: serves the MGM API to routing protocols on a
/// Unix socket and forwards multicast in XDP from the entries they install.
#[derive(Debug, Parser)]
#[command(name = "mgmd", version, after_help = PAGE.examples_help())]
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
    /// Connections one user (uid) may have open at once; root's are not counted.
    #[arg(long, default_value_t = server::CONNS_PER_UID)]
    max_conns_per_uid: usize,
    /// Bytes of replies and events a client may leave unread before it is disconnected (at
    /// least 65536, the longest line).
    #[arg(long, default_value_t = server::OUTBOUND_BYTES,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new()
              .range(server::MIN_OUTBOUND_BYTES as u64..))]
    client_queue_bytes: usize,
    /// TOML file (mgmd.toml(5)): interfaces, static MFEs, scope boundaries (applied again on
    /// reload), and any option here by its long name (applied at start; the command line wins).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// An interface to manage (repeatable).
    #[arg(long = "iface", short = 'i')]
    interfaces: Vec<String>,
    /// A static MFE: SOURCE,GROUP,IIF,OIF[+OIF...] (repeatable).
    #[arg(long = "mfe")]
    mfes: Vec<StaticMfe>,
    /// An administrative scope boundary: IFACE:SCOPE, the scope a number (3-13) or realm,
    /// admin, site, organisation (repeatable). Groups of that scope or smaller (IPv6 by
    /// their scope field, IPv4 239.0.0.0/8 by RFC 2365) neither leave nor enter through IFACE.
    #[arg(long = "scope-boundary", value_name = "IFACE:SCOPE")]
    boundaries: Vec<mgm::scope::Boundary>,
    /// XDP attach mode.
    #[arg(long, value_enum, default_value = "default")]
    xdp_mode: Mode,
    /// Capacity of the MFE table (1 to 16777216).
    #[arg(long, default_value_t = mgm_common::DEFAULT_MAX_MFES,
          value_parser = clap::value_parser!(u32).range(1..=MAX_MFES_LIMIT))]
    max_mfes: u32,
    /// bpffs directory where maps and XDP links are pinned: forwarding survives a stop or a
    /// crash of mgmd, and the next mgmd takes over from where it left. One per mgmd instance.
    #[arg(long, default_value = "/sys/fs/bpf/mgm")]
    pin_dir: PathBuf,
    /// Pin nothing: forwarding stops when mgmd exits.
    #[arg(long, conflicts_with = "cleanup")]
    no_pin: bool,
    /// After a restart, how long forwarding entries taken over from the previous mgmd are
    /// kept as they were while clients reconnect and re-create their state (at most a day).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(..=86_400))]
    restart_hold_secs: u64,
    /// New flows (MFEs created by traffic) one incoming interface may start per second; more
    /// wait for the next second (their packets go to the kernel meanwhile).
    #[arg(long, default_value_t = Settings::default().creations_per_sec)]
    flow_creation_rate: u32,
    /// Clients (handles) one connection may register.
    #[arg(long, default_value_t = Limits::default().handles_per_conn)]
    max_handles_per_conn: usize,
    /// Interfaces (ifindex, next hop) one user's clients may own, over all its connections
    /// (root's: per connection).
    #[arg(long, default_value_t = Limits::default().interfaces_per_conn)]
    max_interfaces_per_conn: usize,
    /// Membership entries one user's clients may hold, counted as interfaces are.
    #[arg(long, default_value_t = Limits::default().memberships_per_conn)]
    max_memberships_per_conn: usize,
    /// Group enumerations one connection's clients may have open.
    #[arg(long, default_value_t = Limits::default().enums_per_conn)]
    max_enums_per_conn: usize,
    /// Static MFEs in all (configuration and add_mfe); default: half of --max-mfes, so that
    /// statics never take the room of the entries traffic creates.
    #[arg(long)]
    max_static_mfes: Option<usize>,
    /// Follow the kernel's multicast routing table (what smcroute, igmpproxy or FRR's pimd
    /// program through the mroute socket): its entries between managed interfaces (--iface)
    /// are forwarded in XDP, the kernel keeps everything else.
    #[arg(long)]
    follow_kernel: bool,
    /// The kernel's IPv4 multicast routing table followed (`ip mroute show table N`).
    #[arg(long, default_value_t = mgm::daemon::follow::DEFAULT_TABLE, requires = "follow_kernel")]
    mroute_table: u32,
    /// The kernel's IPv6 multicast routing table followed (`ip -6 mroute show table N`).
    #[arg(long, default_value_t = mgm::daemon::follow::DEFAULT_TABLE6, requires = "follow_kernel")]
    mroute6_table: u32,
    /// Milliseconds between two packets of a followed entry left to the kernel (per CPU),
    /// which keeps the kernel's counters moving for the daemons that read them; 0: none (at
    /// most an hour).
    #[arg(long, default_value_t = 1000, requires = "follow_kernel",
          value_parser = clap::value_parser!(u64).range(..=3_600_000))]
    heartbeat_ms: u64,
    /// Serve Prometheus metrics (OpenMetrics text) on http://ADDR:PORT/metrics, e.g.
    /// 127.0.0.1:9750. Off by default.
    #[arg(long, value_name = "ADDR:PORT")]
    metrics: Option<std::net::SocketAddr>,
    /// Check the configuration (file and command line) and exit: 0 if it can be loaded.
    #[arg(long)]
    check_config: bool,
    /// Say what this kernel offers mgm (multicast routing for --follow-kernel, XDP
    /// metadata, XDP live frames, TCX) and what each missing feature costs, load the programs
    /// (nothing attached) and say what the verifier made of each, then exit: 1 if it refused
    /// one.
    #[arg(long)]
    check_kernel: bool,
    /// Remove everything pinned in --pin-dir (detaching XDP from every interface) and exit.
    /// Refused while an mgmd runs on --socket.
    #[arg(long)]
    cleanup: bool,
}

impl Args {
    /// The command line's share of the configuration (kept across reloads).
    fn cmdline(&self) -> Config {
        Config {
            interfaces: self.interfaces.clone(),
            mfes: self.mfes.clone(),
            boundaries: self.boundaries.clone(),
            ..Config::default()
        }
    }
}

/// The largest MFE table mgmd sets up (`--max-mfes`): 16 Mi entries, a few GiB of maps.
const MAX_MFES_LIMIT: i64 = 1 << 24;

fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 8).map_err(|e| format!("{s:?} is not an octal mode: {e}"))
}

fn main() -> std::process::ExitCode {
    if let Some(dir) = mgm_util::manual::requested() {
        return mgm_util::manual::generate_and_exit(Args::command(), &PAGE, &dir);
    }
    mgm_util::init_logging();
    match start() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Logged, so that the journal has it at error priority.
            tracing::error!("{e:#}");
            let config = e.downcast_ref::<ConfigError>().is_some()
                || e.downcast_ref::<mgm::config::Refused>().is_some();
            std::process::ExitCode::from(if config { mgm_util::EX_CONFIG } else { 1 })
        }
    }
}

/// Options that are not settings of the file: what it does instead of running, and the
/// entries the file has keys of its own for.
const NOT_SETTINGS: &[&str] =
    &["config", "iface", "mfe", "scope-boundary", "check-config", "check-kernel", "cleanup"];

/// The command line, with the file's settings (`--config`) as the options' defaults: the
/// command line overrides the file, the file the built-in defaults. Each value is checked
/// as the command line's would be, and an error names the file.
/// The file comes back as read: its entries are what mgmd starts with (read once, so the
/// settings and the entries are of one version of the file).
fn parse_args() -> anyhow::Result<(Args, Option<Config>)> {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let args = Args::parse_from(&argv);
    let Some(path) = args.config.clone() else { return Ok((args, None)) };
    if args.check_kernel {
        return Ok((args, None));
    }
    let file = Config::load(&path)?;
    let cmd = with_settings(Args::command(), &path, &file)?;
    Ok((Args::from_arg_matches(&cmd.get_matches_from(argv))?, Some(file)))
}

/// `cmd` with the settings of `file` (read from `path`) as its options' defaults.
fn with_settings(
    mut cmd: clap::Command,
    path: &std::path::Path,
    file: &Config,
) -> anyhow::Result<clap::Command> {
    for (key, value) in &file.settings {
        let id = setting(&cmd, path, key, value)?;
        cmd = cmd.mut_arg(id, |a| a.default_value(value.clone()));
    }
    Ok(cmd)
}

/// The option a setting of the file at `path` sets, its value checked as the command
/// line's would be.
fn setting(
    cmd: &clap::Command,
    path: &std::path::Path,
    key: &str,
    value: &str,
) -> Result<clap::Id, ConfigError> {
    let arg = cmd
        .get_arguments()
        .find(|a| a.get_long() == Some(key) && !NOT_SETTINGS.contains(&key))
        .ok_or_else(|| Config::bad_setting(path, key, value, "not an option of mgmd"))?;
    let bad = |why: String| Config::bad_setting(path, key, value, why);
    // The value as the command line's: through the option alone (what it requires or
    // conflicts with is the command line's business).
    let flag = matches!(arg.get_action(), clap::ArgAction::SetTrue);
    let argv = match (flag, value) {
        (true, "true") => vec![format!("--{key}")],
        (true, "false") => vec![],
        (true, _) => return Err(bad("true or false".into())),
        (false, _) => vec![format!("--{key}={value}")],
    };
    let reset = || clap::builder::Resettable::<clap::Id>::Reset;
    let alone = arg.clone().requires(reset()).conflicts_with(reset());
    clap::Command::new("mgmd")
        .no_binary_name(true)
        .arg(alone)
        .try_get_matches_from(argv)
        .map_err(|e| bad(first_line(&e.to_string())))?;
    Ok(arg.get_id().clone())
}

/// What a reload checks of the file's settings: each one's value.
fn check_settings(path: &std::path::Path, cfg: &Config) -> anyhow::Result<()> {
    let cmd = Args::command();
    for (key, value) in &cfg.settings {
        setting(&cmd, path, key, value)?;
    }
    if let Some(g) = cfg.settings.get("socket-group") {
        group_id(g)?;
    }
    Ok(())
}

/// clap's message without its "error: " and usage lines.
fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().trim_start_matches("error: ").to_owned()
}

fn start() -> anyhow::Result<()> {
    let (args, file) = parse_args()?;
    if args.cleanup {
        return cleanup(&args);
    }
    if args.check_config {
        return check_config(&args, file);
    }
    if args.check_kernel {
        return check_kernel();
    }
    let opts = options(args, file)?;
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(mgmd(opts))
}

/// `--cleanup`: removes the pinned fast path, refused while an mgmd runs on the socket.
fn cleanup(args: &Args) -> anyhow::Result<()> {
    let _lock = server::lock(&args.socket)?;
    let _pins = server::lock_pins(&args.pin_dir)?;
    let removed = mgm::dataplane::remove_pins(&args.pin_dir)
        .with_context(|| format!("removing {}", args.pin_dir.display()))?;
    let what = if removed { "removed" } else { "nothing pinned in" };
    info!(dir = %args.pin_dir.display(), "{what}; XDP detached");
    Ok(())
}

/// `--check-kernel`: what this kernel offers, and what its verifier makes of the programs.
/// Exits 1 if the verifier refuses one. A reader that goes away (`| head`) ends the output.
fn check_kernel() -> anyhow::Result<()> {
    use std::io::Write as _;
    let kernel = mgm::features::KernelFeatures::running();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{kernel}");
    for gap in kernel.follow_gaps().iter().chain(&kernel.fast_path_gaps()) {
        let _ = writeln!(out, "  {gap}");
    }
    // Whether the verifier takes the programs is a fact of this kernel too.
    match mgm::dataplane::BpfFastPath::check_programs() {
        Ok(verified) => verified.iter().for_each(|v| {
            let _ = writeln!(out, "{v}");
        }),
        Err(e) if e.needs_capability() => {
            let hint = mgm::dataplane::permission_hint();
            let _ = writeln!(out, "programs not checked: {hint} ({e})");
        }
        Err(e) => {
            let _ = writeln!(out, "programs: {e}");
            anyhow::bail!("the fast path cannot load on this kernel");
        }
    }
    Ok(())
}

/// `--check-config`: what mgmd would start with, or why it could not: everything a start
/// (and a reload) checks of the configuration, the limits and this namespace's interfaces
/// included; only the fast path is not loaded.
fn check_config(args: &Args, file: Option<Config>) -> anyhow::Result<()> {
    let cfg = Config::with_cmdline(file, &args.cmdline())?;
    cfg.check_statics(static_limit(args))?;
    let interfaces = cfg.all_interfaces();
    if let Some(n) = interfaces.iter().find(|n| nix::net::if_::if_nametoindex(n.as_str()).is_err())
    {
        return Err(mgm::config::Refused(format!(
            "no interface named {n:?} in this network namespace: mgmd would not start"
        ))
        .into());
    }
    socket_group(args)?;
    println!(
        "configuration OK: {} interfaces, {} static MFEs, {} scope boundaries, {} settings",
        interfaces.len(),
        cfg.mfes.len(),
        cfg.boundaries.len(),
        cfg.settings.len()
    );
    Ok(())
}

/// `--socket-group` as a group id: a number, or a name of this system's.
fn socket_group(args: &Args) -> anyhow::Result<Option<u32>> {
    args.socket_group.as_deref().map(group_id).transpose()
}

/// A group's id, from its number or its name.
fn group_id(g: &str) -> anyhow::Result<u32> {
    if let Ok(gid) = g.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(g)? {
        Some(group) => Ok(group.gid.as_raw()),
        None => Err(mgm::config::Refused(format!("socket-group: no group named {g:?}")).into()),
    }
}

/// Static MFEs allowed: `--max-static-mfes`, by default half of `--max-mfes`.
fn static_limit(args: &Args) -> usize {
    args.max_static_mfes.unwrap_or(args.max_mfes as usize / 2)
}

/// The command line and the configuration file, merged.
fn options(args: Args, file: Option<Config>) -> anyhow::Result<Options> {
    let cmdline = args.cmdline();
    let socket_group = socket_group(&args)?;
    let xdp_mode = match args.xdp_mode {
        Mode::Default => XdpMode::Default,
        Mode::Driver => XdpMode::Driver,
        Mode::Skb => XdpMode::Skb,
    };
    let heartbeat = Duration::from_millis(args.heartbeat_ms);
    let static_mfes = static_limit(&args);
    Ok(Options {
        socket_mode: args.socket_mode.unwrap_or(if socket_group.is_some() { 0o660 } else { 0o600 }),
        socket: args.socket,
        socket_group,
        conns_per_uid: args.max_conns_per_uid,
        queue_bytes: args.client_queue_bytes,
        config_file: args.config.clone(),
        file,
        check_settings,
        metrics: args.metrics,
        cmdline,
        load: LoadOptions {
            max_mfes: args.max_mfes,
            xdp_mode,
            pin_dir: (!args.no_pin).then_some(args.pin_dir),
        },
        restart_hold: Duration::from_secs(args.restart_hold_secs),
        flow_creation_rate: args.flow_creation_rate,
        follow: args
            .follow_kernel
            .then_some((Tables { ipv4: args.mroute_table, ipv6: args.mroute6_table }, heartbeat)),
        limits: Limits {
            handles_per_conn: args.max_handles_per_conn,
            interfaces_per_conn: args.max_interfaces_per_conn,
            memberships_per_conn: args.max_memberships_per_conn,
            enums_per_conn: args.max_enums_per_conn,
            static_mfes,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file's settings apply, flags included; the command line overrides them.
    #[test]
    fn the_files_settings_are_the_options_defaults() {
        let path = std::env::temp_dir().join(format!("mgmd-settings-{}.toml", std::process::id()));
        std::fs::write(
            &path,
            "follow-kernel = true\nmax-mfes = 100\nmetrics = \"127.0.0.1:9750\"\nno-pin = false\n",
        )
        .unwrap();
        let parse = |extra: &[&str]| {
            let file = Config::load(&path).unwrap();
            let cmd = with_settings(Args::command(), &path, &file).unwrap();
            let argv = ["mgmd", "--config", path.to_str().unwrap()]
                .into_iter()
                .chain(extra.iter().copied());
            Args::from_arg_matches(&cmd.try_get_matches_from(argv).unwrap()).unwrap()
        };
        let a = parse(&[]);
        assert!(a.follow_kernel && !a.no_pin);
        assert_eq!((a.max_mfes, a.metrics), (100, Some("127.0.0.1:9750".parse().unwrap())));
        let a = parse(&["--max-mfes", "200", "--no-pin"]);
        assert_eq!(a.max_mfes, 200, "the command line wins");
        assert!(a.no_pin);
        std::fs::remove_file(&path).unwrap();
    }

    /// The file's settings are the command line's options, every one of them.
    #[test]
    fn every_option_is_a_setting_of_the_file() {
        let cmd = Args::command();
        let mut options: Vec<&str> = cmd
            .get_arguments()
            .filter_map(|a| a.get_long())
            .filter(|l| !NOT_SETTINGS.contains(l) && !["help", "version"].contains(l))
            .collect();
        options.sort();
        let mut settings = mgm::config::SETTINGS.to_vec();
        settings.sort();
        assert_eq!(options, settings);
        // ... and the manual page of the file documents each.
        let page = include_str!("../../man/mgmd.toml.5");
        for key in settings {
            let roff = key.replace('-', "\\-");
            assert!(page.contains(&format!(".B {roff}\n")), "mgmd.toml(5) has no {key}");
        }
    }
}
