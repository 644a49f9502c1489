// SPDX-License-Identifier: MIT OR Apache-2.0
//! Test harness: network namespaces joined by veth pairs, mgmd started in the router namespace,
//! raw frames injected at the sender and captured at the receivers.
//!
//! ```text
//!  [sender ns] s0 ──veth── rin [router ns: mgmd + XDP] r1 ──veth── eth0 [recv ns 1]
//!                                                       r2 ──veth── eth0 [recv ns 2] ...
//! ```
//! Every namespace name carries the process id and a counter, so tests run in parallel (and
//! next to an aborted earlier run) without clashes. Everything is removed on drop, including
//! when a test panics.
//!
//! [`ns`]: namespaces and processes; [`packets`]: frames; [`mgmd`]: mgmd and its client;
//! [`topology`]: the standard topology; [`peers`]: the routing daemons and mgm-igmpd;
//! [`forge`]: hostile rtnetlink messages.

use std::{
    fs::File,
    net::{IpAddr, Ipv4Addr},
    os::{
        fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::net::UnixStream,
    },
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};
use mgm::{
    manager::{Handle, RequestId},
    proto::{self, ErrorCode, MembershipArgs, Method, MfeReply, Snapshot, Status, WireError},
};
use serde_json::Value;

pub mod conformance;
pub mod container;
pub mod libmgm;
pub mod mgmd;
pub mod ns;
pub mod packets;
pub mod peers;
pub mod topology;

pub mod forge;

pub use {container::Container, mgmd::*, ns::*, packets::*, peers::*, topology::*};
