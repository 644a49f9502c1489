// SPDX-License-Identifier: MIT OR Apache-2.0
//! mgmctl: the operator's command line for mgmd.

use std::{net::Ipv4Addr, path::PathBuf};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use mgm::{
    client::Client,
    config::StaticMfe,
    proto::{DEFAULT_SOCKET, MfeSpec, Request, Response, Snapshot},
};

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
    /// Interfaces, MFEs with counters, global fast-path counters.
    Show,
    /// Install a static MFE: SOURCE,GROUP,IIF,OIF[+OIF...].
    AddMfe { spec: StaticMfe },
    /// Remove a static MFE.
    DelMfe { source: Ipv4Addr, group: Ipv4Addr },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut client = Client::connect(&args.socket).await?;
    let request = match args.cmd {
        Cmd::Hello => Request::Hello,
        Cmd::Show => Request::Show,
        Cmd::AddMfe { spec } => Request::AddMfe(MfeSpec {
            source: spec.source,
            group: spec.group,
            iif: spec.iif,
            oifs: spec.oifs,
        }),
        Cmd::DelMfe { source, group } => Request::DelMfe { source, group },
    };
    let response = client.call(request).await.context("request failed")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&response)?);
        return Ok(());
    }
    match response {
        Response::Hello { protocol, server } => println!("{server}, protocol {protocol}"),
        Response::Show(s) => print_snapshot(&s),
        Response::Done {} => println!("ok"),
    }
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
    println!("MFES");
    println!(
        "  {:<15} {:<15} {:<10} {:<24} {:>10} {:>12} {:>9} {:>8}",
        "SOURCE", "GROUP", "IIF", "OIFS", "PACKETS", "BYTES", "WRONG_IF", "TTL_EXP"
    );
    for m in &s.mfes {
        let oifs = if m.oifs.is_empty() {
            "-".to_owned()
        } else {
            m.oifs
                .iter()
                .map(|&i| name(i))
                .collect::<Vec<_>>()
                .join(",")
        };
        println!(
            "  {:<15} {:<15} {:<10} {:<24} {:>10} {:>12} {:>9} {:>8}",
            m.source,
            m.group,
            name(m.iif),
            oifs,
            m.packets,
            m.bytes,
            m.wrong_iif,
            m.ttl_expired
        );
    }
    println!("COUNTERS");
    for (k, v) in &s.counters {
        println!("  {k:<20} {v}");
    }
}
