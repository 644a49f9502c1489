// SPDX-License-Identifier: MIT OR Apache-2.0
//! mgm-util: what mgm's daemons (mgmd, mgm-igmpd) and mgmctl share at their edges, and
//! nothing of their logic: logging and the service manager (here), [`loglimit`] for lines a
//! peer can repeat, [`manual`] pages and completions from the command-line definitions, and
//! [`rtnl`], one rtnetlink request and its replies.

pub mod loglimit;
pub mod manual;
pub mod rtnl;

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

pub use sd_notify::NotifyState;
