// SPDX-License-Identifier: MIT OR Apache-2.0
//! mgm: a multicast forwarding data plane with the semantics of the Windows RRAS Multicast Group
//! Manager, an XDP fast path and a Unix-socket control protocol. This crate is mgmd and
//! mgmctl; the protocol (`mgm-proto`), its client (`mgm-client`), IGMP/MLD (`mgm-igmpd`) and
//! what the daemons share (`mgm-util`) are crates of their own. The module tree follows the
//! data flow (docs/architecture.md):
//!
//! * [`server`]: the Unix socket that turns lines into inputs;
//! * [`daemon`]: mgmd as one instance taking typed inputs, and its run loop;
//! * [`manager`]: the MGM semantics, a pure state machine (no I/O, time passed in);
//! * [`fastpath`]: the mirror of forwarding state into BPF maps (pure logic + a small trait);
//! * [`dataplane`]: the aya implementation (the only code touching BPF);
//! * [`kernel`]: the kernel's links and neighbours, as rtnetlink events; [`features`]: what
//!   the running kernel offers (multicast routing, XDP metadata, TCX), probed at start;
//! * [`config`]: static configuration; [`scope`]: administrative scope boundaries;
//!   [`metrics`]: the Prometheus endpoint.

pub mod config;
pub mod daemon;
pub mod dataplane;
pub mod fastpath;
pub mod features;
pub mod kernel;
pub mod manager;
pub mod metrics;
pub mod scope;
pub mod server;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

/// The control protocol and its client (crates of their own, which a routing daemon uses
/// without the rest of mgm).
pub use {mgm_client as client, mgm_proto as proto};
