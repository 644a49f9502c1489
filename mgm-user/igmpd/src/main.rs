// SPDX-License-Identifier: MIT OR Apache-2.0
//! mgm-igmpd: IGMP (router side, v1/v2/v3) or, with `--mld`, MLD (v1/v2), and the proxy, as
//! a client of mgmd. `mgm-igmpd [OPTIONS]` runs the daemon; `mgm-igmpd [--mld] show [--json]`
//! prints a running one's view.

use std::{
    fmt::Write as _,
    net::{Ipv4Addr, Ipv6Addr},
    path::PathBuf,
};

use clap::{CommandFactory as _, Parser, Subcommand};
use mgm_igmpd::{
    config::{File, Settings, default_control},
    daemon::{Daemon, query},
};
use mgm_proto::DEFAULT_SOCKET;
use mgm_util::manual::Page;

/// The manual's examples and sections (also shown after `--help`'s options).
const PAGE: Page = Page {
    examples: &[
        ("mgm-igmpd --config /etc/mgm/igmpd.toml", "as the service runs it (mgm-igmpd.service)"),
        ("mgm-igmpd -i eth1 -i eth2", "IGMPv3 querier on eth1 and eth2"),
        ("mgm-igmpd --mld -i eth1 -i eth2", "MLDv2 on the same interfaces (a second instance)"),
        ("mgm-igmpd --upstream eth0 -i eth1 -i eth2", "an IGMP proxy (RFC 4605), as igmpproxy"),
        ("mgm-igmpd show", "a running instance's interfaces, groups and counters"),
    ],
    sections: &[
        (
            "CAPABILITIES",
            "CAP_NET_RAW, for its packet sockets on the interfaces; mgmd does the forwarding. \
             Its user must be allowed on mgmd's socket (root, or mgmd --socket-group).",
        ),
        (
            "FILES",
            "/etc/mgm/igmpd.toml: the configuration (mgm-igmpd.toml(5)).\n\n\
             /run/mgm/mgmd.sock: mgmd's socket.\n\n\
             /run/mgm/mgmd.igmpd.sock (mgmd.mldd.sock with --mld): this daemon's own, which \
             `mgm-igmpd show` reads.",
        ),
        ("SEE ALSO", "mgmd(8), mgmctl(8), mgm-igmpd.toml(5)"),
    ],
};

/// IGMP (or MLD) for mgm: turns hosts' joins into group memberships on mgmd's socket.
#[derive(Debug, Parser)]
#[command(name = "mgm-igmpd", version, after_help = PAGE.examples_help())]
struct Args {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    /// TOML file with the same settings as the options below (the options win).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// mgmd's control socket [default: /run/mgm/mgmd.sock].
    #[arg(long, env = "MGM_SOCKET", global = true)]
    socket: Option<PathBuf>,
    /// This daemon's own socket, which `mgm-igmpd show` reads [default: next to mgmd's,
    /// /run/mgm/mgmd.igmpd.sock, or mgmd.mldd.sock with --mld].
    #[arg(long, global = true)]
    control: Option<PathBuf>,
    /// Speak MLD on the interfaces' IPv6 sides instead of IGMP (run one instance of each
    /// for both families).
    #[arg(long, global = true)]
    mld: bool,
    /// An interface where hosts are (repeatable): the downstream ones in proxy mode.
    #[arg(long = "iface", short = 'i')]
    interfaces: Vec<String>,
    /// Proxy mode (RFC 4605): the interface towards the multicast network.
    #[arg(long)]
    upstream: Option<String>,
    /// In proxy mode, keep traffic from downstream sources off the upstream interface.
    #[arg(long)]
    no_forward_upstream: bool,
    /// Component id registered with mgmd (two instances on one mgmd need different ones).
    #[arg(long)]
    component: Option<u32>,
    /// IGMP version of the queries: 3, or 2 / 1 on links with older routers [default: 3].
    #[arg(long, conflicts_with = "mld")]
    igmp_version: Option<u8>,
    /// MLD version of the queries (with --mld): 2, or 1 on links with MLDv1 routers
    /// [default: 2].
    #[arg(long, requires = "mld")]
    mld_version: Option<u8>,
    /// Never query: only listen (another router is the querier).
    #[arg(long)]
    no_querier: bool,
    /// Robustness variable [default: 2].
    #[arg(long)]
    robustness: Option<u8>,
    /// Seconds between general queries [default: 125].
    #[arg(long)]
    query_interval: Option<f64>,
    /// Maximum response time of general queries, seconds [default: 10].
    #[arg(long)]
    query_response_interval: Option<f64>,
    /// Seconds between last-member queries, and their maximum response time [default: 1].
    #[arg(long)]
    last_member_query_interval: Option<f64>,
    /// Last-member queries sent [default: the robustness variable].
    #[arg(long)]
    last_member_query_count: Option<u8>,
    /// Seconds between startup queries [default: a quarter of the query interval].
    #[arg(long)]
    startup_query_interval: Option<f64>,
    /// Startup queries sent [default: the robustness variable].
    #[arg(long)]
    startup_query_count: Option<u8>,
    /// Groups one interface may have state for; reports for more are ignored and counted
    /// [default: 4096].
    #[arg(long)]
    max_groups: Option<usize>,
    /// Sources one group may have; new sources beyond are ignored and counted
    /// [default: 1024].
    #[arg(long)]
    max_sources: Option<usize>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Print a running mgm-igmpd's interfaces, querier, groups, sources and counters.
    Show {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> std::process::ExitCode {
    if let Some(dir) = mgm_util::manual::requested() {
        return mgm_util::manual::generate_and_exit(Args::command(), &PAGE, &dir);
    }
    mgm_util::init_logging();
    match start(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err((status, e)) => {
            // Logged, so that the journal has it at error priority.
            tracing::error!("{e:#}");
            std::process::ExitCode::from(status)
        }
    }
}

/// Runs what the command line asks; an error comes with the exit status it makes.
fn start(args: Args) -> Result<(), (u8, anyhow::Error)> {
    let failed = |e: anyhow::Error| (1, e);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| failed(e.into()))?;
    if let Some(Cmd::Show { json }) = args.cmd {
        let socket = args.socket.unwrap_or_else(|| DEFAULT_SOCKET.into());
        let path = args.control.unwrap_or_else(|| default_control(&socket, args.mld));
        let v = rt.block_on(query(&path)).map_err(failed)?;
        if json {
            println!("{}", serde_json::to_string_pretty(&v).map_err(|e| failed(e.into()))?);
        } else {
            print!("{}", text(&v));
        }
        return Ok(());
    }
    let settings = merge(args).and_then(Settings::new).map_err(|e| (mgm_util::EX_CONFIG, e))?;
    if settings.mld {
        rt.block_on(async { Daemon::<Ipv6Addr>::new(settings)?.run().await })
    } else {
        rt.block_on(async { Daemon::<Ipv4Addr>::new(settings)?.run().await })
    }
    .map_err(failed)
}

/// The command line over the file.
fn merge(a: Args) -> anyhow::Result<File> {
    let mut f = match &a.config {
        Some(p) => File::load(p)?,
        None => File::default(),
    };
    f.interfaces.extend(a.interfaces);
    let or = |cli: Option<f64>, file: Option<f64>| cli.or(file);
    Ok(File {
        socket: a.socket.or(f.socket),
        control: a.control.or(f.control),
        interfaces: f.interfaces,
        upstream: a.upstream.or(f.upstream),
        forward_upstream: if a.no_forward_upstream { Some(false) } else { f.forward_upstream },
        component: a.component.or(f.component),
        mld: if a.mld { Some(true) } else { f.mld },
        version: a.igmp_version.or(a.mld_version).or(f.version),
        querier: if a.no_querier { Some(false) } else { f.querier },
        robustness: a.robustness.or(f.robustness),
        query_interval: or(a.query_interval, f.query_interval),
        query_response_interval: or(a.query_response_interval, f.query_response_interval),
        last_member_query_interval: or(a.last_member_query_interval, f.last_member_query_interval),
        last_member_query_count: a.last_member_query_count.or(f.last_member_query_count),
        startup_query_interval: or(a.startup_query_interval, f.startup_query_interval),
        startup_query_count: a.startup_query_count.or(f.startup_query_count),
        max_groups: a.max_groups.or(f.max_groups),
        max_sources: a.max_sources.or(f.max_sources),
    })
}

/// The view as text (from its JSON, so `show` needs nothing but the socket).
fn text(v: &serde_json::Value) -> String {
    let mut o = String::new();
    let proto = v["protocol"].as_str().unwrap_or("IGMP");
    let s = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match v["mgmd"].as_object() {
        Some(m) => {
            let _ = writeln!(o, "mgmd: connected ({proto} handle {})", s(&m["igmp_handle"]));
        }
        None => o.push_str("mgmd: not connected (the state is kept and re-added when it is)\n"),
    }
    for p in v["interfaces"].as_array().into_iter().flatten() {
        let querier = if p["is_querier"] == true {
            "this router".to_owned()
        } else if p["querier"] == "0.0.0.0" || p["querier"] == "::" {
            "none heard".to_owned()
        } else {
            s(&p["querier"])
        };
        let _ = writeln!(
            o,
            "\n{} (ifindex {}) {}  {proto}v{}  querier: {}{}",
            s(&p["name"]),
            p["ifindex"],
            s(&p["address"]),
            p["version"],
            querier,
            if p["enabled"] == false { "  (disabled: changing hands)" } else { "" }
        );
        let st = &p["stats"];
        let rejected: Vec<String> = st["rejected"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let _ = writeln!(
            o,
            "  received {} reports, {} leaves, {} queries; sent {} queries; rejected: {}{}",
            st["reports_received"],
            st["leaves_received"],
            st["queries_received"],
            st["queries_sent"],
            if rejected.is_empty() { "none".to_owned() } else { rejected.join(", ") },
            if st["groups_refused"] == 0 && st["sources_refused"] == 0 {
                String::new()
            } else {
                format!(
                    "; over the limits: {} groups, {} sources ignored",
                    st["groups_refused"], st["sources_refused"]
                )
            }
        );
        let groups = p["groups"].as_array().cloned().unwrap_or_default();
        if groups.is_empty() {
            o.push_str("  no groups\n");
            continue;
        }
        let _ = writeln!(
            o,
            "  {:<16} {:<8} {:<6} {:<7} SOURCES (s left)",
            "GROUP", "MODE", "HOSTS", "TIMER"
        );
        for g in groups {
            let timer = g["timer_secs"].as_u64().map_or("-".to_owned(), |t| format!("{t}s"));
            let sources: Vec<String> = g["sources"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|x| {
                    if g["mode"] == "exclude" {
                        format!("!{}", s(&x[0]))
                    } else {
                        format!("{} ({})", s(&x[0]), x[1])
                    }
                })
                .collect();
            let _ = writeln!(
                o,
                "  {:<16} {:<8} {:<6} {:<7} {}",
                s(&g["group"]),
                s(&g["mode"]),
                format!("v{}", g["compat"]),
                timer,
                if sources.is_empty() { "-".to_owned() } else { sources.join(", ") }
            );
        }
    }
    if let Some(u) = v["upstream"].as_object() {
        let _ = writeln!(o, "\nupstream {} (ifindex {}), proxy:", s(&u["name"]), u["ifindex"]);
        let groups = u["groups"].as_object().cloned().unwrap_or_default();
        if groups.is_empty() {
            o.push_str("  no groups joined\n");
        }
        for (g, w) in groups {
            let what = match w.get("sources") {
                Some(list) => format!(
                    "from {}",
                    list.as_array().into_iter().flatten().map(s).collect::<Vec<_>>().join(", ")
                ),
                None => "any source".to_owned(),
            };
            let _ = writeln!(o, "  {g:<16} {what}");
        }
    }
    o
}
