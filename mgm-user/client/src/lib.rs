// SPDX-License-Identifier: MIT OR Apache-2.0
//! mgm-client: the client of mgmd's control socket (the MGM API, `docs/protocol.md`): what
//! `mgmctl` and `mgm-igmpd` use and what a Rust routing daemon embeds. [`Client`] is async
//! (tokio), [`blocking::Client`] blocks; both move lines and leave their meaning to one
//! I/O-free [`Session`]. The protocol's types are `mgm-proto`'s, re-exported as [`proto`].
//!
//! One [`Client`] is one connection, and the handles it registers live and die with it.
//! Replies and callback events share the connection: events that arrive while a call waits for
//! its reply are queued and returned by [`Client::next_event`], in order.
//!
//! ```no_run
//! # async fn f() -> Result<(), mgm_client::ClientError> {
//! use mgm_client::{Client, proto::types::Event};
//! let mut c = Client::connect("/run/mgm/mgmd.sock").await?;
//! let pim = c.register(103, 1).await?;
//! // Link 2's IPv4 side; `Ipv6Addr::UNSPECIFIED` would take its IPv6 side.
//! c.take_interface(pim, 2, std::net::Ipv4Addr::UNSPECIFIED).await?;
//! loop {
//!     let ev = c.next_event().await?;
//!     if let Event::Rpf { request, iif, upstream, .. } = ev.event {
//!         c.answer_rpf(pim, request, iif.ifindex, iif.nexthop, upstream).await?;
//!     }
//! }
//! # }
//! ```

#[cfg(feature = "async")]
mod async_client;
pub mod blocking;
mod session;

#[cfg(feature = "async")]
pub use async_client::Client;
pub use mgm_proto as proto;
use mgm_proto::WireError;
pub use session::Session;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "connecting to {path}: {source} (is mgmd running, and are you allowed to use its socket?)"
    )]
    Connect {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("mgmd closed the connection")]
    Closed,
    #[error("no answer from mgmd in time")]
    TimedOut,
    #[error("protocol violation: {0}")]
    Protocol(String),
    #[error("mgmd: {0}")]
    Server(#[from] WireError),
}

impl ClientError {
    /// The server's error, if the call was refused.
    pub fn server(&self) -> Option<&WireError> {
        match self {
            Self::Server(e) => Some(e),
            _ => None,
        }
    }
}
