// SPDX-License-Identifier: MIT OR Apache-2.0
//! mgmctl: the operator's command line for mgmd.
//!
//! MGM handles belong to the connection that registered them, so calls that take a handle are
//! made inside `mgmctl session`, which keeps one connection for a whole script.

use std::{net::IpAddr, path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand, ValueEnum};
use mgm::{
    client::{Client, ClientError},
    config::StaticMfe,
    proto::{
        self, DEFAULT_SOCKET, ErrorCode, Method, Request, RequestFrame, Snapshot, types::Iface,
    },
};
use mgm_util::manual::Page;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt as _, BufReader};

/// The manual's examples and sections; the examples and exit statuses are also shown after
/// `--help`'s options.
const PAGE: Page = Page {
    examples: &[
        ("mgmctl show", "everything: interfaces, clients, groups, routes, counters"),
        ("mgmctl show routes counters", "only the forwarding entries and the fast path's counters"),
        ("mgmctl --json show groups", "the memberships, as JSON"),
        (
            "mgmctl add-mfe 10.0.0.1,239.1.1.1,eth0,eth1+eth2",
            "forward (10.0.0.1, 239.1.1.1) from eth0 to eth1 and eth2",
        ),
        ("mgmctl del-mfe 10.0.0.1 239.1.1.1", "remove that static entry"),
        ("mgmctl reload", "re-read mgmd's configuration file and apply what changed"),
        ("mgmctl watch", "print the MGM callbacks as they happen"),
        ("echo 'register 103 1' | mgmctl session", "a script on one connection"),
    ],
    sections: &[
        ("EXIT STATUS", EXIT_STATUS),
        ("FILES", "/run/mgm/mgmd.sock: mgmd's control socket (--socket, or MGM_SOCKET)."),
        ("SEE ALSO", "mgmd(8), mgm-igmpd(8), mgmd.toml(5)"),
    ],
};

/// Line breaks for `--help`; the manual page joins the lines into one paragraph.
const EXIT_STATUS: &str = "0 done; 1 failed otherwise; 2 bad command line; 3 mgmd is not running\n\
                           (nothing listens on the socket); 4 not found (no such entry or\n\
                           interface); 5 refused by mgmd (invalid, full, or not allowed).";

/// Control mgmd, the mgm multicast forwarding daemon: show its state, install static
/// routes, reload its configuration, run MGM API calls.
#[derive(Debug, Parser)]
#[command(name = "mgmctl", version)]
struct Args {
    /// mgmd's control socket.
    #[arg(long, env = "MGM_SOCKET", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Print replies as JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Protocol version and server identity.
    Hello,
    /// Protocols, ownership, memberships, MFEs with counters, fast-path counters (the first
    /// --max-entries MFEs and memberships; `mfes` pages through the MGM core's MFEs). Name
    /// parts to see only those: `mgmctl show routes counters`.
    Show {
        /// MFEs, memberships and kernel entries listed at most (each).
        #[arg(long, default_value_t = proto::SHOW_ENTRIES)]
        max_entries: usize,
        /// The parts to show (all when none is named).
        #[arg(value_enum)]
        parts: Vec<Part>,
    },
    /// Table sizes, queued fast-path writes, held and replayed first packets.
    Status,
    /// Install a static MFE: SOURCE,GROUP,IIF,OIF[+OIF...].
    AddMfe { spec: StaticMfe },
    /// Remove a static MFE.
    DelMfe(proto::DelMfe),
    /// Have mgmd re-read its configuration file and apply what changed (as SIGHUP does),
    /// and say what changed. A file that cannot be applied whole changes nothing.
    Reload,
    /// GetMfe (with --stats: GetMfeStats).
    GetMfe(proto::GetMfe),
    /// Walk every MFE with GetFirstMfe/GetNextMfe, `--page` entries at a time.
    Mfes {
        #[arg(long, default_value_t = 100)]
        page: usize,
        #[arg(long)]
        stats: bool,
    },
    /// GetProtocolOnInterface.
    ProtocolOn(proto::GetProtocolOnInterface),
    /// Print every callback event as it happens (one JSON object per line).
    Watch,
    /// Run a script from stdin on one connection (handles live as long as it): each line is a
    /// session command (`mgmctl session --help` lists them) or a raw JSON request. Prints
    /// every reply and event as JSON.
    Session,
}

/// A part of `show`'s snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Part {
    /// Managed interfaces.
    Interfaces,
    /// Registered routing protocols.
    Protocols,
    /// Who owns each (interface, next hop).
    Ownership,
    /// Memberships (the groups each protocol joined).
    #[value(alias = "memberships")]
    Groups,
    /// MFEs with their counters, and the followed kernel table.
    #[value(alias = "mfes")]
    Routes,
    /// The fast path's counters.
    Counters,
}

impl Part {
    /// The snapshot's JSON fields this part is made of.
    fn fields(self) -> &'static [&'static str] {
        match self {
            Part::Interfaces => &["interfaces"],
            Part::Protocols => &["protocols"],
            Part::Ownership => &["ownership"],
            Part::Groups => &["memberships", "more_memberships"],
            Part::Routes => &["mfes", "more_mfes", "kernel_routes", "more_kernel_routes"],
            Part::Counters => &["counters"],
        }
    }
}

/// A line of `mgmctl session`: an MGM function (the protocol's own request types), or a pause.
#[derive(Debug, Parser)]
#[command(no_binary_name = true, disable_help_flag = true)]
enum Line {
    #[command(flatten)]
    Request(Request),
    /// Wait this many milliseconds (for events to arrive).
    Sleep { ms: u64 },
}

/// Exit statuses beyond clap's 2 (a bad command line), so that scripts can tell what went
/// wrong without reading the message.
mod exit {
    pub const FAILED: u8 = 1;
    pub const NOT_RUNNING: u8 = 3;
    pub const NOT_FOUND: u8 = 4;
    pub const REFUSED: u8 = 5;
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    // `session --help` lists the script's commands, taken from their own definitions.
    let cli = Args::command()
        .after_help(format!(
            "{}\nExit status:\n  {}",
            PAGE.examples_help(),
            EXIT_STATUS.replace('\n', "\n  ")
        ))
        .mut_subcommand("session", |s| s.after_help(session_commands()));
    if let Some(dir) = mgm_util::manual::requested() {
        return mgm_util::manual::generate_and_exit(cli, &PAGE, &dir);
    }
    let args = match Args::from_arg_matches(&cli.get_matches()) {
        Ok(a) => a,
        Err(e) => e.exit(),
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The causes a message does not already say.
            let mut msg = e.to_string();
            for cause in e.chain().skip(1).map(|c| c.to_string()) {
                if !msg.contains(&cause) {
                    msg = format!("{msg}: {cause}");
                }
            }
            // Under a unit (`ExecReload=mgmctl reload`): at error priority in the journal.
            let priority = if mgm_util::stderr_is_journal() { "<3>" } else { "" };
            eprintln!("{priority}mgmctl: {msg}");
            ExitCode::from(status(&e))
        }
    }
}

/// The exit status an error stands for (see [`exit`]).
fn status(e: &anyhow::Error) -> u8 {
    use std::io::ErrorKind::{ConnectionRefused, NotFound};
    for cause in e.chain() {
        let io = match cause.downcast_ref::<ClientError>() {
            Some(ClientError::Connect { source, .. }) => source,
            Some(ClientError::Server(w)) => {
                return match w.code {
                    ErrorCode::NotFound | ErrorCode::NoSuchInterface => exit::NOT_FOUND,
                    _ => exit::REFUSED,
                };
            }
            Some(_) => return exit::FAILED,
            // `session` connects by itself.
            None => match cause.downcast_ref::<std::io::Error>() {
                Some(io) => io,
                None => continue,
            },
        };
        // No socket file, or nobody listening on it; any other error is the socket's own
        // (permissions: refused).
        return match io.kind() {
            NotFound | ConnectionRefused => exit::NOT_RUNNING,
            std::io::ErrorKind::PermissionDenied => exit::REFUSED,
            _ => exit::FAILED,
        };
    }
    exit::FAILED
}

/// The commands a `session` script line may be, one per line with its arguments and what it
/// does.
fn session_commands() -> String {
    let mut out = String::from("Commands (one per line; `#` starts a comment):\n");
    let mut lines = Line::command();
    for c in lines.get_subcommands_mut() {
        let usage = c.render_usage().to_string();
        // "Usage: NAME ARGS": the name and arguments are what a line says.
        let usage = usage.trim_start_matches("Usage: ").replace(" [OPTIONS]", "");
        let options: Vec<String> = c
            .get_arguments()
            .filter(|a| a.get_long().is_some() && a.get_id() != "help")
            .map(|a| match a.get_value_names() {
                Some(v) => format!("--{} <{}>", a.get_long().unwrap_or_default(), v.join(" ")),
                None => format!("--{}", a.get_long().unwrap_or_default()),
            })
            .collect();
        let opts =
            if options.is_empty() { String::new() } else { format!(" [{}]", options.join("] [")) };
        out.push_str(&format!("  {usage}{opts}\n"));
        if let Some(about) = c.get_about() {
            out.push_str(&format!("      {about}\n"));
        }
    }
    out.push_str(
        "A line may also be a raw JSON request, e.g. {\"method\": \"register\", \"protocol\": 103, \
         \"component\": 1} (docs/protocol.md).\n",
    );
    out
}

async fn run(args: Args) -> anyhow::Result<()> {
    if let Cmd::Session = args.cmd {
        return session(&args.socket).await;
    }
    let mut c = Client::connect(&args.socket).await?;
    match args.cmd {
        Cmd::Hello => print(&c.call(proto::Hello {}).await?),
        Cmd::Show { max_entries, parts } => {
            let s = c.call(proto::Show { max_entries }).await?;
            let shown = |p: Part| parts.is_empty() || parts.contains(&p);
            if !args.json {
                print_snapshot(&s, shown);
                return Ok(());
            }
            let mut v = serde_json::to_value(&s)?;
            if let (false, Some(all)) = (parts.is_empty(), v.as_object_mut()) {
                all.retain(|k, _| parts.iter().any(|p| p.fields().contains(&k.as_str())));
            }
            print(&v)
        }
        Cmd::Status => print(&c.status().await?),
        Cmd::AddMfe { spec } => done(args.json, &mut c, spec).await,
        Cmd::DelMfe(m) => done(args.json, &mut c, m).await,
        Cmd::Reload => {
            let r = c.call(proto::Reload {}).await?;
            if args.json {
                return print(&r);
            }
            let list = |v: &[String]| if v.is_empty() { "none".into() } else { v.join(" ") };
            println!(
                "reloaded: interfaces added {}, removed {}, kept in use {}; static MFEs \
                 {} added, {} changed, {} removed, {} unchanged; {} scope boundaries changed",
                list(&r.interfaces_added),
                list(&r.interfaces_removed),
                list(&r.interfaces_kept),
                r.mfes_added,
                r.mfes_changed,
                r.mfes_removed,
                r.mfes_unchanged,
                r.boundaries_changed
            );
            Ok(())
        }
        Cmd::GetMfe(m) => print(&c.call(m).await?),
        Cmd::Mfes { page, stats } => {
            let mut all = Vec::new();
            let mut after = None;
            loop {
                let p = c.get_mfes(after, page, stats).await.context("walking MFEs")?;
                after = p.entries.last().map(|e| (e.mfe.source, e.mfe.group));
                let end = p.status == proto::PageStatus::NoMoreItems;
                all.extend(p.entries);
                if end {
                    break;
                }
            }
            print(&all)
        }
        Cmd::ProtocolOn(m) => print(&c.call(m).await?),
        Cmd::Watch => {
            c.watch().await?;
            loop {
                let ev = c.next_event().await?;
                println!("{}", serde_json::to_string(&ev)?);
            }
        }
        Cmd::Session => unreachable!("handled above"),
    }
}

/// A call whose reply is empty: `ok` (or `{}` with --json).
async fn done<M: Method<Reply = proto::Done>>(
    json: bool,
    c: &mut Client,
    m: M,
) -> anyhow::Result<()> {
    let r = c.call(m).await?;
    if json {
        print(&r)
    } else {
        println!("ok");
        Ok(())
    }
}

/// Replies print as JSON (`show` alone has a table form).
fn print(v: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Script lines in (commands or raw JSON), replies and events out, as they come.
async fn session(socket: &std::path::Path) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt as _;
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .with_context(|| format!("connecting to {}", socket.display()))?;
    let (read, mut write) = stream.into_split();
    let printer = tokio::spawn(async move {
        let mut lines = BufReader::new(read).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            println!("{l}");
        }
    });
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let mut id = 0u64;
    let mut bad = 0;
    while let Some(line) = stdin.next_line().await? {
        let text = line.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        // A raw JSON line goes as written, numbered if it has no id (mgmd answers what it
        // makes of it: that is what raw lines are for).
        if text.starts_with('{') {
            let raw = match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text)
            {
                Ok(mut obj) => {
                    if !obj.contains_key("id") {
                        id += 1;
                        obj.insert("id".into(), id.into());
                    }
                    serde_json::Value::Object(obj).to_string()
                }
                Err(_) => text.to_owned(),
            };
            write.write_all(format!("{raw}\n").as_bytes()).await?;
            continue;
        }
        // A bad line is reported and skipped: the lines before it were sent already.
        let request = match Line::try_parse_from(text.split_whitespace()) {
            Ok(Line::Request(r)) => r,
            Ok(Line::Sleep { ms }) => {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                continue;
            }
            Err(e) => {
                eprintln!("mgmctl: {text}: {e}");
                bad += 1;
                continue;
            }
        };
        id += 1;
        let frame = serde_json::to_string(&RequestFrame { id, request })?;
        write.write_all(format!("{frame}\n").as_bytes()).await?;
    }
    // Give the last replies a moment, then leave (closing releases the session's handles).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    printer.abort();
    anyhow::ensure!(bad == 0, "{bad} script line(s) could not be read");
    Ok(())
}

/// The snapshot as tables, the parts `shown` only.
fn print_snapshot(s: &Snapshot, shown: impl Fn(Part) -> bool) {
    let name = |i: u32| {
        s.interfaces
            .iter()
            .find(|d| d.ifindex == i)
            .map_or_else(|| i.to_string(), |d| d.name.clone())
    };
    // One width for every address column: IPv4 addresses, or the longest IPv6 one.
    let addrs = s.mfes.iter().flat_map(|m| [m.mfe.source, m.mfe.group]);
    let addrs = addrs.chain(s.memberships.iter().flat_map(|m| [m.entry.source, m.entry.group]));
    let addrs = addrs.chain(s.ownership.iter().map(|o| o.iface.nexthop));
    let addrs = addrs.chain(s.kernel_routes.iter().flat_map(|r| [r.source, r.group]));
    let w = addrs.map(|a| a.to_string().len()).max().unwrap_or(0).max(15);
    if shown(Part::Interfaces) {
        println!("INTERFACES");
        println!("  {:<16} {:>7}  MAC", "NAME", "IFINDEX");
        for d in &s.interfaces {
            println!("  {:<16} {:>7}  {}", d.name, d.ifindex, d.mac);
        }
    }
    if shown(Part::Protocols) {
        println!("PROTOCOLS");
        println!("  {:>6} {:>9} {:>9}", "HANDLE", "PROTOCOL", "COMPONENT");
        for p in &s.protocols {
            println!("  {:>6} {:>9} {:>9}", p.handle.0, p.protocol, p.component);
        }
    }
    if shown(Part::Ownership) {
        print_ownership(s, w, &name);
    }
    if shown(Part::Groups) {
        print_memberships(s, w, &name);
    }
    if shown(Part::Routes) {
        print_routes(s, w, &name);
    }
    if shown(Part::Counters) {
        println!("COUNTERS");
        for (k, v) in &s.counters {
            println!("  {k:<20} {v}");
        }
    }
}

fn print_ownership(s: &Snapshot, w: usize, name: &dyn Fn(u32) -> String) {
    println!("OWNERSHIP");
    println!("  {:<10} {:<w$} {:>7} {:>6}", "INTERFACE", "NEXT HOP", "ROUTING", "IGMP");
    let h = |x: Option<mgm::manager::Handle>| x.map_or("-".into(), |h| h.0.to_string());
    for o in &s.ownership {
        println!(
            "  {:<10} {:<w$} {:>7} {:>6}",
            name(o.iface.ifindex),
            o.iface.nexthop,
            h(o.routing),
            h(o.igmp)
        );
    }
}

fn print_memberships(s: &Snapshot, w: usize, name: &dyn Fn(u32) -> String) {
    println!("MEMBERSHIPS");
    println!(
        "  {:>6} {:<w$} {:<w$} {:<10} {:<w$} {:<5} {:<7}",
        "HANDLE", "SOURCE", "GROUP", "INTERFACE", "NEXT HOP", "JOIN", "FORWARD"
    );
    for m in &s.memberships {
        let any = |a: IpAddr| if a.is_unspecified() { "*".to_owned() } else { a.to_string() };
        println!(
            "  {:>6} {:<w$} {:<w$} {:<10} {:<w$} {:<5} {:<7}",
            m.handle.0,
            any(m.entry.source),
            any(m.entry.group),
            name(m.iface.ifindex),
            m.iface.nexthop,
            m.join,
            m.forward
        );
    }
    if s.more_memberships {
        println!("  (more memberships than shown: `mgmctl show --max-entries N`)");
    }
}

fn print_routes(s: &Snapshot, w: usize, name: &dyn Fn(u32) -> String) {
    println!("MFES");
    println!(
        "  {:<w$} {:<w$} {:<10} {:<24} {:>10} {:>12} {:>9} {:>8} {:<6}",
        "SOURCE", "GROUP", "IIF", "OIFS", "PACKETS", "BYTES", "WRONG_IF", "TTL_EXP", "ORIGIN"
    );
    for m in &s.mfes {
        // A next hop shows after its interface's name.
        let iface = |i: &Iface| match i.nexthop.is_unspecified() {
            true => name(i.ifindex),
            false => format!("{}@{}", name(i.ifindex), i.nexthop),
        };
        let oifs = if m.mfe.oifs.is_empty() {
            "-".to_owned()
        } else {
            m.mfe.oifs.iter().map(iface).collect::<Vec<_>>().join(",")
        };
        let c = m.stats.clone().unwrap_or_default();
        let origin = serde_json::to_value(m.origin).ok();
        println!(
            "  {:<w$} {:<w$} {:<10} {:<24} {:>10} {:>12} {:>9} {:>8} {:<6}",
            m.mfe.source,
            m.mfe.group,
            iface(&m.mfe.iif),
            oifs,
            c.in_packets,
            c.in_octets,
            c.wrong_interface,
            c.ttl_expired,
            origin.as_ref().and_then(|o| o.as_str()).unwrap_or("?"),
        );
    }
    if !s.kernel_routes.is_empty() {
        println!("KERNEL TABLE (followed)");
        println!(
            "  {:<w$} {:<w$} {:<10} {:<24} {:<11} WHY NOT",
            "SOURCE", "GROUP", "IIF", "OIFS", "FORWARDING"
        );
        for r in &s.kernel_routes {
            let oifs = r
                .oifs
                .iter()
                .map(|o| match o.ttl_threshold {
                    1 => name(o.ifindex),
                    t => format!("{}(ttl {t})", name(o.ifindex)),
                })
                .collect::<Vec<_>>()
                .join(",");
            let iif = if r.iif == 0 { "-".to_owned() } else { name(r.iif) };
            println!(
                "  {:<w$} {:<w$} {:<10} {:<24} {:<11} {}",
                r.source,
                r.group,
                iif,
                if oifs.is_empty() { "-".to_owned() } else { oifs },
                if r.accelerated { "xdp" } else { "kernel" },
                r.reason.as_deref().unwrap_or("")
            );
        }
    }
    if s.more_mfes || s.more_kernel_routes {
        println!("  (more MFEs or kernel entries than shown: `mgmctl show --max-entries N`)");
    }
}
