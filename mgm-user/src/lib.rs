// SPDX-License-Identifier: MIT OR Apache-2.0
//! mgm: a multicast forwarding data plane with the semantics of the Windows RRAS Multicast Group
//! Manager, an XDP fast path and a Unix-socket control protocol. The module tree follows the
//! data flow (docs/architecture.md):
//!
//! * [`proto`], [`client`]: the control protocol (one type per method) and the client library
//!   daemons embed; [`server`]: the Unix socket that turns lines into inputs;
//! * [`daemon`]: mgmd as one instance taking typed inputs, and its run loop;
//! * [`manager`]: the MGM semantics, a pure state machine (no I/O, time passed in);
//! * [`fastpath`]: the mirror of forwarding state into BPF maps (pure logic + a small trait);
//! * [`dataplane`]: the aya implementation (the only code touching BPF);
//! * [`kernel`]: the kernel's links and neighbours, as rtnetlink events; [`features`]: what
//!   the running kernel offers (multicast routing, XDP metadata, TCX), probed at start;
//! * [`config`]: static configuration; [`loglimit`]: rate limits for lines a peer can repeat;
//! * [`igmp`]: the router side of IGMP (the IGMP daemon's protocol logic).

pub mod client;
pub mod config;
pub mod daemon;
pub mod dataplane;
pub mod fastpath;
pub mod features;
pub mod igmp;
pub mod kernel;
pub mod loglimit;
pub mod manager;
pub mod manual;
pub mod metrics;
pub mod scope;
pub mod server;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

/// The control protocol (its own crate, which daemons and clients share).
pub use mgm_proto as proto;

/// The daemons' logging: to stderr, `RUST_LOG` filtering (default `info`); colours only on a
/// terminal (the journal and log files get plain text).
pub fn init_logging() {
    use std::io::IsTerminal as _;
    tracing_subscriber::fmt()
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
}

/// Tells the service manager how the daemon is doing (`Type=notify` units); does nothing
/// when it was not started by one (no `NOTIFY_SOCKET`).
pub fn notify_service_manager(state: &[sd_notify::NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "telling the service manager");
    }
}
