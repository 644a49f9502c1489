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
    proto::{DEFAULT_SOCKET, MfeSpec, Request, Snapshot},
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
    /// Send requests read from stdin, one JSON object per line (an `id` is added when
    /// missing), on one connection; print every reply and event. For scripts using handles.
    Session,
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
        Cmd::AddMfe { spec } => {
            let spec =
                MfeSpec { source: spec.source, group: spec.group, iif: spec.iif, oifs: spec.oifs };
            c.call(Request::AddMfe(spec)).await?
        }
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

/// Raw protocol lines in, raw lines out: replies and events as they come.
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
    while let Some(line) = stdin.next_line().await? {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let mut v: Value =
            serde_json::from_str(&line).with_context(|| format!("not JSON: {line}"))?;
        if v.get("id").is_none() {
            id += 1;
            v["id"] = id.into();
        }
        write.write_all(format!("{v}\n").as_bytes()).await?;
    }
    // Give the last replies a moment, then leave (closing releases the session's handles).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    printer.abort();
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
