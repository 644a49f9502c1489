// SPDX-License-Identifier: MIT OR Apache-2.0
//! mgmctl: the operator's command line for mgmd.
//!
//! MGM handles belong to the connection that registered them, so calls that take a handle are
//! made inside `mgmctl session`, which keeps one connection for a whole script.

use std::{net::Ipv4Addr, path::PathBuf};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use mgm::{
    client::Client,
    config::StaticMfe,
    proto::{DEFAULT_SOCKET, Request, Snapshot},
};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};

/// Control mgmd.
#[derive(Debug, Parser)]
#[command(version)]
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
    /// Protocols, ownership, memberships, MFEs with counters, fast-path counters.
    Show,
    /// Install a static MFE: SOURCE,GROUP,IIF,OIF[+OIF...].
    AddMfe { spec: StaticMfe },
    /// Remove a static MFE.
    DelMfe { source: Ipv4Addr, group: Ipv4Addr },
    /// GetMfe (with --stats: GetMfeStats).
    GetMfe {
        source: Ipv4Addr,
        group: Ipv4Addr,
        #[arg(long)]
        stats: bool,
    },
    /// Walk every MFE with GetFirstMfe/GetNextMfe, `--page` entries at a time.
    Mfes {
        #[arg(long, default_value_t = 100)]
        page: usize,
        #[arg(long)]
        stats: bool,
    },
    /// GetProtocolOnInterface.
    ProtocolOn {
        ifindex: u32,
        #[arg(default_value = "0.0.0.0")]
        nexthop: Ipv4Addr,
    },
    /// Print every callback event as it happens (one JSON object per line).
    Watch,
    /// Run a script from stdin on one connection (handles live as long as it): each line is a
    /// command below, or a raw JSON request. Prints every reply and event as JSON.
    Session,
}

/// The MGM functions, as `mgmctl session` lines (e.g. `take-interface 2 7`).
#[derive(Debug, Parser)]
#[command(no_binary_name = true, disable_help_flag = true)]
enum Line {
    /// RegisterMProtocol PROTOCOL COMPONENT
    Register { protocol: u32, component: u32 },
    /// DeRegisterMProtocol HANDLE
    Deregister { handle: u64 },
    /// TakeInterfaceOwnership HANDLE IFINDEX [NEXTHOP]
    TakeInterface {
        handle: u64,
        ifindex: u32,
        #[arg(default_value = "0.0.0.0")]
        nexthop: Ipv4Addr,
    },
    /// ReleaseInterfaceOwnership HANDLE IFINDEX [NEXTHOP]
    ReleaseInterface {
        handle: u64,
        ifindex: u32,
        #[arg(default_value = "0.0.0.0")]
        nexthop: Ipv4Addr,
    },
    /// GetProtocolOnInterface IFINDEX [NEXTHOP]
    ProtocolOn {
        ifindex: u32,
        #[arg(default_value = "0.0.0.0")]
        nexthop: Ipv4Addr,
    },
    /// AddGroupMembershipEntry HANDLE GROUP IFINDEX [--source S] [--nexthop N] [--flags F]
    AddMembership(MemberLine),
    /// DeleteGroupMembershipEntry (same arguments)
    DeleteMembership(MemberLine),
    /// GetMfe SOURCE GROUP [--stats]
    GetMfe {
        source: Ipv4Addr,
        group: Ipv4Addr,
        #[arg(long)]
        stats: bool,
    },
    /// GetFirstMfe MAX [--stats]
    GetFirstMfe {
        max_entries: usize,
        #[arg(long)]
        stats: bool,
    },
    /// GetNextMfe SOURCE GROUP MAX [--stats]
    GetNextMfe {
        source: Ipv4Addr,
        group: Ipv4Addr,
        max_entries: usize,
        #[arg(long)]
        stats: bool,
    },
    /// SetMfe HANDLE SOURCE GROUP IIF [--upstream U]
    SetMfe {
        handle: u64,
        source: Ipv4Addr,
        group: Ipv4Addr,
        iif: u32,
        #[arg(long, default_value = "0.0.0.0")]
        upstream: Ipv4Addr,
    },
    /// GroupEnumerationStart HANDLE any-source|all-sources
    EnumStart { handle: u64, enum_type: String },
    /// GroupEnumerationGetNext HANDLE ENUM MAX
    EnumNext { handle: u64, enum_handle: u64, max_entries: usize },
    /// GroupEnumerationEnd HANDLE ENUM
    EnumEnd { handle: u64, enum_handle: u64 },
    /// Answer an rpf event: HANDLE REQUEST IFINDEX [--upstream U]
    AnswerRpf {
        handle: u64,
        request: u64,
        ifindex: u32,
        #[arg(long, default_value = "0.0.0.0")]
        upstream: Ipv4Addr,
    },
    /// Answer a creation alert: HANDLE REQUEST [DISABLED_IFINDEX...]
    AnswerCreation { handle: u64, request: u64, disabled: Vec<u32> },
    /// Answer a prune alert: HANDLE REQUEST TIMEOUT_SECS
    AnswerPrune { handle: u64, request: u64, timeout_secs: u64 },
    /// Wait this many milliseconds (for events to arrive).
    Sleep { ms: u64 },
}

#[derive(Debug, clap::Args)]
struct MemberLine {
    handle: u64,
    group: Ipv4Addr,
    ifindex: u32,
    #[arg(long, default_value = "0.0.0.0")]
    source: Ipv4Addr,
    #[arg(long, default_value = "0.0.0.0")]
    nexthop: Ipv4Addr,
    #[arg(long, default_value_t = 3)]
    flags: u32,
}

/// A session line as a request object; `None` for `sleep` (done here).
async fn line_request(line: &str) -> anyhow::Result<Option<Value>> {
    use serde_json::json;
    if line.trim_start().starts_with('{') {
        return Ok(Some(serde_json::from_str(line).with_context(|| format!("not JSON: {line}"))?));
    }
    let cmd = Line::try_parse_from(line.split_whitespace())
        .map_err(|e| anyhow::anyhow!("{line}: {e}"))?;
    let member = |method: &str, m: &MemberLine| {
        json!({"method": method, "handle": m.handle, "source": m.source, "group": m.group,
               "ifindex": m.ifindex, "nexthop": m.nexthop, "flags": m.flags})
    };
    Ok(Some(match cmd {
        Line::Register { protocol, component } => {
            json!({"method": "register", "protocol": protocol, "component": component})
        }
        Line::Deregister { handle } => json!({"method": "deregister", "handle": handle}),
        Line::TakeInterface { handle, ifindex, nexthop } => json!({"method": "take_interface",
            "handle": handle, "ifindex": ifindex, "nexthop": nexthop}),
        Line::ReleaseInterface { handle, ifindex, nexthop } => {
            json!({"method": "release_interface",
            "handle": handle, "ifindex": ifindex, "nexthop": nexthop})
        }
        Line::ProtocolOn { ifindex, nexthop } => {
            json!({"method": "get_protocol_on_interface", "ifindex": ifindex, "nexthop": nexthop})
        }
        Line::AddMembership(m) => member("add_membership", &m),
        Line::DeleteMembership(m) => member("delete_membership", &m),
        Line::GetMfe { source, group, stats } => {
            json!({"method": "get_mfe", "source": source, "group": group, "stats": stats})
        }
        Line::GetFirstMfe { max_entries, stats } => {
            json!({"method": "get_first_mfe", "max_entries": max_entries, "stats": stats})
        }
        Line::GetNextMfe { source, group, max_entries, stats } => json!({"method": "get_next_mfe",
            "source": source, "group": group, "max_entries": max_entries, "stats": stats}),
        Line::SetMfe { handle, source, group, iif, upstream } => json!({"method": "set_mfe",
            "handle": handle, "source": source, "group": group, "iif": iif, "upstream": upstream}),
        Line::EnumStart { handle, enum_type } => json!({"method": "group_enum_start",
            "handle": handle, "enum_type": enum_type.replace('-', "_")}),
        Line::EnumNext { handle, enum_handle, max_entries } => json!({"method": "group_enum_next",
            "handle": handle, "enum_handle": enum_handle, "max_entries": max_entries}),
        Line::EnumEnd { handle, enum_handle } => {
            json!({"method": "group_enum_end", "handle": handle, "enum_handle": enum_handle})
        }
        Line::AnswerRpf { handle, request, ifindex, upstream } => json!({"method": "answer_rpf",
            "handle": handle, "request": request, "ifindex": ifindex, "upstream": upstream}),
        Line::AnswerCreation { handle, request, disabled } => {
            let d: Vec<Value> =
                disabled.iter().map(|i| json!({"ifindex": i, "nexthop": "0.0.0.0"})).collect();
            json!({"method": "answer_creation", "handle": handle, "request": request, "disabled": d})
        }
        Line::AnswerPrune { handle, request, timeout_secs } => json!({"method": "answer_prune",
            "handle": handle, "request": request, "timeout_secs": timeout_secs}),
        Line::Sleep { ms } => {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            return Ok(None);
        }
    }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut c = Client::connect(&args.socket).await?;
    let out: Value = match args.cmd {
        Cmd::Hello => c.call(Request::Hello).await?,
        Cmd::Show => {
            let s = c.show().await?;
            if !args.json {
                print_snapshot(&s);
                return Ok(());
            }
            serde_json::to_value(s)?
        }
        Cmd::AddMfe { spec } => c.call(Request::AddMfe(spec)).await?,
        Cmd::DelMfe { source, group } => c.call(Request::DelMfe { source, group }).await?,
        Cmd::GetMfe { source, group, stats } => {
            c.call(Request::GetMfe { source, group, max_entries: 1, stats }).await?
        }
        Cmd::Mfes { page, stats } => {
            let mut all = Vec::new();
            let mut after = None;
            loop {
                let p = c.get_mfes(after, page, stats).await.context("walking MFEs")?;
                after = p.entries.last().map(|e| (e.mfe.source, e.mfe.group));
                let done = p.status == mgm::proto::PageStatus::NoMoreItems;
                all.extend(p.entries);
                if done {
                    break;
                }
            }
            serde_json::to_value(all)?
        }
        Cmd::ProtocolOn { ifindex, nexthop } => {
            c.call(Request::GetProtocolOnInterface { ifindex, nexthop }).await?
        }
        Cmd::Watch => {
            c.watch().await?;
            loop {
                let ev = c.next_event().await?;
                println!("{}", serde_json::to_string(&ev)?);
            }
        }
        Cmd::Session => return session(&args.socket).await,
    };
    if args.json || !out.is_object() || out.as_object().is_some_and(|o| !o.is_empty()) {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("ok");
    }
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
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        // A bad line is reported and skipped: the lines before it were sent already.
        let mut v = match line_request(&line).await {
            Ok(Some(v)) => v,
            Ok(None) => continue,
            Err(e) => {
                eprintln!("mgmctl: {e:#}");
                bad += 1;
                continue;
            }
        };
        if v.get("id").is_none() {
            id += 1;
            v["id"] = id.into();
        }
        write.write_all(format!("{v}\n").as_bytes()).await?;
    }
    // Give the last replies a moment, then leave (closing releases the session's handles).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    printer.abort();
    anyhow::ensure!(bad == 0, "{bad} script line(s) could not be read");
    Ok(())
}

fn print_snapshot(s: &Snapshot) {
    let name = |i: u32| {
        s.interfaces
            .iter()
            .find(|d| d.ifindex == i)
            .map_or_else(|| i.to_string(), |d| d.name.clone())
    };
    println!("INTERFACES");
    println!("  {:<16} {:>7}  MAC", "NAME", "IFINDEX");
    for d in &s.interfaces {
        println!("  {:<16} {:>7}  {}", d.name, d.ifindex, d.mac);
    }
    println!("PROTOCOLS");
    println!("  {:>6} {:>9} {:>9}", "HANDLE", "PROTOCOL", "COMPONENT");
    for p in &s.protocols {
        println!("  {:>6} {:>9} {:>9}", p.handle.0, p.protocol, p.component);
    }
    println!("OWNERSHIP");
    println!("  {:<10} {:<15} {:>7} {:>6}", "INTERFACE", "NEXT HOP", "ROUTING", "IGMP");
    let h = |x: Option<mgm::manager::Handle>| x.map_or("-".into(), |h| h.0.to_string());
    for o in &s.ownership {
        println!(
            "  {:<10} {:<15} {:>7} {:>6}",
            name(o.iface.ifindex),
            o.iface.nexthop,
            h(o.routing),
            h(o.igmp)
        );
    }
    println!("MEMBERSHIPS");
    println!(
        "  {:>6} {:<15} {:<15} {:<10} {:<15} {:<5} {:<7}",
        "HANDLE", "SOURCE", "GROUP", "INTERFACE", "NEXT HOP", "JOIN", "FORWARD"
    );
    for m in &s.memberships {
        let any = |a: Ipv4Addr| if a.is_unspecified() { "*".to_owned() } else { a.to_string() };
        println!(
            "  {:>6} {:<15} {:<15} {:<10} {:<15} {:<5} {:<7}",
            m.handle.0,
            any(m.entry.source),
            any(m.entry.group),
            name(m.iface.ifindex),
            m.iface.nexthop,
            m.join,
            m.forward
        );
    }
    println!("MFES");
    println!(
        "  {:<15} {:<15} {:<10} {:<24} {:>10} {:>12} {:>9} {:>8} {:<6}",
        "SOURCE", "GROUP", "IIF", "OIFS", "PACKETS", "BYTES", "WRONG_IF", "TTL_EXP", "ORIGIN"
    );
    for m in &s.mfes {
        let oifs = if m.oifs.is_empty() {
            "-".to_owned()
        } else {
            m.oifs.iter().map(|&i| name(i)).collect::<Vec<_>>().join(",")
        };
        println!(
            "  {:<15} {:<15} {:<10} {:<24} {:>10} {:>12} {:>9} {:>8} {:<6}",
            m.source,
            m.group,
            name(m.iif),
            oifs,
            m.packets,
            m.bytes,
            m.wrong_iif,
            m.ttl_expired,
            m.origin
        );
    }
    println!("COUNTERS");
    for (k, v) in &s.counters {
        println!("  {k:<20} {v}");
    }
}
