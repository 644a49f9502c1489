// SPDX-License-Identifier: MIT OR Apache-2.0
//! mgm: a multicast forwarding data plane with the semantics of the Windows RRAS Multicast Group
//! Manager, an XDP fast path and a Unix-socket control protocol.
//!
//! * [`manager`]: the MGM semantics, a pure state machine (no I/O, time passed in);
//! * [`fastpath`]: the mirror of forwarding state into BPF maps (pure logic + a small trait);
//! * [`dataplane`]: the aya implementation of that trait (the only code touching BPF);
//! * [`proto`], [`client`]: the control protocol and the client library daemons embed;
//! * [`daemon`], [`server`]: mgmd's router task and its Unix socket server;
//! * [`config`], [`netdev`]: static configuration and interface lookups.

pub mod client;
pub mod config;
pub mod daemon;
pub mod dataplane;
pub mod fastpath;
pub mod fuzz;
pub mod manager;
pub mod neigh;
pub mod netdev;
pub mod proto;
pub mod server;
